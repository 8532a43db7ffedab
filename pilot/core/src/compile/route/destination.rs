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
use std::sync::Arc;

use discovery::Port;
use envoy_types::pb::envoy::config::route::v3::{
    WeightedCluster, route_action::ClusterSpecifier, route_action::HashPolicy,
    weighted_cluster::ClusterWeight,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use policy::networking::{Destination, DestinationRule, HttpRouteDestination};

use super::headers::HeaderOps;
use crate::compile::view::{ScopeView, ServiceView};
use crate::compile::{names, traffic_policy};

/// What routes are compiled for: one service port, as seen by proxies of
/// the view's namespace and scope, with some labels.
#[derive(Clone, Copy, Debug)]
pub(super) struct Scope<'a> {
    pub(super) view: &'a ScopeView,
    pub(super) labels: &'a BTreeMap<String, String>,
    pub(super) port: &'a Port,
}

impl Scope<'_> {
    pub(super) fn namespace(&self) -> &str {
        self.view.namespace()
    }
}

/// One destination, resolved to a cluster.
#[derive(Clone, Debug)]
pub(super) struct Cluster {
    pub(super) name: String,
    subset: Option<String>,
    port: u16,
    /// The DestinationRule in force for the destination's host.
    rule: Option<Arc<DestinationRule>>,
}

impl Cluster {
    /// The cluster of `destination`, whose host is relative to `namespace`
    /// (the VirtualService's).
    pub(super) fn resolve(
        scope: &Scope<'_>,
        namespace: &str,
        destination: &Destination,
    ) -> Cluster {
        // The view resolved every destination of its VirtualServices; any
        // other host would be taken as written, with no service behind it.
        let target = scope.view.target(namespace, &destination.host);
        let host = target.map_or(destination.host.as_str(), |t| t.host.as_str());
        let ports = target.map(|t| t.ports.as_slice()).unwrap_or_default();
        let port = destination
            .port
            .unwrap_or_else(|| default_port(ports, scope.port));
        Cluster {
            name: names::outbound_cluster(port, destination.subset.as_deref(), host),
            subset: destination.subset.clone(),
            port,
            rule: target.and_then(|t| t.rule.clone()),
        }
    }

    /// The whole service behind a virtual host.
    pub(super) fn service(service: &ServiceView, port: u16) -> Cluster {
        Cluster {
            name: names::outbound_cluster(port, None, &service.service.hostname),
            subset: None,
            port,
            rule: service.rule.clone(),
        }
    }

    /// The hash policy for requests to this cluster (empty: no hashing).
    pub(super) fn hash_policy(&self) -> Vec<HashPolicy> {
        traffic_policy::hash_policies_of(&traffic_policy::effective(
            self.rule.as_deref(),
            self.subset.as_deref(),
            self.port,
        ))
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
        .flat_map(|(c, _, _)| c.hash_policy())
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
/// request came in on if the service has it, else its lowest port (`ports`
/// are the destination service's; none when no service has the host).
fn default_port(ports: &[u16], port: &Port) -> u16 {
    match ports {
        [only] => *only,
        ports if ports.contains(&port.number) => port.number,
        ports => ports.iter().copied().min().unwrap_or(port.number),
    }
}
