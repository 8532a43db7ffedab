//! The CA as a user runs it: `bowline token create` mints a token from the
//! state directory, `bowline serve` signs with it over TLS, the admin API
//! serves the root, and a restart keeps the root.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, SystemTime};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};

const BOWLINE: &str = env!("CARGO_BIN_EXE_bowline");
/// A loopback address of this test's own.
const HOST: &str = "127.0.91.250";

fn token(state: &Path, namespace: &str, service_account: &str) -> std::process::Output {
    std::process::Command::new(BOWLINE)
        .args(["token", "create", "--state-dir"])
        .arg(state)
        .args([
            "--namespace",
            namespace,
            "--service-account",
            service_account,
        ])
        .args(["--ttl", "1h"])
        .output()
        .unwrap()
}

fn serve(dir: &Path) -> Child {
    serve_with(dir, &[])
}

fn serve_with(dir: &Path, extra: &[&std::ffi::OsStr]) -> Child {
    Command::new(BOWLINE)
        .arg("serve")
        .args(extra)
        .arg("--config-dir")
        .arg(dir.join("config"))
        .args(["--xds-addr", &format!("{HOST}:15010")])
        .args(["--admin-addr", &format!("{HOST}:15014")])
        .args(["--ca-addr", &format!("{HOST}:15012")])
        .arg("--state-dir")
        .arg(dir.join("state"))
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("serve.log"))
                .unwrap(),
        )
        .kill_on_drop(true)
        .spawn()
        .unwrap()
}

async fn stop(mut child: Child) {
    let pid = i32::try_from(child.id().unwrap()).unwrap();
    kill(Pid::from_raw(pid), Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("serve exits on SIGTERM")
        .unwrap();
    assert!(status.success(), "{status}");
}

#[tokio::test]
async fn a_minted_token_gets_a_certificate_and_a_restart_keeps_the_root() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    let state = dir.path().join("state");

    let out = token(&state, "shop", "web");
    assert!(out.status.success(), "{out:?}");
    let minted = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_eq!(minted.split('.').count(), 3, "a JWT: {minted}");
    let mode = std::fs::metadata(state.join("token-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let refused = token(&state, "shop/x", "web");
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("namespace \"shop/x\": not a name"),
        "{refused:?}"
    );

    let server = serve(dir.path());
    let bundle = common::trust_bundle(HOST, None).await;
    let chain = common::sign(HOST, &bundle, &minted, None).await.unwrap();
    let roots = citadel::pem::certificates("bundle", &bundle).unwrap();
    let id = citadel::verify::workload_chain(&chain, &roots, SystemTime::now()).unwrap();
    assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/web");
    let forged = format!("{minted}x");
    assert_eq!(
        common::sign(HOST, &bundle, &forged, None)
            .await
            .unwrap_err()
            .code(),
        tonic::Code::Unauthenticated
    );
    stop(server).await;

    // The same root after a restart: the old certificate still verifies.
    let server = serve(dir.path());
    assert_eq!(common::trust_bundle(HOST, None).await, bundle);
    assert!(citadel::verify::workload_chain(&chain, &roots, SystemTime::now()).is_ok());
    assert!(common::sign(HOST, &bundle, &minted, None).await.is_ok());
    stop(server).await;

    // The mesh config's trust domain is the one certificates carry.
    let mesh = dir.path().join("mesh.yaml");
    std::fs::write(&mesh, "trustDomain: example.org\n").unwrap();
    let server = serve_with(dir.path(), &["--mesh-config".as_ref(), mesh.as_os_str()]);
    assert_eq!(common::trust_bundle(HOST, None).await, bundle);
    let chain = common::sign(HOST, &bundle, &minted, None).await.unwrap();
    let id = citadel::verify::workload_chain(&chain, &roots, SystemTime::now()).unwrap();
    assert_eq!(id.to_string(), "spiffe://example.org/ns/shop/sa/web");
    stop(server).await;

    let log = std::fs::read_to_string(dir.path().join("serve.log")).unwrap();
    assert!(!log.contains("PRIVATE KEY"), "{log}");
    assert!(!log.contains(&minted), "the log holds no token");
}
