//! Istio's VirtualService and DestinationRule routing features on real Envoy:
//! request matching, rewrites and redirects, header operations, direct
//! responses, mirroring, CORS and consistent hashing.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::fixture::{Workload, service, start_mesh};
use crate::harness::{APP_PORT, count_by, wait_for};
use crate::services;

const CLIENT: Workload<'static> = Workload::new("client", 1, &[("app", "client")]);

/// GETs `url` with `headers` and returns the echo's answer (panics on a non-200).
async fn echo(client: &reqwest::Client, url: &str, headers: &[(&str, &str)]) -> Value {
    let mut request = client.get(url);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200, "GET {url} {headers:?}");
    response.json().await.unwrap()
}

/// The versions answering `n` GETs of `url` with `headers`.
async fn versions(
    client: &reqwest::Client,
    url: &str,
    headers: &[(&str, &str)],
    n: usize,
) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    for _ in 0..n {
        let body = echo(client, url, headers).await;
        seen.insert(body["version"].as_str().unwrap_or("missing").to_string());
    }
    seen
}

/// A request (path and query, headers) and the version that must answer it.
type Case = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_routed_by_header_query_parameter_and_case_insensitive_uri() {
    let policy = format!(
        "{}---\n{}",
        services(),
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - name: jason
    match:
    - headers:
        end-user: {exact: jason}
    route:
    - destination: {host: reviews, subset: v2}
  - name: canary
    match:
    - uri: {prefix: /canary}
      ignoreUriCase: true
    - queryParams:
        track: {exact: canary}
    - uri: {prefix: /both}
      headers:
        x-flag: {exact: "on"}
    route:
    - destination: {host: reviews, subset: v2}
  - name: everyone-else
    route:
    - destination: {host: reviews, subset: v1}
"#
    );
    let mesh = start_mesh(
        20,
        &policy,
        &[
            CLIENT,
            Workload::new("reviews-v1", 2, &[("app", "reviews"), ("version", "v1")]),
            Workload::new("reviews-v2", 3, &[("app", "reviews"), ("version", "v2")]),
        ],
    )
    .await;
    let client = mesh.client(1);
    let base = "http://reviews:9080";
    let cases: [Case; 12] = [
        ("/", &[("end-user", "jason")], "v2"),
        ("/productpage", &[("end-user", "jason")], "v2"),
        ("/", &[("end-user", "bob")], "v1"),
        ("/", &[("end-user", "Jason")], "v1"),
        ("/", &[], "v1"),
        ("/canary/page", &[], "v2"),
        ("/CaNaRy/page", &[], "v2"),
        ("/stable/canary", &[], "v1"),
        ("/any?track=canary", &[], "v2"),
        ("/any?track=stable", &[], "v1"),
        ("/both", &[("x-flag", "on")], "v2"),
        ("/both", &[], "v1"),
    ];
    for (path, headers, want) in cases {
        let got = versions(&client, &format!("{base}{path}"), headers, 20).await;
        assert_eq!(
            got,
            BTreeSet::from([want.to_string()]),
            "GET {path} with {headers:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uri_and_authority_rewrites_reach_the_app_and_redirects_answer_302() {
    let policy = format!(
        "{}---\n{}",
        service("shop", &[9080]),
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop]
  http:
  - match:
    - uri: {prefix: /old/}
    rewrite: {uri: /new/}
    route:
    - destination: {host: shop}
  - match:
    - uri: {prefix: /renamed}
    rewrite: {authority: shop.internal}
    route:
    - destination: {host: shop}
  - match:
    - uri: {exact: /gone}
    redirect: {uri: /moved, redirectCode: 302}
  - route:
    - destination: {host: shop}
"#
    );
    let mesh = start_mesh(
        21,
        &policy,
        &[CLIENT, Workload::new("shop", 2, &[("app", "shop")])],
    )
    .await;
    let client = mesh.client(1);

    let rewritten = echo(&client, "http://shop:9080/old/cart/42", &[]).await;
    assert_eq!(rewritten["path"], "/new/cart/42", "{rewritten}");
    assert_eq!(rewritten["workload"], "shop");

    let renamed = echo(&client, "http://shop:9080/renamed", &[]).await;
    assert_eq!(renamed["host"], "shop.internal", "{renamed}");
    assert_eq!(renamed["path"], "/renamed", "{renamed}");

    // Untouched by either rewrite.
    let plain = echo(&client, "http://shop:9080/other/old/", &[]).await;
    assert_eq!(plain["path"], "/other/old/", "{plain}");
    assert_eq!(plain["host"], "shop:9080", "{plain}");

    let redirect = mesh
        .client_without_redirects(1)
        .get("http://shop:9080/gone")
        .send()
        .await
        .unwrap();
    assert_eq!(redirect.status(), 302);
    let location = redirect.headers()["location"].to_str().unwrap().to_string();
    assert!(location.ends_with("/moved"), "location: {location}");
    assert!(
        redirect.headers().get("x-bowline-workload").is_none(),
        "the redirect is answered by the client's sidecar, not the app"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_operations_and_direct_responses_are_applied() {
    let policy = format!(
        "{}---\n{}",
        service("shop", &[9080]),
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: shop}
spec:
  hosts: [shop]
  http:
  - match:
    - uri: {exact: /teapot}
    directResponse:
      status: 418
      body: {string: "short and stout"}
  - headers:
      request:
        set: {x-team: blue}
        add: {x-trace: mesh}
        remove: [x-secret]
      response:
        set: {x-served-by: bowline}
        add: {x-note: mesh}
        remove: [x-bowline-workload]
    route:
    - destination: {host: shop}
      headers:
        request:
          set: {x-destination: shop}
"#
    );
    let mesh = start_mesh(
        22,
        &policy,
        &[CLIENT, Workload::new("shop", 2, &[("app", "shop")])],
    )
    .await;
    let client = mesh.client(1);

    let response = client
        .get("http://shop:9080/cart")
        .header("x-team", "red")
        .header("x-trace", "client")
        .header("x-secret", "hunter2")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let headers = response.headers().clone();
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["workload"], "shop", "{body}");
    let seen = &body["headers"];
    assert_eq!(seen["x-team"], "blue", "set replaces: {seen}");
    assert_eq!(seen["x-trace"], "client,mesh", "add appends: {seen}");
    assert!(seen.get("x-secret").is_none(), "removed: {seen}");
    assert_eq!(seen["x-destination"], "shop", "per-destination set: {seen}");
    assert_eq!(headers["x-served-by"], "bowline", "{headers:?}");
    assert_eq!(headers["x-note"], "mesh", "{headers:?}");
    assert!(
        headers.get("x-bowline-workload").is_none(),
        "the app's response header is removed: {headers:?}"
    );

    let teapot = client.get("http://shop:9080/teapot").send().await.unwrap();
    assert_eq!(teapot.status(), 418);
    assert!(
        teapot.headers().get("x-bowline-workload").is_none(),
        "answered by the sidecar, not the app: {:?}",
        teapot.headers()
    );
    assert_eq!(teapot.text().await.unwrap(), "short and stout");
}

/// One request as the mirror's application saw it.
#[derive(Clone, Debug)]
struct Seen {
    host: String,
    path: String,
}

/// An application that records every request it gets and answers 200; it
/// stands in for the mirror workload's echo so the test can see the copies.
async fn recording_app(addr: std::net::SocketAddr) -> Arc<Mutex<Vec<Seen>>> {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let app = axum::Router::new().fallback({
        let seen = seen.clone();
        move |request: axum::extract::Request| {
            let seen = seen.clone();
            async move {
                let host = request
                    .headers()
                    .get("host")
                    .and_then(|h| h.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let path = request.uri().path().to_string();
                seen.lock().unwrap().push(Seen { host, path });
                "recorded"
            }
        }
    });
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mirror_receives_a_copy_of_every_request_and_the_caller_sees_only_the_primary() {
    let policy = format!(
        "{}---\n{}---\n{}",
        service("orders", &[9080]),
        service("audit", &[9080]),
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: orders}
spec:
  hosts: [orders]
  http:
  - route:
    - destination: {host: orders}
    mirror: {host: audit}
    mirrorPercentage: {value: 100}
"#
    );
    let mut mesh = start_mesh(
        23,
        &policy,
        &[
            CLIENT,
            Workload::new("orders", 2, &[("app", "orders")]),
            Workload::new("audit", 3, &[("app", "audit")]),
        ],
    )
    .await;
    // The mirror's sidecar stays; a recorder takes its application's place.
    mesh.stop_echo("audit").await;
    let seen = recording_app(std::net::SocketAddr::new(mesh.address(3), APP_PORT)).await;

    let client = mesh.client(1);
    let n = 50;
    let answers = count_by(&client, "http://orders:9080/order/7", n, "workload").await;
    assert_eq!(
        answers,
        BTreeMap::from([("orders".to_string(), n)]),
        "every answer comes from the primary"
    );
    wait_for(
        "the mirror to receive every copy",
        Duration::from_secs(20),
        || {
            let seen = seen.clone();
            async move { seen.lock().unwrap().len() >= n }
        },
    )
    .await;
    let copies = seen.lock().unwrap().clone();
    assert_eq!(copies.len(), n, "one copy per request: {copies:?}");
    for copy in &copies {
        assert_eq!(copy.path, "/order/7", "{copy:?}");
        assert_eq!(
            copy.host, "orders-shadow:9080",
            "Envoy marks the copy's host with -shadow: {copy:?}"
        );
    }
    // The mirror's sidecar carried them, inbound.
    let inbound: u64 = mesh
        .envoy_stats(3)
        .await
        .iter()
        .filter(|(k, _)| k.starts_with("http.inbound") && k.ends_with(".downstream_rq_total"))
        .map(|(_, v)| *v)
        .sum();
    assert_eq!(inbound, n as u64, "the mirror sidecar's inbound requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_is_answered_for_allowed_origins_only() {
    let policy = format!(
        "{}---\n{}",
        service("api", &[9080]),
        r#"apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: api}
spec:
  hosts: [api]
  http:
  - corsPolicy:
      allowOrigins:
      - exact: https://example.com
      allowMethods: [GET, POST]
      allowHeaders: [x-custom]
      maxAge: 24h
    route:
    - destination: {host: api}
"#
    );
    let mesh = start_mesh(
        24,
        &policy,
        &[CLIENT, Workload::new("api", 2, &[("app", "api")])],
    )
    .await;
    let client = mesh.client(1);
    let preflight = |origin: &'static str| {
        client
            .request(reqwest::Method::OPTIONS, "http://api:9080/items")
            .header("origin", origin)
            .header("access-control-request-method", "GET")
            .send()
    };

    let allowed = preflight("https://example.com").await.unwrap();
    assert!(allowed.status().is_success(), "{}", allowed.status());
    let headers = allowed.headers();
    assert_eq!(
        headers
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some("https://example.com"),
        "{headers:?}"
    );
    let methods = headers["access-control-allow-methods"].to_str().unwrap();
    assert!(
        methods.contains("GET") && methods.contains("POST"),
        "{methods}"
    );

    let other = preflight("https://evil.example.org").await.unwrap();
    assert!(
        other.headers().get("access-control-allow-origin").is_none(),
        "no CORS grant for another origin: {:?}",
        other.headers()
    );

    // A simple request from the allowed origin carries the grant too.
    let get = client
        .get("http://api:9080/items")
        .header("origin", "https://example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(
        get.headers()
            .get("access-control-allow-origin")
            .map(|v| v.to_str().unwrap()),
        Some("https://example.com"),
        "{:?}",
        get.headers()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consistent_hashing_keeps_each_user_on_one_endpoint() {
    let policy = format!(
        "{}---\n{}",
        service("cart", &[9080]),
        r#"apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart}
spec:
  host: cart
  trafficPolicy:
    loadBalancer:
      consistentHash:
        httpHeaderName: x-user
"#
    );
    let mesh = start_mesh(
        25,
        &policy,
        &[
            CLIENT,
            Workload::new("cart-a", 2, &[("app", "cart")]),
            Workload::new("cart-b", 3, &[("app", "cart")]),
            Workload::new("cart-c", 4, &[("app", "cart")]),
        ],
    )
    .await;
    let client = mesh.client(1);
    let mut homes: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for user in ["alice", "bob", "carol", "dave", "erin"] {
        for _ in 0..30 {
            let body = echo(&client, "http://cart:9080/", &[("x-user", user)]).await;
            homes
                .entry(user)
                .or_default()
                .insert(body["workload"].as_str().unwrap().to_string());
        }
    }
    println!("consistent hash placement: {homes:?}");
    for (user, workloads) in &homes {
        assert_eq!(workloads.len(), 1, "{user} landed on {workloads:?}");
    }
    let used: BTreeSet<&String> = homes.values().flatten().collect();
    assert!(used.len() > 1, "every user on one endpoint: {homes:?}");

    // Without the header, requests are spread over the endpoints.
    let spread = count_by(&client, "http://cart:9080/", 60, "workload").await;
    assert!(spread.len() > 1, "{spread:?}");
}
