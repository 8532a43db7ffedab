//! The admin API under load, in process over loopback: 20 writers apply
//! VirtualServices through `POST /api/v1/apply` while readers read them
//! back and 200 proxies connect at once over ADS. No write is lost (each
//! object ends at its writer's last version), no read is torn (every
//! object read is whole: its resource version is the hash of what it
//! holds, and it is one its writer wrote), and every proxy converges on
//! the last writes (its route configuration carries every writer's last
//! header value).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use pilot_server::serve::{ControlPlane, Registry, ServeConfig};
use prost::Message;
use serde_json::Value;
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;

const WRITERS: usize = 20;
const WRITES: usize = 25;
const PROXIES: usize = 200;
const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";
const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// Only guards against a hang.
const LIMIT: Duration = Duration::from_secs(120);

fn virtual_service(writer: usize, write: usize) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: vs-{writer}, namespace: load}}\nspec:\n  hosts: [svc-{writer}]\n  http:\n  - headers:\n      request:\n        set: {{x-write: \"{write}\"}}\n    route:\n    - destination: {{host: svc-{writer}}}\n"
    )
}

/// `svc-N:9080` → the `x-write` value its first route sets.
fn writes_seen(routes: &RouteConfiguration) -> Vec<(String, String)> {
    routes
        .virtual_hosts
        .iter()
        .filter_map(|host| {
            let value = host
                .routes
                .first()?
                .request_headers_to_add
                .iter()
                .find_map(|h| {
                    let header = h.header.as_ref()?;
                    (header.key == "x-write").then(|| header.value.clone())
                })?;
            Some((host.name.clone(), value))
        })
        .collect()
}

/// One simulated proxy: subscribes to clusters, listeners and the outbound
/// routes, ACKs everything, and publishes each route configuration it gets.
async fn proxy(
    addr: std::net::SocketAddr,
    index: usize,
    routes: watch::Sender<Option<RouteConfiguration>>,
) {
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let node = pilot_core::proxy::NodeMetadata::new(
        "load",
        format!("proxy-{index}"),
        std::net::IpAddr::from([10, 1, (index / 250) as u8, (index % 250) as u8 + 1]),
    )
    .to_node();
    let (tx, rx) = mpsc::channel(16);
    for (ty, names) in [
        (CDS, vec![]),
        (LDS, vec![]),
        (RDS, vec!["outbound".to_string()]),
    ] {
        tx.send(DiscoveryRequest {
            node: Some(node.clone()),
            type_url: ty.to_string(),
            resource_names: names,
            ..Default::default()
        })
        .await
        .unwrap();
    }
    let mut responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    while let Ok(Some(DiscoveryResponse {
        version_info,
        resources,
        type_url,
        nonce,
        ..
    })) = responses.message().await
    {
        if type_url == RDS
            && let Some(any) = resources.first()
        {
            routes.send_replace(RouteConfiguration::decode(any.value.as_slice()).ok());
        }
        let names = if type_url == RDS {
            vec!["outbound".to_string()]
        } else {
            vec![]
        };
        if tx
            .send(DiscoveryRequest {
                type_url,
                version_info,
                response_nonce: nonce,
                resource_names: names,
                ..Default::default()
            })
            .await
            .is_err()
        {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writers_readers_and_proxies_at_once_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let services: String = (0..WRITERS)
        .map(|i| {
            format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: svc-{i}, namespace: load}}\nspec:\n  ports: [{{name: http, port: 9080}}]\n---\n"
            )
        })
        .collect();
    std::fs::write(dir.path().join("services.yaml"), services).unwrap();
    let control_plane = ControlPlane::start(&ServeConfig {
        config_dir: Some(dir.path().to_path_buf()),
        registry: Registry::Files,
        xds_addr: Some("127.0.0.1:0".parse().unwrap()),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        mesh_config: None,
        admin_token: None,
        admin_read_auth: false,
        xds_max_connection_age: None,
        replicas: Default::default(),
    })
    .await
    .unwrap();
    let admin = format!("http://{}", control_plane.admin_addr);
    let xds = control_plane.xds_addr.unwrap();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    // 200 proxies, connecting at once.
    let mut views = Vec::new();
    for index in 0..PROXIES {
        let (tx, rx) = watch::channel(None);
        views.push(rx);
        tokio::spawn(proxy(xds, index, tx));
    }

    // Readers, while the writes go on and until they have read each object
    // after them: every object read is whole.
    let writing = Arc::new(AtomicBool::new(true));
    let reads = Arc::new(AtomicUsize::new(0));
    let mut readers = Vec::new();
    for reader in 0..4 {
        let (http, admin, writing, reads) =
            (http.clone(), admin.clone(), writing.clone(), reads.clone());
        readers.push(tokio::spawn(async move {
            let mut i = reader;
            let mut after = std::collections::BTreeSet::new();
            let start = Instant::now();
            while writing.load(Ordering::Relaxed) || after.len() < WRITERS {
                assert!(start.elapsed() < LIMIT, "the objects were never all readable");
                let object_index = i % WRITERS;
                let url = format!(
                    "{admin}/api/v1/config/networking.istio.io/virtualservice/load/vs-{object_index}"
                );
                i += 1;
                let done = !writing.load(Ordering::Relaxed);
                let response = http.get(&url).send().await.unwrap();
                if response.status() == reqwest::StatusCode::NOT_FOUND {
                    // Not in a snapshot yet: wait for the next one.
                    tokio::task::yield_now().await;
                    continue;
                }
                if done {
                    after.insert(object_index);
                }
                let stored: Value = response.json().await.unwrap();
                let object = &stored["object"];
                assert_eq!(
                    pilot_server::apply::resource_version(
                        &serde_yaml::to_value(object).unwrap()
                    ),
                    stored["resourceVersion"],
                    "a whole object: {stored:#}"
                );
                let value: usize = object["spec"]["http"][0]["headers"]["request"]["set"]["x-write"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_else(|| panic!("one of its writer's versions: {stored:#}"));
                assert!((1..=WRITES).contains(&value), "{stored:#}");
                reads.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }

    // 20 writers, each its own VirtualService, five versions in turn.
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let (http, admin) = (http.clone(), admin.clone());
        writers.push(tokio::spawn(async move {
            for write in 1..=WRITES {
                let response = http
                    .post(format!("{admin}/api/v1/apply"))
                    .body(virtual_service(writer, write))
                    .send()
                    .await
                    .unwrap();
                let status = response.status();
                let body = response.text().await.unwrap();
                assert!(
                    status.is_success(),
                    "writer {writer}, write {write}: {status} {body}"
                );
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    writing.store(false, Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
    assert!(
        reads.load(Ordering::Relaxed) >= 4 * WRITERS,
        "the readers read"
    );

    // No lost write: each object is at its writer's last version.
    for writer in 0..WRITERS {
        let stored: Value = http
            .get(format!(
                "{admin}/api/v1/config/networking.istio.io/virtualservice/load/vs-{writer}"
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            stored["object"]["spec"]["http"][0]["headers"]["request"]["set"]["x-write"],
            WRITES.to_string(),
            "{stored:#}"
        );
    }

    // Every proxy converges on the last writes.
    let want: Vec<(String, String)> = (0..WRITERS)
        .map(|i| {
            (
                format!("svc-{i}.load.svc.cluster.local:9080"),
                WRITES.to_string(),
            )
        })
        .collect();
    let mut want = want;
    want.sort();
    let start = Instant::now();
    for (index, view) in views.iter_mut().enumerate() {
        loop {
            let seen = view.borrow().as_ref().map(|routes| {
                let mut seen = writes_seen(routes);
                seen.sort();
                seen
            });
            if seen.as_ref() == Some(&want) {
                break;
            }
            assert!(
                start.elapsed() < LIMIT,
                "proxy {index} never converged on the last writes: {seen:?}"
            );
            let _ = tokio::time::timeout(Duration::from_secs(1), view.changed()).await;
        }
    }
    control_plane.stop().await;
}
