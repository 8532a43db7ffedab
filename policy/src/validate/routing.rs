//! VirtualService and DestinationRule: hosts, matches, weights and subsets.

use std::collections::BTreeMap;

use super::http::{check_headers, check_route_extras};
use super::re2::check_regex;
use super::{check_labels, check_port, check_unique, names};
use crate::diag::{Diagnostic, FieldPath};
use crate::networking::{
    DestinationRuleSpec, HttpMatchRequest, HttpRoute, HttpRouteDestination, StringMatch,
    VirtualServiceSpec,
};

pub(super) fn check_virtual_service(spec: &VirtualServiceSpec, out: &mut Vec<Diagnostic>) {
    let path = FieldPath::new("spec");
    let hosts = path.field("hosts");
    if spec.hosts.is_empty() {
        out.push(Diagnostic::error(
            hosts.clone(),
            "at least one host is required",
        ));
    }
    for (i, host) in spec.hosts.iter().enumerate() {
        if host == "*" {
            out.push(Diagnostic::error(
                hosts.index(i),
                "wildcard host \"*\" is not allowed for a VirtualService bound to the mesh (every VirtualService is: gateways may only be \"mesh\")",
            ));
        } else if let Err(e) = names::host(host, true) {
            out.push(Diagnostic::error(hosts.index(i), e));
        }
    }
    check_unique(
        spec.hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (hosts.index(i), h.as_str())),
        "host",
        out,
    );
    let http = path.field("http");
    if spec.http.is_empty() {
        out.push(Diagnostic::warning(
            http.clone(),
            "no http routes: the VirtualService routes nothing",
        ));
    }
    let mut catch_all: Option<FieldPath> = None;
    for (i, route) in spec.http.iter().enumerate() {
        let at = http.index(i);
        if let Some(earlier) = &catch_all {
            out.push(Diagnostic::warning(
                at.clone(),
                format!("route is unreachable: {earlier} matches every request"),
            ));
        }
        check_http_route(route, &at, out);
        if catch_all.is_none() && matches_everything(route) {
            catch_all = Some(at);
        }
    }
}

/// A route with no conditions, or a condition that every request meets.
fn matches_everything(route: &HttpRoute) -> bool {
    route.matches.is_empty() || route.matches.iter().any(match_is_catch_all)
}

fn match_is_catch_all(m: &HttpMatchRequest) -> bool {
    let any_path = match &m.uri {
        None => true,
        Some(StringMatch::Prefix(p)) => p.is_empty() || p == "/",
        Some(_) => false,
    };
    any_path
        && m.scheme.is_none()
        && m.method.is_none()
        && m.authority.is_none()
        && m.headers.is_empty()
        && m.query_params.is_empty()
        && m.without_headers.is_empty()
        && m.port.is_none()
        && m.source_labels.is_empty()
        && m.source_namespace.is_none()
}

fn check_http_route(route: &HttpRoute, at: &FieldPath, out: &mut Vec<Diagnostic>) {
    for (j, m) in route.matches.iter().enumerate() {
        check_match(m, &at.field("match").index(j), out);
    }
    let destinations = at.field("route");
    check_route_action(route, at, out);
    check_route_extras(route, at, out);
    for (k, d) in route.route.iter().enumerate() {
        check_route_destination(d, route.route.len(), &destinations.index(k), out);
    }
    if route.route.len() > 1 {
        let sum: u64 = route
            .route
            .iter()
            .map(|d| u64::from(d.weight.unwrap_or(0)))
            .sum();
        if sum != 100 {
            out.push(Diagnostic::error(
                destinations,
                format!("weights must sum to 100, got {sum}"),
            ));
        }
    }
}

/// Exactly one of `route`, `redirect` and `directResponse`; `rewrite` and
/// `fault` only with `route`, as Istio requires.
fn check_route_action(route: &HttpRoute, at: &FieldPath, out: &mut Vec<Diagnostic>) {
    let mut actions = Vec::new();
    if !route.route.is_empty() {
        actions.push("route");
    }
    if route.redirect.is_some() {
        actions.push("redirect");
    }
    if route.direct_response.is_some() {
        actions.push("directResponse");
    }
    match actions.as_slice() {
        [] => out.push(Diagnostic::error(
            at.field("route"),
            "at least one destination is required",
        )),
        [_] => {}
        many => out.push(Diagnostic::error(
            at.clone(),
            format!(
                "set only one of route, redirect and directResponse, got {}",
                many.join(" and ")
            ),
        )),
    }
    let answer = if route.redirect.is_some() {
        Some("redirect")
    } else if route.direct_response.is_some() {
        Some("directResponse")
    } else {
        None
    };
    if let Some(answer) = answer {
        for (field, set) in [
            ("rewrite", route.rewrite.is_some()),
            ("fault", route.fault.is_some()),
        ] {
            if set {
                out.push(Diagnostic::error(
                    at.field(field),
                    format!("{field} cannot be combined with {answer}"),
                ));
            }
        }
    }
}

fn check_match(m: &HttpMatchRequest, at: &FieldPath, out: &mut Vec<Diagnostic>) {
    let uri = at.field("uri");
    match &m.uri {
        Some(StringMatch::Exact(p)) if !p.starts_with('/') => out.push(Diagnostic::warning(
            uri.field("exact"),
            format!("{p:?} does not start with '/': no request path matches it"),
        )),
        Some(StringMatch::Prefix(p)) if !p.is_empty() && !p.starts_with('/') => {
            out.push(Diagnostic::warning(
                uri.field("prefix"),
                format!("{p:?} does not start with '/': no request path matches it"),
            ))
        }
        _ => {}
    }
    for (name, condition) in [
        ("uri", &m.uri),
        ("scheme", &m.scheme),
        ("method", &m.method),
        ("authority", &m.authority),
    ] {
        if let Some(condition) = condition {
            check_string_match(condition, &at.field(name), out);
        }
    }
    check_header_matches(&m.headers, &at.field("headers"), out);
    check_header_matches(&m.without_headers, &at.field("withoutHeaders"), out);
    let params = at.field("queryParams");
    for (name, condition) in &m.query_params {
        let p = params.key(name);
        if name.is_empty() {
            out.push(Diagnostic::error(
                p.clone(),
                "query parameter name must not be empty",
            ));
        }
        if let StringMatch::Prefix(_) = condition {
            out.push(Diagnostic::error(
                p.field("prefix"),
                "query parameters match only by exact or regex",
            ));
        }
        check_string_match(condition, &p, out);
    }
    if let Some(port) = m.port {
        check_port(port, at.field("port"), out);
    }
    check_labels(&m.source_labels, &at.field("sourceLabels"), out);
    if let Some(ns) = &m.source_namespace
        && let Err(e) = names::dns1123_label(ns)
    {
        out.push(Diagnostic::error(at.field("sourceNamespace"), e));
    }
    if m.ignore_uri_case && m.uri.is_none() {
        out.push(Diagnostic::warning(
            at.field("ignoreUriCase"),
            "ignoreUriCase has no effect without a uri match",
        ));
    }
}

/// Header names (pseudo-headers such as `:authority` allowed) and their conditions.
fn check_header_matches(
    headers: &BTreeMap<String, StringMatch>,
    path: &FieldPath,
    out: &mut Vec<Diagnostic>,
) {
    for (name, condition) in headers {
        let p = path.key(name);
        if let Err(e) = names::header_name(name, true) {
            out.push(Diagnostic::error(p.clone(), e));
        }
        check_string_match(condition, &p, out);
    }
}

/// A regex condition must be one Envoy (RE2) accepts.
fn check_string_match(condition: &StringMatch, path: &FieldPath, out: &mut Vec<Diagnostic>) {
    if let StringMatch::Regex(re) = condition {
        check_regex(re, &path.field("regex"), out);
    }
}

fn check_route_destination(
    d: &HttpRouteDestination,
    siblings: usize,
    at: &FieldPath,
    out: &mut Vec<Diagnostic>,
) {
    let dest = at.field("destination");
    if d.destination.host.is_empty() {
        out.push(Diagnostic::error(dest.field("host"), "host is required"));
    } else if let Err(e) = names::host(&d.destination.host, false) {
        out.push(Diagnostic::error(dest.field("host"), e));
    }
    if let Some(subset) = &d.destination.subset
        && let Err(e) = names::dns1123_label(subset)
    {
        out.push(Diagnostic::error(dest.field("subset"), e));
    }
    if let Some(port) = d.destination.port {
        check_port(port, dest.field("port").field("number"), out);
    }
    if let Some(headers) = &d.headers {
        check_headers(headers, None, &at.field("headers"), out);
    }
    match d.weight {
        Some(w) if w > 100 => out.push(Diagnostic::error(
            at.field("weight"),
            format!("weight must be 0-100, got {w}"),
        )),
        Some(w) if siblings == 1 && w != 100 => out.push(Diagnostic::warning(
            at.field("weight"),
            format!("weight {w} is ignored: a single destination gets all traffic"),
        )),
        _ => {}
    }
}

pub(super) fn check_destination_rule(spec: &DestinationRuleSpec, out: &mut Vec<Diagnostic>) {
    let path = FieldPath::new("spec");
    if spec.host.is_empty() {
        out.push(Diagnostic::error(path.field("host"), "host is required"));
    } else if let Err(e) = names::host(&spec.host, true) {
        out.push(Diagnostic::error(path.field("host"), e));
    }
    let subsets = path.field("subsets");
    for (i, subset) in spec.subsets.iter().enumerate() {
        let at = subsets.index(i);
        if subset.name.is_empty() {
            out.push(Diagnostic::error(
                at.field("name"),
                "subset name is required",
            ));
        } else if let Err(e) = names::dns1123_label(&subset.name) {
            out.push(Diagnostic::error(at.field("name"), e));
        }
        if subset.labels.is_empty() {
            out.push(Diagnostic::error(
                at.field("labels"),
                "a subset needs at least one label",
            ));
        }
        check_labels(&subset.labels, &at.field("labels"), out);
    }
    check_unique(
        spec.subsets
            .iter()
            .enumerate()
            .filter(|(_, s)| !s.name.is_empty())
            .map(|(i, s)| (subsets.index(i).field("name"), s.name.as_str())),
        "subset name",
        out,
    );
}
