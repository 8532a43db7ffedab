//! When things go wrong: Envoy rejecting a config, the control plane restarting.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use crate::harness::{count_versions, wait_for, wait_for_version};
use crate::{reviews_mesh, reviews_split};

const LISTENER: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_config_envoy_rejects_shows_as_a_nack_and_traffic_keeps_flowing() {
    let mesh = reviews_mesh(14, (100, 0), ["sotw", "sotw", "sotw"]).await;
    // Another process already owns port 7777 on reviews-v1's address, so its
    // Envoy cannot bind the inbound listener a new service asks for. Bowline
    // cannot know that; only Envoy can, and it rejects the update.
    let _squatter = std::net::TcpListener::bind((mesh.address(2), 7777)).unwrap();
    mesh.write(
        "reviews-admin.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: reviews-admin}\nspec:\n  selector: {app: reviews}\n  ports:\n  - {name: http-admin, port: 7777}\n",
    );

    wait_for(
        "reviews-v1 to NACK its listeners",
        Duration::from_secs(20),
        || async {
            mesh.proxy("reviews-v1")
                .await
                .is_some_and(|p| !p["xds"][LISTENER]["nack"].is_null())
        },
    )
    .await;
    let proxy = mesh.proxy("reviews-v1").await.unwrap();
    let lds = &proxy["xds"][LISTENER];
    let message = lds["nack"]["message"].as_str().unwrap();
    println!("NACK reported: {lds}");
    assert!(
        message.contains("7777"),
        "Envoy's own error text: {message}"
    );
    assert_eq!(
        lds["nack"]["version"], lds["sent_version"],
        "the NACKed version is the one sent"
    );
    assert_ne!(
        lds["acked_version"], lds["sent_version"],
        "the new version was not ACKed"
    );
    // The NACK names the object the rejected listener came from, with the
    // file it was read from: the new Service (and the workload at that
    // address), not every object of the mesh.
    let objects = lds["nack"]["objects"].as_array().expect("nack.objects");
    let service = objects
        .iter()
        .find(|o| o["kind"] == "Service")
        .unwrap_or_else(|| panic!("no Service in {objects:?}"));
    assert_eq!(service["name"], "reviews-admin", "{objects:?}");
    assert_eq!(service["namespace"], "default");
    assert!(
        service["file"]
            .as_str()
            .is_some_and(|f| f.ends_with("reviews-admin.yaml")),
        "{service}"
    );
    assert!(
        service["resource"]
            .as_str()
            .is_some_and(|r| r.starts_with("listener inbound|") && r.ends_with("|7777")),
        "{service}"
    );
    assert!(
        objects
            .iter()
            .all(|o| o["kind"] != "Service" || o["name"] == "reviews-admin"),
        "only the service at that port: {objects:?}"
    );
    // And so does /api/v1/diagnostics, for that proxy.
    let diagnostics = mesh.admin_json("/api/v1/diagnostics").await;
    let entry = diagnostics
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["proxy"] == proxy["id"] && d["kind"] == "Service")
        .unwrap_or_else(|| panic!("no NACK in {diagnostics:#}"));
    assert_eq!(entry["name"], "reviews-admin");
    assert_eq!(entry["severity"], "error");
    assert!(
        entry["message"].as_str().unwrap().contains("7777"),
        "{entry}"
    );

    // reviews-v1 keeps its previous listeners and serves on; so does everyone else.
    let client = mesh.client(1);
    let counts = count_versions(&client, "http://reviews:9080/", 200).await;
    assert_eq!(counts.get("v1"), Some(&200), "{counts:?}");

    // /metrics, under istiod's names: the rejection by type, the pushes
    // that went out, the proxies connected, and the time from the change
    // to the proxies' new config.
    let metrics = mesh.admin_text("/metrics").await;
    let value = |series: &str| -> f64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no series {series} in:\n{metrics}"))
    };
    assert!(value("pilot_total_xds_rejects{type=\"lds\"}") >= 1.0);
    for ty in ["cds", "eds", "lds", "rds"] {
        assert!(
            value(&format!("pilot_xds_pushes{{type=\"{ty}\"}}")) >= 3.0,
            "{ty}"
        );
    }
    assert_eq!(value("pilot_xds"), 3.0);
    assert!(value("pilot_proxy_convergence_time_count") >= 1.0);
    assert!(value("pilot_xds_push_time_count") >= 1.0);
    assert_eq!(value("bowline_config_errors"), 0.0);

    // `bowline proxy-status` shows the NACK in the LDS column and Envoy's
    // text; a second server that does not answer makes it exit 1, after
    // the table of the one that did.
    let admin = format!("http://{}", mesh.admin);
    let out = tokio::process::Command::new(crate::harness::BOWLINE)
        .args(["proxy-status", "--server", &admin])
        .output()
        .await
        .unwrap();
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let row = table
        .lines()
        .find(|l| l.starts_with("reviews-v1.default "))
        .unwrap_or_else(|| panic!("no reviews-v1 row:\n{table}"));
    let cells: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(
        cells[1..5],
        ["SYNCED", "NACK", "SYNCED", "SYNCED"],
        "{table}"
    );
    assert!(
        table.contains("NACK reviews-v1.default LDS version") && table.contains("7777"),
        "{table}"
    );
    assert!(
        table.contains("from Service default/reviews-admin (")
            && table.contains("reviews-admin.yaml"),
        "{table}"
    );
    // What was sent and what runs differ: the config view holds the new
    // listener, exactly as sent; `bowline proxy-config` shows Envoy kept
    // the others and rejected it.
    let config = mesh
        .admin_json(&format!(
            "/api/v1/proxies/{}/config?type=listener",
            proxy["id"].as_str().unwrap()
        ))
        .await;
    let listeners = &config["types"]["listener"];
    assert_eq!(listeners["version"], lds["sent_version"], "{config:#}");
    let squatted = format!("inbound|{}|7777", mesh.address(2));
    let new_listener = listeners["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == squatted.as_str())
        .unwrap_or_else(|| panic!("no {squatted} in {config:#}"));
    assert_eq!(
        new_listener["config"]["address"]["socketAddress"]["portValue"], 7777,
        "{new_listener:#}"
    );
    assert!(
        config["types"].get("cluster").is_none(),
        "only the type asked for"
    );
    let out = tokio::process::Command::new(crate::harness::BOWLINE)
        .args([
            "proxy-config",
            "reviews-v1.default",
            "--type",
            "listener",
            "--server",
            &admin,
        ])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let state_of = |name: &str| {
        text.lines()
            .find(|l| l.split_whitespace().nth(1) == Some(name))
            .map(|l| l.split_whitespace().skip(3).collect::<Vec<_>>().join(" "))
            .unwrap_or_else(|| panic!("no {name} row:\n{text}"))
    };
    let rejected = state_of(&squatted);
    assert!(
        rejected.starts_with("rejected:") || rejected == "missing",
        "{text}"
    );
    assert_eq!(
        state_of(&format!("inbound|{}|9080", mesh.address(2))),
        "active",
        "{text}"
    );

    let unreachable = format!("http://{}:1", mesh.address(250));
    let out = tokio::process::Command::new(crate::harness::BOWLINE)
        .args(["proxy-status", "--server", &admin, "--server", &unreachable])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stdout).contains("reviews-v1.default "));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarting_the_control_plane_does_not_interrupt_traffic() {
    let mut mesh = reviews_mesh(15, (100, 0), ["sotw", "delta", "sotw"]).await;
    let client = mesh.client(1);

    // Requests flow the whole time the control plane is away.
    let running = Arc::new(AtomicBool::new(true));
    let answered = Arc::new(AtomicUsize::new(0));
    let traffic = tokio::spawn({
        let (client, running, answered) = (client.clone(), running.clone(), answered.clone());
        async move {
            let mut counts: BTreeMap<String, usize> = BTreeMap::new();
            while running.load(Ordering::Relaxed) {
                for (k, n) in count_versions(&client, "http://reviews:9080/", 5).await {
                    *counts.entry(k).or_default() += n;
                }
                answered.fetch_add(5, Ordering::Relaxed);
            }
            counts
        }
    });
    // Some requests before the restart, some while the control plane is
    // gone, and the rest while it comes back.
    let served_past = |n: usize| {
        let answered = answered.clone();
        move || {
            let answered = answered.clone();
            async move { answered.load(Ordering::Relaxed) >= n }
        }
    };
    wait_for(
        "traffic before the restart",
        Duration::from_secs(20),
        served_past(50),
    )
    .await;
    mesh.stop_control_plane().await;
    let during = answered.load(Ordering::Relaxed) + 200;
    wait_for(
        "traffic while the control plane is away",
        Duration::from_secs(30),
        served_past(during),
    )
    .await;
    mesh.start_control_plane().await;
    mesh.wait_converged(&["client", "reviews-v1", "reviews-v2"])
        .await;
    running.store(false, Ordering::Relaxed);
    let counts = traffic.await.unwrap();
    println!("during the restart: {counts:?}");
    assert!(counts.get("v1").copied().unwrap_or(0) > 0, "{counts:?}");
    assert_eq!(counts.len(), 1, "every request answered by v1: {counts:?}");

    // The reconnected sidecars follow new config.
    mesh.write("reviews-vs.yaml", &reviews_split(0, 100));
    wait_for_version(&client, "http://reviews:9080/", "v2").await;
    mesh.wait_converged(&["client", "reviews-v1", "reviews-v2"])
        .await;
    let after = count_versions(&client, "http://reviews:9080/", 100).await;
    assert_eq!(after.get("v2"), Some(&100), "{after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_reported_and_nothing_already_pushed_is_withdrawn() {
    let mesh = reviews_mesh(17, (100, 0), ["delta", "sotw", "delta"]).await;
    let client = mesh.client(1);

    // A broken edit of the VirtualService, a file that is not YAML at all,
    // and a valid new service, all at once.
    mesh.write("reviews-vs.yaml", &reviews_split(50, 40));
    mesh.write(
        "broken.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: [oops\n",
    );
    mesh.write(
        "ratings.yaml",
        "apiVersion: v1\nkind: Service\nmetadata: {name: ratings}\nspec:\n  selector: {app: reviews}\n  ports:\n  - {name: http, port: 9080}\n",
    );

    wait_for(
        "the diagnostics to show both files",
        Duration::from_secs(20),
        || async {
            let d = mesh.admin_json("/api/v1/diagnostics").await;
            let files: Vec<String> = d
                .as_array()
                .unwrap()
                .iter()
                .filter(|d| d["severity"] == "error")
                .map(|d| d["file"].as_str().unwrap_or("").to_string())
                .collect();
            files.iter().any(|f| f.ends_with("reviews-vs.yaml"))
                && files.iter().any(|f| f.ends_with("broken.yaml"))
        },
    )
    .await;
    let diagnostics = mesh.admin_json("/api/v1/diagnostics").await;
    let weights = diagnostics
        .as_array()
        .unwrap()
        .iter()
        .find(|d| {
            d["file"].as_str().unwrap().ends_with("reviews-vs.yaml") && d["severity"] == "error"
        })
        .unwrap();
    println!("reported: {}", weights["text"]);
    assert_eq!(weights["document"], 0);
    assert_eq!(weights["kind"], "VirtualService");
    assert_eq!(weights["name"], "reviews");
    assert_eq!(weights["path"], "spec.http[0].route");
    assert!(
        weights["message"].as_str().unwrap().contains("100"),
        "{weights}"
    );

    // The valid new service is served, and the previous VirtualService stays in force.
    wait_for("ratings to be routable", Duration::from_secs(20), || {
        let client = client.clone();
        async move {
            count_versions(&client, "http://ratings:9080/", 1)
                .await
                .keys()
                .all(|k| !k.starts_with("error"))
        }
    })
    .await;
    mesh.wait_converged(&["client", "reviews-v1", "reviews-v2"])
        .await;
    let counts = count_versions(&client, "http://reviews:9080/", 200).await;
    assert_eq!(
        counts.get("v1"),
        Some(&200),
        "the 100/0 split still holds: {counts:?}"
    );
}
