//! The inbound route's default retry policy (Istio's `reset-before-request`)
//! on real Envoy: a request whose connection to the application was
//! refused is retried, and the client gets the application's answer; a
//! request the application received and reset, even unread, is not.
//!
//! Envoy's `reset-before-request` retries a reset only while no byte of the
//! request has been sent upstream, and it counts the request as sent as
//! soon as its headers are handed to an established connection, before the
//! application has read anything. So the reset it retries is a connection
//! to the application that failed: here, one refused because nothing
//! listened. (A request on a connection the application accepted counts as
//! sent, read or not, and a reset then is not retried: the second test.)
//! That the first attempt is refused and the retry is not is decided by
//! packet order, never by timing: the test runs in a network namespace of
//! its own, where a gate lets one connection attempt to the application
//! through and holds the next until the application listens again.
//!
//! ```text
//! client ─► client sidecar ─► app sidecar ─► SYN 1 ─► gate ─► nothing listens: RST
//!                                 │ retry
//!                                 └────────► SYN 2 ─► held ─► app started, gate opened
//!                                                     ─► retransmitted SYN ─► app: 200
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use serde_json::Value;

use crate::fixture::{Workload, service, start_mesh};
use crate::harness::{APP_PORT, listening, wait_for};
use crate::netns::{self, GateCount, SynGate};

const CLIENT: Workload<'static> = Workload::new("client", 1, &[("app", "client")]);
const REVIEWS: Workload<'static> = Workload::new("reviews", 2, &[("app", "reviews")]);

/// The app sidecar's cluster for its application, and the client sidecar's
/// cluster for reviews.
const INBOUND: &str = "cluster.inbound|9080||";
const OUTBOUND: &str = "cluster.outbound|9080||reviews.default.svc.cluster.local";

#[test]
fn a_request_whose_connection_to_the_application_was_refused_is_retried() {
    netns::run(
        "fidelity_retry::a_request_whose_connection_to_the_application_was_refused_is_retried",
        refused_then_retried,
    );
}

async fn refused_then_retried() {
    // No `retries` anywhere: the inbound route has Istio's default policy.
    let mut mesh = start_mesh(61, &service("reviews", &[9080]), &[CLIENT, REVIEWS]).await;
    let app = SocketAddr::new(mesh.address(2), APP_PORT);
    // The application stops before its sidecar has ever connected to it, so
    // the sidecar has no idle connection to it either.
    mesh.stop_echo("reviews").await;
    assert!(!listening(app), "the application still listens on {app}");
    let gate = SynGate::install(app);

    let client = mesh.client(1);
    let request =
        tokio::spawn(async move { client.get("http://reviews:9080/retried").send().await });
    wait_for(
        "the app sidecar to try to connect to its application again",
        Duration::from_secs(30),
        || async { gate.count().held >= 1 || request.is_finished() },
    )
    .await;
    if request.is_finished() {
        panic!(
            "the request ended without a retry: {:?}",
            request.await.unwrap().map(|r| r.status())
        );
    }
    // The first attempt went through the gate and was refused; the retry's
    // connection attempt waits at the gate.
    assert_eq!(gate.count(), GateCount { passed: 1, held: 1 });
    let inbound = |name: &str| format!("{INBOUND}.{name}");
    assert_eq!(
        mesh.envoy_stat(2, &inbound("upstream_cx_connect_fail"))
            .await,
        1
    );
    assert_eq!(mesh.envoy_stat(2, &inbound("upstream_rq_retry")).await, 1);

    // The held attempt lasts until Envoy's connect timeout (10 s), far longer
    // than starting the application takes.
    mesh.start_echo("reviews").await;
    gate.open();
    let response = request.await.unwrap().expect("the retried request");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-bowline-workload"], "reviews");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["workload"], "reviews");
    assert_eq!(body["path"], "/retried");

    let stats = mesh.envoy_stats(2).await;
    let stat = |name: &str| stats.get(&inbound(name)).copied().unwrap_or(0);
    assert_eq!(stat("upstream_cx_connect_fail"), 1, "{stats:#?}");
    assert_eq!(stat("upstream_rq_retry"), 1, "{stats:#?}");
    assert_eq!(stat("upstream_rq_retry_success"), 1, "{stats:#?}");
    assert_eq!(stat("upstream_rq_200"), 1, "{stats:#?}");
    // The retry was the app sidecar's: the client's sidecar sent the request
    // once and got the 200.
    let client_stats = mesh.envoy_stats(1).await;
    let client_stat = |name: &str| {
        client_stats
            .get(&format!("{OUTBOUND}.{name}"))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(client_stat("upstream_rq_total"), 1, "{client_stats:#?}");
    assert_eq!(client_stat("upstream_rq_retry"), 0, "{client_stats:#?}");
}

/// The other side of the boundary: once the request is on a connection the
/// application accepted, a reset is not retried, even when the application
/// never read a byte of it. Runs on the machine's loopback, in the test's
/// subnet: it shapes no packet.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_written_to_the_application_then_reset_unread_is_not_retried() {
    let mut mesh = start_mesh(61, &service("reviews", &[9080]), &[CLIENT, REVIEWS]).await;
    let app = SocketAddr::new(mesh.address(2), APP_PORT);
    mesh.stop_echo("reviews").await;
    // In the echo's place, an application that accepts one connection,
    // waits until the request has arrived, and closes without reading it:
    // the kernel answers unread data with a reset.
    let listener = tokio::net::TcpListener::bind(app).await.unwrap();
    let application = tokio::spawn(async move {
        let (connection, _) = listener.accept().await.unwrap();
        let mut first = [0u8; 1];
        connection.peek(&mut first).await.unwrap();
        drop(connection);
        listener
    });

    let response = mesh
        .client(1)
        .get("http://reviews:9080/reset")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    let body = response.text().await.unwrap();
    assert!(body.contains("reset before headers"), "{body}");
    drop(application.await.unwrap());

    let stats = mesh.envoy_stats(2).await;
    let stat = |name: &str| {
        stats
            .get(&format!("{INBOUND}.{name}"))
            .copied()
            .unwrap_or(0)
    };
    assert_eq!(stat("upstream_cx_total"), 1, "{stats:#?}");
    assert_eq!(stat("upstream_cx_connect_fail"), 0, "{stats:#?}");
    assert_eq!(stat("upstream_rq_retry"), 0, "{stats:#?}");
}
