//! Which snapshot generation each proxy has been sent and has ACKed.

use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use envoy_types::pb::google::rpc::Status as RpcStatus;

use super::{CDS, EDS, cluster, endpoint, resources};
use crate::admin::SnapshotView;
use crate::xds::status::{ProxyStatus, StatusRegistry, XdsStatus, acked_generation};
use pilot_core::resources::{ProxyResources, Resource};
use pilot_core::snapshot::Snapshot;
use pilot_core::xds::connection::{Connection, Response};

fn at(
    generation: u64,
    clusters: &[Arc<Resource>],
    endpoints: &[Arc<Resource>],
) -> Arc<ProxyResources> {
    Arc::new(
        (*resources(clusters, endpoints, &[], &[]))
            .clone()
            .with_generation(generation),
    )
}

fn request(type_url: &str, names: &[&str], nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        type_url: type_url.to_string(),
        response_nonce: nonce.to_string(),
        ..Default::default()
    }
}

fn one(mut responses: Vec<Response>) -> DiscoveryResponse {
    assert_eq!(responses.len(), 1, "{responses:?}");
    responses.remove(0).into_sotw().unwrap()
}

/// (sent, acked) generations of `type_url`.
fn generations(conn: &Connection, type_url: &str) -> (Option<u64>, Option<u64>) {
    let s = &conn.status()[type_url];
    (s.sent_generation, s.acked_generation)
}

#[test]
fn sent_and_acked_generations_follow_responses_acks_and_unchanged_sets() {
    let mut conn = Connection::sotw();
    conn.on_resources(at(1, &[cluster("a", 1)], &[endpoint("a", 1)]));
    let c = one(conn.on_sotw_request(request(CDS, &[], "")));
    assert_eq!(generations(&conn, CDS), (Some(1), None));
    assert!(conn.on_sotw_request(request(CDS, &[], &c.nonce)).is_empty());
    assert_eq!(generations(&conn, CDS), (Some(1), Some(1)));

    // A snapshot that changes nothing for this proxy: no response, and yet
    // the proxy is at that generation.
    assert!(
        conn.on_resources(at(2, &[cluster("a", 1)], &[endpoint("a", 1)]))
            .is_empty()
    );
    assert_eq!(generations(&conn, CDS), (Some(2), Some(2)));

    // A change is sent; until its ACK the proxy is behind.
    let c3 = one(conn.on_resources(at(3, &[cluster("a", 3)], &[endpoint("a", 1)])));
    assert_eq!(generations(&conn, CDS), (Some(3), Some(2)));
    // A snapshot arriving meanwhile that changes nothing of it more: on the
    // ACK the proxy is at the newest.
    assert!(
        conn.on_resources(at(4, &[cluster("a", 3)], &[endpoint("a", 9)]))
            .is_empty()
    );
    assert_eq!(generations(&conn, CDS), (Some(3), Some(2)));
    assert!(
        conn.on_sotw_request(request(CDS, &[], &c3.nonce))
            .is_empty()
    );
    assert_eq!(generations(&conn, CDS), (Some(4), Some(4)));

    // A rejected change leaves the ACKed generation where it was, also when
    // later snapshots carry the same rejected content.
    let bad = one(conn.on_resources(at(5, &[cluster("a", 5)], &[endpoint("a", 9)])));
    let mut nack = request(CDS, &[], &bad.nonce);
    nack.error_detail = Some(RpcStatus {
        code: 3,
        message: "bad".to_string(),
        details: Vec::new(),
    });
    assert!(conn.on_sotw_request(nack).is_empty());
    assert!(
        conn.on_resources(at(6, &[cluster("a", 5)], &[endpoint("a", 9)]))
            .is_empty()
    );
    assert_eq!(generations(&conn, CDS), (Some(6), Some(4)));
}

#[test]
fn a_proxy_has_acked_the_lowest_generation_of_its_types() {
    let mut conn = Connection::sotw();
    conn.on_resources(at(7, &[cluster("a", 1)], &[endpoint("a", 1)]));
    assert_eq!(acked_generation(&conn.status()), None);
    let c = one(conn.on_sotw_request(request(CDS, &[], "")));
    conn.on_sotw_request(request(CDS, &[], &c.nonce));
    assert_eq!(acked_generation(&conn.status()), Some(7));

    // EDS requested, not yet ACKed: the proxy has not ACKed anything whole.
    let e = one(conn.on_sotw_request(request(EDS, &["a"], "")));
    assert_eq!(acked_generation(&conn.status()), None);
    conn.on_sotw_request(request(EDS, &["a"], &e.nonce));
    assert_eq!(acked_generation(&conn.status()), Some(7));

    // An endpoint change: CDS moves on at once, EDS on its ACK.
    let e8 = one(conn.on_resources(at(8, &[cluster("a", 1)], &[endpoint("a", 2)])));
    assert_eq!(generations(&conn, CDS), (Some(8), Some(8)));
    assert_eq!(acked_generation(&conn.status()), Some(7));
    conn.on_sotw_request(request(EDS, &["a"], &e8.nonce));
    assert_eq!(acked_generation(&conn.status()), Some(8));
    assert_eq!(acked_generation(&XdsStatus::new()), None);
}

#[test]
fn the_snapshot_view_counts_the_proxies_that_acked_it() {
    let registry = StatusRegistry::new();
    for (id, acked) in [("a", Some(9)), ("b", Some(8)), ("c", None), ("d", Some(10))] {
        registry.update(ProxyStatus {
            id: id.to_string(),
            namespace: "store".to_string(),
            workload: "shop".to_string(),
            address: "10.0.0.7".parse().unwrap(),
            mode: crate::xds::Mode::Sotw,
            proxyless: false,
            stream_id: 1,
            nacks: 0,
            generation: 10,
            acked_generation: acked,
            identity: None,
            xds: XdsStatus::new(),
            last_push: None,
        });
    }
    let mut snapshot = Snapshot::default();
    snapshot.generation = 9;
    let view = SnapshotView::new(&snapshot, &registry.list());
    assert_eq!(
        view,
        SnapshotView {
            generation: 9,
            proxies: 4,
            converged: 2,
        }
    );
    assert_eq!(
        serde_json::to_value(&view).unwrap(),
        serde_json::json!({"generation": 9, "proxies": 4, "converged": 2})
    );
}
