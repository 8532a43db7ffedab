//! Certificates and roots changing under continuous mutual-TLS traffic,
//! with real Envoys and the real CA: 30 s certificates renewed again and
//! again over two minutes, `bowline ca rotate-root` meanwhile with every
//! step of it (the new root distributed and ACKed, signing switched with
//! the cross-signature, workloads renewed, the old root retired), and a
//! restart of the control plane; not one request fails.

use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::Command;

use crate::fixture::{Workload, keep_calling, service, start_prepared};
use crate::harness::{BOWLINE, Mesh};

const SUBNET: u8 = 124;
const RESTART_SUBNET: u8 = 125;
const FORCE_SUBNET: u8 = 127;

/// The serial numbers of frontend's workload certificate as its Envoy
/// showed them in `/certs`, in the order they appeared.
#[derive(Debug, Default)]
struct Serials {
    seen: Vec<String>,
}

impl Serials {
    async fn sample(&mut self, mesh: &Mesh) {
        let certs: Value =
            serde_json::from_str(&mesh.envoy_admin(1, "/certs").await).unwrap_or_default();
        let leaf = certs["certificates"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["cert_chain"].as_array().into_iter().flatten())
            .find(|c| c["subject_alt_names"].to_string().contains("sa/frontend"))
            .and_then(|c| c["serial_number"].as_str().map(str::to_string));
        if let Some(serial) = leaf
            && self.seen.last() != Some(&serial)
        {
            self.seen.push(serial);
        }
    }

    fn changes(&self) -> usize {
        self.seen.len().saturating_sub(1)
    }
}

/// frontend and reviews, with STRICT mesh-wide: every request is mutual
/// TLS, so every certificate and every root matters.
fn strict_pair() -> ([Workload<'static>; 2], String) {
    let workloads = [
        Workload::new("frontend", 1, &[("app", "frontend")]),
        Workload::new("reviews", 2, &[("app", "reviews")]),
    ];
    let policy = format!(
        "{}---\n{}---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: default, namespace: istio-system}}\nspec:\n  mtls: {{mode: STRICT}}\n",
        service("frontend", &[8000]),
        service("reviews", &[9080])
    );
    (workloads, policy)
}

fn certificates(pem: &str) -> usize {
    pem.matches("BEGIN CERTIFICATE").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_rotation_under_traffic_fails_no_request() {
    let (workloads, policy) = strict_pair();
    let mut mesh = Mesh::new(SUBNET).with_identities();
    // Short-lived certificates: renewed every 15 s, so the rotation's
    // reissuing step lasts about one lifetime.
    mesh.set_control_plane_args(&["--workload-cert-ttl", "30s"]);
    let mesh = start_prepared(mesh, &policy, &workloads).await;
    let old_bundle = mesh.admin_text("/api/v1/trust-bundle").await;
    assert_eq!(certificates(&old_bundle), 1);

    let (traffic, task) = keep_calling(&mesh, 1, "http://reviews:9080/rotation");
    let started = Instant::now();
    traffic.more_ok(10, "before the rotation").await;
    let mut serials = Serials::default();
    serials.sample(&mesh).await;

    let out = Command::new(BOWLINE)
        .args(["ca", "rotate-root", "--state-dir"])
        .arg(mesh.state_dir())
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "bowline ca rotate-root: {out:?}");
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("root-2 joins the trust bundle beside root"),
        "{said}"
    );

    // Follow the steps in /api/v1/ca until the rotation is over.
    let mut steps: Vec<String> = Vec::new();
    let mut both_roots_seen = false;
    let limit = Instant::now() + Duration::from_secs(240);
    let last = loop {
        let ca: Value = mesh.admin_json("/api/v1/ca").await;
        let step = ca["rotation"]["step"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        if steps.last() != Some(&step) {
            steps.push(step.clone());
        }
        serials.sample(&mesh).await;
        both_roots_seen |= ca["roots"].as_array().is_some_and(|r| r.len() == 2);
        let done = step == "idle" && ca["rotation"]["signing"] == "root-2";
        if done {
            break ca;
        }
        assert!(
            Instant::now() < limit,
            "the rotation did not finish: steps {steps:?}, now {ca:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Keep the traffic going past the end (connections opened with the new
    // root alone must work too) until it has run two minutes and frontend's
    // certificate has been renewed at least twice (30 s certificates).
    let limit = Instant::now() + Duration::from_secs(240);
    while started.elapsed() < Duration::from_secs(120) || serials.changes() < 2 {
        assert!(
            Instant::now() < limit,
            "frontend's serial changed {} times: {:?}",
            serials.changes(),
            serials.seen
        );
        traffic.more_ok(10, "after the rotation").await;
        serials.sample(&mesh).await;
    }
    let ok = traffic.stop_and_check(task, "during the rotation").await;
    assert!(
        both_roots_seen,
        "the bundle never held both roots: {steps:?}"
    );
    assert!(
        steps.iter().any(|s| s == "reissuing"),
        "the rotation skipped reissuing: {steps:?}"
    );
    // The old root is gone from the bundle, the proxies got it, and the
    // workloads hold certificates of the new root.
    let roots = last["roots"].as_array().unwrap();
    assert_eq!(roots.len(), 1, "{last:#}");
    assert_eq!(roots[0]["id"], "root-2");
    assert!(roots[0]["workloads"].as_u64().unwrap() >= 2, "{last:#}");
    let new_bundle = mesh.admin_text("/api/v1/trust-bundle").await;
    assert_eq!(certificates(&new_bundle), 1);
    assert_ne!(new_bundle, old_bundle);
    assert!(!mesh.state_dir().join("root-key.pem").exists());
    // New keys were made and old ones deleted; none of them, nor any
    // workload's, is in a log line at any level.
    for (what, log) in [
        ("control plane", mesh.control_plane_log()),
        ("frontend's agent", mesh.agent_log("frontend")),
        ("reviews' agent", mesh.agent_log("reviews")),
    ] {
        assert!(!log.is_empty(), "{what} logged nothing");
        assert!(
            !log.contains("PRIVATE KEY"),
            "{what}'s log holds key material"
        );
    }
    println!(
        "{ok} requests in {:?}, none failed; steps {steps:?}; frontend's serials {:?}",
        started.elapsed(),
        serials.seen
    );
}

/// The control plane and its CA restart under STRICT mutual-TLS traffic:
/// the sidecars keep serving while it is down, it comes back with the same
/// root, and the certificates issued before (Envoy's own, for its xDS
/// stream and its peers) still verify against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_control_plane_restart_keeps_the_root_and_the_traffic() {
    let (workloads, policy) = strict_pair();
    let mesh = Mesh::new(RESTART_SUBNET).with_identities();
    let mut mesh = start_prepared(mesh, &policy, &workloads).await;
    let bundle = mesh.admin_text("/api/v1/trust-bundle").await;
    let (traffic, task) = keep_calling(&mesh, 1, "http://reviews:9080/restart");
    traffic.more_ok(20, "before the restart").await;

    mesh.stop_control_plane().await;
    traffic.more_ok(50, "with the control plane down").await;
    mesh.start_control_plane().await;
    assert_eq!(mesh.admin_text("/api/v1/trust-bundle").await, bundle);
    // The sidecars reconnect over mutual TLS with the certificates the
    // previous process issued, and ACK the new process's config.
    mesh.wait_converged(&["frontend", "reviews"]).await;
    for name in ["frontend", "reviews"] {
        let status = mesh.proxy(name).await.unwrap();
        assert_eq!(
            status["identity"],
            format!("spiffe://cluster.local/ns/default/sa/{name}"),
            "{status}"
        );
    }
    traffic.more_ok(50, "after the restart").await;
    let ok = traffic.stop_and_check(task, "through a restart").await;
    println!("{ok} requests through the restart, none failed");
}

/// `bowline ca rotate-root --force` with day-long certificates: once the
/// new root signs, every agent renews at once (told by the CA's trust
/// watch), not within a day; STRICT traffic meanwhile fails no request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_root_rotation_reissues_every_certificate_at_once() {
    let (workloads, policy) = strict_pair();
    let mesh = Mesh::new(FORCE_SUBNET).with_identities();
    let mesh = start_prepared(mesh, &policy, &workloads).await;
    let (traffic, task) = keep_calling(&mesh, 1, "http://reviews:9080/forced");
    traffic.more_ok(10, "before the rotation").await;
    let mut serials = Serials::default();
    serials.sample(&mesh).await;
    assert_eq!(serials.seen.len(), 1, "frontend's certificate in /certs");

    let out = Command::new(BOWLINE)
        .args(["ca", "rotate-root", "--force", "--state-dir"])
        .arg(mesh.state_dir())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "bowline ca rotate-root --force: {out:?}"
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("every workload renews at once"), "{said}");

    // Until the new root signs and no workload holds a certificate of the
    // old one: both renewed long before their day is half over.
    let limit = Instant::now() + Duration::from_secs(120);
    let ca = loop {
        let ca: Value = mesh.admin_json("/api/v1/ca").await;
        let workloads = |id: &str| {
            ca["roots"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|r| r["id"] == id)
                .and_then(|r| r["workloads"].as_u64())
        };
        if ca["rotation"]["step"] == "reissuing"
            && workloads("root") == Some(0)
            && workloads("root-2") == Some(2)
        {
            break ca;
        }
        assert!(
            Instant::now() < limit,
            "the workloads were not reissued: {ca:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert_eq!(ca["rotation"]["force"], true, "{ca:#}");
    // Both issued twice (at start, then at the CA's word), as /api/v1/ca
    // and /metrics (under istiod's names) count them.
    assert!(
        ca["certificates"]["issued"].as_u64().unwrap() >= 4,
        "{ca:#}"
    );
    let metrics = mesh.admin_text("/metrics").await;
    let issued = metrics
        .lines()
        .find_map(|l| l.strip_prefix("citadel_server_success_cert_issuance_count "))
        .and_then(|v| v.parse::<u64>().ok());
    assert!(issued.is_some_and(|n| n >= 4), "{metrics}");
    assert!(
        metrics
            .lines()
            .any(|l| l.starts_with("citadel_server_root_cert_expiry_timestamp ")),
        "{metrics}"
    );
    // Envoy serves the new certificate.
    let limit = Instant::now() + Duration::from_secs(60);
    while serials.changes() < 1 {
        assert!(Instant::now() < limit, "frontend's serial never changed");
        traffic.more_ok(5, "while reissuing").await;
        serials.sample(&mesh).await;
    }
    traffic.more_ok(20, "after the reissue").await;
    let ok = traffic
        .stop_and_check(task, "through a forced rotation")
        .await;
    for name in ["frontend", "reviews"] {
        let log = mesh.agent_log(name);
        assert!(
            log.contains("asks every workload to renew"),
            "{name}'s agent did not renew at the CA's word:\n{log}"
        );
    }
    println!(
        "{ok} requests, none failed; frontend's serials {:?}",
        serials.seen
    );
}
