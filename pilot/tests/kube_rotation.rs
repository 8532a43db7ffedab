//! A root rotation across two `bowline serve` replicas on one cluster (the
//! loopback kube-fixture, through Bowline's real kube-rs client): begun in
//! the replica that does not lead, it reaches the other through the shared
//! Secret; the leader moves it on once both report the new bundle served
//! (no proxies are connected), and then both sign with the new root.

mod common;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use kube_fixture::ApiServer;
use serde_json::Value;
use tokio::process::Command;

const BOWLINE: &str = env!("CARGO_BIN_EXE_bowline");
/// Only guards against a hang.
const LIMIT: Duration = Duration::from_secs(30);

/// `/api/v1/ca` of the replica on `host`.
async fn ca_status(host: &str) -> Value {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{host}:15014/api/v1/ca");
    match http.get(&url).send().await {
        Ok(r) if r.status().is_success() => r.json().await.unwrap_or_default(),
        _ => Value::Null,
    }
}

/// Waits until `check` holds for the CA status of every replica on `hosts`.
async fn wait_all(what: &str, hosts: &[&str], dir: &Path, check: impl Fn(&Value) -> bool) {
    let start = Instant::now();
    loop {
        let mut all = true;
        let mut seen = Vec::new();
        for host in hosts {
            let status = ca_status(host).await;
            all &= check(&status);
            seen.push(status);
        }
        if all {
            return;
        }
        assert!(
            start.elapsed() < LIMIT,
            "gave up waiting for {what}: {seen:#?}\nreplica-a:\n{}\nreplica-b:\n{}",
            std::fs::read_to_string(dir.join("replica-a.log")).unwrap_or_default(),
            std::fs::read_to_string(dir.join("replica-b.log")).unwrap_or_default(),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_begun_on_one_replica_moves_both_on_together() {
    let api = ApiServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.kubeconfig(&kubeconfig, "control-plane").unwrap();
    api.add_service_account_token("reviews-token", "shop", "reviews", &["istio-ca"]);
    let (host_a, host_b) = ("127.0.97.250", "127.0.97.251");

    let _a = common::replica("replica-a", host_a, &kubeconfig, dir.path());
    let first = common::trust_bundle(host_a, Some(&dir.path().join("replica-a.log"))).await;
    let _b = common::replica("replica-b", host_b, &kubeconfig, dir.path());
    common::trust_bundle(host_b, Some(&dir.path().join("replica-b.log"))).await;
    // A started first, so it leads: the rotation begins on the other.
    let holder = || {
        api.get(
            "coordination.k8s.io/v1",
            "Lease",
            "istio-system",
            "bowline-leader",
        )
        .and_then(|l| l["spec"]["holderIdentity"].as_str().map(str::to_string))
    };
    let start = Instant::now();
    while holder().as_deref() != Some("replica-a") {
        assert!(start.elapsed() < LIMIT, "replica-a never led");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // A certificate of the old root from the replica that does not lead:
    // the old root must stay trusted until it expires, though the leader
    // did not sign it.
    let asked = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    common::sign(host_b, &first, "reviews-token", None)
        .await
        .unwrap();
    // It lives the default 24 hours, to a second.
    let expires = asked + 24 * 3600 - 1;
    let start = Instant::now();
    while api
        .get("v1", "Secret", "istio-system", "bowline-ca")
        .is_none_or(|s| s["data"]["root-signed-until"].is_null())
    {
        assert!(start.elapsed() < LIMIT, "the mark never reached the Secret");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let out = Command::new(BOWLINE)
        .args(["ca", "rotate-root", "--state-dir"])
        .arg(dir.path().join("replica-b"))
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "bowline ca rotate-root: {out:?}");

    // Both trust both roots, then both sign with the new one: the leader
    // moved the rotation on, and the other followed.
    let hosts = [host_a, host_b];
    wait_all(
        "both replicas to sign with the new root",
        &hosts,
        dir.path(),
        |s| {
            s["rotation"]["step"] == "reissuing"
                && s["rotation"]["bundle"]
                    .as_array()
                    .is_some_and(|b| b.len() == 2)
        },
    )
    .await;
    assert_eq!(ca_status(host_a).await["rotation"]["moved_on_here"], true);
    assert_eq!(ca_status(host_b).await["rotation"]["moved_on_here"], false);
    let signing = ca_status(host_a).await["rotation"]["signing"].clone();
    assert_eq!(ca_status(host_b).await["rotation"]["signing"], signing);
    assert_ne!(signing, "root");

    // The Secret holds the step every replica follows.
    let secret = api
        .get("v1", "Secret", "istio-system", "bowline-ca")
        .unwrap();
    let rotation = secret["data"]["rotation.json"]
        .as_str()
        .expect("rotation.json");
    let rotation: Value = serde_json::from_slice(
        &base64::Engine::decode(&base64::engine::general_purpose::STANDARD, rotation).unwrap(),
    )
    .unwrap();
    assert_eq!(rotation["step"], "reissuing");
    // The old root leaves only after the other replica's certificate.
    assert!(
        rotation["old_signed_until"].as_i64().unwrap() >= expires,
        "{rotation:#} before {expires}"
    );

    // A certificate from either replica verifies under the new root alone,
    // and, through the cross-signature, under the old one alone.
    let bundle = common::trust_bundle(host_b, None).await;
    let roots = citadel::pem::certificates("bundle", &bundle).unwrap();
    let old_roots = citadel::pem::certificates("first", &first).unwrap();
    let new_root: Vec<_> = roots
        .iter()
        .filter(|r| !old_roots.contains(r))
        .cloned()
        .collect();
    assert_eq!(new_root.len(), 1, "one new root");
    for host in hosts {
        let chain = common::sign(host, &bundle, "reviews-token", None)
            .await
            .unwrap();
        for trusted in [&new_root, &old_roots] {
            let id = citadel::verify::workload_chain(&chain, trusted, SystemTime::now()).unwrap();
            assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/reviews");
        }
    }
}
