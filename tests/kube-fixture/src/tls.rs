//! A throwaway CA and a serving certificate for 127.0.0.1 and localhost.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, SanType};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;

use crate::Error;

/// The acceptor, and the CA certificate (PEM) a kubeconfig trusts.
pub(crate) fn serving(ip: std::net::IpAddr) -> Result<(TlsAcceptor, String), Error> {
    let tls = |e: &dyn std::fmt::Display| Error::Tls(e.to_string());
    let ca_key = KeyPair::generate().map_err(|e| tls(&e))?;
    let mut ca = CertificateParams::default();
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "kube-fixture test CA");
    let ca_cert = ca.self_signed(&ca_key).map_err(|e| tls(&e))?;
    let issuer = Issuer::from_params(&ca, &ca_key);

    let key = KeyPair::generate().map_err(|e| tls(&e))?;
    let mut leaf = CertificateParams::default();
    leaf.subject_alt_names = vec![
        SanType::IpAddress(ip),
        SanType::DnsName("localhost".try_into().map_err(|e| tls(&e))?),
    ];
    if ip != std::net::IpAddr::from([127, 0, 0, 1]) {
        leaf.subject_alt_names
            .push(SanType::IpAddress([127, 0, 0, 1].into()));
    }
    let cert = leaf.signed_by(&key, &issuer).map_err(|e| tls(&e))?;

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain = vec![CertificateDer::from(cert.der().to_vec())];
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| tls(&e))?;
    // kube-rs speaks HTTP/1.1; so does the fixture.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((TlsAcceptor::from(Arc::new(config)), ca_cert.pem()))
}
