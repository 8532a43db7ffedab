//! The ADS gRPC service, routed by hand so that its responses go through
//! [`AdsCodec`] (the shared encoded resources spliced into each frame)
//! rather than through the prost codec of the generated service.
//!
//! ```text
//! POST /envoy.service.discovery.v3.AggregatedDiscoveryService/
//!   ├─ StreamAggregatedResources ──► Grpc(AdsCodec<DiscoveryRequest, SotwResponse>)
//!   ├─ DeltaAggregatedResources ───► Grpc(AdsCodec<DeltaDiscoveryRequest, DeltaResponse>)
//!   └─ anything else ──────────────► UNIMPLEMENTED
//!                 both ──► AdsServer (one task per stream)
//! ```
//!
//! Request decoding, compression (none) and message size limits (4 MiB in,
//! unlimited out) are tonic's defaults, as in the generated service.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};

use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use tokio_stream::wrappers::ReceiverStream;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::{Grpc, NamedService};
use tonic::{Request, Status, Streaming};

use crate::xds::codec::AdsCodec;
use crate::xds::server::AdsServer;
use pilot_core::xds::connection::{DeltaResponse, SotwResponse};

/// The gRPC service name of ADS.
const SERVICE_NAME: &str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";

/// [`AdsServer`] as a tower service for tonic's router.
#[derive(Clone, Debug)]
pub struct AdsService {
    server: Arc<AdsServer>,
}

impl AdsService {
    pub fn new(server: AdsServer) -> Self {
        AdsService {
            server: Arc::new(server),
        }
    }
}

impl NamedService for AdsService {
    const NAME: &'static str = SERVICE_NAME;
}

impl Service<http::Request<Body>> for AdsService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        let server = self.server.clone();
        match req.uri().path() {
            SOTW_PATH => Box::pin(async move {
                let mut grpc = Grpc::new(AdsCodec::<DiscoveryRequest, SotwResponse>::default());
                Ok(grpc.streaming(SotwMethod(server), req).await)
            }),
            DELTA_PATH => Box::pin(async move {
                let mut grpc =
                    Grpc::new(AdsCodec::<DeltaDiscoveryRequest, DeltaResponse>::default());
                Ok(grpc.streaming(DeltaMethod(server), req).await)
            }),
            path => {
                let status = Status::unimplemented(format!("no method {path}"));
                Box::pin(ready(Ok(status.into_http())))
            }
        }
    }
}

/// `StreamAggregatedResources`: a state-of-the-world stream.
#[derive(Debug)]
struct SotwMethod(Arc<AdsServer>);

impl Service<Request<Streaming<DiscoveryRequest>>> for SotwMethod {
    type Response = tonic::Response<ReceiverStream<Result<SotwResponse, Status>>>;
    type Error = Status;
    type Future = Ready<Result<Self::Response, Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Streaming<DiscoveryRequest>>) -> Self::Future {
        let responses = self.0.stream_aggregated_resources(request.into_inner());
        ready(Ok(tonic::Response::new(responses)))
    }
}

/// `DeltaAggregatedResources`: an incremental stream.
#[derive(Debug)]
struct DeltaMethod(Arc<AdsServer>);

impl Service<Request<Streaming<DeltaDiscoveryRequest>>> for DeltaMethod {
    type Response = tonic::Response<ReceiverStream<Result<DeltaResponse, Status>>>;
    type Error = Status;
    type Future = Ready<Result<Self::Response, Status>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Status>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request<Streaming<DeltaDiscoveryRequest>>) -> Self::Future {
        let responses = self.0.delta_aggregated_resources(request.into_inner());
        ready(Ok(tonic::Response::new(responses)))
    }
}
