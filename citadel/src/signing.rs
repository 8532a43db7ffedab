//! One certificate request from end to end, as the signing API serves it:
//! who the caller is (a bearer token, or the client certificate of a
//! renewal), whether its rate allows, then the CA.
//!
//! ```text
//! Credential::Bearer(token) ─► Tokens::verify ────────────┐
//! Credential::Certificate(der) ─► SpiffeId::of_certificate ┼─► RateLimiter::allow ─► Ca::issue
//! Credential::ServiceAccount (TokenReview'd) ─► SpiffeId ──┤
//! Credential::None ─► refused (unauthenticated)            ┘
//! ```

use std::time::{Duration, Instant, SystemTime};

use crate::{Ca, IssueRequest, RateLimiter, Refusal, SpiffeId, Tokens, authority, identity, token};

/// What a caller authenticated with.
#[derive(Clone, Copy, Debug)]
pub enum Credential<'a> {
    /// A bearer token from the `authorization` metadata.
    Bearer(&'a str),
    /// The leaf of a client certificate chain the TLS stack verified
    /// against the trust bundle (DER): a renewal.
    Certificate(&'a [u8]),
    /// A Kubernetes service account, proven by the API server's
    /// TokenReview of the caller's token (see [`crate::review`]).
    ServiceAccount {
        namespace: &'a str,
        name: &'a str,
    },
    None,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no credential: expected a bearer token or a client certificate")]
    NoCredential,
    #[error(transparent)]
    Token(#[from] token::Error),
    #[error("client certificate: {0}")]
    Certificate(#[source] identity::Error),
    #[error("client certificate: {id} is not of trust domain {trust_domain}")]
    TrustDomain { id: String, trust_domain: String },
    #[error("{id}: signing rate over the limit")]
    RateLimited { id: String },
    #[error("validity_duration {0}: negative")]
    NegativeTtl(i64),
    #[error(transparent)]
    Issue(#[from] authority::Error),
}

impl Error {
    pub fn refusal(&self) -> Refusal {
        match self {
            Error::NoCredential | Error::Certificate(_) | Error::TrustDomain { .. } => {
                Refusal::Unauthenticated
            }
            Error::Token(e) => e.refusal(),
            Error::RateLimited { .. } => Refusal::ResourceExhausted,
            Error::NegativeTtl(_) => Refusal::InvalidArgument,
            Error::Issue(e) => e.refusal(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The CA with its tokens and rate limit: what the signing API calls.
#[derive(Debug)]
pub struct Signer {
    pub ca: Ca,
    pub tokens: Tokens,
    /// `None`: no limit.
    pub limiter: Option<RateLimiter>,
}

/// A signed request: the caller and the chain (leaf first, root last).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    pub caller: SpiffeId,
    pub chain: Vec<String>,
}

impl Signer {
    /// The caller a credential proves, at `now`.
    pub fn authenticate(&self, credential: Credential<'_>, now: SystemTime) -> Result<SpiffeId> {
        match credential {
            Credential::Bearer(token) => Ok(self.tokens.verify(token, now)?),
            Credential::Certificate(der) => {
                let id = SpiffeId::of_certificate(der).map_err(Error::Certificate)?;
                if id.trust_domain != self.ca.trust_domain() {
                    return Err(Error::TrustDomain {
                        id: id.to_string(),
                        trust_domain: self.ca.trust_domain().to_string(),
                    });
                }
                Ok(id)
            }
            Credential::ServiceAccount { namespace, name } => Ok(SpiffeId {
                trust_domain: self.ca.trust_domain().to_string(),
                namespace: namespace.to_string(),
                service_account: name.to_string(),
            }),
            Credential::None => Err(Error::NoCredential),
        }
    }

    /// `CreateCertificate`: `validity_seconds` as the request gives it (0: the default).
    pub fn create_certificate(
        &self,
        credential: Credential<'_>,
        csr_pem: &str,
        validity_seconds: i64,
        now: SystemTime,
        instant: Instant,
    ) -> Result<Signed> {
        self.ca.count_request();
        let caller = self.authenticate(credential, now)?;
        let secs =
            u64::try_from(validity_seconds).map_err(|_| Error::NegativeTtl(validity_seconds))?;
        let ttl = (secs > 0).then(|| Duration::from_secs(secs));
        // Refuse a TTL over the maximum before spending a token of the bucket.
        self.ca.ttl(ttl)?;
        if let Some(limiter) = &self.limiter
            && !limiter.allow(&caller, instant)
        {
            return Err(Error::RateLimited {
                id: caller.to_string(),
            });
        }
        let chain = self.ca.issue(
            &IssueRequest {
                caller: &caller,
                csr_pem,
                ttl,
            },
            now,
        )?;
        Ok(Signed { caller, chain })
    }
}
