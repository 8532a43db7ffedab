//! One test per rule for HTTP route actions, matches, traffic policies and
//! exportTo, each through the whole parse path.

use super::tests::{DESTINATION_RULE, SERVICE_ENTRY, VIRTUAL_SERVICE, errors, warnings};

/// A VirtualService whose single route has one destination plus `extra`
/// (indented as route fields).
fn route(extra: &str) -> String {
    format!(
        "{VIRTUAL_SERVICE}  hosts: [reviews]\n  http:\n  - route: [{{destination: {{host: reviews}}}}]\n{extra}"
    )
}

/// A VirtualService whose single route is only `fields`.
fn bare_route(fields: &str) -> String {
    format!("{VIRTUAL_SERVICE}  hosts: [reviews]\n  http:\n  - {fields}\n")
}

fn rule(spec: &str) -> String {
    format!("{DESTINATION_RULE}  host: reviews\n{spec}")
}

fn policy(policy: &str) -> String {
    rule(&format!("  trafficPolicy:\n{policy}"))
}

#[test]
fn a_route_has_exactly_one_action() {
    assert!(errors(&bare_route("redirect: {uri: /new}")).is_empty());
    assert!(errors(&bare_route("directResponse: {status: 200}")).is_empty());
    assert_eq!(
        errors(&route(
            "    redirect: {uri: /new}\n    directResponse: {status: 200}\n"
        )),
        vec![
            "spec.http[0]: set only one of route, redirect and directResponse, got route and redirect and directResponse"
        ]
    );
    assert_eq!(
        errors(&bare_route(
            "redirect: {uri: /new}\n    rewrite: {uri: /old}"
        )),
        vec!["spec.http[0].rewrite: rewrite cannot be combined with redirect"]
    );
    assert_eq!(
        errors(&bare_route(
            "directResponse: {status: 503}\n    rewrite: {uri: /old}\n    fault: {abort: {httpStatus: 500}}"
        )),
        vec![
            "spec.http[0].rewrite: rewrite cannot be combined with directResponse",
            "spec.http[0].fault: fault cannot be combined with directResponse",
        ]
    );
}

#[test]
fn redirect_and_direct_response_values() {
    assert_eq!(
        errors(&bare_route(
            "redirect: {uri: /a, redirectCode: 304, port: 0}"
        )),
        vec![
            "spec.http[0].redirect.redirectCode: redirectCode must be one of 301, 302, 303, 307 or 308, got 304",
            "spec.http[0].redirect.port: port must be 1-65535, got 0",
        ]
    );
    assert_eq!(
        errors(&bare_route("redirect: {redirectCode: 301}")),
        vec![
            "spec.http[0].redirect: redirect must set at least one of uri, authority, port or scheme"
        ]
    );
    for code in [301, 302, 303, 307, 308] {
        assert!(
            errors(&bare_route(&format!(
                "redirect: {{uri: /a, redirectCode: {code}}}"
            )))
            .is_empty()
        );
    }
    assert_eq!(
        errors(&bare_route("directResponse: {status: 199}")),
        vec!["spec.http[0].directResponse.status: status must be 200-599, got 199"]
    );
    assert_eq!(
        errors(&bare_route("directResponse: {status: 600}")),
        vec!["spec.http[0].directResponse.status: status must be 200-599, got 600"]
    );
}

#[test]
fn rewrite_rules() {
    assert_eq!(
        errors(&route(
            "    rewrite: {uri: /a, uriRegexRewrite: {match: '(?=x)', rewrite: y}}\n"
        )),
        vec![
            "spec.http[0].rewrite: set only one of uri and uriRegexRewrite",
            "spec.http[0].rewrite.uriRegexRewrite.match: RE2 (Envoy) does not support look-around/backreferences: found \"(?=\" at byte 0",
        ]
    );
    assert_eq!(
        warnings(&route("    rewrite: {}\n")),
        vec![
            "spec.http[0].rewrite: rewrite sets neither uri, uriRegexRewrite nor authority: it does nothing"
        ]
    );
}

#[test]
fn durations_must_be_at_least_a_millisecond() {
    assert!(
        errors(&route("    timeout: 0s\n")).is_empty(),
        "0s disables the timeout"
    );
    assert_eq!(
        errors(&route(
            "    timeout: 500us\n    retries: {attempts: 1, perTryTimeout: 0s}\n"
        )),
        vec![
            "spec.http[0].timeout: duration must be at least 1ms, got 500µs",
            "spec.http[0].retries.perTryTimeout: duration must be at least 1ms, got 0ns",
        ]
    );
    assert_eq!(
        errors(&route("    fault: {delay: {fixedDelay: 0s}}\n")),
        vec!["spec.http[0].fault.delay.fixedDelay: duration must be at least 1ms, got 0ns"]
    );
}

#[test]
fn retry_conditions_are_envoys() {
    assert!(
        errors(&route(
            "    retries: {attempts: 3, retryOn: 'gateway-error,connect-failure,refused-stream,503,retriable-4xx,unavailable'}\n"
        ))
        .is_empty()
    );
    let e = errors(&route(
        "    retries: {attempts: 3, retryOn: '5xx,sometimes,99'}\n",
    ));
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(e[0].starts_with(
        "spec.http[0].retries.retryOn: unknown retry condition \"sometimes\"; expected an HTTP status code or one of 5xx, gateway-error"
    ));
    assert!(e[1].contains("\"99\""));
}

#[test]
fn retry_warnings() {
    assert_eq!(
        warnings(&route(
            "    timeout: 1s\n    retries: {attempts: 2, perTryTimeout: 2s}\n"
        )),
        vec![
            "spec.http[0].retries.perTryTimeout: perTryTimeout 2s is longer than the route timeout 1s: no retry can happen after a try times out"
        ]
    );
    assert_eq!(
        warnings(&route("    retries: {attempts: 0, retryOn: 5xx}\n")),
        vec![
            "spec.http[0].retries.attempts: attempts 0 disables retries: retryOn and perTryTimeout have no effect"
        ]
    );
}

#[test]
fn fault_values() {
    assert_eq!(
        errors(&route(
            "    fault:\n      delay: {fixedDelay: 1s, percentage: {value: 100.5}}\n      abort: {httpStatus: 600, percentage: {value: -1}}\n"
        )),
        vec![
            "spec.http[0].fault.delay.percentage.value: percentage must be 0-100, got 100.5",
            "spec.http[0].fault.abort.httpStatus: httpStatus must be 200-599, got 600",
            "spec.http[0].fault.abort.percentage.value: percentage must be 0-100, got -1",
        ]
    );
    assert_eq!(
        errors(&route("    fault: {}\n")),
        vec!["spec.http[0].fault: fault needs a delay or an abort"]
    );
    assert!(
        errors(&route(
            "    fault: {abort: {httpStatus: 503, percentage: {value: 0.1}}}\n"
        ))
        .is_empty()
    );
}

#[test]
fn a_fault_without_percentage_says_it_applies_to_every_request() {
    let found = warnings(&route("    fault: {abort: {httpStatus: 418}}\n"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with(
            "spec.http[0].fault.abort.percentage: no percentage: the fault applies to every request"
        ),
        "{found:?}"
    );
    assert!(
        warnings(&route(
            "    fault: {abort: {httpStatus: 418, percentage: {value: 50}}}\n"
        ))
        .is_empty()
    );
}

#[test]
fn mirror_values() {
    assert_eq!(
        errors(&route(
            "    mirror: {host: 'bad host'}\n    mirrorPercentage: {value: 101}\n"
        )),
        vec![
            "spec.http[0].mirrorPercentage.value: percentage must be 0-100, got 101",
            "spec.http[0].mirror.host: \"bad host\" is not a valid host: dot-separated labels of letters, digits and '-'",
        ]
    );
    assert_eq!(
        warnings(&route("    mirrorPercentage: {value: 5}\n")),
        vec!["spec.http[0].mirrorPercentage.value: mirrorPercentage without mirror has no effect"]
    );
}

#[test]
fn cors_values() {
    let e = errors(&route(
        "    corsPolicy:\n      allowOrigins: [{regex: '(a)\\1'}, {exact: 'https://a'}]\n      allowMethods: [GET, FETCH]\n      allowHeaders: ['x a', '*']\n      exposeHeaders: [':path']\n      maxAge: 100us\n",
    ));
    assert_eq!(
        e,
        vec![
            "spec.http[0].corsPolicy.allowOrigins[0].regex: RE2 (Envoy) does not support look-around/backreferences: found \"\\1\" at byte 3",
            "spec.http[0].corsPolicy.allowMethods[1]: unknown HTTP method \"FETCH\"; expected one of GET, HEAD, POST, PUT, DELETE, CONNECT, OPTIONS, TRACE, PATCH",
            "spec.http[0].corsPolicy.allowHeaders[0]: \"x a\" is not a valid header name: letters, digits and !#$%&'*+-.^_`|~",
            "spec.http[0].corsPolicy.exposeHeaders[0]: pseudo-header \":path\" cannot be used here",
            "spec.http[0].corsPolicy.maxAge: duration must be at least 1ms, got 100µs",
        ]
    );
    assert_eq!(
        warnings(&route("    corsPolicy: {allowMethods: [GET]}\n")),
        vec![
            "spec.http[0].corsPolicy.allowOrigins: no allowOrigins: the CORS policy allows no cross-origin request"
        ]
    );
}

#[test]
fn header_operations() {
    let text = format!(
        "{VIRTUAL_SERVICE}  hosts: [reviews]\n  http:\n  - route:\n    - destination: {{host: reviews}}\n      headers: {{request: {{set: {{':path': /x}}}}}}\n    headers:\n      request: {{add: {{'bad name': v}}, remove: [host]}}\n      response: {{remove: ['']}}\n"
    );
    assert_eq!(
        errors(&text),
        vec![
            "spec.http[0].headers.request.add[bad name]: \"bad name\" is not a valid header name: letters, digits and !#$%&'*+-.^_`|~",
            "spec.http[0].headers.request.remove[0]: header \"host\" cannot be modified here (only a request set or add may name host or :authority, to rewrite the authority)",
            "spec.http[0].headers.response.remove[0]: header name must not be empty",
            "spec.http[0].route[0].headers.request.set[:path]: header \":path\" cannot be modified here (only a request set or add may name host or :authority, to rewrite the authority)",
        ]
    );
}

#[test]
fn match_conditions() {
    let text = route(
        "    match:\n    - headers: {':authority': {exact: a}, x-re: {regex: 'a++'}}\n      withoutHeaders: {x-no: {regex: '(?<!a)b'}}\n      queryParams: {q: {prefix: a}, r: {regex: '[a-'}}\n      authority: {regex: '(?!x)'}\n      method: {regex: 'GET|POST'}\n      port: 0\n      sourceLabels: {app: 'a b'}\n      sourceNamespace: Bad_NS\n",
    );
    let e = errors(&text);
    assert_eq!(e.len(), 8, "{e:#?}");
    assert_eq!(
        e[0],
        "spec.http[0].match[0].authority.regex: RE2 (Envoy) does not support look-around/backreferences: found \"(?!\" at byte 0"
    );
    assert_eq!(
        e[1],
        "spec.http[0].match[0].headers[x-re].regex: RE2 (Envoy) does not support possessive quantifiers: found \"++\" at byte 1"
    );
    assert!(e[2].starts_with(
        "spec.http[0].match[0].withoutHeaders[x-no].regex: RE2 (Envoy) does not support look-around"
    ));
    assert_eq!(
        e[3],
        "spec.http[0].match[0].queryParams[q].prefix: query parameters match only by exact or regex"
    );
    assert!(
        e[4].starts_with("spec.http[0].match[0].queryParams[r].regex: invalid regular expression:")
    );
    assert_eq!(
        e[5],
        "spec.http[0].match[0].port: port must be 1-65535, got 0"
    );
    assert!(e[6].starts_with("spec.http[0].match[0].sourceLabels[app]:"));
    assert!(e[7].starts_with("spec.http[0].match[0].sourceNamespace: \"Bad_NS\""));
}

#[test]
fn only_a_condition_free_match_makes_later_routes_unreachable() {
    let text = format!(
        "{VIRTUAL_SERVICE}  hosts: [reviews]\n  http:\n  - match: [{{uri: {{prefix: /}}, headers: {{x: {{exact: y}}}}}}]\n    route: [{{destination: {{host: reviews}}}}]\n  - match: [{{uri: {{prefix: /}}}}]\n    route: [{{destination: {{host: reviews}}}}]\n  - route: [{{destination: {{host: reviews}}}}]\n"
    );
    assert_eq!(
        warnings(&text),
        vec!["spec.http[2]: route is unreachable: spec.http[1] matches every request"]
    );
    assert_eq!(
        warnings(&route(
            "    match: [{ignoreUriCase: true, method: {exact: GET}}]\n"
        )),
        vec![
            "spec.http[0].match[0].ignoreUriCase: ignoreUriCase has no effect without a uri match"
        ]
    );
}

#[test]
fn export_to_entries() {
    let vs = |export: &str| {
        format!(
            "{VIRTUAL_SERVICE}  hosts: [reviews]\n  exportTo: {export}\n  http:\n  - route: [{{destination: {{host: reviews}}}}]\n"
        )
    };
    for ok in ["['*']", "['.']", "['~']", "[., other]"] {
        assert!(errors(&vs(ok)).is_empty(), "{ok}");
    }
    let e = errors(&vs("['*', Bad, default, .]"));
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(e[0].starts_with(
        "spec.exportTo[1]: expected \"*\", \".\", \"~\" or a namespace name: \"Bad\""
    ));
    assert_eq!(
        e[1],
        "spec.exportTo[3]: duplicate exportTo entry default, also at spec.exportTo[2]"
    );
    assert_eq!(
        e[2],
        "spec.exportTo: \"*\" cannot be combined with other exportTo entries"
    );
    assert_eq!(
        errors(&rule("  exportTo: ['~', a]\n")),
        vec!["spec.exportTo: \"~\" cannot be combined with other exportTo entries"]
    );
    let se = format!(
        "{SERVICE_ENTRY}  hosts: [a.example.com]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  exportTo: [x_y]\n"
    );
    assert!(errors(&se)[0].starts_with("spec.exportTo[0]: expected"));
}

#[test]
fn consistent_hash_rules() {
    assert_eq!(
        errors(&policy(
            "    loadBalancer: {consistentHash: {httpHeaderName: '', maglev: {tableSize: 1000}}}\n"
        )),
        vec![
            "spec.trafficPolicy.loadBalancer.consistentHash.httpHeaderName: header name must not be empty",
            "spec.trafficPolicy.loadBalancer.consistentHash.maglev.tableSize: tableSize must be a prime number (Envoy requires it), got 1000",
        ]
    );
    assert!(
        errors(&policy(
            "    loadBalancer: {consistentHash: {httpCookie: {name: u, ttl: 0s}, maglev: {tableSize: 65537}}}\n"
        ))
        .is_empty()
    );
    assert_eq!(
        errors(&policy(
            "    loadBalancer: {consistentHash: {useSourceIp: true, minimumRingSize: 0}}\n"
        )),
        vec!["spec.trafficPolicy.loadBalancer.consistentHash: minimumRingSize must be at least 1"]
    );
}

#[test]
fn locality_rules() {
    let e = errors(&policy(
        "    outlierDetection: {consecutive5xxErrors: 1}\n    loadBalancer:\n      localityLbSetting:\n        failover: [{from: us-east, to: us-east}, {from: us-east/a, to: eu}]\n        distribute: [{from: 'us-east/*', to: {'us-east/*': 60, 'eu/*': 30}}]\n",
    ));
    assert_eq!(
        e,
        vec![
            "spec.trafficPolicy.loadBalancer.localityLbSetting: set only one of failover and distribute",
            "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[0]: failover from and to are the same region \"us-east\"",
            "spec.trafficPolicy.loadBalancer.localityLbSetting.failover[1].from: failover from must be a region (no '/'), got \"us-east/a\"",
            "spec.trafficPolicy.loadBalancer.localityLbSetting.distribute[0].to: weights must sum to 100, got 90",
        ]
    );
}

#[test]
fn failover_without_outlier_detection_is_ignored_by_istio() {
    let warning = "spec.trafficPolicy.loadBalancer.localityLbSetting: failover without outlierDetection is ignored: Istio fails over only when outlier detection ejects endpoints";
    let without =
        policy("    loadBalancer:\n      localityLbSetting: {failover: [{from: a, to: b}]}\n");
    assert_eq!(warnings(&without), vec![warning]);
    let with = policy(
        "    loadBalancer:\n      localityLbSetting: {failover: [{from: a, to: b}]}\n    outlierDetection: {consecutive5xxErrors: 3}\n",
    );
    assert!(warnings(&with).is_empty());
    // A subset inherits the rule's outlier detection.
    let subset = rule(
        "  trafficPolicy: {outlierDetection: {consecutive5xxErrors: 3}}\n  subsets:\n  - name: v1\n    labels: {version: v1}\n    trafficPolicy: {loadBalancer: {localityLbSetting: {failoverPriority: [topology.kubernetes.io/zone]}}}\n",
    );
    assert!(warnings(&subset).is_empty(), "{:?}", warnings(&subset));
}

#[test]
fn connection_pool_and_outlier_values() {
    let e = errors(&policy(
        "    connectionPool:\n      tcp: {maxConnections: 0, connectTimeout: 0s}\n      http: {http1MaxPendingRequests: 0, http2MaxRequests: 0, maxRequestsPerConnection: 0, maxRetries: 0, idleTimeout: 0s}\n    outlierDetection: {maxEjectionPercent: 101, minHealthPercent: 200, interval: 0s, baseEjectionTime: 0s}\n",
    ));
    assert_eq!(
        e,
        vec![
            "spec.trafficPolicy.connectionPool.tcp.maxConnections: must be at least 1, got 0",
            "spec.trafficPolicy.connectionPool.http.http1MaxPendingRequests: must be at least 1, got 0",
            "spec.trafficPolicy.connectionPool.http.http2MaxRequests: must be at least 1, got 0",
            "spec.trafficPolicy.connectionPool.tcp.connectTimeout: duration must be at least 1ms, got 0ns",
            "spec.trafficPolicy.connectionPool.http.idleTimeout: duration must be at least 1ms, got 0ns",
            "spec.trafficPolicy.outlierDetection.maxEjectionPercent: percentage must be 0-100, got 101",
            "spec.trafficPolicy.outlierDetection.minHealthPercent: percentage must be 0-100, got 200",
            "spec.trafficPolicy.outlierDetection.interval: duration must be at least 1ms, got 0ns",
            "spec.trafficPolicy.outlierDetection.baseEjectionTime: duration must be at least 1ms, got 0ns",
        ]
    );
}

#[test]
fn consecutive_5xx_errors_0_warns_only_without_gateway_ejection() {
    let off = "spec.trafficPolicy.outlierDetection.consecutive5xxErrors: consecutive5xxErrors 0 turns 5xx ejection off, and no other ejection is set";
    let has_off = |yaml: &str| warnings(&policy(yaml)).iter().any(|w| w == off);
    assert!(has_off("    outlierDetection: {consecutive5xxErrors: 0}\n"));
    assert!(has_off(
        "    outlierDetection: {consecutive5xxErrors: 0, consecutiveErrors: 0}\n"
    ));
    // The deprecated consecutiveErrors ejects on gateway errors.
    assert!(!has_off(
        "    outlierDetection: {consecutive5xxErrors: 0, consecutiveErrors: 2}\n"
    ));
    assert!(!has_off(
        "    outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: 2}\n"
    ));
}

#[test]
fn port_level_settings_and_subset_policies() {
    let e = errors(&policy(
        "    portLevelSettings:\n    - port: {number: 80}\n      connectionPool: {tcp: {maxConnections: 0}}\n    - port: {number: 80}\n    - port: {number: 0}\n",
    ));
    assert_eq!(
        e,
        vec![
            "spec.trafficPolicy.portLevelSettings[0].connectionPool.tcp.maxConnections: must be at least 1, got 0",
            "spec.trafficPolicy.portLevelSettings[2].port.number: port must be 1-65535, got 0",
            "spec.trafficPolicy.portLevelSettings[1].port.number: duplicate port 80, also at spec.trafficPolicy.portLevelSettings[0].port.number",
        ]
    );
    let e = errors(&rule(
        "  subsets:\n  - name: v1\n    labels: {version: v1}\n    trafficPolicy: {outlierDetection: {maxEjectionPercent: 150}}\n",
    ));
    assert_eq!(
        e,
        vec![
            "spec.subsets[0].trafficPolicy.outlierDetection.maxEjectionPercent: percentage must be 0-100, got 150"
        ]
    );
}

#[test]
fn service_entry_addresses_are_ips_or_cidrs() {
    let se = |addresses: &str| {
        format!(
            "{SERVICE_ENTRY}  hosts: [a.example.com]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  addresses: {addresses}\n"
        )
    };
    assert!(errors(&se("[10.0.0.1, 10.0.0.0/16, '2001:db8::/32']")).is_empty());
    assert_eq!(
        errors(&se("[10.0.0.0/33, 'x.example.com', 10.0.0.0/]")),
        vec![
            "spec.addresses[0]: address must be an IP address or a CIDR block, got \"10.0.0.0/33\"",
            "spec.addresses[1]: address must be an IP address or a CIDR block, got \"x.example.com\"",
            "spec.addresses[2]: address must be an IP address or a CIDR block, got \"10.0.0.0/\"",
        ]
    );
}

#[test]
fn a_percentage_without_value_is_zero() {
    assert_eq!(
        warnings(&route(
            "    fault: {abort: {httpStatus: 503, percentage: {}}}\n    mirror: {host: m}\n    mirrorPercentage: {}\n"
        )),
        vec![
            "spec.http[0].fault.abort.percentage.value: percentage 0: the abort affects no request",
            "spec.http[0].mirrorPercentage.value: mirrorPercentage 0: nothing is mirrored",
        ]
    );
}
