//! `security.istio.io` objects: PeerAuthentication, AuthorizationPolicy and
//! RequestAuthentication. Field names follow Istio's API; apiVersions v1 and
//! v1beta1 both decode to these types.
//!
//! ```text
//! PeerAuthentication     selector? · mtls.mode · portLevelMtls{targetPort: mode}
//! AuthorizationPolicy    selector? · action · rules[] {from[].source, to[].operation, when[]}
//! RequestAuthentication  selector? · jwtRules[] {issuer, audiences, jwksUri | jwks, fromHeaders, ...}
//! ```

use std::collections::BTreeMap;

use crate::meta::ObjectMeta;

/// `selector.matchLabels`: the workloads of the policy's namespace (of every
/// namespace, for an AuthorizationPolicy in the root namespace) whose labels
/// include all of these. An empty map selects every workload, as no
/// selector does.
pub type MatchLabels = BTreeMap<String, String>;

/// Whether `labels` include every pair of `selector`.
pub fn selects(selector: &MatchLabels, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The mutual TLS a workload's inbound side requires.
#[derive(Clone, Debug, PartialEq)]
pub struct PeerAuthentication {
    pub meta: ObjectMeta,
    pub spec: PeerAuthenticationSpec,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct PeerAuthenticationSpec {
    /// `None` (or empty): namespace-wide, or mesh-wide in the root namespace.
    pub selector: Option<MatchLabels>,
    /// `mtls.mode`; `Unset` when `mtls` is absent.
    pub mtls: MtlsMode,
    /// By the workload's target port (the port the application listens on,
    /// not the Service port), as Istio keys it.
    pub port_level_mtls: BTreeMap<u16, MtlsMode>,
}

impl PeerAuthenticationSpec {
    /// Whether the policy selects workloads by label (rather than a whole
    /// namespace or the mesh).
    pub fn has_selector(&self) -> bool {
        self.selector.as_ref().is_some_and(|s| !s.is_empty())
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum MtlsMode {
    /// Inherit from the wider policy; PERMISSIVE where none is set.
    #[default]
    Unset,
    /// Only mutual TLS is accepted.
    Strict,
    /// Mutual TLS and plaintext are both accepted.
    Permissive,
    /// Plaintext only.
    Disable,
}

impl MtlsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            MtlsMode::Unset => "UNSET",
            MtlsMode::Strict => "STRICT",
            MtlsMode::Permissive => "PERMISSIVE",
            MtlsMode::Disable => "DISABLE",
        }
    }
}

/// Who may call a workload, and what they may do.
#[derive(Clone, Debug, PartialEq)]
pub struct AuthorizationPolicy {
    pub meta: ObjectMeta,
    pub spec: AuthorizationPolicySpec,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct AuthorizationPolicySpec {
    pub selector: Option<MatchLabels>,
    pub action: AuthorizationAction,
    /// Empty: an ALLOW policy allows nothing; DENY and AUDIT policies match nothing.
    pub rules: Vec<Rule>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum AuthorizationAction {
    #[default]
    Allow,
    Deny,
    Audit,
}

impl AuthorizationAction {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthorizationAction::Allow => "ALLOW",
            AuthorizationAction::Deny => "DENY",
            AuthorizationAction::Audit => "AUDIT",
        }
    }
}

/// One rule: it matches a request when some `from` source, some `to`
/// operation and every `when` condition match (absent lists match anything).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Rule {
    pub from: Vec<Source>,
    pub to: Vec<Operation>,
    pub when: Vec<Condition>,
}

/// `from[].source`: every field set must match; values within a field are
/// alternatives.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Source {
    /// Peer identities without `spiffe://`: `cluster.local/ns/NS/sa/SA`.
    pub principals: Vec<String>,
    pub not_principals: Vec<String>,
    /// JWT identities, `ISSUER/SUBJECT`.
    pub request_principals: Vec<String>,
    pub not_request_principals: Vec<String>,
    pub namespaces: Vec<String>,
    pub not_namespaces: Vec<String>,
    /// The peer's address (the connection's source), IPs or CIDRs.
    pub ip_blocks: Vec<String>,
    pub not_ip_blocks: Vec<String>,
    /// The original client's address (X-Forwarded-For), IPs or CIDRs.
    pub remote_ip_blocks: Vec<String>,
    pub not_remote_ip_blocks: Vec<String>,
}

/// `to[].operation`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Operation {
    pub hosts: Vec<String>,
    pub not_hosts: Vec<String>,
    /// Port numbers, as strings in Istio's API.
    pub ports: Vec<String>,
    pub not_ports: Vec<String>,
    pub methods: Vec<String>,
    pub not_methods: Vec<String>,
    /// Exact, `prefix*`, `*suffix` or `*`; matched without the query.
    pub paths: Vec<String>,
    pub not_paths: Vec<String>,
}

/// `when[]`: a request attribute and the values it may (or may not) have.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Condition {
    pub key: String,
    pub values: Vec<String>,
    pub not_values: Vec<String>,
}

/// The attributes a `when` condition may name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConditionKey {
    /// `request.headers[NAME]`.
    RequestHeader(String),
    SourcePrincipal,
    SourceNamespace,
    SourceIp,
    RemoteIp,
    DestinationPort,
    RequestAuthPrincipal,
    /// `request.auth.claims[NAME]` or nested, `request.auth.claims[a][b]`.
    RequestAuthClaim(Vec<String>),
}

impl ConditionKey {
    /// The key as Istio spells it, if Bowline supports it.
    pub fn parse(key: &str) -> Option<ConditionKey> {
        let simple = match key {
            "source.principal" => Some(ConditionKey::SourcePrincipal),
            "source.namespace" => Some(ConditionKey::SourceNamespace),
            "source.ip" => Some(ConditionKey::SourceIp),
            "remote.ip" => Some(ConditionKey::RemoteIp),
            "destination.port" => Some(ConditionKey::DestinationPort),
            "request.auth.principal" => Some(ConditionKey::RequestAuthPrincipal),
            _ => None,
        };
        if simple.is_some() {
            return simple;
        }
        if let Some(rest) = key.strip_prefix("request.headers[") {
            let name = rest.strip_suffix(']')?;
            if name.is_empty() || name.contains('[') || name.contains(']') {
                return None;
            }
            return Some(ConditionKey::RequestHeader(name.to_string()));
        }
        let rest = key.strip_prefix("request.auth.claims")?;
        let mut names = Vec::new();
        let mut rest = rest;
        while !rest.is_empty() {
            let inner = rest.strip_prefix('[')?;
            let (name, after) = inner.split_once(']')?;
            if name.is_empty() || name.contains('[') {
                return None;
            }
            names.push(name.to_string());
            rest = after;
        }
        (!names.is_empty()).then_some(ConditionKey::RequestAuthClaim(names))
    }
}

/// Which JWTs a workload accepts (a request with an invalid one is refused;
/// one without passes unless an AuthorizationPolicy requires a principal).
#[derive(Clone, Debug, PartialEq)]
pub struct RequestAuthentication {
    pub meta: ObjectMeta,
    pub spec: RequestAuthenticationSpec,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RequestAuthenticationSpec {
    pub selector: Option<MatchLabels>,
    pub jwt_rules: Vec<JwtRule>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct JwtRule {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub jwks_uri: Option<String>,
    /// An inline JSON Web Key Set.
    pub jwks: Option<String>,
    /// Where the token is; `Authorization: Bearer` when neither list is set.
    pub from_headers: Vec<JwtHeader>,
    pub from_params: Vec<String>,
    pub forward_original_token: bool,
    pub output_payload_to_header: Option<String>,
}

/// Where the keys of a rule without inline `jwks` come from, which the
/// control plane fetches: the `jwksUri`, else the issuer's OpenID discovery
/// document (whose `jwks_uri` names the keys), as istiod resolves them.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum KeySource {
    JwksUri(String),
    Discovery(String),
}

impl JwtRule {
    /// `None` when the keys are inline.
    pub fn key_source(&self) -> Option<KeySource> {
        if self.jwks.is_some() {
            return None;
        }
        Some(match &self.jwks_uri {
            Some(uri) => KeySource::JwksUri(uri.clone()),
            None => KeySource::Discovery(format!(
                "{}/.well-known/openid-configuration",
                self.issuer.trim_end_matches('/')
            )),
        })
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct JwtHeader {
    pub name: String,
    pub prefix: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_keys_follow_istio_spelling() {
        assert_eq!(
            ConditionKey::parse("request.headers[X-abc]"),
            Some(ConditionKey::RequestHeader("X-abc".into()))
        );
        assert_eq!(
            ConditionKey::parse("request.auth.claims[nested1][nested2]"),
            Some(ConditionKey::RequestAuthClaim(vec![
                "nested1".into(),
                "nested2".into()
            ]))
        );
        assert_eq!(
            ConditionKey::parse("source.ip"),
            Some(ConditionKey::SourceIp)
        );
        for bad in [
            "request.headers[]",
            "request.headers[a",
            "request.headers[a]b",
            "request.auth.claims",
            "request.auth.claims[]",
            "request.auth.claims[a]x",
            "destination.ip",
            "connection.sni",
            "request.auth.audiences",
            "source.principals",
        ] {
            assert_eq!(ConditionKey::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn empty_selectors_select_everything() {
        let labels = BTreeMap::from([("app".to_string(), "a".to_string())]);
        assert!(selects(&MatchLabels::new(), &labels));
        assert!(selects(&labels.clone(), &labels));
        let other = BTreeMap::from([("app".to_string(), "b".to_string())]);
        assert!(!selects(&other, &labels));
    }
}
