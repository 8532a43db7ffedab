//! `IstioCertificateService/CreateCertificate`, routed by hand (the three
//! messages are hand-written prost structs, so there is no generated stub).

use std::convert::Infallible;
use std::future::ready;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use citadel::signing::{Credential, Signer};
use citadel::{Refusal, review};
use proto::istio::{
    CERTIFICATE_SERVICE, CREATE_CERTIFICATE_PATH, IstioCertificateRequest, IstioCertificateResponse,
};
use tonic::body::Body;
use tonic::codegen::{BoxFuture, Service, http};
use tonic::server::{Grpc, NamedService, UnaryService};
use tonic::{Request, Response, Status};
use tonic_prost::ProstCodec;
use tracing::debug;

/// Reviews bearer tokens this CA did not mint: in Kubernetes, the API
/// server's TokenReview of a projected service-account token
/// ([`citadel::review`] builds the request and reads the answer).
pub trait TokenReviewer: Send + Sync + 'static {
    /// The (namespace, service account) `token` proves.
    fn review(&self, token: String) -> BoxFuture<(String, String), review::Error>;
}

/// The signing API as a tower service for tonic's router.
#[derive(Clone)]
pub struct CertificateService {
    signer: Arc<Signer>,
    reviewer: Option<Arc<dyn TokenReviewer>>,
}

impl std::fmt::Debug for CertificateService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertificateService")
            .field("signer", &self.signer)
            .field("reviews_tokens", &self.reviewer.is_some())
            .finish()
    }
}

impl CertificateService {
    pub fn new(signer: Arc<Signer>) -> Self {
        CertificateService {
            signer,
            reviewer: None,
        }
    }

    /// Tokens another issuer claims go to `reviewer`; without one they
    /// are refused as not this CA's.
    pub fn with_reviewer(mut self, reviewer: Arc<dyn TokenReviewer>) -> Self {
        self.reviewer = Some(reviewer);
        self
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
            reviewer: self.reviewer.clone(),
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
    reviewer: Option<Arc<dyn TokenReviewer>>,
}

impl UnaryService<IstioCertificateRequest> for CreateCertificate {
    type Response = IstioCertificateResponse;
    type Future = BoxFuture<Response<IstioCertificateResponse>, Status>;

    fn call(&mut self, request: Request<IstioCertificateRequest>) -> Self::Future {
        let signer = self.signer.clone();
        let token = match bearer(&request) {
            Ok(token) => token,
            Err(status) => return Box::pin(ready(Err(status))),
        };
        // A token another issuer claims is the API server's to review; the
        // review is the one wait, signing runs on the request's task.
        match (token, &self.reviewer) {
            (Some(token), Some(reviewer)) if review::is_for_review(&token) => {
                let reviewing = reviewer.review(token);
                Box::pin(async move {
                    let (namespace, name) = reviewing.await.map_err(|error| {
                        debug!(%error, "certificate refused");
                        status(error.refusal(), error.to_string())
                    })?;
                    let credential = Credential::ServiceAccount {
                        namespace: &namespace,
                        name: &name,
                    };
                    sign(&signer, credential, request.get_ref())
                })
            }
            (token, _) => {
                let peer_certs = request.peer_certs();
                let credential = match (&token, peer_certs.as_deref().and_then(|c| c.first())) {
                    (Some(token), _) => Credential::Bearer(token),
                    (None, Some(leaf)) => Credential::Certificate(leaf.as_ref()),
                    (None, None) => Credential::None,
                };
                Box::pin(ready(sign(&signer, credential, request.get_ref())))
            }
        }
    }
}

/// The bearer token of the `authorization` metadata, if there is one.
fn bearer(request: &Request<IstioCertificateRequest>) -> Result<Option<String>, Status> {
    request
        .metadata()
        .get("authorization")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(bearer_token)
                .map(str::to_string)
                .ok_or_else(|| Status::unauthenticated("authorization: not a bearer token"))
        })
        .transpose()
}

/// One request, its caller's credential known. Signing takes a fraction
/// of a millisecond of CPU, so it runs on the request's task.
fn sign(
    signer: &Signer,
    credential: Credential<'_>,
    request: &IstioCertificateRequest,
) -> Result<Response<IstioCertificateResponse>, Status> {
    let IstioCertificateRequest {
        csr,
        validity_duration,
        // Istio passes node metadata (WorkloadName, WorkloadIP, ClusterID) for
        // impersonation by trusted components; Bowline has none yet.
        metadata: _,
    } = request;
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
            Err(status(error.refusal(), error.to_string()))
        }
    }
}

/// istiod's status code for a refusal.
fn status(refusal: Refusal, message: String) -> Status {
    match refusal {
        Refusal::Unauthenticated => Status::unauthenticated(message),
        Refusal::PermissionDenied => Status::permission_denied(message),
        Refusal::InvalidArgument => Status::invalid_argument(message),
        Refusal::ResourceExhausted => Status::resource_exhausted(message),
        Refusal::Internal => Status::internal(message),
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
