//! Proxyless gRPC on the real gRPC xDS client (PyPI's grpcio): a Python
//! client dials `xds:///reviews.default.svc.cluster.local:9080` with a
//! bootstrap naming `bowline serve`, and its calls reach the Python gRPC
//! servers registered as WorkloadEntries of reviews, with no Envoy anywhere.
//! A header route and then a VirtualService edit change which backend
//! answers, each shown by the answer. The client speaks xDS over mutual
//! TLS beside the CA, with a workload certificate the CA issued for its
//! token (gRFC A65 `tls` channel credentials).
//!
//! grpcio comes from `./scripts/setup` (into the repository's .venv), or
//! the Python `$BOWLINE_PYTHON` names. Where neither has it, the test says
//! SKIPPED and passes.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use pilot_node::{GrpcBootstrap, GrpcTls, NodeMetadata};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use crate::harness::Mesh;
use crate::workload_entry;

const SUBNET: u8 = 85;
const TARGET: &str = "xds:///reviews.default.svc.cluster.local:9080";
/// How long one step may take before the test gives up: only a guard
/// against a hang, never a measure.
const LIMIT: Duration = Duration::from_secs(60);

/// The Python with grpcio: `$BOWLINE_PYTHON`, else the repository's .venv.
fn python() -> PathBuf {
    if let Some(path) = std::env::var_os("BOWLINE_PYTHON") {
        return PathBuf::from(path);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python")
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/e2e/proxyless")
        .join(name)
}

/// The Python with grpcio, said; `None`, with SKIPPED said, where there is
/// none.
async fn python_with_grpcio() -> Option<PathBuf> {
    let python = python();
    let Some(version) = grpcio_version(&python).await else {
        println!(
            "SKIPPED: no grpcio for {} (./scripts/setup installs it into .venv; or set BOWLINE_PYTHON)",
            python.display()
        );
        return None;
    };
    println!("grpcio {version} at {}", python.display());
    Some(python)
}

/// The grpcio version the Python has, if it has grpcio.
async fn grpcio_version(python: &Path) -> Option<String> {
    let output = Command::new(python)
        .args(["-c", "import grpc; print(grpc.__version__)"])
        .stderr(Stdio::null())
        .output()
        .await
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).trim().to_string())
}

const SERVICES: &str = r#"apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: grpc, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
"#;

/// Every call to v1, except those of user `tester`, which go to v2.
const BY_HEADER: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {x-user: {exact: tester}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route: [{destination: {host: reviews, subset: v1}}]
"#;

/// Every call to v2, with a timeout (which gRPC takes as the route's
/// `max_stream_duration`).
const ALL_TO_V2: &str = r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - timeout: 10s
    route: [{destination: {host: reviews, subset: v2}}]
"#;

/// A Python gRPC server (`server.py`), over mutual TLS with `tls`'s files.
struct Server {
    _child: Child,
    _stdout: Lines<BufReader<ChildStdout>>,
}

impl Server {
    async fn start(
        python: &Path,
        addr: SocketAddr,
        name: &str,
        dir: &Path,
        tls: Option<&GrpcTls>,
    ) -> Server {
        let mut command = Command::new(python);
        command
            .arg(script("server.py"))
            .arg(addr.to_string())
            .arg(name);
        if let Some(tls) = tls {
            command.args([
                &tls.certificate_file,
                &tls.private_key_file,
                &tls.ca_certificate_file,
            ]);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join(format!("{name}.log"))).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // gRPC listens on an IPv6 socket with a v4-mapped address, so the
        // server's own word is the sign that it listens.
        let mut stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let first = tokio::time::timeout(LIMIT, stdout.next_line())
            .await
            .unwrap_or_else(|_| panic!("{name} never listened"))
            .unwrap();
        assert_eq!(first, Some(format!("serving {addr}")), "{name}");
        Server {
            _child: child,
            _stdout: stdout,
        }
    }
}

/// The Python client: commands in, one JSON line of answers out per command.
struct Client {
    child: Child,
    stdin: ChildStdin,
    stdout: Lines<BufReader<ChildStdout>>,
}

impl Client {
    async fn start(python: &Path, bootstrap: &Path, log: &Path) -> Client {
        let mut child = Command::new(python)
            .arg(script("client.py"))
            .arg(TARGET)
            .env("GRPC_XDS_BOOTSTRAP", bootstrap)
            // The xDS client's trace goes to the log, which a failing
            // test prints.
            .env("GRPC_TRACE", "xds_client")
            .env("GRPC_VERBOSITY", "info")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(log).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut client = Client {
            child,
            stdin,
            stdout,
        };
        assert_eq!(client.line().await, "ready");
        client
    }

    async fn line(&mut self) -> String {
        let line = tokio::time::timeout(LIMIT, self.stdout.next_line())
            .await
            .expect("the gRPC client hung")
            .unwrap();
        line.unwrap_or_else(|| panic!("the gRPC client exited: {:?}", self.child.try_wait()))
    }

    /// Makes `n` calls, with `header` (`NAME=VALUE`, or `timeout=SECONDS`)
    /// if given; the answers counted by backend.
    async fn calls(&mut self, n: usize, header: Option<&str>) -> Value {
        let command = format!("{n} {}\n", header.unwrap_or_default());
        self.stdin.write_all(command.as_bytes()).await.unwrap();
        self.stdin.flush().await.unwrap();
        serde_json::from_str(&self.line().await).unwrap()
    }
}

fn answers(pairs: &[(&str, u64)]) -> Value {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), Value::from(*v)))
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxyless_grpc_client_follows_virtual_service_routes() {
    let Some(python) = python_with_grpcio().await else {
        return;
    };

    let mut mesh = Mesh::new(SUBNET);
    let (v1, v2) = (mesh.address(2), mesh.address(3));
    let entries = [
        workload_entry("reviews-v1", v1, &[("app", "reviews"), ("version", "v1")]),
        workload_entry("reviews-v2", v2, &[("app", "reviews"), ("version", "v2")]),
    ];
    mesh.write("services.yaml", SERVICES);
    mesh.write("workloads.yaml", &entries.join("---\n"));
    mesh.write("reviews-vs.yaml", BY_HEADER);
    mesh.start_control_plane().await;

    let dir = tempfile::tempdir().unwrap();
    let mut servers = Vec::new();
    for (name, address) in [("reviews-v1", v1), ("reviews-v2", v2)] {
        servers.push(
            Server::start(
                &python,
                SocketAddr::new(address, 9080),
                name,
                dir.path(),
                None,
            )
            .await,
        );
    }

    let node = NodeMetadata::grpc("default", "grpc-client", mesh.address(1));
    let bootstrap = GrpcBootstrap {
        server_uri: mesh.ca.to_string(),
        node,
        // The client declares no service account: `default`.
        tls: Some(certificate_files(&mesh, dir.path(), "default").await),
        certificate_provider: None,
    };
    let bootstrap_path = dir.path().join("bootstrap.json");
    std::fs::write(&bootstrap_path, bootstrap.to_json().to_string()).unwrap();
    let log = dir.path().join("client.log");
    let mut client = Client::start(&python, &bootstrap_path, &log).await;

    let outcome = async {
        // The first call waits for LDS, RDS, CDS and EDS; then the client's
        // subscriptions are ACKed, by name.
        assert_eq!(client.calls(4, None).await, answers(&[("reviews-v1", 4)]));
        mesh.wait_converged(&["grpc-client"]).await;
        let status = mesh.proxy("grpc-client").await.unwrap();
        assert_eq!(status["proxyless"], true, "{status}");
        assert_eq!(status["nacks"], 0, "{status}");
        assert_eq!(
            status["identity"], "spiffe://cluster.local/ns/default/sa/default",
            "{status}"
        );

        // The header route sends the tester to v2.
        assert_eq!(
            client.calls(4, Some("x-user=tester")).await,
            answers(&[("reviews-v2", 4)])
        );

        // A VirtualService edit reaches the connected client: once its
        // routes are pushed, every call goes to v2.
        mesh.write("reviews-vs.yaml", ALL_TO_V2);
        let mut last = Value::Null;
        let deadline = tokio::time::Instant::now() + LIMIT;
        while last != answers(&[("reviews-v2", 4)]) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the edit never reached the client: {last}"
            );
            last = client.calls(4, None).await;
        }
        mesh.wait_converged(&["grpc-client"]).await;
        let status = mesh.proxy("grpc-client").await.unwrap();
        assert_eq!(status["nacks"], 0, "{status}");
    };
    // A failing step shows the xDS client's side of the story.
    let _log = PrintOnPanic(&log);
    outcome.await;
}

/// A workload certificate for `default/ACCOUNT` from the mesh's CA, and
/// the CA's roots, as files `ACCOUNT-*.pem` in `dir`.
async fn certificate_files(mesh: &Mesh, dir: &Path, account: &str) -> GrpcTls {
    let out = Command::new(crate::harness::BOWLINE)
        .args([
            "token",
            "create",
            "--namespace",
            "default",
            "--service-account",
            account,
        ])
        .arg("--state-dir")
        .arg(mesh.state_dir())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "bowline token create: {out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_string();
    let roots = mesh.trust_bundle().await;
    let mut ca = citadel_server::CaClient::connect(
        mesh.ca,
        &citadel_server::client::ClientConfig {
            roots_pem: roots.clone(),
            server_name: "localhost".to_string(),
            identity: None,
        },
    )
    .await
    .unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let chain = ca.create_certificate(Some(&token), csr, 0).await.unwrap();
    let file = |name: &str, text: &str| {
        let path = dir.join(format!("{account}-{name}"));
        std::fs::write(&path, text).unwrap();
        path.display().to_string()
    };
    GrpcTls {
        ca_certificate_file: file("ca.pem", &roots),
        certificate_file: file("cert.pem", &chain.concat()),
        private_key_file: file("key.pem", &key.serialize_pem()),
    }
}

/// Prints the tail of the client's log if the test panics while it lives.
struct PrintOnPanic<'a>(&'a Path);

impl Drop for PrintOnPanic<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let text = std::fs::read_to_string(self.0).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(60).collect();
            eprintln!("----- {} (last lines)", self.0.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

const MTLS_SUBNET: u8 = 128;

/// reviews over mutual TLS, as a DestinationRule asks it of a proxyless
/// client; `extra` adds to its `tls`.
fn reviews_tls(mode: &str, extra: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: reviews}}\nspec:\n  host: reviews\n  trafficPolicy:\n    tls: {{mode: {mode}{extra}}}\n"
    )
}

/// gRFC A29 on grpcio: the client's bootstrap defines the certificate
/// provider `default` with its workload certificate, and a server takes
/// mutual TLS only. Without a DestinationRule the client's calls go out in
/// plaintext and fail; with ISTIO_MUTUAL naming the wrong identity the
/// client refuses the server; with ISTIO_MUTUAL they reach it, and the
/// server sees the client's SPIFFE id in its certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_proxyless_grpc_client_calls_over_mutual_tls_with_istio_mutual() {
    let Some(python) = python_with_grpcio().await else {
        return;
    };

    let mut mesh = Mesh::new(MTLS_SUBNET);
    let address = mesh.address(2);
    let entry = workload_entry("reviews-v1", address, &[("app", "reviews")])
        + "  serviceAccount: reviews\n";
    mesh.write(
        "services.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec:\n  selector: {app: reviews}\n  ports: [{name: grpc, port: 9080}]\n",
    );
    mesh.write("workloads.yaml", &entry);
    mesh.write("reviews-dr.yaml", &reviews_tls("DISABLE", ""));
    mesh.start_control_plane().await;

    let dir = tempfile::tempdir().unwrap();
    let server_files = certificate_files(&mesh, dir.path(), "reviews").await;
    let _server = Server::start(
        &python,
        SocketAddr::new(address, 9080),
        "reviews-v1",
        dir.path(),
        Some(&server_files),
    )
    .await;
    let client_files = certificate_files(&mesh, dir.path(), "default").await;
    let bootstrap = GrpcBootstrap {
        server_uri: mesh.ca.to_string(),
        node: NodeMetadata::grpc("default", "grpc-client", mesh.address(1)),
        tls: Some(client_files.clone()),
        certificate_provider: Some(client_files),
    };
    let bootstrap_path = dir.path().join("bootstrap.json");
    std::fs::write(&bootstrap_path, bootstrap.to_json().to_string()).unwrap();
    let log = dir.path().join("client.log");
    let mut client = Client::start(&python, &bootstrap_path, &log).await;
    let failed = |answers: &Value| {
        answers
            .as_object()
            .is_some_and(|a| !a.is_empty() && a.keys().all(|k| k.starts_with("error:")))
    };

    let outcome = async {
        // Plaintext toward a server that takes mutual TLS only: refused.
        let plaintext = client.calls(1, Some("timeout=5")).await;
        assert!(
            failed(&plaintext),
            "a plaintext call got through: {plaintext}"
        );
        mesh.wait_converged(&["grpc-client"]).await;

        // ISTIO_MUTUAL, but the server must be another identity: the
        // client refuses the server's certificate.
        mesh.write(
            "reviews-dr.yaml",
            &reviews_tls(
                "ISTIO_MUTUAL",
                ", subjectAltNames: [spiffe://cluster.local/ns/default/sa/someone-else]",
            ),
        );
        mesh.wait_converged(&["grpc-client"]).await;
        let wrong = client.calls(1, Some("timeout=5")).await;
        assert!(
            failed(&wrong),
            "a server of another identity was trusted: {wrong}"
        );

        // ISTIO_MUTUAL with the service's own identities: mutual TLS, the
        // server sees who called.
        mesh.write("reviews-dr.yaml", &reviews_tls("ISTIO_MUTUAL", ""));
        let want = answers(&[("reviews-v1 spiffe://cluster.local/ns/default/sa/default", 2)]);
        let deadline = tokio::time::Instant::now() + LIMIT;
        let mut last = Value::Null;
        while last != want {
            assert!(
                tokio::time::Instant::now() < deadline,
                "no call over mutual TLS: {last}"
            );
            last = client.calls(2, Some("timeout=5")).await;
        }
        mesh.wait_converged(&["grpc-client"]).await;
        let status = mesh.proxy("grpc-client").await.unwrap();
        assert_eq!(status["nacks"], 0, "{status}");
    };
    let _log = PrintOnPanic(&log);
    outcome.await;
}
