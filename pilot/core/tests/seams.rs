//! The seams between pilot's crates, checked on the resolved dependency
//! graph (`cargo metadata`), so that they hold by the build and not by
//! habit:
//!
//! - `pilot-core` (compiler, snapshot, xDS state machine) and `pilot-node`
//!   (the node contract) link no runtime: no tokio, tonic, hyper, axum, nix,
//!   clap or anyhow;
//! - `pilot-agent` links neither the compiler nor the server, nor clap or
//!   anyhow, nor tonic: its SDS service and CA client are `pilot-sds`, which
//!   links no compiler, server or command line either;
//! - `pilot-server` links no clap or anyhow: the command line is the
//!   binary's;
//! - `discovery` (the registry model and the file store, which `pilot-core`
//!   links) links no runtime and no source: no notify, no kube. A source
//!   that watches or talks to a cluster is a crate of its own beside it
//!   (`discovery/file`, `discovery/kubernetes`), and only
//!   `discovery-kubernetes` links kube: the compiler never sees a
//!   Kubernetes type, only the registry model it is translated into;
//! - `citadel` (the CA, its tokens and rate limit) links no runtime and no
//!   Kubernetes client: its gRPC service is `citadel-server`, which links no
//!   command line.
//!
//! One crate's edges are a known exception, named here so that nothing
//! else can hide behind them: `envoy-types` links tonic for the gRPC service
//! stubs it generates beside the messages (the messages are all we use).
//! Procedural macros run at build time and link nothing, so the graph is not
//! followed through them.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::Path;
use std::process::Command;

use serde_json::Value;

const RUNTIME: &[&str] = &["tokio", "tonic", "hyper", "axum", "nix"];
const COMMAND_LINE: &[&str] = &["clap", "anyhow"];
/// What a discovery source reads or watches with.
const SOURCES: &[&str] = &["notify", "kube", "kube-client", "kube-runtime"];
/// The Kubernetes client and its object types.
const KUBERNETES: &[&str] = &[
    "kube",
    "kube-client",
    "kube-runtime",
    "kube-core",
    "k8s-openapi",
];

/// (from, to): edges the walk does not follow; see the module header.
const KNOWN: &[(&str, &str)] = &[("envoy-types", "tonic"), ("envoy-types", "tonic-prost")];

/// The workspace's resolved graph: package name -> normal (non-dev,
/// non-build) dependencies, and the packages that are procedural macros.
struct Graph {
    deps: BTreeMap<String, BTreeSet<String>>,
    proc_macros: BTreeSet<String>,
    /// Package name -> the names its own manifest lists as normal dependencies.
    declared: BTreeMap<String, BTreeSet<String>>,
}

fn graph() -> Graph {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    // The graph this machine builds: dependencies of other platforms are
    // not needed, and may not be downloaded.
    let version = Command::new(&cargo)
        .arg("-vV")
        .output()
        .expect("cargo -vV runs");
    let version = String::from_utf8_lossy(&version.stdout);
    let host = version
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("cargo -vV names the host");
    let out = Command::new(&cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", host, "--manifest-path"])
        .arg(&manifest)
        .output()
        .expect("cargo metadata runs");
    assert!(
        out.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata is JSON");

    let mut names = BTreeMap::new();
    let mut proc_macros = BTreeSet::new();
    let mut declared = BTreeMap::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let name = package["name"]
            .as_str()
            .expect("a package name")
            .to_string();
        names.insert(
            package["id"].as_str().expect("an id").to_string(),
            name.clone(),
        );
        let is_proc_macro = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|t| {
                t["kind"]
                    .as_array()
                    .is_some_and(|k| k.iter().any(|k| k == "proc-macro"))
            });
        if is_proc_macro {
            proc_macros.insert(name.clone());
        }
        let normal: BTreeSet<String> = package["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["kind"].is_null())
            .filter_map(|d| d["name"].as_str().map(str::to_string))
            .collect();
        declared.insert(name, normal);
    }

    let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for node in metadata["resolve"]["nodes"]
        .as_array()
        .expect("a resolve graph")
    {
        let from = &names[node["id"].as_str().expect("an id")];
        for dep in node["deps"].as_array().into_iter().flatten() {
            let normal = dep["dep_kinds"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|k| k["kind"].is_null());
            if normal {
                let to = &names[dep["pkg"].as_str().expect("a package id")];
                deps.entry(from.clone()).or_default().insert(to.clone());
            }
        }
    }
    Graph {
        deps,
        proc_macros,
        declared,
    }
}

impl Graph {
    /// Every package `root` links, each with the path that reaches it.
    fn linked(&self, root: &str) -> BTreeMap<String, Vec<String>> {
        let mut seen = BTreeMap::from([(root.to_string(), vec![root.to_string()])]);
        let mut queue = VecDeque::from([root.to_string()]);
        while let Some(from) = queue.pop_front() {
            for to in self.deps.get(&from).into_iter().flatten() {
                if self.proc_macros.contains(to)
                    || KNOWN.contains(&(from.as_str(), to.as_str()))
                    || seen.contains_key(to)
                {
                    continue;
                }
                let mut path = seen[&from].clone();
                path.push(to.clone());
                seen.insert(to.clone(), path);
                queue.push_back(to.clone());
            }
        }
        seen
    }

    /// What `root` links or declares of `forbidden`, one line each.
    fn violations(&self, root: &str, forbidden: &[&str]) -> Vec<String> {
        assert!(self.deps.contains_key(root), "{root} is in the workspace");
        let mut found = Vec::new();
        for name in self.declared.get(root).into_iter().flatten() {
            if forbidden.contains(&name.as_str()) {
                found.push(format!("{root}/Cargo.toml names {name}"));
            }
        }
        for (name, path) in self.linked(root) {
            if forbidden.contains(&name.as_str()) {
                found.push(format!("{root} links {name}: {}", path.join(" -> ")));
            }
        }
        found
    }
}

fn check(graph: &Graph, root: &str, forbidden: &[&[&str]]) {
    let forbidden: Vec<&str> = forbidden.iter().flat_map(|f| f.iter().copied()).collect();
    let found = graph.violations(root, &forbidden);
    assert!(
        found.is_empty(),
        "{root} crosses a seam:\n{}",
        found.join("\n")
    );
}

#[test]
fn core_and_the_node_contract_link_no_runtime_and_no_command_line() {
    let graph = graph();
    check(
        &graph,
        "pilot-core",
        &[RUNTIME, COMMAND_LINE, &["pilot-server", "pilot-agent"]],
    );
    check(
        &graph,
        "pilot-node",
        &[
            RUNTIME,
            COMMAND_LINE,
            &["pilot-core", "pilot-server", "pilot-agent"],
        ],
    );
}

#[test]
fn the_agent_needs_the_node_contract_but_not_the_compiler() {
    let graph = graph();
    check(
        &graph,
        "pilot-agent",
        &[
            COMMAND_LINE,
            &["pilot-core", "pilot-server", "tonic", "axum"],
        ],
    );
    assert!(
        graph.linked("pilot-agent").contains_key("pilot-node"),
        "the agent writes the node contract"
    );
}

#[test]
fn the_agents_sds_service_needs_neither_the_compiler_nor_the_server() {
    let graph = graph();
    check(
        &graph,
        "pilot-sds",
        &[COMMAND_LINE, &["pilot-core", "pilot-server"]],
    );
    assert!(
        graph.linked("pilot-sds").contains_key("pilot-agent"),
        "the SDS service serves the agent's secrets"
    );
}

#[test]
fn the_server_leaves_the_command_line_to_the_binary() {
    let graph = graph();
    check(&graph, "pilot-server", &[COMMAND_LINE, &["pilot-agent"]]);
}

#[test]
fn the_discovery_model_links_no_runtime_and_no_source() {
    let graph = graph();
    check(&graph, "discovery", &[RUNTIME, COMMAND_LINE, SOURCES]);
}

#[test]
fn only_the_kubernetes_source_links_kube() {
    let graph = graph();
    check(&graph, "discovery", &[KUBERNETES]);
    check(&graph, "discovery-file", &[KUBERNETES]);
    check(
        &graph,
        "pilot-core",
        &[KUBERNETES, &["discovery-file", "discovery-kubernetes"]],
    );
    let linked = graph.linked("discovery-kubernetes");
    assert!(
        linked.contains_key("kube-runtime") && linked.contains_key("discovery"),
        "the Kubernetes source watches with kube-runtime and feeds the registry model"
    );
}

#[test]
fn the_ca_links_no_runtime_and_no_kubernetes() {
    let graph = graph();
    check(
        &graph,
        "citadel",
        &[
            RUNTIME,
            COMMAND_LINE,
            &["kube", "kube-client", "kube-runtime", "prost"],
        ],
    );
    check(&graph, "citadel-server", &[COMMAND_LINE, &["pilot-server"]]);
}

/// The check itself: a graph with a runtime behind an ordinary dependency,
/// or named in the manifest, is caught and the path is given.
#[test]
fn a_runtime_behind_any_other_edge_is_caught() {
    let edges = |list: &[(&str, &str)]| {
        let mut deps: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (from, to) in list {
            deps.entry(from.to_string())
                .or_default()
                .insert(to.to_string());
        }
        deps
    };
    let graph = Graph {
        deps: edges(&[
            ("pilot-core", "envoy-types"),
            ("pilot-core", "helper"),
            ("envoy-types", "tonic"),
            ("helper", "tokio"),
            ("pilot-core", "macros"),
            ("macros", "anyhow"),
        ]),
        proc_macros: BTreeSet::from(["macros".to_string()]),
        declared: BTreeMap::from([(
            "pilot-core".to_string(),
            BTreeSet::from(["tokio".to_string()]),
        )]),
    };
    assert_eq!(
        graph.violations("pilot-core", &["tokio", "tonic", "anyhow"]),
        [
            "pilot-core/Cargo.toml names tokio",
            "pilot-core links tokio: pilot-core -> helper -> tokio",
        ]
    );
}
