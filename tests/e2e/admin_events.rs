//! `GET /api/v1/events`: Server-Sent Events of a running mesh with real
//! Envoys: a sidecar connecting, a config change applied and pushed, and a
//! NACK with Envoy's own text.

use std::time::Duration;

use serde_json::Value;

use crate::harness::Mesh;
use crate::{REVIEWS_WORKLOADS, write_reviews_config};

const SUBNET: u8 = 131;
/// Only a guard against a hang.
const LIMIT: Duration = Duration::from_secs(60);

/// The event stream, read one event at a time.
struct Events {
    response: reqwest::Response,
    buffer: String,
}

impl Events {
    async fn open(mesh: &Mesh) -> Events {
        let response = reqwest::get(format!("http://{}/api/v1/events", mesh.admin))
            .await
            .unwrap();
        assert_eq!(
            response.headers()["content-type"],
            "text/event-stream",
            "{response:?}"
        );
        Events {
            response,
            buffer: String::new(),
        }
    }

    /// The next event's name and JSON data (keep-alive comments skipped).
    async fn next(&mut self) -> (String, Value) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut name = String::new();
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("event: ") {
                        name = v.to_string();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data.push_str(v);
                    }
                }
                if name.is_empty() {
                    continue;
                }
                return (name, serde_json::from_str(&data).unwrap_or(Value::Null));
            }
            let chunk = tokio::time::timeout(LIMIT, self.response.chunk())
                .await
                .expect("an event within the limit")
                .unwrap()
                .expect("the stream stays open");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }

    /// Reads until an event `name` whose data satisfies `wanted`.
    async fn until(&mut self, name: &str, wanted: impl Fn(&Value) -> bool) -> Value {
        loop {
            let (got, data) = self.next().await;
            if got == name && wanted(&data) {
                return data;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_tell_of_connections_config_pushes_and_nacks() {
    let mut mesh = Mesh::new(SUBNET);
    write_reviews_config(&mesh, (100, 0));
    mesh.start_control_plane().await;
    let mut events = Events::open(&mesh).await;

    // The graph: reviews routes 100/0 to its subsets, and reaches its
    // workloads, PERMISSIVE where no PeerAuthentication says otherwise.
    let topology = mesh.admin_json("/api/v1/topology").await;
    let reviews_id = "service:reviews.default.svc.cluster.local";
    let routes: Vec<(String, u64)> = topology["edges"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "route" && e["from"] == reviews_id)
        .map(|e| {
            (
                e["subset"].as_str().unwrap().to_string(),
                e["weight"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        routes,
        [("v1".to_string(), 100), ("v2".to_string(), 0)],
        "{topology}"
    );
    let to_v1 = topology["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "endpoint" && e["to"] == "workload:default/reviews-v1")
        .unwrap_or_else(|| panic!("no endpoint edge to reviews-v1: {topology}"));
    assert_eq!(to_v1["mtls"], "PERMISSIVE", "{topology}");
    let out = tokio::process::Command::new(crate::harness::BOWLINE)
        .args(["topology", "--server", &format!("http://{}", mesh.admin)])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        text.contains(
            "reviews.default.svc.cluster.local -route-> reviews.default.svc.cluster.local   v1 100%"
        ),
        "{text}"
    );

    let reviews = REVIEWS_WORKLOADS
        .iter()
        .find(|w| w.name == "reviews-v1")
        .unwrap();
    mesh.start_workload(reviews.name, reviews.host, reviews.labels, "sotw")
        .await;
    let is_reviews = |v: &Value| {
        v["proxy"]
            .as_str()
            .is_some_and(|p| p.contains("reviews-v1"))
    };
    let connected = events.until("connected", is_reviews).await;
    mesh.wait_converged(&["reviews-v1"]).await;
    // One proxy by its node id, or as WORKLOAD.NAMESPACE.
    let by_name = mesh.admin_json("/api/v1/proxies/reviews-v1.default").await;
    assert_eq!(by_name["id"], connected["proxy"], "{by_name}");
    let node_id = connected["proxy"].as_str().unwrap();
    let by_id = mesh.admin_json(&format!("/api/v1/proxies/{node_id}")).await;
    assert_eq!(by_id["workload"], "reviews-v1", "{by_id}");
    // When it was last pushed to: RFC 3339, UTC, to the millisecond.
    let pushed = by_id["last_push"]
        .as_str()
        .unwrap_or_else(|| panic!("{by_id}"));
    assert!(
        pushed.len() == 24 && pushed.ends_with('Z') && pushed.as_bytes()[10] == b'T',
        "{pushed}"
    );
    let year: u32 = pushed[..4].parse().unwrap();
    assert!(year >= 2026, "{pushed} is not a time of this push");
    // Services: each endpoint's health and the identity it presents.
    let services = mesh.admin_json("/api/v1/services").await;
    let reviews_service = services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "reviews")
        .unwrap_or_else(|| panic!("{services}"));
    let endpoint = reviews_service["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["workload"] == "default/reviews-v1")
        .unwrap_or_else(|| panic!("{reviews_service}"));
    assert_eq!(endpoint["health"], "HEALTHY", "{endpoint}");
    assert_eq!(
        endpoint["identity"], "spiffe://cluster.local/ns/default/sa/default",
        "{endpoint}"
    );
    let missing = reqwest::get(format!(
        "http://{}/api/v1/proxies/nobody.default",
        mesh.admin
    ))
    .await
    .unwrap();
    assert_eq!(missing.status(), reqwest::StatusCode::NOT_FOUND);

    // A port another process holds on reviews-v1's address: the config is
    // applied, pushed, and Envoy NACKs its listeners.
    let _squatter = std::net::TcpListener::bind((mesh.address(reviews.host), 7777)).unwrap();
    mesh.write(
        "reviews-admin.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: reviews-admin}\nspec:\n  selector: {app: reviews}\n  ports:\n  - {name: http-admin, port: 7777}\n",
    );
    let applied = events.until("config_applied", |_| true).await;
    let generation = applied["generation"].as_u64().unwrap();
    assert_eq!(applied["errors"], 0, "{applied}");
    events
        .until("push_completed", |v| {
            is_reviews(v) && v["generation"].as_u64() >= Some(generation)
        })
        .await;
    let nack = events.until("nack", is_reviews).await;
    assert_eq!(
        nack["type_url"], "type.googleapis.com/envoy.config.listener.v3.Listener",
        "{nack}"
    );
    assert!(nack["message"].as_str().unwrap().contains("7777"), "{nack}");
    // With the object the rejected listener came from.
    assert!(
        nack["objects"].as_array().is_some_and(|o| o
            .iter()
            .any(|o| o["kind"] == "Service" && o["name"] == "reviews-admin")),
        "{nack}"
    );
}
