//! Replicas found from the control plane's Service's endpoints (the
//! loopback kube-fixture, through Bowline's real kube-rs client): each
//! replica serves its own proxies, and `bowline proxy-status --kubernetes`
//! and `GET /api/v1/replicas/proxies` of either replica show them all.

mod common;

use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::google::protobuf::{Struct, Value as ProtoValue, value::Kind};
use kube_fixture::ApiServer;
use serde_json::{Value, json};

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

fn node(workload: &str, address: &str) -> Node {
    let string = |s: &str| ProtoValue {
        kind: Some(Kind::StringValue(s.to_string())),
    };
    Node {
        id: format!("sidecar~{address}~{workload}.shop~shop.svc.cluster.local"),
        metadata: Some(Struct {
            fields: [
                ("namespace", string("shop")),
                ("workload", string(workload)),
                ("address", string(address)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        }),
        ..Default::default()
    }
}

/// A plaintext ADS stream to `xds` as `node`, kept open while the returned
/// sender lives.
async fn connect(
    xds: &str,
    node: Node,
) -> (
    tokio::sync::mpsc::Sender<DiscoveryRequest>,
    tonic::Streaming<envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse>,
) {
    let start = Instant::now();
    let channel = loop {
        match tonic::transport::Endpoint::from_shared(format!("http://{xds}"))
            .unwrap()
            .connect()
            .await
        {
            Ok(channel) => break channel,
            Err(error) => {
                assert!(start.elapsed() < common::LIMIT, "xDS at {xds}: {error}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: Some(node),
        type_url: CDS.to_string(),
        ..Default::default()
    })
    .await
    .unwrap();
    let responses = AggregatedDiscoveryServiceClient::new(channel)
        .stream_aggregated_resources(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    (tx, responses)
}

async fn get(url: &str) -> Value {
    reqwest::Client::builder()
        .no_proxy()
        .build()
        .unwrap()
        .get(url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Waits until the admin API on `host` lists the proxy of `workload`.
async fn wait_connected(host: &str, workload: &str) {
    let url = format!("http://{host}:15014/api/v1/proxies");
    let start = Instant::now();
    loop {
        let proxies = get(&url).await;
        if proxies
            .as_array()
            .is_some_and(|list| list.iter().any(|p| p["workload"] == workload))
        {
            return;
        }
        assert!(
            start.elapsed() < common::LIMIT,
            "{workload} never connected to {host}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn workloads_by_server(proxies: &Value) -> Vec<(String, String)> {
    let mut seen: Vec<(String, String)> = proxies
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["workload"].as_str().unwrap().to_string(),
                p["server"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    seen.sort();
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_replica_is_found_from_the_service_and_their_proxies_merged() {
    let api = ApiServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.kubeconfig(&kubeconfig, "control-plane").unwrap();
    let (host_a, host_b) = ("127.0.98.250", "127.0.98.251");
    let xds_a = format!("{host_a}:15010");
    let xds_b = format!("{host_b}:15010");
    let _a = common::replica_with(
        "replica-a",
        host_a,
        &kubeconfig,
        dir.path(),
        &["--xds-addr", &xds_a],
    );
    let _b = common::replica_with(
        "replica-b",
        host_b,
        &kubeconfig,
        dir.path(),
        &["--xds-addr", &xds_b],
    );
    common::trust_bundle(host_a, Some(&dir.path().join("replica-a.log"))).await;
    common::trust_bundle(host_b, Some(&dir.path().join("replica-b.log"))).await;
    let _web = connect(&xds_a, node("web", "127.0.98.1")).await;
    let _ratings = connect(&xds_b, node("ratings", "127.0.98.2")).await;
    wait_connected(host_a, "web").await;
    wait_connected(host_b, "ratings").await;

    // The Service's endpoints: both replicas ready, a third one not yet.
    api.apply(json!({
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {
            "name": "istiod-x1",
            "namespace": "istio-system",
            "labels": {"kubernetes.io/service-name": "istiod"},
        },
        "addressType": "IPv4",
        "ports": [
            {"name": "grpc-xds", "port": 15010, "protocol": "TCP"},
            {"name": "http-admin", "port": 15014, "protocol": "TCP"},
        ],
        "endpoints": [
            {"addresses": [host_a], "conditions": {"ready": true}},
            {"addresses": [host_b], "conditions": {"ready": true}},
            {"addresses": ["127.0.98.252"], "conditions": {"ready": false}},
        ],
    }))
    .unwrap();

    // proxy-status asks every replica the Service lists.
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_bowline"))
        .args(["proxy-status", "--kubernetes", "--kubeconfig"])
        .arg(&kubeconfig)
        .args(["-o", "json"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let merged: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        workloads_by_server(&merged),
        [
            ("ratings".to_string(), format!("http://{host_b}:15014")),
            ("web".to_string(), format!("http://{host_a}:15014")),
        ],
        "{merged:#}"
    );
    let table = tokio::process::Command::new(env!("CARGO_BIN_EXE_bowline"))
        .args(["proxy-status", "--kubeconfig"])
        .arg(&kubeconfig)
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("web.shop") && text.contains("ratings.shop"),
        "{text}"
    );
    // A Service that is not there is an error, with exit code 1.
    let missing = tokio::process::Command::new(env!("CARGO_BIN_EXE_bowline"))
        .args(["proxy-status", "--kubeconfig"])
        .arg(&kubeconfig)
        .args(["--control-plane", "istio-system/nowhere"])
        .output()
        .await
        .unwrap();
    assert_eq!(missing.status.code(), Some(1), "{missing:?}");
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("istio-system/nowhere"),
        "{missing:?}"
    );

    // Either replica answers for all of them, itself without a request.
    for (host, other) in [(host_a, host_b), (host_b, host_a)] {
        let all = get(&format!("http://{host}:15014/api/v1/replicas/proxies")).await;
        assert_eq!(
            workloads_by_server(&all["proxies"]),
            [
                ("ratings".to_string(), format!("http://{host_b}:15014")),
                ("web".to_string(), format!("http://{host_a}:15014")),
            ],
            "{all:#}"
        );
        let servers = all["servers"].as_array().unwrap();
        assert_eq!(servers.len(), 2, "{all:#}");
        assert_eq!(servers[0]["self"], true, "{all:#}");
        assert_eq!(
            servers[1]["server"],
            format!("http://{other}:15014"),
            "{all:#}"
        );
        assert_eq!(servers[1]["proxies"], 1, "{all:#}");
    }
}
