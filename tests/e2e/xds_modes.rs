//! Both ADS variants against real Envoy: state of the world and Delta.

use std::time::Duration;

use crate::harness::{Mesh, count_versions, wait_for, wait_for_version};
use crate::{reviews_split, services, workload_entry};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_and_delta_sidecars_converge_and_follow_changes() {
    let mut mesh = Mesh::new(16);
    mesh.write("services.yaml", &services());
    let entries = [
        workload_entry("client-sotw", mesh.address(1), &[("app", "client")]),
        workload_entry(
            "reviews-v1",
            mesh.address(2),
            &[("app", "reviews"), ("version", "v1")],
        ),
        workload_entry(
            "reviews-v2",
            mesh.address(3),
            &[("app", "reviews"), ("version", "v2")],
        ),
        workload_entry("client-delta", mesh.address(4), &[("app", "client")]),
    ];
    mesh.write("workloads.yaml", &entries.join("---\n"));
    mesh.write("reviews-vs.yaml", &reviews_split(100, 0));
    mesh.start_control_plane().await;
    mesh.start_workload("client-sotw", 1, &[("app", "client")], "sotw")
        .await;
    mesh.start_workload(
        "reviews-v1",
        2,
        &[("app", "reviews"), ("version", "v1")],
        "delta",
    )
    .await;
    mesh.start_workload(
        "reviews-v2",
        3,
        &[("app", "reviews"), ("version", "v2")],
        "sotw",
    )
    .await;
    mesh.start_workload("client-delta", 4, &[("app", "client")], "delta")
        .await;
    let all = ["client-sotw", "reviews-v1", "reviews-v2", "client-delta"];
    mesh.wait_converged(&all).await;

    let modes: Vec<(String, String)> = mesh
        .proxies()
        .await
        .iter()
        .map(|p| {
            (
                p["workload"].as_str().unwrap().to_string(),
                p["mode"].as_str().unwrap_or("?").to_string(),
            )
        })
        .collect();
    assert!(
        modes.contains(&("client-sotw".into(), "sotw".into())),
        "{modes:?}"
    );
    assert!(
        modes.contains(&("client-delta".into(), "delta".into())),
        "{modes:?}"
    );

    let sotw = mesh.client(1);
    let delta = mesh.client(4);
    for client in [&sotw, &delta] {
        let counts = count_versions(client, "http://reviews:9080/", 50).await;
        assert_eq!(counts.get("v1"), Some(&50), "{counts:?}");
    }

    // A change of routes (RDS) reaches both kinds of stream.
    mesh.write("reviews-vs.yaml", &reviews_split(0, 100));
    for client in [&sotw, &delta] {
        wait_for_version(client, "http://reviews:9080/", "v2").await;
    }
    mesh.wait_converged(&all).await;
    for client in [&sotw, &delta] {
        let counts = count_versions(client, "http://reviews:9080/", 50).await;
        assert_eq!(counts.get("v2"), Some(&50), "{counts:?}");
    }

    // Deleting the DestinationRule and the VirtualService removes the subset
    // clusters (CDS, EDS removals) and the split: both versions answer again.
    mesh.remove("reviews-vs.yaml");
    mesh.write(
        "services.yaml",
        services()
            .split("---\napiVersion: networking.istio.io/v1\nkind: DestinationRule")
            .next()
            .unwrap(),
    );
    for client in [&sotw, &delta] {
        wait_for("both versions to answer", Duration::from_secs(20), || {
            let client = client.clone();
            async move {
                let counts = count_versions(&client, "http://reviews:9080/", 20).await;
                counts.contains_key("v1") && counts.contains_key("v2")
            }
        })
        .await;
    }
    mesh.wait_converged(&all).await;
    // The subset clusters are gone from both Envoys.
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    for host in [1, 4] {
        let clusters = http
            .get(format!("http://{}:15000/clusters", mesh.address(host)))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(clusters.contains("outbound|9080||reviews.default.svc.cluster.local::"));
        assert!(
            !clusters.contains("outbound|9080|v1|"),
            "subset cluster left behind"
        );
        assert!(
            !clusters.contains("outbound|9080|v2|"),
            "subset cluster left behind"
        );
    }
}
