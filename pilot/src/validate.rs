//! `bowline validate -f PATH...`: checks configuration files offline, as the
//! control plane would read them, and reports every problem at once.
//!
//! ```text
//! paths ──► files (directories: discovery-file's walk) ──► FileStore ──► Snapshot::build (--mesh-config)
//!                                                                 │               │
//!                           per-object errors and warnings ◄──────┘               └──► cross-object warnings
//!                                       └──► one line each + "N objects valid, E errors, W warnings"
//! ```
//!
//! Cross-object findings (a subset no DestinationRule defines, a host that
//! resolves to nothing, two VirtualServices on one host) come from the same
//! snapshot build the server runs, in the manner of `istioctl analyze`.

use std::collections::BTreeSet;
use std::path::PathBuf;

use discovery::file::FileStore;
use policy::{Diagnostic, Severity};

use pilot_core::mesh::Mesh;

/// Arguments of `bowline validate`.
#[derive(clap::Args, Debug)]
pub(crate) struct ValidateArgs {
    /// Files or directories to check; directories are read recursively for
    /// `.yaml` and `.yml` files.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub(crate) paths: Vec<PathBuf>,
    /// Istio MeshConfig YAML, as `bowline serve` takes it; its errors count.
    #[arg(long)]
    pub(crate) mesh_config: Option<PathBuf>,
}

/// What validation found in a set of files.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Report {
    /// One line per problem, in file, document and path order; files that
    /// could not be read come first.
    pub(crate) lines: Vec<String>,
    /// Objects that are valid and would be in force.
    pub(crate) objects: usize,
    pub(crate) errors: usize,
    pub(crate) warnings: usize,
}

impl Report {
    /// `3 objects valid, 1 errors, 2 warnings`.
    pub(crate) fn summary(&self) -> String {
        format!(
            "{} objects valid, {} errors, {} warnings",
            self.objects, self.errors, self.warnings
        )
    }
}

/// One input: a file as the user named it, and its text or why it could not
/// be read.
pub(crate) type Input = (PathBuf, Result<String, String>);

/// Validates the given file contents together. Pure: the files are already read.
#[cfg(test)]
pub(crate) fn check(inputs: &[Input]) -> Report {
    check_in(inputs, &Mesh::default())
}

/// Like [`check`], in `mesh` (whose own problems are reported too).
pub(crate) fn check_in(inputs: &[Input], mesh: &Mesh) -> Report {
    let mut report = Report::default();
    let mut store = FileStore::new();
    for (path, text) in inputs {
        match text {
            Ok(text) => store.apply(path, text),
            Err(why) => {
                report.errors += 1;
                report
                    .lines
                    .push(format!("{}: cannot read: {why}", path.display()));
            }
        }
    }
    let config = store.config();
    let snapshot = mesh.build(1, &config);
    report.objects = config.objects.len();
    for diagnostic in &snapshot.diagnostics {
        match diagnostic.severity {
            Severity::Error => report.errors += 1,
            Severity::Warning => report.warnings += 1,
        }
        report.lines.push(Diagnostic::to_string(diagnostic));
    }
    report
}

/// Every file named by `paths` (sorted, without repeats), directories
/// expanded by the walker `bowline serve` follows its directory with, so
/// both read the same files: `.yaml` and `.yml`, hidden files and editor
/// temporaries skipped, file links followed, directory links not. A path
/// that does not exist or a directory that cannot be listed becomes an input
/// that failed to read.
pub(crate) fn collect(paths: &[PathBuf]) -> Vec<Input> {
    let mut files = BTreeSet::new();
    let mut failed = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.insert(path.clone());
            continue;
        }
        match discovery_file::walk(path) {
            Ok(walk) => {
                files.extend(walk.files.into_iter().map(|(path, _)| path));
                failed.extend(
                    walk.unreadable_dirs
                        .into_iter()
                        .map(|(dir, e)| (dir, Err(e.to_string()))),
                );
            }
            Err(e) => failed.push((path.clone(), Err(e.to_string()))),
        }
    }
    let mut inputs = failed;
    inputs.extend(files.into_iter().map(|path| {
        let text = std::fs::read_to_string(&path).map_err(|e| e.to_string());
        (path, text)
    }));
    inputs
}

/// Runs `bowline validate`: prints every problem and the summary on stdout,
/// and fails when there is at least one error.
pub(crate) fn run(args: ValidateArgs) -> anyhow::Result<()> {
    let mesh = pilot_server::mesh::load(args.mesh_config.as_deref());
    let report = check_in(&collect(&args.paths), &mesh);
    for line in &report.lines {
        println!("{line}");
    }
    println!("{}", report.summary());
    if report.errors > 0 {
        // Exit code 3: validation errors, as `bowline apply` says them.
        return Err(crate::config_cli::fail(
            3,
            format!("validation failed with {} errors", report.errors),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: shop}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080}]\n";

    fn input(name: &str, text: &str) -> Input {
        (PathBuf::from(name), Ok(text.to_string()))
    }

    #[test]
    fn valid_objects_are_counted() {
        let report = check(&[input("svc.yaml", SERVICE)]);
        assert_eq!(report.objects, 1);
        assert_eq!(report.errors, 0, "{:#?}", report.lines);
        assert_eq!(
            report.summary(),
            format!("1 objects valid, 0 errors, {} warnings", report.warnings)
        );
    }

    #[test]
    fn errors_name_file_document_object_and_path() {
        let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: shop}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n      weight: 60\n    - destination: {host: reviews}\n      weight: 30\n";
        let report = check(&[input("a.yaml", &format!("{SERVICE}---\n{vs}"))]);
        assert_eq!(report.objects, 1);
        assert_eq!(report.errors, 1, "{:#?}", report.lines);
        assert!(report.lines.contains(
            &"a.yaml: document 1: VirtualService shop/reviews: spec.http[0].route: weights must sum to 100, got 90"
                .to_string()
        ), "{:#?}", report.lines);
    }

    #[test]
    fn cross_object_findings_are_reported() {
        let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: shop}\nspec:\n  hosts: [reviews]\n  http:\n  - route: [{destination: {host: reviews, subset: v9}}]\n";
        let alone = check(&[input("vs.yaml", vs)]);
        let with_service = check(&[input("svc.yaml", SERVICE), input("vs.yaml", vs)]);
        assert_eq!(alone.errors, 0);
        assert!(
            with_service.warnings > 0 && with_service.lines.iter().any(|l| l.contains("v9")),
            "the undefined subset is reported: {:#?}",
            with_service.lines
        );
    }

    #[test]
    fn unreadable_files_are_errors() {
        let report = check(&[(PathBuf::from("gone.yaml"), Err("no such file".to_string()))]);
        assert_eq!(report.errors, 1);
        assert_eq!(report.lines, vec!["gone.yaml: cannot read: no such file"]);
    }

    #[cfg(unix)]
    #[test]
    fn directories_are_walked_as_the_server_walks_them() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir_all(root.join(".git")).unwrap();
        std::fs::create_dir_all(root.join("shared")).unwrap();
        std::fs::write(root.join("svc.yaml"), SERVICE).unwrap();
        std::fs::write(root.join(".#svc.yaml"), "lock").unwrap();
        std::fs::write(root.join("svc.yaml~"), "backup").unwrap();
        std::fs::write(root.join(".git/config.yaml"), "not config").unwrap();
        std::fs::write(root.join("shared/extra.yaml"), SERVICE).unwrap();
        std::os::unix::fs::symlink("shared/extra.yaml", root.join("linked.yaml")).unwrap();
        std::os::unix::fs::symlink("shared", root.join("again")).unwrap();
        std::os::unix::fs::symlink(".", root.join("loop")).unwrap();
        let names: Vec<PathBuf> = collect(&[root.to_path_buf()])
            .into_iter()
            .map(|(p, _)| p.strip_prefix(root).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            names,
            ["linked.yaml", "shared/extra.yaml", "svc.yaml"].map(PathBuf::from)
        );
        let served: Vec<PathBuf> = discovery_file::walk(root)
            .unwrap()
            .files
            .into_iter()
            .map(|(p, _)| p.strip_prefix(root).unwrap().to_path_buf())
            .collect();
        assert_eq!(names, served);
    }

    #[test]
    fn directories_are_read_recursively_for_yaml() {
        let dir = tempfile::tempdir().unwrap();
        let nested = dir.path().join("a/b");
        std::fs::create_dir_all(&nested).unwrap();
        std::fs::write(nested.join("x.yaml"), SERVICE).unwrap();
        std::fs::write(dir.path().join("y.yml"), "").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not config").unwrap();
        let missing = dir.path().join("missing.yaml");
        let inputs = collect(&[
            dir.path().to_path_buf(),
            missing.clone(),
            nested.join("x.yaml"),
        ]);
        let names: Vec<&std::path::Path> = inputs.iter().map(|(p, _)| p.as_path()).collect();
        assert_eq!(
            names,
            vec![
                nested.join("x.yaml").as_path(),
                missing.as_path(),
                dir.path().join("y.yml").as_path()
            ]
        );
        assert!(inputs[0].1.is_ok());
        assert!(inputs[1].1.is_err());
    }
}
