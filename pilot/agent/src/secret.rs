//! The workload's certificate and key as the agent holds them, and as
//! Envoy's SDS `Secret` carries them.
//!
//! ```text
//! CA chain [leaf, intermediates…, root] + key (memory only) ──► WorkloadSecret ──► to_proto("default") ──► Secret{tls_certificate}
//! ```
//!
//! The key never leaves memory except towards Envoy, and `Debug` redacts it.

use std::fmt;
use std::time::SystemTime;

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    Secret, TlsCertificate, secret,
};
use xxhash_rust::xxh3::xxh3_64;

/// The secret istio-agent serves the workload's certificate under.
pub const WORKLOAD_SECRET: &str = pilot_node::DEFAULT_SECRET;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("certificate chain: the CA returned none")]
    EmptyChain,
    #[error("certificate chain: {0}")]
    Pem(#[from] citadel::pem::Error),
    #[error("certificate chain: the leaf does not parse as X.509")]
    Leaf,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A workload certificate chain and its private key.
#[derive(Clone, PartialEq, Eq)]
pub struct WorkloadSecret {
    /// The leaf and any intermediates, PEM, leaf first; the root is not in it.
    pub chain_pem: String,
    /// The root the chain ends at, PEM, as the CA returned it.
    pub root_pem: String,
    key_pem: String,
    pub not_before: SystemTime,
    pub not_after: SystemTime,
    /// A content hash of the chain: the SDS version.
    pub version: String,
}

impl fmt::Debug for WorkloadSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkloadSecret")
            .field("version", &self.version)
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .field("key_pem", &"<redacted>")
            .finish_non_exhaustive()
    }
}

impl WorkloadSecret {
    /// From the CA's answer (leaf first, root last, as istiod answers) and
    /// the key the CSR was signed with.
    pub fn from_chain(chain: &[String], key_pem: String) -> Result<WorkloadSecret> {
        let (leaf_pem, rest) = chain.split_first().ok_or(Error::EmptyChain)?;
        // A chain of one is a leaf the root signed and sent alone.
        let (intermediates, root) = match rest.split_last() {
            Some((root, intermediates)) => (intermediates, root.clone()),
            None => (&[][..], String::new()),
        };
        let leaf = citadel::pem::certificates("leaf", leaf_pem)?;
        let der = leaf.first().ok_or(Error::EmptyChain)?;
        let (_, cert) =
            x509_parser::parse_x509_certificate(der.as_ref()).map_err(|_| Error::Leaf)?;
        let validity = cert.validity();
        let not_before = to_system_time(validity.not_before.timestamp());
        let not_after = to_system_time(validity.not_after.timestamp());
        let mut chain_pem = String::new();
        for pem in std::iter::once(leaf_pem).chain(intermediates) {
            chain_pem.push_str(pem.trim_end());
            chain_pem.push('\n');
        }
        let version = format!("{:016x}", xxh3_64(chain_pem.as_bytes()));
        Ok(WorkloadSecret {
            chain_pem,
            root_pem: root,
            key_pem,
            not_before,
            not_after,
            version,
        })
    }

    /// The private key, PEM: for Envoy only.
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// Envoy's `Secret` named `name`: a `tls_certificate` with the chain and
    /// the key inline, as istio-agent serves it.
    pub fn to_proto(&self, name: &str) -> Secret {
        let inline = |text: &str| DataSource {
            specifier: Some(Specifier::InlineBytes(text.as_bytes().to_vec())),
            ..Default::default()
        };
        Secret {
            name: name.to_string(),
            r#type: Some(secret::Type::TlsCertificate(TlsCertificate {
                certificate_chain: Some(inline(&self.chain_pem)),
                private_key: Some(inline(&self.key_pem)),
                ..Default::default()
            })),
        }
    }
}

fn to_system_time(unix: i64) -> SystemTime {
    let secs = u64::try_from(unix).unwrap_or(0);
    SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair};

    /// A root and a leaf it signed valid from `not_before` for `secs` seconds,
    /// as the CA would answer, and the leaf's key.
    pub(crate) fn issued(not_before: i64, secs: i64) -> (Vec<String>, String) {
        let root_key = KeyPair::generate().unwrap();
        let mut root_params = CertificateParams::new(Vec::new()).unwrap();
        root_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let root = root_params.self_signed(&root_key).unwrap();
        let issuer = rcgen::Issuer::new(root_params, &root_key);
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::new()).unwrap();
        params.not_before = time::OffsetDateTime::from_unix_timestamp(not_before).unwrap();
        params.not_after = time::OffsetDateTime::from_unix_timestamp(not_before + secs).unwrap();
        let leaf = params.signed_by(&key, &issuer).unwrap();
        (vec![leaf.pem(), root.pem()], key.serialize_pem())
    }

    #[test]
    fn chain_and_key_become_an_envoy_secret() {
        let (chain, key) = issued(1_700_000_000, 3600);
        let secret = WorkloadSecret::from_chain(&chain, key.clone()).unwrap();
        assert_eq!(secret.chain_pem, format!("{}\n", chain[0].trim_end()));
        assert_eq!(secret.root_pem, chain[1]);
        assert_eq!(
            secret.not_before,
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000)
        );
        assert_eq!(
            secret.not_after,
            SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_700_003_600)
        );
        let proto = secret.to_proto(WORKLOAD_SECRET);
        assert_eq!(proto.name, "default");
        let Some(secret::Type::TlsCertificate(tls)) = proto.r#type else {
            panic!("not a tls_certificate: {proto:?}");
        };
        let bytes = |d: Option<DataSource>| match d.and_then(|d| d.specifier) {
            Some(Specifier::InlineBytes(b)) => String::from_utf8(b).unwrap(),
            other => panic!("not inline bytes: {other:?}"),
        };
        assert_eq!(bytes(tls.certificate_chain), secret.chain_pem);
        assert_eq!(bytes(tls.private_key), key);
    }

    #[test]
    fn intermediates_stay_in_the_chain_and_the_root_does_not() {
        let (mut chain, key) = issued(1_700_000_000, 3600);
        let (other, _) = issued(1_700_000_000, 3600);
        chain.insert(1, other[0].clone());
        let secret = WorkloadSecret::from_chain(&chain, key).unwrap();
        assert_eq!(
            secret.chain_pem,
            format!("{}\n{}\n", chain[0].trim_end(), chain[1].trim_end())
        );
        assert!(!secret.chain_pem.contains(chain[2].trim_end()));
    }

    #[test]
    fn the_version_follows_the_chain() {
        let (chain, key) = issued(1_700_000_000, 3600);
        let a = WorkloadSecret::from_chain(&chain, key.clone()).unwrap();
        let b = WorkloadSecret::from_chain(&chain, key).unwrap();
        let (other, key) = issued(1_700_000_000, 3600);
        let c = WorkloadSecret::from_chain(&other, key).unwrap();
        assert_eq!(a.version, b.version);
        assert_ne!(a.version, c.version);
    }

    #[test]
    fn debug_redacts_the_key() {
        let (chain, key) = issued(1_700_000_000, 3600);
        let secret = WorkloadSecret::from_chain(&chain, key.clone()).unwrap();
        let shown = format!("{secret:?}");
        assert!(!shown.contains("PRIVATE KEY") && !shown.contains(key.lines().nth(1).unwrap()));
    }

    #[test]
    fn an_empty_chain_is_refused() {
        assert!(matches!(
            WorkloadSecret::from_chain(&[], String::new()),
            Err(Error::EmptyChain)
        ));
    }
}
