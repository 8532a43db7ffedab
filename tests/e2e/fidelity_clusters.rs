//! Cluster and bootstrap translations that must mean on real Envoy what they
//! mean in Istio: the deprecated `outlierDetection.consecutiveErrors` ejects
//! on gateway errors only, and a long but valid regex is accepted (the
//! bootstrap raises Envoy's RE2 program size limit as Istio's does).

use std::collections::BTreeMap;
use std::time::Duration;

use crate::fixture::{Workload, service, start_mesh};
use crate::harness::{Mesh, count_by, wait_for};

const CLIENT: Workload<'static> = Workload::new("client", 1, &[("app", "client")]);

/// The outbound cluster of `backend:9080`.
const BACKEND: &str = "outbound|9080||backend.default.svc.cluster.local";

/// The health flags of each host of `cluster` in the admin `/clusters`
/// output of the Envoy at `127.0.<subnet>.<host>`, by endpoint IP.
async fn health_flags(mesh: &Mesh, host: u8, cluster: &str) -> BTreeMap<String, String> {
    let text = mesh.envoy_admin(host, "/clusters").await;
    text.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(cluster)?.strip_prefix("::")?;
            let (endpoint, rest) = rest.split_once("::")?;
            let flags = rest.strip_prefix("health_flags::")?;
            let ip = endpoint.rsplit_once(':').map_or(endpoint, |(ip, _)| ip);
            Some((ip.to_string(), flags.to_string()))
        })
        .collect()
}

/// The client sidecar's outlier detection counter `name` for the backend.
async fn outlier_stat(mesh: &Mesh, name: &str) -> u64 {
    mesh.envoy_stat(1, &format!("cluster.{BACKEND}.outlier_detection.{name}"))
        .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deprecated_consecutive_errors_eject_on_503_but_not_on_500() {
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
      consecutiveErrors: 1
      interval: 1s
      baseEjectionTime: 5m
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
        50,
        &policy,
        &[
            CLIENT,
            Workload::new("backend-a", 2, &[("app", "backend")]),
            Workload::new("backend-b", 3, &[("app", "backend")]),
        ],
    )
    .await;
    let (a, b) = (mesh.address(2).to_string(), mesh.address(3).to_string());
    let client = mesh.client(1);
    let url = "http://backend:9080/status/500";
    let answers = count_by(&client, url, 20, "workload").await;
    assert_eq!(
        answers.get("error:500"),
        Some(&20),
        "both endpoints answer 500: {answers:?}"
    );

    // backend-a keeps answering 500; backend-b's application dies, and its
    // sidecar answers 503 in its place.
    mesh.stop_echo("backend-b").await;
    wait_for(
        "an ejection, and backend-a's 500s to be counted",
        Duration::from_secs(30),
        || async {
            count_by(&client, url, 1, "workload").await;
            // Envoy counts a 5xx ejection it detects even when it does not
            // enforce it: five 500s in a row from backend-a (Envoy's default
            // consecutive_5xx) are detected, and would eject it under
            // Envoy's default enforcement.
            outlier_stat(&mesh, "ejections_active").await >= 1
                && outlier_stat(&mesh, "ejections_detected_consecutive_5xx").await >= 1
        },
    )
    .await;
    assert_eq!(
        outlier_stat(&mesh, "ejections_enforced_consecutive_5xx").await,
        0,
        "500s eject nothing"
    );
    assert_eq!(
        outlier_stat(&mesh, "ejections_enforced_consecutive_gateway_failure").await,
        1,
        "backend-b's 503 ejects it"
    );
    assert_eq!(outlier_stat(&mesh, "ejections_active").await, 1);
    let flags = health_flags(&mesh, 1, BACKEND).await;
    assert_eq!(
        flags.get(&a).map(String::as_str),
        Some("healthy"),
        "{flags:?}"
    );
    assert!(
        flags
            .get(&b)
            .is_some_and(|f| f.contains("failed_outlier_check")),
        "backend-b is ejected: {flags:?}"
    );
    // Every request now reaches backend-a, which still answers 500.
    let after = count_by(&client, url, 20, "workload").await;
    assert_eq!(after.get("error:500"), Some(&20), "{after:?}");
}

/// A route pattern with an RE2 program size of 123 (as Envoy 1.40 reports
/// when it rejects it under its default limit of 100), far below 32768 and
/// well within validation's 1024 characters.
const LONG_REGEX: &str = "/(alpha|bravo|charlie|delta|echo|foxtrot|golf|hotel|india|juliet|kilo|lima)/[0-9]{1,8}/(items|orders|invoices)/[a-f0-9]{8}";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_valid_regex_is_acked_and_matches() {
    let backend = service("backend", &[9080]);
    let policy = format!(
        r#"{backend}---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: backend}}
spec:
  hosts: [backend]
  http:
  - match:
    - uri: {{regex: '{LONG_REGEX}'}}
    route:
    - destination: {{host: backend}}
  - directResponse:
      status: 404
      body: {{string: "no route"}}
"#
    );
    // start_mesh waits until every sidecar has ACKed all it was sent.
    let mesh = start_mesh(
        51,
        &policy,
        &[CLIENT, Workload::new("backend", 2, &[("app", "backend")])],
    )
    .await;
    for proxy in mesh.proxies().await {
        for (type_url, state) in proxy["xds"].as_object().unwrap() {
            assert!(state["nack"].is_null(), "{type_url}: {state}");
        }
    }
    let client = mesh.client(1);
    let matching = "http://backend:9080/hotel/12345678/invoices/deadbeef";
    let answer = client.get(matching).send().await.unwrap();
    assert_eq!(answer.status(), 200);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["workload"], "backend");
    assert_eq!(body["path"], "/hotel/12345678/invoices/deadbeef");
    // The regex matches the whole path: a longer one falls through.
    let other = client
        .get("http://backend:9080/hotel/12345678/invoices/deadbeef/x")
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 404);
    assert_eq!(other.text().await.unwrap(), "no route");
}
