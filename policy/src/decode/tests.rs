//! Every issue-3 field of VirtualService, DestinationRule and ServiceEntry,
//! decoded from our own YAML through the whole parse path.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::networking::*;
use crate::object::{Object, ParsedDocument, parse_documents};

fn parsed(text: &str) -> ParsedDocument {
    let mut docs = parse_documents("t.yaml", text);
    assert_eq!(docs.len(), 1, "{docs:#?}");
    docs.remove(0)
}

fn object(text: &str) -> Object {
    match parsed(text) {
        ParsedDocument::Object { object, .. } => object,
        other => panic!("expected an object, got {other:#?}"),
    }
}

/// `path: message` of the first error of a rejected document.
fn first_error(text: &str) -> String {
    match parsed(text) {
        ParsedDocument::Rejected { diagnostics, .. } => diagnostics
            .iter()
            .find(|d| d.is_error())
            .map(|d| format!("{}: {}", d.path, d.message))
            .unwrap(),
        other => panic!("expected a rejection, got {other:#?}"),
    }
}

fn vs(spec: &str) -> VirtualServiceSpec {
    let text = format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: r, namespace: shop}}\nspec:\n{spec}"
    );
    match object(&text) {
        Object::VirtualService(v) => v.spec,
        other => panic!("{other:#?}"),
    }
}

fn dr(spec: &str) -> DestinationRuleSpec {
    match object(&dr_text(spec)) {
        Object::DestinationRule(d) => d.spec,
        other => panic!("{other:#?}"),
    }
}

fn dr_text(spec: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: r, namespace: shop}}\nspec:\n  host: r\n{spec}"
    )
}

fn vs_text(route: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: r}}\nspec:\n  hosts: [r]\n  http:\n  - route: [{{destination: {{host: r}}}}]\n{route}"
    )
}

fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

const FULL_ROUTE: &str = r#"  hosts: [reviews]
  exportTo: [".", "other"]
  http:
  - name: all
    match:
    - name: m
      uri: {prefix: /api}
      scheme: {exact: https}
      method: {exact: GET}
      authority: {regex: "rev.*"}
      headers:
        End-User: {exact: jason}
        x-present: {}
      queryParams:
        debug: {exact: "1"}
      withoutHeaders:
        x-skip: {prefix: y}
      port: 9080
      sourceLabels: {app: front}
      sourceNamespace: web
      ignoreUriCase: true
    route:
    - destination: {host: reviews, subset: v1, port: {number: 9080}}
      weight: 70
      headers:
        request: {set: {x-a: "1"}, add: {x-b: "2"}, remove: [x-c]}
    - destination: {host: reviews, subset: v2}
      weight: 30
    rewrite:
      uri: /v2
      authority: rev.internal
    timeout: 1m30s
    retries: {attempts: 3, perTryTimeout: 0.5s, retryOn: "5xx,503", retryRemoteLocalities: true}
    fault:
      delay: {fixedDelay: 100ms, percentage: {value: 12.5}}
      abort: {httpStatus: 503, percentage: {value: 1}}
    mirror: {host: shadow, subset: v9}
    mirrorPercentage: {value: 20.5}
    corsPolicy:
      allowOrigins: [{exact: "https://a.example"}, {regex: ".*\\.b\\.example"}]
      allowMethods: [GET, POST]
      allowHeaders: [x-a]
      exposeHeaders: [x-b]
      maxAge: 24h
      allowCredentials: false
    headers:
      response: {set: {x-r: v}, remove: [server]}
"#;

#[test]
fn every_virtual_service_field_decodes() {
    let spec = vs(FULL_ROUTE);
    assert_eq!(spec.export_to, vec![".", "other"]);
    let route = &spec.http[0];
    let m = &route.matches[0];
    assert_eq!(m.name.as_deref(), Some("m"));
    assert_eq!(m.uri, Some(StringMatch::Prefix("/api".into())));
    assert_eq!(m.scheme, Some(StringMatch::Exact("https".into())));
    assert_eq!(m.method, Some(StringMatch::Exact("GET".into())));
    assert_eq!(m.authority, Some(StringMatch::Regex("rev.*".into())));
    assert_eq!(
        m.headers.get("end-user"),
        Some(&StringMatch::Exact("jason".into())),
        "header names are lower-cased"
    );
    assert_eq!(
        m.headers.get("x-present"),
        Some(&StringMatch::Regex(".*".into())),
        "an empty match means present"
    );
    assert_eq!(
        m.query_params.get("debug"),
        Some(&StringMatch::Exact("1".into()))
    );
    assert_eq!(
        m.without_headers.get("x-skip"),
        Some(&StringMatch::Prefix("y".into()))
    );
    assert_eq!(m.port, Some(9080));
    assert_eq!(m.source_labels, map(&[("app", "front")]));
    assert_eq!(m.source_namespace.as_deref(), Some("web"));
    assert!(m.ignore_uri_case);

    assert_eq!(route.route.len(), 2);
    assert_eq!(
        route.route[0].destination,
        Destination {
            host: "reviews".into(),
            subset: Some("v1".into()),
            port: Some(9080)
        }
    );
    assert_eq!(route.route[0].weight, Some(70));
    let dest_headers = route.route[0].headers.as_ref().unwrap();
    assert_eq!(dest_headers.request.set, map(&[("x-a", "1")]));
    assert_eq!(dest_headers.request.add, map(&[("x-b", "2")]));
    assert_eq!(dest_headers.request.remove, vec!["x-c"]);
    assert!(route.route[1].headers.is_none());

    assert_eq!(
        route.rewrite,
        Some(HttpRewrite {
            uri: Some("/v2".into()),
            authority: Some("rev.internal".into()),
            uri_regex: None,
        })
    );
    assert_eq!(route.timeout, Some(Duration::from_secs(90)));
    assert_eq!(
        route.retries,
        Some(HttpRetry {
            attempts: 3,
            per_try_timeout: Some(Duration::from_millis(500)),
            retry_on: Some("5xx,503".into()),
            retry_remote_localities: Some(true),
        })
    );
    assert_eq!(
        route.fault,
        Some(HttpFaultInjection {
            delay: Some(FaultDelay {
                fixed_delay: Duration::from_millis(100),
                percentage: Some(12.5)
            }),
            abort: Some(FaultAbort {
                http_status: 503,
                percentage: Some(1.0)
            }),
        })
    );
    assert_eq!(
        route.mirror,
        Some(Destination {
            host: "shadow".into(),
            subset: Some("v9".into()),
            port: None
        })
    );
    assert_eq!(route.mirror_percentage, Some(20.5));
    assert_eq!(
        route.cors_policy,
        Some(CorsPolicy {
            allow_origins: vec![
                StringMatch::Exact("https://a.example".into()),
                StringMatch::Regex(".*\\.b\\.example".into())
            ],
            allow_methods: vec!["GET".into(), "POST".into()],
            allow_headers: vec!["x-a".into()],
            expose_headers: vec!["x-b".into()],
            max_age: Some(Duration::from_secs(86400)),
            allow_credentials: Some(false),
        })
    );
    let headers = route.headers.as_ref().unwrap();
    assert_eq!(headers.response.set, map(&[("x-r", "v")]));
    assert_eq!(headers.response.remove, vec!["server"]);
    assert_eq!(headers.request, HeaderOperations::default());
}

#[test]
fn snake_case_names_decode_too() {
    let spec = vs(r#"  hosts: [r]
  export_to: ["*"]
  http:
  - match:
    - query_params: {a: {exact: b}}
      without_headers: {x: {exact: y}}
      source_labels: {app: a}
      source_namespace: ns
      ignore_uri_case: true
    route: [{destination: {host: r}}]
    mirror: {host: m}
    mirror_percentage: {value: 5}
    cors_policy: {allow_origins: [{exact: o}], max_age: 1s, allow_credentials: true}
    retries: {attempts: 1, per_try_timeout: 2s, retry_on: reset, retry_remote_localities: false}
    fault: {delay: {fixed_delay: 1s}, abort: {http_status: 500}}
    rewrite: {uri_regex_rewrite: {match: a, rewrite: b}}
"#);
    let route = &spec.http[0];
    assert_eq!(spec.export_to, vec!["*"]);
    assert_eq!(route.matches[0].query_params.len(), 1);
    assert_eq!(route.matches[0].without_headers.len(), 1);
    assert_eq!(route.matches[0].source_namespace.as_deref(), Some("ns"));
    assert_eq!(route.mirror_percentage, Some(5.0));
    assert_eq!(route.cors_policy.as_ref().unwrap().allow_origins.len(), 1);
    assert_eq!(
        route.retries.as_ref().unwrap().per_try_timeout,
        Some(Duration::from_secs(2))
    );
    let fault = route.fault.as_ref().unwrap();
    assert_eq!(fault.delay.as_ref().unwrap().percentage, None);
    assert_eq!(fault.abort.as_ref().unwrap().http_status, 500);
    assert_eq!(
        route.rewrite.as_ref().unwrap().uri_regex,
        Some(("a".into(), "b".into()))
    );
}

#[test]
fn redirect_and_direct_response_decode() {
    let spec = vs(r#"  hosts: [r]
  http:
  - redirect: {uri: /new, authority: new.example, port: 8443, scheme: https, redirectCode: 308}
  - directResponse: {status: 418, body: {string: teapot}}
  - direct_response: {status: 204}
"#);
    assert_eq!(
        spec.http[0].redirect,
        Some(HttpRedirect {
            uri: Some("/new".into()),
            authority: Some("new.example".into()),
            port: Some(8443),
            scheme: Some("https".into()),
            redirect_code: Some(308),
        })
    );
    assert!(spec.http[0].route.is_empty());
    assert_eq!(
        spec.http[1].direct_response,
        Some(HttpDirectResponse {
            status: 418,
            body: Some("teapot".into())
        })
    );
    assert_eq!(
        spec.http[2].direct_response,
        Some(HttpDirectResponse {
            status: 204,
            body: None
        })
    );
}

#[test]
fn deprecated_virtual_service_forms_map_to_modern_fields() {
    let spec = vs(r#"  hosts: [r]
  http:
  - route: [{destination: {host: r}}]
    fault:
      delay: {fixedDelay: 7s, percent: 40}
      abort: {httpStatus: 500, percent: 25}
    mirror: {host: m}
    mirror_percent: 30
  - route: [{destination: {host: r}}]
    mirror: {host: m}
    mirrorPercent: 60
    corsPolicy: {allowOrigin: ["https://old.example"]}
"#);
    let fault = spec.http[0].fault.as_ref().unwrap();
    assert_eq!(fault.delay.as_ref().unwrap().percentage, Some(40.0));
    assert_eq!(fault.abort.as_ref().unwrap().percentage, Some(25.0));
    assert_eq!(spec.http[0].mirror_percentage, Some(30.0));
    assert_eq!(spec.http[1].mirror_percentage, Some(60.0));
    assert_eq!(
        spec.http[1].cors_policy.as_ref().unwrap().allow_origins,
        vec![StringMatch::Exact("https://old.example".into())]
    );
}

#[test]
fn virtual_service_decode_errors_name_their_path() {
    let cases = [
        (
            "    timeout: -1s\n",
            "spec.http[0].timeout: invalid duration \"-1s\": durations cannot be negative",
        ),
        (
            "    timeout: 5\n",
            "spec.http[0].timeout: expected a duration such as \"1s\" or \"100ms\", got 5",
        ),
        (
            "    retries: {attempts: -1}\n",
            "spec.http[0].retries.attempts: expected a non-negative integer, got -1",
        ),
        (
            "    fault: {delay: {percentage: {value: 5}}}\n",
            "spec.http[0].fault.delay.fixedDelay: field is required",
        ),
        (
            "    fault: {abort: {grpcStatus: UNAVAILABLE}}\n",
            "spec.http[0].fault.abort.grpcStatus: field is not supported yet",
        ),
        (
            "    fault: {abort: {httpStatus: 500, percent: 5, percentage: {value: 5}}}\n",
            "spec.http[0].fault.abort.percent: set only one of percentage and the deprecated percent",
        ),
        (
            "    mirror: {host: m}\n    mirrorPercent: 5\n    mirrorPercentage: {value: 5}\n",
            "spec.http[0].mirrorPercent: set only one of mirrorPercentage and the deprecated mirrorPercent",
        ),
        (
            "    mirrorPercentage: {value: lots}\n",
            "spec.http[0].mirrorPercentage.value: expected a number, got \"lots\"",
        ),
        (
            "    directResponse: {body: {string: x}}\n",
            "spec.http[0].directResponse.status: field is required",
        ),
        (
            "    directResponse: {status: 200, body: {bytes: eA==}}\n",
            "spec.http[0].directResponse.body.bytes: field is not supported yet",
        ),
        (
            "    headers: {request: {sett: {}}}\n",
            "spec.http[0].headers.request.sett: unknown field",
        ),
        (
            "    corsPolicy: {allowCredentials: maybe}\n",
            "spec.http[0].corsPolicy.allowCredentials: expected true or false, got \"maybe\"",
        ),
        (
            "    rewrite: {uriRegexRewrite: {match: a}}\n",
            "spec.http[0].rewrite.uriRegexRewrite.rewrite: field is required",
        ),
        (
            "    match: [{ignoreUriCase: yes-ish}]\n",
            "spec.http[0].match[0].ignoreUriCase: expected true or false, got \"yes-ish\"",
        ),
        (
            "    match: [{gateways: [gw]}]\n",
            "spec.http[0].match[0].gateways: field is not supported yet",
        ),
    ];
    for (route, expected) in cases {
        assert_eq!(first_error(&vs_text(route)), expected, "for {route}");
    }
}

#[test]
fn header_names_differing_in_case_are_one_header() {
    let text = vs_text("    match: [{headers: {X-A: {exact: a}, x-a: {exact: b}}}]\n");
    assert_eq!(
        first_error(&text),
        "spec.http[0].match[0].headers[x-a]: header \"x-a\" is also given as \"X-A\"; header names ignore case"
    );
}

#[test]
fn uri_match_must_set_one_kind() {
    let text = vs_text("    match: [{uri: {}}]\n");
    assert_eq!(
        first_error(&text),
        "spec.http[0].match[0].uri: exactly one of exact, prefix or regex must be set, got 0"
    );
}

const FULL_POLICY: &str = r#"  exportTo: ["~"]
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpCookie: {name: user, path: /, ttl: 10s}
        maglev: {tableSize: 65537}
      localityLbSetting:
        enabled: true
        failover: [{from: us-east, to: us-west}]
        failoverPriority: [topology.kubernetes.io/region]
    connectionPool:
      tcp: {maxConnections: 100, connectTimeout: 30ms}
      http:
        http1MaxPendingRequests: 1
        http2MaxRequests: 2
        maxRequestsPerConnection: 3
        maxRetries: 4
        idleTimeout: 1h
    outlierDetection:
      consecutive5xxErrors: 5
      consecutiveGatewayErrors: 6
      interval: 10s
      baseEjectionTime: 30s
      maxEjectionPercent: 50
      minHealthPercent: 20
    portLevelSettings:
    - port: {number: 9080}
      loadBalancer: {simple: ROUND_ROBIN}
      connectionPool: {tcp: {maxConnections: 7}}
      outlierDetection: {consecutiveGatewayErrors: 2}
  subsets:
  - name: v1
    labels: {version: v1}
    trafficPolicy:
      loadBalancer:
        simple: random
        localityLbSetting:
          distribute: [{from: "us-east/*", to: {"us-east/*": 80, "us-west/*": 20}}]
"#;

#[test]
fn every_destination_rule_field_decodes() {
    let spec = dr(FULL_POLICY);
    assert_eq!(spec.export_to, vec!["~"]);
    let policy = spec.traffic_policy.as_deref().unwrap();
    let lb = policy.load_balancer.as_ref().unwrap();
    assert_eq!(
        lb.policy,
        Some(LbPolicy::ConsistentHash(ConsistentHash {
            key: HashKey::HttpCookie {
                name: "user".into(),
                path: Some("/".into()),
                ttl: Some(Duration::from_secs(10)),
            },
            algorithm: HashAlgorithm::Maglev {
                table_size: Some(65537)
            },
        }))
    );
    assert_eq!(
        lb.locality_lb_setting,
        Some(LocalityLbSetting {
            enabled: Some(true),
            failover: vec![("us-east".into(), "us-west".into())],
            distribute: vec![],
            failover_priority: vec!["topology.kubernetes.io/region".into()],
        })
    );
    assert_eq!(
        policy.connection_pool,
        Some(ConnectionPool {
            tcp: Some(TcpSettings {
                max_connections: Some(100),
                connect_timeout: Some(Duration::from_millis(30)),
            }),
            http: Some(HttpSettings {
                http1_max_pending_requests: Some(1),
                http2_max_requests: Some(2),
                max_requests_per_connection: Some(3),
                max_retries: Some(4),
                idle_timeout: Some(Duration::from_secs(3600)),
            }),
        })
    );
    assert_eq!(
        policy.outlier_detection,
        Some(OutlierDetection {
            consecutive_5xx_errors: Some(5),
            consecutive_gateway_errors: Some(6),
            consecutive_errors: None,
            interval: Some(Duration::from_secs(10)),
            base_ejection_time: Some(Duration::from_secs(30)),
            max_ejection_percent: Some(50),
            min_health_percent: Some(20),
        })
    );
    assert_eq!(
        policy.port_level_settings,
        vec![PortTrafficPolicy {
            port: 9080,
            load_balancer: Some(LoadBalancer {
                policy: Some(LbPolicy::Simple(SimpleLb::RoundRobin)),
                locality_lb_setting: None,
            }),
            connection_pool: Some(ConnectionPool {
                tcp: Some(TcpSettings {
                    max_connections: Some(7),
                    connect_timeout: None
                }),
                http: None,
            }),
            outlier_detection: Some(OutlierDetection {
                consecutive_gateway_errors: Some(2),
                ..Default::default()
            }),
            tls: None,
        }]
    );
    let subset = &spec.subsets[0];
    assert_eq!(subset.name, "v1");
    assert_eq!(
        subset
            .traffic_policy
            .as_ref()
            .and_then(|p| p.load_balancer.as_ref())
            .and_then(|lb| lb.policy.clone()),
        Some(LbPolicy::Simple(SimpleLb::Random))
    );
    let mut to = BTreeMap::new();
    to.insert("us-east/*".to_string(), 80);
    to.insert("us-west/*".to_string(), 20);
    assert_eq!(
        subset
            .traffic_policy
            .as_ref()
            .and_then(|p| p.load_balancer.as_ref())
            .and_then(|lb| lb.locality_lb_setting.as_ref())
            .map(|l| l.distribute.clone()),
        Some(vec![("us-east/*".to_string(), to)])
    );
}

fn hash_of(spec: &str) -> ConsistentHash {
    let spec = dr(&format!(
        "  trafficPolicy:\n    loadBalancer:\n      consistentHash: {spec}\n"
    ));
    match spec.traffic_policy.unwrap().load_balancer.unwrap().policy {
        Some(LbPolicy::ConsistentHash(h)) => h,
        other => panic!("{other:#?}"),
    }
}

#[test]
fn every_hash_key_and_algorithm_decodes() {
    let h = hash_of("{httpHeaderName: x-user}");
    assert_eq!(h.key, HashKey::HttpHeaderName("x-user".into()));
    assert_eq!(
        h.algorithm,
        HashAlgorithm::RingHash {
            minimum_ring_size: None
        }
    );
    assert_eq!(hash_of("{useSourceIp: true}").key, HashKey::UseSourceIp);
    assert_eq!(
        hash_of("{http_query_parameter_name: q}").key,
        HashKey::HttpQueryParameterName("q".into())
    );
    assert_eq!(
        hash_of("{useSourceIp: true, ringHash: {minimumRingSize: 2048}}").algorithm,
        HashAlgorithm::RingHash {
            minimum_ring_size: Some(2048)
        }
    );
    assert_eq!(
        hash_of("{useSourceIp: true, minimumRingSize: 1024}").algorithm,
        HashAlgorithm::RingHash {
            minimum_ring_size: Some(1024)
        },
        "the deprecated top-level minimumRingSize is a ring hash"
    );
}

#[test]
fn deprecated_destination_rule_forms_map_to_modern_fields() {
    let spec = dr(r#"  trafficPolicy:
    loadBalancer: {simple: LEAST_CONN}
    outlierDetection: {consecutiveErrors: 7}
"#);
    let policy = spec.traffic_policy.unwrap();
    assert_eq!(
        policy.load_balancer.unwrap().policy,
        Some(LbPolicy::Simple(SimpleLb::LeastRequest))
    );
    let outlier = policy.outlier_detection.unwrap();
    // Gateway errors, kept apart from consecutive5xxErrors (see OutlierDetection).
    assert_eq!(outlier.consecutive_errors, Some(7));
    assert_eq!(outlier.consecutive_5xx_errors, None);
    // Istio accepted both together: each sets its own detector.
    let spec = dr(
        "  trafficPolicy:\n    outlierDetection: {consecutiveErrors: 1, consecutive5xxErrors: 2}\n",
    );
    let outlier = spec.traffic_policy.unwrap().outlier_detection.unwrap();
    assert_eq!(
        (outlier.consecutive_errors, outlier.consecutive_5xx_errors),
        (Some(1), Some(2))
    );
    let spec = dr(
        "  trafficPolicy:\n    outlierDetection: {consecutive_5xx_errors: 3}\n    connectionPool: {http: {http1_max_pending_requests: 9}}\n",
    );
    let policy = spec.traffic_policy.unwrap();
    assert_eq!(
        policy.outlier_detection.unwrap().consecutive_5xx_errors,
        Some(3)
    );
    assert_eq!(
        policy
            .connection_pool
            .unwrap()
            .http
            .unwrap()
            .http1_max_pending_requests,
        Some(9)
    );
}

#[test]
fn client_tls_decodes_per_mode() {
    let spec = dr(
        "  trafficPolicy:\n    tls: {mode: istio_mutual, sni: r.shop, subjectAltNames: [spiffe://td/ns/shop/sa/r]}\n    portLevelSettings:\n    - port: {number: 443}\n      tls: {mode: MUTUAL, clientCertificate: /c.pem, privateKey: /k.pem, caCertificates: /ca.pem}\n  subsets:\n  - name: plain\n    labels: {v: '1'}\n    trafficPolicy: {tls: {mode: DISABLE}}\n",
    );
    let top = spec.traffic_policy.as_ref().unwrap();
    assert_eq!(
        top.tls,
        Some(ClientTls {
            mode: TlsMode::IstioMutual,
            client_certificate: None,
            private_key: None,
            ca_certificates: None,
            subject_alt_names: vec!["spiffe://td/ns/shop/sa/r".into()],
            sni: Some("r.shop".into()),
        })
    );
    assert_eq!(
        top.port_level_settings[0].tls,
        Some(ClientTls {
            mode: TlsMode::Mutual,
            client_certificate: Some("/c.pem".into()),
            private_key: Some("/k.pem".into()),
            ca_certificates: Some("/ca.pem".into()),
            subject_alt_names: vec![],
            sni: None,
        })
    );
    let subset = spec.subsets[0].traffic_policy.as_ref().unwrap();
    assert_eq!(subset.tls.as_ref().map(|t| t.mode), Some(TlsMode::Disable));
}

#[test]
fn destination_rule_decode_errors_name_their_path() {
    let cases = [
        (
            "  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL, credentialName: c}\n",
            "spec.trafficPolicy.tls.credentialName: field is not supported yet",
        ),
        (
            "  trafficPolicy:\n    portLevelSettings: [{port: {number: 80}, tls: {mode: SIMPLE, insecureSkipVerify: true}}]\n",
            "spec.trafficPolicy.portLevelSettings[0].tls.insecureSkipVerify: field is not supported yet",
        ),
        (
            "  trafficPolicy:\n    tls: {sni: a}\n",
            "spec.trafficPolicy.tls.mode: required: one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL",
        ),
        (
            "  trafficPolicy:\n    tls: {mode: MUTUAL, clientCertificate: /c.pem}\n",
            "spec.trafficPolicy.tls.privateKey: required with mode MUTUAL",
        ),
        (
            "  trafficPolicy:\n    tls: {mode: ISTIO_MUTUAL, caCertificates: /ca.pem}\n",
            "spec.trafficPolicy.tls.caCertificates: not allowed with mode ISTIO_MUTUAL, which uses the workload's mesh certificate",
        ),
        (
            "  trafficPolicy:\n    tls: {mode: DISABLE, sni: a}\n",
            "spec.trafficPolicy.tls.sni: not allowed with mode DISABLE",
        ),
        (
            "  trafficPolicy:\n    tls: {mode: SIMPLE, privateKey: /k.pem}\n",
            "spec.trafficPolicy.tls.privateKey: a client certificate needs mode MUTUAL, not SIMPLE",
        ),
        (
            "  trafficPolicy:\n    tls: {mode: STRICT}\n",
            "spec.trafficPolicy.tls.mode: unknown value \"STRICT\"; expected one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL",
        ),
        (
            "  trafficPolicy:\n    portLevelSettings: [{loadBalancer: {simple: RANDOM}}]\n",
            "spec.trafficPolicy.portLevelSettings[0].port: field is required",
        ),
        (
            "  trafficPolicy:\n    tunnel: {protocol: CONNECT}\n",
            "spec.trafficPolicy.tunnel: field is not supported yet",
        ),
        (
            "  trafficPolicy:\n    loadBalancer: {warmupDurationSecs: 10s}\n",
            "spec.trafficPolicy.loadBalancer.warmupDurationSecs: field is not supported yet",
        ),
        (
            "  trafficPolicy:\n    loadBalancer: {simple: FASTEST}\n",
            "spec.trafficPolicy.loadBalancer.simple: unknown value \"FASTEST\"; expected one of UNSPECIFIED, ROUND_ROBIN, LEAST_REQUEST, LEAST_CONN, RANDOM, PASSTHROUGH",
        ),
        (
            "  trafficPolicy:\n    loadBalancer: {consistentHash: {}}\n",
            "spec.trafficPolicy.loadBalancer.consistentHash: exactly one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName must be set, got 0",
        ),
        (
            "  trafficPolicy:\n    loadBalancer: {consistentHash: {httpHeaderName: a, useSourceIp: true}}\n",
            "spec.trafficPolicy.loadBalancer.consistentHash: exactly one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName must be set, got 2",
        ),
        (
            "  trafficPolicy:\n    loadBalancer: {consistentHash: {useSourceIp: true, ringHash: {}, maglev: {}}}\n",
            "spec.trafficPolicy.loadBalancer.consistentHash: set only one of ringHash, maglev or the deprecated minimumRingSize, got ringHash and maglev",
        ),
        (
            "  trafficPolicy:\n    loadBalancer: {simple: RANDOM, consistentHash: {useSourceIp: true}}\n",
            "spec.trafficPolicy.loadBalancer: set only one of simple and consistentHash",
        ),
        (
            "  trafficPolicy:\n    loadBalancer: {consistentHash: {httpCookie: {path: /}}}\n",
            "spec.trafficPolicy.loadBalancer.consistentHash.httpCookie.name: field is required",
        ),
        (
            "  trafficPolicy:\n    outlierDetection: {interval: soon}\n",
            "spec.trafficPolicy.outlierDetection.interval: invalid duration \"soon\": expected a number and a unit such as 1s or 100ms",
        ),
        (
            "  trafficPolicy:\n    connectionPool: {tcp: {maxConnections: -5}}\n",
            "spec.trafficPolicy.connectionPool.tcp.maxConnections: expected a non-negative integer, got -5",
        ),
        (
            "  trafficPolicy:\n    connectionPool: {http: {h2UpgradePolicy: UPGRADE}}\n",
            "spec.trafficPolicy.connectionPool.http.h2UpgradePolicy: field is not supported yet",
        ),
        (
            "  subsets: [{name: v1, labels: {v: a}, trafficPolicy: {tls: {mode: SIMPLE, caCrl: /crl.pem}}}]\n",
            "spec.subsets[0].trafficPolicy.tls.caCrl: field is not supported yet",
        ),
        (
            "  workloadSelector: {matchLabels: {app: a}}\n",
            "spec.workloadSelector: field is not supported yet",
        ),
    ];
    for (spec, expected) in cases {
        assert_eq!(first_error(&dr_text(spec)), expected, "for {spec}");
    }
}

#[test]
fn service_entry_addresses_and_export_to_decode() {
    let text = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: ext}\nspec:\n  hosts: [api.example.com]\n  addresses: [10.0.0.1/32]\n  exportTo: [\".\"]\n  ports: [{number: 80, name: http, protocol: http}]\n  resolution: NONE\n";
    let ParsedDocument::Object {
        object: Object::ServiceEntry(se),
        warnings,
        ..
    } = parsed(text)
    else {
        panic!("expected a ServiceEntry")
    };
    assert_eq!(se.spec.addresses, vec!["10.0.0.1/32"]);
    assert_eq!(se.spec.export_to, vec!["."]);
    assert_eq!(se.spec.resolution, Resolution::None);
    assert_eq!(se.spec.ports[0].protocol.as_deref(), Some("HTTP"));
    let messages: Vec<String> = warnings
        .iter()
        .map(|w| format!("{}: {}", w.path, w.message))
        .collect();
    // A single address is what captured sidecars match on.
    assert!(
        !messages.iter().any(|m| m.starts_with("spec.addresses")),
        "{messages:#?}"
    );
    let text = text.replace(
        "  resolution: NONE\n",
        "  workloadSelector: {labels: {app: a}}\n",
    );
    assert_eq!(
        first_error(&text),
        "spec.workloadSelector: field is not supported yet"
    );
}

#[test]
fn a_service_cluster_ip_is_an_address_none_or_an_error_by_path() {
    let svc = |ip: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: reviews, namespace: shop}}\nspec:\n  clusterIP: {ip}\n  ports: [{{port: 9080}}]\n"
        )
    };
    let Object::Service(service) = object(&svc("10.96.0.11")) else {
        panic!("expected a Service")
    };
    assert_eq!(service.spec.cluster_ip, Some("10.96.0.11".parse().unwrap()));
    let Object::Service(service) = object(&svc("None")) else {
        panic!("expected a Service")
    };
    assert_eq!(service.spec.cluster_ip, None);
    assert_eq!(
        first_error(&svc("10.96.0.300")),
        "spec.clusterIP: \"10.96.0.300\" is neither an IP address nor \"None\""
    );
}
