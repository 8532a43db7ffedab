//! Routes: the outbound route configuration that picks a service port by
//! the request's Host, then applies the VirtualService in force for the
//! proxy, with Istio's semantics.
//!
//! ```text
//! service port ─► VirtualHost (domains) ─► VirtualService http[] in order
//!   http[i].match[j] that applies to this proxy and port ─► one Envoy Route
//!     matching (RouteMatch) + action (forward / redirect / direct response)
//!     + header operations + per-route fault and CORS configs
//! ```
//!
//! Routes are compiled per proxy namespace and labels (`exportTo`,
//! `sourceNamespace`, `sourceLabels`). A VirtualService that yields no route
//! for a port leaves that port to the default route, as in Istio; a route
//! that matches every request ends the list, since nothing after it could
//! match.

mod action;
mod cors;
mod destination;
mod encode;
mod fault;
mod headers;
mod matching;
mod retry;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use discovery::model::Resolution;
use discovery::{Port, Protocol, ServiceModel};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, VirtualHost, route::Action,
    route_action::ClusterSpecifier, route_action::MaxStreamDuration,
};
use envoy_types::pb::google::protobuf::UInt32Value;
use policy::networking::{HttpMatchRequest, VirtualService};

use super::view::{ScopeView, ServiceView};
use super::{names, proto};
use crate::hosts;
use destination::{Cluster, Scope};
pub(crate) use encode::Canonical;

/// The route configuration of the outbound listener, as seen from the
/// view's namespace and scope by a proxy with `labels` (only those some
/// `sourceLabels` reads matter): virtual hosts of admitted service ports
/// only, routed by imported VirtualServices only. It encodes the same way
/// every time.
pub(crate) fn outbound(view: &ScopeView, labels: &BTreeMap<String, String>) -> Canonical {
    Canonical::new(RouteConfiguration {
        name: names::OUTBOUND.to_string(),
        virtual_hosts: virtual_hosts(view, labels),
        max_direct_response_body_size_bytes: Some(UInt32Value {
            value: MAX_DIRECT_RESPONSE_BODY_BYTES,
        }),
        ..Default::default()
    })
}

/// The virtual hosts of [`outbound`], one per admitted service port, named
/// `HOST:PORT`, in the order of the outbound route configuration. A
/// proxyless gRPC client gets each in a route configuration of its own (see
/// `compile::grpc`), so both kinds of client route alike.
pub(crate) fn virtual_hosts(
    view: &ScopeView,
    labels: &BTreeMap<String, String>,
) -> Vec<VirtualHost> {
    let mut used_domains = BTreeSet::new();
    let mut virtual_hosts = Vec::new();
    for service_view in view.services() {
        let service = &service_view.service;
        if service.resolution == Resolution::Passthrough {
            continue;
        }
        let default_port = default_port(service);
        for port in service_view.ports().filter(|p| routable(p)) {
            let domains = domains(
                service,
                port,
                default_port,
                view.namespace(),
                &mut used_domains,
            );
            if domains.is_empty() {
                continue;
            }
            let scope = Scope { view, labels, port };
            let routes = service_view
                .virtual_service
                .as_ref()
                .map(|vs| virtual_service_routes(&scope, vs))
                .filter(|routes| !routes.is_empty())
                .unwrap_or_else(|| vec![default_route(&scope, service_view)]);
            virtual_hosts.push(VirtualHost {
                name: format!("{}:{}", service.hostname, port.number),
                domains,
                routes,
                ..Default::default()
            });
        }
    }
    virtual_hosts
}

/// The largest `directResponse` body the outbound route configuration may
/// carry: Istio's 1 MiB, the limit validation enforces, instead of Envoy's
/// 4 KiB default (beyond which Envoy rejects the whole configuration).
pub(crate) const MAX_DIRECT_RESPONSE_BODY_BYTES: u32 = 1024 * 1024;

/// The inbound listener's route: everything to the application, as Istio's
/// default inbound route does. No timeout, and none taken from a gRPC
/// client's `grpc-timeout` header; a request reset before the application
/// read it is retried, except on gRPC ports (where Istio leaves retries out,
/// since the condition does not suit streaming calls).
pub(crate) fn to_cluster(vhost: &str, cluster: String, protocol: Protocol) -> RouteConfiguration {
    let action = RouteAction {
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster)),
        timeout: Some(proto::duration(Duration::ZERO)),
        max_stream_duration: Some(MaxStreamDuration {
            max_stream_duration: Some(proto::duration(Duration::ZERO)),
            grpc_timeout_header_max: Some(proto::duration(Duration::ZERO)),
            ..Default::default()
        }),
        retry_policy: (protocol != Protocol::Grpc).then(retry::inbound_policy),
        ..Default::default()
    };
    RouteConfiguration {
        name: vhost.to_string(),
        virtual_hosts: vec![VirtualHost {
            name: vhost.to_string(),
            domains: vec!["*".to_string()],
            routes: vec![Route {
                name: "default".to_string(),
                r#match: Some(matching::prefix("/")),
                action: Some(Action::Route(action)),
                ..Default::default()
            }],
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Ports a plain-HTTP listener can route: anything not declared as raw TCP or TLS.
pub(crate) fn routable(port: &Port) -> bool {
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
    // A captured application may dial the service by its address, and say
    // so in the Host header.
    for address in &service.addresses {
        let host = match address {
            std::net::IpAddr::V4(ip) => ip.to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
        };
        if default_port == Some(port.number) {
            domains.push(host.clone());
        }
        domains.push(format!("{host}:{}", port.number));
    }
    domains.retain(|d| used.insert(d.clone()));
    domains
}

/// The route of a service port without a VirtualService: everything to the
/// service, with Istio's default retries and the DestinationRule's hashing.
fn default_route(scope: &Scope<'_>, service: &ServiceView) -> Route {
    let cluster = Cluster::service(service, scope.port.number);
    let hash_policy = cluster.hash_policy();
    let mut action = action::route_action(
        ClusterSpecifier::Cluster(cluster.name),
        None,
        Some(retry::default_policy(!hash_policy.is_empty())),
    );
    action.hash_policy = hash_policy;
    Route {
        name: "default".to_string(),
        r#match: Some(matching::prefix("/")),
        action: Some(Action::Route(action)),
        ..Default::default()
    }
}

/// One Envoy route per `match` entry of each http route, in order (first
/// match wins in both Istio and Envoy); a route without `match` matches
/// everything. Entries for another port, or for other source namespaces or
/// labels, are left out.
fn virtual_service_routes(scope: &Scope<'_>, vs: &VirtualService) -> Vec<Route> {
    let mut routes = Vec::new();
    for (i, http) in vs.spec.http.iter().enumerate() {
        let Some(compiled) = action::compile(scope, vs, http) else {
            continue;
        };
        let name = http
            .name
            .clone()
            .unwrap_or_else(|| format!("{}.{}.{i}", vs.meta.namespace, vs.meta.name));
        let entries: Vec<Option<&HttpMatchRequest>> = if http.matches.is_empty() {
            vec![None]
        } else {
            http.matches.iter().map(Some).collect()
        };
        for m in entries {
            if m.is_some_and(|m| {
                !matching::applies(m, scope.port.number, scope.namespace(), scope.labels)
            }) {
                continue;
            }
            let route_match = matching::route_match(m);
            let catch_all = matching::is_catch_all(&route_match);
            let mut route = Route {
                name: match m.and_then(|m| m.name.as_deref()) {
                    Some(entry) => format!("{name}.{entry}"),
                    None => name.clone(),
                },
                r#match: Some(route_match),
                action: Some(compiled.action.clone()),
                typed_per_filter_config: compiled.per_filter.clone(),
                ..Default::default()
            };
            compiled.headers.clone().apply_to_route(&mut route);
            routes.push(route);
            if catch_all {
                return routes;
            }
        }
    }
    routes
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use discovery::file::FileStore;
    use prost::Message;

    use super::*;
    use crate::proxy::{NodeMetadata, Proxy};
    use crate::snapshot::{SidecarScope, Snapshot};

    const CONFIG: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports:
  - {name: http, port: 80}
  - {name: http-admin, port: 9000}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: web, namespace: shop}
spec:
  hosts: [web]
  http:
  - name: canary
    match:
    - sourceLabels: {track: canary}
      port: 80
    fault:
      abort: {httpStatus: 503, percentage: {value: 50}}
    corsPolicy:
      allowOrigins: [{exact: "https://web.example"}]
    route:
    - destination: {host: web}
"#;

    /// The view of the shop namespace, without a Sidecar.
    fn view() -> ScopeView {
        let mut store = FileStore::default();
        store.apply(Path::new("config.yaml"), CONFIG);
        let config = store.config();
        assert!(config.diagnostics.is_empty(), "{:?}", config.diagnostics);
        ScopeView::resolve(&Snapshot::build(1, &config), "shop", &SidecarScope::mesh())
    }

    fn proxy(labels: &[(&str, &str)]) -> Proxy {
        Proxy::new(NodeMetadata {
            namespace: "shop".to_string(),
            workload: "client".to_string(),
            address: [127, 0, 0, 9].into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            service_account: None,
            app_address: None,
            app_ports: BTreeMap::new(),
            outbound_port: 15001,
            generator: Default::default(),
            sds: false,
            capture: false,
        })
    }

    fn routes_of<'a>(config: &'a RouteConfiguration, vhost: &str) -> Vec<&'a str> {
        config
            .virtual_hosts
            .iter()
            .find(|v| v.name == vhost)
            .map(|v| v.routes.iter().map(|r| r.name.as_str()).collect())
            .unwrap_or_default()
    }

    #[test]
    fn source_labels_and_port_pick_routes_per_proxy() {
        let view = view();
        let canary = outbound(&view, &proxy(&[("track", "canary")]).metadata.labels);
        assert_eq!(
            routes_of(&canary, "web.shop.svc.cluster.local:80"),
            ["canary"]
        );
        // The entry is for port 80 only: port 9000 keeps the default route.
        assert_eq!(
            routes_of(&canary, "web.shop.svc.cluster.local:9000"),
            ["default"]
        );
        let stable = outbound(&view, &proxy(&[("track", "stable")]).metadata.labels);
        assert_eq!(
            routes_of(&stable, "web.shop.svc.cluster.local:80"),
            ["default"]
        );
    }

    #[test]
    fn per_filter_configs_encode_the_same_every_time() {
        let view = view();
        let canary = proxy(&[("track", "canary")]);
        let first = outbound(&view, &canary.metadata.labels);
        let route = &first.virtual_hosts[0].routes[0];
        assert_eq!(route.typed_per_filter_config.len(), 2);
        let bytes = first.encode_to_vec();
        for _ in 0..10 {
            assert_eq!(
                outbound(&view, &canary.metadata.labels).encode_to_vec(),
                bytes
            );
        }
    }
}
