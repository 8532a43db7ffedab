//! Rules that follow Istio's own validation: header operation names, regex
//! limits in every place a regex is accepted, direct-response body size,
//! fields Istio drops on redirect and direct-response routes, deprecated
//! outlier detection and mesh-bound wildcard hosts.

use super::tests::{DESTINATION_RULE, VIRTUAL_SERVICE, errors, warnings};

fn route(extra: &str) -> String {
    format!(
        "{VIRTUAL_SERVICE}  hosts: [reviews]\n  http:\n  - route: [{{destination: {{host: reviews}}}}]\n{extra}"
    )
}

fn bare_route(fields: &str) -> String {
    format!("{VIRTUAL_SERVICE}  hosts: [reviews]\n  http:\n  - {fields}\n")
}

#[test]
fn host_and_pseudo_headers_follow_istio_per_operation() {
    let e = errors(&route(
        "    headers:\n      request:\n        remove: [Host, ':authority']\n      response:\n        set: {host: a}\n        add: {HOST: b, ':authority': c}\n        remove: [host]\n",
    ));
    let expected = |path: &str, name: &str| {
        format!(
            "{path}: header {name:?} cannot be modified here (only a request set or add may name host or :authority, to rewrite the authority)"
        )
    };
    assert_eq!(
        e,
        vec![
            expected("spec.http[0].headers.request.remove[0]", "Host"),
            expected("spec.http[0].headers.request.remove[1]", ":authority"),
            expected("spec.http[0].headers.response.set[host]", "host"),
            expected(
                "spec.http[0].headers.response.add[:authority]",
                ":authority"
            ),
            expected("spec.http[0].headers.response.add[HOST]", "HOST"),
            expected("spec.http[0].headers.response.remove[0]", "host"),
        ]
    );
    let e = errors(&format!(
        "{VIRTUAL_SERVICE}  hosts: [reviews]\n  http:\n  - route:\n    - destination: {{host: reviews}}\n      headers: {{response: {{set: {{Host: a}}}}, request: {{remove: [host]}}}}\n"
    ));
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(e[0].starts_with("spec.http[0].route[0].headers.request.remove[0]: header \"host\""));
    assert!(e[1].starts_with("spec.http[0].route[0].headers.response.set[Host]: header \"Host\""));
}

#[test]
fn a_request_may_rewrite_the_authority_once() {
    for once in [
        "    headers: {request: {set: {Host: a.example}}}\n",
        "    headers: {request: {add: {':authority': a.example}}}\n",
        "    headers: {request: {set: {':Authority': a.example}}}\n",
    ] {
        assert_eq!(errors(&route(once)), Vec::<String>::new(), "{once}");
    }
    assert_eq!(
        errors(&route(
            "    headers: {request: {set: {host: a}, add: {':authority': b}}}\n"
        )),
        vec![
            "spec.http[0].headers.request.add[:authority]: the authority is already set by spec.http[0].headers.request.set[host]: set it once"
        ]
    );
    assert_eq!(
        errors(&route(
            "    rewrite: {authority: a}\n    headers: {request: {set: {host: b}}}\n"
        )),
        vec![
            "spec.http[0].headers.request.set[host]: the authority is already set by spec.http[0].rewrite.authority: set it once"
        ]
    );
    assert!(
        errors(&route("    headers: {request: {set: {':path': /x}}}\n"))[0].starts_with(
            "spec.http[0].headers.request.set[:path]: header \":path\" cannot be modified"
        )
    );
}

#[test]
fn every_regex_is_limited_to_1024_bytes() {
    let long = "a".repeat(1025);
    let text = format!(
        "{VIRTUAL_SERVICE}  hosts: [reviews]\n  http:\n  - match:\n    - uri: {{regex: {long}}}\n      scheme: {{regex: {long}}}\n      method: {{regex: {long}}}\n      authority: {{regex: {long}}}\n      headers: {{x-a: {{regex: {long}}}}}\n      withoutHeaders: {{x-b: {{regex: {long}}}}}\n      queryParams: {{q: {{regex: {long}}}}}\n    rewrite: {{uriRegexRewrite: {{match: {long}, rewrite: /x}}}}\n    corsPolicy: {{allowOrigins: [{{regex: {long}}}]}}\n    route: [{{destination: {{host: reviews}}}}]\n"
    );
    let e = errors(&text);
    let mut paths: Vec<&str> = e
        .iter()
        .map(|m| {
            assert!(
                m.ends_with("regex is too large: 1025 bytes, at most 1024 are allowed"),
                "{m}"
            );
            m.split(": ").next().unwrap()
        })
        .collect();
    paths.sort_unstable();
    assert_eq!(
        paths,
        vec![
            "spec.http[0].corsPolicy.allowOrigins[0].regex",
            "spec.http[0].match[0].authority.regex",
            "spec.http[0].match[0].headers[x-a].regex",
            "spec.http[0].match[0].method.regex",
            "spec.http[0].match[0].queryParams[q].regex",
            "spec.http[0].match[0].scheme.regex",
            "spec.http[0].match[0].uri.regex",
            "spec.http[0].match[0].withoutHeaders[x-b].regex",
            "spec.http[0].rewrite.uriRegexRewrite.match",
        ]
    );
    let ok = "a".repeat(1024);
    assert_eq!(
        errors(&format!(
            "{VIRTUAL_SERVICE}  hosts: [reviews]\n  http:\n  - match: [{{uri: {{regex: {ok}}}}}]\n    route: [{{destination: {{host: reviews}}}}]\n"
        )),
        Vec::<String>::new()
    );
}

#[test]
fn direct_response_bodies_are_limited_to_1_mib() {
    let body = |n: usize| {
        bare_route(&format!(
            "directResponse: {{status: 200, body: {{string: {}}}}}",
            "x".repeat(n)
        ))
    };
    assert_eq!(errors(&body(1024 * 1024)), Vec::<String>::new());
    assert_eq!(
        warnings(&body(100 * 1024 + 1)),
        vec![
            "spec.http[0].directResponse.body.string: body is 102401 bytes: large direct responses are sent to every proxy that sees the host and may slow the control plane"
        ]
    );
    assert_eq!(
        errors(&body(1024 * 1024 + 1)),
        vec![
            "spec.http[0].directResponse.body.string: body is 1048577 bytes; a direct response body may be at most 1048576 bytes (1 MiB)"
        ]
    );
}

#[test]
fn route_action_fields_on_redirect_and_direct_response_routes_warn() {
    for (answer, fields) in [
        ("redirect", "redirect: {uri: /new}"),
        ("directResponse", "directResponse: {status: 204}"),
    ] {
        let text = bare_route(&format!(
            "{fields}\n    timeout: 1s\n    retries: {{attempts: 2}}\n    mirror: {{host: shadow}}\n    mirrorPercentage: {{value: 50}}\n    headers: {{request: {{set: {{host: a}}}}}}"
        ));
        assert_eq!(errors(&text), Vec::<String>::new(), "{answer}");
        let w = warnings(&text);
        for field in ["timeout", "retries", "mirror", "mirrorPercentage"] {
            let expected = format!(
                "spec.http[0].{field}: {field} has no effect on a {answer} route: it is ignored, as Istio ignores it"
            );
            assert!(w.contains(&expected), "{expected} in {w:#?}");
        }
        let expected = format!(
            "spec.http[0].headers.request.set[host]: host rewrites the authority sent upstream, which a {answer} route does not do: it is ignored, as Istio ignores it"
        );
        assert!(w.contains(&expected), "{expected} in {w:#?}");
        assert_eq!(w.len(), 5, "{w:#?}");
    }
    let text = bare_route("redirect: {uri: /new}\n    mirrorPercent: 5");
    assert!(warnings(&text).iter().any(|w| w.starts_with(
        "spec.http[0].mirrorPercentage: mirrorPercentage has no effect on a redirect route"
    )));
    assert!(warnings(&route("    timeout: 1s\n    retries: {attempts: 2}\n")).is_empty());
}

#[test]
fn deprecated_consecutive_errors_warns() {
    let text = format!(
        "{DESTINATION_RULE}  host: reviews\n  trafficPolicy:\n    outlierDetection: {{consecutiveErrors: 3}}\n"
    );
    assert_eq!(errors(&text), Vec::<String>::new());
    assert_eq!(
        warnings(&text),
        vec![
            "spec.trafficPolicy.outlierDetection.consecutiveErrors: consecutiveErrors is deprecated: it is compiled as consecutiveGatewayErrors (502, 503 and 504), as Istio's API reference defines it; use consecutiveGatewayErrors or consecutive5xxErrors"
        ]
    );
    let text = format!(
        "{DESTINATION_RULE}  host: reviews\n  trafficPolicy:\n    portLevelSettings:\n    - port: {{number: 80}}\n      outlierDetection: {{consecutive_errors: 3}}\n"
    );
    let w = warnings(&text);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert!(w[0].starts_with(
        "spec.trafficPolicy.portLevelSettings[0].outlierDetection.consecutive_errors: consecutiveErrors is deprecated"
    ));
}

#[test]
fn bare_wildcard_hosts_only_off_the_mesh() {
    for gateways in ["", "  gateways: [mesh]\n"] {
        let e = errors(&format!(
            "{VIRTUAL_SERVICE}  hosts: ['*']\n{gateways}  http: [{{route: [{{destination: {{host: reviews}}}}]}}]\n"
        ));
        assert_eq!(
            e,
            vec![
                "spec.hosts[0]: wildcard host \"*\" is not allowed for a VirtualService bound to the mesh (every VirtualService is: gateways may only be \"mesh\")"
            ]
        );
    }
    assert_eq!(
        errors(&format!("{DESTINATION_RULE}  host: '*'\n")),
        Vec::<String>::new()
    );
    let e = errors(&format!(
        "{VIRTUAL_SERVICE}  hosts: ['*.example.com', 'a.*.com', '*x.example.com', 'a.b.42']\n  http: [{{route: [{{destination: {{host: reviews}}}}]}}]\n"
    ));
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(e[0].starts_with(
        "spec.hosts[1]: \"a.*.com\" is not a valid host: a wildcard may only be a leading"
    ));
    assert!(e[1].starts_with(
        "spec.hosts[2]: \"*x.example.com\" is not a valid host: a wildcard may only be a leading"
    ));
    assert!(e[2].starts_with("spec.hosts[3]: \"a.b.42\" is not a valid host: the top-level label"));
}
