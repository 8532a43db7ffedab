//! What an HTTP route does besides choosing destinations: redirect, direct
//! response, rewrite, timeout, retries, fault injection, mirroring, CORS and
//! header operations.

use super::re2::check_regex;
use super::{check_duration, check_percent, check_port, names};
use crate::diag::{Diagnostic, FieldPath};
use crate::networking::{
    CorsPolicy, Headers, HttpDirectResponse, HttpFaultInjection, HttpRetry, HttpRewrite, HttpRoute,
    StringMatch,
};

/// Envoy's `retry_on` conditions for HTTP and gRPC.
const RETRY_ON: &[&str] = &[
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
    "http3-post-connect-failure",
];

const REDIRECT_CODES: &[u16] = &[301, 302, 303, 307, 308];

const CORS_METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
];

pub(super) fn check_route_extras(route: &HttpRoute, at: &FieldPath, out: &mut Vec<Diagnostic>) {
    if let Some(redirect) = &route.redirect {
        let p = at.field("redirect");
        if redirect.uri.is_none()
            && redirect.authority.is_none()
            && redirect.port.is_none()
            && redirect.scheme.is_none()
        {
            out.push(Diagnostic::error(
                p.clone(),
                "redirect must set at least one of uri, authority, port or scheme",
            ));
        }
        if let Some(code) = redirect.redirect_code
            && !REDIRECT_CODES.contains(&code)
        {
            out.push(Diagnostic::error(
                p.field("redirectCode"),
                format!("redirectCode must be one of 301, 302, 303, 307 or 308, got {code}"),
            ));
        }
        if let Some(port) = redirect.port {
            check_port(port, p.field("port"), out);
        }
        if let Some(authority) = &redirect.authority
            && authority.is_empty()
        {
            out.push(Diagnostic::error(
                p.field("authority"),
                "authority must not be empty",
            ));
        }
    }
    if let Some(direct) = &route.direct_response {
        check_direct_response(direct, &at.field("directResponse"), out);
    }
    check_dropped_with_answer(route, at, out);
    if let Some(rewrite) = &route.rewrite {
        check_rewrite(rewrite, &at.field("rewrite"), out);
    }
    check_duration(route.timeout, true, at.field("timeout"), out);
    if let Some(retries) = &route.retries {
        check_retries(retries, route, &at.field("retries"), out);
    }
    if let Some(fault) = &route.fault {
        check_fault(fault, &at.field("fault"), out);
    }
    check_mirror(route, at, out);
    if let Some(cors) = &route.cors_policy {
        check_cors(cors, &at.field("corsPolicy"), out);
    }
    if let Some(headers) = &route.headers {
        let rewrite_authority = route
            .rewrite
            .as_ref()
            .and_then(|r| r.authority.as_ref())
            .filter(|a| !a.is_empty())
            .map(|_| at.field("rewrite").field("authority"));
        check_headers(headers, rewrite_authority, &at.field("headers"), out);
    }
}

/// Envoy refuses a direct-response body over its configured limit, which the
/// compiler sets to 1 MiB as Istio does; Istio's validation refuses larger
/// bodies and warns above 100 KiB.
pub(super) const MAX_DIRECT_RESPONSE_BODY: usize = 1024 * 1024;
const LARGE_DIRECT_RESPONSE_BODY: usize = 100 * 1024;

fn check_direct_response(direct: &HttpDirectResponse, p: &FieldPath, out: &mut Vec<Diagnostic>) {
    if !(200..=599).contains(&direct.status) {
        out.push(Diagnostic::error(
            p.field("status"),
            format!("status must be 200-599, got {}", direct.status),
        ));
    }
    let Some(body) = &direct.body else { return };
    let at = p.field("body").field("string");
    if body.len() > MAX_DIRECT_RESPONSE_BODY {
        out.push(Diagnostic::error(
            at,
            format!(
                "body is {} bytes; a direct response body may be at most {MAX_DIRECT_RESPONSE_BODY} bytes (1 MiB)",
                body.len()
            ),
        ));
    } else if body.len() > LARGE_DIRECT_RESPONSE_BODY {
        out.push(Diagnostic::warning(
            at,
            format!(
                "body is {} bytes: large direct responses are sent to every proxy that sees the host and may slow the control plane",
                body.len()
            ),
        ));
    }
}

/// Istio translates a `redirect` or `directResponse` route without a route
/// action, so the fields that live on the route action (timeout, retries,
/// mirroring) are accepted and then dropped; say so.
fn check_dropped_with_answer(route: &HttpRoute, at: &FieldPath, out: &mut Vec<Diagnostic>) {
    let answer = if route.redirect.is_some() {
        "redirect"
    } else if route.direct_response.is_some() {
        "directResponse"
    } else {
        return;
    };
    for (field, set) in [
        ("timeout", route.timeout.is_some()),
        ("retries", route.retries.is_some()),
        ("mirror", route.mirror.is_some()),
        ("mirrorPercentage", route.mirror_percentage.is_some()),
    ] {
        if set {
            out.push(Diagnostic::warning(
                at.field(field),
                format!(
                    "{field} has no effect on a {answer} route: it is ignored, as Istio ignores it"
                ),
            ));
        }
    }
    let Some(headers) = &route.headers else {
        return;
    };
    let request = at.field("headers").field("request");
    for (op, map) in [("set", &headers.request.set), ("add", &headers.request.add)] {
        for name in map.keys().filter(|n| is_authority(n)) {
            out.push(Diagnostic::warning(
                request.field(op).key(name),
                format!("{name} rewrites the authority sent upstream, which a {answer} route does not do: it is ignored, as Istio ignores it"),
            ));
        }
    }
}

fn check_rewrite(rewrite: &HttpRewrite, p: &FieldPath, out: &mut Vec<Diagnostic>) {
    if rewrite.uri.is_some() && rewrite.uri_regex.is_some() {
        out.push(Diagnostic::error(
            p.clone(),
            "set only one of uri and uriRegexRewrite",
        ));
    }
    if let Some((pattern, _)) = &rewrite.uri_regex {
        check_regex(pattern, &p.field("uriRegexRewrite").field("match"), out);
    }
    if rewrite.uri.is_none() && rewrite.authority.is_none() && rewrite.uri_regex.is_none() {
        out.push(Diagnostic::warning(
            p.clone(),
            "rewrite sets neither uri, uriRegexRewrite nor authority: it does nothing",
        ));
    }
}

fn check_retries(retries: &HttpRetry, route: &HttpRoute, p: &FieldPath, out: &mut Vec<Diagnostic>) {
    check_duration(
        retries.per_try_timeout,
        false,
        p.field("perTryTimeout"),
        out,
    );
    if let Some(retry_on) = &retries.retry_on {
        for condition in retry_on.split(',').map(str::trim) {
            let status = condition
                .parse::<u16>()
                .is_ok_and(|c| (100..=599).contains(&c));
            if !status && !RETRY_ON.contains(&condition) {
                out.push(Diagnostic::error(
                    p.field("retryOn"),
                    format!(
                        "unknown retry condition {condition:?}; expected an HTTP status code or one of {}",
                        RETRY_ON.join(", ")
                    ),
                ));
            }
        }
    }
    if retries.attempts == 0 && (retries.retry_on.is_some() || retries.per_try_timeout.is_some()) {
        out.push(Diagnostic::warning(
            p.field("attempts"),
            "attempts 0 disables retries: retryOn and perTryTimeout have no effect",
        ));
    }
    if let (Some(per_try), Some(total)) = (retries.per_try_timeout, route.timeout)
        && !total.is_zero()
        && per_try > total
    {
        out.push(Diagnostic::warning(
            p.field("perTryTimeout"),
            format!(
                "perTryTimeout {per_try:?} is longer than the route timeout {total:?}: no retry can happen after a try times out"
            ),
        ));
    }
}

fn check_fault(fault: &HttpFaultInjection, p: &FieldPath, out: &mut Vec<Diagnostic>) {
    if fault.delay.is_none() && fault.abort.is_none() {
        out.push(Diagnostic::error(
            p.clone(),
            "fault needs a delay or an abort",
        ));
    }
    if let Some(delay) = &fault.delay {
        let d = p.field("delay");
        check_duration(Some(delay.fixed_delay), false, d.field("fixedDelay"), out);
        check_percent(delay.percentage, d.field("percentage").field("value"), out);
        warn_zero_percent(delay.percentage, &d, "the delay affects no request", out);
        warn_unset_percent(delay.percentage, &d, out);
    }
    if let Some(abort) = &fault.abort {
        let a = p.field("abort");
        if !(200..=599).contains(&abort.http_status) {
            out.push(Diagnostic::error(
                a.field("httpStatus"),
                format!("httpStatus must be 200-599, got {}", abort.http_status),
            ));
        }
        check_percent(abort.percentage, a.field("percentage").field("value"), out);
        warn_zero_percent(abort.percentage, &a, "the abort affects no request", out);
        warn_unset_percent(abort.percentage, &a, out);
    }
}

/// Istio documents an unset percentage as "every request" but its proxies
/// inject into none (istio/istio#36303). Bowline follows the documentation;
/// say so, since manifests written against Istio's behaviour change meaning.
fn warn_unset_percent(percent: Option<f64>, path: &FieldPath, out: &mut Vec<Diagnostic>) {
    if percent.is_none() {
        out.push(Diagnostic::warning(
            path.field("percentage"),
            "no percentage: the fault applies to every request, as Istio documents (Istio's own proxies apply it to none); set percentage.value to be explicit",
        ));
    }
}

fn warn_zero_percent(
    percent: Option<f64>,
    path: &FieldPath,
    effect: &str,
    out: &mut Vec<Diagnostic>,
) {
    if percent == Some(0.0) {
        out.push(Diagnostic::warning(
            path.field("percentage").field("value"),
            format!("percentage 0: {effect}"),
        ));
    }
}

fn check_mirror(route: &HttpRoute, at: &FieldPath, out: &mut Vec<Diagnostic>) {
    let percent = at.field("mirrorPercentage").field("value");
    check_percent(route.mirror_percentage, percent.clone(), out);
    if route.mirror.is_some() && route.mirror_percentage == Some(0.0) {
        out.push(Diagnostic::warning(
            percent.clone(),
            "mirrorPercentage 0: nothing is mirrored",
        ));
    }
    match &route.mirror {
        Some(mirror) => {
            let m = at.field("mirror");
            if mirror.host.is_empty() {
                out.push(Diagnostic::error(m.field("host"), "host is required"));
            } else if let Err(e) = names::host(&mirror.host, false) {
                out.push(Diagnostic::error(m.field("host"), e));
            }
            if let Some(subset) = &mirror.subset
                && let Err(e) = names::dns1123_label(subset)
            {
                out.push(Diagnostic::error(m.field("subset"), e));
            }
            if let Some(port) = mirror.port {
                check_port(port, m.field("port").field("number"), out);
            }
        }
        None if route.mirror_percentage.is_some() => out.push(Diagnostic::warning(
            percent,
            "mirrorPercentage without mirror has no effect",
        )),
        None => {}
    }
}

fn check_cors(cors: &CorsPolicy, p: &FieldPath, out: &mut Vec<Diagnostic>) {
    for (i, origin) in cors.allow_origins.iter().enumerate() {
        if let StringMatch::Regex(re) = origin {
            check_regex(re, &p.field("allowOrigins").index(i).field("regex"), out);
        }
    }
    for (i, method) in cors.allow_methods.iter().enumerate() {
        if !CORS_METHODS.contains(&method.as_str()) {
            out.push(Diagnostic::error(
                p.field("allowMethods").index(i),
                format!(
                    "unknown HTTP method {method:?}; expected one of {}",
                    CORS_METHODS.join(", ")
                ),
            ));
        }
    }
    for (field, list) in [
        ("allowHeaders", &cors.allow_headers),
        ("exposeHeaders", &cors.expose_headers),
    ] {
        for (i, name) in list.iter().enumerate() {
            if name != "*"
                && let Err(e) = names::header_name(name, false)
            {
                out.push(Diagnostic::error(p.field(field).index(i), e));
            }
        }
    }
    check_duration(cors.max_age, true, p.field("maxAge"), out);
    if cors.allow_origins.is_empty() {
        out.push(Diagnostic::warning(
            p.field("allowOrigins"),
            "no allowOrigins: the CORS policy allows no cross-origin request",
        ));
    }
}

/// Header operations on a route or a destination, with Istio's rules on
/// names: a request `set` or `add` may name `host` or `:authority` (it becomes
/// the rewritten authority, once only, counting `rewrite.authority`); a
/// request `remove` and every response operation may name neither, and no
/// operation may name another pseudo-header.
pub(super) fn check_headers(
    headers: &Headers,
    rewrite_authority: Option<FieldPath>,
    p: &FieldPath,
    out: &mut Vec<Diagnostic>,
) {
    let mut authority = rewrite_authority;
    for (side, ops) in [
        ("request", &headers.request),
        ("response", &headers.response),
    ] {
        let s = p.field(side);
        for (op, map) in [("set", &ops.set), ("add", &ops.add)] {
            for name in map.keys() {
                let at = s.field(op).key(name);
                if side == "request" && is_authority(name) {
                    match &authority {
                        Some(earlier) => out.push(Diagnostic::error(
                            at,
                            format!("the authority is already set by {earlier}: set it once"),
                        )),
                        None => authority = Some(at),
                    }
                } else {
                    check_operation_name(name, at, out);
                }
            }
        }
        for (i, name) in ops.remove.iter().enumerate() {
            check_operation_name(name, s.field("remove").index(i), out);
        }
    }
}

/// `host` and `:authority`, in any case: the names Istio turns into an
/// authority rewrite.
fn is_authority(name: &str) -> bool {
    name.eq_ignore_ascii_case("host") || name.eq_ignore_ascii_case(":authority")
}

fn check_operation_name(name: &str, at: FieldPath, out: &mut Vec<Diagnostic>) {
    if name.eq_ignore_ascii_case("host") || name.starts_with(':') {
        out.push(Diagnostic::error(
            at,
            format!("header {name:?} cannot be modified here (only a request set or add may name host or :authority, to rewrite the authority)"),
        ));
    } else if let Err(e) = names::header_name(name, false) {
        out.push(Diagnostic::error(at, e));
    }
}
