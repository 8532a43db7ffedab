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
//! On the mutual-TLS listener ([`AdsService::authenticated`]) a stream
//! without a client certificate is refused with UNAUTHENTICATED before any
//! request is read, and one whose node claims another namespace or service
//! account than the certificate's with PERMISSION_DENIED (in the stream
//! task, once the node is known).
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
use pilot_core::xds::PeerIdentity;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

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
    /// Served over mutual TLS: every stream must present a workload
    /// certificate, and its node may claim only that certificate's
    /// namespace and service account.
    authenticated: bool,
}

impl AdsService {
    pub fn new(server: AdsServer) -> Self {
        AdsService {
            server: Arc::new(server),
            authenticated: false,
        }
    }

    /// The same server (one push queue, one status registry) for a TLS
    /// listener that checks each stream's identity.
    pub fn authenticated(&self) -> Self {
        AdsService {
            server: self.server.clone(),
            authenticated: true,
        }
    }
}

/// The SPIFFE identity of the client certificate of the TLS session a
/// request came on: `Err` with the reason when there is none.
fn peer_identity(req: &http::Request<Body>) -> Result<PeerIdentity, Status> {
    let info = req
        .extensions()
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .ok_or_else(|| Status::unauthenticated("xDS needs mutual TLS on this port"))?;
    let certs = info.peer_certs().ok_or_else(|| {
        Status::unauthenticated("no client certificate: present the workload certificate")
    })?;
    let leaf = certs
        .first()
        .ok_or_else(|| Status::unauthenticated("no client certificate"))?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|_| Status::unauthenticated("the client certificate does not parse"))?;
    let uris = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .into_iter()
        .flat_map(|san| san.value.general_names.iter())
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::URI(uri) => PeerIdentity::from_spiffe_uri(uri),
            _ => None,
        });
    uris.into_iter()
        .next()
        .ok_or_else(|| Status::unauthenticated("the client certificate holds no SPIFFE id"))
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
        let peer = match self.authenticated.then(|| peer_identity(&req)) {
            None => None,
            Some(Ok(peer)) => Some(peer),
            Some(Err(status)) => {
                tracing::warn!(error = status.message(), "refusing an xDS stream");
                return Box::pin(ready(Ok(status.into_http())));
            }
        };
        match req.uri().path() {
            SOTW_PATH => Box::pin(async move {
                Ok(stream(req, |requests| {
                    server.stream_aggregated_resources(requests, peer)
                }))
            }),
            DELTA_PATH => Box::pin(async move {
                Ok(stream(req, |requests| {
                    server.delta_aggregated_resources(requests, peer)
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
