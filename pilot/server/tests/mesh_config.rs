//! `bowline serve --mesh-config` in process: the control plane on loopback,
//! read through its admin API.

use std::path::Path;

use pilot_server::serve::{ControlPlane, Registry, ServeConfig};
use serde_json::Value;

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: shop}\nspec:\n  selector: {app: reviews}\n  ports: [{name: http, port: 9080}]\n";

/// A selector is an error only in the root namespace.
const SIDECAR: &str = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {name: scoped, namespace: mesh-root}\nspec:\n  workloadSelector: {labels: {app: x}}\n  egress: [{hosts: [./*]}]\n";

async fn serve(dir: &Path, mesh: &str) -> (ControlPlane, Vec<Value>, Vec<Value>) {
    let config = dir.join("config");
    std::fs::create_dir(&config).unwrap();
    std::fs::write(config.join("mesh.yaml"), format!("{SERVICE}---\n{SIDECAR}")).unwrap();
    let mesh_config = dir.join("mesh-config.yaml");
    std::fs::write(&mesh_config, mesh).unwrap();
    let control_plane = ControlPlane::start(&ServeConfig {
        config_dir: Some(config),
        registry: Registry::Files,
        xds_addr: Some("127.0.0.1:0".parse().unwrap()),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        mesh_config: Some(mesh_config),
        admin_token: None,
        admin_read_auth: false,
        xds_max_connection_age: None,
        replicas: Default::default(),
    })
    .await
    .unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();
    let get = |path: &str| {
        let url = format!("http://{}{path}", control_plane.admin_addr);
        let http = http.clone();
        async move {
            let body: Value = http.get(url).send().await.unwrap().json().await.unwrap();
            body.as_array().cloned().unwrap()
        }
    };
    let diagnostics = get("/api/v1/diagnostics").await;
    let services = get("/api/v1/services").await;
    (control_plane, diagnostics, services)
}

fn texts(diagnostics: &[Value]) -> Vec<String> {
    diagnostics
        .iter()
        .map(|d| d["text"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn a_bad_mesh_config_is_reported_and_the_defaults_serve() {
    let dir = tempfile::tempdir().unwrap();
    let (control_plane, diagnostics, services) =
        serve(dir.path(), "rootNamespace: mesh-root\nrootNamespce: typo\n").await;
    let file = dir.path().join("mesh-config.yaml").display().to_string();
    let error = diagnostics
        .iter()
        .find(|d| d["file"] == file.as_str() && d["severity"] == "error")
        .unwrap_or_else(|| panic!("{diagnostics:#?}"));
    assert_eq!(error["path"], "rootNamespce");
    assert_eq!(error["message"], "unknown field");
    assert!(
        texts(&diagnostics).contains(&format!(
            "warning: {file}: the mesh config is not used: running with the defaults (rootNamespace istio-system)"
        )),
        "{diagnostics:#?}"
    );
    // The defaults are in force: mesh-root is an ordinary namespace, where
    // a selector is fine, and the config is served.
    assert!(
        !texts(&diagnostics)
            .iter()
            .any(|t| t.contains("root namespace")),
        "{diagnostics:#?}"
    );
    assert_eq!(services.len(), 1);
    assert_eq!(services[0]["hostname"], "reviews.shop.svc.cluster.local");
    control_plane.stop().await;
}

#[tokio::test]
async fn a_custom_root_namespace_is_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let (control_plane, diagnostics, _) = serve(dir.path(), "rootNamespace: mesh-root\n").await;
    let texts = texts(&diagnostics);
    assert!(
        texts.iter().any(|t| t.ends_with(
            "Sidecar mesh-root/scoped: spec.workloadSelector: a Sidecar in the root namespace mesh-root is the mesh-wide default and cannot have a workload selector; this Sidecar is ignored"
        )),
        "{texts:#?}"
    );
    assert_eq!(
        control_plane.snapshots().borrow().mesh.root_namespace,
        "mesh-root"
    );
    control_plane.stop().await;
}
