//! Small meshes for the traffic API tests: a config directory written from
//! YAML, a control plane, and an echo application with its sidecar per
//! workload, all converged before the test sends anything.

use crate::harness::Mesh;
use crate::workload_entry;

/// One workload of a test mesh: its name, the last byte of its address in the
/// test's subnet, and its labels.
#[derive(Clone, Copy, Debug)]
pub struct Workload<'a> {
    pub name: &'a str,
    pub host: u8,
    pub labels: &'a [(&'a str, &'a str)],
}

impl<'a> Workload<'a> {
    pub const fn new(name: &'a str, host: u8, labels: &'a [(&'a str, &'a str)]) -> Self {
        Workload { name, host, labels }
    }
}

/// A Kubernetes Service named `name` selecting `app: NAME`, with one HTTP
/// port per number.
pub fn service(name: &str, ports: &[u16]) -> String {
    let ports: Vec<String> = ports
        .iter()
        .map(|p| format!("  - {{name: http-{p}, port: {p}}}\n"))
        .collect();
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: {name}}}\n  ports:\n{}",
        ports.concat()
    )
}

/// Writes `policy` (any YAML stream) and a WorkloadEntry per workload, starts
/// the control plane and every workload, and waits until every sidecar has
/// ACKed its config.
pub async fn start_mesh(subnet: u8, policy: &str, workloads: &[Workload<'_>]) -> Mesh {
    start_prepared(Mesh::new(subnet), policy, workloads).await
}

/// [`start_mesh`] on a mesh set up beforehand (identities, the control
/// plane's host). With identities, each WorkloadEntry names the service
/// account its agent gets a certificate for (the workload's name), so
/// clients verify the identity the server really has.
pub async fn start_prepared(mut mesh: Mesh, policy: &str, workloads: &[Workload<'_>]) -> Mesh {
    let entries: Vec<String> = workloads
        .iter()
        .map(|w| {
            let entry = workload_entry(w.name, mesh.address(w.host), w.labels);
            if mesh.has_identities() {
                format!("{entry}  serviceAccount: {}\n", w.name)
            } else {
                entry
            }
        })
        .collect();
    mesh.write("workloads.yaml", &entries.join("---\n"));
    mesh.write("policy.yaml", policy);
    mesh.start_control_plane().await;
    for w in workloads {
        mesh.start_workload(w.name, w.host, w.labels, "sotw").await;
    }
    let names: Vec<&str> = workloads.iter().map(|w| w.name).collect();
    mesh.wait_converged(&names).await;
    assert_no_errors(&mesh).await;
    mesh
}

/// The config of every test is valid: an error would mean an object was
/// rejected and the test would exercise the previous (here: no) version.
async fn assert_no_errors(mesh: &Mesh) {
    let diagnostics = mesh.admin_json("/api/v1/diagnostics").await;
    let errors: Vec<String> = diagnostics
        .as_array()
        .into_iter()
        .flatten()
        .filter(|d| d["severity"] == "error")
        .map(|d| {
            d["text"]
                .as_str()
                .map_or_else(|| d.to_string(), str::to_string)
        })
        .collect();
    assert!(
        errors.is_empty(),
        "the test's config was rejected: {errors:#?}"
    );
}
