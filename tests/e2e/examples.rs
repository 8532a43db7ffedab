//! The example meshes of `manifests/examples` stay valid: every directory is
//! read by the same parser and snapshot builder the control plane uses, must
//! produce no diagnostic, and must compile to consistent Envoy config for each
//! of its workloads; `bowline validate -f DIR` accepts it as a user would run
//! it. Each directory also has a README showing how to run it.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use discovery::file::FileStore;
use pilot_core::compile::{compile, verify};
use pilot_core::proxy::{DEFAULT_OUTBOUND_PORT, NodeMetadata, Proxy};
use pilot_core::snapshot::Snapshot;

use crate::harness::{APP_PORT, BOWLINE};

/// One example per feature family, besides the demo.
const FAMILIES: [&str; 8] = [
    "traffic-shifting",
    "request-routing",
    "fault-injection",
    "timeouts-retries",
    "mirroring",
    "rewrite-redirect",
    "load-balancing",
    "circuit-breaking",
];

fn examples_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/examples")
}

/// Reads every YAML file of `dir` into a store, as `bowline serve --config-dir` would.
fn load(dir: &Path) -> (Snapshot, usize) {
    let mut store = FileStore::new();
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
        .collect();
    files.sort();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let name = file.strip_prefix(examples_root()).unwrap_or(file);
        store.apply(name, &text);
    }
    (Snapshot::build(1, &store.config()), files.len())
}

fn proxy_for(address: IpAddr, name: &str, namespace: &str) -> Proxy {
    Proxy::new(NodeMetadata {
        namespace: namespace.to_string(),
        workload: name.to_string(),
        address,
        labels: Default::default(),
        service_account: None,
        app_address: Some(SocketAddr::new(address, APP_PORT)),
        app_ports: Default::default(),
        outbound_port: DEFAULT_OUTBOUND_PORT,
        generator: Default::default(),
        sds: false,
        capture: false,
    })
}

/// Every example directory, sorted, but `kubernetes`: an application for a
/// cluster (Deployments beside its mesh config), not a mesh to run from
/// files; `policy/tests/manifests.rs` checks it.
fn example_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(examples_root())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_dir() && !p.ends_with("kubernetes"))
        .collect();
    dirs.sort();
    dirs
}

#[test]
fn every_example_loads_without_diagnostics_and_compiles_for_each_workload() {
    let dirs = example_dirs();
    let names: Vec<String> = dirs
        .iter()
        .map(|d| d.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for family in FAMILIES {
        assert!(
            names.iter().any(|n| n == family),
            "manifests/examples/{family} is missing"
        );
    }

    for (dir, name) in dirs.iter().zip(&names) {
        let (snapshot, files) = load(dir);
        assert!(files > 0, "{name}: no YAML files");
        let diagnostics: Vec<String> = snapshot.diagnostics.iter().map(|d| d.to_string()).collect();
        assert!(
            diagnostics.is_empty(),
            "{name}: the example has problems:\n{}",
            diagnostics.join("\n")
        );
        assert!(
            !snapshot.workload_entries.is_empty(),
            "{name}: the demo needs WorkloadEntries to run"
        );
        for we in &snapshot.workload_entries {
            let address: IpAddr = we.spec.address.parse().unwrap();
            let mut proxy = proxy_for(address, &we.meta.name, &we.meta.namespace);
            proxy.metadata.labels = we.spec.labels.clone();
            proxy.metadata.service_account = we.spec.service_account.clone();
            let resources = compile(&snapshot, &proxy);
            assert_eq!(
                verify(&resources),
                Vec::<String>::new(),
                "{name}: {} compiles to inconsistent config",
                we.meta.name
            );
        }

        let readme = std::fs::read_to_string(dir.join("README.md"))
            .unwrap_or_else(|_| panic!("{name}: no README.md"));
        if name != "demo" {
            let command = format!("./scripts/demo --config-dir manifests/examples/{name}");
            assert!(
                readme.contains(&command),
                "{name}: README lacks `{command}`"
            );
            assert!(
                readme.contains("curl"),
                "{name}: README lacks a command to try"
            );
        }
    }
}

/// Each family's example carries the policy it is about: a VirtualService or
/// a DestinationRule in force for some host.
#[test]
fn every_family_example_puts_traffic_policy_in_force() {
    for family in FAMILIES {
        let (snapshot, _) = load(&examples_root().join(family));
        assert!(
            !snapshot.virtual_services.is_empty() || !snapshot.destination_rules.is_empty(),
            "{family}: no VirtualService or DestinationRule in force"
        );
    }
}

/// What a user would run before trying an example: `bowline validate -f DIR`
/// exits 0 and reports neither errors nor warnings.
#[test]
fn bowline_validate_accepts_every_example() {
    let dirs = example_dirs();
    for dir in dirs {
        let output = std::process::Command::new(BOWLINE)
            .arg("validate")
            .arg("-f")
            .arg(&dir)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "bowline validate -f {}: {stdout}{stderr}",
            dir.display()
        );
        assert!(
            stdout.contains(" 0 errors, 0 warnings"),
            "bowline validate -f {}: {stdout}",
            dir.display()
        );
    }
}
