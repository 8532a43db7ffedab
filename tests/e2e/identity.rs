//! Workload certificates with the real CA and real Envoy: each agent gets
//! its SPIFFE certificate and serves it on its SDS socket, which Envoy's
//! bootstrap names as the `sds-grpc` cluster.
//!
//! Envoy 1.40 subscribes to an SDS secret only when a listener or cluster
//! references it, and nothing in the sidecars' config does yet (mTLS comes
//! with the control plane's security config), so a sidecar's `/certs` is
//! still empty and it opens no SDS stream. So the sidecars are checked for
//! `sds-grpc` on the agent's pipe and the secret is read from the socket;
//! then a second, probe Envoy whose one static listener references
//! `default` through `sds-grpc` on a sidecar's socket shows, in its
//! `/certs`, the workload's SPIFFE id: real Envoy reading the agent's SDS.

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
use crate::harness::{Mesh, envoy, wait_for};
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

    let socket = mesh.work_dir("frontend").join("sds.sock");
    probe_envoy_reads_default(&mesh, &socket).await;
    // The stream to Envoy logged nothing of the key either.
    let (_, key) = wait_for_default("frontend", &socket).await;
    let log = mesh.agent_log("frontend");
    assert!(log.contains("SDS stream opened"), "{log}");
    for line in key.lines().filter(|l| !l.starts_with("-----")) {
        assert!(!log.contains(line), "frontend's log holds its key");
    }
}

/// A bootstrap whose listener serves TLS with the secret `default` from
/// the SDS socket at `socket`.
fn probe_bootstrap(admin: &str, listener: &str, socket: &Path) -> serde_json::Value {
    let address = |host: &str, port: u16| serde_json::json!({ "socket_address": { "address": host, "port_value": port } });
    serde_json::json!({
        "node": { "id": "sds-probe", "cluster": "sds-probe" },
        "admin": { "address": address(admin, 15000) },
        "static_resources": {
            "clusters": [{
                "name": "sds-grpc",
                "type": "STATIC",
                "connect_timeout": "1s",
                "load_assignment": {
                    "cluster_name": "sds-grpc",
                    "endpoints": [{ "lb_endpoints": [{ "endpoint": {
                        "address": { "pipe": { "path": socket.display().to_string() } },
                    } }] }],
                },
                "typed_extension_protocol_options": {
                    "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
                        "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
                        "explicit_http_config": { "http2_protocol_options": {} },
                    },
                },
            }],
            "listeners": [{
                "name": "probe",
                "address": address(listener, 15443),
                "filter_chains": [{
                    "filters": [{
                        "name": "envoy.filters.network.tcp_proxy",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy",
                            "stat_prefix": "probe",
                            "cluster": "sds-grpc",
                        },
                    }],
                    "transport_socket": {
                        "name": "envoy.transport_sockets.tls",
                        "typed_config": {
                            "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.DownstreamTlsContext",
                            "common_tls_context": {
                                "tls_certificate_sds_secret_configs": [{
                                    "name": "default",
                                    "sds_config": {
                                        "resource_api_version": "V3",
                                        "api_config_source": {
                                            "api_type": "GRPC",
                                            "transport_api_version": "V3",
                                            "grpc_services": [{ "envoy_grpc": { "cluster_name": "sds-grpc" } }],
                                        },
                                    },
                                }],
                            },
                        },
                    },
                }],
            }],
        },
    })
}

/// Runs a probe Envoy on the agent's socket until its `/certs` shows the
/// frontend's SPIFFE id.
async fn probe_envoy_reads_default(mesh: &Mesh, socket: &Path) {
    let host = mesh.address(9).to_string();
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = dir.path().join("probe.json");
    std::fs::write(
        &bootstrap,
        probe_bootstrap(&host, &host, socket).to_string(),
    )
    .unwrap();
    let mut probe = tokio::process::Command::new(envoy())
        .arg("-c")
        .arg(&bootstrap)
        .arg("--disable-hot-restart")
        .args(["--log-level", "warning", "--log-path"])
        .arg(dir.path().join("probe.log"))
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let certs_url = format!("http://{host}:15000/certs");
    let want = "spiffe://cluster.local/ns/default/sa/frontend";
    wait_for(
        "the probe Envoy's /certs to show the frontend's SPIFFE id",
        Duration::from_secs(30),
        || {
            let (http, url) = (http.clone(), certs_url.clone());
            async move {
                let Ok(response) = http.get(&url).send().await else {
                    return false;
                };
                let certs: serde_json::Value = response.json().await.unwrap_or_default();
                certs["certificates"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .flat_map(|c| c["cert_chain"].as_array().into_iter().flatten())
                    .flat_map(|c| c["subject_alt_names"].as_array().into_iter().flatten())
                    .any(|san| san["uri"] == want)
            }
        },
    )
    .await;
    let _ = probe.start_kill();
    let _ = probe.wait().await;
}
