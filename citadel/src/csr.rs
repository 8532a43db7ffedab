//! Certificate signing requests: the signature checked, the public key and
//! the identities asked for read out. Nothing else in a CSR is used: the CA
//! writes every other field of the certificate itself.

use rustls_pki_types::pem::PemObject;
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::FromDer;

use crate::SpiffeId;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("csr: not a PEM certificate request")]
    NotPem,
    #[error("csr: cannot parse")]
    Unreadable,
    #[error("csr: the signature does not verify")]
    BadSignature,
    #[error("csr: public key of an unsupported algorithm")]
    UnsupportedKey,
    #[error("csr: asks for {asked}, which is not the caller's identity {caller}")]
    OtherIdentity { asked: String, caller: String },
    #[error(
        "csr: asks for {0} DNS, IP or other names; a workload certificate holds only its SPIFFE id"
    )]
    OtherNames(usize),
}

/// A CSR whose signature verified: proof that its sender holds the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCsr {
    /// The SubjectPublicKeyInfo, DER.
    pub public_key: Vec<u8>,
    /// URI SANs asked for, as written.
    pub uris: Vec<String>,
    /// How many other SANs (DNS, IP, e-mail, ...) it asks for: the CA issues
    /// none of them to workloads.
    pub other_names: usize,
}

/// Parses a PEM CSR and verifies its signature.
pub fn verify(pem: &str) -> Result<VerifiedCsr, Error> {
    let der = rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(pem.as_bytes())
        .map_err(|_| Error::NotPem)?;
    verify_der(der.as_ref())
}

/// [`verify`] for DER.
pub fn verify_der(der: &[u8]) -> Result<VerifiedCsr, Error> {
    let (_, csr) = X509CertificationRequest::from_der(der).map_err(|_| Error::Unreadable)?;
    csr.verify_signature().map_err(|_| Error::BadSignature)?;
    let mut uris = Vec::new();
    let mut other_names = 0;
    for ext in csr.requested_extensions().into_iter().flatten() {
        if let ParsedExtension::SubjectAlternativeName(san) = ext {
            for name in &san.general_names {
                match name {
                    GeneralName::URI(uri) => uris.push((*uri).to_string()),
                    _ => other_names += 1,
                }
            }
        }
    }
    Ok(VerifiedCsr {
        public_key: csr.certification_request_info.subject_pki.raw.to_vec(),
        uris,
        other_names,
    })
}

impl VerifiedCsr {
    /// Refuses a CSR that asks for any identity other than `caller`'s, as
    /// istiod does (the caller must be entitled to every SAN it asks for).
    /// Asking for none is fine: the certificate carries the caller's.
    pub fn check_identity(&self, caller: &SpiffeId) -> Result<(), Error> {
        if self.other_names > 0 {
            return Err(Error::OtherNames(self.other_names));
        }
        let caller_text = caller.to_string();
        match self.uris.iter().find(|u| **u != caller_text) {
            Some(asked) => Err(Error::OtherIdentity {
                asked: asked.clone(),
                caller: caller_text,
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{CertificateParams, KeyPair, SanType};

    fn csr_for(uris: &[&str]) -> (String, KeyPair) {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::default();
        params.subject_alt_names = uris
            .iter()
            .map(|u| SanType::URI((*u).try_into().unwrap()))
            .collect();
        (params.serialize_request(&key).unwrap().pem().unwrap(), key)
    }

    #[test]
    fn reads_the_key_and_the_identity_asked_for() {
        let (pem, key) = csr_for(&["spiffe://cluster.local/ns/a/sa/b"]);
        let csr = verify(&pem).unwrap();
        assert_eq!(csr.uris, ["spiffe://cluster.local/ns/a/sa/b"]);
        assert!(csr.public_key.ends_with(key.public_key_raw()));
        assert!(csr.check_identity(&SpiffeId::new("a", "b")).is_ok());
        assert_eq!(
            csr.check_identity(&SpiffeId::new("a", "c")),
            Err(Error::OtherIdentity {
                asked: "spiffe://cluster.local/ns/a/sa/b".into(),
                caller: "spiffe://cluster.local/ns/a/sa/c".into()
            })
        );
        let key = KeyPair::generate().unwrap();
        let dns = CertificateParams::new(vec!["web.shop.svc".to_string()])
            .unwrap()
            .serialize_request(&key)
            .unwrap()
            .pem()
            .unwrap();
        assert_eq!(
            verify(&dns)
                .unwrap()
                .check_identity(&SpiffeId::new("a", "b")),
            Err(Error::OtherNames(1))
        );
        let (none, _) = csr_for(&[]);
        assert!(
            verify(&none)
                .unwrap()
                .check_identity(&SpiffeId::new("x", "y"))
                .is_ok()
        );
    }

    #[test]
    fn a_tampered_request_does_not_verify() {
        let (pem, _) = csr_for(&["spiffe://cluster.local/ns/a/sa/b"]);
        let der =
            rustls_pki_types::CertificateSigningRequestDer::from_pem_slice(pem.as_bytes()).unwrap();
        let mut bytes = der.as_ref().to_vec();
        // Flip a byte of the URI inside the signed part.
        let at = bytes
            .windows(2)
            .position(|w| w == b"ns")
            .expect("the URI is in the request");
        bytes[at] = b'N';
        assert_eq!(verify_der(&bytes), Err(Error::BadSignature));
        assert_eq!(verify("garbage"), Err(Error::NotPem));
    }
}
