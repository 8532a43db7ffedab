//! Routing as users see it: weighted splits, edits, and endpoints coming and going.

use std::time::{Duration, Instant};

use crate::harness::{Mesh, count_by, count_versions, wait_for};
use crate::{reviews_mesh, reviews_split, workload_entry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_80_20_split_lands_within_4_points_over_2000_requests() {
    let mesh = reviews_mesh(11, (80, 20), ["sotw"; 3]).await;
    let client = mesh.client(1);
    let counts = count_versions(&client, "http://reviews:9080/", 2000).await;
    let v1 = counts.get("v1").copied().unwrap_or(0);
    let v2 = counts.get("v2").copied().unwrap_or(0);
    assert_eq!(
        v1 + v2,
        2000,
        "every request answered by v1 or v2: {counts:?}"
    );
    let share = v1 as f64 / 20.0;
    println!("80/20 split measured: v1 {share:.1}% over 2000 requests ({counts:?})");
    assert!(
        (share - 80.0).abs() <= 4.0,
        "v1 got {share:.1}%, want 80 ± 4"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn editing_the_virtual_service_moves_all_traffic_without_restarts() {
    let mesh = reviews_mesh(12, (100, 0), ["sotw"; 3]).await;
    let client = mesh.client(1);
    let before = count_versions(&client, "http://reviews.default:9080/", 100).await;
    assert_eq!(before.get("v1"), Some(&100), "before the edit: {before:?}");
    let served_before = outbound_requests(&mesh).await;
    assert!(served_before >= 100, "{served_before}");

    let edited = Instant::now();
    mesh.write("reviews-vs.yaml", &reviews_split(0, 100));
    // Traffic moves once the new routes are ACKed; the limit only guards a hang.
    wait_for(
        "the first request to reach v2",
        Duration::from_secs(20),
        || {
            let client = client.clone();
            async move {
                count_versions(&client, "http://reviews.default:9080/", 1)
                    .await
                    .contains_key("v2")
            }
        },
    )
    .await;
    println!(
        "traffic moved {} ms after the edit",
        edited.elapsed().as_millis()
    );
    mesh.wait_converged(&["client", "reviews-v1", "reviews-v2"])
        .await;

    let after = count_versions(&client, "http://reviews.default:9080/", 300).await;
    assert_eq!(after.get("v2"), Some(&300), "after the edit: {after:?}");
    // The same Envoy served the requests before and after the edit.
    assert!(outbound_requests(&mesh).await >= served_before + 300);
}

/// The client sidecar's count of requests served since it started: it only
/// grows while the same Envoy process runs.
async fn outbound_requests(mesh: &Mesh) -> u64 {
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let text = http
        .get(format!(
            "http://{}:15000/stats?filter=downstream_rq_total",
            mesh.address(1)
        ))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("http.outbound.downstream_rq_total: "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("unexpected stats: {text:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_workload_entry_file_adds_an_endpoint_and_deleting_it_removes_it() {
    let mut mesh = reviews_mesh(13, (100, 0), ["sotw"; 3]).await;
    // A third reviews v1 workload, running but not yet in the registry.
    mesh.start_workload(
        "reviews-v1b",
        4,
        &[("app", "reviews"), ("version", "v1")],
        "delta",
    )
    .await;
    let client = mesh.client(1);
    let url = "http://reviews:9080/";
    let before = count_by(&client, url, 100, "workload").await;
    assert_eq!(before.get("reviews-v1"), Some(&100), "before: {before:?}");

    mesh.write(
        "reviews-v1b.yaml",
        &workload_entry(
            "reviews-v1b",
            mesh.address(4),
            &[("app", "reviews"), ("version", "v1")],
        ),
    );
    wait_for(
        "the new endpoint to receive traffic",
        Duration::from_secs(20),
        || {
            let client = client.clone();
            async move {
                count_by(&client, url, 10, "workload")
                    .await
                    .contains_key("reviews-v1b")
            }
        },
    )
    .await;
    let services = mesh.admin_json("/api/v1/services").await;
    let reviews = services
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["hostname"] == "reviews.default.svc.cluster.local")
        .unwrap();
    assert_eq!(
        reviews["endpoints"].as_array().unwrap().len(),
        3,
        "{reviews}"
    );
    let spread = count_by(&client, url, 200, "workload").await;
    assert!(
        spread.get("reviews-v1").copied().unwrap_or(0) > 0,
        "{spread:?}"
    );
    assert!(
        spread.get("reviews-v1b").copied().unwrap_or(0) > 0,
        "{spread:?}"
    );
    assert_eq!(spread.values().sum::<usize>(), 200);
    assert!(!spread.keys().any(|k| k.starts_with("error")), "{spread:?}");

    mesh.remove("reviews-v1b.yaml");
    mesh.wait_converged(&["client", "reviews-v1", "reviews-v2", "reviews-v1b"])
        .await;
    wait_for(
        "the endpoint to be removed",
        Duration::from_secs(20),
        || {
            let client = client.clone();
            async move {
                let c = count_by(&client, url, 20, "workload").await;
                c.get("reviews-v1") == Some(&20)
            }
        },
    )
    .await;
    let after = count_by(&client, url, 200, "workload").await;
    assert_eq!(
        after.get("reviews-v1"),
        Some(&200),
        "after deletion: {after:?}"
    );
}
