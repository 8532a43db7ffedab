//! Config for proxyless gRPC clients (node metadata `GENERATOR: grpc`): what
//! gRPC's own xDS client needs to resolve and balance `xds:///HOST:PORT`.
//!
//! ```text
//! xds:///reviews.shop.svc.cluster.local:9080
//!   LDS  Listener "reviews.shop.svc.cluster.local:9080"
//!          api_listener: HttpConnectionManager (RDS, fault, router last)
//!   RDS  RouteConfiguration "reviews.shop.svc.cluster.local:9080"
//!          the virtual host the outbound routes have for that port
//!   CDS  the outbound clusters those routes name  ─┐ shared with Envoy
//!   EDS  their load assignments                   ─┘ sidecars, unchanged
//! ```
//!
//! Clusters are the sidecars' with one difference: gRPC balances with
//! round robin or a hash ring only (it rejects a cluster whose `lb_policy`
//! is another), so Istio's default LEAST_REQUEST and RANDOM become
//! ROUND_ROBIN and MAGLEV becomes RING_HASH, as Istio's gRPC generator does.
//!
//! A gRPC client names each resource it wants, so the listener and route
//! configuration of every admitted service port are compiled and the
//! subscription picks. Routes come from the same route compiler as an Envoy
//! sidecar's outbound routes (VirtualService matches, weights, retries,
//! faults), so a split applies to both kinds of client. A proxyless client
//! has no listeners of its own: it only sends, so it gets no inbound
//! listeners or clusters.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{LbConfig, LbPolicy};
use envoy_types::pb::envoy::config::listener::v3::{ApiListener, Listener};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::MaxStreamDuration;
use envoy_types::pb::envoy::config::route::v3::{RouteConfiguration, VirtualHost};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager::RouteSpecifier, http_filter,
};
use envoy_types::pb::google::protobuf::Any;

use super::proto::{self, filters};
use super::view::ScopeView;
use super::{insert, route};
use crate::resources::{ResourceMap, ResourceSet, ResourceType};

/// A proxyless client's listeners and route configurations: one of each per
/// admitted service port, both named `HOST:PORT`.
#[derive(Debug, Default)]
pub(crate) struct GrpcResources {
    pub(crate) listeners: ResourceSet,
    pub(crate) routes: ResourceSet,
}

/// The HTTP filters gRPC's xDS client runs: it rejects a listener with a
/// filter it does not know (CORS, for one) or without the router last.
/// Fault injection is one it knows, so VirtualService faults apply.
const HTTP_FILTERS: [&str; 2] = [filters::FAULT, filters::ROUTER];

/// Compiles the listeners and routes of a proxyless client with `labels`
/// of the view's namespace and scope.
pub(crate) fn compile(view: &ScopeView, labels: &BTreeMap<String, String>) -> GrpcResources {
    let mut listeners = ResourceMap::new();
    let mut routes = ResourceMap::new();
    for vhost in route::virtual_hosts(view, labels) {
        let name = vhost.name.clone();
        insert(
            &mut listeners,
            ResourceType::Listener,
            &name,
            &api_listener(&name),
        );
        let config = route::Canonical::new(RouteConfiguration {
            name: name.clone(),
            virtual_hosts: vec![for_grpc(vhost)],
            ..Default::default()
        });
        insert(&mut routes, ResourceType::Route, &name, &config);
    }
    GrpcResources {
        listeners: listeners.into(),
        routes: routes.into(),
    }
}

/// An outbound cluster as a gRPC client takes it: a load balancer gRPC has
/// in place of one it lacks.
pub(crate) fn cluster(mut cluster: Cluster) -> Cluster {
    let policy = match LbPolicy::try_from(cluster.lb_policy) {
        Ok(LbPolicy::LeastRequest | LbPolicy::Random) => LbPolicy::RoundRobin,
        Ok(LbPolicy::Maglev) => LbPolicy::RingHash,
        _ => return cluster,
    };
    cluster.lb_policy = policy as i32;
    // The old policy's settings (a Maglev table size, least-request choice
    // count) do not carry over; the ring takes gRPC's defaults.
    if !matches!(cluster.lb_config, Some(LbConfig::RingHashLbConfig(_))) {
        cluster.lb_config = None;
    }
    cluster
}

/// The listener a `xds:///NAME` target asks for: no address, an HTTP
/// connection manager as its API listener, routes over RDS by the same name.
fn api_listener(name: &str) -> Listener {
    let hcm = HttpConnectionManager {
        stat_prefix: name.to_string(),
        route_specifier: Some(RouteSpecifier::Rds(Rds {
            config_source: Some(proto::ads()),
            route_config_name: name.to_string(),
        })),
        http_filters: HTTP_FILTERS
            .iter()
            .map(|&filter| http_filter(filter))
            .collect(),
        ..Default::default()
    };
    Listener {
        name: name.to_string(),
        api_listener: Some(ApiListener {
            api_listener: Some(proto::any(hcm)),
        }),
        ..Default::default()
    }
}

fn http_filter(name: &str) -> HttpFilter {
    let config: Any = if name == filters::ROUTER {
        proto::any(Router::default())
    } else {
        proto::any(HttpFault::default())
    };
    HttpFilter {
        name: name.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

/// An outbound virtual host as a gRPC client takes it: per-filter configs
/// only for the filters its listener runs (gRPC rejects a route
/// configuration whose per-filter config names a filter type it does not
/// know, such as a VirtualService's CORS policy), and a VirtualService
/// timeout as `max_stream_duration`, the one timeout gRPC reads (it caps
/// each call's deadline).
fn for_grpc(mut vhost: VirtualHost) -> VirtualHost {
    let known = |name: &String| HTTP_FILTERS.contains(&name.as_str());
    vhost.typed_per_filter_config.retain(|name, _| known(name));
    for route in &mut vhost.routes {
        route.typed_per_filter_config.retain(|name, _| known(name));
        if let Some(Action::Route(action)) = &mut route.action
            && let Some(timeout) = action.timeout.filter(|t| t.seconds > 0 || t.nanos > 0)
        {
            action.max_stream_duration = Some(MaxStreamDuration {
                max_stream_duration: Some(timeout),
                ..Default::default()
            });
        }
    }
    vhost
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use discovery::file::FileStore;
    use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
    use prost::{Message, Name};

    use super::*;
    use crate::proxy::{NodeMetadata, Proxy};
    use crate::snapshot::{SidecarScope, Snapshot};

    const MESH: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: grpc, port: 9080}, {name: tcp-db, port: 5432}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - corsPolicy:
      allowOrigins: [{exact: "https://shop.example"}]
    fault:
      abort: {httpStatus: 503, percentage: {value: 1}}
    timeout: 2s
    route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
"#;

    fn compiled() -> GrpcResources {
        let mut store = FileStore::default();
        store.apply(Path::new("mesh.yaml"), MESH);
        let config = store.config();
        assert!(config.diagnostics.is_empty(), "{:?}", config.diagnostics);
        let snapshot = Snapshot::build(1, &config);
        let proxy = Proxy::new(NodeMetadata::grpc("shop", "client", [127, 0, 0, 9].into()));
        let view = ScopeView::resolve(&snapshot, "shop", &SidecarScope::mesh());
        compile(&view, &proxy.metadata.labels)
    }

    const NAME: &str = "reviews.shop.svc.cluster.local:9080";

    #[test]
    fn each_routable_port_gets_an_api_listener_and_routes_of_its_name() {
        let grpc = compiled();
        let listeners: Vec<&String> = grpc.listeners.keys().collect();
        assert_eq!(listeners, [NAME]);
        let routes: Vec<&String> = grpc.routes.keys().collect();
        assert_eq!(routes, [NAME]);

        let listener = Listener::decode(grpc.listeners[NAME].value()).unwrap();
        assert!(listener.address.is_none());
        assert!(listener.filter_chains.is_empty());
        let any = listener.api_listener.unwrap().api_listener.unwrap();
        assert_eq!(any.type_url, HttpConnectionManager::type_url());
        let hcm = HttpConnectionManager::decode(any.value.as_slice()).unwrap();
        let Some(RouteSpecifier::Rds(rds)) = hcm.route_specifier else {
            panic!("routes over RDS");
        };
        assert_eq!(rds.route_config_name, NAME);
        let filters: Vec<&str> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(filters, [filters::FAULT, filters::ROUTER]);
    }

    #[test]
    fn clusters_take_load_balancers_grpc_has() {
        let with = |policy: LbPolicy, config: Option<LbConfig>| Cluster {
            lb_policy: policy as i32,
            lb_config: config,
            ..Default::default()
        };
        let maglev = LbConfig::MaglevLbConfig(Default::default());
        let ring = LbConfig::RingHashLbConfig(Default::default());
        let cases = [
            (
                with(LbPolicy::LeastRequest, None),
                LbPolicy::RoundRobin,
                None,
            ),
            (with(LbPolicy::Random, None), LbPolicy::RoundRobin, None),
            (with(LbPolicy::RoundRobin, None), LbPolicy::RoundRobin, None),
            (
                with(LbPolicy::Maglev, Some(maglev)),
                LbPolicy::RingHash,
                None,
            ),
            (
                with(LbPolicy::RingHash, Some(ring.clone())),
                LbPolicy::RingHash,
                Some(ring),
            ),
        ];
        for (input, policy, config) in cases {
            let output = cluster(input.clone());
            assert_eq!(output.lb_policy, policy as i32, "{input:?}");
            assert_eq!(output.lb_config, config, "{input:?}");
        }
    }

    #[test]
    fn routes_keep_the_split_and_only_filters_grpc_runs() {
        let grpc = compiled();
        let config = RouteConfiguration::decode(grpc.routes[NAME].value()).unwrap();
        assert_eq!(config.virtual_hosts.len(), 1);
        let vhost = &config.virtual_hosts[0];
        assert!(
            vhost.domains.iter().any(|d| d == NAME),
            "{:?}",
            vhost.domains
        );
        let route = &vhost.routes[0];
        let Some(Action::Route(action)) = &route.action else {
            panic!("a forwarding route: {route:?}");
        };
        let Some(ClusterSpecifier::WeightedClusters(split)) = &action.cluster_specifier else {
            panic!("a weighted split: {action:?}");
        };
        let weights: Vec<(&str, u32)> = split
            .clusters
            .iter()
            .map(|c| (c.name.as_str(), c.weight.map_or(0, |w| w.value)))
            .collect();
        assert_eq!(
            weights,
            [
                ("outbound|9080|v1|reviews.shop.svc.cluster.local", 80),
                ("outbound|9080|v2|reviews.shop.svc.cluster.local", 20),
            ]
        );
        let per_filter: Vec<&String> = route.typed_per_filter_config.keys().collect();
        assert_eq!(per_filter, [filters::FAULT]);
        let limit = action.max_stream_duration.as_ref().unwrap();
        let limit = limit.max_stream_duration.unwrap();
        assert_eq!((limit.seconds, limit.nanos), (2, 0));
    }
}
