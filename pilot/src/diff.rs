//! `bowline diff -f PATH... --config-dir DIR`: what the given changes would
//! change in each sidecar's Envoy config, without applying them: the config
//! directory in force, and the same with the files given (each replacing
//! the file of the same path, or joining the directory), both compiled for
//! the sidecar of every WorkloadEntry (`pilot_core::diff`); a unified diff
//! of each resource that would change, as JSON in the form of Envoy's
//! config dump.
//!
//! ```text
//! DIR ──► before ─┐
//! DIR + PATHs ──► after ─┴─► pilot_core::diff::changes ──► per proxy: + added, - removed, ~ changed, and the diff
//! ```

use std::path::{Path, PathBuf};

use discovery::file::FileStore;
use pilot_core::diff::{ProxyChanges, workload_proxies};
use pilot_server::preview::{describe, sign, unified};
use policy::Severity;

use crate::validate::{Input, collect};

#[derive(clap::Args, Debug)]
pub(crate) struct DiffArgs {
    /// The changed files or directories.
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    pub(crate) paths: Vec<PathBuf>,
    /// The config directory in force.
    #[arg(long, value_name = "DIR")]
    pub(crate) config_dir: PathBuf,
    /// Istio MeshConfig YAML, as `bowline serve` takes it.
    #[arg(long)]
    pub(crate) mesh_config: Option<PathBuf>,
    /// `text` (a unified diff per resource), or `json`.
    #[arg(short = 'o', long = "output", default_value = "text")]
    pub(crate) output: DiffOutput,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum DiffOutput {
    Text,
    Json,
}

/// The same file, however it was named.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// The two stores: the directory, and the directory with `changed` over it.
fn stores(base: &[Input], changed: &[Input]) -> Result<(FileStore, FileStore), Vec<String>> {
    let mut unreadable = Vec::new();
    let (mut before, mut after) = (FileStore::new(), FileStore::new());
    for (path, text) in base {
        match text {
            Ok(text) => {
                before.apply(&canonical(path), text);
                after.apply(&canonical(path), text);
            }
            Err(why) => unreadable.push(format!("{}: cannot read: {why}", path.display())),
        }
    }
    for (path, text) in changed {
        match text {
            Ok(text) => after.apply(&canonical(path), text),
            Err(why) => unreadable.push(format!("{}: cannot read: {why}", path.display())),
        }
    }
    if unreadable.is_empty() {
        Ok((before, after))
    } else {
        Err(unreadable)
    }
}

/// The text report: per proxy its changed resources, each with its diff.
pub(crate) fn text(changes: &[ProxyChanges], proxies: usize) -> String {
    let mut out = String::new();
    for proxy in changes {
        let m = &proxy.proxy.metadata;
        out.push_str(&format!(
            "{}.{} ({}): {} resource(s)\n",
            m.workload,
            m.namespace,
            proxy.proxy.id,
            proxy.changes.len()
        ));
        for change in &proxy.changes {
            out.push_str(&format!("  {} {}\n", sign(change.change), describe(change)));
            for line in unified(change).lines() {
                out.push_str("    ");
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.push_str(&format!(
        "{} of {proxies} sidecar(s) would change\n",
        changes.len()
    ));
    out
}

/// Runs `bowline diff`: exit 3 when the changed config has errors (they
/// are printed instead of the diff).
pub(crate) fn run(args: DiffArgs) -> anyhow::Result<()> {
    let mesh = pilot_server::mesh::load(args.mesh_config.as_deref());
    let (before, after) = match stores(
        &collect(std::slice::from_ref(&args.config_dir)),
        &collect(&args.paths),
    ) {
        Ok(stores) => stores,
        Err(lines) => {
            for line in lines {
                eprintln!("{line}");
            }
            return Err(crate::config_cli::fail(1, "some files could not be read"));
        }
    };
    let (before, after) = (
        mesh.build(1, &before.config()),
        mesh.build(2, &after.config()),
    );
    let errors: Vec<String> = after
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    if !errors.is_empty() {
        for error in &errors {
            println!("{error}");
        }
        return Err(crate::config_cli::fail(
            3,
            format!("the changed config has {} error(s)", errors.len()),
        ));
    }
    let proxies = workload_proxies(&before, &after);
    let changes = pilot_core::diff::changes(&before, &after, &proxies);
    match args.output {
        DiffOutput::Text => print!("{}", text(&changes, proxies.len())),
        DiffOutput::Json => {
            let summary = pilot_server::preview::summarise(&changes, proxies.len(), false);
            println!("{}", serde_json::to_string_pretty(&summary.changed)?);
        }
    }
    Ok(())
}
