//! xDS over mutual TLS as `bowline serve` runs it: beside the CA on
//! `--ca-addr`, with no plaintext xDS unless `--xds-addr` asks for it. A
//! stream presents a workload certificate from the CA and its node may
//! claim only that certificate's namespace and service account; a client
//! without a certificate, or one claiming another identity, is refused.
//! The client is tonic over rustls with a certificate the CA signed for a
//! token: a hostile or careless process, which is what the check is for.
//! The validating admission webhook answers on the same port, over HTTPS.

mod common;

use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use citadel_server::CaClient;
use citadel_server::client::ClientConfig;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Struct, Value};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use rcgen::{CertificateParams, KeyPair, SanType};
use tokio::process::{Child, Command};
use tonic::Code;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

const BOWLINE: &str = env!("CARGO_BIN_EXE_bowline");
/// A loopback address of this test's own.
const HOST: &str = "127.0.92.250";
const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";

fn serve(dir: &Path) -> Child {
    Command::new(BOWLINE)
        .arg("serve")
        .arg("--config-dir")
        .arg(dir.join("config"))
        .args(["--admin-addr", &format!("{HOST}:15014")])
        .args(["--ca-addr", &format!("{HOST}:15012")])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("serve.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

/// A workload certificate (chain, key) for `shop/web`, from the CA.
async fn certificate(dir: &Path, bundle: &str) -> (String, String) {
    let out = std::process::Command::new(BOWLINE)
        .args(["token", "create", "--state-dir"])
        .arg(dir.join("state"))
        .args(["--namespace", "shop", "--service-account", "web"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let mut ca = CaClient::connect(
        format!("{HOST}:15012").parse().unwrap(),
        &ClientConfig {
            roots_pem: bundle.to_string(),
            server_name: "istiod.istio-system.svc".to_string(),
            identity: None,
        },
    )
    .await
    .unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(
        "spiffe://cluster.local/ns/shop/sa/web".try_into().unwrap(),
    )];
    let csr = params.serialize_request(&key).unwrap().pem().unwrap();
    let chain = ca.create_certificate(Some(&token), csr, 0).await.unwrap();
    (chain.concat(), key.serialize_pem())
}

async fn channel(bundle: &str, identity: Option<&(String, String)>) -> Channel {
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(bundle))
        .domain_name("istiod.istio-system.svc");
    if let Some((chain, key)) = identity {
        tls = tls.identity(Identity::from_pem(chain, key));
    }
    Endpoint::from_shared(format!("https://{HOST}:15012"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect()
        .await
        .unwrap()
}

fn node(service_account: &str) -> Node {
    let string = |s: &str| Value {
        kind: Some(Kind::StringValue(s.to_string())),
    };
    Node {
        id: "sidecar~127.0.92.1~web.shop~shop.svc.cluster.local".to_string(),
        metadata: Some(Struct {
            fields: [
                ("namespace", string("shop")),
                ("workload", string("web")),
                ("address", string("127.0.92.1")),
                ("service_account", string(service_account)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        }),
        ..Default::default()
    }
}

/// A stream opened as `node`, kept open, and the type of its first answer.
struct Open {
    _requests: tokio::sync::mpsc::Sender<DiscoveryRequest>,
    _responses: tonic::Streaming<envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse>,
    first: String,
}

async fn open(channel: Channel, node: Node) -> Result<Open, tonic::Status> {
    let mut client = AggregatedDiscoveryServiceClient::new(channel);
    let request = DiscoveryRequest {
        node: Some(node),
        type_url: CDS.to_string(),
        ..Default::default()
    };
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(request).await.unwrap();
    let mut responses = client
        .stream_aggregated_resources(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    let answer = tokio::time::timeout(Duration::from_secs(30), responses.message())
        .await
        .expect("an answer within the limit")?;
    Ok(Open {
        _requests: tx,
        _responses: responses,
        first: answer.expect("the stream stays open").type_url,
    })
}

async fn first_answer(channel: Channel, node: Node) -> Result<String, tonic::Status> {
    open(channel, node).await.map(|o| o.first)
}

#[tokio::test]
async fn xds_over_mutual_tls_serves_only_the_certificates_own_identity() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    let server = serve(dir.path());
    let bundle = common::trust_bundle(HOST, None).await;
    let web = certificate(dir.path(), &bundle).await;

    // The certificate's own identity is served, and the proxy's status
    // names it.
    let served = open(channel(&bundle, Some(&web)).await, node("web"))
        .await
        .unwrap();
    assert_eq!(served.first, CDS);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let start = Instant::now();
    loop {
        let proxies: serde_json::Value = http
            .get(format!("http://{HOST}:15014/api/v1/proxies"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let identity = proxies[0]["identity"].clone();
        if identity == "spiffe://cluster.local/ns/shop/sa/web" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the stream is not listed with its identity: {proxies:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(served);

    // Another service account on the same certificate is refused.
    let refused = first_answer(channel(&bundle, Some(&web)).await, node("admin"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("spiffe://cluster.local/ns/shop/sa/web")
    );

    // No certificate: refused before any request is read.
    let anonymous = first_answer(channel(&bundle, None).await, node("web"))
        .await
        .unwrap_err();
    assert_eq!(anonymous.code(), Code::Unauthenticated, "{anonymous:?}");

    // The validating webhook answers beside them, over HTTPS as the API
    // server calls it, trusting the bundle.
    let https = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(bundle.as_bytes()).unwrap())
        .resolve(
            "istiod.istio-system.svc",
            format!("{HOST}:15012").parse().unwrap(),
        )
        .build()
        .unwrap();
    let review = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {"uid": "u1", "operation": "CREATE", "object": {
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "reviews", "namespace": "shop"},
            "spec": {"host": "reviews", "trafficPolicy": {"loadBalancer": {"simple": "FASTEST"}}},
        }},
    });
    let answer: serde_json::Value = https
        .post("https://istiod.istio-system.svc:15012/validate")
        .json(&review)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(answer["response"]["uid"], "u1");
    assert_eq!(answer["response"]["allowed"], false, "{answer}");
    let message = answer["response"]["status"]["message"].as_str().unwrap();
    assert!(
        message.contains("spec.trafficPolicy.loadBalancer.simple"),
        "{message}"
    );

    // No plaintext xDS without --xds-addr.
    assert!(
        tokio::net::TcpStream::connect(format!("{HOST}:15010"))
            .await
            .is_err()
    );

    let pid = i32::try_from(server.id().unwrap()).unwrap();
    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
}
