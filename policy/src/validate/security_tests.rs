//! The security kinds, through the whole parse path.

use super::tests::errors;
use crate::object::{Object, ParsedDocument, parse_documents};
use crate::security::{AuthorizationAction, MtlsMode};

fn doc(kind: &str, spec: &str) -> String {
    format!(
        "apiVersion: security.istio.io/v1\nkind: {kind}\nmetadata:\n  name: p\n  namespace: shop\nspec:\n{spec}"
    )
}

fn authz(spec: &str) -> String {
    doc("AuthorizationPolicy", spec)
}

fn object(text: &str) -> Object {
    match parse_documents("t.yaml", text).as_slice() {
        [ParsedDocument::Object { object, .. }] => object.clone(),
        other => panic!("{other:#?}"),
    }
}

#[test]
fn peer_authentication_decodes_in_both_versions() {
    for version in ["v1", "v1beta1"] {
        let text = doc(
            "PeerAuthentication",
            "  selector: {matchLabels: {app: web}}\n  mtls: {mode: STRICT}\n  portLevelMtls:\n    8080: {mode: PERMISSIVE}\n    '9090': {}\n",
        )
        .replace("security.istio.io/v1", &format!("security.istio.io/{version}"));
        let Object::PeerAuthentication(pa) = object(&text) else {
            panic!()
        };
        assert_eq!(pa.spec.mtls, MtlsMode::Strict);
        assert_eq!(
            pa.spec.port_level_mtls.get(&8080),
            Some(&MtlsMode::Permissive)
        );
        assert_eq!(pa.spec.port_level_mtls.get(&9090), Some(&MtlsMode::Unset));
    }
    let Object::PeerAuthentication(pa) = object(&doc("PeerAuthentication", "  {}\n")) else {
        panic!()
    };
    assert_eq!(pa.spec.mtls, MtlsMode::Unset);
}

#[test]
fn peer_authentication_errors_follow_istio() {
    assert_eq!(
        errors(&doc(
            "PeerAuthentication",
            "  mtls: {mode: STRICT}\n  portLevelMtls: {8080: {mode: DISABLE}}\n"
        )),
        [
            "spec.portLevelMtls: portLevelMtls requires selector: a mesh- or namespace-wide policy cannot set port-level mTLS"
        ]
    );
    assert_eq!(
        errors(&doc(
            "PeerAuthentication",
            "  selector: {matchLabels: {}}\n  portLevelMtls: {8080: {mode: DISABLE}}\n"
        ))
        .len(),
        1
    );
    assert_eq!(
        errors(&doc("PeerAuthentication", "  mtls: {mode: STRIKT}\n")),
        [
            "spec.mtls.mode: unknown value \"STRIKT\"; expected one of UNSET, STRICT, PERMISSIVE, DISABLE"
        ]
    );
    assert_eq!(
        errors(&doc(
            "PeerAuthentication",
            "  selector: {matchLabels: {app: a}}\n  portLevelMtls: {http: {mode: STRICT}}\n"
        )),
        ["spec.portLevelMtls[http]: expected a port number 1-65535, got \"http\""]
    );
    assert_eq!(
        errors(&doc(
            "PeerAuthentication",
            "  selector: {matchLabels: {app: a}}\n  portLevelMtls: {0: {mode: STRICT}}\n"
        )),
        ["spec.portLevelMtls[0]: port cannot be 0"]
    );
    assert_eq!(
        errors(&doc(
            "PeerAuthentication",
            "  selector: {matchLabels: {app: '*'}}\n"
        )),
        ["spec.selector.matchLabels[app]: wildcard is not supported in selector: \"app=*\""]
    );
    assert_eq!(
        errors(&doc(
            "PeerAuthentication",
            "  selector: {labels: {app: a}}\n"
        )),
        ["spec.selector.labels: unknown field"]
    );
}

#[test]
fn authorization_policy_decodes_every_supported_field() {
    let Object::AuthorizationPolicy(ap) = object(&authz(
        "  selector: {matchLabels: {app: web}}\n  action: DENY\n  rules:\n  - from:\n    - source:\n        principals: [cluster.local/ns/a/sa/b]\n        notNamespaces: [x]\n        ipBlocks: [10.0.0.0/8]\n        not_remote_ip_blocks: [1.2.3.4]\n    to:\n    - operation: {methods: [GET], paths: ['/admin*'], ports: ['8080'], notHosts: ['*.evil']}\n    when:\n    - key: request.headers[x-token]\n      notValues: [secret]\n",
    ))
    .to_owned() else {
        panic!()
    };
    assert_eq!(ap.spec.action, AuthorizationAction::Deny);
    let rule = &ap.spec.rules[0];
    assert_eq!(rule.from[0].not_remote_ip_blocks, ["1.2.3.4"]);
    assert_eq!(rule.to[0].paths, ["/admin*"]);
    assert_eq!(rule.when[0].key, "request.headers[x-token]");
}

#[test]
fn authorization_policy_errors_name_their_path() {
    let cases: &[(&str, &str)] = &[
        (
            "  action: CUSTOM\n  provider: {name: ext}\n",
            "spec.action: action CUSTOM (external authorization) is not supported yet",
        ),
        (
            "  provider: {name: ext}\n",
            "spec.provider: field is not supported yet (it names the external authorizer of action CUSTOM)",
        ),
        (
            "  targetRefs: [{kind: Gateway, name: g}]\n",
            "spec.targetRefs: field is not supported yet",
        ),
        (
            "  action: PERMIT\n",
            "spec.action: unknown value \"PERMIT\"; expected one of ALLOW, DENY, AUDIT",
        ),
        (
            "  rules: [{from: []}]\n",
            "spec.rules[0].from: `from` must not be empty",
        ),
        (
            "  rules: [{from: [{source: {}}]}]\n",
            "spec.rules[0].from[0].source: `from.source` must not be empty",
        ),
        (
            "  rules: [{from: [{}]}]\n",
            "spec.rules[0].from[0].source: field is required",
        ),
        (
            "  rules: [{to: [{operation: {}}]}]\n",
            "spec.rules[0].to[0].operation: `to.operation` must not be empty",
        ),
        (
            "  rules: [{from: [{source: {ipBlocks: [10.0.0.0/33]}}]}]\n",
            "spec.rules[0].from[0].source.ipBlocks[0]: invalid IP address or CIDR range: \"10.0.0.0/33\"",
        ),
        (
            "  rules: [{from: [{source: {principals: ['']}}]}]\n",
            "spec.rules[0].from[0].source.principals[0]: empty value not allowed",
        ),
        (
            "  rules: [{from: [{source: {principals: ['a*b']}}]}]\n",
            "spec.rules[0].from[0].source.principals[0]: \"a*b\": a wildcard \"*\" may only be the whole value, or one at its start or end",
        ),
        (
            "  rules: [{to: [{operation: {ports: [http]}}]}]\n",
            "spec.rules[0].to[0].operation.ports[0]: invalid port \"http\": expected a number 0-65535",
        ),
        (
            "  rules: [{to: [{operation: {paths: ['/a/*/b']}}]}]\n",
            "spec.rules[0].to[0].operation.paths[0]: \"/a/*/b\": a wildcard \"*\" may only be the whole value, or one at its start or end",
        ),
        (
            "  rules: [{when: [{key: source.ip, values: [abc]}]}]\n",
            "spec.rules[0].when[0].values[0]: invalid IP address or CIDR range: \"abc\"",
        ),
        (
            "  rules: [{when: [{key: destination.port, notValues: ['99999']}]}]\n",
            "spec.rules[0].when[0].notValues[0]: invalid port \"99999\": expected a number 0-65535",
        ),
        (
            "  rules: [{when: [{key: source.principal}]}]\n",
            "spec.rules[0].when[0]: at least one of `values` or `notValues` must be set for key source.principal",
        ),
        (
            "  rules: [{when: [{values: [a]}]}]\n",
            "spec.rules[0].when[0].key: `key` must not be empty",
        ),
        (
            "  rules: [{when: [{key: 'request.header[a]', values: [a]}]}]\n",
            "spec.rules[0].when[0].key: unknown attribute \"request.header[a]\"; expected request.headers[NAME], source.ip, remote.ip, source.namespace, source.principal, request.auth.principal, request.auth.claims[NAME] or destination.port",
        ),
        (
            "  rules: [{when: [{key: connection.sni, values: [a]}]}]\n",
            "spec.rules[0].when[0].key: condition key \"connection.sni\" is not supported yet",
        ),
    ];
    for (spec, expected) in cases {
        assert_eq!(errors(&authz(spec)), [*expected], "{spec}");
    }
}

#[test]
fn dry_run_is_refused_unless_false() {
    let with = |value: &str| {
        authz("  {}\n").replace(
            "  namespace: shop\n",
            &format!("  namespace: shop\n  annotations: {{istio.io/dry-run: '{value}'}}\n"),
        )
    };
    assert_eq!(
        errors(&with("true")),
        [
            "metadata.annotations[istio.io/dry-run]: dry-run policies are not supported yet: this policy would be enforced, not only logged"
        ]
    );
    assert!(errors(&with("false")).is_empty());
    assert_eq!(
        errors(&with("yes")),
        ["metadata.annotations[istio.io/dry-run]: expected \"true\" or \"false\", got \"yes\""]
    );
}

#[test]
fn request_authentication_decodes_and_validates() {
    let text = doc(
        "RequestAuthentication",
        "  selector: {matchLabels: {app: web}}\n  jwtRules:\n  - issuer: https://issuer.example\n    audiences: [web]\n    jwks: '{\"keys\": [{\"kty\": \"EC\", \"crv\": \"P-256\", \"x\": \"a\", \"y\": \"b\"}]}'\n    fromHeaders: [{name: x-jwt, prefix: 'Bearer '}]\n    fromParams: [token]\n    forwardOriginalToken: true\n    outputPayloadToHeader: x-jwt-payload\n",
    );
    let Object::RequestAuthentication(ra) = object(&text) else {
        panic!()
    };
    let rule = &ra.spec.jwt_rules[0];
    assert_eq!(rule.issuer, "https://issuer.example");
    assert_eq!(rule.from_headers[0].prefix.as_deref(), Some("Bearer "));
    assert!(rule.forward_original_token);
    let cases: &[(&str, &str)] = &[
        (
            "  jwtRules: [{jwksUri: 'https://a/k'}]\n",
            "spec.jwtRules[0].issuer: issuer must be set",
        ),
        (
            "  jwtRules: [{issuer: a, jwksUri: 'https://a/k', jwks: '{\"kty\": \"oct\", \"k\": \"x\"}'}]\n",
            "spec.jwtRules[0]: only one of jwks or jwksUri can be set",
        ),
        (
            "  jwtRules: [{issuer: a, jwksUri: 'file:///k'}]\n",
            "spec.jwtRules[0].jwksUri: jwksUri \"file:///k\": URI scheme \"file\" is not supported",
        ),
        (
            "  jwtRules: [{issuer: a, jwks: '{'}]\n",
            "spec.jwtRules[0].jwks: jwks parse error: EOF while parsing an object at line 1 column 1",
        ),
        (
            "  jwtRules: [{issuer: a, fromHeaders: [{prefix: x}]}]\n",
            "spec.jwtRules[0].fromHeaders[0].name: location header name must be non-empty string",
        ),
        (
            "  jwtRules: [{issuer: a, fromParams: ['']}]\n",
            "spec.jwtRules[0].fromParams[0]: location query must be non-empty string",
        ),
        (
            "  jwtRules: [{issuer: a, audiences: ['']}]\n",
            "spec.jwtRules[0].audiences[0]: audience must be non-empty string",
        ),
        (
            "  jwtRules: [{issuer: a, outputClaimToHeaders: [{header: x, claim: y}]}]\n",
            "spec.jwtRules[0].outputClaimToHeaders: field is not supported yet",
        ),
        (
            "  jwtRules: [{issuer: a, fromCookies: [session]}]\n",
            "spec.jwtRules[0].fromCookies: field is not supported yet",
        ),
        (
            "  jwtRules: [{issuer: a, timeout: 5s}]\n",
            "spec.jwtRules[0].timeout: field is not supported yet",
        ),
        (
            "  jwtRules: [{issuer: a}, {issuer: a}]\n",
            "spec.jwtRules[1].issuer: duplicate issuer a, also at spec.jwtRules[0].issuer",
        ),
    ];
    for (spec, expected) in cases {
        assert_eq!(
            errors(&doc("RequestAuthentication", spec)),
            [*expected],
            "{spec}"
        );
    }
}

#[test]
fn security_kinds_under_the_networking_group_are_refused() {
    let text = authz("  {}\n").replace("security.istio.io/v1", "networking.istio.io/v1");
    assert_eq!(
        errors(&text),
        [
            "apiVersion: apiVersion networking.istio.io/v1 does not serve kind AuthorizationPolicy; expected security.istio.io/v1, security.istio.io/v1beta1"
        ]
    );
}
