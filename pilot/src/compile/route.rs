//! Routes: the outbound route configuration that picks a service by the
//! request's Host, then applies the service's VirtualService, if any.
//!
//! ```text
//! VirtualService http[] ──► RoutePlan (match + weighted destinations) ──► Envoy Route
//! ```

use std::collections::BTreeSet;
use std::time::Duration;

use discovery::model::Resolution;
use discovery::{Port, Protocol, Registry, ServiceModel};
use envoy_types::pb::envoy::config::route::v3::{
    RetryPolicy, Route, RouteAction, RouteConfiguration, RouteMatch, VirtualHost, WeightedCluster,
    retry_policy::RetryHostPredicate, retry_policy::retry_host_predicate, route::Action,
    route_action::ClusterSpecifier, route_match::PathSpecifier, weighted_cluster::ClusterWeight,
};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::r#type::matcher::v3::RegexMatcher;
use envoy_types::pb::google::protobuf::UInt32Value;
use policy::networking::{HttpMatchRequest, HttpRoute, StringMatch, VirtualService};

use super::names;
use super::proto;
use crate::hosts;
use crate::proxy::Proxy;
use crate::snapshot::Snapshot;

/// The route configuration of the outbound listener, as seen from `proxy`'s namespace.
pub(crate) fn outbound(snapshot: &Snapshot, proxy: &Proxy) -> RouteConfiguration {
    let mut used_domains = BTreeSet::new();
    let mut virtual_hosts = Vec::new();
    for service in snapshot.registry.services.values() {
        if service.resolution == Resolution::Passthrough {
            continue;
        }
        let default_port = default_port(service);
        for port in service.ports.iter().filter(|p| routable(p)) {
            let domains = domains(
                service,
                port,
                default_port,
                &proxy.namespace,
                &mut used_domains,
            );
            if domains.is_empty() {
                continue;
            }
            let vs = snapshot.virtual_service(&service.hostname, &proxy.namespace);
            virtual_hosts.push(VirtualHost {
                name: format!("{}:{}", service.hostname, port.number),
                domains,
                routes: match vs {
                    Some(vs) => virtual_service_routes(&snapshot.registry, vs, port),
                    None => vec![default_route(service, port)],
                },
                ..Default::default()
            });
        }
    }
    RouteConfiguration {
        name: names::OUTBOUND.to_string(),
        virtual_hosts,
        ..Default::default()
    }
}

/// A single catch-all route to one cluster, for inbound listeners.
pub(crate) fn to_cluster(vhost: &str, cluster: String) -> RouteConfiguration {
    RouteConfiguration {
        name: vhost.to_string(),
        virtual_hosts: vec![VirtualHost {
            name: vhost.to_string(),
            domains: vec!["*".to_string()],
            routes: vec![Route {
                r#match: Some(prefix("/")),
                action: Some(Action::Route(action(
                    ClusterSpecifier::Cluster(cluster),
                    false,
                ))),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Ports a plain-HTTP listener can route: anything not declared as raw TCP or TLS.
fn routable(port: &Port) -> bool {
    !matches!(
        port.protocol,
        Protocol::Tcp | Protocol::Tls | Protocol::Https
    )
}

/// The port that Host names without `:port` reach: 80 if the service has it,
/// else its lowest routable port.
fn default_port(service: &ServiceModel) -> Option<u16> {
    let routable = || service.ports.iter().filter(|p| routable(p));
    routable()
        .find(|p| p.number == 80)
        .or_else(|| routable().min_by_key(|p| p.number))
        .map(|p| p.number)
}

/// Host header values that reach this service port; a domain already claimed
/// by an earlier virtual host is left out, since Envoy requires them unique.
fn domains(
    service: &ServiceModel,
    port: &Port,
    default_port: Option<u16>,
    namespace: &str,
    used: &mut BTreeSet<String>,
) -> Vec<String> {
    let mut domains = Vec::new();
    for name in hosts::names_for(service, namespace) {
        if default_port == Some(port.number) {
            domains.push(name.clone());
        }
        domains.push(format!("{name}:{}", port.number));
    }
    domains.retain(|d| used.insert(d.clone()));
    domains
}

fn default_route(service: &ServiceModel, port: &Port) -> Route {
    let cluster = names::outbound_cluster(port.number, None, &service.hostname);
    Route {
        name: "default".to_string(),
        r#match: Some(prefix("/")),
        action: Some(Action::Route(action(
            ClusterSpecifier::Cluster(cluster),
            true,
        ))),
        ..Default::default()
    }
}

/// One Envoy route per `match` entry of each http route, in order (first match
/// wins in both Istio and Envoy); a route without `match` matches everything.
fn virtual_service_routes(registry: &Registry, vs: &VirtualService, port: &Port) -> Vec<Route> {
    let mut routes = Vec::new();
    for (i, http) in vs.spec.http.iter().enumerate() {
        let Some(specifier) = destinations(registry, vs, http, port) else {
            continue;
        };
        let name = http
            .name
            .clone()
            .unwrap_or_else(|| format!("{}.{}.{i}", vs.meta.namespace, vs.meta.name));
        let matches: Vec<Option<&HttpMatchRequest>> = if http.matches.is_empty() {
            vec![None]
        } else {
            http.matches.iter().map(Some).collect()
        };
        for m in matches {
            routes.push(Route {
                name: name.clone(),
                r#match: Some(route_match(m)),
                action: Some(Action::Route(action(specifier.clone(), true))),
                ..Default::default()
            });
        }
    }
    routes
}

fn route_match(m: Option<&HttpMatchRequest>) -> RouteMatch {
    let Some(uri) = m.and_then(|m| m.uri.as_ref()) else {
        return prefix("/");
    };
    let path = match uri {
        StringMatch::Exact(p) => PathSpecifier::Path(p.clone()),
        StringMatch::Prefix(p) => PathSpecifier::Prefix(p.clone()),
        StringMatch::Regex(r) => PathSpecifier::SafeRegex(RegexMatcher {
            regex: r.clone(),
            ..Default::default()
        }),
    };
    RouteMatch {
        path_specifier: Some(path),
        ..Default::default()
    }
}

fn prefix(p: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix(p.to_string())),
        ..Default::default()
    }
}

/// The cluster or weighted clusters an http route sends to. Destinations with
/// weight 0 are left out, as Istio does; `None` if nothing is left.
fn destinations(
    registry: &Registry,
    vs: &VirtualService,
    http: &HttpRoute,
    port: &Port,
) -> Option<ClusterSpecifier> {
    let mut weighted: Vec<(String, u32)> = Vec::new();
    for dest in &http.route {
        let weight = dest.weight.unwrap_or(100);
        if weight == 0 && http.route.len() > 1 {
            continue;
        }
        let d = &dest.destination;
        let host = hosts::resolve(registry, &d.host, &vs.meta.namespace);
        let number = d
            .port
            .unwrap_or_else(|| destination_port(registry, &host, port));
        weighted.push((
            names::outbound_cluster(number, d.subset.as_deref(), &host),
            weight,
        ));
    }
    match weighted.len() {
        0 => None,
        1 => weighted
            .pop()
            .map(|(cluster, _)| ClusterSpecifier::Cluster(cluster)),
        _ => Some(ClusterSpecifier::WeightedClusters(WeightedCluster {
            clusters: weighted
                .into_iter()
                .map(|(name, weight)| ClusterWeight {
                    name,
                    weight: Some(UInt32Value { value: weight }),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        })),
    }
}

/// A destination without a port: the service's only port, else the port the
/// request came in on if the service has it, else its lowest port.
fn destination_port(registry: &Registry, host: &str, port: &Port) -> u16 {
    let Some(service) = registry.services.get(host) else {
        return port.number;
    };
    match service.ports.as_slice() {
        [only] => only.number,
        ports if ports.iter().any(|p| p.number == port.number) => port.number,
        ports => ports.iter().map(|p| p.number).min().unwrap_or(port.number),
    }
}

/// Istio's defaults: no route timeout, and two retries on connection failures
/// and 503s, each to a host not tried before.
fn action(cluster: ClusterSpecifier, retries: bool) -> RouteAction {
    RouteAction {
        cluster_specifier: Some(cluster),
        timeout: Some(proto::duration(Duration::ZERO)),
        retry_policy: retries.then(default_retry_policy),
        ..Default::default()
    }
}

fn default_retry_policy() -> RetryPolicy {
    RetryPolicy {
        retry_on: "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
            .to_string(),
        num_retries: Some(UInt32Value { value: 2 }),
        retriable_status_codes: vec![503],
        retry_host_predicate: vec![RetryHostPredicate {
            name: "envoy.retry_host_predicates.previous_hosts".to_string(),
            config_type: Some(retry_host_predicate::ConfigType::TypedConfig(proto::any(
                PreviousHostsPredicate::default(),
            ))),
        }],
        host_selection_retry_max_attempts: 5,
        ..Default::default()
    }
}
