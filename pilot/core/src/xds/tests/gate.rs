//! The push gate: one server-initiated response per type in flight.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prost::Message;

use super::{CDS, EDS, LDS, RDS, cluster, endpoint, listener, resources, route};
use crate::xds::connection::{Connection, Response};

fn request(type_url: &str, names: &[&str], nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        type_url: type_url.to_string(),
        response_nonce: nonce.to_string(),
        ..Default::default()
    }
}

fn ack(r: &DiscoveryResponse, names: &[&str]) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: r.version_info.clone(),
        ..request(&r.type_url, names, &r.nonce)
    }
}

fn sotw(responses: Vec<Response>) -> Vec<DiscoveryResponse> {
    responses
        .into_iter()
        .map(|r| r.into_sotw().unwrap())
        .collect()
}

fn types(responses: &[DiscoveryResponse]) -> Vec<&str> {
    responses.iter().map(|r| r.type_url.as_str()).collect()
}

fn alt_stat_names(r: &DiscoveryResponse) -> Vec<String> {
    r.resources
        .iter()
        .map(|any| Cluster::decode(any.value.as_slice()).unwrap().alt_stat_name)
        .collect()
}

/// A connection subscribed to all four types, everything ACKed.
fn synced() -> Connection {
    let mut conn = Connection::sotw();
    conn.on_resources(resources(
        &[cluster("a", 1)],
        &[endpoint("a", 1)],
        &[listener("l", 1)],
        &[route("r", 1)],
    ));
    for (type_url, names) in [(CDS, &[][..]), (EDS, &["a"][..]), (LDS, &[]), (RDS, &["r"])] {
        let r = sotw(conn.on_sotw_request(request(type_url, names, "")));
        assert_eq!(r.len(), 1);
        assert!(conn.on_sotw_request(ack(&r[0], names)).is_empty());
    }
    conn
}

#[test]
fn a_push_waits_for_the_ack_of_the_last_and_newer_sets_coalesce() {
    let mut conn = synced();
    let p1 = sotw(conn.on_resources(resources(
        &[cluster("a", 2)],
        &[endpoint("a", 1)],
        &[listener("l", 1)],
        &[route("r", 1)],
    )));
    assert_eq!(types(&p1), [CDS]);

    // Two more sets before the ACK: nothing goes out.
    for tag in [3, 4] {
        assert!(
            conn.on_resources(resources(
                &[cluster("a", tag)],
                &[endpoint("a", 1)],
                &[listener("l", 1)],
                &[route("r", 1)],
            ))
            .is_empty()
        );
    }
    // The ACK lets the newest through, alone.
    let p2 = sotw(conn.on_sotw_request(ack(&p1[0], &[])));
    assert_eq!(types(&p2), [CDS]);
    assert_eq!(alt_stat_names(&p2[0]), ["v4"]);
    assert!(conn.on_sotw_request(ack(&p2[0], &[])).is_empty());
}

#[test]
fn a_nack_opens_the_gate_too() {
    let mut conn = synced();
    let bad = sotw(conn.on_resources(resources(
        &[cluster("a", 2)],
        &[endpoint("a", 1)],
        &[listener("l", 1)],
        &[route("r", 1)],
    )));
    let fixed = resources(
        &[cluster("a", 3)],
        &[endpoint("a", 1)],
        &[listener("l", 1)],
        &[route("r", 1)],
    );
    assert!(conn.on_resources(fixed).is_empty());
    let mut nack = ack(&bad[0], &[]);
    nack.error_detail = Some(RpcStatus {
        code: 3,
        message: "bad".to_string(),
        details: Vec::new(),
    });
    let p = sotw(conn.on_sotw_request(nack));
    assert_eq!(types(&p), [CDS]);
    assert_eq!(alt_stat_names(&p[0]), ["v3"]);
}

#[test]
fn gates_are_per_type() {
    let mut conn = synced();
    let p1 = sotw(conn.on_resources(resources(
        &[cluster("a", 2)],
        &[endpoint("a", 1)],
        &[listener("l", 1)],
        &[route("r", 1)],
    )));
    assert_eq!(types(&p1), [CDS]);
    // CDS is in flight; a route change still goes out.
    let p2 = sotw(conn.on_resources(resources(
        &[cluster("a", 2)],
        &[endpoint("a", 1)],
        &[listener("l", 1)],
        &[route("r", 2)],
    )));
    assert_eq!(types(&p2), [RDS]);
}

#[test]
fn answers_to_the_clients_requests_are_not_held() {
    let mut conn = synced();
    let cds = sotw(conn.on_resources(resources(
        &[cluster("a", 1), cluster("b", 1)],
        &[endpoint("a", 1), endpoint("b", 1)],
        &[listener("l", 1)],
        &[route("r", 1)],
    )));
    assert_eq!(types(&cds), [CDS]);
    // While CDS is in flight an endpoint changes: EDS goes out (its own gate
    // is open).
    let eds = sotw(conn.on_resources(resources(
        &[cluster("a", 1), cluster("b", 1)],
        &[endpoint("a", 2), endpoint("b", 1)],
        &[listener("l", 1)],
        &[route("r", 1)],
    )));
    assert_eq!(types(&eds), [EDS]);
    // Another endpoint change is held behind that EDS push...
    assert!(
        conn.on_resources(resources(
            &[cluster("a", 1), cluster("b", 1)],
            &[endpoint("a", 3), endpoint("b", 1)],
            &[listener("l", 1)],
            &[route("r", 1)],
        ))
        .is_empty()
    );
    // ...but Envoy, warming cluster b, ACKs the EDS push naming b, and is
    // answered at once with every name, newest content included.
    let warm = sotw(conn.on_sotw_request(ack(&eds[0], &["a", "b"])));
    assert_eq!(types(&warm), [EDS]);
    assert_eq!(warm[0].resources.len(), 2);
    assert!(conn.on_sotw_request(ack(&warm[0], &["a", "b"])).is_empty());
    // A first request of a type is never held either.
    let mut fresh = Connection::sotw();
    fresh.on_resources(resources(&[cluster("a", 1)], &[], &[], &[]));
    let first = sotw(fresh.on_sotw_request(request(CDS, &[], "")));
    assert_eq!(types(&first), [CDS]);
    let again = sotw(fresh.on_sotw_request(request(CDS, &[], "")));
    assert_eq!(types(&again), [CDS]);
}

#[test]
fn delta_pushes_wait_for_the_ack_and_subscriptions_do_not() {
    let mut conn = Connection::delta();
    conn.on_resources(resources(
        &[cluster("a", 1)],
        &[endpoint("a", 1), endpoint("b", 1)],
        &[],
        &[],
    ));
    let sub = |names: &[&str], nonce: &str| DeltaDiscoveryRequest {
        type_url: EDS.to_string(),
        resource_names_subscribe: names.iter().map(|n| n.to_string()).collect(),
        response_nonce: nonce.to_string(),
        ..Default::default()
    };
    let r0 = conn.on_delta_request(sub(&["a"], ""));
    let r0 = r0[0].clone().into_delta().unwrap();
    assert!(conn.on_delta_request(sub(&[], &r0.nonce)).is_empty());

    let v2 = resources(
        &[cluster("a", 1)],
        &[endpoint("a", 2), endpoint("b", 1)],
        &[],
        &[],
    );
    let p1 = conn.on_resources(v2);
    assert_eq!(p1.len(), 1);
    let p1 = p1[0].clone().into_delta().unwrap();
    let v3 = resources(
        &[cluster("a", 1)],
        &[endpoint("a", 3), endpoint("b", 1)],
        &[],
        &[],
    );
    assert!(conn.on_resources(v3.clone()).is_empty());

    // A subscription while the push is in flight (its nonce is stale) is
    // answered at once, and carries the held change too.
    let s = conn.on_delta_request(sub(&["b"], &r0.nonce));
    assert_eq!(s.len(), 1);
    let s = s[0].clone().into_delta().unwrap();
    let names: Vec<&str> = s.resources.iter().map(|r| r.name.as_str()).collect();
    assert_eq!(names, ["a", "b"]);
    let eds = v3.get(crate::resources::ResourceType::Endpoint);
    assert_eq!(s.resources[0].version, eds["a"].version);

    // The late ACK of the first push is stale: nothing more is due.
    assert!(conn.on_delta_request(sub(&[], &p1.nonce)).is_empty());
    assert!(conn.on_delta_request(sub(&[], &s.nonce)).is_empty());
}
