//! The JWT filter of a destination's inbound chain, as `bowline explain`
//! evaluates it: where Envoy looks for a token, whether it verifies it,
//! and the payload the RBAC filters then read.
//!
//! ```text
//! each provider's locations (its headers and query parameters; else
//! `Authorization: Bearer` and `access_token`) ──► the first token found
//!   ──► its issuer names a provider? ──► exp, nbf, audiences ──► signature, by the provider's inline keys
//!   no token ──► passes (allow_missing): no request principal
//!   any failure ──► 401, with Envoy's words for it
//! ```
//!
//! Signatures: RS256/384/512, PS256/384/512, ES256/384 and EdDSA (Ed25519),
//! checked with ring against the JWKS the compiled provider carries inline
//! (the keys the control plane fetched, or the rule's own `jwks`).

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use envoy_types::pb::envoy::config::core::v3::data_source::Specifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::jwt_provider::JwksSourceSpecifier;
use envoy_types::pb::envoy::extensions::filters::http::jwt_authn::v3::{
    JwtAuthentication, JwtProvider,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{
    ListMatcher, MetadataMatcher, ValueMatcher, list_matcher, metadata_matcher, value_matcher,
};
use serde_json::Value;

use super::{Request, string_matches};

/// A token the filter verified: its payload is in the request's metadata
/// under the provider's `payload_in_metadata` (the issuer).
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Verified {
    /// The provider's name (`origins-N`).
    pub provider: String,
    pub issuer: String,
    pub payload: Value,
}

/// What the filter does with a request.
#[derive(Clone, Debug, PartialEq)]
pub(super) enum Outcome {
    /// No token where any provider looks: the request passes without a
    /// request principal.
    NoToken,
    Verified(Verified),
    /// 401, and why (Envoy's words), with the provider that refused it
    /// where one did.
    Refused {
        why: String,
        provider: Option<String>,
    },
}

/// The providers in the order of their names (`origins-0`, `origins-1`,
/// ...), as the compiler numbered the rules.
fn providers(config: &JwtAuthentication) -> Vec<(&String, &JwtProvider)> {
    let mut list: Vec<(&String, &JwtProvider)> = config.providers.iter().collect();
    list.sort_by_key(|(name, _)| {
        (
            name.rsplit('-')
                .next()
                .and_then(|n| n.parse::<usize>().ok())
                .unwrap_or(usize::MAX),
            name.to_string(),
        )
    });
    list
}

/// The token in one of `provider`'s locations.
fn token_for<'a>(provider: &JwtProvider, request: &'a Request) -> Option<&'a str> {
    if provider.from_headers.is_empty() && provider.from_params.is_empty() {
        let bearer = request.header("authorization").and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
        return bearer.or_else(|| request.query("access_token"));
    }
    for header in &provider.from_headers {
        if let Some(value) = request.header(&header.name.to_ascii_lowercase()) {
            let token = value
                .strip_prefix(header.value_prefix.as_str())
                .unwrap_or(value);
            return Some(token.trim());
        }
    }
    provider.from_params.iter().find_map(|p| request.query(p))
}

/// What the JWT filter `config` does with `request` at Unix time `now`.
pub(super) fn authenticate(config: &JwtAuthentication, request: &Request, now: u64) -> Outcome {
    let providers = providers(config);
    let Some(token) = providers.iter().find_map(|(_, p)| token_for(p, request)) else {
        return Outcome::NoToken;
    };
    let Some((header, payload, signed, signature)) = parse(token) else {
        return Outcome::Refused {
            why: "Jwt is not in the form of Header.Payload.Signature with two dots and 3 sections"
                .to_string(),
            provider: None,
        };
    };
    let issuer = payload["iss"].as_str().unwrap_or_default();
    let Some((name, provider)) = providers.iter().find(|(_, p)| {
        token_for(p, request) == Some(token) && (p.issuer.is_empty() || p.issuer == issuer)
    }) else {
        return Outcome::Refused {
            why: format!("Jwt issuer is not configured (the token's issuer is {issuer:?})"),
            provider: None,
        };
    };
    let refused = |why: String| Outcome::Refused {
        why,
        provider: Some(name.to_string()),
    };
    if let Some(exp) = payload["exp"].as_u64()
        && now >= exp
    {
        return refused("Jwt is expired".to_string());
    }
    if let Some(nbf) = payload["nbf"].as_u64()
        && now < nbf
    {
        return refused("Jwt not yet valid".to_string());
    }
    if !provider.audiences.is_empty() {
        let audiences: Vec<&str> = match &payload["aud"] {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !audiences
            .iter()
            .any(|a| provider.audiences.iter().any(|b| b == a))
        {
            return refused(format!(
                "Audiences in Jwt are not allowed (the token's: {audiences:?}; the rule's: {:?})",
                provider.audiences
            ));
        }
    }
    let keys = match &provider.jwks_source_specifier {
        Some(JwksSourceSpecifier::LocalJwks(source)) => match &source.specifier {
            Some(Specifier::InlineString(text)) => {
                serde_json::from_str::<Value>(text).unwrap_or_default()
            }
            _ => Value::Null,
        },
        _ => Value::Null,
    };
    let alg = header["alg"].as_str().unwrap_or_default();
    let kid = header["kid"].as_str();
    let verified = keys["keys"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|k| kid.is_none_or(|kid| k["kid"].as_str().is_none_or(|k| k == kid)))
        .any(|key| verify(alg, key, signed.as_bytes(), &signature));
    if !verified {
        return refused("Jwt verification fails".to_string());
    }
    Outcome::Verified(Verified {
        provider: name.to_string(),
        issuer: provider.payload_in_metadata.clone(),
        payload,
    })
}

/// The header and payload of a compact JWT, the signed part and the
/// signature.
fn parse(token: &str) -> Option<(Value, Value, &str, Vec<u8>)> {
    let mut parts = token.split('.');
    let (header, payload, signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }
    let json = |part: &str| -> Option<Value> {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).ok()?).ok()
    };
    let signed = &token[..header.len() + 1 + payload.len()];
    Some((
        json(header)?,
        json(payload)?,
        signed,
        URL_SAFE_NO_PAD.decode(signature).ok()?,
    ))
}

/// Whether `signature` over `message` verifies with the JWK `key` by `alg`.
fn verify(alg: &str, key: &Value, message: &[u8], signature: &[u8]) -> bool {
    use ring::signature as sig;
    let field = |name: &str| {
        key[name]
            .as_str()
            .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
    };
    if key["alg"].as_str().is_some_and(|a| a != alg) {
        return false;
    }
    let rsa = |params: &'static sig::RsaParameters| {
        let (Some(n), Some(e)) = (field("n"), field("e")) else {
            return false;
        };
        key["kty"] == "RSA"
            && sig::RsaPublicKeyComponents { n, e }
                .verify(params, message, signature)
                .is_ok()
    };
    let ec = |curve: &str, params: &'static sig::EcdsaVerificationAlgorithm| {
        let (Some(x), Some(y)) = (field("x"), field("y")) else {
            return false;
        };
        let mut point = vec![0x04];
        point.extend(x);
        point.extend(y);
        key["kty"] == "EC"
            && key["crv"] == curve
            && sig::UnparsedPublicKey::new(params, point)
                .verify(message, signature)
                .is_ok()
    };
    match alg {
        "RS256" => rsa(&sig::RSA_PKCS1_2048_8192_SHA256),
        "RS384" => rsa(&sig::RSA_PKCS1_2048_8192_SHA384),
        "RS512" => rsa(&sig::RSA_PKCS1_2048_8192_SHA512),
        "PS256" => rsa(&sig::RSA_PSS_2048_8192_SHA256),
        "PS384" => rsa(&sig::RSA_PSS_2048_8192_SHA384),
        "PS512" => rsa(&sig::RSA_PSS_2048_8192_SHA512),
        "ES256" => ec("P-256", &sig::ECDSA_P256_SHA256_FIXED),
        "ES384" => ec("P-384", &sig::ECDSA_P384_SHA384_FIXED),
        "EdDSA" => {
            key["kty"] == "OKP"
                && key["crv"] == "Ed25519"
                && field("x").is_some_and(|x| {
                    sig::UnparsedPublicKey::new(&sig::ED25519, x)
                        .verify(message, signature)
                        .is_ok()
                })
        }
        _ => false,
    }
}

/// Whether the RBAC metadata matcher `m` holds for the metadata the JWT
/// filter wrote (`verified`: `{ISSUER: payload}` under its namespace).
pub(super) fn metadata_matches(
    m: &MetadataMatcher,
    filter: &str,
    verified: Option<&Verified>,
) -> bool {
    let value = (m.filter == filter)
        .then_some(verified)
        .flatten()
        .and_then(|v| {
            let mut segments = m.path.iter().map(|s| match &s.segment {
                Some(metadata_matcher::path_segment::Segment::Key(k)) => k.as_str(),
                None => "",
            });
            if segments.next() != Some(v.issuer.as_str()) {
                return None;
            }
            segments.try_fold(&v.payload, |at, key| at.get(key))
        });
    let matched = m.value.as_ref().is_some_and(|vm| value_matches(vm, value));
    matched != m.invert
}

fn value_matches(vm: &ValueMatcher, value: Option<&Value>) -> bool {
    use value_matcher::MatchPattern;
    match &vm.match_pattern {
        Some(MatchPattern::PresentMatch(present)) => value.is_some() == *present,
        Some(MatchPattern::NullMatch(_)) => value.is_some_and(Value::is_null),
        Some(MatchPattern::BoolMatch(b)) => value.and_then(Value::as_bool) == Some(*b),
        Some(MatchPattern::StringMatch(sm)) => value
            .and_then(Value::as_str)
            .is_some_and(|s| string_matches(sm, s)),
        Some(MatchPattern::ListMatch(list)) => {
            let ListMatcher { match_pattern } = list.as_ref();
            match match_pattern {
                Some(list_matcher::MatchPattern::OneOf(one)) => value
                    .and_then(Value::as_array)
                    .is_some_and(|items| items.iter().any(|i| value_matches(one, Some(i)))),
                None => false,
            }
        }
        Some(MatchPattern::OrMatch(or)) => {
            or.value_matchers.iter().any(|m| value_matches(m, value))
        }
        Some(MatchPattern::DoubleMatch(_)) | None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::core::v3::DataSource;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};

    struct Issuer {
        key: EcdsaKeyPair,
        jwks: String,
    }

    impl Issuer {
        fn new() -> Issuer {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
            let key =
                EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
                    .unwrap();
            let point = key.public_key().as_ref();
            let jwks = serde_json::json!({"keys": [{
                "kty": "EC", "crv": "P-256", "kid": "k1",
                "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
                "y": URL_SAFE_NO_PAD.encode(&point[33..]),
            }]})
            .to_string();
            Issuer { key, jwks }
        }

        fn token(&self, payload: Value) -> String {
            let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","kid":"k1"}"#);
            let body = URL_SAFE_NO_PAD.encode(payload.to_string());
            let signed = format!("{header}.{body}");
            let signature = self
                .key
                .sign(&SystemRandom::new(), signed.as_bytes())
                .unwrap();
            format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
        }
    }

    fn config(issuer: &Issuer, audiences: &[&str]) -> JwtAuthentication {
        let provider = JwtProvider {
            issuer: "https://auth.example".to_string(),
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
            payload_in_metadata: "https://auth.example".to_string(),
            jwks_source_specifier: Some(JwksSourceSpecifier::LocalJwks(DataSource {
                specifier: Some(Specifier::InlineString(issuer.jwks.clone())),
                ..Default::default()
            })),
            ..Default::default()
        };
        JwtAuthentication {
            providers: [("origins-0".to_string(), provider)].into_iter().collect(),
            ..Default::default()
        }
    }

    fn with_token(token: &str) -> Request {
        Request::get(
            "http://reviews:9080/",
            &[("Authorization".to_string(), format!("Bearer {token}"))],
        )
        .unwrap()
    }

    fn why(outcome: Outcome) -> String {
        match outcome {
            Outcome::Refused { why, .. } => why,
            other => panic!("not refused: {other:?}"),
        }
    }

    #[test]
    fn a_valid_token_is_verified_and_its_payload_kept() {
        let issuer = Issuer::new();
        let token = issuer.token(serde_json::json!({
            "iss": "https://auth.example", "sub": "alice", "aud": ["reviews"], "exp": 2_000, "groups": ["admins"],
        }));
        let outcome = authenticate(&config(&issuer, &["reviews"]), &with_token(&token), 1_000);
        let Outcome::Verified(v) = outcome else {
            panic!("{outcome:?}")
        };
        assert_eq!(
            (v.provider.as_str(), v.issuer.as_str()),
            ("origins-0", "https://auth.example")
        );
        assert_eq!(v.payload["sub"], "alice");
        // The metadata RBAC reads: the subject, and a claim in a list.
        let matcher = |path: &[&str], value: ValueMatcher| MetadataMatcher {
            filter: "envoy.filters.http.jwt_authn".to_string(),
            path: path
                .iter()
                .map(|k| metadata_matcher::PathSegment {
                    segment: Some(metadata_matcher::path_segment::Segment::Key(k.to_string())),
                })
                .collect(),
            value: Some(value),
            invert: false,
        };
        let exact = |s: &str| {
            ValueMatcher {
            match_pattern: Some(value_matcher::MatchPattern::StringMatch(
                envoy_types::pb::envoy::r#type::matcher::v3::StringMatcher {
                    match_pattern: Some(
                        envoy_types::pb::envoy::r#type::matcher::v3::string_matcher::MatchPattern::Exact(
                            s.to_string(),
                        ),
                    ),
                    ignore_case: false,
                },
            )),
        }
        };
        let filter = "envoy.filters.http.jwt_authn";
        assert!(metadata_matches(
            &matcher(&["https://auth.example", "sub"], exact("alice")),
            filter,
            Some(&v)
        ));
        assert!(!metadata_matches(
            &matcher(&["https://auth.example", "sub"], exact("bob")),
            filter,
            Some(&v)
        ));
        let in_list = ValueMatcher {
            match_pattern: Some(value_matcher::MatchPattern::ListMatch(Box::new(
                ListMatcher {
                    match_pattern: Some(list_matcher::MatchPattern::OneOf(Box::new(exact(
                        "admins",
                    )))),
                },
            ))),
        };
        assert!(metadata_matches(
            &matcher(&["https://auth.example", "groups"], in_list),
            filter,
            Some(&v)
        ));
        assert!(!metadata_matches(
            &matcher(&["https://auth.example", "sub"], exact("alice")),
            filter,
            None
        ));
    }

    #[test]
    fn bad_tokens_are_refused_with_envoys_reason_and_none_passes() {
        let issuer = Issuer::new();
        let config = config(&issuer, &["reviews"]);
        let claims = |extra: Value| {
            let mut payload = serde_json::json!({"iss": "https://auth.example", "sub": "alice", "aud": "reviews"});
            payload
                .as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            payload
        };
        assert_eq!(
            authenticate(
                &config,
                &Request::get("http://reviews:9080/", &[]).unwrap(),
                1_000
            ),
            Outcome::NoToken
        );
        let expired = issuer.token(claims(serde_json::json!({"exp": 999})));
        assert_eq!(
            why(authenticate(&config, &with_token(&expired), 1_000)),
            "Jwt is expired"
        );
        let early = issuer.token(claims(serde_json::json!({"nbf": 2_000})));
        assert_eq!(
            why(authenticate(&config, &with_token(&early), 1_000)),
            "Jwt not yet valid"
        );
        let elsewhere = issuer.token(claims(serde_json::json!({"aud": "ratings"})));
        assert!(
            why(authenticate(&config, &with_token(&elsewhere), 1_000))
                .starts_with("Audiences in Jwt are not allowed")
        );
        let stranger =
            issuer.token(serde_json::json!({"iss": "https://other.example", "sub": "x"}));
        assert!(
            why(authenticate(&config, &with_token(&stranger), 1_000))
                .starts_with("Jwt issuer is not configured")
        );
        let forged = Issuer::new().token(claims(serde_json::json!({})));
        assert_eq!(
            why(authenticate(&config, &with_token(&forged), 1_000)),
            "Jwt verification fails"
        );
        assert!(
            why(authenticate(&config, &with_token("not-a-jwt"), 1_000))
                .starts_with("Jwt is not in the form")
        );
        // From a query parameter, where no header is configured.
        let good = issuer.token(claims(serde_json::json!({})));
        let query =
            Request::get(&format!("http://reviews:9080/?access_token={good}"), &[]).unwrap();
        assert!(matches!(
            authenticate(&config, &query, 1_000),
            Outcome::Verified(_)
        ));
    }
}
