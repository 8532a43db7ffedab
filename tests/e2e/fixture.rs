//! Small meshes for the traffic API tests: a config directory written from
//! YAML, a control plane, and an echo application with its sidecar per
//! workload, all converged before the test sends anything.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

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

/// What the traffic saw.
#[derive(Default)]
pub struct Traffic {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    pub first_failure: std::sync::Mutex<Option<String>>,
    pub stop: AtomicBool,
}

/// Requests to `url` through the sidecar at `host`, one every 20 ms, until
/// `stop` is set; each counted as it ends.
pub fn keep_calling(
    mesh: &Mesh,
    host: u8,
    url: &'static str,
) -> (Arc<Traffic>, tokio::task::JoinHandle<()>) {
    let traffic = Arc::new(Traffic::default());
    let client = mesh.client(host);
    let seen = traffic.clone();
    let task = tokio::spawn(async move {
        let mut pace = tokio::time::interval(Duration::from_millis(20));
        while !seen.stop.load(Ordering::Relaxed) {
            pace.tick().await;
            let outcome = match client.get(url).send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("status {}", r.status())),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(()) => seen.ok.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    seen.first_failure.lock().unwrap().get_or_insert(e);
                    seen.failed.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
    });
    (traffic, task)
}

impl Traffic {
    /// Waits until `n` more requests have succeeded than so far, or one
    /// fails (the limit only guards against a hang).
    pub async fn more_ok(&self, n: u64, what: &str) {
        let target = self.ok.load(Ordering::Relaxed) + n;
        let limit = Instant::now() + Duration::from_secs(60);
        while self.ok.load(Ordering::Relaxed) < target && self.failed.load(Ordering::Relaxed) == 0 {
            assert!(Instant::now() < limit, "traffic stalled: {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the traffic and checks that no request failed; how many succeeded.
    pub async fn stop_and_check(&self, task: tokio::task::JoinHandle<()>, what: &str) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        task.await.unwrap();
        let (ok, failed) = (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        );
        assert_eq!(
            failed,
            0,
            "{what}: {failed} of {} requests failed; first: {:?}",
            ok + failed,
            self.first_failure.lock().unwrap()
        );
        ok
    }
}
