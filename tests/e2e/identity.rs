//! Workload certificates with the real CA and real Envoy: each agent gets
//! its SPIFFE certificate and serves it on its SDS socket, which Envoy's
//! bootstrap names as the `sds-grpc` cluster.
//!
//! The sidecars are checked for `sds-grpc` on the agent's pipe and the
//! secret is read from the socket; then a second, probe Envoy whose one
//! static listener references `default` through `sds-grpc` on a sidecar's
//! socket shows, in its `/certs`, the workload's SPIFFE id: real Envoy
//! reading the agent's SDS. (Mutual TLS between sidecars, which makes the
//! sidecars themselves subscribe, is tested in `mtls`.)

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
use crate::harness::{Mesh, envoy};
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
    let probe = Probe::start(&mesh, 9, &socket);
    probe
        .wait_for_serial("spiffe://cluster.local/ns/default/sa/frontend", None)
        .await;
    probe.stop().await;
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

/// An Envoy of the test's own whose listener references `default` on an agent's socket.
struct Probe {
    child: tokio::process::Child,
    certs_url: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Probe {
    /// Starts it at `127.0.SUBNET.<host>` on `socket`.
    fn start(mesh: &Mesh, host: u8, socket: &Path) -> Probe {
        let host = mesh.address(host).to_string();
        let dir = tempfile::tempdir().unwrap();
        let bootstrap = dir.path().join("probe.json");
        std::fs::write(
            &bootstrap,
            probe_bootstrap(&host, &host, socket).to_string(),
        )
        .unwrap();
        let child = tokio::process::Command::new(envoy())
            .arg("-c")
            .arg(&bootstrap)
            .arg("--disable-hot-restart")
            .args(["--log-level", "warning", "--log-path"])
            .arg(dir.path().join("probe.log"))
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        Probe {
            child,
            certs_url: format!("http://{host}:15000/certs"),
            http: reqwest::Client::builder().no_proxy().build().unwrap(),
            _dir: dir,
        }
    }

    /// The serial number of the certificate for `uri` in the probe's `/certs`.
    async fn serial(&self, uri: &str) -> Option<String> {
        let response = self.http.get(&self.certs_url).send().await.ok()?;
        let certs: serde_json::Value = response.json().await.ok()?;
        certs["certificates"]
            .as_array()?
            .iter()
            .flat_map(|c| c["cert_chain"].as_array().into_iter().flatten())
            .find(|c| {
                c["subject_alt_names"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|san| san["uri"] == uri)
            })
            .and_then(|c| c["serial_number"].as_str().map(str::to_string))
    }

    /// Waits until `/certs` shows a certificate for `uri` other than `not`.
    async fn wait_for_serial(&self, uri: &str, not: Option<&str>) -> String {
        let start = Instant::now();
        loop {
            if let Some(serial) = self.serial(uri).await
                && Some(serial.as_str()) != not
            {
                return serial;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "gave up waiting for the probe Envoy's /certs to show {uri} (other than {not:?})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_reaches_envoy_without_a_restart() {
    // Hosts of its own in the subnet: .21 for the workload, .29 for the
    // probe, .251 for the control plane.
    let mut mesh = Mesh::new(SUBNET)
        .with_control_plane_host(251)
        .with_identities();
    let labels = [("app", "ratings")];
    mesh.write(
        "workloads.yaml",
        &workload_entry("ratings", mesh.address(21), &labels),
    );
    mesh.write("services.yaml", &service("ratings", &[9080]));
    mesh.start_control_plane().await;
    // Renewed at half of 4 s.
    mesh.set_agent_args(&["--workload-cert-ttl", "4s"]);
    mesh.start_workload("ratings", 21, &labels, "sotw").await;
    let socket = mesh.work_dir("ratings").join("sds.sock");
    let probe = Probe::start(&mesh, 29, &socket);
    let uri = "spiffe://cluster.local/ns/default/sa/ratings";
    let first = probe.wait_for_serial(uri, None).await;
    // The sidecar's own streams (its inbound listener takes mutual TLS) and
    // the probe's are open by now.
    let opened = mesh
        .agent_log("ratings")
        .matches("SDS stream opened")
        .count();
    let second = probe.wait_for_serial(uri, Some(&first)).await;
    let third = probe.wait_for_serial(uri, Some(&second)).await;
    assert_ne!(first, third);
    // The same Envoys, the same SDS streams: a renewal opens no other.
    let log = mesh.agent_log("ratings");
    assert_eq!(log.matches("SDS stream opened").count(), opened, "{log}");
    probe.stop().await;
}
