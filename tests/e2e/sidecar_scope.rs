//! Sidecar scoping on real Envoy: a Sidecar that selects one workload hides
//! a service from it, so its sidecar answers requests for that host as it
//! answers a host that never existed, while another workload still reaches
//! the service; removing the Sidecar gives the service back.

use std::time::Duration;

use crate::fixture::{Workload, service, start_mesh};
use crate::harness::{Mesh, wait_for, wait_for_version};

const SIDECAR: &str = r#"apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: scoped}
spec:
  workloadSelector:
    labels: {app: scoped}
  egress:
  - hosts: [./reviews.default.svc.cluster.local]
"#;

/// Status and body of a GET through the sidecar at `.host`.
async fn answer(mesh: &Mesh, host: u8, url: &str) -> (u16, String) {
    let response = mesh.client(host).get(url).send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_scope_hides_a_service_from_one_workload() {
    let policy = format!(
        "{}---\n{}---\n{}---\n{}---\n{SIDECAR}",
        service("scoped", &[8000]),
        service("free", &[8000]),
        service("reviews", &[9080]),
        service("ratings", &[9081]),
    );
    let mesh = start_mesh(
        62,
        &policy,
        &[
            Workload::new("scoped", 1, &[("app", "scoped")]),
            Workload::new("free", 2, &[("app", "free")]),
            Workload::new("reviews", 3, &[("app", "reviews")]),
            Workload::new("ratings", 4, &[("app", "ratings")]),
        ],
    )
    .await;

    // The scoped workload reaches what its Sidecar imports...
    let scoped = mesh.client(1);
    let reviews: serde_json::Value = scoped
        .get("http://reviews:9080/")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reviews["workload"], "reviews");
    // ...and is not even told about ratings: no cluster, and a request for
    // it is answered as one for a host no config ever named.
    let clusters = mesh.envoy_admin(1, "/clusters").await;
    assert!(
        clusters.contains("reviews.default.svc.cluster.local"),
        "{clusters}"
    );
    assert!(!clusters.contains("ratings"), "{clusters}");
    let hidden = answer(&mesh, 1, "http://ratings:9081/").await;
    let unknown = answer(&mesh, 1, "http://never-existed.example:9081/").await;
    assert_eq!(hidden, unknown);
    assert_eq!(hidden.0, 404, "no virtual host matches: {hidden:?}");

    // Another workload of the same namespace is not selected and still
    // reaches ratings.
    let free = mesh.client(2);
    wait_for_version(&free, "http://ratings:9081/", "v1").await;
    let body: serde_json::Value = free
        .get("http://ratings:9081/")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["workload"], "ratings");

    // Without the Sidecar the scoped workload sees the whole mesh again.
    mesh.write("policy.yaml", &policy.replace(SIDECAR, ""));
    wait_for(
        "the scoped workload to reach ratings",
        Duration::from_secs(30),
        || async { answer(&mesh, 1, "http://ratings:9081/").await.0 == 200 },
    )
    .await;
    mesh.wait_converged(&["scoped", "free", "reviews", "ratings"])
        .await;
    assert!(mesh.envoy_admin(1, "/clusters").await.contains("ratings"));
}
