//! The status registry and its JSON contract.

use serde_json::json;

use super::{CDS, EDS};
use crate::xds::status::{Nack, ProxyStatus, StatusRegistry, TypeStatus, XdsStatus};
use pilot_core::xds::connection::Mode;

fn status(id: &str, stream_id: u64) -> ProxyStatus {
    ProxyStatus {
        id: id.to_string(),
        namespace: "store".to_string(),
        workload: "shop".to_string(),
        address: "10.0.0.7".parse().unwrap(),
        mode: Mode::Sotw,
        proxyless: false,
        stream_id,
        nacks: 0,
        generation: 0,
        acked_generation: None,
        identity: None,
        xds: XdsStatus::new(),
        last_push: None,
    }
}

#[test]
fn json_shape_is_the_public_contract() {
    let mut s = status("sidecar~10.0.0.7~shop.store~store.svc.cluster.local", 3);
    s.mode = Mode::Delta;
    s.nacks = 1;
    s.generation = 5;
    s.acked_generation = Some(4);
    s.identity = Some("spiffe://cluster.local/ns/store/sa/shop".to_string());
    s.last_push = Some("2026-12-06T21:40:00.123Z".to_string());
    s.xds.insert(
        CDS.to_string(),
        TypeStatus {
            sent_version: Some("v2".to_string()),
            acked_version: Some("v1".to_string()),
            nack: Some(Nack {
                version: "v2".to_string(),
                message: "bad cluster".to_string(),
                objects: Vec::new(),
            }),
            sent_generation: Some(5),
            acked_generation: Some(4),
        },
    );
    s.xds.insert(EDS.to_string(), TypeStatus::default());
    assert_eq!(
        serde_json::to_value(&s).unwrap(),
        json!({
            "id": "sidecar~10.0.0.7~shop.store~store.svc.cluster.local",
            "namespace": "store",
            "workload": "shop",
            "address": "10.0.0.7",
            "mode": "delta",
            "proxyless": false,
            "stream_id": 3,
            "nacks": 1,
            "generation": 5,
            "acked_generation": 4,
            "identity": "spiffe://cluster.local/ns/store/sa/shop",
            "last_push": "2026-12-06T21:40:00.123Z",
            "xds": {
                CDS: {
                    "sent_version": "v2",
                    "acked_version": "v1",
                    "nack": {"version": "v2", "message": "bad cluster"},
                    "sent_generation": 5,
                    "acked_generation": 4
                },
                EDS: {
                    "sent_version": null,
                    "acked_version": null,
                    "nack": null,
                    "sent_generation": null,
                    "acked_generation": null
                }
            }
        })
    );
}

#[test]
fn list_is_sorted_by_id() {
    let registry = StatusRegistry::new();
    for id in ["c", "a", "b"] {
        registry.update(status(id, 1));
    }
    let ids: Vec<String> = registry.list().into_iter().map(|s| s.id).collect();
    assert_eq!(ids, ["a", "b", "c"]);
}

#[test]
fn an_ended_stream_does_not_remove_its_replacement() {
    let registry = StatusRegistry::new();
    registry.update(status("a", 1));
    registry.update(status("a", 2));
    // The old stream's late update and its end leave the new stream in place.
    registry.update(status("a", 1));
    registry.remove("a", 1);
    assert_eq!(registry.get("a").map(|s| s.stream_id), Some(2));

    registry.remove("a", 2);
    assert!(registry.get("a").is_none());
    assert!(registry.is_empty());
}

#[test]
fn nacks_are_counted_across_proxies() {
    let registry = StatusRegistry::new();
    assert_eq!(registry.nacks_total(), 0);
    registry.record_nacks(2);
    registry.record_nacks(1);
    assert_eq!(registry.nacks_total(), 3);
}

/// A listener whose HTTP connection manager takes its routes from RDS `routes`.
fn listener_with_rds(name: &str, routes: &str) -> std::sync::Arc<pilot_core::resources::Resource> {
    use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, Rds, http_connection_manager::RouteSpecifier,
    };
    use prost::Message;

    let hcm = HttpConnectionManager {
        stat_prefix: name.to_string(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            route_config_name: routes.to_string(),
            ..Default::default()
        })),
        ..Default::default()
    };
    let l = Listener {
        name: name.to_string(),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.http_connection_manager".to_string(),
                config_type: Some(filter::ConfigType::TypedConfig(
                    envoy_types::pb::google::protobuf::Any {
                        type_url: "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager".to_string(),
                        value: hcm.encode_to_vec(),
                    },
                )),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    std::sync::Arc::new(pilot_core::resources::Resource::new(
        pilot_core::resources::ResourceType::Listener,
        name,
        &l,
    ))
}

#[test]
fn an_inconsistent_set_is_not_pushed_and_is_reported_until_a_consistent_one_compiles() {
    use crate::admin::diagnostic_views;
    use crate::xds::server::accept;
    use pilot_core::compile::{Inconsistent, verify};
    use pilot_core::snapshot::Snapshot;

    let registry = StatusRegistry::new();
    let id = "sidecar~10.0.0.7~shop.store~store.svc.cluster.local";
    registry.update(status(id, 1));

    // A listener naming a route configuration the set does not carry.
    let dangling = super::resources(&[], &[], &[listener_with_rds("out", "missing")], &[]);
    let problems = verify(&dangling);
    assert_eq!(
        problems,
        ["listener out uses route configuration missing that does not exist"]
    );
    for generation in [4, 5] {
        let compiled = Err(Inconsistent {
            problems: problems.clone(),
        });
        assert_eq!(accept(&registry, id, generation, compiled), None);
    }
    assert_eq!(registry.inconsistent_total(), 2);

    let views = diagnostic_views(&Snapshot::default(), &registry);
    assert_eq!(views.len(), 1);
    let view = serde_json::to_value(&views[0]).unwrap();
    assert_eq!(view["severity"], "error");
    assert_eq!(view["proxy"], id);
    assert_eq!(view["count"], 2);
    let message = view["message"].as_str().unwrap();
    assert!(message.contains("snapshot 5"), "{message}");
    assert!(message.contains("route configuration missing"), "{message}");

    // The next consistent set is pushed and the finding goes away; the
    // counter keeps the history.
    let consistent = super::resources(
        &[],
        &[],
        &[listener_with_rds("out", "routes")],
        &[super::route("routes", 1)],
    );
    assert!(verify(&consistent).is_empty());
    let pushed = accept(&registry, id, 6, Ok((*consistent).clone()));
    assert_eq!(pushed, Some((*consistent).clone().with_generation(6)));
    assert_eq!(pushed.map(|p| p.generation()), Some(6));
    assert!(diagnostic_views(&Snapshot::default(), &registry).is_empty());
    assert_eq!(registry.inconsistent_total(), 2);

    // A proxy that goes away takes its finding with it.
    assert_eq!(
        accept(&registry, id, 7, Err(Inconsistent { problems })),
        None
    );
    registry.remove(id, 1);
    assert!(registry.inconsistencies().is_empty());
}
