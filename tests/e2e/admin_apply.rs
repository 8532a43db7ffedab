//! `POST /api/v1/apply` against a running mesh of real Envoys: a change
//! applied through the API reaches the sidecars; an object of a
//! hand-written file is refused with 409 naming it; one invalid document
//! refuses the whole request with its field path; a dry run writes
//! nothing; the API's file outlives a restart.

use std::time::Duration;

use reqwest::StatusCode;
use serde_json::Value;

use crate::harness::{count_versions, wait_for};
use crate::{reviews_mesh, reviews_split};

const SUBNET: u8 = 130;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_applied_through_the_api_reaches_envoy_all_or_nothing() {
    let mut mesh = reviews_mesh(SUBNET, (100, 0), ["sotw", "sotw", "sotw"]).await;
    let token = std::fs::read_to_string(mesh.state_dir().join("admin-token"))
        .unwrap()
        .trim()
        .to_string();
    let http = reqwest::Client::new();
    let admin = mesh.admin;
    let apply = |body: String, dry: bool| {
        let request = http
            .post(format!(
                "http://{}/api/v1/apply{}",
                admin,
                if dry { "?dryRun=true" } else { "" }
            ))
            .bearer_auth(&token)
            .body(body);
        async move {
            let response = request.send().await.unwrap();
            let status = response.status();
            (status, response.json::<Value>().await.unwrap())
        }
    };

    // reviews' VirtualService is in a hand-written file: not the API's.
    let (status, body) = apply(reviews_split(0, 100), false).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(
        body["file"].as_str().unwrap().ends_with("reviews-vs.yaml"),
        "{body}"
    );

    // Once the control plane has read the file's removal, the object is
    // the API's to write.
    mesh.remove("reviews-vs.yaml");
    wait_for(
        "the hand-written VirtualService to be gone",
        Duration::from_secs(30),
        || async { apply(reviews_split(0, 100), true).await.0 == StatusCode::OK },
    )
    .await;
    // One invalid document: nothing applied, its field path said.
    let bad = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: reviews-lb}\nspec:\n  host: reviews\n  trafficPolicy:\n    loadBalancer: {simple: SIDEWAYS}\n";
    let (status, body) = apply(format!("{}---\n{bad}", reviews_split(0, 100)), false).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        body["errors"][0]["path"], "spec.trafficPolicy.loadBalancer.simple",
        "{body}"
    );
    assert_eq!(body["errors"][0]["document"], 1, "{body}");
    let api_file = mesh
        .config_dir()
        .join("bowline-api/virtualservice.default.reviews.yaml");
    assert!(!api_file.exists(), "all or nothing");

    // A dry run says what would happen and writes nothing.
    let (status, body) = apply(reviews_split(0, 100), true).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["applied"][0]["action"], "created", "{body}");
    assert!(!api_file.exists());
    // With what it would change in each sidecar: the client's routes move
    // to v2, shown as a diff of the route configuration.
    assert_eq!(body["proxies"]["sidecars"], 3, "{body}");
    let client_changes = body["proxies"]["changed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["workload"] == "client.default")
        .unwrap_or_else(|| panic!("the client's sidecar changes: {body:#}"))["changes"]
        .clone();
    let route = client_changes
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "route" && c["change"] == "changed")
        .unwrap_or_else(|| panic!("{client_changes:#}"));
    let diff = route["diff"].as_str().unwrap();
    assert!(
        diff.lines().any(|l| l.starts_with('+')
            && l.contains("outbound|9080|v2|reviews.default.svc.cluster.local")),
        "{diff}"
    );

    // Applied: every request goes to v2, through the real Envoys.
    let (status, body) = apply(reviews_split(0, 100), false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(api_file.exists());
    let client = mesh.client(1);
    wait_for(
        "the applied VirtualService to move traffic to v2",
        Duration::from_secs(30),
        || async {
            count_versions(&client, "http://reviews:9080/", 20)
                .await
                .get("v2")
                == Some(&20)
        },
    )
    .await;
    // And the config view shows what the client's sidecar was sent: the
    // applied split, every request to v2, in its outbound routes.
    let frontend = mesh.proxy("client").await.expect("client connected");
    let config = mesh
        .admin_json(&format!(
            "/api/v1/proxies/{}/config?type=route",
            frontend["id"].as_str().unwrap()
        ))
        .await;
    let hosts = config["types"]["route"]["resources"][0]["config"]["virtualHosts"]
        .as_array()
        .unwrap_or_else(|| panic!("{config:#}"));
    let reviews = hosts
        .iter()
        .find(|h| h["name"] == "reviews.default.svc.cluster.local:9080")
        .unwrap_or_else(|| panic!("{config:#}"));
    // A destination of weight 0 is left out, as Istio does: one cluster.
    assert_eq!(
        reviews["routes"][0]["route"]["cluster"],
        "outbound|9080|v2|reviews.default.svc.cluster.local",
        "{reviews:#}"
    );
    let (_, again) = apply(reviews_split(0, 100), false).await;
    assert_eq!(again["applied"][0]["action"], "unchanged", "{again}");

    // The API's file is config like any other: a restart keeps it.
    mesh.stop_control_plane().await;
    mesh.start_control_plane().await;
    mesh.wait_converged(&["client", "reviews-v1", "reviews-v2"])
        .await;
    let counts = count_versions(&client, "http://reviews:9080/", 20).await;
    assert_eq!(counts.get("v2"), Some(&20), "{counts:?}");

    // Read back with its resource version; a write over an older one is
    // refused; the list holds it; a hand-written object cannot be deleted
    // here; the API's own can.
    let base = format!("http://{}/api/v1/config", mesh.admin);
    let vs_url = format!("{base}/networking.istio.io/VirtualService/default/reviews");
    let stored: Value = http
        .get(&vs_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let version = stored["resourceVersion"].as_str().unwrap().to_string();
    assert_eq!(stored["object"]["metadata"]["resourceVersion"], version);
    let over = |v: &str| {
        reviews_split(50, 50).replace(
            "{name: reviews}",
            &format!("{{name: reviews, resourceVersion: \"{v}\"}}"),
        )
    };
    let (status, body) = apply(over("stale"), false).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["resourceVersion"], version, "{body}");
    let (status, body) = apply(over(&version), false).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["applied"][0]["action"], "configured", "{body}");
    let list: Value = http
        .get(format!("{base}/networking.istio.io/virtualservices"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let service = http
        .delete(format!("{base}/core/Service/default/reviews"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(service.status(), StatusCode::CONFLICT);
    let deleted = http
        .delete(&vs_url)
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), StatusCode::OK);
    assert!(!api_file.exists());

    // The same from the command line, with its exit codes.
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("vs.yaml");
    std::fs::write(&good, reviews_split(100, 0)).unwrap();
    let bad_file = dir.path().join("bad.yaml");
    std::fs::write(&bad_file, format!("{}---\n{bad}", reviews_split(100, 0))).unwrap();
    let server = format!("http://{admin}");
    let bowline = |args: &[&str]| {
        let mut command = tokio::process::Command::new(crate::harness::BOWLINE);
        command
            .args(args)
            .args(["--server", &server])
            .env("BOWLINE_TOKEN", &token);
        async move { command.output().await.unwrap() }
    };
    let out = bowline(&["apply", "-f", bad_file.to_str().unwrap()]).await;
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    assert!(
        said.contains(&format!(
            "{}: document 2: DestinationRule default/reviews-lb: spec.trafficPolicy.loadBalancer.simple",
            bad_file.display()
        )),
        "{said}"
    );
    let out = bowline(&["apply", "-f", good.to_str().unwrap(), "--dry-run"]).await;
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    let mut lines = printed.lines();
    assert_eq!(
        lines.next(),
        Some("VirtualService default/reviews created (dry run)"),
        "{printed}"
    );
    assert!(
        printed.contains("  ~ route ") && printed.ends_with("3 of 3 sidecar(s) would change\n"),
        "{printed}"
    );
    let out = bowline(&["apply", "-f", good.to_str().unwrap()]).await;
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        printed.lines().next(),
        Some("VirtualService default/reviews created"),
        "{printed}"
    );
    assert!(printed.ends_with(" sidecar(s) change\n"), "{printed}");
    // `get` shows the config in force: once the file source has read it.
    let listed = || async {
        let out = bowline(&["get", "vs"]).await;
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .any(|l| l.starts_with("default ") && l.contains(" reviews "))
    };
    wait_for(
        "bowline get vs to list reviews",
        Duration::from_secs(30),
        listed,
    )
    .await;
    let out = bowline(&["delete", "vs", "reviews"]).await;
    assert!(out.status.success(), "{out:?}");
    let out = bowline(&["get", "vs", "reviews"]).await;
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let out = bowline(&["get", "pods"]).await;
    assert_eq!(out.status.code(), Some(2), "{out:?}");
}
