//! The agent's certificate path in one process: a real CA over TLS, the
//! agent's SDS server on a Unix socket, and a tonic SDS client standing in
//! for Envoy on that socket.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use citadel::signing::Signer;
use citadel::state::StateDir;
use citadel::{Ca, CaConfig, SpiffeId, Tokens, verify};
use citadel_server::{CaServer, CaServerConfig};
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{Secret, secret};
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use hyper_util::rt::TokioIo;
use pilot_sds::{CertificateAgent, CertificateConfig, SdsServer};
use prost::{Message, Name};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Endpoint, Uri};

/// Only guards against a hang; nothing waits this long when all is well.
const HANG_GUARD: Duration = Duration::from_secs(60);

struct TestCa {
    signer: Arc<Signer>,
    server: CaServer,
    root: PathBuf,
}

/// A CA on loopback whose certificates live `ttl`, its root written to `dir`.
async fn start_ca(dir: &Path, ttl: Duration) -> TestCa {
    let mut config = CaConfig::new(dir.join("state"), "cluster.local");
    config.workload_cert_ttl = ttl;
    let signer = Arc::new(Signer {
        ca: Ca::open(&config).unwrap(),
        tokens: Tokens::open(&StateDir::open(dir.join("state")).unwrap(), "cluster.local").unwrap(),
        limiter: None,
    });
    let server = CaServer::start(
        signer.clone(),
        &CaServerConfig::new("127.0.0.1:0".parse().unwrap(), "bowline-system"),
    )
    .await
    .unwrap();
    let root = dir.join("ca-root.pem");
    std::fs::write(&root, signer.ca.trust_bundle_pem().as_bytes()).unwrap();
    TestCa {
        signer,
        server,
        root,
    }
}

impl TestCa {
    fn token_file(&self, dir: &Path, ns: &str, sa: &str) -> PathBuf {
        let token = self
            .signer
            .tokens
            .mint(ns, sa, Duration::from_secs(3600), SystemTime::now())
            .unwrap();
        let path = dir.join(format!("token-{ns}-{sa}"));
        std::fs::write(&path, token).unwrap();
        path
    }
}

async fn sds_client(path: &Path) -> SecretDiscoveryServiceClient<tonic::transport::Channel> {
    let path = path.to_path_buf();
    let channel = Endpoint::from_static("http://sds.invalid")
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .unwrap();
    SecretDiscoveryServiceClient::new(channel)
}

fn request(version: &str, nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: version.into(),
        resource_names: vec!["default".into()],
        type_url: Secret::type_url(),
        response_nonce: nonce.into(),
        ..Default::default()
    }
}

/// The chain and key PEM of the one secret in `response`, which must be `default`.
fn tls_certificate(response: &DiscoveryResponse) -> (String, String) {
    assert_eq!(response.type_url, Secret::type_url());
    assert_eq!(response.resources.len(), 1);
    let secret = Secret::decode(response.resources[0].value.as_slice()).unwrap();
    assert_eq!(secret.name, "default");
    let Some(secret::Type::TlsCertificate(tls)) = secret.r#type else {
        panic!("not a tls_certificate");
    };
    let text = |d: Option<envoy_types::pb::envoy::config::core::v3::DataSource>| match d
        .and_then(|d| d.specifier)
    {
        Some(Specifier::InlineBytes(b)) => String::from_utf8(b).unwrap(),
        _ => panic!("not inline bytes"),
    };
    (text(tls.certificate_chain), text(tls.private_key))
}

/// The chain's leaf verifies under the CA's root, for `want`.
fn assert_verifies(ca: &TestCa, chain_pem: &str, want: &SpiffeId) {
    let id = verify::workload_chain(
        &[chain_pem.to_string()],
        &ca.signer.ca.roots(),
        SystemTime::now(),
    )
    .unwrap();
    assert_eq!(&id, want);
}

struct Agent {
    certs: CertificateAgent,
    sds: SdsServer,
}

async fn start_agent(ca: &TestCa, dir: &Path, identity: SpiffeId) -> Agent {
    let token = ca.token_file(dir, &identity.namespace, &identity.service_account);
    let cfg = CertificateConfig::new(ca.server.addr, ca.root.clone(), token, identity);
    let certs = CertificateAgent::start(cfg);
    let sds = SdsServer::start(dir, "sds.sock", certs.secrets())
        .await
        .unwrap();
    Agent { certs, sds }
}

#[tokio::test]
async fn envoy_gets_the_workload_certificate_over_sds() {
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca(dir.path(), Duration::from_secs(3600)).await;
    let id = SpiffeId::new("shop", "web");
    let agent = start_agent(&ca, dir.path(), id.clone()).await;
    assert!(agent.sds.path().starts_with(dir.path()));

    let mut client = sds_client(agent.sds.path()).await;
    let (tx, rx) = mpsc::channel(4);
    tx.send(request("", "")).await.unwrap();
    let mut responses = client
        .stream_secrets(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let first = tokio::time::timeout(HANG_GUARD, responses.message())
        .await
        .expect("no secret")
        .unwrap()
        .unwrap();
    let (chain, key) = tls_certificate(&first);
    assert_verifies(&ca, &chain, &id);
    assert!(key.contains("BEGIN PRIVATE KEY"));

    // FetchSecrets answers the same.
    let fetched = client
        .fetch_secrets(request("", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(tls_certificate(&fetched), (chain, key));

    agent.sds.stop().await;
    agent.certs.stop().await;
    ca.server.stop().await;
}

#[tokio::test]
async fn a_renewed_certificate_is_pushed_on_the_open_stream() {
    let dir = tempfile::tempdir().unwrap();
    // Renewed at half of 4 s: a second certificate in about 2 s.
    let ca = start_ca(dir.path(), Duration::from_secs(4)).await;
    let id = SpiffeId::new("shop", "reviews");
    let agent = start_agent(&ca, dir.path(), id.clone()).await;

    let mut client = sds_client(agent.sds.path()).await;
    let (tx, rx) = mpsc::channel(4);
    tx.send(request("", "")).await.unwrap();
    let mut responses = client
        .stream_secrets(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    let next = async |responses: &mut tonic::Streaming<DiscoveryResponse>| {
        tokio::time::timeout(HANG_GUARD, responses.message())
            .await
            .expect("no secret pushed")
            .unwrap()
            .expect("stream ended")
    };
    let first = next(&mut responses).await;
    tx.send(request(&first.version_info, &first.nonce))
        .await
        .unwrap();
    let second = next(&mut responses).await;
    assert_ne!(second.version_info, first.version_info);
    let (chain1, key1) = tls_certificate(&first);
    let (chain2, key2) = tls_certificate(&second);
    assert_ne!(chain1, chain2);
    assert_ne!(key1, key2, "each renewal has a fresh key");
    assert_verifies(&ca, &chain2, &id);

    agent.sds.stop().await;
    agent.certs.stop().await;
    ca.server.stop().await;
}

#[tokio::test]
async fn a_deep_work_dir_gets_a_short_socket() {
    let dir = tempfile::tempdir().unwrap();
    let ca = start_ca(dir.path(), Duration::from_secs(3600)).await;
    let deep = dir.path().join("w".repeat(100));
    std::fs::create_dir_all(&deep).unwrap();
    let agent = start_agent(&ca, &deep, SpiffeId::new("shop", "web")).await;
    let socket = agent.sds.path().to_path_buf();
    assert!(!socket.starts_with(&deep));
    assert!(socket.as_os_str().len() <= pilot_sds::server::MAX_SOCKET_PATH);
    let mut client = sds_client(&socket).await;
    assert!(agent.certs.first().await.is_some());
    let fetched = client
        .fetch_secrets(request("", ""))
        .await
        .unwrap()
        .into_inner();
    tls_certificate(&fetched);
    agent.sds.stop().await;
    assert!(!socket.exists() && !socket.parent().unwrap().exists());
    agent.certs.stop().await;
    ca.server.stop().await;
}
