//! RequestAuthentication as Envoy's JWT filter on a workload's inbound HTTP
//! connection managers, before the RBAC filters.
//!
//! ```text
//! jwtRules of every RequestAuthentication that applies ─► one provider each (origins-N)
//!     issuer, audiences, fromHeaders / fromParams (else Authorization: Bearer), forwardOriginalToken,
//!     outputPayloadToHeader, the inline jwks; the verified payload in metadata under the issuer
//! one rule for every path: any provider, or no token at all
//! ```
//!
//! As in Istio, a request with a token no provider verifies gets 401, one
//! without a token passes (an AuthorizationPolicy may require a request
//! principal). The request principal `ISSUER/SUBJECT` and the claims are
//! read by RBAC from the metadata (see `authz`). Keys from a `jwksUri`
//! (or the issuer's discovery document) are fetched by the control plane
//! and inlined ([`Snapshot::jwks`](crate::snapshot::Snapshot::jwks)); until
//! they have been fetched, such a rule verifies with a key whose private
//! half no one holds, so its tokens are refused, as Istio refuses them
//! while it cannot fetch the keys.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source};
use envoy_types::pb::envoy::config::route::v3::{RouteMatch, route_match::PathSpecifier};
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtHeader, JwtProvider, JwtRequirement, JwtRequirementOrList,
    RequirementRule, jwt_provider::JwksSourceSpecifier, jwt_requirement::RequiresType,
    requirement_rule::RequirementType,
};
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::google::protobuf::{Any, Empty};
use policy::security::{KeySource, RequestAuthentication};
use prost::Message;

/// The JWT filter's name, and the metadata namespace it writes payloads to.
pub(crate) const JWT_AUTHN: &str = "envoy.filters.http.jwt_authn";

/// A P-256 public key whose private key was discarded when it was made:
/// nothing verifies against it.
const UNVERIFIABLE_JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"ojY_8Spyf0izJ5BGCN7oe-SHDx-2C-44a0jjCC35Mek","y":"t4y0SGPY_VT93paKoKceK6ckf_tZnuMhogLW73FAm90"}]}"#;

/// The JWT filter for the RequestAuthentications that apply to a workload
/// (in namespace and name order), and the issuers it verifies, sorted:
/// `None` when none applies.
pub(crate) fn http_filter<'a>(
    policies: impl IntoIterator<Item = &'a Arc<RequestAuthentication>>,
    fetched: &BTreeMap<KeySource, Arc<str>>,
) -> Option<(HttpFilter, Vec<String>)> {
    let mut providers = Vec::new();
    for policy in policies {
        for rule in &policy.spec.jwt_rules {
            let name = format!("origins-{}", providers.len());
            let jwks = match rule.key_source() {
                None => rule.jwks.clone().unwrap_or_default(),
                Some(source) => fetched
                    .get(&source)
                    .map_or_else(|| UNVERIFIABLE_JWKS.to_string(), |k| k.to_string()),
            };
            let provider = JwtProvider {
                issuer: rule.issuer.clone(),
                audiences: rule.audiences.clone(),
                forward: rule.forward_original_token,
                from_headers: rule
                    .from_headers
                    .iter()
                    .map(|h| JwtHeader {
                        name: h.name.clone(),
                        value_prefix: h.prefix.clone().unwrap_or_default(),
                    })
                    .collect(),
                from_params: rule.from_params.clone(),
                forward_payload_header: rule.output_payload_to_header.clone().unwrap_or_default(),
                payload_in_metadata: rule.issuer.clone(),
                jwks_source_specifier: Some(JwksSourceSpecifier::LocalJwks(DataSource {
                    specifier: Some(data_source::Specifier::InlineString(jwks)),
                    ..Default::default()
                })),
                ..Default::default()
            };
            providers.push((name, provider));
        }
    }
    if providers.is_empty() {
        return None;
    }
    let mut issuers: Vec<String> = providers.iter().map(|(_, p)| p.issuer.clone()).collect();
    issuers.sort();
    issuers.dedup();
    let mut requirements: Vec<JwtRequirement> = providers
        .iter()
        .map(|(name, _)| JwtRequirement {
            requires_type: Some(RequiresType::ProviderName(name.clone())),
        })
        .collect();
    requirements.push(JwtRequirement {
        requires_type: Some(RequiresType::AllowMissing(Empty {})),
    });
    let config = JwtAuthentication {
        rules: vec![RequirementRule {
            r#match: Some(RouteMatch {
                path_specifier: Some(PathSpecifier::Prefix("/".to_string())),
                ..Default::default()
            }),
            requirement_type: Some(RequirementType::Requires(JwtRequirement {
                requires_type: Some(RequiresType::RequiresAny(JwtRequirementOrList {
                    requirements,
                })),
            })),
        }],
        ..Default::default()
    };
    let filter = HttpFilter {
        name: JWT_AUTHN.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(encode(
            config, &providers,
        ))),
        ..Default::default()
    };
    Some((filter, issuers))
}

/// The config with its providers in name order: the generated type keeps
/// them in a `HashMap`, whose encoding order changes from run to run, so
/// each entry is encoded on its own (protobuf concatenates map entries).
fn encode(config: JwtAuthentication, providers: &[(String, JwtProvider)]) -> Any {
    let mut value = config.encode_to_vec();
    let mut sorted: Vec<&(String, JwtProvider)> = providers.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, provider) in sorted {
        let one = JwtAuthentication {
            providers: [(name.clone(), provider.clone())].into(),
            ..Default::default()
        };
        one.encode(&mut value).unwrap_or_default();
    }
    Any {
        type_url: <JwtAuthentication as prost::Name>::type_url(),
        value,
    }
}

#[cfg(test)]
mod tests {
    use policy::security::{JwtRule, RequestAuthenticationSpec};

    use super::*;

    fn policy(issuers: &[&str]) -> Arc<RequestAuthentication> {
        Arc::new(RequestAuthentication {
            meta: Default::default(),
            spec: RequestAuthenticationSpec {
                selector: None,
                jwt_rules: issuers
                    .iter()
                    .map(|i| JwtRule {
                        issuer: i.to_string(),
                        jwks_uri: Some("https://example.com/k".into()),
                        ..Default::default()
                    })
                    .collect(),
            },
        })
    }

    #[test]
    fn providers_encode_in_name_order_every_time() {
        let policies = [policy(&["b", "a", "c", "a"])];
        let none = BTreeMap::new();
        let (first, issuers) = http_filter(&policies, &none).unwrap();
        assert_eq!(issuers, ["a", "b", "c"]);
        for _ in 0..20 {
            assert_eq!(http_filter(&policies, &none).unwrap().0, first);
        }
        let Some(http_filter::ConfigType::TypedConfig(any)) = &first.config_type else {
            panic!()
        };
        let decoded = JwtAuthentication::decode(any.value.as_slice()).unwrap();
        assert_eq!(decoded.providers.len(), 4);
        let unfetched = &decoded.providers["origins-0"];
        assert_eq!(unfetched.issuer, "b");
        assert_eq!(unfetched.payload_in_metadata, "b");
        assert!(matches!(
            &unfetched.jwks_source_specifier,
            Some(JwksSourceSpecifier::LocalJwks(DataSource {
                specifier: Some(data_source::Specifier::InlineString(s)),
                ..
            })) if s == UNVERIFIABLE_JWKS
        ));
        assert!(http_filter(&[], &none).is_none());
    }

    fn inline_keys(filter: &HttpFilter, provider: &str) -> String {
        let Some(http_filter::ConfigType::TypedConfig(any)) = &filter.config_type else {
            panic!()
        };
        let decoded = JwtAuthentication::decode(any.value.as_slice()).unwrap();
        match &decoded.providers[provider].jwks_source_specifier {
            Some(JwksSourceSpecifier::LocalJwks(DataSource {
                specifier: Some(data_source::Specifier::InlineString(s)),
                ..
            })) => s.clone(),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn fetched_keys_are_inlined_by_their_source() {
        let mut discovered = policy(&["https://issuer.example/"]);
        Arc::make_mut(&mut discovered).spec.jwt_rules[0].jwks_uri = None;
        let policies = [policy(&["a"]), discovered];
        let fetched = BTreeMap::from([
            (
                KeySource::JwksUri("https://example.com/k".into()),
                Arc::from(r#"{"keys":[{"kty":"oct","k":"a2V5"}]}"#),
            ),
            (
                KeySource::Discovery(
                    "https://issuer.example/.well-known/openid-configuration".into(),
                ),
                Arc::from(r#"{"keys":[{"kty":"oct","k":"ZGlzY292ZXJlZA"}]}"#),
            ),
        ]);
        let (filter, _) = http_filter(&policies, &fetched).unwrap();
        assert!(inline_keys(&filter, "origins-0").contains("a2V5"));
        assert!(inline_keys(&filter, "origins-1").contains("ZGlzY292ZXJlZA"));
        // Not fetched (yet): nothing verifies.
        let (filter, _) = http_filter(&policies, &BTreeMap::new()).unwrap();
        assert_eq!(inline_keys(&filter, "origins-1"), UNVERIFIABLE_JWKS);
    }
}
