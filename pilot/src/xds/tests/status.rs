//! The status registry and its JSON contract.

use serde_json::json;

use super::{CDS, EDS};
use crate::xds::connection::Mode;
use crate::xds::status::{Nack, ProxyStatus, StatusRegistry, TypeStatus, XdsStatus};

fn status(id: &str, stream_id: u64) -> ProxyStatus {
    ProxyStatus {
        id: id.to_string(),
        namespace: "store".to_string(),
        workload: "shop".to_string(),
        address: "10.0.0.7".parse().unwrap(),
        mode: Mode::Sotw,
        stream_id,
        nacks: 0,
        xds: XdsStatus::new(),
    }
}

#[test]
fn json_shape_is_the_public_contract() {
    let mut s = status("sidecar~10.0.0.7~shop.store~store.svc.cluster.local", 3);
    s.mode = Mode::Delta;
    s.nacks = 1;
    s.xds.insert(
        CDS.to_string(),
        TypeStatus {
            sent_version: Some("v2".to_string()),
            acked_version: Some("v1".to_string()),
            nack: Some(Nack {
                version: "v2".to_string(),
                message: "bad cluster".to_string(),
            }),
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
            "stream_id": 3,
            "nacks": 1,
            "xds": {
                CDS: {
                    "sent_version": "v2",
                    "acked_version": "v1",
                    "nack": {"version": "v2", "message": "bad cluster"}
                },
                EDS: {"sent_version": null, "acked_version": null, "nack": null}
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
