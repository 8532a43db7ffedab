//! The agent against the real Envoy binary: Envoy must accept our bootstraps,
//! and the supervisor must start, restart and stop it. (These ran as unit
//! tests of `pilot` before; they need Envoy, so they live with the other
//! end-to-end tests and `cargo test -p pilot --lib` does not.)

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;

use pilot_agent::bootstrap::{self, BootstrapConfig};
use pilot_agent::sidecar::{Error, RestartPolicy, Sidecar, SidecarConfig};
use pilot_agent::{Mode, NodeMetadata};

use crate::harness::{envoy as envoy_binary, wait_for};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

fn free_port() -> u16 {
    std::net::TcpListener::bind((LOOPBACK, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A sidecar on 127.0.0.1 whose control plane address has nothing listening.
fn unreachable_config(workload: &str) -> BootstrapConfig {
    let xds = SocketAddr::new(LOOPBACK, free_port());
    let mut cfg = BootstrapConfig::new(NodeMetadata::new("test", workload, LOOPBACK), xds.into());
    cfg.admin_port = free_port();
    cfg
}

fn sidecar_config(bootstrap: BootstrapConfig, dir: &Path) -> SidecarConfig {
    let mut cfg = SidecarConfig::new(bootstrap, envoy_binary(), dir.to_path_buf());
    cfg.log_level = "info".into();
    cfg.log_file = Some(dir.join("envoy.log"));
    cfg.restart = RestartPolicy {
        initial_backoff: Duration::from_millis(20),
        max_backoff: Duration::from_millis(100),
        ..RestartPolicy::default()
    };
    cfg
}

fn validate(bootstrap: &BootstrapConfig, dir: &Path) {
    let path = dir.join(format!("{}.json", bootstrap.node.workload));
    let text = serde_json::to_string_pretty(&bootstrap::build(bootstrap)).unwrap();
    std::fs::write(&path, &text).unwrap();
    let out = std::process::Command::new(envoy_binary())
        .args(["--mode", "validate", "--log-level", "error", "-c"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "envoy rejected the bootstrap ({}):\n{}\n{}\n{text}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn envoy_accepts_bootstraps_in_both_modes() {
    let dir = tempfile::tempdir().unwrap();
    for (name, mode) in [("sotw", Mode::Sotw), ("delta", Mode::Delta)] {
        let mut node = NodeMetadata::new("shop", name, "127.0.1.7".parse().unwrap());
        node.labels.insert("app".into(), "shop".into());
        node.service_account = Some("shop".into());
        node.app_address = Some("127.0.0.1:18080".parse().unwrap());
        node.app_ports
            .insert(9080, "127.0.0.1:18081".parse().unwrap());
        let mut cfg = BootstrapConfig::new(node, "127.0.0.1:15010".parse().unwrap());
        cfg.xds_mode = mode;
        validate(&cfg, dir.path());
    }
}

#[test]
fn envoy_accepts_a_host_name_for_the_control_plane() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = BootstrapConfig::new(
        NodeMetadata::new("shop", "dns", "127.0.1.8".parse().unwrap()),
        "localhost:15010".parse().unwrap(),
    );
    validate(&cfg, dir.path());
}

/// GETs `path` from Envoy's admin until it answers, or panics after a while.
async fn admin_get(admin: SocketAddr, path: &str) -> (u16, String) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let url = format!("http://{admin}{path}");
    let answer = std::sync::Mutex::new(None);
    wait_for(
        &format!("envoy admin {url}"),
        Duration::from_secs(30),
        || async {
            let Ok(response) = client.get(&url).send().await else {
                return false;
            };
            let status = response.status().as_u16();
            *answer.lock().unwrap() = Some((status, response.text().await.unwrap_or_default()));
            true
        },
    )
    .await;
    answer.into_inner().unwrap().unwrap()
}

fn process_exists(pid: u32) -> bool {
    match kill(Pid::from_raw(i32::try_from(pid).unwrap()), None) {
        Ok(()) => true,
        Err(Errno::ESRCH) => false,
        Err(err) => panic!("cannot probe pid {pid}: {err}"),
    }
}

async fn server_info_node_id(admin: SocketAddr) -> String {
    let (status, body) = admin_get(admin, "/server_info").await;
    assert_eq!(status, 200, "{body}");
    let info: Value = serde_json::from_str(&body).unwrap();
    info["node"]["id"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn sidecar_starts_answers_admin_and_stops() {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = unreachable_config("supervised");
    let expected_id = bootstrap.node_id();
    let sidecar = Sidecar::start(sidecar_config(bootstrap, dir.path()))
        .await
        .unwrap();
    let pid = sidecar.pid().unwrap();
    assert!(sidecar.bootstrap_path().is_file());

    assert_eq!(server_info_node_id(sidecar.admin_addr()).await, expected_id);
    assert!(dir.path().join("envoy.log").is_file());
    assert!(process_exists(pid));

    sidecar.stop().await.unwrap();
    assert!(!process_exists(pid), "envoy {pid} is still running");
}

#[tokio::test]
async fn sidecar_restarts_envoy_after_it_dies() {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = unreachable_config("restarted");
    let expected_id = bootstrap.node_id();
    let sidecar = Sidecar::start(sidecar_config(bootstrap, dir.path()))
        .await
        .unwrap();
    let first = sidecar.pid().unwrap();
    assert_eq!(server_info_node_id(sidecar.admin_addr()).await, expected_id);

    kill(
        Pid::from_raw(i32::try_from(first).unwrap()),
        Signal::SIGKILL,
    )
    .unwrap();
    wait_for("envoy to be restarted", Duration::from_secs(30), || async {
        sidecar.pid().is_some_and(|pid| pid != first)
    })
    .await;
    let second = sidecar.pid().expect("envoy was restarted");
    assert_eq!(server_info_node_id(sidecar.admin_addr()).await, expected_id);

    sidecar.stop().await.unwrap();
    assert!(!process_exists(first));
    assert!(!process_exists(second), "envoy {second} is still running");
}

#[tokio::test]
async fn sidecar_gives_up_when_envoy_keeps_failing() {
    let dir = tempfile::tempdir().unwrap();
    let mut bootstrap = unreachable_config("failing");
    // Envoy cannot bind its admin port while this listener holds it.
    let taken = std::net::TcpListener::bind((LOOPBACK, 0)).unwrap();
    bootstrap.admin_port = taken.local_addr().unwrap().port();
    let mut cfg = sidecar_config(bootstrap, dir.path());
    cfg.restart.max_quick_failures = 3;
    let mut sidecar = Sidecar::start(cfg).await.unwrap();

    match sidecar.wait().await {
        Err(Error::GaveUp { failures, status }) => {
            assert_eq!(failures, 3);
            assert!(!status.success());
        }
        other => panic!("expected the supervisor to give up, got {other:?}"),
    }
    assert_eq!(sidecar.pid(), None);
    // Stopping after giving up is harmless.
    sidecar.stop().await.unwrap();
    drop(taken);
}
