//! The dashboard in a real headless Chromium against a running mesh of
//! real Envoys: sign in with the admin token (`--admin-read-auth`, so the
//! page must trade it for its session cookie), the graph's services and
//! weighted edges, a service's details, the proxies' sync state, and a NACK
//! that appears live, highlighted with the object that caused it.
//! Screenshots at desktop and laptop sizes are kept as test artifacts
//! (`target/tmp/dashboard/`).

use std::path::PathBuf;

use serde_json::Value;

use crate::browser::Browser;
use crate::harness::Mesh;
use crate::{REVIEWS_WORKLOADS, write_reviews_config};

const SUBNET: u8 = 137;

fn artifacts() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard")
}

/// The graph's edges as `FROM -> TO LABEL`, for messages and assertions.
const EDGES: &str = "window.bowlineGraph ? window.bowlineGraph.edges().map(e => e.source().data('label') + ' -> ' + e.target().data('label') + ' ' + e.data('label')) : 'no graph'";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_the_mesh_and_a_nack_live_after_signing_in() {
    let Some(mut browser) = Browser::start("the dashboard's browser test").await else {
        return;
    };
    let mut mesh = Mesh::new(SUBNET);
    write_reviews_config(&mesh, (80, 20));
    mesh.set_control_plane_args(&["--admin-read-auth"]);
    crate::start_reviews(&mut mesh, ["sotw"; 3]).await;

    browser.resize(1440, 900).await;
    browser.navigate(&format!("http://{}/", mesh.admin)).await;
    // Reads need the token: the page asks for it.
    browser
        .wait_until(
            "the sign-in dialog",
            "document.getElementById('login').open",
            "document.body.innerText",
        )
        .await;
    browser
        .screenshot(&artifacts().join("sign-in-1440x900.png"))
        .await;
    let token = std::fs::read_to_string(mesh.state_dir().join("admin-token")).unwrap();
    // A wrong token is refused and says so.
    sign_in(&mut browser, "not-the-token").await;
    browser
        .wait_until(
            "the refusal of a wrong token",
            "!document.getElementById('login-error').hidden",
            "document.getElementById('login').innerText",
        )
        .await;
    sign_in(&mut browser, token.trim()).await;
    browser
        .wait_until(
            "the mesh after signing in",
            "Number(document.body.dataset.renders) >= 1",
            "document.body.innerText",
        )
        .await;
    let replicas = text(
        browser
            .eval("document.getElementById('count-replicas').textContent")
            .await,
    );
    assert_eq!(replicas, "1", "one control plane, no peers");
    let cookie = browser.eval("document.cookie").await;
    assert_eq!(cookie, "", "the session cookie is HttpOnly: {cookie}");

    // The graph: both services and all three workloads, and reviews
    // routed 80/20 to its subsets, drawn on its edges to the workloads
    // each subset selects.
    let services = browser
        .eval("window.bowlineGraph.nodes('.service').map(n => n.data('label')).sort()")
        .await;
    assert_eq!(
        services,
        serde_json::json!(["client.default", "reviews.default"]),
        "{services}"
    );
    let workloads = browser
        .eval("window.bowlineGraph.nodes('.workload').length")
        .await;
    assert_eq!(workloads, 3);
    let edges = browser.eval(EDGES).await;
    for expected in [
        "reviews.default -> reviews-v1 v1 80% :9080",
        "reviews.default -> reviews-v2 v2 20% :9080",
        "client.default -> client :8000",
    ] {
        assert!(
            edges
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e.as_str() == Some(expected)),
            "no edge {expected}: {edges}"
        );
    }
    // Every proxy SYNCED on every type it asked for.
    let rows = browser
        .eval("[...document.querySelectorAll('#proxies tbody tr')].map(r => r.innerText)")
        .await;
    assert_eq!(rows.as_array().unwrap().len(), 3, "{rows}");
    for row in rows.as_array().unwrap() {
        let row = row.as_str().unwrap();
        assert!(
            row.contains("SYNCED") && !row.contains("NACK") && !row.contains("STALE"),
            "{row}"
        );
        assert!(row.contains(" s ago"), "when it was last pushed: {row}");
    }
    // A service's details: its endpoints, subsets and the policies that
    // apply, with their files.
    browser
        .eval("window.bowlineGraph.getElementById('service:reviews.default.svc.cluster.local').emit('tap'); true")
        .await;
    let details: String = text(
        browser
            .eval("document.getElementById('details').textContent")
            .await,
    );
    for expected in [
        "reviews.default.svc.cluster.local",
        "Endpoints (2)",
        "v1 {version=v1}",
        "DestinationRule default/reviews",
        "VirtualService default/reviews",
        "reviews-vs.yaml",
    ] {
        assert!(
            details.contains(expected),
            "no {expected:?} in the details: {details}"
        );
    }
    browser
        .screenshot(&artifacts().join("mesh-1440x900.png"))
        .await;

    // A port another process holds on reviews-v1's address: the config
    // passes validation, Envoy NACKs the listener, and the page shows it
    // without a reload, with the object it came from.
    let reviews = REVIEWS_WORKLOADS
        .iter()
        .find(|w| w.name == "reviews-v1")
        .unwrap();
    let _squatter = std::net::TcpListener::bind((mesh.address(reviews.host), 7777)).unwrap();
    mesh.write(
        "reviews-admin.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: reviews-admin}\nspec:\n  selector: {app: reviews}\n  ports:\n  - {name: http-admin, port: 7777}\n",
    );
    browser
        .wait_until(
            "the NACK of reviews-v1, with its object",
            "[...document.querySelectorAll('#proxies tr.nacked')].some(r => r.innerText.includes('reviews-v1') && r.innerText.includes('Service default/reviews-admin'))",
            "document.getElementById('proxies').innerText",
        )
        .await;
    let row = text(
        browser
            .eval("document.querySelector('#proxies tr.nacked').innerText")
            .await,
    );
    assert!(row.contains("NACK") && row.contains("7777"), "{row}");
    let summary = text(
        browser
            .eval("document.getElementById('count-nacks').innerText")
            .await,
    );
    assert_eq!(summary, "1");
    let marked = browser
        .eval("window.bowlineGraph.getElementById('workload:default/reviews-v1').hasClass('nack')")
        .await;
    assert_eq!(
        marked,
        Value::Bool(true),
        "the graph marks the NACKing workload"
    );
    browser
        .eval("window.bowlineGraph.getElementById('workload:default/reviews-v1').emit('tap'); true")
        .await;
    let details = text(
        browser
            .eval("document.getElementById('details').textContent")
            .await,
    );
    assert!(
        details.contains("LDS rejected") && details.contains("Service default/reviews-admin"),
        "{details}"
    );
    browser
        .screenshot(&artifacts().join("nack-1440x900.png"))
        .await;
    browser.resize(1280, 800).await;
    // The layout follows the new size before the picture is taken.
    browser
        .wait_until(
            "the laptop layout",
            "window.innerWidth === 1280",
            "window.innerWidth",
        )
        .await;
    browser
        .eval("window.bowlineGraph.resize(); window.bowlineGraph.fit(undefined, 30); true")
        .await;
    browser
        .screenshot(&artifacts().join("nack-1280x800.png"))
        .await;
}

/// Types `token` into the sign-in dialog and submits it.
async fn sign_in(browser: &mut Browser, token: &str) {
    let script = format!(
        "document.getElementById('token').value = {}; document.getElementById('login-form').requestSubmit(); true",
        serde_json::to_string(token).unwrap()
    );
    browser.eval(&script).await;
}

fn text(value: Value) -> String {
    value.as_str().unwrap_or_default().to_string()
}
