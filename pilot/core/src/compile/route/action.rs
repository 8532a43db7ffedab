//! What a matched route does: forward (with timeout, retries, rewrite,
//! mirror and hashing), redirect, or answer directly; plus the per-route
//! filter configs (fault, CORS) and the route-level header operations.
//!
//! ```text
//! HttpRoute ─┬─ redirect ───────► RedirectAction
//!            ├─ directResponse ─► DirectResponseAction
//!            └─ route[] ────────► RouteAction ◄─ timeout, retries, rewrite, mirror, hash
//!            fault, corsPolicy ─► typed_per_filter_config
//!            headers ───────────► route header lists (host rewrite for the authority)
//! ```

use std::collections::HashMap;
use std::time::Duration;

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::config::route::v3::{
    DirectResponseAction, RedirectAction, RetryPolicy, RouteAction, redirect_action, route::Action,
    route_action::ClusterSpecifier, route_action::HostRewriteSpecifier,
    route_action::RequestMirrorPolicy,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{RegexMatchAndSubstitute, RegexMatcher};
use envoy_types::pb::google::protobuf::{Any, BoolValue};
use policy::networking::{
    HttpDirectResponse, HttpRedirect, HttpRewrite, HttpRoute, VirtualService,
};

use super::destination::{self, Cluster, Scope};
use super::headers::HeaderOps;
use super::{cors, fault, retry};
use crate::compile::proto::{self, filters};

/// Everything of an http route that does not depend on which `match` entry
/// selected it.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Compiled {
    pub(super) action: Action,
    pub(super) headers: HeaderOps,
    pub(super) per_filter: HashMap<String, Any>,
}

/// Compiles an http route of `vs`; `None` when it has nowhere to send traffic.
pub(super) fn compile(
    scope: &Scope<'_>,
    vs: &VirtualService,
    http: &HttpRoute,
) -> Option<Compiled> {
    let mut headers = http.headers.as_ref().map(HeaderOps::of).unwrap_or_default();
    let action = if let Some(redirect) = &http.redirect {
        Action::Redirect(redirect_action(redirect))
    } else if let Some(direct) = &http.direct_response {
        Action::DirectResponse(direct_response(direct))
    } else {
        let forward = destination::forward(scope, &vs.meta.namespace, &http.route)?;
        headers.extend(forward.headers);
        let hashing = !forward.hash_policy.is_empty();
        let mut action = route_action(
            forward.clusters,
            http.timeout,
            retry::policy(http.retries.as_ref(), hashing),
        );
        action.hash_policy = forward.hash_policy;
        if let Some(rewrite) = &http.rewrite {
            apply_rewrite(&mut action, rewrite);
        }
        if action.host_rewrite_specifier.is_none() {
            action.host_rewrite_specifier = headers
                .authority
                .clone()
                .map(HostRewriteSpecifier::HostRewriteLiteral);
        }
        action.request_mirror_policies = mirror(scope, vs, http).into_iter().collect();
        Action::Route(action)
    };

    let mut per_filter = HashMap::new();
    if let Some(f) = http.fault.as_ref().and_then(fault::to_proto) {
        per_filter.insert(filters::FAULT.to_string(), proto::any(f));
    }
    if let Some(c) = &http.cors_policy {
        per_filter.insert(filters::CORS.to_string(), proto::any(cors::to_proto(c)));
    }
    Some(Compiled {
        action,
        headers,
        per_filter,
    })
}

/// An outbound forwarding action. An unset timeout is 0s, which Envoy reads
/// as none (Istio's default). As in Istio, a gRPC request's `grpc-timeout`
/// header is honoured up to the route timeout (without limit when there is
/// none); unset, Envoy would ignore the header and apply the route timeout.
pub(super) fn route_action(
    clusters: ClusterSpecifier,
    timeout: Option<Duration>,
    retry_policy: Option<RetryPolicy>,
) -> RouteAction {
    let timeout = proto::duration(timeout.unwrap_or(Duration::ZERO));
    RouteAction {
        cluster_specifier: Some(clusters),
        timeout: Some(timeout),
        #[allow(deprecated)]
        max_grpc_timeout: Some(timeout),
        retry_policy,
        ..Default::default()
    }
}

/// `rewrite.uri` replaces the matched prefix (the whole path for an exact
/// match), `uriRegexRewrite` substitutes, `authority` sets the Host.
fn apply_rewrite(action: &mut RouteAction, rewrite: &HttpRewrite) {
    let HttpRewrite {
        uri,
        authority,
        uri_regex,
    } = rewrite;
    if let Some((pattern, substitution)) = uri_regex {
        action.regex_rewrite = Some(RegexMatchAndSubstitute {
            pattern: Some(RegexMatcher {
                regex: pattern.clone(),
                ..Default::default()
            }),
            substitution: substitution.clone(),
        });
    } else if let Some(uri) = uri.as_ref().filter(|u| !u.is_empty()) {
        action.prefix_rewrite = uri.clone();
    }
    if let Some(authority) = authority.as_ref().filter(|a| !a.is_empty()) {
        action.host_rewrite_specifier =
            Some(HostRewriteSpecifier::HostRewriteLiteral(authority.clone()));
    }
}

/// The mirror, resolved like a destination; none at 0 percent, all
/// requests when no percentage is given.
fn mirror(scope: &Scope<'_>, vs: &VirtualService, http: &HttpRoute) -> Option<RequestMirrorPolicy> {
    let dest = http.mirror.as_ref()?;
    let percentage = http.mirror_percentage.unwrap_or(100.0);
    if percentage <= 0.0 {
        return None;
    }
    Some(RequestMirrorPolicy {
        cluster: Cluster::resolve(scope, &vs.meta.namespace, dest).name,
        runtime_fraction: Some(proto::runtime_percent(percentage)),
        // As Istio: a mirrored request does not force tracing of the shadow
        // (Envoy's default samples every one).
        trace_sampled: Some(BoolValue { value: false }),
        ..Default::default()
    })
}

fn redirect_action(redirect: &HttpRedirect) -> RedirectAction {
    use redirect_action::RedirectResponseCode as Code;
    let HttpRedirect {
        uri,
        authority,
        port,
        scheme,
        redirect_code,
    } = redirect;
    let code = match redirect_code {
        Some(302) => Code::Found,
        Some(303) => Code::SeeOther,
        Some(307) => Code::TemporaryRedirect,
        Some(308) => Code::PermanentRedirect,
        // 301 and unset; validation admits no other code.
        _ => Code::MovedPermanently,
    };
    // The port is left out of the Location where it is the scheme's default
    // (sidecar listeners are plain HTTP, so an unset scheme is http), as
    // Istio does; 0 keeps the request's port.
    let default_port = match scheme.as_deref().unwrap_or("http") {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    };
    let port_redirect = port.filter(|p| Some(*p) != default_port);
    RedirectAction {
        host_redirect: authority.clone().unwrap_or_default(),
        port_redirect: port_redirect.map(u32::from).unwrap_or(0),
        response_code: code as i32,
        scheme_rewrite_specifier: scheme
            .clone()
            .map(redirect_action::SchemeRewriteSpecifier::SchemeRedirect),
        path_rewrite_specifier: uri
            .clone()
            .map(redirect_action::PathRewriteSpecifier::PathRedirect),
        ..Default::default()
    }
}

fn direct_response(direct: &HttpDirectResponse) -> DirectResponseAction {
    let HttpDirectResponse { status, body } = direct;
    DirectResponseAction {
        status: u32::from(*status),
        body: body.clone().map(|b| DataSource {
            specifier: Some(data_source::Specifier::InlineString(b)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_codes_and_default() {
        use redirect_action::RedirectResponseCode as Code;
        let mut r = HttpRedirect {
            uri: Some("/new".into()),
            ..Default::default()
        };
        let out = redirect_action(&r);
        assert_eq!(out.response_code, Code::MovedPermanently as i32);
        assert_eq!(
            out.path_rewrite_specifier,
            Some(redirect_action::PathRewriteSpecifier::PathRedirect(
                "/new".into()
            ))
        );
        assert_eq!(out.host_redirect, "");
        for (code, want) in [
            (302, Code::Found),
            (303, Code::SeeOther),
            (307, Code::TemporaryRedirect),
            (308, Code::PermanentRedirect),
        ] {
            r.redirect_code = Some(code);
            assert_eq!(redirect_action(&r).response_code, want as i32);
        }
        let out = redirect_action(&HttpRedirect {
            authority: Some("b.example".into()),
            port: Some(8443),
            scheme: Some("https".into()),
            ..Default::default()
        });
        assert_eq!(out.host_redirect, "b.example");
        assert_eq!(out.port_redirect, 8443);
        assert_eq!(out.path_rewrite_specifier, None);
        assert_eq!(
            out.scheme_rewrite_specifier,
            Some(redirect_action::SchemeRewriteSpecifier::SchemeRedirect(
                "https".into()
            ))
        );
    }

    #[test]
    fn redirect_leaves_out_the_scheme_s_default_port() {
        let port = |port: u16, scheme: Option<&str>| {
            redirect_action(&HttpRedirect {
                port: Some(port),
                scheme: scheme.map(str::to_string),
                ..Default::default()
            })
            .port_redirect
        };
        assert_eq!(port(80, None), 0);
        assert_eq!(port(80, Some("http")), 0);
        assert_eq!(port(443, Some("https")), 0);
        // Only the default port of the scheme the Location will carry.
        assert_eq!(port(443, None), 443);
        assert_eq!(port(80, Some("https")), 80);
        assert_eq!(port(8080, Some("http")), 8080);
    }

    #[test]
    fn grpc_timeout_is_capped_by_the_route_timeout() {
        #[allow(deprecated)]
        let max = |timeout| {
            route_action(ClusterSpecifier::Cluster("c".into()), timeout, None).max_grpc_timeout
        };
        assert_eq!(max(None), Some(proto::duration(Duration::ZERO)));
        assert_eq!(
            max(Some(Duration::from_secs(3))),
            Some(proto::duration(Duration::from_secs(3)))
        );
    }

    #[test]
    fn rewrite_prefers_the_regex_and_sets_the_authority() {
        let mut action = RouteAction::default();
        apply_rewrite(
            &mut action,
            &HttpRewrite {
                uri: Some("/ignored".into()),
                authority: Some("internal.example".into()),
                uri_regex: Some(("^/a/(.*)$".into(), "/b/\\1".into())),
            },
        );
        assert_eq!(action.prefix_rewrite, "");
        let regex = action.regex_rewrite.unwrap();
        assert_eq!(regex.pattern.unwrap().regex, "^/a/(.*)$");
        assert_eq!(regex.substitution, "/b/\\1");
        assert_eq!(
            action.host_rewrite_specifier,
            Some(HostRewriteSpecifier::HostRewriteLiteral(
                "internal.example".into()
            ))
        );

        let mut action = RouteAction::default();
        apply_rewrite(
            &mut action,
            &HttpRewrite {
                uri: Some("/v2/".into()),
                ..Default::default()
            },
        );
        assert_eq!(action.prefix_rewrite, "/v2/");
        assert_eq!(action.host_rewrite_specifier, None);
    }

    #[test]
    fn direct_response_with_and_without_body() {
        let out = direct_response(&HttpDirectResponse {
            status: 503,
            body: Some("closed".into()),
        });
        assert_eq!(out.status, 503);
        assert_eq!(
            out.body.unwrap().specifier,
            Some(data_source::Specifier::InlineString("closed".into()))
        );
        assert_eq!(
            direct_response(&HttpDirectResponse {
                status: 410,
                body: None
            })
            .body,
            None
        );
    }

    #[test]
    fn unset_timeout_is_zero() {
        let action = route_action(ClusterSpecifier::Cluster("c".into()), None, None);
        assert_eq!(action.timeout, Some(proto::duration(Duration::ZERO)));
        let action = route_action(
            ClusterSpecifier::Cluster("c".into()),
            Some(Duration::from_millis(2500)),
            None,
        );
        assert_eq!(
            action.timeout,
            Some(proto::duration(Duration::from_millis(2500)))
        );
    }
}
