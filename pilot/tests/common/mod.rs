//! What the `bowline` binary's integration tests share: waiting for a
//! control plane's trust bundle, and asking its CA for a certificate.
//! (Each test file is a crate of its own and uses some of it.)
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
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

/// A `bowline serve --registry kubernetes` replica named `name` (its
/// `POD_NAME`) on `host` (admin :15014, CA :15012), against the cluster of
/// `kubeconfig`, with a short lease; its state directory and log in `dir`.
pub(crate) fn replica(
    name: &str,
    host: &str,
    kubeconfig: &Path,
    dir: &Path,
) -> tokio::process::Child {
    replica_with(name, host, kubeconfig, dir, &[])
}

/// [`replica`], with more `bowline serve` flags.
pub(crate) fn replica_with(
    name: &str,
    host: &str,
    kubeconfig: &Path,
    dir: &Path,
    extra: &[&str],
) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_bowline"))
        .args(["serve", "--registry", "kubernetes", "--kubeconfig"])
        .arg(kubeconfig)
        .args(["--admin-addr", &format!("{host}:15014")])
        .args(["--ca-addr", &format!("{host}:15012")])
        .args(["--lease-duration", "3s", "--lease-retry", "1s"])
        .arg("--state-dir")
        .arg(dir.join(name))
        .args(extra)
        .env("POD_NAME", name)
        .env("POD_NAMESPACE", "istio-system")
        .env("BOWLINE_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}
