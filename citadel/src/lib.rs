//! Citadel: the mesh's certificate authority.
//!
//! It will issue short-lived SPIFFE certificates to workloads, so that
//! sidecars talk over mutual TLS, and decide who may call whom. This crate
//! holds the seam the rest of Bowline builds against: workload identities
//! ([`SpiffeId`]) and the [`CertificateAuthority`] trait that pilot's SDS
//! will call. Issuing (rcgen, rustls) arrives with the security issue.
//!
//! Pure: no tokio, tonic or kube here.

use std::fmt;
use std::str::FromStr;

/// The default trust domain, as in Istio.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// A workload identity: `spiffe://<trust domain>/ns/<namespace>/sa/<service account>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SpiffeId {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error(
        "{0:?} is not a SPIFFE id of the form spiffe://TRUST-DOMAIN/ns/NAMESPACE/sa/SERVICE-ACCOUNT"
    )]
    InvalidSpiffeId(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl SpiffeId {
    /// The identity of a service account in the default trust domain.
    pub fn new(namespace: impl Into<String>, service_account: impl Into<String>) -> Self {
        SpiffeId {
            trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
            namespace: namespace.into(),
            service_account: service_account.into(),
        }
    }
}

impl fmt::Display for SpiffeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl FromStr for SpiffeId {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let invalid = || Error::InvalidSpiffeId(s.to_string());
        let rest = s.strip_prefix("spiffe://").ok_or_else(invalid)?;
        let parts: Vec<&str> = rest.split('/').collect();
        match parts.as_slice() {
            [td, "ns", ns, "sa", sa] if [td, ns, sa].iter().all(|p| !p.is_empty()) => {
                Ok(SpiffeId {
                    trust_domain: (*td).to_string(),
                    namespace: (*ns).to_string(),
                    service_account: (*sa).to_string(),
                })
            }
            _ => Err(invalid()),
        }
    }
}

/// What pilot asks of the CA once workloads get certificates over SDS.
pub trait CertificateAuthority: Send + Sync {
    /// Certificate material (PEM) for a workload's certificate signing request.
    type Issued;
    type Error: std::error::Error;

    /// Signs `csr_pem` for `identity` if the caller is entitled to it.
    fn sign(&self, identity: &SpiffeId, csr_pem: &str) -> Result<Self::Issued, Self::Error>;

    /// The roots that workloads trust, PEM.
    fn roots_pem(&self) -> String;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_istio_style_ids() {
        let id = SpiffeId::new("default", "bookinfo-reviews");
        let text = id.to_string();
        assert_eq!(
            text,
            "spiffe://cluster.local/ns/default/sa/bookinfo-reviews"
        );
        assert_eq!(text.parse::<SpiffeId>(), Ok(id));
    }

    #[test]
    fn rejects_other_shapes() {
        for bad in [
            "https://cluster.local/ns/a/sa/b",
            "spiffe://cluster.local/ns/a",
            "spiffe://cluster.local/ns//sa/b",
            "spiffe:///ns/a/sa/b",
            "spiffe://td/sa/b/ns/a",
        ] {
            assert!(bad.parse::<SpiffeId>().is_err(), "{bad}");
        }
    }
}
