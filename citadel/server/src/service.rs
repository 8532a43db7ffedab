//! `IstioCertificateService/CreateCertificate`, routed by hand (the three
//! messages are hand-written prost structs, so there is no generated stub).

use std::convert::Infallible;
use std::future::{Ready, ready};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use citadel::Refusal;
use citadel::signing::{Credential, Signer};
use proto::istio::{
    CERTIFICATE_SERVICE, CREATE_CERTIFICATE_PATH, IstioCertificateRequest, IstioCertificateResponse,
};
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;
use tracing::debug;

/// The signing API as a tower service for tonic's router.
#[derive(Clone, Debug)]
pub struct CertificateService {
    signer: Arc<Signer>,
}

impl CertificateService {
    pub fn new(signer: Arc<Signer>) -> Self {
        CertificateService { signer }
    }
}

impl NamedService for CertificateService {
    const NAME: &'static str = CERTIFICATE_SERVICE;
}

impl Service<http::Request<Body>> for CertificateService {
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<Body>) -> Self::Future {
        if req.uri().path() != CREATE_CERTIFICATE_PATH {
            let status = Status::unimplemented(format!("no method {}", req.uri().path()));
            return Box::pin(ready(Ok(status.into_http())));
        }
        let create = CreateCertificate {
            signer: self.signer.clone(),
        };
        Box::pin(async move {
            let mut grpc = Grpc::new(ProstCodec::<
                IstioCertificateResponse,
                IstioCertificateRequest,
            >::default());
            Ok(grpc.unary(create, req).await)
        })
    }
}

struct CreateCertificate {
    signer: Arc<Signer>,
}

impl UnaryService<IstioCertificateRequest> for CreateCertificate {
    type Response = IstioCertificateResponse;
    type Future = Ready<Result<Response<IstioCertificateResponse>, Status>>;

    fn call(&mut self, request: Request<IstioCertificateRequest>) -> Self::Future {
        ready(create_certificate(&self.signer, &request))
    }
}

/// One request: the credential read from the metadata or the TLS session,
/// then the signer. Signing takes a fraction of a millisecond of CPU, so it
/// runs on the request's task.
fn create_certificate(
    signer: &Signer,
    request: &Request<IstioCertificateRequest>,
) -> Result<Response<IstioCertificateResponse>, Status> {
    let peer_certs = request.peer_certs();
    let bearer = request
        .metadata()
        .get("authorization")
        .map(|v| v.to_str().ok().and_then(bearer_token).ok_or(()))
        .transpose()
        .map_err(|()| Status::unauthenticated("authorization: not a bearer token"))?;
    let credential = match (bearer, peer_certs.as_deref().and_then(|c| c.first())) {
        (Some(token), _) => Credential::Bearer(token),
        (None, Some(leaf)) => Credential::Certificate(leaf.as_ref()),
        (None, None) => Credential::None,
    };
    let IstioCertificateRequest {
        csr,
        validity_duration,
        // Istio passes node metadata (WorkloadName, WorkloadIP, ClusterID) for
        // impersonation by trusted components; Bowline has none yet.
        metadata: _,
    } = request.get_ref();
    match signer.create_certificate(
        credential,
        csr,
        *validity_duration,
        SystemTime::now(),
        Instant::now(),
    ) {
        Ok(signed) => {
            debug!(identity = %signed.caller, "certificate issued");
            Ok(Response::new(IstioCertificateResponse {
                cert_chain: signed.chain,
            }))
        }
        Err(error) => {
            debug!(%error, "certificate refused");
            let message = error.to_string();
            Err(match error.refusal() {
                Refusal::Unauthenticated => Status::unauthenticated(message),
                Refusal::PermissionDenied => Status::permission_denied(message),
                Refusal::InvalidArgument => Status::invalid_argument(message),
                Refusal::ResourceExhausted => Status::resource_exhausted(message),
                Refusal::Internal => Status::internal(message),
            })
        }
    }
}

/// The token of `Bearer TOKEN` (the scheme in any case, as RFC 6750 allows).
fn bearer_token(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_bearer_tokens_only() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("abc"), None);
    }
}
