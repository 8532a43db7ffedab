//! The consistency check: everything one resource names exists in the same
//! proxy's resources (go-control-plane's `Consistent()`), so Envoy never waits
//! forever for a route or an endpoint that will not come.

use envoy_types::pb::envoy::config::cluster::v3::{Cluster, cluster::ClusterDiscoveryType};
use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, http_connection_manager::RouteSpecifier,
};
use prost::Message;

use crate::resources::{ProxyResources, Resource, ResourceType};

/// A compiled set that failed the consistency check, with every dangling
/// reference found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("inconsistent config: {}", problems.join("; "))]
pub struct Inconsistent {
    pub problems: Vec<String>,
}

/// Lists every dangling reference: RDS names no route configuration has, and
/// EDS clusters without a load assignment. Empty when consistent.
pub fn verify(resources: &ProxyResources) -> Vec<String> {
    let mut problems = listeners(resources);
    problems.extend(clusters(
        resources
            .get(ResourceType::Cluster)
            .values()
            .map(|r| r.as_ref()),
        |name| resources.get(ResourceType::Endpoint).contains_key(name),
    ));
    problems
}

/// The listeners' part of [`verify`]: every RDS name a listener's HTTP
/// connection manager uses has a route configuration in the set.
pub(super) fn listeners(resources: &ProxyResources) -> Vec<String> {
    let mut problems = Vec::new();
    let routes = resources.get(ResourceType::Route);
    for listener in resources.get(ResourceType::Listener).values() {
        let Ok(listener) = Listener::decode(listener.value()) else {
            problems.push(format!("listener {} does not decode", listener.name));
            continue;
        };
        // The filters of its chains, and the API listener of a proxyless
        // client's listener.
        let configs = listener
            .filter_chains
            .iter()
            .flat_map(|chain| &chain.filters)
            .filter_map(|f| match &f.config_type {
                Some(filter::ConfigType::TypedConfig(any)) => Some(any),
                _ => None,
            })
            .chain(
                listener
                    .api_listener
                    .as_ref()
                    .and_then(|api| api.api_listener.as_ref()),
            );
        for any in configs {
            let Ok(hcm) = HttpConnectionManager::decode(any.value.as_slice()) else {
                continue;
            };
            if let Some(RouteSpecifier::Rds(rds)) = &hcm.route_specifier
                && !routes.contains_key(&rds.route_config_name)
            {
                problems.push(format!(
                    "listener {} uses route configuration {} that does not exist",
                    listener.name, rds.route_config_name
                ));
            }
        }
    }
    problems
}

/// The clusters' part of [`verify`]: every EDS cluster among `clusters` has
/// its load assignment in `endpoints`.
pub(super) fn clusters<'a>(
    clusters: impl IntoIterator<Item = &'a Resource>,
    has_endpoints: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    for cluster in clusters {
        let Ok(cluster) = Cluster::decode(cluster.value()) else {
            problems.push(format!("cluster {} does not decode", cluster.name));
            continue;
        };
        let eds = matches!(cluster.cluster_discovery_type, Some(ClusterDiscoveryType::Type(t)) if t == envoy_types::pb::envoy::config::cluster::v3::cluster::DiscoveryType::Eds as i32);
        if eds {
            let name = cluster
                .eds_cluster_config
                .as_ref()
                .map(|c| c.service_name.as_str())
                .filter(|n| !n.is_empty())
                .unwrap_or(&cluster.name);
            if !has_endpoints(name) {
                problems.push(format!(
                    "cluster {} has no load assignment {name}",
                    cluster.name
                ));
            }
        }
    }
    problems
}
