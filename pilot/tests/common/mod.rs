//! What the `bowline` binary's integration tests share: waiting for a
//! control plane's trust bundle, and asking its CA for a certificate.
//! (Each test file is a crate of its own and uses some of it.)
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use citadel_server::CaClient;
use citadel_server::client::ClientConfig;
use rcgen::{CertificateParams, KeyPair, SanType};

/// Only guards against a hang.
pub(crate) const LIMIT: Duration = Duration::from_secs(30);

/// The trust bundle of the control plane whose admin API is on
/// `host:15014`, once it serves one; on giving up, `log` (the control
/// plane's) is shown.
pub(crate) async fn trust_bundle(host: &str, log: Option<&Path>) -> String {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let url = format!("http://{host}:15014/api/v1/trust-bundle");
    let start = Instant::now();
    loop {
        if let Ok(r) = http.get(&url).send().await
            && r.status().is_success()
        {
            return r.text().await.unwrap();
        }
        assert!(
            start.elapsed() < LIMIT,
            "gave up waiting for {url}; the control plane logged:\n{}",
            log.and_then(|l| std::fs::read_to_string(l).ok())
                .unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asks the CA on `host:15012` (trusted through `bundle`) for a
/// certificate with `token`; the CSR names the identity `asks_for`, or
/// none (the CA's choice, from the caller).
pub(crate) async fn sign(
    host: &str,
    bundle: &str,
    token: &str,
    asks_for: Option<&str>,
) -> Result<Vec<String>, tonic::Status> {
    let addr: SocketAddr = format!("{host}:15012").parse().unwrap();
    let config = ClientConfig {
        roots_pem: bundle.to_string(),
        server_name: "istiod.istio-system.svc".to_string(),
        identity: None,
    };
    let mut client = CaClient::connect(addr, &config).await.unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    if let Some(uri) = asks_for {
        params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    }
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    client.create_certificate(Some(token), csr, 0).await
}
