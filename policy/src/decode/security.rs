//! `security.istio.io`: PeerAuthentication, AuthorizationPolicy and
//! RequestAuthentication. Fields Bowline does not compile (a CUSTOM
//! action's `provider`, `targetRef(s)`, JWT claims copied to headers, ...)
//! are "not supported yet".

use serde_yaml::Value;

use super::{
    DecodeError, Fields, Findings, Result, Shape, ShapeId, boolean, keyword, list, string,
    string_list, string_map,
};
use crate::diag::{Diagnostic, FieldPath};
use crate::meta::ObjectMeta;
use crate::security::{
    AuthorizationAction, AuthorizationPolicy, AuthorizationPolicySpec, Condition, JwtHeader,
    JwtRule, MatchLabels, MtlsMode, Operation, PeerAuthentication, PeerAuthenticationSpec,
    RequestAuthentication, RequestAuthenticationSpec, Rule, Source,
};

pub(super) const PEER_AUTHENTICATION: Shape = Shape {
    name: "PeerAuthentication.spec",
    known: &["selector", "mtls", "portLevelMtls"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

/// Istio's `istio.type.v1beta1.WorkloadSelector`, shared by the three kinds.
pub(super) const SELECTOR: Shape = Shape {
    name: "PeerAuthentication.spec.selector",
    known: &["matchLabels"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const MTLS: Shape = Shape {
    name: "PeerAuthentication.spec.mtls",
    known: &["mode"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const AUTHORIZATION_POLICY: Shape = Shape {
    name: "AuthorizationPolicy.spec",
    // `provider` is read only to name it: it configures CUSTOM.
    known: &["selector", "action", "rules", "provider"],
    unsupported: &["targetRef", "targetRefs"],
    ignored: &[],
    proto_names: true,
};

pub(super) const RULE: Shape = Shape {
    name: "AuthorizationPolicy.spec.rules[]",
    known: &["from", "to", "when"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const FROM: Shape = Shape {
    name: "AuthorizationPolicy.spec.rules[].from[]",
    known: &["source"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const SOURCE: Shape = Shape {
    name: "AuthorizationPolicy.spec.rules[].from[].source",
    known: &[
        "principals",
        "notPrincipals",
        "requestPrincipals",
        "notRequestPrincipals",
        "namespaces",
        "notNamespaces",
        "ipBlocks",
        "notIpBlocks",
        "remoteIpBlocks",
        "notRemoteIpBlocks",
    ],
    unsupported: &["serviceAccounts", "notServiceAccounts"],
    ignored: &[],
    proto_names: true,
};

pub(super) const TO: Shape = Shape {
    name: "AuthorizationPolicy.spec.rules[].to[]",
    known: &["operation"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const OPERATION: Shape = Shape {
    name: "AuthorizationPolicy.spec.rules[].to[].operation",
    known: &[
        "hosts",
        "notHosts",
        "ports",
        "notPorts",
        "methods",
        "notMethods",
        "paths",
        "notPaths",
    ],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const CONDITION: Shape = Shape {
    name: "AuthorizationPolicy.spec.rules[].when[]",
    known: &["key", "values", "notValues"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const REQUEST_AUTHENTICATION: Shape = Shape {
    name: "RequestAuthentication.spec",
    known: &["selector", "jwtRules"],
    unsupported: &["targetRef", "targetRefs"],
    ignored: &[],
    proto_names: true,
};

pub(super) const JWT_RULE: Shape = Shape {
    name: "RequestAuthentication.spec.jwtRules[]",
    known: &[
        "issuer",
        "audiences",
        "jwksUri",
        "jwks",
        "fromHeaders",
        "fromParams",
        "forwardOriginalToken",
        "outputPayloadToHeader",
    ],
    unsupported: &["outputClaimToHeaders", "fromCookies", "timeout"],
    ignored: &[],
    proto_names: true,
};

pub(super) const JWT_HEADER: Shape = Shape {
    name: "RequestAuthentication.spec.jwtRules[].fromHeaders[]",
    known: &["name", "prefix"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

const MODES: [(&str, MtlsMode); 4] = [
    ("UNSET", MtlsMode::Unset),
    ("STRICT", MtlsMode::Strict),
    ("PERMISSIVE", MtlsMode::Permissive),
    ("DISABLE", MtlsMode::Disable),
];

pub(crate) fn decode_peer_authentication(
    meta: ObjectMeta,
    path: &FieldPath,
    spec: &Value,
) -> Result<PeerAuthentication> {
    let fields = Fields::new(spec, path, ShapeId::PeerAuthentication)?;
    let selector = selector(&fields)?;
    let mtls = match fields.get("mtls") {
        Some((p, v)) => mutual_tls(v, &p)?,
        None => MtlsMode::Unset,
    };
    let mut port_level_mtls = std::collections::BTreeMap::new();
    if let Some((p, v)) = fields.get("portLevelMtls") {
        let Value::Mapping(map) = v else {
            return Err(DecodeError::new(
                &p,
                format!("expected a mapping, got {}", super::describe(v)),
            ));
        };
        for (key, value) in map {
            // YAML writes the port as a number (`8090:`) or a string (`"8090":`).
            let text = match key {
                Value::Number(n) => n.to_string(),
                Value::String(s) => s.clone(),
                other => {
                    return Err(DecodeError::new(
                        &p,
                        format!(
                            "expected port numbers as keys, got {}",
                            super::describe(other)
                        ),
                    ));
                }
            };
            let at = p.key(&text);
            let port = text.parse::<u16>().map_err(|_| {
                DecodeError::new(&at, format!("expected a port number 1-65535, got {text:?}"))
            })?;
            if port_level_mtls
                .insert(port, mutual_tls(value, &at)?)
                .is_some()
            {
                return Err(DecodeError::new(&at, format!("port {port} given twice")));
            }
        }
    }
    Ok(PeerAuthentication {
        meta,
        spec: PeerAuthenticationSpec {
            selector,
            mtls,
            port_level_mtls,
        },
    })
}

fn mutual_tls(value: &Value, path: &FieldPath) -> Result<MtlsMode> {
    let fields = Fields::new(value, path, ShapeId::Mtls)?;
    match fields.get("mode") {
        Some((p, v)) => keyword(v, &p, &MODES),
        None => Ok(MtlsMode::Unset),
    }
}

fn selector(fields: &Fields<'_>) -> Result<Option<MatchLabels>> {
    let Some((p, v)) = fields.get("selector") else {
        return Ok(None);
    };
    let selector = Fields::new(v, &p, ShapeId::SecuritySelector)?;
    let labels = match selector.get("matchLabels") {
        Some((p, v)) => string_map(v, &p)?,
        None => MatchLabels::new(),
    };
    Ok(Some(labels))
}

pub(crate) fn decode_authorization_policy(
    meta: ObjectMeta,
    path: &FieldPath,
    spec: &Value,
) -> Result<AuthorizationPolicy> {
    let fields = Fields::new(spec, path, ShapeId::AuthorizationPolicy)?;
    let selector = selector(&fields)?;
    let action = match fields.get("action") {
        Some((p, v)) => {
            let text = string(v, &p)?;
            if text.eq_ignore_ascii_case("CUSTOM") {
                return Err(DecodeError::new(
                    &p,
                    "action CUSTOM (external authorization) is not supported yet",
                ));
            }
            keyword(
                v,
                &p,
                &[
                    ("ALLOW", AuthorizationAction::Allow),
                    ("DENY", AuthorizationAction::Deny),
                    ("AUDIT", AuthorizationAction::Audit),
                ],
            )?
        }
        None => AuthorizationAction::Allow,
    };
    if let Some((p, v)) = fields.get("provider")
        && !super::fields::is_empty(v)
    {
        return Err(DecodeError::new(
            &p,
            "field is not supported yet (it names the external authorizer of action CUSTOM)",
        ));
    }
    let mut rules = Vec::new();
    if let Some((p, v)) = fields.get("rules") {
        for (p, v) in list(v, &p)? {
            rules.push(rule(v, &p)?);
        }
    }
    Ok(AuthorizationPolicy {
        meta,
        spec: AuthorizationPolicySpec {
            selector,
            action,
            rules,
        },
    })
}

fn strings(fields: &Fields<'_>, name: &str) -> Result<Vec<String>> {
    fields
        .get(name)
        .map(|(p, v)| string_list(v, &p))
        .transpose()
        .map(Option::unwrap_or_default)
}

fn rule(value: &Value, path: &FieldPath) -> Result<Rule> {
    if value.is_null() {
        return Err(DecodeError::new(path, "rule may not be null"));
    }
    let fields = Fields::new(value, path, ShapeId::AuthorizationRule)?;
    let mut rule = Rule::default();
    if let Some((p, v)) = fields.get("from") {
        let items = list(v, &p)?;
        if items.is_empty() {
            return Err(DecodeError::new(&p, "`from` must not be empty"));
        }
        for (p, v) in items {
            let from = Fields::new(v, &p, ShapeId::AuthorizationFrom)?;
            let (p, v) = from.require("source")?;
            let s = Fields::new(v, &p, ShapeId::AuthorizationSource)?;
            rule.from.push(Source {
                principals: strings(&s, "principals")?,
                not_principals: strings(&s, "notPrincipals")?,
                request_principals: strings(&s, "requestPrincipals")?,
                not_request_principals: strings(&s, "notRequestPrincipals")?,
                namespaces: strings(&s, "namespaces")?,
                not_namespaces: strings(&s, "notNamespaces")?,
                ip_blocks: strings(&s, "ipBlocks")?,
                not_ip_blocks: strings(&s, "notIpBlocks")?,
                remote_ip_blocks: strings(&s, "remoteIpBlocks")?,
                not_remote_ip_blocks: strings(&s, "notRemoteIpBlocks")?,
            });
        }
    }
    if let Some((p, v)) = fields.get("to") {
        let items = list(v, &p)?;
        if items.is_empty() {
            return Err(DecodeError::new(&p, "`to` must not be empty"));
        }
        for (p, v) in items {
            let to = Fields::new(v, &p, ShapeId::AuthorizationTo)?;
            let (p, v) = to.require("operation")?;
            let o = Fields::new(v, &p, ShapeId::AuthorizationOperation)?;
            rule.to.push(Operation {
                hosts: strings(&o, "hosts")?,
                not_hosts: strings(&o, "notHosts")?,
                ports: strings(&o, "ports")?,
                not_ports: strings(&o, "notPorts")?,
                methods: strings(&o, "methods")?,
                not_methods: strings(&o, "notMethods")?,
                paths: strings(&o, "paths")?,
                not_paths: strings(&o, "notPaths")?,
            });
        }
    }
    if let Some((p, v)) = fields.get("when") {
        for (p, v) in list(v, &p)? {
            let c = Fields::new(v, &p, ShapeId::AuthorizationCondition)?;
            let key = match c.get("key") {
                Some((p, v)) => string(v, &p)?,
                None => String::new(),
            };
            rule.when.push(Condition {
                key,
                values: strings(&c, "values")?,
                not_values: strings(&c, "notValues")?,
            });
        }
    }
    Ok(rule)
}

pub(crate) fn decode_request_authentication(
    meta: ObjectMeta,
    path: &FieldPath,
    spec: &Value,
    findings: &mut Findings,
) -> Result<RequestAuthentication> {
    let fields = Fields::new(spec, path, ShapeId::RequestAuthentication)?;
    let selector = selector(&fields)?;
    let mut jwt_rules = Vec::new();
    if let Some((p, v)) = fields.get("jwtRules") {
        for (p, v) in list(v, &p)? {
            if v.is_null() {
                findings.push(Diagnostic::error(p.clone(), "jwt rule may not be null"));
                continue;
            }
            jwt_rules.push(jwt_rule(v, &p)?);
        }
    }
    Ok(RequestAuthentication {
        meta,
        spec: RequestAuthenticationSpec {
            selector,
            jwt_rules,
        },
    })
}

fn optional_string(fields: &Fields<'_>, name: &str) -> Result<Option<String>> {
    fields.get(name).map(|(p, v)| string(v, &p)).transpose()
}

fn jwt_rule(value: &Value, path: &FieldPath) -> Result<JwtRule> {
    let fields = Fields::new(value, path, ShapeId::JwtRule)?;
    let mut from_headers = Vec::new();
    if let Some((p, v)) = fields.get("fromHeaders") {
        for (p, v) in list(v, &p)? {
            let h = Fields::new(v, &p, ShapeId::JwtHeader)?;
            from_headers.push(JwtHeader {
                name: optional_string(&h, "name")?.unwrap_or_default(),
                prefix: optional_string(&h, "prefix")?,
            });
        }
    }
    Ok(JwtRule {
        issuer: optional_string(&fields, "issuer")?.unwrap_or_default(),
        audiences: strings(&fields, "audiences")?,
        jwks_uri: optional_string(&fields, "jwksUri")?.filter(|s| !s.is_empty()),
        jwks: optional_string(&fields, "jwks")?.filter(|s| !s.is_empty()),
        from_headers,
        from_params: strings(&fields, "fromParams")?,
        forward_original_token: fields
            .get("forwardOriginalToken")
            .map(|(p, v)| boolean(v, &p))
            .transpose()?
            .unwrap_or(false),
        output_payload_to_header: optional_string(&fields, "outputPayloadToHeader")?
            .filter(|s| !s.is_empty()),
    })
}
