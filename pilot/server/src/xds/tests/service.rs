//! The hand-routed ADS service: its name, and UNIMPLEMENTED for methods it
//! does not have. The two streaming methods are exercised over loopback by
//! the `server` tests and by the end-to-end suite against Envoy.

use std::sync::Arc;

use tokio::sync::watch;
use tonic::body::Body;
use tonic::codegen::{Service, http};
use tonic::server::NamedService;

use crate::xds::server::AdsServer;
use crate::xds::service::AdsService;
use crate::xds::status::StatusRegistry;
use pilot_core::snapshot::Snapshot;

#[test]
fn the_service_is_named_as_envoy_calls_it() {
    assert_eq!(
        AdsService::NAME,
        "envoy.service.discovery.v3.AggregatedDiscoveryService"
    );
}

#[tokio::test]
async fn other_methods_answer_unimplemented() {
    let (_snapshots, rx) = watch::channel(Arc::new(Snapshot::default()));
    let mut service = AdsServer::new(rx, Arc::new(StatusRegistry::new())).into_service();
    for path in [
        "/envoy.service.discovery.v3.AggregatedDiscoveryService/FetchAggregatedResources",
        "/envoy.service.discovery.v3.AggregatedDiscoveryService/",
    ] {
        let request = http::Request::post(path)
            .header("content-type", "application/grpc")
            .body(Body::empty())
            .unwrap();
        let response = service.call(request).await.unwrap();
        let status = tonic::Status::from_header_map(response.headers())
            .unwrap_or_else(|| panic!("{path}: no grpc-status"));
        assert_eq!(status.code(), tonic::Code::Unimplemented, "{path}");
        assert!(
            status.message().contains(path),
            "{path}: {}",
            status.message()
        );
    }
}
