//! Protocol tests: the state machine without sockets, and the server over loopback.

mod delta;
mod node;
mod push;
mod server;
mod sotw;
mod status;

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;

use crate::resources::{ProxyResources, Resource, ResourceMap, ResourceType};

pub(super) const CDS: &str = ResourceType::Cluster.type_url();
pub(super) const EDS: &str = ResourceType::Endpoint.type_url();
pub(super) const LDS: &str = ResourceType::Listener.type_url();
pub(super) const RDS: &str = ResourceType::Route.type_url();

/// A cluster whose content (and so version) depends on `tag`.
pub(super) fn cluster(name: &str, tag: u32) -> Arc<Resource> {
    let c = Cluster {
        name: name.to_string(),
        alt_stat_name: format!("v{tag}"),
        ..Default::default()
    };
    Arc::new(Resource::new(ResourceType::Cluster, name, &c))
}

pub(super) fn endpoint(name: &str, tag: u32) -> Arc<Resource> {
    let e = ClusterLoadAssignment {
        cluster_name: format!("{name}#{tag}"),
        ..Default::default()
    };
    Arc::new(Resource::new(ResourceType::Endpoint, name, &e))
}

pub(super) fn listener(name: &str, tag: u32) -> Arc<Resource> {
    let l = Listener {
        name: name.to_string(),
        stat_prefix: format!("v{tag}"),
        ..Default::default()
    };
    Arc::new(Resource::new(ResourceType::Listener, name, &l))
}

pub(super) fn route(name: &str, tag: u32) -> Arc<Resource> {
    let r = RouteConfiguration {
        name: name.to_string(),
        internal_only_headers: vec![format!("v{tag}")],
        ..Default::default()
    };
    Arc::new(Resource::new(ResourceType::Route, name, &r))
}

fn map(items: &[Arc<Resource>]) -> Arc<ResourceMap> {
    Arc::new(items.iter().map(|r| (r.name.clone(), r.clone())).collect())
}

/// A compiled set, built by hand.
pub(super) fn resources(
    clusters: &[Arc<Resource>],
    endpoints: &[Arc<Resource>],
    listeners: &[Arc<Resource>],
    routes: &[Arc<Resource>],
) -> Arc<ProxyResources> {
    Arc::new(ProxyResources::new(
        map(clusters),
        map(endpoints),
        map(listeners),
        map(routes),
    ))
}
