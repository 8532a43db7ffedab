//! Workload identities: SPIFFE ids of Istio's shape.

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
    #[error("{what} {value:?}: not a name (lower-case letters, digits, '-' and '.')")]
    InvalidName { what: &'static str, value: String },
    #[error("certificate: cannot parse")]
    UnreadableCertificate,
    #[error("certificate: holds no SPIFFE id (a URI SAN spiffe://…/ns/…/sa/…)")]
    NoSpiffeId,
    #[error("certificate: holds {0} SPIFFE ids, one expected")]
    SeveralSpiffeIds(usize),
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

impl SpiffeId {
    /// The identity of a service account in `trust_domain`, each part checked
    /// to be a name (Kubernetes' DNS-subdomain characters), so that the id
    /// parses back to the same parts.
    pub fn in_domain(trust_domain: &str, namespace: &str, service_account: &str) -> Result<Self> {
        for (what, value) in [
            ("trust domain", trust_domain),
            ("namespace", namespace),
            ("service account", service_account),
        ] {
            if !is_name(value) {
                return Err(Error::InvalidName {
                    what,
                    value: value.to_string(),
                });
            }
        }
        Ok(SpiffeId {
            trust_domain: trust_domain.to_string(),
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
        })
    }

    /// The one SPIFFE id among a certificate's URI SANs (DER). The chain is
    /// not verified here: that is the TLS stack's job.
    pub fn of_certificate(der: &[u8]) -> Result<Self> {
        let (_, cert) =
            x509_parser::parse_x509_certificate(der).map_err(|_| Error::UnreadableCertificate)?;
        let san = cert
            .subject_alternative_name()
            .map_err(|_| Error::UnreadableCertificate)?
            .ok_or(Error::NoSpiffeId)?;
        let ids: Vec<SpiffeId> = san
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                x509_parser::extensions::GeneralName::URI(uri) => uri.parse().ok(),
                _ => None,
            })
            .collect();
        match ids.len() {
            0 => Err(Error::NoSpiffeId),
            1 => Ok(ids.into_iter().next().ok_or(Error::NoSpiffeId)?),
            n => Err(Error::SeveralSpiffeIds(n)),
        }
    }
}

/// Lower-case letters, digits, `-` and `.`, not empty, at most 253 bytes.
fn is_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
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

    #[test]
    fn names_are_checked_part_by_part() {
        let id = SpiffeId::in_domain("example.org", "shop", "web-1").unwrap();
        assert_eq!(id.to_string(), "spiffe://example.org/ns/shop/sa/web-1");
        for (ns, sa) in [("a/b", "x"), ("", "x"), ("ns", "Web"), ("ns", "a b")] {
            assert!(SpiffeId::in_domain("td", ns, sa).is_err(), "{ns} {sa}");
        }
    }
}
