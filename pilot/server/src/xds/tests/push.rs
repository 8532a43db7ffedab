//! The push queue behind real tonic streams on loopback: which changes reach
//! a proxy, and what they send it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse,
};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;
use tonic::transport::server::TcpIncoming;

use super::{CDS, EDS, LDS, RDS, SDS};
use crate::xds::push::PushQueue;
use crate::xds::server::AdsServer;
use crate::xds::status::StatusRegistry;
use pilot_core::compile::compile;
use pilot_core::proxy::Proxy;
use pilot_core::resources::ResourceType;
use pilot_core::snapshot::Snapshot;

fn mesh(generation: u64, second: &str, extra: &str) -> Arc<Snapshot> {
    Arc::new(pilot_core::snapshot::test_mesh(generation, second, extra))
}

fn route_header(host: &str, namespace: &str, value: &str) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: vs-{namespace}, namespace: {namespace}}}\nspec:\n  hosts: [{host}]\n  http:\n  - headers: {{request: {{set: {{x-rev: '{value}'}}}}}}\n    route:\n    - destination: {{host: {host}}}\n"
    )
}

const ADDRESS: &str = "10.0.9.1";

fn node() -> Node {
    super::node(ADDRESS, "client", "shop")
}

struct Harness {
    snapshots: watch::Sender<Arc<Snapshot>>,
    queue: PushQueue,
    status: Arc<StatusRegistry>,
    tx: mpsc::Sender<DeltaDiscoveryRequest>,
    responses: Streaming<DeltaDiscoveryResponse>,
}

impl Harness {
    /// A server on `first`, and a Delta stream subscribed to every type and
    /// synced: each first response ACKed.
    async fn synced(first: Arc<Snapshot>) -> Harness {
        let proxy = Proxy::try_from(&node()).unwrap();
        let resources = compile(&first, &proxy);
        let names = |ty| resources.get(ty).keys().cloned().collect::<Vec<_>>();
        let (eds, rds) = (names(ResourceType::Endpoint), names(ResourceType::Route));

        let (snapshots, rx) = watch::channel(first);
        let status = Arc::new(StatusRegistry::new());
        let server = AdsServer::new(rx, status.clone());
        let queue = server.queue().clone();
        let incoming = TcpIncoming::bind(SocketAddr::from(([127, 0, 0, 1], 0))).unwrap();
        let addr = incoming.local_addr().unwrap();
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(server.into_service())
                .serve_with_incoming(incoming),
        );
        let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
            .await
            .unwrap();
        let (tx, requests) = mpsc::channel(16);
        let mut subscribe = vec![(CDS, vec![]), (EDS, eds), (LDS, vec![]), (RDS, rds)];
        let secrets = names(ResourceType::Secret);
        if !secrets.is_empty() {
            subscribe.push((SDS, secrets));
        }
        let types = subscribe.len();
        for (i, (type_url, names)) in subscribe.into_iter().enumerate() {
            tx.send(DeltaDiscoveryRequest {
                node: (i == 0).then(node),
                type_url: type_url.to_string(),
                resource_names_subscribe: names,
                ..Default::default()
            })
            .await
            .unwrap();
        }
        let responses = client
            .delta_aggregated_resources(ReceiverStream::new(requests))
            .await
            .unwrap()
            .into_inner();
        let mut h = Harness {
            snapshots,
            queue,
            status,
            tx,
            responses,
        };
        for _ in 0..types {
            let r = h.next().await;
            h.ack(&r).await;
        }
        h
    }

    async fn next(&mut self) -> DeltaDiscoveryResponse {
        tokio::time::timeout(Duration::from_secs(30), self.responses.message())
            .await
            .expect("a response within the limit")
            .unwrap()
            .expect("the stream stays open")
    }

    async fn ack(&self, r: &DeltaDiscoveryResponse) {
        self.tx
            .send(DeltaDiscoveryRequest {
                type_url: r.type_url.clone(),
                response_nonce: r.nonce.clone(),
                ..Default::default()
            })
            .await
            .unwrap();
    }

    /// Waits until the queue's `counter` reaches `at_least`.
    async fn counted(&self, counter: fn(&PushQueue) -> u64, at_least: u64) {
        let wait = async {
            while counter(&self.queue) < at_least {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), wait)
            .await
            .expect("the push queue got there within the limit");
    }
}

fn names(r: &DeltaDiscoveryResponse) -> Vec<&str> {
    r.resources.iter().map(|r| r.name.as_str()).collect()
}

fn skipped(q: &PushQueue) -> u64 {
    q.counters().skipped.load(Ordering::Relaxed)
}

#[tokio::test]
async fn an_endpoint_move_sends_only_the_changed_load_assignments() {
    let mut h = Harness::synced(mesh(1, "10.0.0.2", "")).await;
    let compiles = h.queue.counters().compiles.load(Ordering::Relaxed);

    h.snapshots.send_replace(mesh(2, "10.0.0.3", ""));
    let r = h.next().await;
    assert_eq!(r.type_url, EDS);
    assert!(r.removed_resources.is_empty(), "{r:?}");
    assert_eq!(
        names(&r),
        vec!["outbound|80||reviews.shop.svc.cluster.local"]
    );
    // Only the endpoints were compiled again, not the proxy's whole set.
    let counters = h.queue.counters();
    assert_eq!(counters.endpoint_updates.load(Ordering::Relaxed), 1);
    assert_eq!(counters.compiles.load(Ordering::Relaxed), compiles);
}

#[tokio::test]
async fn a_virtual_service_change_sends_only_routes_compiled_alone() {
    let mut h = Harness::synced(mesh(1, "10.0.0.2", "")).await;
    let compiles = h.queue.counters().compiles.load(Ordering::Relaxed);

    h.snapshots
        .send_replace(mesh(2, "10.0.0.2", &route_header("reviews", "shop", "2")));
    let r = h.next().await;
    assert_eq!(r.type_url, RDS, "{r:?}");
    let body = &r.resources[0].resource.as_ref().unwrap().value;
    assert!(body.windows(b"x-rev".len()).any(|w| w == b"x-rev"));
    // Only the routes were compiled again, not the proxy's whole set.
    let counters = h.queue.counters();
    assert_eq!(counters.route_updates.load(Ordering::Relaxed), 1);
    assert_eq!(counters.compiles.load(Ordering::Relaxed), compiles);
}

#[tokio::test]
async fn a_change_the_proxy_cannot_see_sends_it_nothing_and_compiles_nothing() {
    let mut h = Harness::synced(mesh(1, "10.0.0.2", "")).await;
    let compiles = h.queue.counters().compiles.load(Ordering::Relaxed);

    // ledger is exported to bank only: a route change there is not for shop.
    h.snapshots
        .send_replace(mesh(2, "10.0.0.2", &route_header("ledger", "bank", "2")));
    h.counted(skipped, 1).await;
    assert_eq!(
        h.queue.counters().compiles.load(Ordering::Relaxed),
        compiles
    );

    // The next thing the proxy receives is the next change it can see.
    h.snapshots.send_replace(mesh(
        3,
        "10.0.0.2",
        &(route_header("ledger", "bank", "2") + &route_header("reviews", "shop", "3")),
    ));
    let r = h.next().await;
    assert_eq!(r.type_url, RDS, "{r:?}");
    let body = &r.resources[0].resource.as_ref().unwrap().value;
    assert!(
        body.windows(b"x-rev".len()).any(|w| w == b"x-rev"),
        "the route change arrived"
    );
}

#[tokio::test]
async fn no_second_push_reaches_a_proxy_before_it_acks_the_first() {
    let mut h = Harness::synced(mesh(1, "10.0.0.2", "")).await;
    h.snapshots.send_replace(mesh(2, "10.0.0.3", ""));
    let first = h.next().await;
    assert_eq!(first.type_url, EDS);

    // Not ACKed: the next endpoint move is compiled and handed to the
    // stream, which holds it.
    h.snapshots.send_replace(mesh(3, "10.0.0.4", ""));
    let held = async {
        loop {
            let s = h.status.list().remove(0);
            if s.generation == 3 {
                return s;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    let s = tokio::time::timeout(Duration::from_secs(30), held)
        .await
        .expect("the stream took the set of generation 3");
    assert_eq!(s.xds[EDS].sent_generation, Some(2), "{s:?}");

    // The ACK releases it.
    h.ack(&first).await;
    let second = h.next().await;
    assert_eq!(second.type_url, EDS);
    assert_ne!(second.nonce, first.nonce);
    // The status is published before a response is sent.
    let s = h.status.list().remove(0);
    assert_eq!(s.xds[EDS].sent_generation, Some(3), "{s:?}");
}

/// A Sidecar for every proxy of `shop`, importing `hosts`.
fn shop_sidecar(hosts: &str) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: default, namespace: shop}}\nspec:\n  egress: [{{hosts: {hosts}}}]\n"
    )
}

#[tokio::test]
async fn a_change_outside_the_proxys_sidecar_scope_sends_it_nothing() {
    // shop's proxies import only bank's config, of which they see nothing.
    let narrow = shop_sidecar("['bank/*']");
    let mut h = Harness::synced(mesh(1, "10.0.0.2", &narrow)).await;
    let compiles = h.queue.counters().compiles.load(Ordering::Relaxed);

    // reviews is visible to shop but outside the scope: nothing happens.
    let reviews_route = route_header("reviews", "shop", "2");
    h.snapshots
        .send_replace(mesh(2, "10.0.0.2", &(narrow + &reviews_route)));
    h.counted(skipped, 1).await;
    assert_eq!(
        h.queue.counters().compiles.load(Ordering::Relaxed),
        compiles
    );

    // Widening the Sidecar reaches the proxy: reviews' cluster arrives.
    h.snapshots.send_replace(mesh(
        3,
        "10.0.0.2",
        &(shop_sidecar("['./*']") + &reviews_route),
    ));
    let r = h.next().await;
    assert_eq!(r.type_url, CDS, "{r:?}");
    assert!(
        names(&r).contains(&"outbound|80||reviews.shop.svc.cluster.local"),
        "{r:?}"
    );
}

#[tokio::test]
async fn a_new_trust_bundle_sends_only_rootca_compiled_alone() {
    let with_bundle = |generation, bundle: &str| {
        Arc::new(
            pilot_core::snapshot::test_mesh(generation, "10.0.0.2", "")
                .with_trust_bundle(Some(Arc::from(bundle))),
        )
    };
    let mut h = Harness::synced(with_bundle(1, "-----ROOT ONE-----\n")).await;
    let compiles = h.queue.counters().compiles.load(Ordering::Relaxed);

    h.snapshots
        .send_replace(with_bundle(2, "-----ROOT ONE-----\n-----ROOT TWO-----\n"));
    let r = h.next().await;
    assert_eq!(r.type_url, SDS, "{r:?}");
    assert_eq!(names(&r), ["ROOTCA"]);
    let body = &r.resources[0].resource.as_ref().unwrap().value;
    assert!(body.windows(b"ROOT TWO".len()).any(|w| w == b"ROOT TWO"));
    // Only the secrets were replaced, not the proxy's whole set compiled.
    let counters = h.queue.counters();
    assert_eq!(counters.secret_updates.load(Ordering::Relaxed), 1);
    assert_eq!(counters.compiles.load(Ordering::Relaxed), compiles);
    // The ACK is what the rotation waits for: the status has the new
    // generation ACKed for SDS.
    h.ack(&r).await;
    let acked = async {
        loop {
            let acked = h.status.list().iter().any(|p| {
                p.xds
                    .get(SDS)
                    .is_some_and(|s| s.acked_generation == Some(2))
            });
            if acked {
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), acked)
        .await
        .expect("the ACK recorded within the limit");
}
