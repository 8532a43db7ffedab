//! Request matching: an Istio `HttpMatchRequest` as an Envoy `RouteMatch`,
//! and whether a match entry applies to a proxy at all.
//!
//! ```text
//! uri ─────────────────► path / prefix / safe_regex (+ case_sensitive;
//!                         a regex gets RE2's `(?i)` flag instead)
//! headers, withoutHeaders ► HeaderMatcher (inverted for withoutHeaders, a
//!                         missing header read as empty), by name
//! method, authority, scheme ► HeaderMatcher on :method, :authority, :scheme
//! queryParams ─────────► QueryParameterMatcher
//! port, sourceLabels, sourceNamespace ► decided here, at compile time
//! ```

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::route::v3::{
    HeaderMatcher, QueryParameterMatcher, RouteMatch, header_matcher::HeaderMatchSpecifier,
    query_parameter_matcher::QueryParameterMatchSpecifier, route_match::PathSpecifier,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    RegexMatcher, StringMatcher, string_matcher::MatchPattern,
};
use envoy_types::pb::google::protobuf::BoolValue;
use policy::networking::{HttpMatchRequest, StringMatch};

/// Whether a match entry can apply to requests from this proxy on this
/// service port. Istio decides `port`, `sourceLabels` and `sourceNamespace`
/// when it generates a proxy's routes; an entry that fails them is left out.
pub(super) fn applies(
    m: &HttpMatchRequest,
    port: u16,
    namespace: &str,
    labels: &BTreeMap<String, String>,
) -> bool {
    m.port.is_none_or(|p| p == port)
        && m.source_namespace
            .as_deref()
            .is_none_or(|ns| ns == namespace)
        && m.source_labels
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|have| have == v))
}

/// The Envoy match of one entry; no entry matches every request.
pub(super) fn route_match(m: Option<&HttpMatchRequest>) -> RouteMatch {
    let Some(m) = m else {
        return prefix("/");
    };
    let path = match &m.uri {
        None => PathSpecifier::Prefix("/".to_string()),
        Some(StringMatch::Exact(p)) => PathSpecifier::Path(p.clone()),
        Some(StringMatch::Prefix(p)) => PathSpecifier::Prefix(p.clone()),
        // Envoy's `case_sensitive` covers only path and prefix; a regex is
        // made case-insensitive by RE2's own flag.
        Some(StringMatch::Regex(r)) if m.ignore_uri_case => {
            PathSpecifier::SafeRegex(regex(&format!("(?i){r}")))
        }
        Some(StringMatch::Regex(r)) => PathSpecifier::SafeRegex(regex(r)),
    };

    // Header conditions, present and absent alike, in name order, as Istio
    // orders them; then the pseudo-headers.
    let mut named: Vec<(&String, HeaderMatcher)> = m
        .headers
        .iter()
        .map(|(name, sm)| (name, header(name, sm, false)))
        .chain(
            m.without_headers
                .iter()
                .map(|(name, sm)| (name, header(name, sm, true))),
        )
        .collect();
    named.sort_by(|a, b| a.0.cmp(b.0));
    let mut headers: Vec<HeaderMatcher> = named.into_iter().map(|(_, h)| h).collect();
    for (name, sm) in [
        (":method", &m.method),
        (":authority", &m.authority),
        (":scheme", &m.scheme),
    ] {
        if let Some(sm) = sm {
            headers.push(header(name, sm, false));
        }
    }

    let query_parameters = m
        .query_params
        .iter()
        .map(|(name, sm)| QueryParameterMatcher {
            name: name.clone(),
            query_parameter_match_specifier: Some(match presence(sm) {
                true => QueryParameterMatchSpecifier::PresentMatch(true),
                false => QueryParameterMatchSpecifier::StringMatch(string_matcher(sm)),
            }),
        })
        .collect();

    RouteMatch {
        path_specifier: Some(path),
        // Envoy's default is case-sensitive; say so only when it differs.
        case_sensitive: m.ignore_uri_case.then_some(BoolValue { value: false }),
        headers,
        query_parameters,
        ..Default::default()
    }
}

/// A match that every request satisfies: no route after it can be reached.
pub(super) fn is_catch_all(m: &RouteMatch) -> bool {
    matches!(&m.path_specifier, Some(PathSpecifier::Prefix(p)) if p == "/")
        && m.headers.is_empty()
        && m.query_parameters.is_empty()
}

/// An Envoy string matcher for an Istio one.
pub(crate) fn string_matcher(m: &StringMatch) -> StringMatcher {
    let pattern = match m {
        StringMatch::Exact(s) => MatchPattern::Exact(s.clone()),
        StringMatch::Prefix(s) => MatchPattern::Prefix(s.clone()),
        StringMatch::Regex(r) => MatchPattern::SafeRegex(regex(r)),
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case: false,
    }
}

pub(super) fn prefix(p: &str) -> RouteMatch {
    RouteMatch {
        path_specifier: Some(PathSpecifier::Prefix(p.to_string())),
        ..Default::default()
    }
}

fn regex(r: &str) -> RegexMatcher {
    RegexMatcher {
        regex: r.to_string(),
        ..Default::default()
    }
}

/// Conditions that any value satisfies: Istio treats the regexes `*` and
/// `.*` as "present", and Envoy rejects an empty prefix.
fn presence(m: &StringMatch) -> bool {
    match m {
        StringMatch::Regex(r) => r == "*" || r == ".*",
        StringMatch::Prefix(p) => p.is_empty(),
        StringMatch::Exact(_) => false,
    }
}

/// A header condition; inverted, it holds when the header is absent or does
/// not match. Envoy never matches a value condition on a missing header,
/// inverted or not, so an inverted one reads a missing header as empty (as
/// Istio does); a presence condition inverts the absent case by itself, and
/// Envoy rejects the flag beside it.
fn header(name: &str, m: &StringMatch, invert: bool) -> HeaderMatcher {
    let present = presence(m);
    let specifier = if present {
        HeaderMatchSpecifier::PresentMatch(true)
    } else {
        HeaderMatchSpecifier::StringMatch(string_matcher(m))
    };
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(specifier),
        invert_match: invert,
        treat_missing_header_as_empty: invert && !present,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exact(s: &str) -> StringMatch {
        StringMatch::Exact(s.to_string())
    }

    fn pattern(h: &HeaderMatcher) -> Option<&MatchPattern> {
        match &h.header_match_specifier {
            Some(HeaderMatchSpecifier::StringMatch(sm)) => sm.match_pattern.as_ref(),
            _ => None,
        }
    }

    #[test]
    fn no_entry_matches_everything() {
        let m = route_match(None);
        assert!(is_catch_all(&m));
        assert!(is_catch_all(&route_match(Some(
            &HttpMatchRequest::default()
        ))));
    }

    #[test]
    fn uri_kinds_and_case() {
        let mut m = HttpMatchRequest {
            uri: Some(exact("/login")),
            ..Default::default()
        };
        let out = route_match(Some(&m));
        assert_eq!(
            out.path_specifier,
            Some(PathSpecifier::Path("/login".into()))
        );
        assert_eq!(out.case_sensitive, None);

        m.uri = Some(StringMatch::Prefix("/api/".into()));
        m.ignore_uri_case = true;
        let out = route_match(Some(&m));
        assert_eq!(
            out.path_specifier,
            Some(PathSpecifier::Prefix("/api/".into()))
        );
        assert_eq!(out.case_sensitive, Some(BoolValue { value: false }));

        // Envoy's case_sensitive does not reach a regex: RE2's flag does.
        m.uri = Some(StringMatch::Regex("/v[0-9]+/.*".into()));
        let out = route_match(Some(&m));
        match out.path_specifier {
            Some(PathSpecifier::SafeRegex(r)) => assert_eq!(r.regex, "(?i)/v[0-9]+/.*"),
            other => panic!("not a regex: {other:?}"),
        }
        m.ignore_uri_case = false;
        let out = route_match(Some(&m));
        match out.path_specifier {
            Some(PathSpecifier::SafeRegex(r)) => assert_eq!(r.regex, "/v[0-9]+/.*"),
            other => panic!("not a regex: {other:?}"),
        }
    }

    #[test]
    fn without_headers_read_a_missing_header_as_empty() {
        let m = HttpMatchRequest {
            headers: [("x-user".to_string(), exact("alice"))].into(),
            without_headers: [
                ("x-a".to_string(), exact("alice")),
                ("x-b".to_string(), StringMatch::Prefix("al".into())),
                ("x-c".to_string(), StringMatch::Regex("a.*".into())),
                ("x-d".to_string(), StringMatch::Regex("*".into())),
            ]
            .into(),
            ..Default::default()
        };
        let out = route_match(Some(&m));
        let flags: Vec<(&str, bool, bool)> = out
            .headers
            .iter()
            .map(|h| {
                (
                    h.name.as_str(),
                    h.invert_match,
                    h.treat_missing_header_as_empty,
                )
            })
            .collect();
        assert_eq!(
            flags,
            [
                ("x-a", true, true),
                ("x-b", true, true),
                ("x-c", true, true),
                // A presence condition: inverting it already means "absent".
                ("x-d", true, false),
                // A condition on a header that must be there is not touched.
                ("x-user", false, false),
            ]
        );
    }

    #[test]
    fn headers_sorted_then_pseudo_headers() {
        let m = HttpMatchRequest {
            headers: [
                ("x-user".to_string(), exact("jason")),
                ("a-tenant".to_string(), StringMatch::Prefix("blue".into())),
            ]
            .into(),
            without_headers: [("x-canary".to_string(), StringMatch::Regex(".*".into()))].into(),
            method: Some(exact("GET")),
            authority: Some(StringMatch::Prefix("shop".into())),
            scheme: Some(exact("http")),
            ..Default::default()
        };
        let out = route_match(Some(&m));
        let names: Vec<&str> = out.headers.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "a-tenant",
                "x-canary",
                "x-user",
                ":method",
                ":authority",
                ":scheme"
            ]
        );
        assert_eq!(
            pattern(&out.headers[0]),
            Some(&MatchPattern::Prefix("blue".into()))
        );
        // withoutHeaders: inverted; ".*" means "present", so "absent" here.
        assert!(out.headers[1].invert_match);
        assert_eq!(
            out.headers[1].header_match_specifier,
            Some(HeaderMatchSpecifier::PresentMatch(true))
        );
        assert!(!out.headers[2].invert_match);
        assert_eq!(
            pattern(&out.headers[3]),
            Some(&MatchPattern::Exact("GET".into()))
        );
        assert!(!is_catch_all(&out));
    }

    #[test]
    fn query_parameters() {
        let m = HttpMatchRequest {
            query_params: [
                ("debug".to_string(), StringMatch::Regex("*".into())),
                ("v".to_string(), exact("2")),
            ]
            .into(),
            ..Default::default()
        };
        let out = route_match(Some(&m));
        assert_eq!(out.query_parameters.len(), 2);
        assert_eq!(out.query_parameters[0].name, "debug");
        assert_eq!(
            out.query_parameters[0].query_parameter_match_specifier,
            Some(QueryParameterMatchSpecifier::PresentMatch(true))
        );
        assert_eq!(
            out.query_parameters[1].query_parameter_match_specifier,
            Some(QueryParameterMatchSpecifier::StringMatch(string_matcher(
                &exact("2")
            )))
        );
        assert!(!is_catch_all(&out));
    }

    #[test]
    fn source_and_port_conditions() {
        let labels: BTreeMap<String, String> = [
            ("app".into(), "web".into()),
            ("version".into(), "v1".into()),
        ]
        .into();
        let mut m = HttpMatchRequest::default();
        assert!(applies(&m, 80, "shop", &labels));

        m.source_labels = [("app".to_string(), "web".to_string())].into();
        assert!(applies(&m, 80, "shop", &labels));
        m.source_labels.insert("version".into(), "v2".into());
        assert!(!applies(&m, 80, "shop", &labels));
        m.source_labels.clear();

        m.source_namespace = Some("shop".into());
        assert!(applies(&m, 80, "shop", &labels));
        assert!(!applies(&m, 80, "other", &labels));

        m.port = Some(8080);
        assert!(applies(&m, 8080, "shop", &labels));
        assert!(!applies(&m, 80, "shop", &labels));
    }
}
