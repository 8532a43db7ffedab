//! Incremental (Delta) protocol rules.

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;

use super::{CDS, EDS, LDS, cluster, endpoint, listener, resources};
use crate::resources::{ProxyResources, ResourceType};
use crate::xds::connection::{Connection, Response};
use crate::xds::status::Nack;

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|n| n.to_string()).collect()
}

fn request(
    type_url: &str,
    subscribe: &[&str],
    unsubscribe: &[&str],
    nonce: &str,
) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.to_string(),
        resource_names_subscribe: strings(subscribe),
        resource_names_unsubscribe: strings(unsubscribe),
        response_nonce: nonce.to_string(),
        ..Default::default()
    }
}

fn ack(response: &DeltaDiscoveryResponse) -> DeltaDiscoveryRequest {
    request(&response.type_url, &[], &[], &response.nonce)
}

fn only(mut responses: Vec<Response>) -> DeltaDiscoveryResponse {
    assert_eq!(responses.len(), 1, "expected one response: {responses:?}");
    responses.remove(0).into_delta().unwrap()
}

/// Names and versions of the resources in a response.
fn sent(response: &DeltaDiscoveryResponse) -> Vec<(String, String)> {
    response
        .resources
        .iter()
        .map(|r| (r.name.clone(), r.version.clone()))
        .collect()
}

#[test]
fn initial_request_without_names_is_a_wildcard() {
    let mut conn = Connection::delta();
    let res = resources(&[cluster("a", 1), cluster("b", 1)], &[], &[], &[]);
    assert!(conn.on_resources(res.clone()).is_empty());

    let r = only(conn.on_delta_request(request(CDS, &[], &[], "")));
    assert_eq!(r.type_url, CDS);
    assert_eq!(r.nonce, "1");
    let clusters = res.get(ResourceType::Cluster);
    assert_eq!(
        sent(&r),
        [
            ("a".to_string(), clusters["a"].version.clone()),
            ("b".to_string(), clusters["b"].version.clone()),
        ]
    );
    assert_eq!(r.resources[0].resource.as_ref(), Some(&clusters["a"].any()));
    assert!(r.removed_resources.is_empty());
    assert_eq!(r.system_version_info, res.version(ResourceType::Cluster));

    // An explicit `*` is a wildcard too.
    conn.on_resources(resources(&[], &[], &[listener("l", 1)], &[]));
    let l = only(conn.on_delta_request(request(LDS, &["*"], &[], "")));
    assert_eq!(l.resources.len(), 1);
}

#[test]
fn ack_is_recorded_and_not_answered() {
    let mut conn = Connection::delta();
    conn.on_resources(resources(&[cluster("a", 1)], &[], &[], &[]));
    let r = only(conn.on_delta_request(request(CDS, &[], &[], "")));
    assert!(conn.on_delta_request(ack(&r)).is_empty());
    let s = conn.status()[CDS].clone();
    assert_eq!(
        s.acked_version.as_deref(),
        Some(r.system_version_info.as_str())
    );
    assert_eq!(s.sent_version, s.acked_version);
}

#[test]
fn subscribe_and_unsubscribe_named_resources() {
    let mut conn = Connection::delta();
    conn.on_resources(resources(
        &[],
        &[endpoint("a", 1), endpoint("b", 1)],
        &[],
        &[],
    ));

    // The first request of a named type is answered even when it names nothing.
    let r0 = only(conn.on_delta_request(request(EDS, &[], &[], "")));
    assert!(r0.resources.is_empty() && r0.removed_resources.is_empty());

    let r1 = only(conn.on_delta_request(request(EDS, &["a"], &[], &r0.nonce)));
    assert_eq!(
        sent(&r1).into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
        ["a"]
    );

    let r2 = only(conn.on_delta_request(request(EDS, &["b"], &["a"], &r1.nonce)));
    assert_eq!(
        sent(&r2).into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
        ["b"]
    );
    assert_eq!(r2.removed_resources, ["a"]);

    // Once unsubscribed, a change to `a` is not sent.
    assert!(
        conn.on_resources(resources(
            &[],
            &[endpoint("a", 2), endpoint("b", 1)],
            &[],
            &[]
        ))
        .is_empty()
    );
}

#[test]
fn only_changed_resources_are_sent_and_deletions_are_removed() {
    let mut conn = Connection::delta();
    conn.on_resources(resources(
        &[cluster("a", 1), cluster("b", 1)],
        &[],
        &[],
        &[],
    ));
    let r = only(conn.on_delta_request(request(CDS, &[], &[], "")));
    conn.on_delta_request(ack(&r));

    let v2 = resources(
        &[cluster("a", 1), cluster("b", 2), cluster("c", 1)],
        &[],
        &[],
        &[],
    );
    let p = only(conn.on_resources(v2.clone()));
    let names: Vec<String> = sent(&p).into_iter().map(|(n, _)| n).collect();
    assert_eq!(names, ["b", "c"]);
    assert!(p.removed_resources.is_empty());
    assert_eq!(p.system_version_info, v2.version(ResourceType::Cluster));
    assert!(conn.on_delta_request(ack(&p)).is_empty());

    let p = only(conn.on_resources(resources(
        &[cluster("b", 2), cluster("c", 1)],
        &[],
        &[],
        &[],
    )));
    assert!(p.resources.is_empty());
    assert_eq!(p.removed_resources, ["a"]);

    // Unchanged content: nothing.
    assert!(
        conn.on_resources(resources(
            &[cluster("b", 2), cluster("c", 1)],
            &[],
            &[],
            &[]
        ))
        .is_empty()
    );
}

#[test]
fn nack_is_recorded_and_not_resent() {
    let mut conn = Connection::delta();
    conn.on_resources(resources(&[cluster("a", 1)], &[], &[], &[]));
    let r = only(conn.on_delta_request(request(CDS, &[], &[], "")));
    conn.on_delta_request(ack(&r));
    let bad = resources(&[cluster("a", 2)], &[], &[], &[]);
    let p = only(conn.on_resources(bad.clone()));

    let mut nack = ack(&p);
    nack.error_detail = Some(RpcStatus {
        code: 3,
        message: "cluster a: invalid".to_string(),
        details: Vec::new(),
    });
    assert!(conn.on_delta_request(nack).is_empty());
    assert_eq!(conn.nacks(), 1);
    let s = conn.status()[CDS].clone();
    assert_eq!(
        s.nack,
        Some(Nack {
            version: p.system_version_info.clone(),
            message: "cluster a: invalid".to_string(),
            objects: Vec::new(),
        })
    );
    assert_eq!(
        s.acked_version.as_deref(),
        Some(r.system_version_info.as_str())
    );
    assert!(conn.on_resources(bad).is_empty());
    let fixed = only(conn.on_resources(resources(&[cluster("a", 3)], &[], &[], &[])));
    assert_eq!(fixed.resources.len(), 1);
}

#[test]
fn stale_nonce_is_ignored_but_subscriptions_apply() {
    let mut conn = Connection::delta();
    conn.on_resources(resources(
        &[],
        &[endpoint("a", 1), endpoint("b", 1)],
        &[],
        &[],
    ));
    let r0 = only(conn.on_delta_request(request(EDS, &["a"], &[], "")));
    assert!(conn.on_delta_request(ack(&r0)).is_empty());
    let r1 = only(conn.on_resources(resources(
        &[],
        &[endpoint("a", 2), endpoint("b", 1)],
        &[],
        &[],
    )));
    assert_ne!(r0.nonce, r1.nonce);

    // A NACK of the older response is not recorded; the new name is sent.
    let mut stale = request(EDS, &["b"], &[], &r0.nonce);
    stale.error_detail = Some(RpcStatus {
        code: 3,
        message: "old".to_string(),
        details: Vec::new(),
    });
    let r2 = only(conn.on_delta_request(stale));
    assert_eq!(
        sent(&r2).into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
        ["b"]
    );
    let s = conn.status()[EDS].clone();
    let first_ack = Some(r0.system_version_info.clone());
    assert_eq!(s.nack, None);
    assert_eq!(s.acked_version, first_ack);
    assert_eq!(conn.nacks(), 0);

    // A stale ACK with no changes is not answered.
    assert!(conn.on_delta_request(ack(&r1)).is_empty());
    assert_eq!(conn.status()[EDS].acked_version, first_ack);
}

#[test]
fn initial_resource_versions_avoid_resends() {
    let res = resources(&[cluster("a", 1), cluster("b", 2)], &[], &[], &[]);
    let clusters = res.get(ResourceType::Cluster);
    let old_b = cluster("b", 1);
    let mut conn = Connection::delta();
    conn.on_resources(res.clone());

    let mut reconnect = request(CDS, &[], &[], "");
    reconnect.initial_resource_versions = [
        ("a".to_string(), clusters["a"].version.clone()),
        ("b".to_string(), old_b.version.clone()),
        ("gone".to_string(), "0123".to_string()),
    ]
    .into_iter()
    .collect();
    let r = only(conn.on_delta_request(reconnect));
    assert_eq!(sent(&r), [("b".to_string(), clusters["b"].version.clone())]);
    assert_eq!(r.removed_resources, ["gone"]);

    // When the proxy already has everything, the first request is answered
    // with nothing to change.
    let mut conn = Connection::delta();
    conn.on_resources(res.clone());
    let mut reconnect = request(CDS, &[], &[], "");
    reconnect.initial_resource_versions = clusters
        .values()
        .map(|c| (c.name.clone(), c.version.clone()))
        .collect();
    let r = only(conn.on_delta_request(reconnect));
    assert!(r.resources.is_empty() && r.removed_resources.is_empty());
    assert_eq!(
        r.system_version_info,
        ProxyResources::version_of(clusters.values().map(|c| c.as_ref()))
    );
}

#[test]
fn unsubscribing_the_wildcard_removes_what_is_not_named() {
    let mut conn = Connection::delta();
    conn.on_resources(resources(
        &[],
        &[],
        &[listener("l1", 1), listener("l2", 1)],
        &[],
    ));
    let r = only(conn.on_delta_request(request(LDS, &[], &[], "")));
    assert_eq!(r.resources.len(), 2);
    let r2 = only(conn.on_delta_request(request(LDS, &["l1"], &["*"], &r.nonce)));
    assert!(r2.resources.is_empty());
    assert_eq!(r2.removed_resources, ["l2"]);
}

#[test]
fn nothing_is_pushed_before_a_request_and_sotw_requests_are_ignored() {
    let mut conn = Connection::delta();
    assert!(
        conn.on_resources(resources(&[cluster("a", 1)], &[], &[], &[]))
            .is_empty()
    );
    let sotw = DiscoveryRequest {
        type_url: CDS.to_string(),
        ..Default::default()
    };
    assert!(conn.on_sotw_request(sotw).is_empty());
    assert!(conn.status().is_empty());
}

#[test]
fn a_subscribed_name_that_does_not_exist_is_reported_removed() {
    let mut conn = Connection::delta();
    conn.on_resources(resources(&[], &[endpoint("a", 1)], &[], &[]));
    let r0 = only(conn.on_delta_request(request(EDS, &["a", "missing"], &[], "")));
    assert_eq!(
        sent(&r0).into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
        ["a"]
    );
    assert_eq!(r0.removed_resources, ["missing"]);
    assert!(conn.on_delta_request(ack(&r0)).is_empty());

    // A later subscription to a missing name is answered at once, with
    // nothing but the names that do not exist.
    let r1 = only(conn.on_delta_request(request(EDS, &["other"], &[], &r0.nonce)));
    assert!(r1.resources.is_empty());
    assert_eq!(r1.removed_resources, ["missing", "other"]);
    assert!(conn.on_delta_request(ack(&r1)).is_empty());

    // A change that leaves them missing says so again; one that does not
    // touch this type sends nothing.
    let r2 = only(conn.on_resources(resources(&[], &[endpoint("a", 2)], &[], &[])));
    assert_eq!(sent(&r2).len(), 1);
    assert_eq!(r2.removed_resources, ["missing", "other"]);
    assert!(conn.on_delta_request(ack(&r2)).is_empty());
    assert!(
        conn.on_resources(resources(&[cluster("c", 1)], &[endpoint("a", 2)], &[], &[]))
            .is_empty()
    );

    // When a missing name appears, it is sent; the other is still missing.
    let r3 = only(conn.on_resources(resources(
        &[],
        &[endpoint("a", 2), endpoint("other", 1)],
        &[],
        &[],
    )));
    assert_eq!(
        sent(&r3).into_iter().map(|(n, _)| n).collect::<Vec<_>>(),
        ["other"]
    );
    assert_eq!(r3.removed_resources, ["missing"]);

    // Unsubscribed, a missing name is no longer mentioned.
    let r4 = only(conn.on_delta_request(request(EDS, &[], &["a", "missing"], &r3.nonce)));
    assert_eq!(r4.removed_resources, ["a"]);
}

#[test]
fn a_named_listener_that_does_not_exist_is_reported_removed() {
    // Not only EDS: a client naming listeners (proxyless gRPC) is told too.
    let mut conn = Connection::delta();
    conn.on_resources(resources(&[], &[], &[listener("l", 1)], &[]));
    let r = only(conn.on_delta_request(request(LDS, &["host:8080"], &[], "")));
    assert!(r.resources.is_empty());
    assert_eq!(r.removed_resources, ["host:8080"]);
}
