//! Root rotation under continuous mutual-TLS traffic, with real Envoys and
//! the real CA: `bowline ca rotate-root` while requests flow, every step
//! of it (the new root distributed and ACKed, signing switched with the
//! cross-signature, workloads renewed, the old root retired), and not one
//! request fails.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::process::Command;

use crate::fixture::{Workload, service, start_prepared};
use crate::harness::{BOWLINE, Mesh};

const SUBNET: u8 = 124;

/// What the traffic saw.
#[derive(Default)]
struct Traffic {
    ok: AtomicU64,
    failed: AtomicU64,
    first_failure: std::sync::Mutex<Option<String>>,
    stop: AtomicBool,
}

/// Requests from frontend's sidecar to reviews, one every 20 ms, until stopped.
fn keep_calling(mesh: &Mesh) -> (Arc<Traffic>, tokio::task::JoinHandle<()>) {
    let traffic = Arc::new(Traffic::default());
    let client = mesh.client(1);
    let seen = traffic.clone();
    let task = tokio::spawn(async move {
        let mut pace = tokio::time::interval(Duration::from_millis(20));
        while !seen.stop.load(Ordering::Relaxed) {
            pace.tick().await;
            let outcome = match client.get("http://reviews:9080/rotation").send().await {
                Ok(r) if r.status().is_success() => Ok(()),
                Ok(r) => Err(format!("status {}", r.status())),
                Err(e) => Err(e.to_string()),
            };
            match outcome {
                Ok(()) => seen.ok.fetch_add(1, Ordering::Relaxed),
                Err(e) => {
                    seen.first_failure.lock().unwrap().get_or_insert(e);
                    seen.failed.fetch_add(1, Ordering::Relaxed)
                }
            };
        }
    });
    (traffic, task)
}

fn certificates(pem: &str) -> usize {
    pem.matches("BEGIN CERTIFICATE").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_root_rotation_under_traffic_fails_no_request() {
    let workloads = [
        Workload::new("frontend", 1, &[("app", "frontend")]),
        Workload::new("reviews", 2, &[("app", "reviews")]),
    ];
    // STRICT everywhere: every request is mutual TLS, so every certificate
    // and every root matters.
    let policy = format!(
        "{}---\n{}---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: default, namespace: istio-system}}\nspec:\n  mtls: {{mode: STRICT}}\n",
        service("frontend", &[8000]),
        service("reviews", &[9080])
    );
    let mut mesh = Mesh::new(SUBNET).with_identities();
    // Short-lived certificates: renewed every 15 s, so the rotation's
    // reissuing step lasts about one lifetime.
    mesh.set_control_plane_args(&["--workload-cert-ttl", "30s"]);
    let mesh = start_prepared(mesh, &policy, &workloads).await;
    let old_bundle = mesh.admin_text("/api/v1/trust-bundle").await;
    assert_eq!(certificates(&old_bundle), 1);

    let (traffic, task) = keep_calling(&mesh);
    let warm = Instant::now() + Duration::from_secs(30);
    while traffic.ok.load(Ordering::Relaxed) < 10 {
        assert!(
            Instant::now() < warm,
            "no traffic got through before the rotation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

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
    // Keep the traffic going a little past the end: connections opened
    // with the new root alone must work too.
    let after = traffic.ok.load(Ordering::Relaxed) + 50;
    let limit = Instant::now() + Duration::from_secs(30);
    while traffic.ok.load(Ordering::Relaxed) < after && traffic.failed.load(Ordering::Relaxed) == 0
    {
        assert!(Instant::now() < limit, "traffic stopped after the rotation");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    traffic.stop.store(true, Ordering::Relaxed);
    task.await.unwrap();

    let (ok, failed) = (
        traffic.ok.load(Ordering::Relaxed),
        traffic.failed.load(Ordering::Relaxed),
    );
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed during the rotation; first: {:?}",
        ok + failed,
        traffic.first_failure.lock().unwrap()
    );
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
    println!("{ok} requests, none failed; steps {steps:?}");
}
