//! AuthorizationPolicy as Envoy's RBAC filters on a workload's inbound
//! listeners, with Istio's semantics: HTTP filters on its HTTP connection
//! managers, network filters before its TCP proxies.
//!
//! ```text
//! policies that apply ─► AUDIT rules ─► RBAC (action LOG: allows all, marks what matches)
//!                     ─► DENY rules  ─► RBAC (action DENY), only if some rule exists
//!                     ─► ALLOW rules ─► RBAC (action ALLOW), once any ALLOW policy applies:
//!                                       no rule at all (`spec: {}`) allows nothing
//! rule ─► Policy { permissions: one per `to` (or any), principals: one per `from` (or any) },
//!         each ANDed with the rule's `when` conditions of its side
//! ```
//!
//! On a TCP port, fields only HTTP has (hosts, methods, paths, request
//! headers, request principals and JWT attributes) cannot be checked, and
//! Istio errs on the side of refusing: an ALLOW rule with one is left out
//! (it allows nothing), a DENY or AUDIT rule is kept without it (it matches
//! more). A denied TCP connection is closed.
//!
//! A request Envoy denies gets 403. Values follow Istio's matching: exact,
//! `prefix*`, `*suffix`, or `*` (any non-empty value). Principals are
//! SPIFFE IDs without `spiffe://` (`cluster.local` meaning the mesh's trust
//! domain); namespaces match the `/ns/NAME/` part of the caller's identity.
//! Request principals (`ISSUER/SUBJECT`) and JWT claims are read from the
//! payload the JWT filter verified (see `jwt`), stored in its metadata under
//! the issuer: a pattern is matched against each issuer the workload's
//! RequestAuthentications name. Where none applies, no request has a
//! request principal: `requestPrincipals`, `request.auth.principal` and
//! `request.auth.claims[...]` never match and their `not` forms always do.

use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::CidrRange;
use envoy_types::pb::envoy::config::listener::v3::{Filter, filter};
use envoy_types::pb::envoy::config::rbac::v3::{
    MetadataSource, Permission, Policy, Principal, Rbac as RbacRules, SourcedMetadata, permission,
    principal, rbac::Action,
};
use envoy_types::pb::envoy::config::route::v3::{HeaderMatcher, header_matcher};
use envoy_types::pb::envoy::extensions::filters::http::rbac::v3::Rbac;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpFilter, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::r#type::matcher::v3::{
    ListMatcher, MetadataMatcher, OrMatcher, PathMatcher, RegexMatcher, StringMatcher,
    ValueMatcher, list_matcher, metadata_matcher, path_matcher, string_matcher::MatchPattern,
    value_matcher,
};
use envoy_types::pb::google::protobuf::{Any, UInt32Value};
use policy::security::{
    AuthorizationAction, AuthorizationPolicy, Condition, ConditionKey, Operation, Rule, Source,
};
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint};

use super::jwt::JWT_AUTHN;
use super::proto::filters;

/// The RBAC filters for the policies that apply to one workload (in
/// namespace and name order), in the order they run.
pub(crate) fn http_filters<'a>(
    policies: impl IntoIterator<Item = &'a Arc<AuthorizationPolicy>>,
    trust_domain: &str,
    issuers: &[String],
) -> Vec<HttpFilter> {
    compile(policies, trust_domain, issuers, false)
        .into_iter()
        .map(|(action, policies)| HttpFilter {
            name: filters::RBAC.to_string(),
            config_type: Some(http_filter::ConfigType::TypedConfig(rbac_any::<Rbac>(
                action, &policies, "",
            ))),
            ..Default::default()
        })
        .collect()
}

/// The network RBAC filters for a TCP port of the workload, in the order
/// they run; `stat_prefix` is the listener's.
pub(crate) fn network_filters<'a>(
    policies: impl IntoIterator<Item = &'a Arc<AuthorizationPolicy>>,
    trust_domain: &str,
    stat_prefix: &str,
) -> Vec<Filter> {
    compile(policies, trust_domain, &[], true)
        .into_iter()
        .map(|(action, policies)| Filter {
            name: NETWORK_RBAC.to_string(),
            config_type: Some(filter::ConfigType::TypedConfig(rbac_any::<NetworkRbac>(
                action,
                &policies,
                stat_prefix,
            ))),
        })
        .collect()
}

const NETWORK_RBAC: &str = "envoy.filters.network.rbac";

type Named = Vec<(String, Policy)>;

/// The policies of each RBAC filter, by action, in the order the filters run.
fn compile<'a>(
    policies: impl IntoIterator<Item = &'a Arc<AuthorizationPolicy>>,
    trust_domain: &str,
    issuers: &[String],
    tcp: bool,
) -> Vec<(Action, Named)> {
    let (mut audit, mut deny, mut allow) = (Vec::new(), Vec::new(), Vec::new());
    let mut any_allow = false;
    for policy in policies {
        let list = match policy.spec.action {
            AuthorizationAction::Audit => &mut audit,
            AuthorizationAction::Deny => &mut deny,
            AuthorizationAction::Allow => {
                any_allow = true;
                &mut allow
            }
        };
        let generator = Generator {
            trust_domain,
            issuers,
            tcp,
            dropped: std::cell::Cell::new(false),
        };
        let allow_rule = policy.spec.action == AuthorizationAction::Allow;
        for (i, rule) in policy.spec.rules.iter().enumerate() {
            let name = format!(
                "ns[{}]-policy[{}]-rule[{i}]",
                policy.meta.namespace, policy.meta.name
            );
            generator.dropped.set(false);
            let compiled = generator.policy(rule);
            if allow_rule && generator.dropped.get() {
                continue;
            }
            list.push((name, compiled));
        }
    }
    let mut out = Vec::new();
    for (action, mut list, wanted) in [
        (Action::Log, audit, false),
        (Action::Deny, deny, false),
        (Action::Allow, allow, any_allow),
    ] {
        if list.is_empty() && !wanted {
            continue;
        }
        list.sort_by(|a, b| a.0.cmp(&b.0));
        out.push((action, list));
    }
    out
}

/// The filter's config, encoded with its policies in name order. The
/// generated type holds `policies` in a `HashMap`, whose encoding order
/// changes from run to run; resource versions are content hashes, so the
/// entries are encoded one at a time instead. Protobuf concatenates map
/// entries (and merges repeated occurrences of a message field), so the
/// bytes decode to the same message.
fn rbac_any<M: prost::Name>(
    action: Action,
    policies: &[(String, Policy)],
    stat_prefix: &str,
) -> Any {
    let mut rules = RbacRules {
        action: action as i32,
        ..Default::default()
    }
    .encode_to_vec();
    for (name, policy) in policies {
        let one = RbacRules {
            policies: [(name.clone(), policy.clone())].into(),
            ..Default::default()
        };
        one.encode(&mut rules).unwrap_or_default();
    }
    // `rules` is field 1 of both filters' configs; the network filter's
    // `stat_prefix`, field 3, is required there.
    let mut value = Vec::with_capacity(rules.len() + stat_prefix.len() + 8);
    encode_key(1, WireType::LengthDelimited, &mut value);
    encode_varint(rules.len() as u64, &mut value);
    value.extend_from_slice(&rules);
    if !stat_prefix.is_empty() {
        prost::encoding::string::encode(3, &stat_prefix.to_string(), &mut value);
    }
    Any {
        type_url: M::type_url(),
        value,
    }
}

/// Compiles rules for one listener kind; notes when a rule uses a field
/// the listener cannot check.
struct Generator<'a> {
    trust_domain: &'a str,
    /// The issuers the workload's JWT filter verifies.
    issuers: &'a [String],
    tcp: bool,
    /// Set when an HTTP-only field was left out of the rule being compiled.
    dropped: std::cell::Cell<bool>,
}

impl Generator<'_> {
    /// Whether an HTTP-only field can be compiled here; on TCP it is left
    /// out, and noted.
    fn http(&self) -> bool {
        if self.tcp {
            self.dropped.set(true);
        }
        !self.tcp
    }

    fn policy(&self, rule: &Rule) -> Policy {
        to_policy(self, rule)
    }
}

fn to_policy(g: &Generator<'_>, rule: &Rule) -> Policy {
    let trust_domain = g.trust_domain;
    let mut when_principals = Vec::new();
    let mut when_permissions = Vec::new();
    for condition in &rule.when {
        match condition_of(g, condition) {
            Some(Side::Principal(p)) => when_principals.push(p),
            Some(Side::Permission(p)) => when_permissions.push(p),
            None => {}
        }
    }
    let principals = if rule.from.is_empty() {
        vec![and_ids(when_principals)]
    } else {
        rule.from
            .iter()
            .map(|s| {
                let mut ids = source(g, s, trust_domain);
                ids.extend(when_principals.iter().cloned());
                and_ids(ids)
            })
            .collect()
    };
    let permissions = if rule.to.is_empty() {
        vec![and_rules(when_permissions)]
    } else {
        rule.to
            .iter()
            .map(|o| {
                let mut rules = operation(g, o);
                rules.extend(when_permissions.iter().cloned());
                and_rules(rules)
            })
            .collect()
    };
    Policy {
        permissions,
        principals,
        ..Default::default()
    }
}

enum Side {
    Principal(Principal),
    Permission(Permission),
}

/// The principals one `from.source` requires, each field a condition.
fn source(g: &Generator<'_>, s: &Source, trust_domain: &str) -> Vec<Principal> {
    let mut ids = Vec::new();
    let peer = |v: &str| authenticated(principal_matcher(v, trust_domain));
    let namespace = |v: &str| authenticated(namespace_matcher(v));
    let direct = |v: &str| id(principal::Identifier::DirectRemoteIp(cidr(v)));
    let remote = |v: &str| id(principal::Identifier::RemoteIp(cidr(v)));
    push_either(&mut ids, &s.principals, &s.not_principals, peer);
    let jwt = !(s.request_principals.is_empty() && s.not_request_principals.is_empty());
    if !jwt || g.http() {
        push_either(
            &mut ids,
            &s.request_principals,
            &s.not_request_principals,
            |v| request_principal(v, g.issuers),
        );
    }
    push_either(&mut ids, &s.namespaces, &s.not_namespaces, namespace);
    push_either(&mut ids, &s.ip_blocks, &s.not_ip_blocks, direct);
    push_either(
        &mut ids,
        &s.remote_ip_blocks,
        &s.not_remote_ip_blocks,
        remote,
    );
    ids
}

/// `values` as one alternative, `not_values` as one negated alternative.
fn push_either(
    ids: &mut Vec<Principal>,
    values: &[String],
    not_values: &[String],
    each: impl Fn(&str) -> Principal,
) {
    if !values.is_empty() {
        ids.push(or_ids(values.iter().map(|v| each(v)).collect()));
    }
    if !not_values.is_empty() {
        ids.push(not_id(or_ids(not_values.iter().map(|v| each(v)).collect())));
    }
}

fn push_either_rule(
    rules: &mut Vec<Permission>,
    values: &[String],
    not_values: &[String],
    each: impl Fn(&str) -> Permission,
) {
    if !values.is_empty() {
        rules.push(or_rules(values.iter().map(|v| each(v)).collect()));
    }
    if !not_values.is_empty() {
        rules.push(not_rule(or_rules(
            not_values.iter().map(|v| each(v)).collect(),
        )));
    }
}

/// The permissions one `to.operation` requires.
fn operation(g: &Generator<'_>, o: &Operation) -> Vec<Permission> {
    let mut rules = Vec::new();
    let http_only = [
        (&o.hosts, &o.not_hosts),
        (&o.methods, &o.not_methods),
        (&o.paths, &o.not_paths),
    ];
    let uses_http = http_only
        .iter()
        .any(|(a, b)| !a.is_empty() || !b.is_empty());
    let http = !uses_http || g.http();
    let host = |v: &str| rule(permission::Rule::Header(header(":authority", v, true)));
    let method = |v: &str| rule(permission::Rule::Header(header(":method", v, false)));
    let path = |v: &str| {
        rule(permission::Rule::UrlPath(PathMatcher {
            rule: Some(path_matcher::Rule::Path(string_matcher(v, "", false))),
        }))
    };
    if http {
        push_either_rule(&mut rules, &o.hosts, &o.not_hosts, host);
    }
    push_either_rule(&mut rules, &o.ports, &o.not_ports, destination_port);
    if http {
        push_either_rule(&mut rules, &o.methods, &o.not_methods, method);
        push_either_rule(&mut rules, &o.paths, &o.not_paths, path);
    }
    rules
}

fn destination_port(v: &str) -> Permission {
    // Validation admits only port numbers.
    rule(permission::Rule::DestinationPort(v.parse().unwrap_or(0)))
}

fn condition_of(g: &Generator<'_>, c: &Condition) -> Option<Side> {
    let trust_domain = g.trust_domain;
    let key = ConditionKey::parse(&c.key)?;
    let http_only = matches!(
        key,
        ConditionKey::RequestHeader(_)
            | ConditionKey::RequestAuthPrincipal
            | ConditionKey::RequestAuthClaim(_)
    );
    if http_only && !g.http() {
        return None;
    }
    let principal_side = |each: &dyn Fn(&str) -> Principal| {
        let mut ids = Vec::new();
        push_either(&mut ids, &c.values, &c.not_values, each);
        Side::Principal(and_ids(ids))
    };
    Some(match key {
        ConditionKey::RequestHeader(name) => {
            principal_side(&|v| id(principal::Identifier::Header(header(&name, v, false))))
        }
        ConditionKey::SourcePrincipal => {
            principal_side(&|v| authenticated(principal_matcher(v, trust_domain)))
        }
        ConditionKey::SourceNamespace => principal_side(&|v| authenticated(namespace_matcher(v))),
        ConditionKey::SourceIp => {
            principal_side(&|v| id(principal::Identifier::DirectRemoteIp(cidr(v))))
        }
        ConditionKey::RemoteIp => principal_side(&|v| id(principal::Identifier::RemoteIp(cidr(v)))),
        ConditionKey::RequestAuthPrincipal => principal_side(&|v| request_principal(v, g.issuers)),
        ConditionKey::RequestAuthClaim(path) => principal_side(&|v| claim(&path, v, g.issuers)),
        ConditionKey::DestinationPort => {
            let mut rules = Vec::new();
            push_either_rule(&mut rules, &c.values, &c.not_values, destination_port);
            Side::Permission(and_rules(rules))
        }
    })
}

/// The request principal `ISSUER/SUBJECT` matching `pattern`, for each
/// issuer the JWT filter verifies: `*` is any verified token; an exact
/// value, `prefix*` or `*suffix` is split into what it says of the issuer
/// and of the subject. No issuer, no match.
fn request_principal(pattern: &str, issuers: &[String]) -> Principal {
    let mut ids = Vec::new();
    for issuer in issuers {
        let whole = format!("{issuer}/");
        let sub = |value: ValueMatcher| jwt_metadata(&[issuer, "sub"], value);
        if pattern == "*" {
            ids.push(jwt_metadata(&[issuer], present()));
        } else if let Some(suffix) = pattern.strip_prefix('*') {
            // ISSUER/SUBJECT ends with the suffix: the subject does, or the
            // suffix is the end of the issuer, `/` and the whole subject.
            ids.push(sub(string_value(MatchPattern::Suffix(suffix.to_string()))));
            for (k, _) in suffix.match_indices('/') {
                let (end_of_issuer, subject) = (&suffix[..k], &suffix[k + 1..]);
                if issuer.ends_with(end_of_issuer) && !subject.is_empty() {
                    ids.push(sub(string_value(MatchPattern::Exact(subject.to_string()))));
                }
            }
        } else if let Some(prefix) = pattern.strip_suffix('*') {
            if whole.starts_with(prefix) {
                ids.push(sub(present()));
            } else if let Some(rest) = prefix.strip_prefix(&whole) {
                ids.push(sub(string_value(MatchPattern::Prefix(rest.to_string()))));
            }
        } else if let Some(subject) = pattern.strip_prefix(&whole) {
            ids.push(sub(string_value(MatchPattern::Exact(subject.to_string()))));
        }
    }
    any_of(ids)
}

/// A claim at `path` of a verified payload, a string or a list holding a
/// matching string (as Istio matches claims such as `groups`).
fn claim(path: &[String], pattern: &str, issuers: &[String]) -> Principal {
    let mut ids = Vec::new();
    for issuer in issuers {
        let mut at: Vec<&str> = vec![issuer];
        at.extend(path.iter().map(String::as_str));
        let value = if pattern == "*" {
            present()
        } else {
            let one = ValueMatcher {
                match_pattern: Some(value_matcher::MatchPattern::StringMatch(string_matcher(
                    pattern, "", false,
                ))),
            };
            let in_list = ValueMatcher {
                match_pattern: Some(value_matcher::MatchPattern::ListMatch(Box::new(
                    ListMatcher {
                        match_pattern: Some(list_matcher::MatchPattern::OneOf(Box::new(
                            one.clone(),
                        ))),
                    },
                ))),
            };
            ValueMatcher {
                match_pattern: Some(value_matcher::MatchPattern::OrMatch(OrMatcher {
                    value_matchers: vec![one, in_list],
                })),
            }
        };
        ids.push(jwt_metadata(&at, value));
    }
    any_of(ids)
}

fn present() -> ValueMatcher {
    ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::PresentMatch(true)),
    }
}

fn string_value(pattern: MatchPattern) -> ValueMatcher {
    ValueMatcher {
        match_pattern: Some(value_matcher::MatchPattern::StringMatch(StringMatcher {
            match_pattern: Some(pattern),
            ignore_case: false,
        })),
    }
}

/// A value of the JWT filter's metadata, at `path` from the issuer's payload.
fn jwt_metadata(path: &[&str], value: ValueMatcher) -> Principal {
    let matcher = MetadataMatcher {
        filter: JWT_AUTHN.to_string(),
        path: path
            .iter()
            .map(|key| metadata_matcher::PathSegment {
                segment: Some(metadata_matcher::path_segment::Segment::Key(
                    key.to_string(),
                )),
            })
            .collect(),
        value: Some(value),
        invert: false,
    };
    // The request's dynamic metadata, where the JWT filter wrote it.
    id(principal::Identifier::SourcedMetadata(SourcedMetadata {
        metadata_matcher: Some(matcher),
        metadata_source: MetadataSource::Dynamic as i32,
    }))
}

/// Any of `ids`; none matches nothing.
fn any_of(mut ids: Vec<Principal>) -> Principal {
    match ids.len() {
        0 => not_id(id(principal::Identifier::Any(true))),
        1 => ids.remove(0),
        _ => id(principal::Identifier::OrIds(principal::Set { ids })),
    }
}

/// Istio's value matching: `*` is any non-empty value, `*x` a suffix, `x*`
/// a prefix (after `prefix`, which exact and prefix values get too).
fn string_matcher(value: &str, prefix: &str, ignore_case: bool) -> StringMatcher {
    let pattern = if value == "*" {
        MatchPattern::SafeRegex(RegexMatcher {
            regex: ".+".to_string(),
            ..Default::default()
        })
    } else if let Some(suffix) = value.strip_prefix('*') {
        MatchPattern::Suffix(suffix.to_string())
    } else if let Some(start) = value.strip_suffix('*') {
        MatchPattern::Prefix(format!("{prefix}{start}"))
    } else {
        MatchPattern::Exact(format!("{prefix}{value}"))
    };
    StringMatcher {
        match_pattern: Some(pattern),
        ignore_case,
    }
}

/// A header condition; `*` means the header is present.
fn header(name: &str, value: &str, ignore_case: bool) -> HeaderMatcher {
    let specifier = if value == "*" {
        header_matcher::HeaderMatchSpecifier::PresentMatch(true)
    } else {
        header_matcher::HeaderMatchSpecifier::StringMatch(string_matcher(value, "", ignore_case))
    };
    HeaderMatcher {
        name: name.to_string(),
        header_match_specifier: Some(specifier),
        ..Default::default()
    }
}

/// A principal as a SPIFFE ID: `cluster.local` stands for the mesh's trust
/// domain, as in Istio.
fn principal_matcher(value: &str, trust_domain: &str) -> StringMatcher {
    let value = match value.split_once('/') {
        Some(("cluster.local", rest)) if !value.starts_with('*') => {
            format!("{trust_domain}/{rest}")
        }
        _ => value.to_string(),
    };
    string_matcher(&value, "spiffe://", false)
}

/// A namespace as the `/ns/NAME/` part of the caller's SPIFFE ID, `*`
/// standing for any characters.
fn namespace_matcher(value: &str) -> StringMatcher {
    let name: Vec<String> = value.split('*').map(escape).collect();
    StringMatcher {
        match_pattern: Some(MatchPattern::SafeRegex(RegexMatcher {
            regex: format!(".*/ns/{}/.*", name.join(".*")),
            ..Default::default()
        })),
        ignore_case: false,
    }
}

/// `text` as an RE2 literal.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// An IP (a one-address range) or CIDR; validation admits only these.
fn cidr(value: &str) -> CidrRange {
    let (address, length) = match value.split_once('/') {
        Some((a, l)) => (a, l.parse().ok()),
        None => (value, None),
    };
    let length = length.unwrap_or(if address.contains(':') { 128 } else { 32 });
    CidrRange {
        address_prefix: address.to_string(),
        prefix_len: Some(UInt32Value { value: length }),
    }
}

fn authenticated(name: StringMatcher) -> Principal {
    id(principal::Identifier::Authenticated(
        principal::Authenticated {
            principal_name: Some(name),
        },
    ))
}

fn id(identifier: principal::Identifier) -> Principal {
    Principal {
        identifier: Some(identifier),
    }
}

fn rule(rule: permission::Rule) -> Permission {
    Permission { rule: Some(rule) }
}

fn not_id(p: Principal) -> Principal {
    id(principal::Identifier::NotId(Box::new(p)))
}

fn not_rule(p: Permission) -> Permission {
    rule(permission::Rule::NotRule(Box::new(p)))
}

/// One alternative stays itself; none at all matches anything.
fn or_ids(mut ids: Vec<Principal>) -> Principal {
    match ids.len() {
        0 => id(principal::Identifier::Any(true)),
        1 => ids.remove(0),
        _ => id(principal::Identifier::OrIds(principal::Set { ids })),
    }
}

fn and_ids(mut ids: Vec<Principal>) -> Principal {
    match ids.len() {
        0 => id(principal::Identifier::Any(true)),
        1 => ids.remove(0),
        _ => id(principal::Identifier::AndIds(principal::Set { ids })),
    }
}

fn or_rules(mut rules: Vec<Permission>) -> Permission {
    match rules.len() {
        0 => rule(permission::Rule::Any(true)),
        1 => rules.remove(0),
        _ => rule(permission::Rule::OrRules(permission::Set { rules })),
    }
}

fn and_rules(mut rules: Vec<Permission>) -> Permission {
    match rules.len() {
        0 => rule(permission::Rule::Any(true)),
        1 => rules.remove(0),
        _ => rule(permission::Rule::AndRules(permission::Set { rules })),
    }
}

#[cfg(test)]
mod tests {
    use policy::security::AuthorizationPolicySpec;
    use prost::Message;

    use super::*;

    fn policy(name: &str, rules: usize) -> Arc<AuthorizationPolicy> {
        Arc::new(AuthorizationPolicy {
            meta: policy::ObjectMeta {
                name: name.to_string(),
                namespace: "shop".to_string(),
                ..Default::default()
            },
            spec: AuthorizationPolicySpec {
                rules: vec![Rule::default(); rules],
                ..Default::default()
            },
        })
    }

    #[test]
    fn policies_encode_the_same_every_time_and_decode_to_the_map() {
        let policies = [policy("b", 3), policy("a", 2)];
        let first = http_filters(&policies, "cluster.local", &[]);
        for _ in 0..20 {
            assert_eq!(http_filters(&policies, "cluster.local", &[]), first);
        }
        let Some(http_filter::ConfigType::TypedConfig(any)) = &first[0].config_type else {
            panic!("{first:?}")
        };
        let decoded = Rbac::decode(any.value.as_slice()).unwrap();
        let rules = decoded.rules.unwrap();
        assert_eq!(rules.action, Action::Allow as i32);
        let mut names: Vec<&String> = rules.policies.keys().collect();
        names.sort();
        assert_eq!(
            names,
            [
                "ns[shop]-policy[a]-rule[0]",
                "ns[shop]-policy[a]-rule[1]",
                "ns[shop]-policy[b]-rule[0]",
                "ns[shop]-policy[b]-rule[1]",
                "ns[shop]-policy[b]-rule[2]",
            ]
        );
    }

    #[test]
    fn principals_namespaces_and_values_match_as_istio_does() {
        let exact = |m: StringMatcher| match m.match_pattern {
            Some(MatchPattern::Exact(s)) => format!("exact {s}"),
            Some(MatchPattern::Prefix(s)) => format!("prefix {s}"),
            Some(MatchPattern::Suffix(s)) => format!("suffix {s}"),
            Some(MatchPattern::SafeRegex(r)) => format!("regex {}", r.regex),
            other => format!("{other:?}"),
        };
        assert_eq!(
            exact(principal_matcher("cluster.local/ns/a/sa/b", "example.org")),
            "exact spiffe://example.org/ns/a/sa/b"
        );
        assert_eq!(
            exact(principal_matcher("td/ns/a/*", "example.org")),
            "prefix spiffe://td/ns/a/"
        );
        assert_eq!(
            exact(principal_matcher("*/sa/b", "example.org")),
            "suffix /sa/b"
        );
        assert_eq!(exact(principal_matcher("*", "example.org")), "regex .+");
        assert_eq!(exact(namespace_matcher("team-*")), "regex .*/ns/team-.*/.*");
        assert_eq!(exact(namespace_matcher("a.b")), "regex .*/ns/a\\.b/.*");
        assert_eq!(cidr("10.0.0.1").prefix_len, Some(UInt32Value { value: 32 }));
        assert_eq!(cidr("::1").prefix_len, Some(UInt32Value { value: 128 }));
        assert_eq!(cidr("10.0.0.0/8").address_prefix, "10.0.0.0");
    }

    #[test]
    fn spec_without_rules_allows_nothing_and_denies_nothing() {
        let empty = |action| {
            Arc::new(AuthorizationPolicy {
                spec: AuthorizationPolicySpec {
                    action,
                    ..Default::default()
                },
                ..(*policy("p", 0)).clone()
            })
        };
        let allow = http_filters(&[empty(AuthorizationAction::Allow)], "cluster.local", &[]);
        assert_eq!(allow.len(), 1, "an ALLOW filter with no policy: deny all");
        let deny = http_filters(&[empty(AuthorizationAction::Deny)], "cluster.local", &[]);
        assert!(deny.is_empty());
        let audit = http_filters(&[empty(AuthorizationAction::Audit)], "cluster.local", &[]);
        assert!(audit.is_empty());
    }

    /// Each alternative of a request-principal matcher as `issuer sub-pattern`.
    fn alternatives(p: &Principal) -> Vec<String> {
        let one = |p: &Principal| -> String {
            let Some(principal::Identifier::SourcedMetadata(m)) = &p.identifier else {
                return format!("{p:?}");
            };
            let m = m.metadata_matcher.as_ref().unwrap();
            let path: Vec<String> = m
                .path
                .iter()
                .map(|s| match &s.segment {
                    Some(metadata_matcher::path_segment::Segment::Key(k)) => k.clone(),
                    None => String::new(),
                })
                .collect();
            let value = match m.value.as_ref().and_then(|v| v.match_pattern.as_ref()) {
                Some(value_matcher::MatchPattern::PresentMatch(true)) => "present".to_string(),
                Some(value_matcher::MatchPattern::StringMatch(sm)) => {
                    match sm.match_pattern.as_ref().unwrap() {
                        MatchPattern::Exact(s) => format!("exact {s}"),
                        MatchPattern::Prefix(s) => format!("prefix {s}"),
                        MatchPattern::Suffix(s) => format!("suffix {s}"),
                        other => format!("{other:?}"),
                    }
                }
                other => format!("{other:?}"),
            };
            format!("{} {value}", path.join("."))
        };
        match &p.identifier {
            Some(principal::Identifier::OrIds(set)) => set.ids.iter().map(one).collect(),
            Some(principal::Identifier::NotId(_)) => vec!["never".to_string()],
            _ => vec![one(p)],
        }
    }

    #[test]
    fn request_principals_split_into_issuer_and_subject() {
        let issuers = ["https://a.example/x".to_string(), "b".to_string()];
        let cases: &[(&str, &[&str])] = &[
            ("*", &["https://a.example/x present", "b present"]),
            ("b/alice", &["b.sub exact alice"]),
            (
                "https://a.example/x/alice",
                &["https://a.example/x.sub exact alice"],
            ),
            ("https://a.example/*", &["https://a.example/x.sub present"]),
            (
                "https://a.example/x/al*",
                &["https://a.example/x.sub prefix al"],
            ),
            (
                "*x/bob",
                &[
                    "https://a.example/x.sub suffix x/bob",
                    "https://a.example/x.sub exact bob",
                    "b.sub suffix x/bob",
                ],
            ),
            ("c/alice", &["never"]),
        ];
        for (pattern, expected) in cases {
            assert_eq!(
                alternatives(&request_principal(pattern, &issuers)),
                *expected,
                "{pattern}"
            );
        }
        assert_eq!(alternatives(&request_principal("*", &[])), ["never"]);
    }
}
