//! Route translations that must mean on Envoy what they mean in Istio:
//! `withoutHeaders` holds for a request that lacks the header, and the
//! default retry policy does not retry an HTTP 503.

use std::time::Duration;

use crate::fixture::{Workload, service, start_mesh};
use crate::harness::wait_for;
use crate::services;

const CLIENT: Workload<'static> = Workload::new("client", 1, &[("app", "client")]);
const REVIEWS_V1: Workload<'static> =
    Workload::new("reviews-v1", 2, &[("app", "reviews"), ("version", "v1")]);
const REVIEWS_V2: Workload<'static> =
    Workload::new("reviews-v2", 3, &[("app", "reviews"), ("version", "v2")]);

/// The version of reviews answering a GET with `headers`.
async fn version(client: &reqwest::Client, headers: &[(&str, &str)]) -> String {
    let mut request = client.get("http://reviews:9080/");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "{headers:?}");
    let body: serde_json::Value = response.json().await.unwrap();
    body["version"].as_str().unwrap_or("missing").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_headers_catches_a_request_without_the_header() {
    let policy = format!(
        "{}---\n{}",
        services(),
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: not-alice
    match:
    - withoutHeaders:
        x-user: {exact: alice}
    route:
    - destination: {host: reviews, subset: v2}
  - route:
    - destination: {host: reviews, subset: v1}
"#
    );
    let mesh = start_mesh(45, &policy, &[CLIENT, REVIEWS_V1, REVIEWS_V2]).await;
    let client = mesh.client(1);
    // No x-user at all: "without x-user: alice" holds.
    assert_eq!(version(&client, &[]).await, "v2");
    assert_eq!(version(&client, &[("x-user", "bob")]).await, "v2");
    assert_eq!(version(&client, &[("x-user", "alice")]).await, "v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_default_retry_policy_does_not_retry_a_503() {
    // The catch-all route has no `retries`: Istio's default policy. The
    // other route asks for 503 retries, to show the counters do count them.
    let policy = format!(
        "{}---\n{}",
        service("reviews", &[9080]),
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: retried
    match:
    - headers:
        x-retry: {exact: "yes"}
    retries: {attempts: 2, retryOn: "503"}
    route:
    - destination: {host: reviews}
  - route:
    - destination: {host: reviews}
"#
    );
    let mesh = start_mesh(46, &policy, &[CLIENT, REVIEWS_V1]).await;
    let client = mesh.client(1);
    let outbound = "cluster.outbound|9080||reviews.default.svc.cluster.local";
    let inbound = "cluster.inbound|9080||";
    let get = |retry: &'static str| {
        client
            .get("http://reviews:9080/status/503")
            .header("x-retry", retry)
            .send()
    };

    // The application's sidecar counts each attempt it answers when the
    // attempt completes, which may be just after the client has the
    // response: wait for the count before reading the client's counters.
    let settled = |attempts: u64| {
        let mesh = &mesh;
        async move {
            let key = format!("{inbound}.upstream_rq_completed");
            wait_for(
                "the application's answers to be counted",
                Duration::from_secs(10),
                || {
                    let key = key.clone();
                    async move { mesh.envoy_stat(2, &key).await >= attempts }
                },
            )
            .await;
        }
    };

    let response = get("no").await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["x-bowline-workload"], "reviews-v1");
    settled(1).await;
    let stats = mesh.envoy_stats(1).await;
    let stat = |name: &str| stats.get(&format!("{outbound}.{name}")).copied();
    assert_eq!(stat("upstream_rq_total"), Some(1), "{stats:#?}");
    assert_eq!(stat("upstream_rq_retry").unwrap_or(0), 0);

    // With retryOn 503, the same answer is tried three times.
    let response = get("yes").await.unwrap();
    assert_eq!(response.status(), 503);
    settled(4).await;
    // In all, four attempts: one for the first request, so it was sent once
    // and not retried, and three for the second.
    let stats = mesh.envoy_stats(1).await;
    let stat = |name: &str| stats.get(&format!("{outbound}.{name}")).copied();
    assert_eq!(stat("upstream_rq_total"), Some(4), "{stats:#?}");
    assert_eq!(stat("upstream_rq_retry"), Some(2));
    assert_eq!(
        mesh.envoy_stat(2, &format!("{inbound}.upstream_rq_503"))
            .await,
        4
    );
}
