//! SDS over ADS: the bundle's `ROOTCA` as a resource type of its own, named
//! by the proxy, pushed when the bundle changes, and ACKed like any other.

use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use envoy_types::pb::google::rpc::Status as RpcStatus;

use super::sotw::request;
use super::{CDS, SDS, cluster, resources, secret};
use crate::resources::{ProxyResources, ResourceType};
use crate::xds::connection::{Connection, Response};
use std::sync::Arc;

fn with_secret(tag: u32) -> Arc<ProxyResources> {
    let set = resources(&[cluster("c", 1)], &[], &[], &[]);
    Arc::new(
        set.with(
            ResourceType::Secret,
            [("ROOTCA".to_string(), secret("ROOTCA", tag))]
                .into_iter()
                .collect::<crate::resources::ResourceMap>(),
        ),
    )
}

fn sotw(responses: Vec<Response>) -> Vec<(String, Vec<String>, String, String)> {
    responses
        .into_iter()
        .map(|r| {
            let r = r.into_sotw().unwrap();
            let names = r
                .resources
                .iter()
                .map(|any| {
                    use prost::Message;
                    envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret::decode(
                        any.value.as_slice(),
                    )
                    .map(|s| s.name)
                    .unwrap_or_default()
                })
                .collect();
            (r.type_url, names, r.version_info, r.nonce)
        })
        .collect()
}

#[test]
fn a_named_secret_is_served_and_its_ack_recorded() {
    let mut conn = Connection::sotw();
    conn.on_resources(with_secret(1));
    // Envoy names the secrets its clusters and listeners reference.
    let sent = sotw(conn.on_sotw_request(request(SDS, &["ROOTCA"], "", "")));
    assert_eq!(sent.len(), 1);
    let (url, names, version, nonce) = &sent[0];
    assert_eq!(
        (url.as_str(), names.as_slice()),
        (SDS, ["ROOTCA".to_string()].as_slice())
    );
    assert!(
        conn.on_sotw_request(request(SDS, &["ROOTCA"], version, nonce))
            .is_empty()
    );
    let status = conn.status();
    let s = &status[SDS];
    assert_eq!(s.acked_version.as_deref(), Some(version.as_str()));
    assert_eq!(s.acked_generation, s.sent_generation);
}

#[test]
fn a_secret_the_control_plane_does_not_serve_is_answered_empty() {
    let mut conn = Connection::sotw();
    conn.on_resources(with_secret(1));
    // `default` is the agent's; asked of the control plane, it is not there.
    let sent = sotw(conn.on_sotw_request(request(SDS, &["default"], "", "")));
    assert_eq!(sent.len(), 1);
    assert!(sent[0].1.is_empty(), "{sent:?}");
}

#[test]
fn a_new_bundle_pushes_the_secret_alone_and_waits_for_its_ack() {
    let mut conn = Connection::sotw();
    conn.on_resources(with_secret(1));
    let cds = sotw(conn.on_sotw_request(request(CDS, &[], "", "")));
    conn.on_sotw_request(request(CDS, &[], &cds[0].2, &cds[0].3));
    let first = sotw(conn.on_sotw_request(request(SDS, &["ROOTCA"], "", "")));
    conn.on_sotw_request(request(SDS, &["ROOTCA"], &first[0].2, &first[0].3));

    // Only the secret changed: only SDS is pushed.
    let pushed = sotw(conn.on_resources(with_secret(2)));
    assert_eq!(pushed.len(), 1, "{pushed:?}");
    let (url, _, version, nonce) = &pushed[0];
    assert_eq!(url, SDS);
    assert_ne!(version, &first[0].2);
    // A third bundle before the proxy answers waits behind the gate...
    assert!(conn.on_resources(with_secret(3)).is_empty());
    assert_eq!(
        conn.status()[SDS].acked_version.as_deref(),
        Some(first[0].2.as_str())
    );
    // ...and goes out with the ACK of the second.
    let third = sotw(conn.on_sotw_request(request(SDS, &["ROOTCA"], version, nonce)));
    assert_eq!(third.len(), 1);
    assert_eq!(
        conn.status()[SDS].acked_version.as_deref(),
        Some(version.as_str())
    );
    assert_ne!(&third[0].2, version);
}

#[test]
fn a_rejected_secret_is_recorded_as_a_nack() {
    let mut conn = Connection::sotw();
    conn.on_resources(with_secret(1));
    let sent = sotw(conn.on_sotw_request(request(SDS, &["ROOTCA"], "", "")));
    let nack = DiscoveryRequest {
        error_detail: Some(RpcStatus {
            code: 13,
            message: "Failed to load trusted CA certificates".to_string(),
            details: Vec::new(),
        }),
        ..request(SDS, &["ROOTCA"], "", &sent[0].3)
    };
    assert!(conn.on_sotw_request(nack).is_empty());
    let status = conn.status();
    let nack = status[SDS].nack.as_ref().unwrap();
    assert_eq!(nack.version, sent[0].2);
    assert!(nack.message.contains("trusted CA"));
    assert_eq!(conn.nacks(), 1);
}

#[test]
fn delta_sends_a_new_bundle_as_one_changed_secret() {
    let mut conn = Connection::delta();
    conn.on_resources(with_secret(1));
    let subscribe = DeltaDiscoveryRequest {
        type_url: SDS.to_string(),
        resource_names_subscribe: vec!["ROOTCA".to_string()],
        ..Default::default()
    };
    let first = conn
        .on_delta_request(subscribe)
        .remove(0)
        .into_delta()
        .unwrap();
    assert_eq!(first.resources.len(), 1);
    assert_eq!(first.resources[0].name, "ROOTCA");
    let ack = DeltaDiscoveryRequest {
        type_url: SDS.to_string(),
        response_nonce: first.nonce.clone(),
        ..Default::default()
    };
    assert!(conn.on_delta_request(ack).is_empty());

    let pushed = conn.on_resources(with_secret(2));
    assert_eq!(pushed.len(), 1);
    let next = pushed.into_iter().next().unwrap().into_delta().unwrap();
    assert_eq!(next.type_url, SDS);
    assert_eq!(next.resources.len(), 1);
    assert_ne!(next.resources[0].version, first.resources[0].version);
    assert!(next.removed_resources.is_empty());
}
