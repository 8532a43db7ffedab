//! The security kinds, as istiod validates them (`ValidatePeerAuthentication`,
//! `ValidateAuthorizationPolicy`, `ValidateRequestAuthentication`), plus the
//! forms Bowline cannot compile yet, each named at its path.

use std::net::IpAddr;

use super::names;
use crate::diag::{Diagnostic, FieldPath};
use crate::meta::ObjectMeta;
use crate::security::{
    AuthorizationPolicySpec, Condition, ConditionKey, JwtRule, MatchLabels, Operation,
    PeerAuthenticationSpec, RequestAuthenticationSpec, Source,
};

/// Istio's annotation that turns an AuthorizationPolicy into a shadow policy.
pub const DRY_RUN: &str = "istio.io/dry-run";

/// Condition keys Istio has and Bowline does not compile yet.
const UNSUPPORTED_KEYS: &[&str] = &[
    "destination.ip",
    "connection.sni",
    "request.auth.audiences",
    "request.auth.presenter",
];

pub(super) fn check_peer_authentication(spec: &PeerAuthenticationSpec, out: &mut Vec<Diagnostic>) {
    let path = FieldPath::new("spec");
    check_selector(spec.selector.as_ref(), &path, out);
    let ports = path.field("portLevelMtls");
    if !spec.port_level_mtls.is_empty() && !spec.has_selector() {
        out.push(Diagnostic::error(
            ports.clone(),
            "portLevelMtls requires selector: a mesh- or namespace-wide policy cannot set port-level mTLS",
        ));
    }
    for port in spec.port_level_mtls.keys() {
        if *port == 0 {
            out.push(Diagnostic::error(ports.key("0"), "port cannot be 0"));
        }
    }
}

pub(super) fn check_authorization_policy(
    meta: &ObjectMeta,
    spec: &AuthorizationPolicySpec,
    out: &mut Vec<Diagnostic>,
) {
    if let Some(value) = meta.annotations.get(DRY_RUN) {
        let at = FieldPath::new("metadata.annotations").key(DRY_RUN);
        match value.as_str() {
            "false" => {}
            "true" => out.push(Diagnostic::error(
                at,
                "dry-run policies are not supported yet: this policy would be enforced, not only logged",
            )),
            other => out.push(Diagnostic::error(
                at,
                format!("expected \"true\" or \"false\", got {other:?}"),
            )),
        }
    }
    let path = FieldPath::new("spec");
    check_selector(spec.selector.as_ref(), &path, out);
    let rules = path.field("rules");
    for (i, rule) in spec.rules.iter().enumerate() {
        let at = rules.index(i);
        for (j, from) in rule.from.iter().enumerate() {
            check_source(from, &at.field("from").index(j).field("source"), out);
        }
        for (j, to) in rule.to.iter().enumerate() {
            check_operation(to, &at.field("to").index(j).field("operation"), out);
        }
        for (j, condition) in rule.when.iter().enumerate() {
            check_condition(condition, &at.field("when").index(j), out);
        }
    }
}

fn check_selector(selector: Option<&MatchLabels>, spec: &FieldPath, out: &mut Vec<Diagnostic>) {
    let Some(labels) = selector else { return };
    let path = spec.field("selector").field("matchLabels");
    super::check_selector_labels(labels, &path, out);
}

/// A rule one value must follow.
type Check = fn(&str) -> Result<(), String>;

/// A field's name, its values and their rule.
type Field<'a> = (&'static str, &'a [String], Check);

/// A list of values with one rule for each: reports empty values and each
/// value `check` refuses.
fn each(values: &[String], path: FieldPath, check: Check, out: &mut Vec<Diagnostic>) {
    for (i, value) in values.iter().enumerate() {
        let at = path.index(i);
        if value.is_empty() {
            out.push(Diagnostic::error(at, "empty value not allowed"));
        } else if let Err(e) = check(value) {
            out.push(Diagnostic::error(at, e));
        }
    }
}

fn check_source(s: &Source, path: &FieldPath, out: &mut Vec<Diagnostic>) {
    let lists: [Field<'_>; 10] = [
        ("principals", &s.principals, pattern),
        ("notPrincipals", &s.not_principals, pattern),
        ("requestPrincipals", &s.request_principals, pattern),
        ("notRequestPrincipals", &s.not_request_principals, pattern),
        ("namespaces", &s.namespaces, pattern),
        ("notNamespaces", &s.not_namespaces, pattern),
        ("ipBlocks", &s.ip_blocks, ip_block),
        ("notIpBlocks", &s.not_ip_blocks, ip_block),
        ("remoteIpBlocks", &s.remote_ip_blocks, ip_block),
        ("notRemoteIpBlocks", &s.not_remote_ip_blocks, ip_block),
    ];
    if lists.iter().all(|(_, values, _)| values.is_empty()) {
        out.push(Diagnostic::error(
            path.clone(),
            "`from.source` must not be empty",
        ));
    }
    for (name, values, check) in lists {
        each(values, path.field(name), check, out);
    }
}

fn check_operation(o: &Operation, path: &FieldPath, out: &mut Vec<Diagnostic>) {
    let lists: [Field<'_>; 8] = [
        ("hosts", &o.hosts, pattern),
        ("notHosts", &o.not_hosts, pattern),
        ("ports", &o.ports, port),
        ("notPorts", &o.not_ports, port),
        ("methods", &o.methods, pattern),
        ("notMethods", &o.not_methods, pattern),
        ("paths", &o.paths, path_pattern),
        ("notPaths", &o.not_paths, path_pattern),
    ];
    if lists.iter().all(|(_, values, _)| values.is_empty()) {
        out.push(Diagnostic::error(
            path.clone(),
            "`to.operation` must not be empty",
        ));
    }
    for (name, values, check) in lists {
        each(values, path.field(name), check, out);
    }
}

fn check_condition(c: &Condition, path: &FieldPath, out: &mut Vec<Diagnostic>) {
    let key_path = path.field("key");
    if c.key.is_empty() {
        out.push(Diagnostic::error(key_path, "`key` must not be empty"));
        return;
    }
    let Some(key) = ConditionKey::parse(&c.key) else {
        let message = if UNSUPPORTED_KEYS.contains(&c.key.as_str())
            || c.key.starts_with("experimental.envoy.filters.")
        {
            format!("condition key {:?} is not supported yet", c.key)
        } else {
            format!(
                "unknown attribute {:?}; expected request.headers[NAME], source.ip, remote.ip, source.namespace, source.principal, request.auth.principal, request.auth.claims[NAME] or destination.port",
                c.key
            )
        };
        out.push(Diagnostic::error(key_path, message));
        return;
    };
    if c.values.is_empty() && c.not_values.is_empty() {
        out.push(Diagnostic::error(
            path.clone(),
            format!(
                "at least one of `values` or `notValues` must be set for key {}",
                c.key
            ),
        ));
    }
    let check: Check = match key {
        ConditionKey::SourceIp | ConditionKey::RemoteIp => ip_block,
        ConditionKey::DestinationPort => port,
        _ => pattern,
    };
    each(&c.values, path.field("values"), check, out);
    each(&c.not_values, path.field("notValues"), check, out);
}

/// An exact value, `prefix*`, `*suffix` or `*` alone, as Istio matches
/// principals, namespaces, hosts, methods, header values and claims; a
/// wildcard anywhere else would be matched literally by Istio, so it is
/// refused as a mistake.
fn pattern(value: &str) -> Result<(), String> {
    let stars = value.matches('*').count();
    let ok = stars == 0 || (stars == 1 && (value.starts_with('*') || value.ends_with('*')));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{value:?}: a wildcard \"*\" may only be the whole value, or one at its start or end"
        ))
    }
}

/// A path pattern: [`pattern`]; Istio's path templates (`{*}`, `{**}`) are
/// not supported yet.
fn path_pattern(value: &str) -> Result<(), String> {
    if value.contains('{') || value.contains('}') {
        return Err(format!(
            "{value:?}: path templates ({{*}}, {{**}}) are not supported yet"
        ));
    }
    pattern(value)
}

/// An IP address or a CIDR range.
pub(crate) fn ip_block(value: &str) -> Result<(), String> {
    let invalid = || format!("invalid IP address or CIDR range: {value:?}");
    let (address, length) = match value.split_once('/') {
        Some((a, l)) => (a, Some(l)),
        None => (value, None),
    };
    let address: IpAddr = address.parse().map_err(|_| invalid())?;
    if let Some(length) = length {
        let max = if address.is_ipv4() { 32 } else { 128 };
        let ok = !length.is_empty()
            && length.chars().all(|c| c.is_ascii_digit())
            && length.parse::<u8>().is_ok_and(|l| l <= max);
        if !ok {
            return Err(invalid());
        }
    }
    Ok(())
}

fn port(value: &str) -> Result<(), String> {
    let ok = value.chars().all(|c| c.is_ascii_digit()) && value.parse::<u16>().is_ok();
    if ok {
        Ok(())
    } else {
        Err(format!("invalid port {value:?}: expected a number 0-65535"))
    }
}

pub(super) fn check_request_authentication(
    spec: &RequestAuthenticationSpec,
    out: &mut Vec<Diagnostic>,
) {
    let path = FieldPath::new("spec");
    check_selector(spec.selector.as_ref(), &path, out);
    let rules = path.field("jwtRules");
    for (i, rule) in spec.jwt_rules.iter().enumerate() {
        check_jwt_rule(rule, &rules.index(i), out);
    }
    let issuers = spec
        .jwt_rules
        .iter()
        .enumerate()
        .filter(|(_, r)| !r.issuer.is_empty())
        .map(|(i, r)| (rules.index(i).field("issuer"), r.issuer.as_str()));
    super::check_unique(issuers, "issuer", out);
}

fn check_jwt_rule(rule: &JwtRule, path: &FieldPath, out: &mut Vec<Diagnostic>) {
    if rule.issuer.is_empty() {
        out.push(Diagnostic::error(
            path.field("issuer"),
            "issuer must be set",
        ));
    }
    for (i, audience) in rule.audiences.iter().enumerate() {
        if audience.is_empty() {
            out.push(Diagnostic::error(
                path.field("audiences").index(i),
                "audience must be non-empty string",
            ));
        }
    }
    if rule.jwks.is_some() && rule.jwks_uri.is_some() {
        out.push(Diagnostic::error(
            path.clone(),
            "only one of jwks or jwksUri can be set",
        ));
    }
    if let Some(uri) = &rule.jwks_uri
        && let Err(e) = jwks_uri(uri)
    {
        out.push(Diagnostic::error(path.field("jwksUri"), e));
    }
    if let Some(jwks) = &rule.jwks
        && let Err(e) = key_set(jwks)
    {
        out.push(Diagnostic::error(
            path.field("jwks"),
            format!("jwks parse error: {e}"),
        ));
    }
    for (i, header) in rule.from_headers.iter().enumerate() {
        let at = path.field("fromHeaders").index(i);
        if header.name.is_empty() {
            out.push(Diagnostic::error(
                at.field("name"),
                "location header name must be non-empty string",
            ));
        } else if let Err(e) = names::header_name(&header.name, false) {
            out.push(Diagnostic::error(at.field("name"), e));
        }
    }
    for (i, param) in rule.from_params.iter().enumerate() {
        if param.is_empty() {
            out.push(Diagnostic::error(
                path.field("fromParams").index(i),
                "location query must be non-empty string",
            ));
        }
    }
    if let Some(header) = &rule.output_payload_to_header
        && let Err(e) = names::header_name(header, false)
    {
        out.push(Diagnostic::error(path.field("outputPayloadToHeader"), e));
    }
}

/// An `http` or `https` URL with a host, as istiod's `ParseJwksURI` requires.
fn jwks_uri(uri: &str) -> Result<(), String> {
    let Some((scheme, rest)) = uri.split_once("://") else {
        return Err(format!("jwksUri {uri:?} is not a URL"));
    };
    if !matches!(scheme.to_ascii_lowercase().as_str(), "http" | "https") {
        return Err(format!(
            "jwksUri {uri:?}: URI scheme {scheme:?} is not supported"
        ));
    }
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("jwksUri {uri:?} has no host"));
    }
    Ok(())
}

/// A JSON Web Key Set (`{"keys": [...]}`, at least one key) or a single
/// key (`{"kty": ...}`), each key with the members its type needs. Envoy
/// refuses a listener whose inline keys do not parse, so they are checked
/// here rather than there.
pub fn key_set(text: &str) -> Result<(), String> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    match value.get("keys") {
        Some(serde_json::Value::Array(keys)) if keys.is_empty() => {
            Err("the key set has no keys".to_string())
        }
        Some(serde_json::Value::Array(keys)) => keys.iter().try_for_each(key),
        Some(_) => Err("\"keys\" must be a list".to_string()),
        None => key(&value),
    }
}

fn key(k: &serde_json::Value) -> Result<(), String> {
    let member = |name: &str| {
        k.get(name)
            .and_then(|v| v.as_str())
            .is_some_and(|s| !s.is_empty())
    };
    let kty = k.get("kty").and_then(|t| t.as_str());
    let needs: &[&str] = match kty {
        Some("RSA") => &["n", "e"],
        Some("EC") => &["crv", "x", "y"],
        Some("oct") => &["k"],
        Some("OKP") => &["crv", "x"],
        Some(other) => return Err(format!("unknown key type {other:?}")),
        None => return Err("every key needs a \"kty\"".to_string()),
    };
    match needs.iter().find(|m| !member(m)) {
        Some(missing) => Err(format!(
            "a key of type {:?} needs {missing:?}",
            kty.unwrap_or_default()
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_allow_one_wildcard_at_an_end() {
        for ok in [
            "a",
            "*",
            "*a",
            "a*",
            "cluster.local/ns/x/sa/y",
            "*/ns/foo/sa/x",
        ] {
            assert_eq!(pattern(ok), Ok(()), "{ok}");
        }
        for bad in ["a*b", "**", "*a*", "a**"] {
            assert!(pattern(bad).is_err(), "{bad}");
        }
        assert!(
            path_pattern("/a/{*}")
                .unwrap_err()
                .contains("path templates")
        );
    }

    #[test]
    fn ip_blocks_are_ips_or_cidrs() {
        for ok in [
            "1.2.3.4",
            "10.0.0.0/8",
            "0.0.0.0/0",
            "::1",
            "2001:db8::/32",
            "1.2.3.4/32",
        ] {
            assert_eq!(ip_block(ok), Ok(()), "{ok}");
        }
        for bad in [
            "1.2.3",
            "1.2.3.4/33",
            "1.2.3.4/",
            "x",
            "::1/129",
            "1.2.3.4/+1",
            "10.0.0.0/8/8",
        ] {
            assert!(ip_block(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ports_and_jwks() {
        assert_eq!(port("8080"), Ok(()));
        assert!(port("http").is_err());
        assert!(port("70000").is_err());
        assert!(port("+80").is_err());
        assert_eq!(jwks_uri("https://example.com/jwks.json"), Ok(()));
        assert!(jwks_uri("ftp://example.com/k").is_err());
        assert!(jwks_uri("https:///k").is_err());
        assert!(jwks_uri("example.com").is_err());
        assert_eq!(
            key_set(r#"{"keys": [{"kty": "RSA", "n": "x", "e": "AQAB"}]}"#),
            Ok(())
        );
        assert_eq!(
            key_set(r#"{"kty": "EC", "crv": "P-256", "x": "a", "y": "b"}"#),
            Ok(())
        );
        assert_eq!(
            key_set(r#"{"kty": "EC"}"#),
            Err("a key of type \"EC\" needs \"crv\"".into())
        );
        assert_eq!(
            key_set(r#"{"keys": []}"#),
            Err("the key set has no keys".into())
        );
        assert!(key_set(r#"{"keys": [{"kty": "XYZ"}]}"#).is_err());
        assert!(key_set("{").is_err());
        assert!(key_set(r#"{"keys": [{}]}"#).is_err());
        assert!(key_set("[]").is_err());
    }
}
