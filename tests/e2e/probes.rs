//! The agent's status port: the kubelet's probes, rewritten by the
//! injector to `/app-health/...` on 15020, are made by the agent against
//! the application, and answered with the application's status.

use std::time::Duration;

use crate::harness::{APP_PORT, Mesh, wait_for};

const SUBNET: u8 = 134;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_answers_the_kubelets_probes_with_the_applications_status() {
    let mut mesh = Mesh::new(SUBNET);
    mesh.write("services.yaml", &crate::services());
    mesh.start_control_plane().await;
    let probers = serde_json::json!({
        "/app-health/app/readyz": {"httpGet": {"path": "/status/200", "port": APP_PORT}},
        "/app-health/app/livez": {"httpGet": {"path": "status/503", "port": APP_PORT}},
    })
    .to_string();
    mesh.set_agent_args(&["--app-probers", &probers]);
    let address = mesh
        .start_workload("client", 1, &[("app", "client")], "sotw")
        .await;
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let probe = |path: &str| {
        let request = http.get(format!("http://{address}:15020{path}"));
        async move { request.send().await.map(|r| r.status().as_u16()).ok() }
    };
    wait_for("the status port", Duration::from_secs(30), || async {
        probe("/app-health/app/readyz").await.is_some()
    })
    .await;
    assert_eq!(probe("/app-health/app/readyz").await, Some(200));
    assert_eq!(probe("/app-health/app/livez").await, Some(503));
    assert_eq!(probe("/app-health/other/readyz").await, Some(404));

    // The application gone: its probe fails.
    mesh.stop_echo("client").await;
    assert_eq!(probe("/app-health/app/readyz").await, Some(503));
}
