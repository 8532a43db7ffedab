//! Wildcard hosts on real Envoy: a VirtualService for
//! `*.default.svc.cluster.local` takes effect for the services it matches,
//! and a VirtualService with an exact host wins for its own service.

use crate::fixture::{Workload, service, start_mesh};
use crate::services;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wildcard_virtual_service_applies_where_no_exact_host_wins() {
    let policy = format!(
        "{}---\n{}---\n{}",
        services(),
        service("ratings", &[9081]),
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: namespace-wide}
spec:
  hosts: ['*.default.svc.cluster.local']
  http:
  - fault:
      abort:
        httpStatus: 418
        percentage: {value: 100}
    route:
    - destination: {host: ratings}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - headers:
      response:
        set: {x-routed-by: reviews}
    route:
    - destination: {host: reviews, subset: v1}
"#
    );
    let mesh = start_mesh(
        55,
        &policy,
        &[
            Workload::new("client", 1, &[("app", "client")]),
            Workload::new("reviews-v1", 2, &[("app", "reviews"), ("version", "v1")]),
            Workload::new("ratings", 3, &[("app", "ratings")]),
        ],
    )
    .await;
    let client = mesh.client(1);

    // ratings has no VirtualService of its own: the wildcard one aborts it.
    for url in [
        "http://ratings:9081/",
        "http://ratings.default.svc.cluster.local:9081/",
    ] {
        let response = client.get(url).send().await.unwrap();
        assert_eq!(response.status(), 418, "GET {url}");
    }
    assert_eq!(
        mesh.envoy_stat(1, "http.outbound.fault.aborts_injected")
            .await,
        2,
        "the client's sidecar injected both aborts"
    );

    // reviews' exact host beats the wildcard: no abort, its own routes apply.
    let response = client.get("http://reviews:9080/").send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(
        response
            .headers()
            .get("x-routed-by")
            .and_then(|v| v.to_str().ok()),
        Some("reviews")
    );
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["workload"], "reviews-v1");
}
