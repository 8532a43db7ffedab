//! Mutual TLS between sidecars with the real CA and real Envoy: a client
//! sidecar with a workload certificate reaches a server sidecar over mTLS
//! (auto-mTLS), the application sees the caller's SPIFFE id in
//! `x-forwarded-client-cert`, and PeerAuthentication decides what the
//! server's inbound port takes: PERMISSIVE both, STRICT mutual TLS only,
//! DISABLE plaintext only.

use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::fixture::{Workload, service, start_prepared};
use crate::harness::Mesh;

const SUBNET: u8 = 123;

const FRONTEND_ID: &str = "spiffe://cluster.local/ns/default/sa/frontend";

/// The status of `GET url` through the sidecar at `host`; `None` when the
/// request failed.
async fn status_from(mesh: &Mesh, host: u8, url: &str) -> Option<u16> {
    let response = mesh.client(host).get(url).send().await.ok()?;
    Some(response.status().as_u16())
}

/// The caller's identity the echo application saw through the mesh, or
/// `None` without one; `Err` when the request failed.
async fn through_mesh(mesh: &Mesh) -> Result<Option<String>, String> {
    let response = mesh
        .client(1)
        .get("http://reviews:9080/who")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if !status.is_success() {
        return Err(format!("status {status}"));
    }
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    Ok(body["headers"]["x-forwarded-client-cert"]
        .as_str()
        .map(str::to_string))
}

/// A plaintext request straight to the server sidecar's inbound port, from
/// a process outside the mesh; the caller identity header it sends must
/// never reach the application.
async fn plaintext(mesh: &Mesh) -> Result<Option<String>, String> {
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let response = client
        .get(format!("http://{}:9080/direct", mesh.address(2)))
        .header("x-forwarded-client-cert", "URI=spiffe://forged")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = response.json().await.map_err(|e| e.to_string())?;
    Ok(body["headers"]["x-forwarded-client-cert"]
        .as_str()
        .map(str::to_string))
}

/// The first `Some` that `check` gives, polling until it does (the limit
/// only guards against a hang).
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "gave up waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn assert_caller_is_frontend(xfcc: &Option<String>) {
    let xfcc = xfcc.as_deref().unwrap_or_default();
    assert!(
        xfcc.contains(&format!("URI={FRONTEND_ID}")),
        "x-forwarded-client-cert: {xfcc:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_speak_mutual_tls_as_peer_authentication_says() {
    let workloads = [
        Workload::new("frontend", 1, &[("app", "frontend")]),
        Workload::new("reviews", 2, &[("app", "reviews")]),
    ];
    let services = format!(
        "{}---\n{}",
        service("frontend", &[8000]),
        service("reviews", &[9080])
    );
    let mesh = start_prepared(Mesh::new(SUBNET).with_identities(), &services, &workloads).await;

    // PERMISSIVE (no policy): mesh traffic is mutual TLS and says who called;
    // plaintext still gets in, with the forged header removed.
    let seen = eventually("mTLS through the mesh", || async {
        through_mesh(&mesh).await.ok()
    })
    .await;
    assert_caller_is_frontend(&seen);
    // Each sidecar's Envoy holds its own certificate, from its agent.
    let certs = mesh.envoy_admin(1, "/certs").await;
    assert!(certs.contains(FRONTEND_ID), "{certs}");
    // bowline proxy-config shows them beside the secrets sent.
    let out = tokio::process::Command::new(crate::harness::BOWLINE)
        .args(["proxy-config", "frontend.default", "--type", "secret"])
        .args(["--server", &format!("http://{}", mesh.admin)])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.lines()
            .any(|l| l.starts_with("certificate") && l.contains(FRONTEND_ID)),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("secret") && l.contains("ROOTCA")),
        "{text}"
    );
    assert!(!text.contains("PRIVATE KEY"), "{text}");
    let certs = mesh.envoy_admin(2, "/certs").await;
    assert!(
        certs.contains("spiffe://cluster.local/ns/default/sa/reviews"),
        "{certs}"
    );
    // The roots come from the control plane over ADS (itself over mutual
    // TLS), and each sidecar has ACKed them: SDS is in its xDS status beside CDS, EDS, LDS and RDS.
    mesh.wait_converged(&["frontend", "reviews"]).await;
    for name in ["frontend", "reviews"] {
        let status = mesh.proxy(name).await.unwrap();
        let sds =
            &status["xds"]["type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"];
        assert!(!sds["acked_version"].is_null(), "{name}: {status}");
        assert_eq!(
            sds["acked_version"], sds["sent_version"],
            "{name}: {status}"
        );
    }
    assert_eq!(
        plaintext(&mesh).await,
        Ok(None),
        "PERMISSIVE takes plaintext"
    );

    // STRICT: plaintext is refused; mesh traffic still flows.
    mesh.write(
        "strict.yaml",
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default}\nspec:\n  mtls: {mode: STRICT}\n",
    );
    eventually("STRICT to refuse plaintext", || async {
        plaintext(&mesh).await.is_err().then_some(())
    })
    .await;
    assert_caller_is_frontend(&through_mesh(&mesh).await.unwrap());

    // DISABLE on reviews: plaintext only, and the client sidecar follows
    // (the endpoint is marked plaintext), so no identity reaches it.
    mesh.write(
        "disable.yaml",
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: reviews}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  mtls: {mode: DISABLE}\n",
    );
    eventually("DISABLE to take plaintext", || async {
        plaintext(&mesh).await.ok()
    })
    .await;
    eventually("plaintext through the mesh", || async {
        matches!(through_mesh(&mesh).await, Ok(None)).then_some(())
    })
    .await;

    // A port-level STRICT on the workload's port overrides DISABLE.
    mesh.write(
        "disable.yaml",
        "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: reviews}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  mtls: {mode: DISABLE}\n  portLevelMtls: {9080: {mode: STRICT}}\n",
    );
    eventually("port-level STRICT", || async {
        plaintext(&mesh).await.is_err().then_some(())
    })
    .await;
    let last = eventually("mTLS again through the mesh", || async {
        through_mesh(&mesh).await.ok().flatten()
    })
    .await;
    assert_caller_is_frontend(&Some(last));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authorization_sees_the_caller_s_identity_over_mutual_tls() {
    // Hosts of its own in the subnet: .3-.5, the control plane on .251.
    let workloads = [
        Workload::new("frontend", 3, &[("app", "frontend")]),
        Workload::new("other", 4, &[("app", "other")]),
        Workload::new("reviews", 5, &[("app", "reviews")]),
    ];
    // Only frontend's identity may call reviews, and nobody its /admin;
    // /ip is denied to frontend's address, /ip-other to other's.
    let by_ip = format!(
        "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: by-ip}}\nspec:\n  selector: {{matchLabels: {{app: reviews}}}}\n  action: DENY\n  rules:\n  - from: [{{source: {{ipBlocks: [127.0.{SUBNET}.3/32]}}}}]\n    to: [{{operation: {{paths: [/ip]}}}}]\n  - from: [{{source: {{ipBlocks: [127.0.{SUBNET}.4/32]}}}}]\n    to: [{{operation: {{paths: [/ip-other]}}}}]\n"
    );
    let config = format!(
        "{}---\n{}---\n{}---\n{}{by_ip}",
        service("frontend", &[8000]),
        service("other", &[8000]),
        service("reviews", &[9080]),
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: reviews}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  action: ALLOW\n  rules:\n  - from:\n    - source: {principals: [cluster.local/ns/default/sa/frontend]}\n---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: no-admin}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  action: DENY\n  rules:\n  - to:\n    - operation: {paths: [/admin]}\n",
    );
    let mesh = Mesh::new(SUBNET)
        .with_control_plane_host(251)
        .with_identities();
    let mesh = start_prepared(mesh, &config, &workloads).await;
    let status = |host: u8| status_from(&mesh, host, "http://reviews:9080/");
    let from_frontend = eventually("frontend's call", || async {
        status(3).await.filter(|s| *s == 200)
    })
    .await;
    assert_eq!(from_frontend, 200);
    assert_eq!(status(4).await, Some(403), "another identity is refused");
    // The DENY on a path beats the ALLOW, also for a path that only
    // normalises to it (sent as written, past any client-side cleaning).
    for path in ["/admin", "/a/../admin"] {
        assert_eq!(raw_status(&mesh, 3, path).await, 403, "{path}");
    }
    assert_eq!(raw_status(&mesh, 3, "/a/../b").await, 200);
    // ipBlocks see the caller's workload address: its sidecar binds its
    // upstream connections to it (else every caller is 127.0.0.1).
    assert_eq!(raw_status(&mesh, 3, "/ip").await, 403);
    assert_eq!(raw_status(&mesh, 3, "/ip-other").await, 200);
    // An ALLOW policy with an empty spec allows nothing by itself: frontend,
    // which no other policy guards, refuses every caller (reviews stays as
    // it was: ALLOW policies add up).
    let to_frontend = |host: u8| status_from(&mesh, host, "http://frontend:8000/");
    assert_eq!(to_frontend(4).await, Some(200));
    mesh.write(
        "allow-nothing.yaml",
        "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: allow-nothing}\nspec: {}\n",
    );
    eventually("spec {} to refuse callers of frontend", || async {
        (to_frontend(4).await == Some(403)).then_some(())
    })
    .await;
    assert_eq!(status(3).await, Some(200));
}

/// The status of `GET PATH` to reviews through the sidecar at `host`, with
/// the path on the wire exactly as given.
async fn raw_status(mesh: &Mesh, host: u8, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect((mesh.address(host), 15001))
        .await
        .unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: reviews:9080\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let text = String::from_utf8_lossy(&response);
    text.split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"))
}
