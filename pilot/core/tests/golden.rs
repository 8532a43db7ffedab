//! Golden tests of the compiler: `tests/golden/<area>/<case>.in.yaml` is a
//! config directory in one file; the compiled resources of one proxy are
//! compared with `<case>.<type>.json`, and the config's diagnostics with
//! `<case>.diagnostics.txt`.
//!
//! The proxy is the WorkloadEntry named by a `# proxy: NAMESPACE/NAME` line
//! (else the first one); its application listens on `ADDRESS:15080`. With a
//! `# generator: grpc` line it is that workload's proxyless gRPC client
//! instead of its sidecar. With a `# sds: true` line its agent serves it a
//! workload certificate (node metadata `sds`), so it speaks mutual TLS, and
//! a CA runs: the snapshot's trust bundle is `support/root-cert.pem`, which
//! the proxy gets as the secret `ROOTCA` (`<case>.secrets.json`, written
//! only where there are secrets).
//! With a `# interception: REDIRECT` line the pod's traffic is captured
//! (node metadata `INTERCEPTION_MODE`) and its application listens on its
//! own ports at the workload's address.
//! Lines `# mesh: TEXT` together are the mesh config (`--mesh-config`).
//!
//! `REFRESH_GOLDEN=1 cargo test -p pilot --test golden` rewrites the expected
//! files and deletes orphans; review the result with `git diff`.

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use discovery::file::FileStore;
use pilot_core::compile::{PushContext, compile, compile_consistent, verify};
use pilot_core::mesh::Mesh;
use pilot_core::proxy::Proxy;
use pilot_core::resources::ResourceType;
use pilot_core::snapshot::{ChangeSet, Snapshot};
use policy::Object;
use policy::networking::WorkloadEntry;

fn golden_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden")
}

/// Every golden input, `<area>/<case>.in.yaml`.
fn inputs() -> Vec<PathBuf> {
    glob::glob(&format!("{}/**/*.in.yaml", golden_root().display()))
        .unwrap()
        .flatten()
        .collect()
}

fn type_name(ty: ResourceType) -> &'static str {
    match ty {
        ResourceType::Cluster => "clusters",
        ResourceType::Endpoint => "endpoints",
        ResourceType::Listener => "listeners",
        ResourceType::Route => "routes",
        ResourceType::Secret => "secrets",
    }
}

#[test]
fn golden() {
    let root = golden_root();
    let refresh = std::env::var("REFRESH_GOLDEN").is_ok_and(|v| v == "1");
    let pool = support::envoy_json::descriptor_pool();
    let inputs = inputs();
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
        let outputs = compile_case(pool, &display, &text);
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
    let snapshot = mesh_of(text)
        .build(1, &config)
        .with_trust_bundle(trust_bundle_of(text));
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
        if ty == ResourceType::Secret && resources.get(ty).is_empty() {
            continue;
        }
        let list: Vec<serde_json::Value> = resources
            .get(ty)
            .values()
            .map(|r| support::envoy_json::to_json(pool, r.resource_type().type_url(), r.value()))
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

/// The trust bundle of a case: the test root with a `# sds: true` line.
fn trust_bundle_of(text: &str) -> Option<Arc<str>> {
    let sds = text
        .lines()
        .any(|l| l.strip_prefix("# sds: ").map(str::trim) == Some("true"));
    sds.then(|| Arc::from(support::ROOT_CERT))
}

/// The mesh config of a case: its `# mesh: ` lines.
fn mesh_of(text: &str) -> Mesh {
    let lines: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# mesh: "))
        .collect();
    Mesh::parse("mesh.yaml", &lines.join("\n"))
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
    let proxyless = text
        .lines()
        .any(|l| l.strip_prefix("# generator: ").map(str::trim) == Some("grpc"));
    let sds = text
        .lines()
        .any(|l| l.strip_prefix("# sds: ").map(str::trim) == Some("true"));
    let capture = text
        .lines()
        .any(|l| l.strip_prefix("# interception: ").map(str::trim) == Some("REDIRECT"));
    if proxyless {
        return support::proxyless_of(we);
    }
    support::proxy_of(we).map(|mut proxy| {
        proxy.metadata.sds = sds;
        if capture {
            // A pod's application listens on its own ports.
            proxy.metadata.capture = true;
            proxy.metadata.app_address = None;
        }
        proxy
    })
}

/// The server compiles through a push context, which shares what proxies
/// have in common; the golden files are compiled from scratch. Every
/// WorkloadEntry of every golden input, as a sidecar without and with a
/// workload certificate and as a proxyless gRPC client, gets the same bytes both ways. Then each input's first WorkloadEntry moves to another address: when
/// that is an endpoint-only change, the context that follows it (shared
/// clusters carried over, only endpoints compiled again) gives every other
/// proxy the same bytes as a compile from scratch of the changed snapshot.
#[test]
fn push_context_compiles_the_same_bytes_as_from_scratch() {
    let inputs = inputs();
    let (mut endpoint_only_cases, mut endpoint_updates) = (0, 0);
    for input in &inputs {
        let text = std::fs::read_to_string(input).unwrap();
        let file = input.display().to_string();
        let (snapshot, proxies) = snapshot_and_proxies(&file, &text, 1);
        let snapshot = Arc::new(snapshot);
        let context = PushContext::new(snapshot.clone());
        for proxy in &proxies {
            assert_eq!(
                context.compile(proxy),
                compile(&snapshot, proxy),
                "{file}: proxy {}",
                proxy.id
            );
            assert_eq!(
                context.compile_consistent(proxy),
                compile_consistent(&snapshot, proxy),
                "{file}: proxy {}",
                proxy.id
            );
        }

        let Some(first) = proxies.first() else {
            continue;
        };
        let address = first.metadata.address.to_string();
        let moved = text.replace(&format!("address: {address}\n"), "address: 10.255.0.9\n");
        let (next, _) = snapshot_and_proxies(&file, &moved, 2);
        let next = Arc::new(next);
        let Some(endpoints) = ChangeSet::between(&snapshot, &next).endpoints_only() else {
            continue;
        };
        endpoint_only_cases += 1;
        let after = PushContext::after_endpoint_change(&context, next.clone(), endpoints);
        for proxy in proxies.iter().skip(1) {
            let last = context.compile(proxy);
            let expected = compile(&next, proxy);
            match after.endpoints_update(proxy, &last, 1) {
                Some(updated) => {
                    endpoint_updates += 1;
                    assert_eq!(updated, expected, "{file}: proxy {}", proxy.id);
                }
                None => assert_eq!(after.compile(proxy), expected, "{file}: proxy {}", proxy.id),
            }
        }
    }
    assert!(
        endpoint_only_cases > 0 && endpoint_updates > 0,
        "the endpoint-only path went unexercised: {endpoint_only_cases} cases, {endpoint_updates} updates"
    );
    println!("{endpoint_only_cases} endpoint-only cases, {endpoint_updates} endpoint-only updates");
}

fn snapshot_and_proxies(file: &str, text: &str, generation: u64) -> (Snapshot, Vec<Proxy>) {
    let mut store = FileStore::default();
    store.apply(Path::new(file), text);
    let config = store.config();
    let proxies = config
        .objects
        .iter()
        .filter_map(|o| match o.as_ref() {
            Object::WorkloadEntry(we) => Some(we),
            _ => None,
        })
        .flat_map(|we| {
            let with_certificate = support::proxy_of(we).map(|mut proxy| {
                proxy.metadata.sds = true;
                proxy
            });
            [
                support::proxy_of(we),
                with_certificate,
                support::proxyless_of(we),
            ]
        })
        .flatten()
        .collect();
    // Every case with a CA: the sidecars with a certificate get `ROOTCA`.
    let snapshot = mesh_of(text)
        .build(generation, &config)
        .with_trust_bundle(Some(Arc::from(support::ROOT_CERT)));
    (snapshot, proxies)
}

/// After a change of the trust bundle alone (a root joins it), the context
/// that follows replaces every sidecar's secrets and nothing else: the
/// same bytes as a compile from scratch of the new snapshot, and every
/// other type exactly as before.
#[test]
fn a_trust_bundle_change_replaces_only_the_secrets() {
    let inputs = inputs();
    let mut updates = 0;
    for input in &inputs {
        let text = std::fs::read_to_string(input).unwrap();
        let file = input.display().to_string();
        let (snapshot, proxies) = snapshot_and_proxies(&file, &text, 1);
        let snapshot = Arc::new(snapshot);
        let context = PushContext::new(snapshot.clone());
        let mut config = FileStore::default();
        config.apply(Path::new(&file), &text);
        let two_roots = format!("{}{}", support::ROOT_CERT, support::ROOT_CERT);
        let next = Arc::new(
            Snapshot::build_after(&snapshot, 2, &config.config(), &BTreeSet::new())
                .with_trust_bundle(Some(Arc::from(two_roots.as_str()))),
        );
        let changes = ChangeSet::between(&snapshot, &next);
        assert!(changes.trust_bundle_only(), "{file}: {changes:?}");
        let after = PushContext::after_trust_bundle_change(&context, next.clone());
        for proxy in &proxies {
            let last = context.compile(proxy);
            let expected = compile(&next, proxy);
            assert!(changes.reaches(proxy, &snapshot, &next) != proxy.metadata.is_proxyless());
            match after.secrets_update(proxy, &last, 1) {
                Some(updated) => {
                    updates += 1;
                    assert_eq!(updated, expected, "{file}: proxy {}", proxy.id);
                    for ty in ResourceType::ALL
                        .into_iter()
                        .filter(|t| *t != ResourceType::Secret)
                    {
                        assert_eq!(updated.get(ty), last.get(ty), "{file}: {ty:?}");
                    }
                    let secret = &updated.get(ResourceType::Secret)["ROOTCA"];
                    assert_ne!(Some(secret), last.get(ResourceType::Secret).get("ROOTCA"));
                }
                None => {
                    assert!(proxy.metadata.is_proxyless(), "{file}: proxy {}", proxy.id);
                    assert_eq!(after.compile(proxy), expected, "{file}: proxy {}", proxy.id);
                }
            }
        }
    }
    assert!(updates > 0, "the secrets-only path went unexercised");
}
