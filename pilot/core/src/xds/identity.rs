//! Whether an ADS stream's node may be served on the identity its client
//! certificate proves: the node's declared namespace and service account
//! must be the certificate's (`spiffe://TD/ns/NS/sa/SA`).
//!
//! ```text
//! TLS session ──► client certificate's SPIFFE id ─┐
//!                                                 ├──► check_node_identity ──► serve | PERMISSION_DENIED
//! first request ──► node metadata (ns, sa) ───────┘
//! ```
//!
//! Pure: the TLS stack verifies the chain against the trust bundle and the
//! server reads the SPIFFE id out of the certificate; this decides only
//! whether the claim matches it.

use std::fmt;

use pilot_node::NodeMetadata;

/// The service account of a node that declares none, as the agent asks
/// the CA for it (and as Kubernetes names it).
pub const DEFAULT_SERVICE_ACCOUNT: &str = "default";

/// The identity a client certificate proves: its SPIFFE id's parts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerIdentity {
    pub trust_domain: String,
    pub namespace: String,
    pub service_account: String,
}

impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "spiffe://{}/ns/{}/sa/{}",
            self.trust_domain, self.namespace, self.service_account
        )
    }
}

impl PeerIdentity {
    /// The parts of a SPIFFE id `spiffe://TD/ns/NS/sa/SA`; `None` for any
    /// other URI.
    pub fn from_spiffe_uri(uri: &str) -> Option<PeerIdentity> {
        let rest = uri.strip_prefix("spiffe://")?;
        let mut parts = rest.split('/');
        let (trust_domain, ns, namespace, sa, service_account) = (
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
            parts.next()?,
        );
        let well_formed = ns == "ns"
            && sa == "sa"
            && parts.next().is_none()
            && [trust_domain, namespace, service_account]
                .iter()
                .all(|p| !p.is_empty());
        well_formed.then(|| PeerIdentity {
            trust_domain: trust_domain.to_string(),
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
        })
    }
}

/// A node that claims another identity than its certificate's.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "node {node:?} claims namespace {claimed_namespace:?}, service account \
     {claimed_service_account:?}, but its client certificate is {certificate}"
)]
pub struct IdentityMismatch {
    pub node: String,
    pub claimed_namespace: String,
    pub claimed_service_account: String,
    pub certificate: PeerIdentity,
}

/// Checks that node `node_id`, declaring `metadata`, is the workload
/// `certificate` identifies. An absent service account counts as
/// [`DEFAULT_SERVICE_ACCOUNT`].
pub fn check_node_identity(
    node_id: &str,
    metadata: &NodeMetadata,
    certificate: &PeerIdentity,
) -> Result<(), Box<IdentityMismatch>> {
    let service_account = metadata
        .service_account
        .as_deref()
        .unwrap_or(DEFAULT_SERVICE_ACCOUNT);
    if metadata.namespace == certificate.namespace && service_account == certificate.service_account
    {
        return Ok(());
    }
    Err(Box::new(IdentityMismatch {
        node: node_id.to_string(),
        claimed_namespace: metadata.namespace.clone(),
        claimed_service_account: service_account.to_string(),
        certificate: certificate.clone(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{IpAddr, Ipv4Addr};

    fn node(namespace: &str, service_account: Option<&str>) -> NodeMetadata {
        let mut m = NodeMetadata::new(namespace, "reviews", IpAddr::V4(Ipv4Addr::LOCALHOST));
        m.service_account = service_account.map(str::to_string);
        m
    }

    fn cert(namespace: &str, service_account: &str) -> PeerIdentity {
        PeerIdentity {
            trust_domain: "cluster.local".to_string(),
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
        }
    }

    #[test]
    fn a_node_claiming_its_certificates_identity_is_served() {
        let ok = check_node_identity(
            "n",
            &node("shop", Some("reviews")),
            &cert("shop", "reviews"),
        );
        assert_eq!(ok, Ok(()));
    }

    #[test]
    fn an_absent_service_account_counts_as_default() {
        assert_eq!(
            check_node_identity("n", &node("shop", None), &cert("shop", "default")),
            Ok(())
        );
        assert!(check_node_identity("n", &node("shop", None), &cert("shop", "reviews")).is_err());
    }

    #[test]
    fn another_service_account_is_refused_naming_both_identities() {
        let err = check_node_identity(
            "sidecar~10.0.0.1~reviews.shop~shop.svc.cluster.local",
            &node("shop", Some("admin")),
            &cert("shop", "reviews"),
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(message.contains("\"admin\""), "{message}");
        assert!(
            message.contains("spiffe://cluster.local/ns/shop/sa/reviews"),
            "{message}"
        );
        assert!(
            message.contains("sidecar~10.0.0.1~reviews.shop"),
            "{message}"
        );
    }

    #[test]
    fn spiffe_ids_parse_and_other_uris_do_not() {
        assert_eq!(
            PeerIdentity::from_spiffe_uri("spiffe://cluster.local/ns/shop/sa/reviews"),
            Some(cert("shop", "reviews"))
        );
        for bad in [
            "https://cluster.local/ns/shop/sa/reviews",
            "spiffe://cluster.local/ns/shop/sa/reviews/extra",
            "spiffe://cluster.local/ns//sa/reviews",
            "spiffe://cluster.local/namespace/shop/sa/reviews",
            "spiffe://cluster.local/ns/shop",
        ] {
            assert_eq!(PeerIdentity::from_spiffe_uri(bad), None, "{bad}");
        }
    }

    #[test]
    fn another_namespace_is_refused() {
        let err = check_node_identity(
            "n",
            &node("billing", Some("reviews")),
            &cert("shop", "reviews"),
        )
        .unwrap_err();
        assert_eq!(err.claimed_namespace, "billing");
        assert_eq!(err.certificate, cert("shop", "reviews"));
    }
}
