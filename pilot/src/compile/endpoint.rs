//! Endpoints: a `ClusterLoadAssignment` per cluster, grouped by locality.
//!
//! Every locality group carries a `locality` and a `load_balancing_weight`
//! even when empty or uniform: gRPC's xDS client rejects groups without them.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use discovery::{Port, ServiceModel};
use envoy_types::pb::envoy::config::core::v3::Locality;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint::HostIdentifier,
};
use envoy_types::pb::google::protobuf::UInt32Value;

use super::proto;

/// Endpoints of one service port, restricted to those carrying `subset_labels`.
pub(crate) fn load_assignment(
    cluster: &str,
    service: &ServiceModel,
    port: &Port,
    subset_labels: Option<&BTreeMap<String, String>>,
) -> ClusterLoadAssignment {
    let mut by_locality: BTreeMap<&str, Vec<LbEndpoint>> = BTreeMap::new();
    for ep in &service.endpoints {
        let Some(&target) = ep.ports.get(&port.number) else {
            continue;
        };
        let selected =
            subset_labels.is_none_or(|want| want.iter().all(|(k, v)| ep.labels.get(k) == Some(v)));
        if !selected {
            continue;
        }
        by_locality
            .entry(ep.locality.as_str())
            .or_default()
            .push(lb_endpoint(&ep.address, target, ep.weight));
    }
    ClusterLoadAssignment {
        cluster_name: cluster.to_string(),
        endpoints: by_locality
            .into_iter()
            .map(|(locality, lb_endpoints)| locality_group(locality, lb_endpoints))
            .collect(),
        ..Default::default()
    }
}

/// A one-endpoint assignment, for inbound clusters.
pub(crate) fn single(cluster: &str, addr: SocketAddr) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: cluster.to_string(),
        endpoints: vec![locality_group(
            "",
            vec![lb_endpoint(&addr.ip().to_string(), addr.port(), 1)],
        )],
        ..Default::default()
    }
}

fn lb_endpoint(address: &str, port: u16, weight: u32) -> LbEndpoint {
    LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(proto::socket_address(address, port)),
            ..Default::default()
        })),
        load_balancing_weight: Some(UInt32Value {
            value: weight.max(1),
        }),
        ..Default::default()
    }
}

fn locality_group(locality: &str, lb_endpoints: Vec<LbEndpoint>) -> LocalityLbEndpoints {
    let weight: u32 = lb_endpoints
        .iter()
        .map(|e| e.load_balancing_weight.as_ref().map_or(1, |w| w.value))
        .sum();
    LocalityLbEndpoints {
        locality: Some(parse_locality(locality)),
        load_balancing_weight: Some(UInt32Value {
            value: weight.max(1),
        }),
        lb_endpoints,
        ..Default::default()
    }
}

/// `region/zone/subzone`, any part possibly missing.
fn parse_locality(locality: &str) -> Locality {
    let mut parts = locality.splitn(3, '/');
    Locality {
        region: parts.next().unwrap_or_default().to_string(),
        zone: parts.next().unwrap_or_default().to_string(),
        sub_zone: parts.next().unwrap_or_default().to_string(),
    }
}
