//! Istio's resilience features on real Envoy: retries, timeouts, fault
//! injection, outlier detection and connection-pool limits. Where a property
//! looks like timing, the test reads Envoy's own counters instead of a clock.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use crate::fixture::{Workload, service, start_mesh};
use crate::harness::{Mesh, count_by, wait_for};

const CLIENT: Workload<'static> = Workload::new("client", 1, &[("app", "client")]);

/// The share (percent) of `counts` answered with 200 by any workload.
fn success_share(counts: &BTreeMap<String, usize>) -> f64 {
    let total: usize = counts.values().sum();
    let failed: usize = counts
        .iter()
        .filter(|(k, _)| k.starts_with("error"))
        .map(|(_, n)| n)
        .sum();
    100.0 * (total - failed) as f64 / total as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_turn_a_flaky_backend_into_near_total_success_and_attempts_0_disables_them() {
    // Three services on the same workload: one whose VirtualService retries
    // up to 5 times on 5xx, one whose VirtualService disables retries, and
    // one without a VirtualService, where Istio's default policy applies:
    // it retries connection failures, never an HTTP 503 (Istio 1.24 on).
    let policy = format!(
        "{}---\n{}---\n{}---\n{}",
        service("flaky", &[9080]),
        service_selecting("flaky-plain", "flaky", 9081),
        service_selecting("flaky-default", "flaky", 9082),
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: flaky}
spec:
  hosts: [flaky]
  http:
  - route:
    - destination: {host: flaky}
    retries: {attempts: 5, retryOn: 5xx}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: flaky-plain}
spec:
  hosts: [flaky-plain]
  http:
  - route:
    - destination: {host: flaky-plain}
    retries: {attempts: 0}
"#
    );
    let mesh = start_mesh(
        26,
        &policy,
        &[CLIENT, Workload::new("flaky", 2, &[("app", "flaky")])],
    )
    .await;
    let client = mesh.client(1);

    let retried = count_by(&client, "http://flaky:9080/flaky/50", 400, "workload").await;
    let plain = count_by(&client, "http://flaky-plain:9081/flaky/50", 400, "workload").await;
    let default = count_by(
        &client,
        "http://flaky-default:9082/flaky/50",
        400,
        "workload",
    )
    .await;
    let (retried_share, plain_share) = (success_share(&retried), success_share(&plain));
    let default_share = success_share(&default);
    println!(
        "/flaky/50: {retried_share:.1}% success with 5 retries ({retried:?}), {plain_share:.1}% with none ({plain:?}), {default_share:.1}% with the default policy ({default:?})"
    );
    assert!(retried_share >= 95.0, "with retries: {retried:?}");
    assert!(
        (30.0..=70.0).contains(&plain_share),
        "without retries about half fail: {plain:?}"
    );
    let retries = cluster_stat(&mesh, "flaky", 9080, "upstream_rq_retry").await;
    assert!(retries >= 100, "the client's sidecar retried: {retries}");
    let plain_retries = cluster_stat(&mesh, "flaky-plain", 9081, "upstream_rq_retry").await;
    assert_eq!(plain_retries, 0, "attempts: 0 never retries");
    // The default policy does not retry a 503: about half fail, as without
    // retries, and the sidecar retried none.
    assert!(
        (30.0..=70.0).contains(&default_share),
        "Istio's default retry policy: {default:?}"
    );
    let default_retries = cluster_stat(&mesh, "flaky-default", 9082, "upstream_rq_retry").await;
    assert_eq!(default_retries, 0, "the default policy never retries a 503");
}

/// A Service named `name` selecting `app: APP` on one HTTP port.
fn service_selecting(name: &str, app: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: {app}}}\n  ports:\n  - {{name: http, port: {port}}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_route_timeout_answers_504_for_slow_requests_only() {
    let policy = format!(
        "{}---\n{}",
        service("slow", &[9080]),
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: slow}
spec:
  hosts: [slow]
  http:
  - route:
    - destination: {host: slow}
    timeout: 0.5s
"#
    );
    let mesh = start_mesh(
        27,
        &policy,
        &[CLIENT, Workload::new("slow", 2, &[("app", "slow")])],
    )
    .await;
    let client = mesh.client(1);

    let fast = client
        .get("http://slow:9080/delay/10")
        .send()
        .await
        .unwrap();
    assert_eq!(fast.status(), 200);
    let late = client
        .get("http://slow:9080/delay/3000")
        .send()
        .await
        .unwrap();
    assert_eq!(late.status(), 504);
    assert_eq!(
        cluster_stat(&mesh, "slow", 9080, "upstream_rq_timeout").await,
        1,
        "the client's sidecar timed the request out"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_abort_the_configured_share_and_delay_every_request() {
    let policy = format!(
        "{}---\n{}",
        service("ratings", &[9080]),
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings}
spec:
  hosts: [ratings]
  http:
  - match:
    - uri: {prefix: /slow}
    fault:
      delay:
        fixedDelay: 1s
        percentage: {value: 100}
    route:
    - destination: {host: ratings}
  - fault:
      abort:
        httpStatus: 418
        percentage: {value: 30}
    route:
    - destination: {host: ratings}
"#
    );
    let mesh = start_mesh(
        28,
        &policy,
        &[CLIENT, Workload::new("ratings", 2, &[("app", "ratings")])],
    )
    .await;
    let client = mesh.client(1);

    let counts = count_by(&client, "http://ratings:9080/", 1000, "workload").await;
    let aborted = counts.get("error:418").copied().unwrap_or(0);
    let served = counts.get("ratings").copied().unwrap_or(0);
    println!("abort 30%: {counts:?}");
    assert_eq!(aborted + served, 1000, "only 418s and answers: {counts:?}");
    let share = aborted as f64 / 10.0;
    assert!(
        (share - 30.0).abs() <= 5.0,
        "{share:.1}% aborted, want 30 ± 5"
    );
    assert_eq!(
        mesh.envoy_stat(1, "http.outbound.fault.aborts_injected")
            .await,
        aborted as u64,
        "every 418 was injected by the client's sidecar"
    );

    // Delays: Envoy counts each one it injects.
    let before = mesh
        .envoy_stat(1, "http.outbound.fault.delays_injected")
        .await;
    let requests = (0..5).map(|i| {
        let client = client.clone();
        async move {
            client
                .get(format!("http://ratings:9080/slow/{i}"))
                .send()
                .await
                .unwrap()
                .status()
        }
    });
    let statuses = join_all(requests).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    let after = mesh
        .envoy_stat(1, "http.outbound.fault.delays_injected")
        .await;
    assert_eq!(after - before, 5, "one injected delay per request");
    assert_eq!(
        mesh.envoy_stat(1, "http.outbound.fault.aborts_injected")
            .await,
        aborted as u64,
        "the delay route aborts nothing"
    );
}

/// Runs every future on its own task, all at once; the results come back in
/// the order given.
async fn join_all<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

/// The client sidecar's counter `name` for the outbound cluster of `host:port`.
async fn cluster_stat(mesh: &Mesh, host: &str, port: u16, name: &str) -> u64 {
    mesh.envoy_stat(
        1,
        &format!("cluster.outbound|{port}||{host}.default.svc.cluster.local.{name}"),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outlier_detection_ejects_a_failing_endpoint() {
    let policy = format!(
        "{}---\n{}",
        service("backend", &[9080]),
        r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: backend}
spec:
  host: backend
  trafficPolicy:
    outlierDetection:
      consecutive5xxErrors: 2
      interval: 1s
      baseEjectionTime: 30s
      maxEjectionPercent: 100
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: backend}
spec:
  hosts: [backend]
  http:
  - route:
    - destination: {host: backend}
    retries: {attempts: 0}
"#
    );
    let mut mesh = start_mesh(
        29,
        &policy,
        &[
            CLIENT,
            Workload::new("backend-a", 2, &[("app", "backend")]),
            Workload::new("backend-b", 3, &[("app", "backend")]),
        ],
    )
    .await;
    let client = mesh.client(1);
    let url = "http://backend:9080/";
    let healthy = count_by(&client, url, 40, "workload").await;
    assert_eq!(healthy.len(), 2, "both endpoints serve: {healthy:?}");

    // backend-b's application dies; its sidecar answers 503 in its place.
    mesh.stop_echo("backend-b").await;
    let failures = AtomicUsize::new(0);
    wait_for(
        "the client's sidecar to eject backend-b",
        Duration::from_secs(20),
        || async {
            let counts = count_by(&client, url, 1, "workload").await;
            let failed = counts.keys().filter(|k| k.starts_with("error")).count();
            failures.fetch_add(failed, Ordering::Relaxed);
            cluster_stat(
                &mesh,
                "backend",
                9080,
                "outlier_detection.ejections_enforced_total",
            )
            .await
                >= 1
        },
    )
    .await;
    let failures = failures.load(Ordering::Relaxed);
    assert!(failures >= 2, "the ejection followed failures: {failures}");
    let after = count_by(&client, url, 100, "workload").await;
    println!("after ejection: {after:?}");
    let ok = after.get("backend-a").copied().unwrap_or(0);
    assert!(ok >= 99, "requests go to the healthy endpoint: {after:?}");
    assert_eq!(
        cluster_stat(&mesh, "backend", 9080, "outlier_detection.ejections_active").await,
        1,
        "backend-b is still ejected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_connection_pool_overflows_with_503() {
    let policy = format!(
        "{}---\n{}",
        service("busy", &[9080]),
        r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: busy}
spec:
  host: busy
  trafficPolicy:
    connectionPool:
      tcp: {maxConnections: 1}
      http: {http1MaxPendingRequests: 1, maxRequestsPerConnection: 1}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: busy}
spec:
  hosts: [busy]
  http:
  - route:
    - destination: {host: busy}
    retries: {attempts: 0}
"#
    );
    let mesh = start_mesh(
        30,
        &policy,
        &[CLIENT, Workload::new("busy", 2, &[("app", "busy")])],
    )
    .await;
    let client = mesh.client(1);

    let requests = (0..20).map(|_| {
        let client = client.clone();
        async move {
            let response = client
                .get("http://busy:9080/delay/300")
                .send()
                .await
                .unwrap();
            let overloaded = response.headers().contains_key("x-envoy-overloaded");
            (response.status().as_u16(), overloaded)
        }
    });
    let answers = join_all(requests).await;
    println!("20 concurrent requests through a pool of 1: {answers:?}");
    let served = answers.iter().filter(|(s, _)| *s == 200).count();
    let overflowed = answers.iter().filter(|(s, o)| *s == 503 && *o).count();
    assert!(served >= 1, "{answers:?}");
    assert!(overflowed >= 1, "{answers:?}");
    assert_eq!(
        served + overflowed,
        answers.len(),
        "every failure is an overflow: {answers:?}"
    );
    let pending_overflow = cluster_stat(&mesh, "busy", 9080, "upstream_rq_pending_overflow").await;
    assert!(pending_overflow >= 1, "{pending_overflow}");
}
