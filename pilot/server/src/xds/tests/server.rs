//! The ADS server over a real tonic channel on loopback.

use std::net::SocketAddr;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use tonic::transport::Channel;
use tonic::transport::server::TcpIncoming;

use super::{CDS, LDS};
use crate::xds::server::AdsServer;
use crate::xds::status::StatusRegistry;
use pilot_core::proxy::meta;
use pilot_core::snapshot::Snapshot;
use pilot_core::xds::connection::Mode;

struct Harness {
    client: AggregatedDiscoveryServiceClient<Channel>,
    status: Arc<StatusRegistry>,
    // Keeps the snapshot source open for the server's lifetime.
    _snapshots: watch::Sender<Arc<Snapshot>>,
}

async fn start() -> Harness {
    let (snapshots, rx) = watch::channel(Arc::new(Snapshot::default()));
    let status = Arc::new(StatusRegistry::new());
    let server = AdsServer::new(rx, status.clone());
    let incoming = TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
    let addr = incoming.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(server.into_service())
            .serve_with_incoming(incoming),
    );
    let client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    Harness {
        client,
        status,
        _snapshots: snapshots,
    }
}

fn node(address: &str) -> Node {
    super::node(address, "shop", "store")
}

#[tokio::test]
async fn sotw_stream_answers_the_first_request_and_records_status() {
    let mut h = start().await;
    let (tx, rx) = mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: Some(node("10.0.0.7")),
        type_url: CDS.to_string(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut responses = h
        .client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let r = responses.message().await.unwrap().unwrap();
    assert_eq!(r.type_url, CDS);
    assert!(!r.nonce.is_empty());

    // The status is published before the response is sent.
    let all = h.status.list();
    assert_eq!(all.len(), 1);
    let s = &all[0];
    assert_eq!(
        s.id,
        pilot_core::proxy::NodeMetadata::new("store", "shop", "10.0.0.7".parse().unwrap())
            .node_id()
    );
    assert_eq!(
        (s.namespace.as_str(), s.workload.as_str()),
        ("store", "shop")
    );
    assert_eq!(s.mode, Mode::Sotw);
    assert_eq!(
        s.xds[CDS].sent_version.as_deref(),
        Some(r.version_info.as_str())
    );
    drop(tx);
}

#[tokio::test]
async fn nack_over_the_wire_is_recorded_and_counted() {
    let mut h = start().await;
    let (tx, rx) = mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: Some(node("10.0.0.9")),
        type_url: CDS.to_string(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut responses = h
        .client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let r = responses.message().await.unwrap().unwrap();
    tx.send(DiscoveryRequest {
        type_url: CDS.to_string(),
        response_nonce: r.nonce.clone(),
        error_detail: Some(RpcStatus {
            code: 3,
            message: "bad cluster".to_string(),
            details: Vec::new(),
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    // Requests are handled in order: once LDS is answered, the NACK was seen.
    tx.send(DiscoveryRequest {
        type_url: LDS.to_string(),
        ..Default::default()
    })
    .await
    .unwrap();
    let l = responses.message().await.unwrap().unwrap();
    assert_eq!(l.type_url, LDS);

    let s = h.status.list().remove(0);
    let nack = s.xds[CDS].nack.clone().unwrap();
    assert_eq!(nack.message, "bad cluster");
    assert_eq!(nack.version, r.version_info);
    assert_eq!(s.nacks, 1);
    assert_eq!(h.status.nacks_total(), 1);
    drop(tx);
}

#[tokio::test]
async fn delta_stream_answers_the_first_request() {
    let mut h = start().await;
    let (tx, rx) = mpsc::channel(4);
    tx.send(DeltaDiscoveryRequest {
        node: Some(node("10.0.0.8")),
        type_url: LDS.to_string(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut responses = h
        .client
        .delta_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let r = responses.message().await.unwrap().unwrap();
    assert_eq!(r.type_url, LDS);
    assert!(!r.nonce.is_empty());
    let s = h.status.list().remove(0);
    assert_eq!(s.mode, Mode::Delta);
    drop(tx);
}

#[tokio::test]
async fn first_request_without_a_node_is_rejected() {
    let mut h = start().await;
    let first = DiscoveryRequest {
        type_url: CDS.to_string(),
        ..Default::default()
    };
    let mut responses = h
        .client
        .stream_aggregated_resources(tokio_stream::iter([first]))
        .await
        .unwrap()
        .into_inner();
    let error = responses.message().await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(error.message().contains("no node"), "{}", error.message());
    assert!(h.status.is_empty());
}

#[tokio::test]
async fn node_with_bad_metadata_is_rejected_naming_the_key() {
    let mut h = start().await;
    let first = DeltaDiscoveryRequest {
        node: Some(node("not-an-ip")),
        type_url: CDS.to_string(),
        ..Default::default()
    };
    let mut responses = h
        .client
        .delta_aggregated_resources(tokio_stream::iter([first]))
        .await
        .unwrap()
        .into_inner();
    let error = responses.message().await.unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert!(
        error.message().contains(meta::ADDRESS),
        "{}",
        error.message()
    );
}
