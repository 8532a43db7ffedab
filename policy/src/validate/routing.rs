//! VirtualService and DestinationRule: hosts, matches, weights and subsets.

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
                "host \"*\" is only allowed for gateways, which are not supported yet",
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
    route.matches.is_empty()
        || route.matches.iter().any(|m| match &m.uri {
            None => true,
            Some(StringMatch::Prefix(p)) => p.is_empty() || p == "/",
            Some(_) => false,
        })
}

fn check_http_route(route: &HttpRoute, at: &FieldPath, out: &mut Vec<Diagnostic>) {
    for (j, m) in route.matches.iter().enumerate() {
        check_match(m, &at.field("match").index(j), out);
    }
    let destinations = at.field("route");
    if route.route.is_empty() {
        out.push(Diagnostic::error(
            destinations.clone(),
            "at least one destination is required",
        ));
    }
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

fn check_match(m: &HttpMatchRequest, at: &FieldPath, out: &mut Vec<Diagnostic>) {
    let uri = at.field("uri");
    match &m.uri {
        Some(StringMatch::Regex(re)) => {
            if let Err(e) = regex::Regex::new(re) {
                out.push(Diagnostic::error(
                    uri.field("regex"),
                    format!("invalid regular expression: {}", one_line(&e.to_string())),
                ));
            }
        }
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
}

/// The regex crate's errors span several lines with a caret diagram; a
/// diagnostic is one line.
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.chars().all(|c| c == '^' || c == ' '))
        .collect::<Vec<_>>()
        .join(" ")
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
