//! The signing API over real TLS on loopback, with a tonic client: what an
//! agent sees.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use citadel::signing::Signer;
use citadel::state::StateDir;
use citadel::{Ca, CaConfig, RateLimiter, SpiffeId, Tokens, verify};
use citadel_server::client::ClientConfig;
use citadel_server::{CaClient, CaServer, CaServerConfig};
use rcgen::{CertificateParams, KeyPair, SanType};
use tonic::Code;

const HOUR: Duration = Duration::from_secs(3600);
const WEB: &str = "spiffe://cluster.local/ns/shop/sa/web";

struct Fixture {
    _dir: tempfile::TempDir,
    signer: Arc<Signer>,
    server: CaServer,
}

async fn start(dir: tempfile::TempDir, limiter: Option<RateLimiter>) -> Fixture {
    let mut config = CaConfig::new(dir.path(), "cluster.local");
    config.max_workload_cert_ttl = 48 * HOUR;
    let signer = Arc::new(Signer {
        ca: Ca::open(&config).unwrap(),
        tokens: Tokens::open(&StateDir::open(dir.path()).unwrap(), "cluster.local").unwrap(),
        limiter,
    });
    let server = CaServer::start(
        signer.clone(),
        &CaServerConfig::new("127.0.0.1:0".parse().unwrap(), "bowline-system"),
    )
    .await
    .unwrap();
    Fixture {
        _dir: dir,
        signer,
        server,
    }
}

impl Fixture {
    async fn client(&self, identity: Option<(String, String)>) -> CaClient {
        self.client_for("localhost", identity).await.unwrap()
    }

    async fn client_for(
        &self,
        server_name: &str,
        identity: Option<(String, String)>,
    ) -> Result<CaClient, citadel_server::client::Error> {
        CaClient::connect(
            self.server.addr,
            &ClientConfig {
                roots_pem: self.signer.ca.trust_bundle_pem().to_string(),
                server_name: server_name.to_string(),
                identity,
            },
        )
        .await
    }

    fn token(&self, ns: &str, sa: &str) -> String {
        self.signer
            .tokens
            .mint(ns, sa, HOUR, SystemTime::now())
            .unwrap()
    }
}

/// A CSR asking for `uris`, and its key (PEM).
fn csr(uris: &[&str]) -> (String, String) {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = uris
        .iter()
        .map(|u| SanType::URI((*u).try_into().unwrap()))
        .collect();
    (
        params.serialize_request(&key).unwrap().pem().unwrap(),
        key.serialize_pem(),
    )
}

fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

#[tokio::test]
async fn a_good_token_is_signed_for_exactly_its_identity() {
    let ca = start(tempdir(), None).await;
    let mut client = ca.client(None).await;
    let token = ca.token("shop", "web");
    let (request, _) = csr(&[WEB]);
    let chain = client
        .create_certificate(Some(&token), request, 3600)
        .await
        .unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[1], *ca.signer.ca.trust_bundle_pem());
    let id = verify::workload_chain(&chain, &ca.signer.ca.roots(), SystemTime::now()).unwrap();
    assert_eq!(id, SpiffeId::new("shop", "web"));
    let leaf = citadel::pem::certificates("leaf", &chain[0]).unwrap();
    let (_, cert) = x509_parser::parse_x509_certificate(leaf[0].as_ref()).unwrap();
    let v = cert.validity();
    assert_eq!(
        v.not_after.timestamp() - v.not_before.timestamp(),
        3600 + 60
    );
    ca.server.stop().await;
}

/// What is refused: why, the token, the URIs the CSR asks for, the TTL, the code.
type Case<'a> = (&'a str, Option<String>, Vec<&'a str>, i64, Code);

#[tokio::test]
async fn refusals_carry_istios_status_codes() {
    let dir = tempdir();
    let elsewhere = tempdir();
    let ca = start(dir, None).await;
    let mut client = ca.client(None).await;
    let now = SystemTime::now();
    let tokens = &ca.signer.tokens;
    let other_key =
        Tokens::open(&StateDir::open(elsewhere.path()).unwrap(), "cluster.local").unwrap();
    let web = ca.token("shop", "web");

    let cases: Vec<Case> = vec![
        (
            "another identity",
            Some(web.clone()),
            vec!["spiffe://cluster.local/ns/shop/sa/admin"],
            0,
            Code::PermissionDenied,
        ),
        (
            "expired",
            Some(tokens.mint("shop", "web", HOUR, now - 2 * HOUR).unwrap()),
            vec![WEB],
            0,
            Code::Unauthenticated,
        ),
        (
            "forged",
            Some(other_key.mint("shop", "web", HOUR, now).unwrap()),
            vec![WEB],
            0,
            Code::Unauthenticated,
        ),
        (
            "wrong audience",
            Some(
                tokens
                    .mint_for("shop", "web", "istio-ca", HOUR, now)
                    .unwrap(),
            ),
            vec![WEB],
            0,
            Code::Unauthenticated,
        ),
        ("no token", None, vec![WEB], 0, Code::Unauthenticated),
        (
            "ttl over the maximum",
            Some(web.clone()),
            vec![WEB],
            48 * 3600 + 1,
            Code::InvalidArgument,
        ),
        (
            "negative ttl",
            Some(web.clone()),
            vec![WEB],
            -1,
            Code::InvalidArgument,
        ),
    ];
    for (case, token, uris, ttl, code) in cases {
        let (request, _) = csr(&uris);
        let status = client
            .create_certificate(token.as_deref(), request, ttl)
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{case}: {status:?}");
    }
    let status = client
        .create_certificate(Some(&web), "not a CSR".into(), 0)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(status.message(), "csr: not a PEM certificate request");
    ca.server.stop().await;
}

#[tokio::test]
async fn the_rate_limit_is_resource_exhausted() {
    let ca = start(tempdir(), Some(RateLimiter::new(0.001, 1))).await;
    let mut client = ca.client(None).await;
    let web = ca.token("shop", "web");
    assert!(
        client
            .create_certificate(Some(&web), csr(&[]).0, 0)
            .await
            .is_ok()
    );
    let status = client
        .create_certificate(Some(&web), csr(&[]).0, 0)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    let other = ca.token("shop", "other");
    assert!(
        client
            .create_certificate(Some(&other), csr(&[]).0, 0)
            .await
            .is_ok()
    );
    ca.server.stop().await;
}

#[tokio::test]
async fn renewal_over_mtls_with_the_workload_certificate() {
    let ca = start(tempdir(), None).await;
    let mut client = ca.client(None).await;
    let (request, key) = csr(&[WEB]);
    let chain = client
        .create_certificate(Some(&ca.token("shop", "web")), request, 0)
        .await
        .unwrap();

    let mut renewing = ca.client(Some((chain.concat(), key))).await;
    let (request, _) = csr(&[WEB]);
    let renewed = renewing.create_certificate(None, request, 0).await.unwrap();
    let id = verify::workload_chain(&renewed, &ca.signer.ca.roots(), SystemTime::now()).unwrap();
    assert_eq!(id, SpiffeId::new("shop", "web"));
    let (request, _) = csr(&["spiffe://cluster.local/ns/shop/sa/admin"]);
    let status = renewing
        .create_certificate(None, request, 0)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // A certificate from another CA is no credential: the handshake refuses it.
    let other = tempdir();
    let stranger = Ca::open(&CaConfig::new(other.path(), "cluster.local")).unwrap();
    let foreign = stranger
        .serving_cert(&[], &["foreign.example".to_string()], SystemTime::now())
        .unwrap();
    if let Ok(mut client) = ca
        .client_for("localhost", Some((foreign.chain_pem, foreign.key_pem)))
        .await
    {
        let (request, _) = csr(&[]);
        assert!(client.create_certificate(None, request, 0).await.is_err());
    }
    ca.server.stop().await;
}

#[tokio::test]
async fn the_serving_certificate_holds_the_control_planes_names() {
    let ca = start(tempdir(), None).await;
    for name in [
        "localhost",
        "istiod.istio-system.svc",
        "bowline.bowline-system.svc",
        "127.0.0.1",
    ] {
        let mut client = ca.client_for(name, None).await.unwrap();
        let web = ca.token("shop", "web");
        assert!(
            client
                .create_certificate(Some(&web), csr(&[]).0, 0)
                .await
                .is_ok(),
            "{name}"
        );
    }
    let refused = match ca.client_for("example.com", None).await {
        Err(_) => true,
        Ok(mut client) => client
            .create_certificate(Some(&ca.token("a", "b")), csr(&[]).0, 0)
            .await
            .is_err(),
    };
    assert!(refused, "a name the certificate does not hold is refused");
    ca.server.stop().await;
}

#[tokio::test]
async fn the_tls_server_follows_a_root_rotation() {
    let dir = tempdir();
    let path = dir.path().to_path_buf();
    let ca = start(dir, None).await;
    let old_bundle = ca.signer.ca.trust_bundle_pem().to_string();
    citadel::rotation::begin(
        &CaConfig::new(&path, "cluster.local"),
        SystemTime::now(),
        false,
    )
    .unwrap();
    ca.signer.ca.reload().unwrap();
    ca.signer.ca.sign_with_new_root().unwrap();
    let until = ca.signer.ca.rotation().old_signed_until.unwrap();
    let after = SystemTime::UNIX_EPOCH + Duration::from_secs(until);
    ca.signer.ca.retire_old_root(after).unwrap().unwrap();
    let new_bundle = ca.signer.ca.trust_bundle_pem().to_string();
    assert_ne!(new_bundle, old_bundle);

    // A client that trusts only the new root reaches the CA (a new serving
    // certificate), and one that still trusts only the old root does too
    // (through the cross-signature in the serving chain).
    let (request, key) = csr(&[WEB]);
    let mut client = ca.client(None).await;
    let chain = client
        .create_certificate(Some(&ca.token("shop", "web")), request, 0)
        .await
        .unwrap();
    let connect = |roots: String, identity| {
        let addr = ca.server.addr;
        async move {
            CaClient::connect(
                addr,
                &ClientConfig {
                    roots_pem: roots,
                    server_name: "localhost".to_string(),
                    identity,
                },
            )
            .await
            .unwrap()
        }
    };
    let (request, _) = csr(&[WEB]);
    let mut old_trust = connect(old_bundle, None).await;
    old_trust
        .create_certificate(Some(&ca.token("shop", "web")), request, 0)
        .await
        .unwrap();
    // A certificate of the new root is a credential: the handshake checks
    // it against the new bundle.
    let mut renewing = connect(new_bundle, Some((chain.concat(), key))).await;
    let (request, _) = csr(&[WEB]);
    let renewed = renewing.create_certificate(None, request, 0).await.unwrap();
    let id = verify::workload_chain(&renewed, &ca.signer.ca.roots(), SystemTime::now()).unwrap();
    assert_eq!(id, SpiffeId::new("shop", "web"));
    ca.server.stop().await;
}

/// `bowline.ca.v1.Trust/Watch`: the current trust at once, then each
/// change the control plane publishes, here a forced rotation's switch to
/// the new key, which asks agents to renew.
#[tokio::test]
async fn the_trust_watch_streams_the_bundle_and_a_forced_reissue() {
    let dir = tempdir();
    let path = dir.path().to_path_buf();
    let ca = start(dir, None).await;
    let (publish, trust) = tokio::sync::watch::channel(ca.signer.ca.trust());
    let routes =
        tonic::service::Routes::new(citadel_server::CertificateService::new(ca.signer.clone()))
            .add_service(citadel_server::TrustService::new(trust));
    let server = CaServer::start_routes(
        ca.signer.clone(),
        &CaServerConfig::new("127.0.0.1:0".parse().unwrap(), "bowline-system"),
        routes,
    )
    .await
    .unwrap();
    let mut client = CaClient::connect(
        server.addr,
        &ClientConfig {
            roots_pem: ca.signer.ca.trust_bundle_pem().to_string(),
            server_name: "localhost".to_string(),
            identity: None,
        },
    )
    .await
    .unwrap();
    let mut updates = client.watch_trust().await.unwrap();
    let first = updates.message().await.unwrap().unwrap();
    assert_eq!(
        first,
        citadel_server::trust::to_proto(&ca.signer.ca.trust())
    );
    assert!(!first.reissue);
    assert_eq!(first.bundle_pem.matches("BEGIN CERTIFICATE").count(), 1);
    assert_eq!(first.signing_root_pem.trim(), first.bundle_pem.trim());

    citadel::rotation::begin(
        &CaConfig::new(&path, "cluster.local"),
        SystemTime::now(),
        true,
    )
    .unwrap();
    ca.signer.ca.reload().unwrap();
    publish.send_replace(ca.signer.ca.trust());
    let distributing = updates.message().await.unwrap().unwrap();
    assert_eq!(
        distributing.bundle_pem.matches("BEGIN CERTIFICATE").count(),
        2
    );
    assert!(!distributing.reissue, "the old key still signs");

    ca.signer.ca.sign_with_new_root().unwrap();
    publish.send_replace(ca.signer.ca.trust());
    let reissuing = updates.message().await.unwrap().unwrap();
    assert!(reissuing.reissue);
    let (request, _) = csr(&[WEB]);
    let chain = client
        .create_certificate(Some(&ca.token("shop", "web")), request, 0)
        .await
        .unwrap();
    assert_eq!(reissuing.signing_root_pem, *chain.last().unwrap());
    assert_ne!(reissuing.signing_root_pem, first.signing_root_pem);
    // The stream ends with its sender, as at the control plane's shutdown.
    drop(publish);
    assert_eq!(updates.message().await.unwrap(), None);
    server.stop().await;
    ca.server.stop().await;
}
