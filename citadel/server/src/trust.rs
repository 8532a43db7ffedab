//! `bowline.ca.v1.Trust/Watch`: the trust agents follow, streamed to each
//! of them from a watch the control plane's rotation driver keeps current.
//!
//! ```text
//! driver ──watch::Sender<Trust>──► TrustService ──stream TrustUpdate──► agent
//!   (bundle, signing root, reissue)   the current value at once, then each change
//! ```
//!
//! Nothing in it is secret (the bundle is on the admin API too), so it asks
//! for no credential beyond the CA's TLS.

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::pin::Pin;
use std::task::{Context, Poll};

use citadel::Trust;
use proto::bowline::{TRUST_SERVICE, TrustUpdate, WATCH_TRUST_PATH, WatchTrustRequest};
use tokio::sync::watch;
use tokio_stream::wrappers::WatchStream;
use tokio_stream::{Stream, StreamExt};
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::{Grpc, NamedService, ServerStreamingService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;

/// The trust watch as a tower service for tonic's router.
#[derive(Clone, Debug)]
pub struct TrustService {
    trust: watch::Receiver<Trust>,
}

impl TrustService {
    pub fn new(trust: watch::Receiver<Trust>) -> Self {
        TrustService { trust }
    }
}

impl NamedService for TrustService {
    const NAME: &'static str = TRUST_SERVICE;
}

impl Service<http::Request<Body>> for TrustService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if req.uri().path() != WATCH_TRUST_PATH {
            let status = Status::unimplemented(format!("no method {}", req.uri().path()));
            return Box::pin(ready(Ok(status.into_http())));
        }
        let watch = Watch {
            trust: self.trust.clone(),
        };
        Box::pin(async move {
            let mut grpc = Grpc::new(ProstCodec::<TrustUpdate, WatchTrustRequest>::default());
            Ok(grpc.server_streaming(watch, req).await)
        })
    }
}

type Updates = Pin<Box<dyn Stream<Item = Result<TrustUpdate, Status>> + Send>>;

struct Watch {
    trust: watch::Receiver<Trust>,
}

impl ServerStreamingService<WatchTrustRequest> for Watch {
    type Response = TrustUpdate;
    type ResponseStream = Updates;
    type Future = Ready<Result<Response<Updates>, Status>>;

    fn call(&mut self, _request: Request<WatchTrustRequest>) -> Self::Future {
        let updates = WatchStream::new(self.trust.clone()).map(|trust| Ok(to_proto(&trust)));
        ready(Ok(Response::new(Box::pin(updates))))
    }
}

pub fn to_proto(trust: &Trust) -> TrustUpdate {
    TrustUpdate {
        bundle_pem: trust.bundle_pem.to_string(),
        signing_root_pem: trust.signing_root_pem.clone(),
        reissue: trust.reissue,
    }
}
