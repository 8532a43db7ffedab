//! Traffic capture for real, in network namespaces of the test's own.
//!
//! - `bowline capture` alone: the rules send an application's outbound
//!   TCP to the capture port, while the sidecar's own user goes where it
//!   dials.
//! - Two captured pods, each a network namespace with a veth pair to the
//!   test's namespace (the "node", which routes between them and runs the
//!   control plane), each with its sidecar (agent and Envoy as the proxy's
//!   user, 1337) and an application that knows nothing of the mesh. The
//!   client application dials the server's ClusterIP and port; it gets the
//!   VirtualService's routing, and the server application sees the
//!   client's SPIFFE identity: the call went over mutual TLS, which the
//!   server's STRICT PeerAuthentication demands.
//!
//! ```text
//!  pod web (10.251.1.2)                 node (test)                 pod reviews (10.251.2.2)
//!  app ─► 10.96.0.11:9080               10.251.0.1: control plane   PREROUTING ─► :15006 ─► Envoy
//!   └─(OUTPUT)─► :15002 Envoy ─mTLS──► routes ─────────────────────► ─► 127.0.0.6 ─► app :9080
//! ```

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};

use crate::harness::{BOWLINE, Mesh, envoy, wait_for};
use crate::netns;

/// Only guards against a hang.
const LIMIT: Duration = Duration::from_secs(30);

/// The sidecar's user and group, as the image runs it.
const PROXY_UID: u32 = 1337;

fn sh(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Why the capture tests cannot run here, if they cannot.
fn missing_iptables() -> Option<&'static str> {
    let found = [
        "iptables-restore",
        "/usr/sbin/iptables-restore",
        "/sbin/iptables-restore",
    ]
    .iter()
    .any(|p| Command::new(p).arg("--version").output().is_ok());
    (!found).then_some("no iptables-restore (./scripts/setup installs it as root)")
}

#[test]
fn outbound_tcp_is_captured_but_the_sidecars_own() {
    netns::run("capture", || async {
        if let Some(why) = missing_iptables() {
            eprintln!("SKIPPED capture: {why}");
            return;
        }
        // A service address beside the namespace's loopback.
        sh(&["ip", "addr", "add", "10.250.0.1/32", "dev", "lo"]);
        let out = Command::new(BOWLINE)
            .args(["capture", "--proxy-uid", "1337"])
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");

        let service: SocketAddr = "10.250.0.1:9080".parse().unwrap();
        let capture = TcpListener::bind("127.0.0.1:15002").await.unwrap();
        let direct = TcpListener::bind(service).await.unwrap();

        // The application (any user but the sidecar's) dials the service:
        // the capture port answers.
        let _app = TcpStream::connect(service).await.unwrap();
        tokio::time::timeout(LIMIT, capture.accept())
            .await
            .expect("the capture port took the application's connection")
            .unwrap();

        // The sidecar's user dials it too: straight through.
        let sidecar = tokio::task::spawn_blocking(|| {
            Command::new("python3")
                .args([
                    "-c",
                    "import socket; socket.create_connection(('10.250.0.1', 9080), timeout=10).close()",
                ])
                .uid(PROXY_UID)
                .gid(PROXY_UID)
                .status()
        });
        let (_, from) = tokio::time::timeout(LIMIT, direct.accept())
            .await
            .expect("the service took the sidecar's connection")
            .unwrap();
        assert_eq!(from.ip(), service.ip());
        assert!(sidecar.await.unwrap().unwrap().success());
    });
}

/// The node's own address, where the control plane listens for the pods.
const NODE: &str = "10.251.0.1";

const CONFIG: &str = "\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  clusterIP: 10.96.0.11
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-1, namespace: shop}
spec: {address: 10.251.2.2, labels: {app: reviews}, serviceAccount: reviews}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - headers:
      request:
        set: {x-routed-by: bowline}
    route:
    - destination: {host: reviews}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec:
  mtls: {mode: STRICT}
";

/// A pod: a named network namespace, wired to the node by a veth pair, and
/// the processes the test started in it.
struct Pod {
    netns: String,
    address: String,
    children: Vec<std::process::Child>,
}

impl Pod {
    /// Pod `index` at `10.251.<index>.2`, the node's end of its veth at `.1`.
    fn new(name: &str, index: u8) -> Pod {
        let netns = format!("bowline-{name}-{}", std::process::id());
        let (node_end, pod_end) = (format!("bw{index}"), "eth0");
        let address = format!("10.251.{index}.2");
        sh(&["ip", "netns", "add", &netns]);
        let pod = Pod {
            netns: netns.clone(),
            address: address.clone(),
            children: Vec::new(),
        };
        sh(&[
            "ip", "link", "add", &node_end, "type", "veth", "peer", "name", pod_end, "netns",
            &netns,
        ]);
        sh(&[
            "ip",
            "addr",
            "add",
            &format!("10.251.{index}.1/24"),
            "dev",
            &node_end,
        ]);
        sh(&["ip", "link", "set", &node_end, "up"]);
        let in_pod = |args: &[&str]| {
            let mut all = vec!["ip", "-n", &netns];
            all.extend_from_slice(args);
            sh(&all);
        };
        in_pod(&["link", "set", "lo", "up"]);
        in_pod(&["addr", "add", &format!("{address}/24"), "dev", pod_end]);
        in_pod(&["link", "set", pod_end, "up"]);
        in_pod(&[
            "route",
            "add",
            "default",
            "via",
            &format!("10.251.{index}.1"),
        ]);
        pod
    }

    /// `program` with `args` in the pod, as root or as the proxy's user.
    fn command(&self, program: &Path, proxy_user: bool) -> Command {
        let mut command = Command::new("nsenter");
        command.arg(format!("--net=/run/netns/{}", self.netns));
        if proxy_user {
            command.args([
                "--setuid",
                &PROXY_UID.to_string(),
                "--setgid",
                &PROXY_UID.to_string(),
            ]);
        }
        command.arg("--").arg(program);
        command
    }

    fn spawn(&mut self, mut command: Command, log: &Path) {
        let child = command
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        self.children.push(child);
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        // Agents stop their Envoys on SIGTERM; a SIGKILL would orphan them
        // in the namespace.
        for child in &self.children {
            let _ = kill(Pid::from_raw(child.id() as i32), Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for child in &mut self.children {
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.netns])
            .status();
    }
}

/// `file` where the proxy's user can run it: linked (or copied) into
/// `dir`, since the tree it lives in may be closed to other users.
fn runnable(file: &Path, dir: &Path) -> PathBuf {
    let name = file.file_name().unwrap();
    let target = dir.join(name);
    if std::fs::hard_link(file, &target).is_err() {
        std::fs::copy(file, &target).unwrap();
    }
    target
}

/// A directory the proxy's user owns.
fn owned_dir(path: PathBuf) -> PathBuf {
    std::fs::create_dir_all(&path).unwrap();
    std::os::unix::fs::chown(&path, Some(PROXY_UID), Some(PROXY_UID)).unwrap();
    path
}

/// Starts a captured pod's sidecar: the capture rules as root, then the
/// agent (and its Envoy) as the proxy's user.
async fn start_sidecar(
    mesh: &Mesh,
    pod: &mut Pod,
    dir: &Path,
    bins: &(PathBuf, PathBuf),
    (workload, service_account, app): (&str, &str, &str),
) {
    let out = pod
        .command(&bins.0, false)
        .args(["capture", "--proxy-uid", &PROXY_UID.to_string()])
        .output()
        .unwrap();
    assert!(out.status.success(), "bowline capture: {out:?}");

    let token = Command::new(BOWLINE)
        .args(["token", "create", "--namespace", "shop"])
        .args(["--service-account", service_account])
        .arg("--state-dir")
        .arg(mesh.state_dir())
        .output()
        .unwrap();
    assert!(token.status.success(), "bowline token create: {token:?}");
    let token_file = dir.join(format!("{workload}.token"));
    std::fs::write(&token_file, &token.stdout).unwrap();
    let root = dir.join("ca-root.pem");
    std::fs::write(&root, mesh.trust_bundle().await).unwrap();
    let work = owned_dir(dir.join(workload));

    let mut agent = pod.command(&bins.0, true);
    agent
        .args(["proxy", "--workload", workload, "--namespace", "shop"])
        .args(["--address", &pod.address])
        .args(["--service-account", service_account])
        .args(["--label", &format!("app={app}")])
        .args(["--interception-mode", "REDIRECT"])
        .args(["--xds-addr", &mesh.ca.to_string()])
        .args(["--ca-addr", &mesh.ca.to_string()])
        .arg("--ca-root")
        .arg(&root)
        .arg("--token-file")
        .arg(&token_file)
        .arg("--envoy")
        .arg(&bins.1)
        .arg("--envoy-log")
        .arg(work.join("envoy.log"))
        .arg("--work-dir")
        .arg(&work)
        .env("BOWLINE_LOG", "info");
    pod.spawn(agent, &dir.join(format!("{workload}-agent.log")));

    let ready = format!("http://{}:15000/ready", pod.address);
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    wait_for(&format!("{workload}'s Envoy to be ready"), LIMIT, || {
        let (http, ready) = (http.clone(), ready.clone());
        async move {
            http.get(&ready)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success())
        }
    })
    .await;
}

/// What the client application got for `GET url`, run in `pod` as root
/// (so captured), or why it got nothing.
fn call_from(pod: &Pod, url: &str) -> Result<Value, String> {
    let script = format!(
        "import urllib.request; print(urllib.request.urlopen('{url}', timeout=5).read().decode())"
    );
    let out = pod
        .command(Path::new("python3"), false)
        .args(["-c", &script])
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())
}

/// Prints the logs of a failed run.
struct Logs(PathBuf);

impl Drop for Logs {
    fn drop(&mut self) {
        if std::thread::panicking() {
            crate::harness::print_log_tails(&self.0);
        }
    }
}

#[test]
fn a_captured_application_reaches_a_service_by_its_cluster_ip_over_mutual_tls() {
    netns::run("capture-mesh", || async {
        if let Some(why) = missing_iptables() {
            eprintln!("SKIPPED capture-mesh: {why}");
            return;
        }
        sh(&["ip", "addr", "add", &format!("{NODE}/32"), "dev", "lo"]);
        sh(&["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"]);

        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            dir.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let _logs = Logs(dir.path().to_path_buf());
        let bins = (
            runnable(Path::new(BOWLINE), dir.path()),
            runnable(&envoy(), dir.path()),
        );

        let mut mesh = Mesh::new(135).with_identities();
        let node = NODE.parse().unwrap();
        mesh.xds = SocketAddr::new(node, 15010);
        mesh.admin = SocketAddr::new(node, 15014);
        mesh.ca = SocketAddr::new(node, 15012);
        mesh.write("mesh.yaml", CONFIG);
        mesh.start_control_plane().await;

        let mut reviews = Pod::new("reviews", 2);
        let mut web = Pod::new("web", 1);

        // The server application, on its own port of the pod's address.
        let mut echo = reviews.command(&bins.0, false);
        echo.args(["echo", "--addr", "10.251.2.2:9080"]).args([
            "--workload",
            "reviews-1",
            "--namespace",
            "shop",
        ]);
        reviews.spawn(echo, &dir.path().join("reviews-echo.log"));

        start_sidecar(
            &mesh,
            &mut reviews,
            dir.path(),
            &bins,
            ("reviews-1", "reviews", "reviews"),
        )
        .await;
        start_sidecar(&mesh, &mut web, dir.path(), &bins, ("web-1", "web", "web")).await;
        mesh.wait_converged(&["reviews-1", "web-1"]).await;

        // The client application dials the ClusterIP, as it would the
        // address DNS gave it; the sidecar's certificate may still be on
        // its way, so wait for the first answer.
        let url = "http://10.96.0.11:9080/hello";
        let start = Instant::now();
        let answer = loop {
            match call_from(&web, url) {
                Ok(answer) => break answer,
                Err(why) => assert!(
                    start.elapsed() < LIMIT,
                    "the captured call to {url} never succeeded: {why}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert_eq!(answer["workload"], "reviews-1", "{answer:#}");
        assert_eq!(answer["path"], "/hello");
        // The VirtualService's route set this header on the way.
        assert_eq!(answer["headers"]["x-routed-by"], "bowline", "{answer:#}");
        // The server sidecar took mutual TLS from the client's identity.
        let xfcc = answer["headers"]["x-forwarded-client-cert"]
            .as_str()
            .unwrap_or_default();
        assert!(
            xfcc.contains("URI=spiffe://cluster.local/ns/shop/sa/web"),
            "{answer:#}"
        );

        // A plaintext call straight to the server pod, from the node: the
        // pod's capture takes it to the sidecar, whose STRICT inbound
        // refuses it (uncaptured, the application would answer it).
        let plaintext = reqwest::Client::builder()
            .no_proxy()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap()
            .get("http://10.251.2.2:9080/direct")
            .send()
            .await;
        assert!(plaintext.is_err(), "{plaintext:?}");
    });
}
