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
//! path, headers and query parameters all match. Not evaluated yet: the
//! destination's authorization policies.

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::route::v3::header_matcher::HeaderMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::query_parameter_matcher::QueryParameterMatchSpecifier;
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::route_match::PathSpecifier;
use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, Route, RouteConfiguration, RouteMatch, VirtualHost,
};
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
    let mut steps = vec![step(
        "listener",
        format!(
            "{} on {}:{}, HTTP, routes from route configuration {}",
            names::OUTBOUND,
            proxy.metadata.address,
            proxy.metadata.outbound_port,
            names::OUTBOUND
        ),
        None,
    )];
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
    action(snapshot, proxy, &resources, route, &mut steps);
    steps
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
        steps.push(step(
            "cluster",
            format!("{name}{share}"),
            subset_source(snapshot, proxy, &name),
        ));
        let cluster = decode::<Cluster>(resources, ResourceType::Cluster, &name);
        let tls = match &cluster {
            Some(c) if !c.transport_socket_matches.is_empty() => {
                "mutual TLS to endpoints with a sidecar (tlsMode istio), plaintext to the others"
            }
            Some(c) if c.transport_socket.is_some() => "TLS",
            Some(_) => "plaintext",
            None => "the cluster is not in the sidecar's config",
        };
        steps.push(step("tls", tls, None));
        let endpoints = decode::<ClusterLoadAssignment>(resources, ResourceType::Endpoint, &name)
            .map(|cla| endpoint_list(&cla))
            .unwrap_or_else(|| "none".to_string());
        steps.push(step("endpoints", endpoints, None));
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
    use envoy_types::pb::envoy::config::core::v3::address::Address;
    use envoy_types::pb::envoy::config::core::v3::socket_address::PortSpecifier;
    use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
    let mut out = Vec::new();
    for locality in &cla.endpoints {
        for lb in &locality.lb_endpoints {
            let Some(HostIdentifier::Endpoint(endpoint)) = &lb.host_identifier else {
                continue;
            };
            let Some(Address::SocketAddress(socket)) =
                endpoint.address.as_ref().and_then(|a| a.address.as_ref())
            else {
                continue;
            };
            let port = match socket.port_specifier {
                Some(PortSpecifier::PortValue(p)) => p,
                _ => 0,
            };
            let weight = lb.load_balancing_weight.as_ref().map_or(1, |w| w.value);
            out.push(format!("{}:{port} (weight {weight})", socket.address));
        }
    }
    if out.is_empty() {
        "none".to_string()
    } else {
        out.join(", ")
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

#[cfg(test)]
mod tests;
