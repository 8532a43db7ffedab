//! Golden tests of the compiler: `tests/golden/<area>/<case>.in.yaml` is a
//! config directory in one file; the compiled resources of one proxy are
//! compared with `<case>.<type>.json`, and the config's diagnostics with
//! `<case>.diagnostics.txt`.
//!
//! The proxy is the WorkloadEntry named by a `# proxy: NAMESPACE/NAME` line
//! (else the first one); its application listens on `ADDRESS:15080`. Lines
//! `# mesh: TEXT` together are the mesh config (`--mesh-config`).
//!
//! `REFRESH_GOLDEN=1 cargo test -p pilot --test golden` rewrites the expected
//! files and deletes orphans; review the result with `git diff`.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use discovery::file::FileStore;
use pilot::compile::{compile, compile_consistent, verify};
use pilot::mesh::Mesh;
use pilot::proxy::Proxy;
use pilot::resources::ResourceType;
use pilot::snapshot::Snapshot;
use policy::Object;
use policy::networking::WorkloadEntry;

fn golden_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/golden")
}

fn type_name(ty: ResourceType) -> &'static str {
    match ty {
        ResourceType::Cluster => "clusters",
        ResourceType::Endpoint => "endpoints",
        ResourceType::Listener => "listeners",
        ResourceType::Route => "routes",
    }
}

#[test]
fn golden() {
    let root = golden_root();
    let refresh = std::env::var("REFRESH_GOLDEN").is_ok_and(|v| v == "1");
    let pool = support::envoy_json::descriptor_pool();
    let inputs: Vec<PathBuf> = glob::glob(&format!("{}/**/*.in.yaml", root.display()))
        .unwrap()
        .flatten()
        .collect();
    assert!(
        !inputs.is_empty(),
        "no golden inputs under {}",
        root.display()
    );

    let mut expected_files = BTreeSet::new();
    let mut failures = Vec::new();
    for input in &inputs {
        let case = input
            .to_string_lossy()
            .trim_end_matches(".in.yaml")
            .to_string();
        let text = std::fs::read_to_string(input).unwrap();
        let display = input.strip_prefix(&root).unwrap().display().to_string();
        let outputs = compile_case(&pool, &display, &text);
        for (suffix, content) in outputs {
            let path = PathBuf::from(format!("{case}.{suffix}"));
            expected_files.insert(path.clone());
            if refresh {
                std::fs::write(&path, &content).unwrap();
                continue;
            }
            let old = std::fs::read_to_string(&path).unwrap_or_default();
            if old != content {
                let diff = similar::TextDiff::from_lines(&old, &content)
                    .unified_diff()
                    .header(&path.display().to_string(), "compiled")
                    .to_string();
                failures.push(diff);
            }
        }
    }

    if refresh {
        for file in glob::glob(&format!("{}/**/*", root.display()))
            .unwrap()
            .flatten()
        {
            let name = file.to_string_lossy();
            if file.is_file() && !name.ends_with(".in.yaml") && !expected_files.contains(&file) {
                std::fs::remove_file(&file).unwrap();
            }
        }
    }
    assert!(
        failures.is_empty(),
        "golden files differ (REFRESH_GOLDEN=1 rewrites them):\n{}",
        failures.join("\n")
    );
}

/// Compiles one case into (file suffix, content) pairs.
fn compile_case(
    pool: &prost_reflect::DescriptorPool,
    file: &str,
    text: &str,
) -> Vec<(String, String)> {
    let mut store = FileStore::default();
    store.apply(Path::new(file), text);
    let config = store.config();
    let mesh_text: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# mesh: "))
        .collect();
    let snapshot: Snapshot = Mesh::parse("mesh.yaml", &mesh_text.join("\n")).build(1, &config);
    let proxy = proxy_for(text, &config.objects).unwrap_or_else(|| panic!("{file}: no proxy"));
    let resources = compile(&snapshot, &proxy);
    assert_eq!(
        verify(&resources),
        Vec::<String>::new(),
        "{file}: inconsistent"
    );
    // The server's check (shared parts verified once per namespace) agrees.
    assert_eq!(
        compile_consistent(&snapshot, &proxy).as_ref(),
        Ok(&resources),
        "{file}: the server's consistency check disagrees"
    );

    let mut outputs = Vec::new();
    for ty in ResourceType::ALL {
        let list: Vec<serde_json::Value> = resources
            .get(ty)
            .values()
            .map(|r| support::envoy_json::to_json(pool, &r.body.type_url, &r.body.value))
            .collect();
        let mut json = serde_json::to_string_pretty(&list).unwrap();
        json.push('\n');
        outputs.push((format!("{}.json", type_name(ty)), json));
    }
    let diagnostics: String = snapshot
        .diagnostics
        .iter()
        .map(|d| format!("{d}\n"))
        .collect();
    outputs.push(("diagnostics.txt".to_string(), diagnostics));
    outputs
}

fn proxy_for(text: &str, objects: &[std::sync::Arc<Object>]) -> Option<Proxy> {
    let wanted = text
        .lines()
        .find_map(|l| l.strip_prefix("# proxy: "))
        .map(|s| s.trim().to_string());
    let entries: Vec<&WorkloadEntry> = objects
        .iter()
        .filter_map(|o| match o.as_ref() {
            Object::WorkloadEntry(we) => Some(we),
            _ => None,
        })
        .collect();
    let we = match wanted {
        Some(w) => entries
            .into_iter()
            .find(|we| format!("{}/{}", we.meta.namespace, we.meta.name) == w)?,
        None => entries.into_iter().next()?,
    };
    support::proxy_of(we)
}
