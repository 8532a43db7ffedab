//! The load harness (`bowline bench xds`) against the real control plane in
//! this process: a generated mesh served by `ControlPlane`, fleets of
//! simulated sidecars over real ADS streams on loopback (127.0.73.0/24),
//! through the scenarios that edit the mesh. Asserts that every proxy synced
//! and converged on the change, never how fast.

use std::net::{Ipv4Addr, SocketAddr};

use bench::flow::Mode;
use bench::mesh::{self, MeshSpec};
use bench::report::Report;
use bench::xds::{self, Scenario, XdsArgs};
use pilot_core::proxy::Proxy;
use pilot_server::serve::{ControlPlane, Registry, ServeConfig};

const HOST: Ipv4Addr = Ipv4Addr::new(127, 0, 73, 1);

async fn serve(dir: &std::path::Path) -> ControlPlane {
    ControlPlane::start(&ServeConfig {
        config_dir: Some(dir.to_path_buf()),
        registry: Registry::Files,
        xds_addr: Some(SocketAddr::from((HOST, 0))),
        admin_addr: SocketAddr::from((HOST, 0)),
        mesh_config: None,
        admin_token: None,
        admin_read_auth: false,
        xds_max_connection_age: None,
        replicas: Default::default(),
    })
    .await
    .expect("the control plane starts on the generated mesh")
}

fn args(
    cp: &ControlPlane,
    dir: &std::path::Path,
    mode: Mode,
    scenario: Scenario,
    first: u8,
) -> XdsArgs {
    let mut a = XdsArgs::new(
        cp.xds_addr.expect("a plaintext xDS address").to_string(),
        dir,
        scenario,
    );
    a.proxies = 20;
    a.mode = mode;
    a.service = 1;
    a.endpoint = 2;
    a.address_base = Ipv4Addr::new(127, 0, 73, first);
    // A test waits on conditions only: no quiet period after convergence.
    a.quiet_seconds = 0.0;
    a.quiet = true;
    a
}

/// The xDS types that received responses after the change.
fn changed_types(r: &Report) -> Vec<&str> {
    r.types
        .iter()
        .filter(|t| t.phase == "change")
        .map(|t| t.ty)
        .collect()
}

fn assert_converged(r: &Report) {
    let what = format!("{} {}", r.mode, r.scenario);
    assert_eq!(
        r.initial_sync.count, r.proxies,
        "{what}: every proxy synced"
    );
    assert!(r.all_synced_s.is_some(), "{what}");
    let c = r
        .change
        .as_ref()
        .expect("a change scenario reports the change");
    // Without scoping every proxy holds every service.
    assert_eq!(
        c.affected, r.proxies,
        "{what}: every proxy held the changed service"
    );
    assert_eq!(
        c.converged.count, r.proxies,
        "{what}: every proxy converged"
    );
    assert_eq!(c.never_converged, 0, "{what}");
    assert_eq!(r.errors.nacks, 0, "{what}: {:?}", r.errors.last_error);
    assert_eq!(
        r.errors.stream_resets, 0,
        "{what}: {:?}",
        r.errors.last_error
    );
    assert!(r.complete(), "{what}");
}

async fn edits_converge(mode: Mode, first: u8) {
    let dir = tempfile::tempdir().unwrap();
    let spec = MeshSpec::new(4, 3, 2, None).unwrap();
    mesh::generate(dir.path(), &spec).unwrap();
    let cp = serve(dir.path()).await;

    let vs = xds::run_scenario(&args(&cp, dir.path(), mode, Scenario::VsEdit, first))
        .await
        .unwrap();
    assert_converged(&vs);
    let change = changed_types(&vs);
    assert!(
        change.contains(&"rds"),
        "a VirtualService edit changes routes: {change:?}"
    );

    let moved = xds::run_scenario(&args(&cp, dir.path(), mode, Scenario::EndpointMove, first))
        .await
        .unwrap();
    assert_converged(&moved);
    let change = changed_types(&moved);
    assert!(
        change.contains(&"eds"),
        "an endpoint move changes endpoints: {change:?}"
    );

    let mut churn = args(&cp, dir.path(), mode, Scenario::Churn, first);
    churn.rate = 20.0;
    churn.seconds = 0.5;
    let churned = xds::run_scenario(&churn).await.unwrap();
    assert_converged(&churned);
    assert_eq!(churned.change.as_ref().unwrap().edits, 10);

    cp.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sotw_fleet_syncs_and_converges_on_each_edit() {
    edits_converge(Mode::Sotw, 10).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delta_fleet_syncs_and_converges_on_each_edit() {
    edits_converge(Mode::Delta, 40).await;
}

#[test]
fn simulated_nodes_parse_as_the_server_reads_them() {
    let spec = MeshSpec::new(5, 2, 3, None).unwrap();
    for i in 0..25 {
        let node = xds::node_for(&spec, i);
        let proxy = Proxy::try_from(&node).unwrap_or_else(|e| panic!("proxy {i}: {e}"));
        let w = spec.workload(i % spec.workloads());
        assert_eq!(proxy.id, node.id);
        assert_eq!(proxy.metadata.namespace, w.namespace);
        assert_eq!(proxy.metadata.address, std::net::IpAddr::V4(w.address));
        assert_eq!(
            proxy.metadata.service_account.as_deref(),
            Some(w.service_account.as_str())
        );
        assert_eq!(proxy.metadata.labels.len(), 2);
        assert_eq!(proxy.metadata.labels.get("app"), Some(&w.labels[0].1));
    }
}
