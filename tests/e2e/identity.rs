//! Workload certificates with the real CA and real Envoy: each agent gets
//! its SPIFFE certificate and serves it on its SDS socket, which Envoy's
//! bootstrap names as the `sds-grpc` cluster.
//!
//! Envoy 1.40 subscribes to an SDS secret only when a listener or cluster
//! references it, and nothing does yet (mTLS comes with the control plane's
//! security config), so Envoy's `/certs` is still empty here. What this test
//! checks on Envoy is that it loaded `sds-grpc` on the agent's pipe; the
//! secret itself is read from the socket as Envoy would read it.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use citadel::SpiffeId;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{Secret, secret};
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_client::SecretDiscoveryServiceClient;
use hyper_util::rt::TokioIo;
use prost::{Message, Name};
use tonic::transport::{Endpoint, Uri};

use crate::fixture::{Workload, service};
use crate::harness::Mesh;
use crate::workload_entry;

const SUBNET: u8 = 120;

/// The chain and key of `default`, fetched from the SDS socket at `path`;
/// `None` while the agent has no certificate yet.
async fn fetch_default(path: &Path) -> Option<(String, String)> {
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
    let mut client = SecretDiscoveryServiceClient::new(channel);
    let response = client
        .fetch_secrets(DiscoveryRequest {
            resource_names: vec!["default".into()],
            type_url: Secret::type_url(),
            ..Default::default()
        })
        .await
        .ok()?
        .into_inner();
    let secret = Secret::decode(response.resources[0].value.as_slice()).unwrap();
    assert_eq!(secret.name, "default");
    let Some(secret::Type::TlsCertificate(tls)) = secret.r#type else {
        panic!("default is not a tls_certificate");
    };
    let text = |d: Option<envoy_types::pb::envoy::config::core::v3::DataSource>| match d
        .and_then(|d| d.specifier)
    {
        Some(Specifier::InlineBytes(b)) => String::from_utf8(b).unwrap(),
        _ => panic!("not inline bytes"),
    };
    Some((text(tls.certificate_chain), text(tls.private_key)))
}

/// Waits for `default` on `path`, with a limit that only guards against a hang.
pub async fn wait_for_default(name: &str, path: &Path) -> (String, String) {
    let start = Instant::now();
    loop {
        if let Some(secret) = fetch_default(path).await {
            return secret;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "gave up waiting for {name}'s certificate"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_sidecar_gets_its_spiffe_certificate_over_sds() {
    let workloads = [
        Workload::new("frontend", 1, &[("app", "frontend")]),
        Workload::new("reviews", 2, &[("app", "reviews")]),
    ];
    let mut mesh = Mesh::new(SUBNET).with_identities();
    let entries: Vec<String> = workloads
        .iter()
        .map(|w| workload_entry(w.name, mesh.address(w.host), w.labels))
        .collect();
    mesh.write("workloads.yaml", &entries.join("---\n"));
    mesh.write(
        "services.yaml",
        &format!(
            "{}---\n{}",
            service("frontend", &[8000]),
            service("reviews", &[9080])
        ),
    );
    mesh.start_control_plane().await;
    for w in &workloads {
        mesh.start_workload(w.name, w.host, w.labels, "sotw").await;
    }
    mesh.wait_converged(&["frontend", "reviews"]).await;

    let bundle = mesh.admin_text("/api/v1/trust-bundle").await;
    let roots = citadel::pem::certificates("bundle", &bundle).unwrap();
    for w in &workloads {
        // Envoy loaded the agent's pipe as its sds-grpc cluster.
        let socket = mesh.work_dir(w.name).join("sds.sock");
        let clusters = mesh.envoy_admin(w.host, "/clusters?format=json").await;
        let clusters: serde_json::Value = serde_json::from_str(&clusters).unwrap();
        let sds = clusters["cluster_statuses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "sds-grpc")
            .unwrap_or_else(|| panic!("{}: no sds-grpc cluster in {clusters}", w.name));
        assert_eq!(
            sds["host_statuses"][0]["address"]["pipe"]["path"],
            socket.display().to_string(),
            "{}",
            w.name
        );

        // The socket serves default: the workload's own SPIFFE id, under the CA's root.
        let (chain, key) = wait_for_default(w.name, &socket).await;
        let id = citadel::verify::workload_chain(&[chain], &roots, SystemTime::now()).unwrap();
        assert_eq!(id, SpiffeId::new("default", w.name));

        // Not a line of the key in the agent's log, at trace level.
        let log = mesh.agent_log(w.name);
        assert!(log.contains("workload certificate issued"), "{log}");
        for line in key.lines().filter(|l| !l.starts_with("-----")) {
            assert!(!log.contains(line), "{}'s log holds its key", w.name);
        }
        assert!(!log.contains("PRIVATE KEY"));
    }
}
