//! The custom resource watch against an API server (the loopback
//! kube-fixture) through the real kube-rs client: the first batch holds
//! every kind's objects, a kind whose CRD is missing holds nothing back,
//! and installing it later brings its objects in.

use std::path::Path;
use std::time::Duration;

use discovery::file::FileChange;
use discovery_kubernetes::ConfigWatch;
use kube_fixture::{ApiServer, ResourceType};
use serde_json::{Value, json};
use tokio::sync::mpsc;

/// Only guards against a hang.
const LIMIT: Duration = Duration::from_secs(30);

fn object(api_version: &str, kind: &str, name: &str, spec: Value) -> Value {
    json!({
        "apiVersion": api_version, "kind": kind,
        "metadata": {"name": name, "namespace": "shop"},
        "spec": spec,
    })
}

async fn next(rx: &mut mpsc::Receiver<Vec<FileChange>>) -> Vec<FileChange> {
    tokio::time::timeout(LIMIT, rx.recv())
        .await
        .expect("a batch before the limit")
        .expect("the watch runs")
}

fn paths(batch: &[FileChange]) -> Vec<String> {
    let mut paths: Vec<String> = batch
        .iter()
        .map(|c| c.path().display().to_string())
        .collect();
    paths.sort();
    paths
}

#[tokio::test]
async fn a_missing_crd_holds_nothing_back_and_is_read_once_installed() {
    let api = ApiServer::start().await.unwrap();
    api.remove_resource("networking.istio.io", "sidecars");
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.kubeconfig(&kubeconfig, "t").unwrap();
    api.apply(object(
        "networking.istio.io/v1",
        "VirtualService",
        "reviews",
        json!({"hosts": ["reviews"]}),
    ))
    .unwrap();
    api.apply(object(
        "security.istio.io/v1",
        "AuthorizationPolicy",
        "deny",
        json!({"action": "DENY"}),
    ))
    .unwrap();

    let client = discovery_kubernetes::client(Some(Path::new(&kubeconfig)))
        .await
        .unwrap();
    let (tx, mut rx) = mpsc::channel(8);
    let _watch = ConfigWatch::start(client, tx);
    let first = next(&mut rx).await;
    assert_eq!(
        paths(&first),
        [
            "/apis/networking.istio.io/v1/namespaces/shop/virtualservices/reviews",
            "/apis/security.istio.io/v1/namespaces/shop/authorizationpolicies/deny",
        ]
    );

    // The CRD arrives: the watcher's retry lists it.
    api.add_resource(ResourceType::new(
        "networking.istio.io",
        &["v1", "v1beta1", "v1alpha3"],
        "Sidecar",
        "sidecars",
        true,
    ));
    api.apply(object(
        "networking.istio.io/v1",
        "Sidecar",
        "default",
        json!({"egress": [{"hosts": ["./*"]}]}),
    ))
    .unwrap();
    let installed = next(&mut rx).await;
    assert_eq!(
        paths(&installed),
        ["/apis/networking.istio.io/v1/namespaces/shop/sidecars/default"]
    );

    api.delete(
        "networking.istio.io/v1",
        "VirtualService",
        "shop",
        "reviews",
    )
    .unwrap();
    let removed = next(&mut rx).await;
    assert!(matches!(&removed[..], [FileChange::Remove { path }]
        if path.ends_with("virtualservices/reviews")));
}
