//! `bowline explain` checked against what a real Envoy does with the same
//! request: the client's sidecar sends a request with the canary header to
//! v2 and one without to v1, and explain says the same clusters.

use std::time::Duration;

use crate::harness::{count_versions, wait_for};
use crate::reviews_mesh;

const SUBNET: u8 = 136;

const CANARY: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {x-canary: {exact: \"yes\"}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
";

/// The clusters `bowline explain` says the request goes to.
async fn explained(mesh: &crate::harness::Mesh, headers: &[&str]) -> Vec<String> {
    let mut command = tokio::process::Command::new(crate::harness::BOWLINE);
    command
        .args([
            "explain",
            "--from",
            "client",
            "http://reviews:9080/",
            "-o",
            "json",
        ])
        .arg("--config-dir")
        .arg(mesh.config_dir());
    for h in headers {
        command.args(["-H", h]);
    }
    let out = command.output().await.unwrap();
    assert!(out.status.success(), "{out:?}");
    let steps: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    steps
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["step"] == "cluster")
        .map(|s| s["detail"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_says_what_envoy_does_with_the_request() {
    let mesh = reviews_mesh(SUBNET, (100, 0), ["sotw", "sotw", "sotw"]).await;
    mesh.write("reviews-vs.yaml", CANARY);
    let client = mesh.client(1);
    // Envoy: the canary header reaches v2, once the change is in.
    wait_for(
        "the canary rule to reach the client's sidecar",
        Duration::from_secs(30),
        || {
            let client = client.clone();
            async move {
                client
                    .get("http://reviews:9080/")
                    .header("x-canary", "yes")
                    .send()
                    .await
                    .ok()
                    .and_then(|r| r.headers().get("x-bowline-workload").cloned())
                    .is_some_and(|w| w == "reviews-v2")
            }
        },
    )
    .await;
    let without = count_versions(&client, "http://reviews:9080/", 10).await;
    assert_eq!(without.get("v1"), Some(&10), "{without:?}");

    // explain, from the same config: the same clusters.
    assert_eq!(
        explained(&mesh, &["x-canary: yes"]).await,
        ["outbound|9080|v2|reviews.default.svc.cluster.local"]
    );
    assert_eq!(
        explained(&mesh, &[]).await,
        ["outbound|9080|v1|reviews.default.svc.cluster.local"]
    );
}
