//! Two `bowline serve` replicas on one cluster (the loopback kube-fixture,
//! through Bowline's real kube-rs client): they share the CA's state
//! through one Secret, so certificates from either verify under the one
//! root; one holds the Lease, and when it stops the other takes over.

mod common;

use std::time::{Duration, Instant, SystemTime};

use kube_fixture::ApiServer;

/// Only guards against a hang.
const LIMIT: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_share_one_root_and_one_leader_at_a_time() {
    let api = ApiServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.kubeconfig(&kubeconfig, "control-plane").unwrap();
    api.add_service_account_token("reviews-token", "shop", "reviews", &["istio-ca"]);
    let (host_a, host_b) = ("127.0.96.250", "127.0.96.251");

    let mut a = common::replica("replica-a", host_a, &kubeconfig, dir.path());
    let bundle_a = common::trust_bundle(host_a, Some(&dir.path().join("replica-a.log"))).await;
    let b = common::replica("replica-b", host_b, &kubeconfig, dir.path());
    let bundle_b = common::trust_bundle(host_b, Some(&dir.path().join("replica-b.log"))).await;
    assert_eq!(bundle_a, bundle_b, "one root");
    let token = |name: &str| std::fs::read(dir.path().join(name).join("admin-token")).unwrap();
    assert_eq!(token("replica-a"), token("replica-b"), "one admin token");
    // Kept in the Secret, never shown in a replica's log.
    let shown = String::from_utf8(token("replica-a")).unwrap();
    for log in ["replica-a.log", "replica-b.log"] {
        let log = std::fs::read_to_string(dir.path().join(log)).unwrap();
        assert!(!log.contains(shown.trim()), "the admin token in {log}");
    }

    let roots = citadel::pem::certificates("bundle", &bundle_a).unwrap();
    for host in [host_a, host_b] {
        let chain = common::sign(host, &bundle_b, "reviews-token", None)
            .await
            .unwrap();
        let id = citadel::verify::workload_chain(&chain, &roots, SystemTime::now()).unwrap();
        assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/reviews");
    }

    let holder = || {
        api.get(
            "coordination.k8s.io/v1",
            "Lease",
            "istio-system",
            "bowline-leader",
        )
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    };
    let wait_holder = |name: &'static str| async move {
        let start = Instant::now();
        while holder().as_deref() != Some(name) {
            assert!(
                start.elapsed() < LIMIT,
                "gave up waiting for {name} to lead"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    // A started first and took the Lease; B follows while A renews.
    wait_holder("replica-a").await;
    a.kill().await.unwrap();
    wait_holder("replica-b").await;
    drop(b);
}
