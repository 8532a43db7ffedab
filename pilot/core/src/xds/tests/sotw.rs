//! State-of-the-world protocol rules.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prost::Message;

use super::{CDS, EDS, LDS, RDS, cluster, endpoint, listener, resources, route};
use crate::resources::ProxyResources;
use crate::xds::connection::{Connection, Response};
use crate::xds::status::{Nack, TypeStatus};

pub(super) fn request(
    type_url: &str,
    names: &[&str],
    version: &str,
    nonce: &str,
) -> DiscoveryRequest {
    DiscoveryRequest {
        version_info: version.to_string(),
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        type_url: type_url.to_string(),
        response_nonce: nonce.to_string(),
        ..Default::default()
    }
}

fn nack(type_url: &str, names: &[&str], version: &str, nonce: &str, msg: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        error_detail: Some(RpcStatus {
            code: 13,
            message: msg.to_string(),
            details: Vec::new(),
        }),
        ..request(type_url, names, version, nonce)
    }
}

/// The single state-of-the-world response in `responses`.
fn only(mut responses: Vec<Response>) -> DiscoveryResponse {
    assert_eq!(responses.len(), 1, "expected one response: {responses:?}");
    responses.remove(0).into_sotw().unwrap()
}

/// ACK of `response`, echoing its version and nonce.
fn ack(response: &DiscoveryResponse, names: &[&str]) -> DiscoveryRequest {
    request(
        &response.type_url,
        names,
        &response.version_info,
        &response.nonce,
    )
}

fn cluster_names(response: &DiscoveryResponse) -> Vec<String> {
    response
        .resources
        .iter()
        .map(|any| Cluster::decode(any.value.as_slice()).unwrap().name)
        .collect()
}

fn endpoint_names(response: &DiscoveryResponse) -> Vec<String> {
    response
        .resources
        .iter()
        .map(|any| {
            let cla = ClusterLoadAssignment::decode(any.value.as_slice()).unwrap();
            cla.cluster_name.split('#').next().unwrap().to_string()
        })
        .collect()
}

fn status_of(conn: &Connection, type_url: &str) -> TypeStatus {
    conn.status().get(type_url).cloned().unwrap()
}

#[test]
fn first_request_is_answered_with_current_resources() {
    let mut conn = Connection::sotw();
    let res = resources(&[cluster("b", 1), cluster("a", 1)], &[], &[], &[]);
    assert!(conn.on_resources(res.clone()).is_empty());

    let r = only(conn.on_sotw_request(request(CDS, &[], "", "")));
    assert_eq!(r.type_url, CDS);
    assert_eq!(r.nonce, "1");
    assert_eq!(cluster_names(&r), ["a", "b"]);
    assert_eq!(
        r.version_info,
        res.version(crate::resources::ResourceType::Cluster)
    );
    assert!(r.resources.iter().all(|any| any.type_url == CDS));

    let s = status_of(&conn, CDS);
    assert_eq!(s.sent_version.as_deref(), Some(r.version_info.as_str()));
    assert_eq!(s.acked_version, None);
    assert_eq!(s.nack, None);
}

#[test]
fn nonces_increase_per_connection() {
    let mut conn = Connection::sotw();
    conn.on_resources(resources(&[cluster("a", 1)], &[], &[listener("l", 1)], &[]));
    let c = only(conn.on_sotw_request(request(CDS, &[], "", "")));
    let l = only(conn.on_sotw_request(request(LDS, &[], "", "")));
    assert_eq!((c.nonce.as_str(), l.nonce.as_str()), ("1", "2"));
}

#[test]
fn ack_is_recorded_and_not_answered() {
    let mut conn = Connection::sotw();
    conn.on_resources(resources(&[cluster("a", 1)], &[], &[], &[]));
    let r = only(conn.on_sotw_request(request(CDS, &[], "", "")));

    assert!(conn.on_sotw_request(ack(&r, &[])).is_empty());
    let s = status_of(&conn, CDS);
    assert_eq!(s.acked_version.as_deref(), Some(r.version_info.as_str()));
    assert_eq!(s.sent_version, s.acked_version);
}

#[test]
fn nack_is_recorded_and_the_rejected_version_not_resent() {
    let mut conn = Connection::sotw();
    conn.on_resources(resources(&[cluster("a", 1)], &[], &[], &[]));
    let v1 = only(conn.on_sotw_request(request(CDS, &[], "", "")));
    conn.on_sotw_request(ack(&v1, &[]));

    let bad = resources(&[cluster("a", 2)], &[], &[], &[]);
    let v2 = only(conn.on_resources(bad.clone()));
    let out = conn.on_sotw_request(nack(
        CDS,
        &[],
        &v1.version_info,
        &v2.nonce,
        "cluster a: bad timeout",
    ));
    assert!(out.is_empty(), "a NACK is not answered: {out:?}");
    assert_eq!(conn.nacks(), 1);

    let s = status_of(&conn, CDS);
    assert_eq!(
        s.nack,
        Some(Nack {
            version: v2.version_info.clone(),
            message: "cluster a: bad timeout".to_string(),
            objects: Vec::new(),
        })
    );
    assert_eq!(s.acked_version.as_deref(), Some(v1.version_info.as_str()));
    assert_eq!(s.sent_version.as_deref(), Some(v2.version_info.as_str()));

    // The same content again, or a change to a type not requested: nothing.
    assert!(conn.on_resources(bad).is_empty());
    assert!(
        conn.on_resources(resources(&[cluster("a", 2)], &[], &[listener("l", 1)], &[]))
            .is_empty()
    );

    // New content is sent, and its ACK keeps the NACK as the last one seen.
    let v3 = only(conn.on_resources(resources(&[cluster("a", 3)], &[], &[], &[])));
    assert_eq!(cluster_names(&v3), ["a"]);
    assert!(conn.on_sotw_request(ack(&v3, &[])).is_empty());
    let s = status_of(&conn, CDS);
    assert_eq!(s.acked_version.as_deref(), Some(v3.version_info.as_str()));
    assert_eq!(s.nack.map(|n| n.version), Some(v2.version_info));
}

#[test]
fn stale_nonce_is_ignored() {
    let mut conn = Connection::sotw();
    conn.on_resources(resources(&[cluster("a", 1)], &[endpoint("a", 1)], &[], &[]));
    let first = only(conn.on_sotw_request(request(CDS, &[], "", "")));
    assert!(conn.on_sotw_request(ack(&first, &[])).is_empty());
    let pushed = only(conn.on_resources(resources(&[cluster("a", 2)], &[], &[], &[])));
    assert_ne!(first.nonce, pushed.nonce);

    // A late ACK and a NACK of the older response change nothing.
    assert!(conn.on_sotw_request(ack(&first, &[])).is_empty());
    assert!(
        conn.on_sotw_request(nack(CDS, &[], "", &first.nonce, "late"))
            .is_empty()
    );
    let s = status_of(&conn, CDS);
    assert_eq!(
        s.acked_version.as_deref(),
        Some(first.version_info.as_str())
    );
    assert_eq!(s.nack, None);
    assert_eq!(conn.nacks(), 0);

    // A stale request with new names is not answered either.
    let eds = only(conn.on_sotw_request(request(EDS, &["a"], "", "")));
    assert!(conn.on_sotw_request(ack(&eds, &["a"])).is_empty());
    only(conn.on_resources(resources(&[cluster("a", 2)], &[endpoint("a", 2)], &[], &[])));
    assert!(
        conn.on_sotw_request(request(EDS, &["a", "b"], &eds.version_info, &eds.nonce))
            .is_empty()
    );

    // A nonce never sent, for a type never requested, is ignored too.
    assert!(conn.on_sotw_request(request(LDS, &[], "", "7")).is_empty());
    assert!(!conn.status().contains_key(LDS));
}

#[test]
fn reconnect_with_old_version_and_empty_nonce_is_answered() {
    let res = resources(&[cluster("a", 1)], &[], &[], &[]);
    let mut before = Connection::sotw();
    before.on_resources(res.clone());
    let old = only(before.on_sotw_request(request(CDS, &[], "", "")));

    // The proxy reconnects holding the same version: it is still answered.
    let mut after = Connection::sotw();
    after.on_resources(res);
    let r = only(after.on_sotw_request(request(CDS, &[], &old.version_info, "")));
    assert_eq!(r.version_info, old.version_info);
    assert_eq!(cluster_names(&r), ["a"]);

    // And again on the same stream, when the proxy asks afresh.
    let again = only(after.on_sotw_request(request(CDS, &[], &r.version_info, "")));
    assert_ne!(again.nonce, r.nonce);
}

#[test]
fn lds_and_cds_without_names_are_wildcard() {
    let mut conn = Connection::sotw();
    conn.on_resources(resources(
        &[cluster("a", 1), cluster("b", 1)],
        &[],
        &[listener("l1", 1), listener("l2", 1)],
        &[],
    ));
    // Envoy's way: no names, ever.
    let c = only(conn.on_sotw_request(request(CDS, &[], "", "")));
    assert_eq!(cluster_names(&c), ["a", "b"]);
    assert!(conn.on_sotw_request(ack(&c, &[])).is_empty());
    let c2 = only(conn.on_resources(resources(
        &[cluster("a", 1), cluster("b", 1), cluster("c", 1)],
        &[],
        &[listener("l1", 1), listener("l2", 1)],
        &[],
    )));
    assert_eq!(cluster_names(&c2), ["a", "b", "c"]);

    // `*` is a wildcard too, alone or beside names.
    let l = only(conn.on_sotw_request(request(LDS, &["*"], "", "")));
    assert_eq!(l.resources.len(), 2);
    assert!(conn.on_sotw_request(ack(&l, &["l1", "*"])).is_empty());
}

#[test]
fn lds_and_cds_naming_resources_subscribe_to_just_those() {
    // Proxyless gRPC: the listener by name, then what it names.
    let mut conn = Connection::sotw();
    let v1 = resources(
        &[cluster("a", 1), cluster("b", 1)],
        &[endpoint("a", 1), endpoint("b", 1)],
        &[listener("l1", 1), listener("l2", 1)],
        &[route("r1", 1), route("r2", 1)],
    );
    conn.on_resources(v1.clone());
    let l = only(conn.on_sotw_request(request(LDS, &["l1"], "", "")));
    assert_eq!(l.resources.len(), 1);
    let sent = v1.get(crate::resources::ResourceType::Listener);
    assert_eq!(
        l.version_info,
        ProxyResources::version_of([sent["l1"].as_ref()])
    );
    assert!(conn.on_sotw_request(ack(&l, &["l1"])).is_empty());
    let c = only(conn.on_sotw_request(request(CDS, &["a", "missing"], "", "")));
    assert_eq!(cluster_names(&c), ["a"]);
    assert!(conn.on_sotw_request(ack(&c, &["a", "missing"])).is_empty());

    // A change to what the client did not name pushes nothing; a change to
    // what it named pushes just that.
    let v2 = resources(
        &[cluster("a", 1), cluster("b", 2)],
        &[endpoint("a", 1), endpoint("b", 1)],
        &[listener("l1", 1), listener("l2", 2)],
        &[route("r1", 1), route("r2", 1)],
    );
    assert!(conn.on_resources(v2).is_empty());
    let pushed = conn.on_resources(resources(
        &[cluster("a", 3), cluster("b", 2)],
        &[endpoint("a", 1), endpoint("b", 1)],
        &[listener("l1", 1), listener("l2", 2)],
        &[route("r1", 1), route("r2", 1)],
    ));
    let c2 = only(pushed);
    assert_eq!(cluster_names(&c2), ["a"]);

    // Once the client has named resources, an empty list means none.
    let none = only(conn.on_sotw_request(ack(&c2, &[])));
    assert!(none.resources.is_empty());
    // And `*` brings the wildcard back.
    let all = only(conn.on_sotw_request(ack(&none, &["*"])));
    assert_eq!(cluster_names(&all), ["a", "b"]);
}

#[test]
fn rds_and_eds_send_the_requested_names_that_exist() {
    let mut conn = Connection::sotw();
    let res = resources(
        &[],
        &[endpoint("a", 1), endpoint("b", 1), endpoint("c", 1)],
        &[],
        &[route("r1", 1), route("r2", 1)],
    );
    conn.on_resources(res.clone());

    let e = only(conn.on_sotw_request(request(EDS, &["c", "a", "missing"], "", "")));
    assert_eq!(endpoint_names(&e), ["a", "c"]);
    let sent = res.get(crate::resources::ResourceType::Endpoint);
    let expected = ProxyResources::version_of([sent["a"].as_ref(), sent["c"].as_ref()]);
    assert_eq!(e.version_info, expected);
    assert_ne!(
        e.version_info,
        res.version(crate::resources::ResourceType::Endpoint)
    );

    // ACK with the same names: nothing. ACK with new names: answered.
    assert!(
        conn.on_sotw_request(ack(&e, &["a", "c", "missing"]))
            .is_empty()
    );
    let e2 = only(conn.on_sotw_request(ack(&e, &["b"])));
    assert_eq!(endpoint_names(&e2), ["b"]);
    assert_eq!(
        status_of(&conn, EDS).acked_version.as_deref(),
        Some(e.version_info.as_str())
    );

    let r = only(conn.on_sotw_request(request(RDS, &["r2"], "", "")));
    assert_eq!(r.resources.len(), 1);
    assert_eq!(r.type_url, RDS);
}

#[test]
fn new_resources_push_only_changed_types_in_order() {
    let mut conn = Connection::sotw();
    let v1 = resources(
        &[cluster("a", 1)],
        &[endpoint("a", 1), endpoint("other", 1)],
        &[listener("l", 1)],
        &[route("r", 1)],
    );
    // Nothing is pushed for types never requested.
    assert!(conn.on_resources(v1.clone()).is_empty());

    for (type_url, names) in [(LDS, &[][..]), (RDS, &["r"][..]), (CDS, &[]), (EDS, &["a"])] {
        let r = only(conn.on_sotw_request(request(type_url, names, "", "")));
        assert!(conn.on_sotw_request(ack(&r, names)).is_empty());
    }
    assert!(conn.on_resources(v1).is_empty());

    // Routes and clusters change, and an endpoint nobody subscribed to.
    let v2 = resources(
        &[cluster("a", 2)],
        &[endpoint("a", 1), endpoint("other", 2)],
        &[listener("l", 1)],
        &[route("r", 2)],
    );
    let pushed = conn.on_resources(v2);
    let types: Vec<String> = pushed.iter().map(|r| r.type_url().to_string()).collect();
    assert_eq!(types, [CDS, RDS]);
    for r in pushed {
        let r = r.into_sotw().unwrap();
        let names: &[&str] = if r.type_url == RDS { &["r"] } else { &[] };
        assert!(conn.on_sotw_request(ack(&r, names)).is_empty());
    }

    let v3 = resources(
        &[cluster("a", 3)],
        &[endpoint("a", 3)],
        &[listener("l", 3)],
        &[route("r", 3)],
    );
    let types: Vec<String> = conn
        .on_resources(v3)
        .iter()
        .map(|r| r.type_url().to_string())
        .collect();
    assert_eq!(types, [CDS, EDS, LDS, RDS]);
}

#[test]
fn deleting_every_resource_pushes_an_empty_set() {
    let mut conn = Connection::sotw();
    conn.on_resources(resources(&[cluster("a", 1)], &[], &[], &[]));
    let c = only(conn.on_sotw_request(request(CDS, &[], "", "")));
    conn.on_sotw_request(ack(&c, &[]));
    let r = only(conn.on_resources(resources(&[], &[], &[], &[])));
    assert!(r.resources.is_empty());
}

#[test]
fn nack_with_new_names_answers_the_new_names() {
    let mut conn = Connection::sotw();
    conn.on_resources(resources(
        &[],
        &[endpoint("a", 1), endpoint("b", 1)],
        &[],
        &[],
    ));
    let e = only(conn.on_sotw_request(request(EDS, &["a"], "", "")));
    // Rejected, with the same names: nothing.
    assert!(
        conn.on_sotw_request(nack(EDS, &["a"], "", &e.nonce, "bad"))
            .is_empty()
    );
    // A later request with the current nonce adds a name: answered.
    let e2 = only(conn.on_sotw_request(nack(EDS, &["a", "b"], "", &e.nonce, "bad")));
    assert_eq!(endpoint_names(&e2), ["a", "b"]);
}

#[test]
fn unknown_types_and_delta_requests_are_ignored() {
    let mut conn = Connection::sotw();
    assert!(
        conn.on_sotw_request(request(
            "type.googleapis.com/envoy.service.runtime.v3.Runtime",
            &[],
            "",
            ""
        ))
        .is_empty()
    );
    let delta = DeltaDiscoveryRequest {
        type_url: CDS.to_string(),
        ..Default::default()
    };
    assert!(conn.on_delta_request(delta).is_empty());
    assert!(conn.status().is_empty());
}

#[test]
fn pushes_carry_only_the_changed_endpoints_and_routes() {
    let mut conn = Connection::sotw();
    let v1 = resources(
        &[cluster("a", 1), cluster("b", 1), cluster("c", 1)],
        &[endpoint("a", 1), endpoint("b", 1), endpoint("c", 1)],
        &[listener("l", 1)],
        &[route("r1", 1), route("r2", 1)],
    );
    conn.on_resources(v1);
    for (type_url, names) in [
        (CDS, &[][..]),
        (EDS, &["a", "b", "c"][..]),
        (LDS, &[]),
        (RDS, &["r1", "r2"]),
    ] {
        let r = only(conn.on_sotw_request(request(type_url, names, "", "")));
        assert!(conn.on_sotw_request(ack(&r, names)).is_empty());
    }

    // One endpoint moves: one EDS response, with that assignment alone, at
    // the version of the whole subscribed set.
    let v2 = resources(
        &[cluster("a", 1), cluster("b", 1), cluster("c", 1)],
        &[endpoint("a", 1), endpoint("b", 2), endpoint("c", 1)],
        &[listener("l", 1)],
        &[route("r1", 1), route("r2", 1)],
    );
    let e = only(conn.on_resources(v2.clone()));
    assert_eq!(e.type_url, EDS);
    assert_eq!(endpoint_names(&e), ["b"]);
    assert_eq!(
        e.version_info,
        v2.version(crate::resources::ResourceType::Endpoint)
    );
    assert!(conn.on_sotw_request(ack(&e, &["a", "b", "c"])).is_empty());

    // A route and a cluster change: RDS carries the one route, CDS stays
    // complete.
    let v3 = resources(
        &[cluster("a", 2), cluster("b", 1), cluster("c", 1)],
        &[endpoint("a", 1), endpoint("b", 2), endpoint("c", 1)],
        &[listener("l", 1)],
        &[route("r1", 1), route("r2", 2)],
    );
    let pushed = conn.on_resources(v3);
    assert_eq!(pushed.len(), 2);
    let c = pushed[0].clone().into_sotw().unwrap();
    assert_eq!(cluster_names(&c), ["a", "b", "c"]);
    let r = pushed[1].clone().into_sotw().unwrap();
    assert_eq!(r.type_url, RDS);
    assert_eq!(r.resources.len(), 1);
    let decoded = RouteConfiguration::decode(r.resources[0].value.as_slice()).unwrap();
    assert_eq!(decoded.name, "r2");

    // An endpoint changing back is a change too.
    let e2 = only(conn.on_resources(resources(
        &[cluster("a", 2), cluster("b", 1), cluster("c", 1)],
        &[endpoint("a", 1), endpoint("b", 1), endpoint("c", 1)],
        &[listener("l", 1)],
        &[route("r1", 1), route("r2", 2)],
    )));
    assert_eq!(endpoint_names(&e2), ["b"]);
}

#[test]
fn a_new_subscription_or_a_reconnect_gets_everything_it_names() {
    let res = resources(
        &[],
        &[endpoint("a", 1), endpoint("b", 1), endpoint("c", 1)],
        &[],
        &[],
    );
    let mut conn = Connection::sotw();
    conn.on_resources(res.clone());
    let e = only(conn.on_sotw_request(request(EDS, &["a", "b"], "", "")));
    assert_eq!(endpoint_names(&e), ["a", "b"]);
    // Adding a name (as Envoy does for a new cluster) answers with every
    // name, not only the new one.
    let e2 = only(conn.on_sotw_request(ack(&e, &["a", "b", "c"])));
    assert_eq!(endpoint_names(&e2), ["a", "b", "c"]);

    // A reconnect holding the old version gets the whole set.
    let mut again = Connection::sotw();
    again.on_resources(res);
    let r = only(again.on_sotw_request(request(EDS, &["a", "b", "c"], &e2.version_info, "")));
    assert_eq!(endpoint_names(&r), ["a", "b", "c"]);
    assert_eq!(r.version_info, e2.version_info);

    // A name dropped and named again is sent again, though unchanged.
    let e3 = only(conn.on_sotw_request(ack(&e2, &["a"])));
    assert_eq!(endpoint_names(&e3), ["a"]);
    let e4 = only(conn.on_sotw_request(ack(&e3, &["a", "c"])));
    assert_eq!(endpoint_names(&e4), ["a", "c"]);
}

/// What grpcio's xDS client does with a compiled proxyless set: each
/// request names what the previous answer named, and gets only that.
#[test]
fn a_proxyless_client_gets_the_chain_of_names_it_asks_for() {
    use envoy_types::pb::envoy::config::listener::v3::Listener;

    const MESH: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: grpc, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: shop}
spec:
  selector: {app: ratings}
  ports: [{name: grpc, port: 9090}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: shop}
spec: {address: 10.0.0.2, labels: {app: reviews}}
"#;
    let mut store = discovery::file::FileStore::default();
    store.apply(std::path::Path::new("mesh.yaml"), MESH);
    let snapshot = crate::snapshot::Snapshot::build(1, &store.config());
    let proxy = crate::proxy::Proxy::new(crate::proxy::NodeMetadata::grpc(
        "shop",
        "client",
        [10, 0, 0, 1].into(),
    ));
    let compiled = crate::compile::compile_consistent(&snapshot, &proxy).unwrap();
    let target = "reviews.shop.svc.cluster.local:9080";
    let cluster = "outbound|9080||reviews.shop.svc.cluster.local";

    let mut conn = Connection::sotw();
    conn.on_resources(std::sync::Arc::new(compiled));
    let l = only(conn.on_sotw_request(request(LDS, &[target], "", "")));
    let listeners: Vec<String> = l
        .resources
        .iter()
        .map(|any| Listener::decode(any.value.as_slice()).unwrap().name)
        .collect();
    assert_eq!(listeners, [target]);
    assert!(conn.on_sotw_request(ack(&l, &[target])).is_empty());

    let r = only(conn.on_sotw_request(request(RDS, &[target], "", "")));
    let routes: Vec<String> = r
        .resources
        .iter()
        .map(|any| {
            RouteConfiguration::decode(any.value.as_slice())
                .unwrap()
                .name
        })
        .collect();
    assert_eq!(routes, [target]);

    let c = only(conn.on_sotw_request(request(CDS, &[cluster], "", "")));
    assert_eq!(cluster_names(&c), [cluster]);
    let e = only(conn.on_sotw_request(request(EDS, &[cluster], "", "")));
    assert_eq!(endpoint_names(&e), [cluster]);
}

#[test]
fn status_written_over_the_last_one_is_the_status() {
    let mut conn = Connection::sotw();
    let mut published = crate::xds::status::XdsStatus::new();
    let mut check = |conn: &Connection| {
        conn.status_into(&mut published);
        assert_eq!(published, conn.status());
    };
    check(&conn);
    conn.on_resources(resources(&[cluster("a", 1)], &[], &[listener("l", 1)], &[]));
    let v1 = only(conn.on_sotw_request(request(CDS, &[], "", "")));
    check(&conn);
    conn.on_sotw_request(ack(&v1, &[]));
    check(&conn);
    let l1 = only(conn.on_sotw_request(request(LDS, &[], "", "")));
    check(&conn);
    let v2 = only(conn.on_resources(resources(&[cluster("a", 2)], &[], &[listener("l", 1)], &[])));
    conn.on_sotw_request(nack(CDS, &[], &v1.version_info, &v2.nonce, "bad"));
    check(&conn);
    conn.on_sotw_request(ack(&l1, &[]));
    check(&conn);
}
