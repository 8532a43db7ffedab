//! Requests through a client's sidecar, explained from its compiled config.

use super::*;

const MESH: &str = "\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-1, namespace: shop}
spec: {address: 10.0.0.1, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-2, namespace: shop}
spec: {address: 10.0.0.2, labels: {app: reviews, version: v2}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  subsets: [{name: v1, labels: {version: v1}}, {name: v2, labels: {version: v2}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {x-canary: {exact: \"yes\"}}, uri: {prefix: /api}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - timeout: 2s
    route:
    - {destination: {host: reviews, subset: v1}, weight: 75}
    - {destination: {host: reviews, subset: v2}, weight: 25}
";

fn explained(url: &str, headers: &[(&str, &str)]) -> Vec<String> {
    explained_in(MESH, false, url, headers)
}

/// The steps for `url` from the client at 10.0.0.9 in `mesh`, with a
/// workload certificate (service account `client`) when `certificate`.
fn explained_in(mesh: &str, certificate: bool, url: &str, headers: &[(&str, &str)]) -> Vec<String> {
    let snapshot = crate::testing::snapshot_of(1, mesh);
    let mut proxy = Proxy::client("shop", "10.0.0.9".parse().unwrap(), &[("app", "client")]);
    proxy.metadata.sds = certificate;
    proxy.metadata.service_account = Some("client".to_string());
    let headers: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    explain(&snapshot, &proxy, &Request::get(url, &headers).unwrap())
        .into_iter()
        .map(|s| match s.source {
            Some(source) => format!("{}: {} [{source}]", s.step, s.detail),
            None => format!("{}: {}", s.step, s.detail),
        })
        .collect()
}

#[test]
fn a_header_match_picks_its_rule_and_subset() {
    let steps = explained("http://reviews:9080/api/books", &[("X-Canary", "yes")]);
    assert_eq!(
        steps,
        [
            "listener: outbound on 10.0.0.9:15001, HTTP, routes from route configuration outbound",
            "virtual host: virtual_hosts[0] reviews.shop.svc.cluster.local:9080 (answers to \"reviews:9080\") [Service shop/reviews]",
            "route: routes[0] \"shop.reviews.0\" is the first that matches [VirtualService shop/reviews spec.http[0]]",
            "timeout: none [VirtualService shop/reviews spec.http[0]]",
            "retries: 2 on connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes [VirtualService shop/reviews spec.http[0]]",
            "cluster: outbound|9080|v2|reviews.shop.svc.cluster.local [DestinationRule shop/reviews spec.subsets[1]]",
            "tls: plaintext",
            "endpoints: 10.0.0.2:9080 (weight 1)",
            "authorization: 10.0.0.2:9080: allowed, in plaintext: no policy denies it, none restricts it",
        ]
    );
}

#[test]
fn without_the_header_the_weighted_rule_and_its_timeout_apply() {
    let steps = explained("http://reviews.shop:9080/api/books", &[]);
    assert_eq!(
        steps[2],
        "route: routes[1] \"shop.reviews.1\" is the first that matches [VirtualService shop/reviews spec.http[1]]"
    );
    assert_eq!(
        steps[3],
        "timeout: 2.000s [VirtualService shop/reviews spec.http[1]]"
    );
    assert!(steps.contains(&"cluster: outbound|9080|v1|reviews.shop.svc.cluster.local (75% of requests) [DestinationRule shop/reviews spec.subsets[0]]".to_string()), "{steps:#?}");
    assert!(steps.contains(&"cluster: outbound|9080|v2|reviews.shop.svc.cluster.local (25% of requests) [DestinationRule shop/reviews spec.subsets[1]]".to_string()), "{steps:#?}");
    // The header matches, the path does not: the second rule.
    let steps = explained("http://reviews:9080/books", &[("x-canary", "yes")]);
    assert!(steps[2].starts_with("route: routes[1]"), "{steps:#?}");
}

#[test]
fn an_unknown_host_gets_404() {
    let steps = explained("http://ratings:9080/", &[]);
    assert_eq!(
        steps[1],
        "virtual host: none answers to \"ratings:9080\": Envoy answers 404"
    );
}

const POLICIES: &str = "\
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: reviews-callers, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  action: ALLOW
  rules:
  - from: [{source: {principals: [cluster.local/ns/shop/sa/client]}}]
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: shop}
spec:
  selector: {matchLabels: {app: reviews}}
  action: DENY
  rules:
  - to: [{operation: {paths: [/admin*]}}]
";

#[test]
fn the_destinations_policies_decide_with_the_callers_identity() {
    let mesh = format!("{MESH}{POLICIES}");
    let last = |steps: Vec<String>| steps.last().cloned().unwrap();
    // Over mutual TLS as the client: its ALLOW rule lets it in.
    assert_eq!(
        last(explained_in(
            &mesh,
            true,
            "http://reviews:9080/api/books",
            &[("x-canary", "yes")]
        )),
        "authorization: 10.0.0.2:9080: allowed [AuthorizationPolicy shop/reviews-callers spec.rules[0]]"
    );
    // The DENY on /admin comes first, at both subsets' endpoints.
    let decisions: Vec<String> = explained_in(&mesh, true, "http://reviews:9080/admin/x", &[])
        .into_iter()
        .filter(|s| s.starts_with("authorization"))
        .collect();
    assert_eq!(
        decisions,
        [
            "authorization: 10.0.0.1:9080: denied (403) [AuthorizationPolicy shop/no-admin spec.rules[0]]",
            "authorization: 10.0.0.2:9080: denied (403) [AuthorizationPolicy shop/no-admin spec.rules[0]]",
        ]
    );
    // Without a certificate there is no identity: no ALLOW rule matches.
    assert_eq!(
        last(explained_in(
            &mesh,
            false,
            "http://reviews:9080/api/books",
            &[("x-canary", "yes")]
        )),
        "authorization: 10.0.0.2:9080: denied (403): an ALLOW policy applies and no rule of one matches"
    );
}
