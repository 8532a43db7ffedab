//! `bowline explain`: what a workload's sidecar would do with one request,
//! read from the config compiled for it (no traffic sent), each step tied
//! to the object and field it came from. Pure.
//!
//! ```text
//! request ──► the outbound listener ──► its route configuration ──► the virtual host (Envoy's domain order)
//!         ──► the first route that matches (path, headers, query) ──► its action: clusters and weights,
//!             timeout and retries, or a redirect / direct response
//!         ──► per cluster: its endpoints (address, weight, locality) and the TLS it speaks
//! ```
//!
//! Matching follows Envoy's: domains exact first, then `*.suffix`, then
//! `prefix.*` (longest first), then `*`; routes in order, the first whose
//! path, headers and query parameters all match. At each endpoint with a
//! sidecar of the mesh, the destination's inbound listener decides: the
//! chain for mutual TLS or plaintext (its PeerAuthentication), then its RBAC
//! filters (DENY, then ALLOW), evaluated against the caller's identity and
//! address and the request. A token the request carries (`-H
//! 'authorization: Bearer ...'`, or where a rule's `fromHeaders` or
//! `fromParams` say) goes through the destination's JWT filter first (see
//! `jwt`): refused with 401 if it does not verify, else its request
//! principal and claims are what the RBAC filters read.
//!
//! For a workload whose traffic is captured (`INTERCEPTION_MODE:
//! REDIRECT`), the application dials the address the URL's host resolves
//! to (a service's cluster IP or ServiceEntry address), and the virtual
//! outbound listener's chain for that address and port decides: HTTP goes
//! on into the same routes, TCP straight to the service's cluster, and an
//! address no chain claims out through the passthrough cluster.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::rbac::v3::{Permission, Principal, rbac::Action as RbacAction};
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::query_parameter_matcher::QueryParameterMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, Route, RouteConfiguration, RouteMatch, VirtualHost,
};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac as HttpRbac;
use envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher;
use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
use prost::Message;
use serde::Serialize;

use crate::compile::{compile, names};
use crate::proxy::Proxy;
use crate::resources::{ProxyResources, ResourceType};
use crate::snapshot::Snapshot;

/// The request to explain.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// `http` or `https`.
    pub scheme: String,
    /// `host[:port]`, as the Host header says it.
    pub authority: String,
    /// The path with its query string.
    pub path: String,
    /// Other headers, names in lower case.
    pub headers: Vec<(String, String)>,
    /// The time the request is made, Unix seconds: what a JWT's `exp` and
    /// `nbf` are checked against. `Request::get` leaves it 0; the caller
    /// sets it.
    pub now: u64,
}

impl Request {
    /// `GET URL` with `headers` (`name: value`).
    pub fn get(url: &str, headers: &[(String, String)]) -> Result<Request, String> {
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| format!("{url:?} is not a URL (scheme://host[:port]/path)"))?;
        let (authority, path) = match rest.find('/') {
            Some(at) => (&rest[..at], &rest[at..]),
            None => (rest, "/"),
        };
        if authority.is_empty() {
            return Err(format!("{url:?} names no host"));
        }
        Ok(Request {
            method: "GET".to_string(),
            scheme: scheme.to_string(),
            authority: authority.to_string(),
            path: path.to_string(),
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
                .collect(),
            now: 0,
        })
    }

    fn header(&self, name: &str) -> Option<&str> {
        match name {
            ":method" => Some(&self.method),
            ":authority" | "host" => Some(&self.authority),
            ":scheme" => Some(&self.scheme),
            ":path" => Some(&self.path),
            _ => self
                .headers
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_str()),
        }
    }

    fn path_only(&self) -> &str {
        self.path.split(['?', '#']).next().unwrap_or("/")
    }

    fn query(&self, name: &str) -> Option<&str> {
        let query = self.path.split_once('?')?.1;
        query.split('&').find_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (k == name).then_some(v)
        })
    }
}

/// One step of the explanation: what was decided, and from which object
/// and field, when one decided it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Step {
    pub step: &'static str,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
}

fn step(name: &'static str, detail: impl Into<String>, source: Option<String>) -> Step {
    Step {
        step: name,
        detail: detail.into(),
        source,
    }
}

/// What `proxy`'s sidecar would do with `request` in `snapshot`.
pub fn explain(snapshot: &Snapshot, proxy: &Proxy, request: &Request) -> Vec<Step> {
    let resources = compile(snapshot, proxy);
    let mut steps = Vec::new();
    if proxy.metadata.capture {
        match captured(snapshot, proxy, &resources, request, &mut steps) {
            Captured::Http => {}
            Captured::Done => return steps,
        }
    } else {
        steps.push(step(
            "listener",
            format!(
                "{} on {}:{}, HTTP, routes from route configuration {}",
                names::OUTBOUND,
                proxy.metadata.address,
                proxy.metadata.outbound_port,
                names::OUTBOUND
            ),
            None,
        ));
    }
    let Some(routes) =
        decode::<RouteConfiguration>(&resources, ResourceType::Route, names::OUTBOUND)
    else {
        steps.push(step(
            "route",
            "no route configuration: the request gets 404",
            None,
        ));
        return steps;
    };
    let Some((index, host)) = virtual_host(&routes, &request.authority) else {
        steps.push(step(
            "virtual host",
            format!("none answers to {:?}: Envoy answers 404", request.authority),
            None,
        ));
        return steps;
    };
    let service = host
        .name
        .rsplit_once(':')
        .map_or(host.name.as_str(), |(h, _)| h);
    steps.push(step(
        "virtual host",
        format!(
            "virtual_hosts[{index}] {} (answers to {:?})",
            host.name, request.authority
        ),
        snapshot
            .registry
            .services
            .get(service)
            .and_then(|s| s.object.as_ref())
            .map(|k| format!("{} {}/{}", k.kind, k.namespace, k.name)),
    ));
    let Some((route_index, route)) = host
        .routes
        .iter()
        .enumerate()
        .find(|(_, r)| r.r#match.as_ref().is_some_and(|m| matches(m, request)))
    else {
        steps.push(step("route", "no route matches: Envoy answers 404", None));
        return steps;
    };
    steps.push(step(
        "route",
        format!(
            "routes[{route_index}] {:?} is the first that matches",
            route.name
        ),
        route_source(route),
    ));
    action(snapshot, proxy, &resources, route, request, &mut steps);
    steps
}

/// Where a captured connection goes on from the virtual outbound listener.
enum Captured {
    /// Into the outbound routes, as an explicit request would.
    Http,
    /// Somewhere the steps already say (TCP to a cluster, or out through
    /// the passthrough): nothing is routed.
    Done,
}

/// A request of an application whose traffic is captured: it dials the
/// address its URL's host resolves to (the service's cluster IP or
/// ServiceEntry address; an IP as given) at the URL's port, and the
/// capture rules take the connection to the virtual outbound listener,
/// whose chain for that address and port decides, as Envoy matches chains
/// on the original destination.
fn captured(
    snapshot: &Snapshot,
    proxy: &Proxy,
    resources: &ProxyResources,
    request: &Request,
    steps: &mut Vec<Step>,
) -> Captured {
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::TcpProxy;
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::tcp_proxy::ClusterSpecifier as TcpCluster;
    let listener_name = crate::compile::capture::VIRTUAL_OUTBOUND;
    let at = format!(
        "{listener_name} on 0.0.0.0:{} (the application's traffic is captured)",
        pilot_node::OUTBOUND_CAPTURE_PORT
    );
    let (host, port) = match request.authority.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() => (h, p.parse().unwrap_or(80)),
        _ => (
            request.authority.as_str(),
            if request.scheme == "https" { 443 } else { 80 },
        ),
    };
    let dialled_ip: Option<std::net::IpAddr> = host.parse().ok();
    let service = match dialled_ip {
        // An address: the service that has it, if one does.
        Some(ip) => snapshot
            .registry
            .services
            .values()
            .find(|s| s.addresses.contains(&ip)),
        None => snapshot.registry.services.get(&crate::hosts::resolve(
            &snapshot.registry,
            host,
            &proxy.metadata.namespace,
        )),
    };
    let service_source = service
        .and_then(|s| s.object.as_ref())
        .map(|k| format!("{} {}/{}", k.kind, k.namespace, k.name));
    let ip: std::net::IpAddr = match dialled_ip {
        Some(ip) => ip,
        None => match service.and_then(|s| s.addresses.first()) {
            Some(ip) => *ip,
            None => {
                steps.push(step(
                    "listener",
                    format!(
                        "{at}: {host:?} names no service address (no clusterIP, no ServiceEntry address): the application's DNS decides where it connects, and the connection goes out there through {}",
                        crate::compile::capture::PASSTHROUGH
                    ),
                    service_source,
                ));
                return Captured::Done;
            }
        },
    };
    let dialled = std::net::SocketAddr::new(ip, port);
    let Some(listener) = decode::<Listener>(resources, ResourceType::Listener, listener_name)
    else {
        steps.push(step(
            "listener",
            format!("{at}: the sidecar has no {listener_name} listener"),
            None,
        ));
        return Captured::Done;
    };
    let chain = listener.filter_chains.iter().find(|c| {
        c.filter_chain_match.as_ref().is_some_and(|m| {
            m.destination_port
                .as_ref()
                .is_some_and(|p| p.value == u32::from(port))
                && m.prefix_ranges.iter().any(|r| in_range(r, ip))
        })
    });
    let Some(chain) = chain else {
        steps.push(step(
            "listener",
            format!(
                "{at}: no chain for {dialled}: the connection goes out to where it was going, through {} (outbound traffic policy ALLOW_ANY)",
                crate::compile::capture::PASSTHROUGH
            ),
            None,
        ));
        return Captured::Done;
    };
    for filter in &chain.filters {
        let Some(ConfigType::TypedConfig(any)) = &filter.config_type else {
            continue;
        };
        if let Ok(hcm) = HttpConnectionManager::decode(any.value.as_slice())
            && let Some(RouteSpecifier::Rds(rds)) = &hcm.route_specifier
        {
            steps.push(step(
                "listener",
                format!(
                    "{at}: the application dialled {dialled}; chain {}, HTTP, routes from route configuration {}",
                    chain.name, rds.route_config_name
                ),
                service_source,
            ));
            return Captured::Http;
        }
        if filter.name == "envoy.filters.network.tcp_proxy"
            && let Ok(tcp) = TcpProxy::decode(any.value.as_slice())
            && let Some(TcpCluster::Cluster(cluster)) = &tcp.cluster_specifier
        {
            steps.push(step(
                "listener",
                format!(
                    "{at}: the application dialled {dialled}; chain {}, TCP to cluster {cluster}: nothing is routed by path or header",
                    chain.name
                ),
                service_source,
            ));
            cluster_steps(
                snapshot,
                proxy,
                resources,
                cluster,
                String::new(),
                request,
                steps,
            );
            return Captured::Done;
        }
    }
    steps.push(step(
        "listener",
        format!("{at}: chain {} has no filter explain reads", chain.name),
        None,
    ));
    Captured::Done
}

/// The VirtualService rule a route was compiled from: routes are named
/// `NAMESPACE.NAME.INDEX` after it (`default` without one).
fn route_source(route: &Route) -> Option<String> {
    let (rest, index) = route.name.rsplit_once('.')?;
    let (namespace, name) = rest.split_once('.')?;
    index.parse::<usize>().ok()?;
    Some(format!(
        "VirtualService {namespace}/{name} spec.http[{index}]"
    ))
}

fn action(
    snapshot: &Snapshot,
    proxy: &Proxy,
    resources: &ProxyResources,
    route: &Route,
    request: &Request,
    steps: &mut Vec<Step>,
) {
    let source = route_source(route);
    let Some(action) = &route.action else {
        return;
    };
    let route_action = match action {
        Action::Route(r) => r,
        Action::Redirect(r) => {
            steps.push(step("redirect", format!("{r:?}"), source));
            return;
        }
        Action::DirectResponse(r) => {
            steps.push(step(
                "direct response",
                format!("status {}", r.status),
                source,
            ));
            return;
        }
        _ => return,
    };
    let clusters: Vec<(String, Option<u32>)> = match &route_action.cluster_specifier {
        Some(ClusterSpecifier::Cluster(c)) => vec![(c.clone(), None)],
        Some(ClusterSpecifier::WeightedClusters(w)) => w
            .clusters
            .iter()
            .map(|c| (c.name.clone(), c.weight.as_ref().map(|w| w.value)))
            .collect(),
        _ => Vec::new(),
    };
    if let Some(timeout) = &route_action.timeout {
        let text = if timeout.seconds == 0 && timeout.nanos == 0 {
            "none".to_string()
        } else {
            format!("{}.{:03}s", timeout.seconds, timeout.nanos / 1_000_000)
        };
        steps.push(step("timeout", text, source.clone()));
    }
    if let Some(retry) = &route_action.retry_policy {
        steps.push(step(
            "retries",
            format!(
                "{} on {}",
                retry.num_retries.as_ref().map_or(1, |n| n.value),
                retry.retry_on
            ),
            source.clone(),
        ));
    }
    let total: u32 = clusters.iter().map(|(_, w)| w.unwrap_or(0)).sum();
    for (name, weight) in clusters {
        let share = match (weight, total) {
            (Some(w), t) if t > 0 => format!(" ({}% of requests)", w * 100 / t),
            _ => String::new(),
        };
        cluster_steps(snapshot, proxy, resources, &name, share, request, steps);
    }
}

/// The cluster `name` (`share`: how much of the traffic it takes): the TLS
/// it speaks, its endpoints, and what each endpoint's sidecar decides.
fn cluster_steps(
    snapshot: &Snapshot,
    proxy: &Proxy,
    resources: &ProxyResources,
    name: &str,
    share: String,
    request: &Request,
    steps: &mut Vec<Step>,
) {
    steps.push(step(
        "cluster",
        format!("{name}{share}"),
        subset_source(snapshot, proxy, name),
    ));
    let cluster = decode::<Cluster>(resources, ResourceType::Cluster, name);
    let tls = match &cluster {
        Some(c) if !c.transport_socket_matches.is_empty() => {
            "mutual TLS, except to endpoints without a sidecar (tlsMode disabled)"
        }
        Some(c) if c.transport_socket.is_some() => "TLS",
        Some(_) => "plaintext",
        None => "the cluster is not in the sidecar's config",
    };
    steps.push(step("tls", tls, None));
    let assignment = decode::<ClusterLoadAssignment>(resources, ResourceType::Endpoint, name);
    let endpoints = assignment
        .as_ref()
        .map(endpoint_list)
        .unwrap_or_else(|| "none".to_string());
    steps.push(step("endpoints", endpoints, None));
    let mutual = cluster
        .as_ref()
        .is_some_and(|c| !c.transport_socket_matches.is_empty());
    for endpoint in assignment.iter().flat_map(endpoints_of) {
        let mut authentication = Vec::new();
        let decided = authorization(
            snapshot,
            proxy,
            &endpoint.address,
            endpoint.port,
            mutual && endpoint.sidecar,
            request,
            &mut authentication,
        );
        steps.extend(authentication);
        steps.push(decided);
    }
}

/// One endpoint of an assignment.
struct EndpointView {
    address: String,
    port: u16,
    weight: u32,
    /// Whether it has a sidecar (so is sent mutual TLS by a cluster that
    /// speaks it).
    sidecar: bool,
}

/// The endpoints of an assignment.
fn endpoints_of(cla: &ClusterLoadAssignment) -> Vec<EndpointView> {
    use envoy_types::pb::envoy::config::core::v3::address::Address;
    use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
    use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
    use envoy_types::pb::google::protobuf::value::Kind as ValueKind;
    let mut out = Vec::new();
    for lb in cla.endpoints.iter().flat_map(|l| &l.lb_endpoints) {
        let Some(HostIdentifier::Endpoint(endpoint)) = &lb.host_identifier else {
            continue;
        };
        let Some(Address::SocketAddress(socket)) =
            endpoint.address.as_ref().and_then(|a| a.address.as_ref())
        else {
            continue;
        };
        let port = match socket.port_specifier {
            Some(PortSpecifier::PortValue(p)) => u16::try_from(p).unwrap_or(0),
            _ => 0,
        };
        // Endpoints without a sidecar are marked `tlsMode: disabled`; the
        // others take the cluster's mutual TLS.
        let sidecar = !lb
            .metadata
            .as_ref()
            .and_then(|m| m.filter_metadata.get("envoy.transport_socket_match"))
            .and_then(|s| s.fields.get("tlsMode"))
            .is_some_and(|v| matches!(&v.kind, Some(ValueKind::StringValue(m)) if m == "disabled"));
        out.push(EndpointView {
            address: socket.address.clone(),
            port,
            weight: lb.load_balancing_weight.as_ref().map_or(1, |w| w.value),
            sidecar,
        });
    }
    out
}

/// What the sidecar at `address` does with the request on `port`: its
/// inbound listener's chain for the way the request comes (mutual TLS or
/// plaintext), then its RBAC filters in order (AUDIT, DENY, ALLOW).
fn authorization(
    snapshot: &Snapshot,
    caller: &Proxy,
    address: &str,
    port: u16,
    mutual: bool,
    request: &Request,
    authentication: &mut Vec<Step>,
) -> Step {
    use envoy_types::pb::envoy::config::listener::v3::Listener;
    let at = format!("{address}:{port}");
    let Some(destination) = crate::diff::workload_proxies(snapshot, snapshot)
        .into_iter()
        .find(|p| p.metadata.address.to_string() == address)
    else {
        return step(
            "authorization",
            format!("{at}: no sidecar of the mesh there; nothing is checked"),
            None,
        );
    };
    let resources = compile(snapshot, &destination);
    let name = names::inbound_listener(address, port);
    let Some(listener) = decode::<Listener>(&resources, ResourceType::Listener, &name) else {
        return step(
            "authorization",
            format!("{at}: the sidecar has no inbound listener {name}"),
            None,
        );
    };
    let chain = listener.filter_chains.iter().find(|c| {
        let tls = c
            .filter_chain_match
            .as_ref()
            .is_some_and(|m| m.transport_protocol == "tls");
        tls == mutual
    });
    let Some(chain) = chain else {
        return step(
            "authorization",
            format!(
                "{at}: refused: the workload takes {} only (its PeerAuthentication)",
                if mutual { "plaintext" } else { "mutual TLS" }
            ),
            None,
        );
    };
    let identity = mutual.then(|| {
        format!(
            "spiffe://{}/ns/{}/sa/{}",
            snapshot.mesh.trust_domain,
            caller.metadata.namespace,
            caller
                .metadata
                .service_account
                .as_deref()
                .unwrap_or("default")
        )
    });
    // The JWT filter runs before the RBAC filters.
    let verified = match jwt_filter(chain) {
        None => None,
        Some(config) => {
            let source = |provider: &str| provider_source(snapshot, &destination, provider);
            match jwt::authenticate(&config, request, request.now) {
                jwt::Outcome::NoToken => {
                    authentication.push(step(
                        "authentication",
                        format!("{at}: no token: passes, without a request principal"),
                        None,
                    ));
                    None
                }
                jwt::Outcome::Refused { why, provider } => {
                    return step(
                        "authentication",
                        format!("{at}: denied (401): {why}"),
                        provider.as_deref().and_then(source),
                    );
                }
                jwt::Outcome::Verified(verified) => {
                    authentication.push(step(
                        "authentication",
                        format!(
                            "{at}: token verified, request principal {}/{}",
                            verified.issuer,
                            verified.payload["sub"].as_str().unwrap_or_default()
                        ),
                        source(&verified.provider),
                    ));
                    Some(verified)
                }
            }
        }
    };
    let who = Caller {
        principal: identity.as_deref(),
        ip: caller.metadata.address,
        jwt: verified.as_ref(),
    };
    for filter in &chain.filters {
        use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
        use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
            HttpConnectionManager, http_filter,
        };
        let Some(ConfigType::TypedConfig(any)) = &filter.config_type else {
            continue;
        };
        if filter.name == "envoy.filters.network.rbac" {
            if let Ok(rbac) =
                envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac::decode(
                    any.value.as_slice(),
                )
                && let Some(rules) = &rbac.rules
                && rules.policies.is_empty()
                && rules.action == RbacAction::Allow as i32
            {
                return step(
                    "authorization",
                    format!("{at}: refused: no chain takes the connection"),
                    None,
                );
            }
            continue;
        }
        let Ok(hcm) = HttpConnectionManager::decode(any.value.as_slice()) else {
            continue;
        };
        for http in &hcm.http_filters {
            if http.name != "envoy.filters.http.rbac" {
                continue;
            }
            let Some(http_filter::ConfigType::TypedConfig(any)) = &http.config_type else {
                continue;
            };
            let Ok(rbac) = HttpRbac::decode(any.value.as_slice()) else {
                continue;
            };
            let Some(rules) = rbac.rules else { continue };
            let mut matched: Vec<&String> = rules
                .policies
                .iter()
                .filter(|(_, p)| {
                    p.permissions
                        .iter()
                        .any(|x| permission_matches(x, request, port))
                        && p.principals
                            .iter()
                            .any(|x| principal_matches(x, &who, request))
                })
                .map(|(name, _)| name)
                .collect();
            matched.sort();
            let first = matched.first().map(|n| rule_source(n));
            match RbacAction::try_from(rules.action) {
                Ok(RbacAction::Deny) if !matched.is_empty() => {
                    return step(
                        "authorization",
                        format!("{at}: denied (403)"),
                        first.flatten(),
                    );
                }
                Ok(RbacAction::Allow) if matched.is_empty() => {
                    return step(
                        "authorization",
                        format!(
                            "{at}: denied (403): an ALLOW policy applies and no rule of one matches"
                        ),
                        None,
                    );
                }
                Ok(RbacAction::Allow) => {
                    return step("authorization", format!("{at}: allowed"), first.flatten());
                }
                _ => {}
            }
        }
    }
    let how = match identity {
        Some(id) => format!("over mutual TLS as {id}"),
        None => "in plaintext".to_string(),
    };
    step(
        "authorization",
        format!("{at}: allowed, {how}: no policy denies it, none restricts it"),
        None,
    )
}

/// The JWT filter of an inbound chain's HTTP connection manager, if it has one.
fn jwt_filter(
    chain: &envoy_types::pb::envoy::config::listener::v3::FilterChain,
) -> Option<envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::JwtAuthentication> {
    use envoy_types::pb::envoy::config::listener::v3::filter::ConfigType;
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, http_filter,
    };
    chain.filters.iter().find_map(|filter| {
        let Some(ConfigType::TypedConfig(any)) = &filter.config_type else {
            return None;
        };
        let hcm = HttpConnectionManager::decode(any.value.as_slice()).ok()?;
        hcm.http_filters.iter().find_map(|http| {
            if http.name != crate::compile::jwt::JWT_AUTHN {
                return None;
            }
            let Some(http_filter::ConfigType::TypedConfig(any)) = &http.config_type else {
                return None;
            };
            prost::Message::decode(any.value.as_slice()).ok()
        })
    })
}

/// The RequestAuthentication rule a JWT provider was compiled from: the
/// compiler numbers them `origins-N` across the workload's
/// RequestAuthentications, in namespace and name order.
fn provider_source(snapshot: &Snapshot, destination: &Proxy, provider: &str) -> Option<String> {
    let index: usize = provider.strip_prefix("origins-")?.parse().ok()?;
    snapshot
        .security
        .request_authentications_for(
            &destination.metadata.namespace,
            &destination.metadata.labels,
        )
        .flat_map(|ra| {
            (0..ra.spec.jwt_rules.len()).map(move |i| {
                format!(
                    "RequestAuthentication {}/{} spec.jwtRules[{i}]",
                    ra.meta.namespace, ra.meta.name
                )
            })
        })
        .nth(index)
}

/// The AuthorizationPolicy rule an RBAC policy was compiled from: named
/// `ns[NS]-policy[NAME]-rule[I]`.
fn rule_source(name: &str) -> Option<String> {
    let rest = name.strip_prefix("ns[")?;
    let (namespace, rest) = rest.split_once("]-policy[")?;
    let (policy, rest) = rest.rsplit_once("]-rule[")?;
    let index = rest.strip_suffix(']')?;
    Some(format!(
        "AuthorizationPolicy {namespace}/{policy} spec.rules[{index}]"
    ))
}

/// Who calls, as the destination's RBAC sees it.
struct Caller<'a> {
    principal: Option<&'a str>,
    ip: std::net::IpAddr,
    /// The token the JWT filter verified, if any.
    jwt: Option<&'a jwt::Verified>,
}

fn permission_matches(p: &Permission, request: &Request, port: u16) -> bool {
    use envoy_types::pb::envoy::config::rbac::v3::permission::Rule;
    use envoy_types::pb::envoy::r#type::matcher::v3::path_matcher::Rule as PathRule;
    match &p.rule {
        Some(Rule::Any(any)) => *any,
        Some(Rule::AndRules(set)) => set
            .rules
            .iter()
            .all(|r| permission_matches(r, request, port)),
        Some(Rule::OrRules(set)) => set
            .rules
            .iter()
            .any(|r| permission_matches(r, request, port)),
        Some(Rule::NotRule(inner)) => !permission_matches(inner, request, port),
        Some(Rule::Header(h)) => header_matches(h, request),
        Some(Rule::UrlPath(path)) => match &path.rule {
            Some(PathRule::Path(sm)) => string_matches(sm, request.path_only()),
            _ => false,
        },
        Some(Rule::DestinationPort(p)) => *p == u32::from(port),
        _ => false,
    }
}

fn principal_matches(p: &Principal, caller: &Caller<'_>, request: &Request) -> bool {
    use envoy_types::pb::envoy::config::rbac::v3::principal::Identifier;
    match &p.identifier {
        Some(Identifier::Any(any)) => *any,
        Some(Identifier::AndIds(set)) => set
            .ids
            .iter()
            .all(|i| principal_matches(i, caller, request)),
        Some(Identifier::OrIds(set)) => set
            .ids
            .iter()
            .any(|i| principal_matches(i, caller, request)),
        Some(Identifier::NotId(inner)) => !principal_matches(inner, caller, request),
        Some(Identifier::Authenticated(a)) => match (&a.principal_name, caller.principal) {
            (_, None) => false,
            (None, Some(_)) => true,
            (Some(sm), Some(principal)) => string_matches(sm, principal),
        },
        Some(Identifier::DirectRemoteIp(cidr) | Identifier::RemoteIp(cidr)) => {
            in_range(cidr, caller.ip)
        }
        Some(Identifier::Header(h)) => header_matches(h, request),
        // Request principals and claims: the JWT filter's metadata.
        Some(Identifier::SourcedMetadata(sourced)) => sourced
            .metadata_matcher
            .as_ref()
            .is_some_and(|m| jwt::metadata_matches(m, crate::compile::jwt::JWT_AUTHN, caller.jwt)),
        _ => false,
    }
}

fn in_range(
    cidr: &envoy_types::pb::envoy::config::core::v3::CidrRange,
    ip: std::net::IpAddr,
) -> bool {
    let Ok(base) = cidr.address_prefix.parse::<std::net::IpAddr>() else {
        return false;
    };
    let len = cidr.prefix_len.as_ref().map_or(0, |l| l.value);
    match (base, ip) {
        (std::net::IpAddr::V4(b), std::net::IpAddr::V4(i)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - len.min(32))
            };
            u32::from(b) & mask == u32::from(i) & mask
        }
        (std::net::IpAddr::V6(b), std::net::IpAddr::V6(i)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - len.min(128))
            };
            u128::from(b) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// The DestinationRule subset a cluster name picks.
fn subset_source(snapshot: &Snapshot, proxy: &Proxy, cluster: &str) -> Option<String> {
    let parts: Vec<&str> = cluster.split('|').collect();
    let ["outbound", _, subset, host] = parts.as_slice() else {
        return None;
    };
    if subset.is_empty() {
        return None;
    }
    let dr = snapshot.destination_rule(host, &proxy.metadata.namespace)?;
    let index = dr.spec.subsets.iter().position(|s| s.name == *subset)?;
    Some(format!(
        "DestinationRule {}/{} spec.subsets[{index}]",
        dr.meta.namespace, dr.meta.name
    ))
}

fn endpoint_list(cla: &ClusterLoadAssignment) -> String {
    let list: Vec<String> = endpoints_of(cla)
        .iter()
        .map(|e| format!("{}:{} (weight {})", e.address, e.port, e.weight))
        .collect();
    if list.is_empty() {
        "none".to_string()
    } else {
        list.join(", ")
    }
}

fn decode<M: Message + Default>(
    resources: &ProxyResources,
    ty: ResourceType,
    name: &str,
) -> Option<M> {
    M::decode(resources.get(ty).get(name)?.value()).ok()
}

/// The virtual host Envoy picks for `authority`.
fn virtual_host<'a>(
    routes: &'a RouteConfiguration,
    authority: &str,
) -> Option<(usize, &'a VirtualHost)> {
    let authority = authority.to_ascii_lowercase();
    let hosts = || routes.virtual_hosts.iter().enumerate();
    let with = |f: &dyn Fn(&str) -> Option<usize>| {
        hosts()
            .filter_map(|(i, h)| {
                h.domains
                    .iter()
                    .filter_map(|d| f(&d.to_ascii_lowercase()))
                    .max()
                    .map(|len| (len, i, h))
            })
            .max_by_key(|(len, i, _)| (*len, std::cmp::Reverse(*i)))
            .map(|(_, i, h)| (i, h))
    };
    with(&|d| (d == authority).then_some(d.len()))
        .or_else(|| {
            with(&|d| {
                let suffix = d.strip_prefix('*')?;
                (!suffix.is_empty()
                    && authority.ends_with(suffix)
                    && authority.len() > suffix.len())
                .then_some(suffix.len())
            })
        })
        .or_else(|| {
            with(&|d| {
                let prefix = d.strip_suffix('*')?;
                (!prefix.is_empty()
                    && authority.starts_with(prefix)
                    && authority.len() > prefix.len())
                .then_some(prefix.len())
            })
        })
        .or_else(|| with(&|d| (d == "*").then_some(0)))
}

fn matches(m: &RouteMatch, request: &Request) -> bool {
    let case_sensitive = m.case_sensitive.as_ref().is_none_or(|c| c.value);
    let path = request.path_only();
    let path_ok = match &m.path_specifier {
        Some(PathSpecifier::Prefix(p)) => {
            if case_sensitive {
                path.starts_with(p.as_str())
            } else {
                path.to_ascii_lowercase()
                    .starts_with(&p.to_ascii_lowercase())
            }
        }
        Some(PathSpecifier::Path(p)) => {
            if case_sensitive {
                path == p
            } else {
                path.eq_ignore_ascii_case(p)
            }
        }
        Some(PathSpecifier::SafeRegex(r)) => full_match(&r.regex, path),
        Some(PathSpecifier::PathSeparatedPrefix(p)) => {
            path == p || path.starts_with(&format!("{p}/"))
        }
        _ => false,
    };
    path_ok
        && m.headers.iter().all(|h| header_matches(h, request))
        && m.query_parameters.iter().all(|q| {
            let value = request.query(&q.name);
            match &q.query_parameter_match_specifier {
                Some(QueryParameterMatchSpecifier::PresentMatch(present)) => {
                    value.is_some() == *present
                }
                Some(QueryParameterMatchSpecifier::StringMatch(sm)) => {
                    value.is_some_and(|v| string_matches(sm, v))
                }
                None => value.is_some(),
            }
        })
}

fn header_matches(h: &HeaderMatcher, request: &Request) -> bool {
    let value = request.header(&h.name.to_ascii_lowercase());
    let matched = match &h.header_match_specifier {
        Some(HeaderMatchSpecifier::PresentMatch(present)) => value.is_some() == *present,
        Some(HeaderMatchSpecifier::StringMatch(sm)) => value.is_some_and(|v| string_matches(sm, v)),
        None => value.is_some(),
        // Forms the compiler does not emit (deprecated in Envoy's API).
        Some(_) => false,
    };
    // An inverted match of an absent header holds (Envoy: "the header is
    // not there" matches an inverted present or value match).
    if h.invert_match { !matched } else { matched }
}

fn string_matches(sm: &StringMatcher, value: &str) -> bool {
    let (value, fold) = if sm.ignore_case {
        (value.to_ascii_lowercase(), true)
    } else {
        (value.to_string(), false)
    };
    let norm = |s: &str| {
        if fold {
            s.to_ascii_lowercase()
        } else {
            s.to_string()
        }
    };
    match &sm.match_pattern {
        Some(MatchPattern::Exact(e)) => value == norm(e),
        Some(MatchPattern::Prefix(p)) => value.starts_with(&norm(p)),
        Some(MatchPattern::Suffix(s)) => value.ends_with(&norm(s)),
        Some(MatchPattern::Contains(c)) => value.contains(&norm(c)),
        Some(MatchPattern::SafeRegex(r)) => full_match(&r.regex, &value),
        _ => false,
    }
}

/// RE2's full match, as Envoy's safe_regex does.
fn full_match(pattern: &str, value: &str) -> bool {
    regex::Regex::new(&format!("^(?:{pattern})$")).is_ok_and(|r| r.is_match(value))
}

mod jwt;

#[cfg(test)]
mod tests;
