//! The admin API's token: made at the control plane's first start in the
//! state directory (mode 0600), needed by every mutating request and, with
//! `--admin-read-auth`, by reads too, except `/healthz` and `/metrics`;
//! `bowline admin-token rotate` replaces it under the running server.

use std::os::unix::fs::PermissionsExt;

use reqwest::StatusCode;
use tokio::process::Command;

use crate::harness::{BOWLINE, Mesh};

const SUBNET: u8 = 129;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_token_guards_writes_and_reads_when_asked_and_rotates_live() {
    let mut mesh = Mesh::new(SUBNET);
    mesh.set_control_plane_args(&["--admin-read-auth"]);
    mesh.start_control_plane().await;
    let file = mesh.state_dir().join("admin-token");
    let mode = std::fs::metadata(&file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&file).unwrap().trim().to_string();
    assert!(
        mesh.control_plane_log().contains(&token),
        "the new token is shown once at the first start"
    );

    let http = reqwest::Client::new();
    let url = |path: &str| format!("http://{}{path}", mesh.admin);
    let status =
        |request: reqwest::RequestBuilder| async move { request.send().await.unwrap().status() };
    // Probes and scrapers need nothing; reads need the token here.
    for open in ["/healthz", "/metrics"] {
        assert_eq!(status(http.get(url(open))).await, StatusCode::OK, "{open}");
    }
    let proxies = url("/api/v1/proxies");
    let refused = http.get(&proxies).send().await.unwrap();
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    let body = refused.text().await.unwrap();
    assert!(
        body.contains("admin token") && !body.contains(&token),
        "{body}"
    );
    assert_eq!(
        status(http.get(&proxies).bearer_auth("guess")).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(http.get(&proxies).bearer_auth(&token)).await,
        StatusCode::OK
    );
    // A write without the token is refused before any route is looked at.
    assert_eq!(
        status(http.post(url("/api/v1/apply")).body("{}")).await,
        StatusCode::UNAUTHORIZED
    );

    // A rotation under the running server: the old token is refused.
    let out = Command::new(BOWLINE)
        .args(["admin-token", "rotate", "--state-dir"])
        .arg(mesh.state_dir())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let new = String::from_utf8(out.stdout).unwrap().trim().to_string();
    assert_ne!(new, token);
    assert_eq!(
        status(http.get(&proxies).bearer_auth(&token)).await,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        status(http.get(&proxies).bearer_auth(&new)).await,
        StatusCode::OK
    );
}
