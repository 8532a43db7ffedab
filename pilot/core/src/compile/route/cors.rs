//! CORS: an http route's `corsPolicy` as the per-route config of Envoy's
//! CORS filter (installed, empty, in the outbound listener).
//!
//! ```text
//! allowOrigins ─────────────────────► allow_origin_string_match
//! allowMethods/Headers, exposeHeaders ► comma-joined strings
//! maxAge ───────────────────────────► seconds, as a string
//! allowCredentials ─────────────────► allow_credentials
//! ```
//!
//! As Istio does by default, the policy is enabled for every request and a
//! preflight request that matches no allowed origin is forwarded upstream.

use envoy_types::pb::envoy::extensions::filters::http::cors::v3::CorsPolicy as EnvoyCors;
use envoy_types::pb::google::protobuf::BoolValue;
use policy::networking::CorsPolicy;

use super::matching;
use crate::compile::proto;

pub(super) fn to_proto(cors: &CorsPolicy) -> EnvoyCors {
    let CorsPolicy {
        allow_origins,
        allow_methods,
        allow_headers,
        expose_headers,
        max_age,
        allow_credentials,
    } = cors;
    EnvoyCors {
        allow_origin_string_match: allow_origins.iter().map(matching::string_matcher).collect(),
        allow_methods: allow_methods.join(","),
        allow_headers: allow_headers.join(","),
        expose_headers: expose_headers.join(","),
        max_age: max_age.map(|d| d.as_secs().to_string()).unwrap_or_default(),
        allow_credentials: allow_credentials.map(|value| BoolValue { value }),
        filter_enabled: Some(proto::runtime_percent(100.0)),
        forward_not_matching_preflights: Some(BoolValue { value: true }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern;
    use policy::networking::StringMatch;

    use super::*;

    #[test]
    fn policy_fields() {
        let cors = CorsPolicy {
            allow_origins: vec![
                StringMatch::Exact("https://shop.example".into()),
                StringMatch::Regex("https://.*\\.example".into()),
            ],
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["x-a".into(), "x-b".into()],
            expose_headers: vec!["x-c".into()],
            max_age: Some(Duration::from_secs(86400)),
            allow_credentials: Some(false),
        };
        let out = to_proto(&cors);
        assert_eq!(out.allow_origin_string_match.len(), 2);
        assert_eq!(
            out.allow_origin_string_match[0].match_pattern,
            Some(MatchPattern::Exact("https://shop.example".into()))
        );
        assert_eq!(out.allow_methods, "GET,POST");
        assert_eq!(out.allow_headers, "x-a,x-b");
        assert_eq!(out.expose_headers, "x-c");
        assert_eq!(out.max_age, "86400");
        assert_eq!(out.allow_credentials, Some(BoolValue { value: false }));
        assert_eq!(
            out.filter_enabled.unwrap().default_value.unwrap().numerator,
            1_000_000
        );
    }

    #[test]
    fn unset_fields_stay_unset() {
        let out = to_proto(&CorsPolicy::default());
        assert!(out.allow_origin_string_match.is_empty());
        assert_eq!(out.max_age, "");
        assert_eq!(out.allow_credentials, None);
    }
}
