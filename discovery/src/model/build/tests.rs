//! Registry building, from our own YAML.

use policy::{ParsedDocument, Severity, parse_documents};

use super::*;

fn objects(text: &str) -> Vec<Object> {
    parse_documents("test.yaml", text)
        .into_iter()
        .map(|d| match d {
            ParsedDocument::Object { object, .. } => object,
            other => panic!("invalid test input: {other:#?}"),
        })
        .collect()
}

fn build(text: &str) -> (Registry, Vec<Diagnostic>) {
    let objects = objects(text);
    Registry::build(&objects)
}

const REVIEWS: &str = "apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports:
  - {name: http, port: 9080}
  - {name: grpc-api, port: 9090, targetPort: 19090}
  - {name: metrics, port: 9100, targetPort: prom}
  - {name: tcp-db, port: 5432, appProtocol: kubernetes.io/h2c}
";

fn workload(name: &str, ns: &str, address: &str, extra: &str) -> String {
    format!(
        "---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  address: {address}\n{extra}"
    )
}

#[test]
fn service_ports_and_protocols() {
    let (registry, diagnostics) = build(REVIEWS);
    assert!(diagnostics.is_empty());
    let svc = registry.get("reviews.shop.svc.cluster.local").unwrap();
    assert_eq!(svc.name.as_deref(), Some("reviews"));
    assert_eq!(svc.namespace, "shop");
    assert_eq!(svc.resolution, Resolution::Static);
    assert!(!svc.mesh_external);
    let protocols: Vec<(u16, Protocol)> =
        svc.ports.iter().map(|p| (p.number, p.protocol)).collect();
    assert_eq!(
        protocols,
        vec![
            (9080, Protocol::Http),
            (9090, Protocol::Grpc),
            (9100, Protocol::Unknown),
            (5432, Protocol::Http2),
        ]
    );
    assert!(svc.endpoints.is_empty());
}

#[test]
fn workload_entries_back_services_by_selector_and_namespace() {
    let text = [
        REVIEWS.to_string(),
        workload("vm-b", "shop", "10.0.0.2", "  labels: {app: reviews, version: v2}\n  ports: {prom: 19100}\n  weight: 0\n"),
        workload("vm-a", "shop", "10.0.0.1", "  labels: {app: reviews, version: v1}\n  ports: {http: 8080}\n  serviceAccount: reviews\n  locality: eu/west\n  weight: 5\n"),
        workload("vm-other-ns", "other", "10.0.0.3", "  labels: {app: reviews}\n"),
        workload("vm-other-app", "shop", "10.0.0.4", "  labels: {app: ratings}\n"),
    ]
    .concat();
    let (registry, _) = build(&text);
    let svc = registry.get("reviews.shop.svc.cluster.local").unwrap();
    let addresses: Vec<&str> = svc.endpoints.iter().map(|e| e.address.as_str()).collect();
    assert_eq!(addresses, vec!["10.0.0.1", "10.0.0.2"]);

    let a = &svc.endpoints[0];
    // ports[name] wins, numeric targetPort next, named targetPort is skipped when absent,
    // the service port number last.
    assert_eq!(
        a.ports,
        BTreeMap::from([(9080, 8080), (9090, 19090), (5432, 5432)])
    );
    assert_eq!(a.service_account.as_deref(), Some("reviews"));
    assert_eq!(a.locality, "eu/west");
    assert_eq!(a.weight, 5);
    assert_eq!(a.workload, Some(("shop".to_string(), "vm-a".to_string())));
    assert_eq!(a.labels.get("version").map(String::as_str), Some("v1"));

    let b = &svc.endpoints[1];
    assert_eq!(
        b.ports,
        BTreeMap::from([(9080, 9080), (9090, 19090), (9100, 19100), (5432, 5432)])
    );
    assert_eq!(b.locality, "");
    assert_eq!(b.weight, 1, "weight 0 means the default");
}

#[test]
fn an_empty_selector_selects_nothing() {
    let text = [
        "apiVersion: v1\nkind: Service\nmetadata: {name: bare}\nspec:\n  ports: [{port: 80}]\n"
            .to_string(),
        workload("vm", "default", "10.0.0.1", "  labels: {app: x}\n"),
    ]
    .concat();
    let (registry, _) = build(&text);
    assert!(
        registry
            .get("bare.default.svc.cluster.local")
            .unwrap()
            .endpoints
            .is_empty()
    );
}

#[test]
fn a_workload_serving_none_of_the_ports_is_not_an_endpoint() {
    let text = [
        "apiVersion: v1\nkind: Service\nmetadata: {name: m}\nspec:\n  selector: {app: m}\n  ports: [{name: metrics, port: 9100, targetPort: prom}]\n".to_string(),
        workload("vm", "default", "10.0.0.1", "  labels: {app: m}\n"),
    ]
    .concat();
    let (registry, _) = build(&text);
    assert!(
        registry
            .get("m.default.svc.cluster.local")
            .unwrap()
            .endpoints
            .is_empty()
    );
}

const EXTERNAL: &str = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: external, namespace: egress}
spec:
  hosts: [api.example.com, eu.api.example.com]
  ports:
  - {number: 443, name: https, protocol: tls}
  - {number: 80, name: http, protocol: HTTP, targetPort: 8080}
  resolution: STATIC
  endpoints:
  - address: 10.1.0.2
    ports: {https: 8443}
    weight: 3
    locality: us/east
  - address: 10.1.0.1
    labels: {zone: a}
";

#[test]
fn service_entries_make_one_service_per_host() {
    let (registry, diagnostics) = build(EXTERNAL);
    assert!(diagnostics.is_empty());
    assert_eq!(registry.services.len(), 2);
    let svc = registry.get("eu.api.example.com").unwrap();
    assert_eq!(svc.name, None);
    assert_eq!(svc.namespace, "egress");
    assert!(svc.mesh_external);
    assert_eq!(svc.resolution, Resolution::Static);
    assert_eq!(svc.ports[0].protocol, Protocol::Tls);
    assert_eq!(svc.ports[1].protocol, Protocol::Http);
    let first = &svc.endpoints[0];
    assert_eq!(first.address, "10.1.0.1");
    assert_eq!(first.ports, BTreeMap::from([(443, 443), (80, 8080)]));
    assert_eq!(first.weight, 1);
    assert_eq!(first.workload, None);
    let second = &svc.endpoints[1];
    assert_eq!(second.ports, BTreeMap::from([(443, 8443), (80, 8080)]));
    assert_eq!((second.weight, second.locality.as_str()), (3, "us/east"));
}

#[test]
fn dns_entries_without_endpoints_resolve_the_host_itself() {
    let text = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: g}\nspec:\n  hosts: [www.example.com]\n  location: MESH_INTERNAL\n  ports: [{number: 443, name: tls, protocol: TLS, targetPort: 8443}]\n  resolution: DNS\n";
    let (registry, _) = build(text);
    let svc = registry.get("www.example.com").unwrap();
    assert_eq!(svc.resolution, Resolution::Dns);
    assert!(!svc.mesh_external);
    assert_eq!(svc.endpoints.len(), 1);
    assert_eq!(svc.endpoints[0].address, "www.example.com");
    assert_eq!(svc.endpoints[0].ports, BTreeMap::from([(443, 8443)]));
    assert_eq!(svc.endpoints[0].weight, 1);
}

#[test]
fn none_resolution_is_passthrough_and_protocol_may_be_absent() {
    let text = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: w}\nspec:\n  hosts: ['*.example.com']\n  ports: [{number: 22, name: ssh}]\n";
    let (registry, _) = build(text);
    let svc = registry.get("*.example.com").unwrap();
    assert_eq!(svc.resolution, Resolution::Passthrough);
    assert!(svc.endpoints.is_empty());
    assert_eq!(svc.ports[0].protocol, Protocol::Unknown);
}

#[test]
fn the_first_object_by_key_wins_a_host() {
    let text = "apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: zz, namespace: a}
spec:
  hosts: [reviews.shop.svc.cluster.local, shared.example.com]
  ports: [{number: 80, name: http, protocol: HTTP}]
  resolution: DNS
---
apiVersion: networking.istio.io/v1
kind: ServiceEntry
metadata: {name: aa, namespace: a}
spec:
  hosts: [shared.example.com]
  ports: [{number: 81, name: http, protocol: HTTP}]
  resolution: DNS
---
"
    .to_string()
        + REVIEWS;
    let (registry, diagnostics) = build(&text);
    assert_eq!(
        registry
            .get("reviews.shop.svc.cluster.local")
            .unwrap()
            .name
            .as_deref(),
        Some("reviews")
    );
    assert_eq!(
        registry.get("shared.example.com").unwrap().ports[0].number,
        81
    );
    let found: Vec<String> = diagnostics
        .iter()
        .map(|d| {
            assert_eq!(d.severity, Severity::Warning);
            format!("{}: {}: {}", d.object.as_ref().unwrap(), d.path, d.message)
        })
        .collect();
    assert_eq!(
        found,
        vec![
            "ServiceEntry a/zz: spec.hosts[0]: host reviews.shop.svc.cluster.local is already defined by Service shop/reviews; this definition is ignored",
            "ServiceEntry a/zz: spec.hosts[1]: host shared.example.com is already defined by ServiceEntry a/aa; this definition is ignored",
        ]
    );
}

#[test]
fn build_is_deterministic_whatever_the_input_order() {
    let text = [
        EXTERNAL.to_string(),
        "---\n".to_string(),
        REVIEWS.to_string(),
        workload("vm-b", "shop", "10.0.0.2", "  labels: {app: reviews}\n"),
        workload("vm-a", "shop", "10.0.0.1", "  labels: {app: reviews}\n"),
    ]
    .concat();
    let mut objects = objects(&text);
    let (forward, _) = Registry::build(&objects);
    objects.reverse();
    let (backward, _) = Registry::build(&objects);
    assert_eq!(forward, backward);
    assert_eq!(forward.services.len(), 3);
}

#[test]
fn other_kinds_are_ignored() {
    let text = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: reviews\n";
    let (registry, diagnostics) = build(text);
    assert!(registry.services.is_empty());
    assert!(diagnostics.is_empty());
}

#[test]
fn reselecting_after_workload_changes_is_a_build_from_scratch() {
    let base = format!(
        "{REVIEWS}---\napiVersion: v1\nkind: Service\nmetadata: {{name: ratings, namespace: shop}}\nspec:\n  selector: {{app: ratings}}\n  ports: [{{name: http, port: 80}}]\n{}{}",
        workload("r1", "shop", "10.0.0.1", "  labels: {app: reviews}\n"),
        workload("t1", "shop", "10.0.0.2", "  labels: {app: ratings}\n"),
    );
    let before = objects(&base);
    let (registry, _) = Registry::build(&before);
    // r1 moves and joins ratings; a new entry backs reviews.
    let edited = base.replace(
        "address: 10.0.0.1\n  labels: {app: reviews}",
        "address: 10.0.0.9\n  labels: {app: ratings}",
    ) + &workload("r2", "shop", "10.0.0.3", "  labels: {app: reviews}\n");
    let after = objects(&edited);
    let services = after.iter().filter_map(|o| match o {
        Object::Service(s) => Some(s),
        _ => None,
    });
    let workloads = after.iter().filter_map(|o| match o {
        Object::WorkloadEntry(w) => Some(w),
        _ => None,
    });
    let reselected = registry.with_reselected(services, workloads, &ServiceEndpoints::default());
    assert_eq!(reselected, Registry::build(&after).0);
    let ratings = &reselected.services["ratings.shop.svc.cluster.local"];
    let addresses: Vec<&str> = ratings
        .endpoints
        .iter()
        .map(|e| e.address.as_str())
        .collect();
    assert_eq!(addresses, ["10.0.0.2", "10.0.0.9"]);
}

#[test]
fn reselecting_keeps_the_arc_of_a_model_that_comes_out_the_same() {
    let text = format!(
        "{REVIEWS}{}",
        workload("r1", "shop", "10.0.0.1", "  labels: {app: reviews}\n")
    );
    let objects = objects(&text);
    let (registry, _) = Registry::build(&objects);
    let services = || {
        objects.iter().filter_map(|o| match o {
            Object::Service(s) => Some(s),
            _ => None,
        })
    };
    let workloads = objects.iter().filter_map(|o| match o {
        Object::WorkloadEntry(w) => Some(w),
        _ => None,
    });
    let host = "reviews.shop.svc.cluster.local";
    let same = registry.with_reselected(services(), workloads, &ServiceEndpoints::default());
    assert!(Arc::ptr_eq(&same.services[host], &registry.services[host]));
    // Without its workload, the model changes.
    let without = registry.with_reselected(services(), [], &ServiceEndpoints::default());
    assert!(without.services[host].endpoints.is_empty());
}

fn pod_endpoint(address: &str, pod: &str) -> Endpoint {
    Endpoint {
        address: address.to_string(),
        ports: BTreeMap::from([(9080, 8080)]),
        labels: BTreeMap::from([("app".to_string(), "reviews".to_string())]),
        service_account: Some("bookinfo-reviews".to_string()),
        locality: "eu/eu-west-1a".to_string(),
        weight: 1,
        workload: Some(("shop".to_string(), pod.to_string())),
    }
}

#[test]
fn supplied_endpoints_join_those_the_selector_picks() {
    let text = [
        REVIEWS.to_string(),
        workload("vm-a", "shop", "10.0.0.5", "  labels: {app: reviews}\n"),
    ]
    .concat();
    let objects = objects(&text);
    let mut supplied = ServiceEndpoints::new();
    supplied.insert(
        "shop",
        "reviews",
        vec![
            pod_endpoint("10.1.0.9", "reviews-b"),
            pod_endpoint("10.1.0.2", "reviews-a"),
        ],
    );
    // A Service that is not in the config gets nothing.
    supplied.insert("shop", "gone", vec![pod_endpoint("10.1.0.7", "gone-a")]);
    let (registry, diagnostics) = Registry::build_with(&objects, &supplied);
    assert!(diagnostics.is_empty());
    assert_eq!(registry.services.len(), 1);
    let svc = registry.get("reviews.shop.svc.cluster.local").unwrap();
    let found: Vec<(&str, Option<&str>)> = svc
        .endpoints
        .iter()
        .map(|e| {
            (
                e.address.as_str(),
                e.workload.as_ref().map(|w| w.1.as_str()),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("10.0.0.5", Some("vm-a")),
            ("10.1.0.2", Some("reviews-a")),
            ("10.1.0.9", Some("reviews-b")),
        ]
    );
    assert_eq!(svc.endpoints[1], pod_endpoint("10.1.0.2", "reviews-a"));

    // Reselecting after a WorkloadEntry change keeps the supplied endpoints.
    let services = objects.iter().filter_map(|o| match o {
        Object::Service(s) => Some(s),
        _ => None,
    });
    let reselected = registry.with_reselected(services, [], &supplied);
    let svc = &reselected.services["reviews.shop.svc.cluster.local"];
    assert_eq!(svc.endpoints.len(), 2);
    assert_eq!(reselected, Registry::build_with(&objects[..1], &supplied).0);
}

#[test]
fn an_empty_entry_is_no_entry() {
    let mut supplied = ServiceEndpoints::new();
    supplied.insert(
        "shop",
        "reviews",
        vec![pod_endpoint("10.1.0.2", "reviews-a")],
    );
    supplied.insert("shop", "reviews", Vec::new());
    assert!(supplied.is_empty());
    assert!(supplied.get("shop", "reviews").is_empty());
}
