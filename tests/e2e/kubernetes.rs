//! `bowline serve --registry kubernetes`: the control plane reads its
//! services, endpoints and Istio custom resources from an API server (the
//! loopback kube-fixture, through Bowline's real kube-rs client and a
//! kubeconfig), and real Envoys carry the traffic that follows; the leader
//! writes status conditions on the custom resources it refuses.

use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::process::Command;

use kube_fixture::ApiServer;
use serde_json::{Value, json};

use crate::harness::{Mesh, count_by, count_versions, wait_for};

const SUBNET: u8 = 132;
/// The two-replica test's.
const REPLICAS_SUBNET: u8 = 133;
const NODE: &str = "node-a";

fn pod(name: &str, ip: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"nodeName": NODE, "serviceAccountName": name,
                 "containers": [{"name": "app", "image": "echo"}]},
        "status": {"phase": "Running", "podIP": ip, "podIPs": [{"ip": ip}]},
    })
}

fn service(name: &str, port: u16) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"selector": {"app": name}, "clusterIP": "10.96.0.10",
                 "ports": [{"name": "http", "port": port, "protocol": "TCP"}]},
    })
}

/// The one EndpointSlice of `service`: each endpoint (pod, address) with
/// its conditions.
fn slice(service: &str, port: u16, endpoints: &[(&str, &str, Value)]) -> Value {
    let endpoints: Vec<Value> = endpoints
        .iter()
        .map(|(pod, ip, conditions)| {
            json!({
                "addresses": [ip], "conditions": conditions, "nodeName": NODE,
                "targetRef": {"kind": "Pod", "namespace": "default", "name": pod},
            })
        })
        .collect();
    json!({
        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
        "metadata": {"name": format!("{service}-abc12"), "namespace": "default",
                     "labels": {"kubernetes.io/service-name": service}},
        "addressType": "IPv4",
        "endpoints": endpoints,
        "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
    })
}

fn ready() -> Value {
    json!({"ready": true, "serving": true, "terminating": false})
}

fn terminating() -> Value {
    json!({"ready": false, "serving": true, "terminating": true})
}

/// reviews' slice: v1 at `.2` with `v1`'s conditions, v2 at `.3`, and
/// `more` (pod, host).
fn reviews_slice(mesh: &Mesh, v1: Value, more: &[(&str, u8)]) -> Value {
    let mut endpoints = vec![
        ("reviews-v1", mesh.address(2).to_string(), v1),
        ("reviews-v2", mesh.address(3).to_string(), ready()),
    ];
    for (pod, host) in more {
        endpoints.push((pod, mesh.address(*host).to_string(), ready()));
    }
    let endpoints: Vec<(&str, &str, Value)> = endpoints
        .iter()
        .map(|(p, ip, c)| (*p, ip.as_str(), c.clone()))
        .collect();
    slice("reviews", 9080, &endpoints)
}

fn virtual_service(spec: Value) -> Value {
    json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "default"},
        "spec": spec,
    })
}

/// Waits until 40 requests to reviews are all answered by the workloads
/// whose `field` (the echo's `version` or `workload`) is in `expected`,
/// and each of them answers some.
async fn wait_for_answers(mesh: &Mesh, field: &str, expected: &[&str], what: &str) {
    let client = mesh.client(1);
    wait_for(what, Duration::from_secs(30), || async {
        let counts = count_by(&client, "http://reviews:9080/", 40, field).await;
        counts.len() == expected.len() && expected.iter().all(|v| counts.contains_key(*v))
    })
    .await;
}

async fn wait_for_versions(mesh: &Mesh, versions: &[&str], what: &str) {
    wait_for_answers(mesh, "version", versions, what).await;
}

/// The cluster of both tests: the client and reviews v1 and v2 as
/// Services, Pods and EndpointSlices, with reviews' subsets.
fn populate(api: &ApiServer, mesh: &Mesh) {
    for object in [
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}),
        json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": NODE,
            "labels": {"topology.kubernetes.io/region": "r1", "topology.kubernetes.io/zone": "z1"}}}),
        service("client", 8000),
        service("reviews", 9080),
        pod(
            "client",
            &mesh.address(1).to_string(),
            json!({"app": "client"}),
        ),
        pod(
            "reviews-v1",
            &mesh.address(2).to_string(),
            json!({"app": "reviews", "version": "v1"}),
        ),
        pod(
            "reviews-v2",
            &mesh.address(3).to_string(),
            json!({"app": "reviews", "version": "v2"}),
        ),
        slice(
            "client",
            8000,
            &[("client", &mesh.address(1).to_string(), ready())],
        ),
        reviews_slice(mesh, ready(), &[]),
        json!({
            "apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "reviews", "namespace": "default"},
            "spec": {"host": "reviews", "subsets": [
                {"name": "v1", "labels": {"version": "v1"}},
                {"name": "v2", "labels": {"version": "v2"}}]},
        }),
    ] {
        api.apply(object).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_is_the_registry_and_its_custom_resources_the_config() {
    let api = ApiServer::start().await.unwrap();
    let mut mesh = Mesh::new(SUBNET);
    let kubeconfig = mesh.work_dir("kubeconfig");
    api.kubeconfig(&kubeconfig, "operator-token").unwrap();
    populate(&api, &mesh);

    mesh.set_control_plane_args(&[
        "--registry",
        "kubernetes",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ]);
    mesh.start_control_plane().await;
    start_workloads(&mut mesh).await;
    let services = mesh.admin_json("/api/v1/services").await;
    let names: Vec<&str> = services
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert!(names.contains(&"reviews"), "{services}");
    wait_for_versions(&mesh, &["v1", "v2"], "both reviews pods to answer").await;

    // A terminating endpoint, though still serving, takes no new requests,
    // and the requests it is serving finish: slow requests are in flight
    // at v1 (the client's Envoy says so) when it starts terminating.
    let slow: Vec<_> = (0..6)
        .map(|_| {
            let client = mesh.client(1);
            tokio::spawn(async move {
                let response = client
                    .get("http://reviews:9080/delay/8000")
                    .timeout(Duration::from_secs(60))
                    .send()
                    .await
                    .map_err(|e| e.to_string())?;
                let status = response.status();
                let body: Value = response.json().await.map_err(|e| e.to_string())?;
                Ok::<_, String>((status, body["workload"].as_str().unwrap_or("").to_string()))
            })
        })
        .collect();
    let v1_active = format!("{}:9080::rq_active::", mesh.address(2));
    wait_for(
        "a slow request in flight at v1",
        Duration::from_secs(30),
        || async {
            mesh.envoy_admin(1, "/clusters")
                .await
                .lines()
                .filter(|l| l.starts_with("outbound|9080||reviews."))
                .filter_map(|l| l.split_once(&v1_active).map(|(_, n)| n.trim().to_string()))
                .any(|n| n.parse::<u64>().is_ok_and(|n| n > 0))
        },
    )
    .await;
    api.apply(reviews_slice(&mesh, terminating(), &[])).unwrap();
    wait_for_versions(&mesh, &["v2"], "v1, terminating, to get no requests").await;
    let mut finished_at_v1 = 0;
    for request in slow {
        let (status, workload) = request.await.unwrap().expect("the slow request finished");
        assert!(status.is_success(), "{status} from {workload}");
        finished_at_v1 += usize::from(workload == "reviews-v1");
    }
    assert!(
        finished_at_v1 > 0,
        "a request in flight at v1 finished there"
    );

    // A watch that drops resumes; one whose resourceVersion has meanwhile
    // been compacted relists (410): the change made while no watch was
    // open is neither lost nor doubled.
    api.hold_watches();
    assert!(api.drop_watches() > 0);
    api.apply(reviews_slice(&mesh, ready(), &[])).unwrap();
    api.compact();
    api.release_watches();
    wait_for_versions(&mesh, &["v1", "v2"], "v1 back after the relist").await;

    // A VirtualService custom resource routes all of reviews to v2.
    let to_v2 = json!({"hosts": ["reviews"], "http": [{"route": [
        {"destination": {"host": "reviews", "subset": "v2"}}]}]});
    api.apply(virtual_service(to_v2.clone())).unwrap();
    wait_for_versions(&mesh, &["v2"], "the VirtualService to send all to v2").await;

    // An invalid edit is reported at the object's API path with the field,
    // and its last valid version stays in force.
    let invalid = json!({"hosts": ["reviews"], "http": [{"route": [
        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 40},
        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 40}]}]});
    api.apply(virtual_service(invalid)).unwrap();
    let path = "/apis/networking.istio.io/v1/namespaces/default/virtualservices/reviews";
    wait_for(
        "the invalid VirtualService in the diagnostics",
        Duration::from_secs(20),
        || async {
            let d = mesh.admin_json("/api/v1/diagnostics").await;
            d.as_array()
                .unwrap()
                .iter()
                .any(|d| d["file"] == path && d["severity"] == "error")
        },
    )
    .await;
    let diagnostics = mesh.admin_json("/api/v1/diagnostics").await;
    let error = diagnostics
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["file"] == path)
        .unwrap();
    assert_eq!(error["kind"], "VirtualService");
    assert_eq!(error["name"], "reviews");
    assert_eq!(error["path"], "spec.http[0].route", "{error}");
    let counts = count_versions(&mesh.client(1), "http://reviews:9080/", 40).await;
    assert_eq!(counts.keys().collect::<Vec<_>>(), ["v2"], "{counts:?}");
    // The leader says so on the object itself.
    let accepted = || {
        let vs = api.get(
            "networking.istio.io/v1",
            "VirtualService",
            "default",
            "reviews",
        );
        vs.and_then(|vs| {
            vs["status"]["conditions"]
                .as_array()?
                .iter()
                .find(|c| c["type"] == "Accepted")
                .cloned()
        })
    };
    wait_for(
        "the Accepted=False condition",
        Duration::from_secs(20),
        || async { accepted().is_some_and(|c| c["status"] == "False") },
    )
    .await;
    let refused = accepted().unwrap();
    assert_eq!(refused["reason"], "Invalid");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.http[0].route: "),
        "{refused}"
    );
    // Fixed: accepted again.
    api.apply(virtual_service(to_v2.clone())).unwrap();
    wait_for(
        "the Accepted=True condition",
        Duration::from_secs(20),
        || async { accepted().is_some_and(|c| c["status"] == "True") },
    )
    .await;

    // Deleting the custom resource takes its routes away.
    api.delete(
        "networking.istio.io/v1",
        "VirtualService",
        "default",
        "reviews",
    )
    .unwrap();
    wait_for_versions(
        &mesh,
        &["v1", "v2"],
        "both again without the VirtualService",
    )
    .await;

    // Scaling up: a new pod and its endpoint take requests; deleting the
    // pod takes its endpoint away (the slice still lists it, but an
    // endpoint is served only with its pod).
    mesh.start_workload(
        "reviews-v2b",
        4,
        &[("app", "reviews"), ("version", "v2")],
        "sotw",
    )
    .await;
    api.apply(pod(
        "reviews-v2b",
        &mesh.address(4).to_string(),
        json!({"app": "reviews", "version": "v2"}),
    ))
    .unwrap();
    api.apply(reviews_slice(&mesh, ready(), &[("reviews-v2b", 4)]))
        .unwrap();
    let all = ["reviews-v1", "reviews-v2", "reviews-v2b"];
    wait_for_answers(&mesh, "workload", &all, "the new pod to take requests").await;
    api.delete("v1", "Pod", "default", "reviews-v2b").unwrap();
    wait_for_answers(&mesh, "workload", &all[..2], "the deleted pod to take none").await;

    // The control plane writes no custom resources: its config API refuses.
    let token = std::fs::read_to_string(mesh.state_dir().join("admin-token")).unwrap();
    let refused = reqwest::Client::new()
        .post(format!("http://{}/api/v1/apply", mesh.admin))
        .bearer_auth(token.trim())
        .body(mesh_yaml())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 501);
}

fn mesh_yaml() -> String {
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: x}\nspec: {hosts: [x]}\n".into()
}

/// The sidecars of the cluster's pods (as `populate` lists them).
async fn start_workloads(mesh: &mut Mesh) {
    for (name, host, labels) in [
        ("client", 1, &[("app", "client")][..]),
        (
            "reviews-v1",
            2,
            &[("app", "reviews"), ("version", "v1")][..],
        ),
        (
            "reviews-v2",
            3,
            &[("app", "reviews"), ("version", "v2")][..],
        ),
    ] {
        mesh.start_workload(name, host, labels, "sotw").await;
    }
}

/// Stands in for the control plane's Service (kube-proxy's virtual IP):
/// each connection goes to the first backend that accepts it.
async fn service_vip(listen: SocketAddr, backends: Vec<SocketAddr>) -> tokio::task::JoinHandle<()> {
    let listener = TcpListener::bind(listen).await.unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((mut inbound, _)) = listener.accept().await else {
                continue;
            };
            let backends = backends.clone();
            tokio::spawn(async move {
                for backend in backends {
                    if let Ok(mut outbound) = TcpStream::connect(backend).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                        return;
                    }
                }
            });
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_reconnect_to_a_live_replica_and_converge() {
    let api = ApiServer::start().await.unwrap();
    let mut mesh = Mesh::new(REPLICAS_SUBNET);
    let kubeconfig = mesh.work_dir("kubeconfig");
    api.kubeconfig(&kubeconfig, "control-plane").unwrap();
    populate(&api, &mesh);
    let args = [
        "--registry",
        "kubernetes",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
    ];
    mesh.set_control_plane_args(&args);
    mesh.start_control_plane().await;
    let replica_a = mesh.xds;

    // Replica B, on addresses of its own, sharing the cluster.
    let b = mesh.address(251);
    let replica_b = SocketAddr::new(b, 15010);
    let _b = Command::new(env!("CARGO_BIN_EXE_bowline"))
        .arg("serve")
        .args(args)
        .args(["--xds-addr", &replica_b.to_string()])
        .args(["--admin-addr", &format!("{b}:15014")])
        .args(["--ca-addr", &format!("{b}:15012")])
        .arg("--state-dir")
        .arg(mesh.work_dir("replica-b"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(mesh.work_dir("replica-b.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    wait_for("replica B to listen", Duration::from_secs(30), || async {
        crate::harness::listening(replica_b)
    })
    .await;

    // The sidecars dial the Service, which reaches A while it lives.
    let vip = SocketAddr::new(mesh.address(249), 15010);
    let _vip = service_vip(vip, vec![replica_a, replica_b]).await;
    mesh.xds = vip;
    start_workloads(&mut mesh).await;
    wait_for_versions(&mesh, &["v1", "v2"], "both reviews pods to answer").await;

    // A stops: the sidecars reconnect through the Service to B, and
    // follow the config B serves.
    mesh.stop_control_plane().await;
    let to_v2 = json!({"hosts": ["reviews"], "http": [{"route": [
        {"destination": {"host": "reviews", "subset": "v2"}}]}]});
    api.apply(virtual_service(to_v2)).unwrap();
    wait_for_versions(&mesh, &["v2"], "the sidecars to take B's config").await;
    let proxies: serde_json::Value = reqwest::Client::new()
        .get(format!("http://{b}:15014/api/v1/proxies"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(proxies.as_array().unwrap().len(), 3, "{proxies}");
}
