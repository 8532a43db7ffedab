//! Destinations: where an http route (or its mirror) sends traffic, as
//! Envoy cluster names, weighted clusters and the consistent-hash policy of
//! the DestinationRule in force for them.
//!
//! ```text
//! destination {host, subset, port} ─► outbound|PORT|SUBSET|FQDN
//! route[] (weights, headers) ──────► one cluster, or weighted clusters
//! DestinationRule consistentHash ──► RouteAction.hash_policy, one entry
//!                                    per destination that hashes, in order
//! ```

use std::collections::BTreeMap;

use discovery::{Port, Registry};
use envoy_types::pb::envoy::config::route::v3::{
    WeightedCluster, route_action::ClusterSpecifier, route_action::HashPolicy,
    weighted_cluster::ClusterWeight,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use policy::networking::{Destination, HttpRouteDestination};

use super::headers::HeaderOps;
use crate::compile::{names, traffic_policy};
use crate::hosts;
use crate::snapshot::Snapshot;

/// What routes are compiled for: one service port, as seen by proxies of
/// one namespace with some labels.
#[derive(Clone, Copy, Debug)]
pub(super) struct Scope<'a> {
    pub(super) snapshot: &'a Snapshot,
    pub(super) namespace: &'a str,
    pub(super) labels: &'a BTreeMap<String, String>,
    pub(super) port: &'a Port,
}

/// One destination, resolved to a cluster.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Cluster {
    pub(super) name: String,
    host: String,
    subset: Option<String>,
    port: u16,
}

impl Cluster {
    /// The cluster of `destination`, whose host is relative to `namespace`
    /// (the VirtualService's).
    pub(super) fn resolve(
        scope: &Scope<'_>,
        namespace: &str,
        destination: &Destination,
    ) -> Cluster {
        let registry = &scope.snapshot.registry;
        let host = hosts::resolve(registry, &destination.host, namespace);
        let port = destination
            .port
            .unwrap_or_else(|| default_port(registry, &host, scope.port));
        Cluster {
            name: names::outbound_cluster(port, destination.subset.as_deref(), &host),
            subset: destination.subset.clone(),
            host,
            port,
        }
    }

    /// The whole service behind a virtual host.
    pub(super) fn service(host: &str, port: u16) -> Cluster {
        Cluster {
            name: names::outbound_cluster(port, None, host),
            host: host.to_string(),
            subset: None,
            port,
        }
    }

    /// The hash policy for requests to this cluster (empty: no hashing).
    pub(super) fn hash_policy(&self, scope: &Scope<'_>) -> Vec<HashPolicy> {
        traffic_policy::hash_policies(
            scope.snapshot,
            scope.namespace,
            &self.host,
            self.subset.as_deref(),
            self.port,
        )
    }
}

/// An http route's destinations, compiled.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Forward {
    pub(super) clusters: ClusterSpecifier,
    /// The hash policies of the destinations, in order (empty: no hashing).
    pub(super) hash_policy: Vec<HashPolicy>,
    /// A single destination's header operations, for the route itself.
    pub(super) headers: HeaderOps,
}

/// The clusters of `route`. Destinations with weight 0 are left out when
/// there are others, as Istio does; `None` if nothing is left.
pub(super) fn forward(
    scope: &Scope<'_>,
    namespace: &str,
    route: &[HttpRouteDestination],
) -> Option<Forward> {
    let mut targets: Vec<(Cluster, u32, HeaderOps)> = Vec::new();
    for dest in route {
        let weight = dest.weight.unwrap_or(100);
        if weight == 0 && route.len() > 1 {
            continue;
        }
        let headers = dest.headers.as_ref().map(HeaderOps::of).unwrap_or_default();
        targets.push((
            Cluster::resolve(scope, namespace, &dest.destination),
            weight,
            headers,
        ));
    }
    if targets.is_empty() {
        return None;
    }
    // Each destination's hash policy, in route order, as Istio appends them:
    // Envoy combines them into one hash, so a split whose destinations hash
    // differently still hashes (on all their keys) rather than not at all.
    let hash_policy = targets
        .iter()
        .flat_map(|(c, _, _)| c.hash_policy(scope))
        .collect();

    if targets.len() == 1 {
        let (cluster, _, headers) = targets.pop()?;
        return Some(Forward {
            clusters: ClusterSpecifier::Cluster(cluster.name),
            hash_policy,
            headers,
        });
    }
    let clusters = targets
        .into_iter()
        .map(|(cluster, weight, headers)| {
            let mut w = ClusterWeight {
                name: cluster.name,
                weight: Some(UInt32Value { value: weight }),
                ..Default::default()
            };
            headers.apply_to_weight(&mut w);
            w
        })
        .collect();
    Some(Forward {
        clusters: ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters,
            ..Default::default()
        }),
        hash_policy,
        headers: HeaderOps::default(),
    })
}

/// A destination without a port: the service's only port, else the port the
/// request came in on if the service has it, else its lowest port.
fn default_port(registry: &Registry, host: &str, port: &Port) -> u16 {
    let Some(service) = registry.services.get(host) else {
        return port.number;
    };
    match service.ports.as_slice() {
        [only] => only.number,
        ports if ports.iter().any(|p| p.number == port.number) => port.number,
        ports => ports.iter().map(|p| p.number).min().unwrap_or(port.number),
    }
}
