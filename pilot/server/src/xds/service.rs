//! The ADS gRPC service, routed by hand so that its responses go out as
//! [`ResponseBody`] (the shared encoded resources written in chunks, the
//! large ones by reference) rather than through the prost codec of the
//! generated service.
//!
//! ```text
//! POST /envoy.service.discovery.v3.AggregatedDiscoveryService/
//!   ├─ StreamAggregatedResources ──► Streaming<DiscoveryRequest> ──┐
//!   ├─ DeltaAggregatedResources ───► Streaming<DeltaDiscoveryRequest> ─┤──► AdsServer (one task per stream)
//!   └─ anything else ──────────────► UNIMPLEMENTED                     │
//!        application/grpc response ◄── ResponseBody ◄── responses ◄────┘
//! ```
//!
//! Request decoding, compression (none) and message size limits (4 MiB in,
//! unlimited out) are tonic's defaults, as in the generated service.

use std::convert::Infallible;
use std::future::ready;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::NamedService;

use crate::xds::codec::{Requests, ResponseBody, WireMessage};
use crate::xds::server::AdsServer;

/// The gRPC service name of ADS.
const SERVICE_NAME: &str = "envoy.service.discovery.v3.AggregatedDiscoveryService";
const SOTW_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources";
const DELTA_PATH: &str =
    "/envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources";
const GRPC_ENCODING: &str = "grpc-encoding";

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
                Ok(stream(req, |requests| {
                    server.stream_aggregated_resources(requests)
                }))
            }),
            DELTA_PATH => Box::pin(async move {
                Ok(stream(req, |requests| {
                    server.delta_aggregated_resources(requests)
                }))
            }),
            path => {
                let status = Status::unimplemented(format!("no method {path}"));
                Box::pin(ready(Ok(status.into_http())))
            }
        }
    }
}

/// One ADS stream: requests decoded by tonic, `serve` run on them, and
/// its responses written by [`ResponseBody`], which frames them as gRPC
/// does but writes each in chunks that share the encoded resources (tonic's
/// own response encoder would copy every response whole into one buffer
/// per stream, and keep it).
fn stream<Req, Resp>(
    req: http::Request<Body>,
    serve: impl FnOnce(Requests<Req>) -> ReceiverStream<Result<Resp, Status>>,
) -> http::Response<Body>
where
    Req: prost::Message + Default + Send + 'static,
    Resp: WireMessage + Unpin + Send + 'static,
{
    // tonic's answer to a compressed request when it accepts no compression.
    if let Some(encoding) = req
        .headers()
        .get(GRPC_ENCODING)
        .filter(|e| e.as_bytes() != b"identity")
    {
        let encoding = String::from_utf8_lossy(encoding.as_bytes()).into_owned();
        return Status::unimplemented(format!(
            "Content is compressed with `{encoding}` which isn't supported"
        ))
        .into_http();
    }
    let requests = Requests::new(req.into_body());
    let mut response = http::Response::new(Body::new(ResponseBody::new(serve(requests))));
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/grpc"),
    );
    response
}
