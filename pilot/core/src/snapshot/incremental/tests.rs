//! Incremental builds against full builds of the same config, over a
//! sequence of changes that takes every path: reuse, patch, full build.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;

use discovery::file::FileStore;

use super::*;
use crate::compile::compile;
use crate::proxy::{NodeMetadata, Proxy};
use crate::snapshot::{Candidates, ChangeSet, HostPolicy};

fn service(name: &str, ns: &str, extra: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}{extra}}}\nspec:\n  selector: {{app: {name}}}\n  ports: [{{name: http, port: 80}}, {{name: tcp-db, port: 9000}}]\n"
    )
}

fn workload(name: &str, ns: &str, address: &str, labels: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  address: {address}\n  labels: {{{labels}}}\n  locality: region/zone\n"
    )
}

fn split(v1: u32) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: reviews, namespace: shop}}\nspec:\n  hosts: [reviews]\n  http:\n  - match: [{{sourceLabels: {{tier: canary}}}}]\n    route: [{{destination: {{host: reviews, subset: v2}}}}]\n  - route:\n    - {{destination: {{host: reviews, subset: v1}}, weight: {v1}}}\n    - {{destination: {{host: reviews, subset: v2}}, weight: {}}}\n",
        100 - v1
    )
}

fn subsets(name: &str, ns: &str, host: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  host: '{host}'\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v2, labels: {{version: v2}}}}\n"
    )
}

fn sidecar(name: &str, ns: &str, selector: &str, hosts: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  workloadSelector: {{labels: {{{selector}}}}}\n  egress: [{{hosts: {hosts}}}]\n"
    )
}

/// The mesh the sequence starts from, one object per file as a config
/// directory has it.
fn initial() -> Vec<(String, String)> {
    let files = [
        ("shop/reviews.yaml", service("reviews", "shop", "")),
        ("shop/ratings.yaml", service("ratings", "shop", "")),
        (
            "bank/ledger.yaml",
            service(
                "ledger",
                "bank",
                ", annotations: {networking.istio.io/exportTo: '.'}",
            ),
        ),
        (
            "shop/reviews-1.yaml",
            workload("reviews-1", "shop", "10.0.0.1", "app: reviews, version: v1"),
        ),
        (
            "shop/reviews-2.yaml",
            workload("reviews-2", "shop", "10.0.0.2", "app: reviews, version: v2"),
        ),
        (
            "shop/ratings-1.yaml",
            workload("ratings-1", "shop", "10.0.0.3", "app: ratings, version: v1"),
        ),
        (
            "bank/ledger-1.yaml",
            workload("ledger-1", "bank", "10.0.1.1", "app: ledger"),
        ),
        (
            "bank/teller-1.yaml",
            workload("teller-1", "bank", "10.0.1.2", "app: teller, role: front"),
        ),
        ("shop/reviews-vs.yaml", split(90)),
        (
            "shop/reviews-dr.yaml",
            subsets("reviews", "shop", "reviews"),
        ),
        (
            "bank/all-shop.yaml",
            subsets("all-shop", "bank", "*.shop.svc.cluster.local"),
        ),
        (
            "bank/sidecar-a.yaml",
            sidecar("a", "bank", "app: ledger", "['./*']"),
        ),
        (
            "bank/sidecar-b.yaml",
            sidecar("b", "bank", "role: front", "['./*', 'shop/*']"),
        ),
    ];
    files.into_iter().map(|(p, t)| (p.to_string(), t)).collect()
}

/// One step: files written (`Some`) or removed (`None`), and whether the
/// build may take the previous snapshot's candidates as they are.
struct Step {
    what: &'static str,
    files: Vec<(&'static str, Option<String>)>,
    candidates_shared: bool,
}

fn steps() -> Vec<Step> {
    let step = |what, files, candidates_shared| Step {
        what,
        files,
        candidates_shared,
    };
    vec![
        step(
            "an endpoint moves",
            vec![(
                "shop/reviews-2.yaml",
                Some(workload(
                    "reviews-2",
                    "shop",
                    "10.0.0.9",
                    "app: reviews, version: v2",
                )),
            )],
            true,
        ),
        step(
            "a workload leaves one service for another",
            vec![(
                "shop/reviews-1.yaml",
                Some(workload(
                    "reviews-1",
                    "shop",
                    "10.0.0.1",
                    "app: ratings, version: v1",
                )),
            )],
            true,
        ),
        step(
            "a workload is added",
            vec![(
                "shop/reviews-3.yaml",
                Some(workload(
                    "reviews-3",
                    "shop",
                    "10.0.0.4",
                    "app: reviews, version: v1",
                )),
            )],
            true,
        ),
        step("a workload goes", vec![("shop/ratings-1.yaml", None)], true),
        step(
            "a workload comes under a second Sidecar",
            vec![(
                "bank/ledger-1.yaml",
                Some(workload(
                    "ledger-1",
                    "bank",
                    "10.0.1.1",
                    "app: ledger, role: front",
                )),
            )],
            true,
        ),
        step(
            "nothing changes: the same text again",
            vec![("shop/reviews-vs.yaml", Some(split(90)))],
            true,
        ),
        step(
            "a rejected edit keeps the last valid workload",
            vec![(
                "shop/reviews-3.yaml",
                Some(workload("reviews-3", "shop", "not-an-ip", "app: reviews")),
            )],
            true,
        ),
        step(
            "a VirtualService changes",
            vec![("shop/reviews-vs.yaml", Some(split(80)))],
            false,
        ),
        step(
            "a DestinationRule is added, an endpoint moves",
            vec![
                (
                    "shop/ratings-dr.yaml",
                    Some(subsets("ratings", "shop", "ratings")),
                ),
                (
                    "shop/reviews-3.yaml",
                    Some(workload(
                        "reviews-3",
                        "shop",
                        "10.0.0.5",
                        "app: reviews, version: v2",
                    )),
                ),
            ],
            false,
        ),
        step(
            "the last workloads of a namespace go",
            vec![("bank/ledger-1.yaml", None), ("bank/teller-1.yaml", None)],
            true,
        ),
        step(
            "a workload in a new namespace",
            vec![(
                "edge/gw-1.yaml",
                Some(workload("gw-1", "edge", "10.0.2.1", "app: gw")),
            )],
            false,
        ),
        step(
            "a service definition changes",
            vec![(
                "shop/ratings.yaml",
                Some(
                    service("ratings", "shop", ", labels: {tier: backend}")
                        .replace("port: 9000", "port: 9001"),
                ),
            )],
            false,
        ),
        step(
            "a Sidecar changes",
            vec![(
                "bank/sidecar-b.yaml",
                Some(sidecar("b", "bank", "role: front", "['./*']")),
            )],
            false,
        ),
        step(
            "a VirtualService goes",
            vec![("shop/reviews-vs.yaml", None)],
            false,
        ),
        step(
            "an AuthorizationPolicy and a PeerAuthentication appear",
            vec![(
                "shop/security.yaml",
                Some(
                    "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: reviews, namespace: shop}\nspec:\n  selector: {matchLabels: {app: reviews}}\n  rules:\n  - from:\n    - source: {namespaces: [shop]}\n---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: reviews, namespace: shop}\nspec:\n  selector: {matchLabels: {version: v2}}\n  mtls: {mode: DISABLE}\n".to_string(),
                ),
            )],
            false,
        ),
        step(
            "an endpoint moves beside security policies",
            vec![(
                "shop/reviews-2.yaml",
                Some(workload(
                    "reviews-2",
                    "shop",
                    "10.0.0.10",
                    "app: reviews, version: v2",
                )),
            )],
            true,
        ),
    ]
}

/// Proxies to compile for: a client per namespace, with and without the
/// label a route matches, and the sidecar of every workload address.
fn proxies() -> Vec<Proxy> {
    let mut proxies = Vec::new();
    for ns in ["shop", "bank", "edge", "elsewhere"] {
        for labels in [&[][..], &[("tier", "canary")][..], &[("app", "teller")][..]] {
            proxies.push(Proxy::client(ns, IpAddr::from([10, 9, 0, 1]), labels));
        }
    }
    for (ns, address, app) in [
        ("shop", [10, 0, 0, 1], "reviews"),
        ("shop", [10, 0, 0, 2], "reviews"),
        ("shop", [10, 0, 0, 9], "reviews"),
        ("shop", [10, 0, 0, 3], "ratings"),
        ("bank", [10, 0, 1, 1], "ledger"),
        ("edge", [10, 0, 2, 1], "gw"),
    ] {
        let address = IpAddr::from(address);
        let mut metadata = NodeMetadata::new(ns, app, address);
        metadata.labels = BTreeMap::from([("app".to_string(), app.to_string())]);
        metadata.app_address = Some(SocketAddr::new(address, 15080));
        proxies.push(Proxy::new(metadata));
    }
    proxies
}

/// One candidate as compared: object key, host, index and the object.
type Said<'a, T> = (ObjectKey, String, usize, &'a T);

/// The candidates, compared by what they say: host, object and index.
fn candidates<T: HostPolicy + PartialEq>(c: &Candidates<T>) -> Vec<(String, Vec<Said<'_, T>>)> {
    c.iter()
        .map(|(host, list)| {
            let list = list
                .iter()
                .map(|c| {
                    (
                        c.object.key(),
                        c.host.to_string(),
                        c.index,
                        c.object.as_ref(),
                    )
                })
                .collect();
            (host.clone(), list)
        })
        .collect()
}

fn assert_same(incremental: &Snapshot, full: &Snapshot, previous: &Snapshot, what: &str) {
    assert_eq!(incremental.generation, full.generation, "{what}");
    assert_eq!(incremental.registry, full.registry, "{what}: registry");
    assert_eq!(
        incremental.workload_entries, full.workload_entries,
        "{what}: workloads"
    );
    assert_eq!(
        candidates(&incremental.virtual_services),
        candidates(&full.virtual_services),
        "{what}: VirtualServices"
    );
    assert_eq!(
        candidates(&incremental.destination_rules),
        candidates(&full.destination_rules),
        "{what}: DestinationRules"
    );
    assert_eq!(
        incremental.diagnostics, full.diagnostics,
        "{what}: diagnostics"
    );
    assert_eq!(incremental.security, full.security, "{what}: security");
    assert_eq!(
        ChangeSet::between(previous, incremental),
        ChangeSet::between(previous, full),
        "{what}: change set"
    );
    for proxy in proxies() {
        assert_eq!(
            incremental.scope_for(&proxy).service_names(),
            full.scope_for(&proxy).service_names(),
            "{what}: scope of {}",
            proxy.id
        );
        assert_eq!(
            compile(incremental, &proxy),
            compile(full, &proxy),
            "{what}: {}",
            proxy.id
        );
    }
}

#[test]
fn a_sequence_of_changes_built_incrementally_is_the_full_build() {
    let mut store = FileStore::default();
    for (path, text) in initial() {
        store.apply(Path::new(&path), &text);
    }
    let changed = store.take_changed();
    let config = store.config();
    let mut previous = Snapshot::build_after(&Snapshot::default(), 1, &config, &changed);
    assert_same(
        &previous,
        &Snapshot::build(1, &config),
        &Snapshot::default(),
        "first",
    );
    let overlap = |s: &Snapshot| {
        s.diagnostics
            .iter()
            .any(|d| d.message.contains("as does Sidecar"))
    };
    assert!(!overlap(&previous));

    for (generation, step) in (2..).zip(steps()) {
        for (path, text) in &step.files {
            match text {
                Some(text) => store.apply(Path::new(path), text),
                None => store.remove(Path::new(path)),
            }
        }
        let changed = store.take_changed();
        let config = store.config();
        let incremental = Snapshot::build_after(&previous, generation, &config, &changed);
        let full = Snapshot::build(generation, &config);
        assert_same(&incremental, &full, &previous, step.what);
        let shared = Arc::ptr_eq(&incremental.virtual_services, &previous.virtual_services)
            && Arc::ptr_eq(&incremental.destination_rules, &previous.destination_rules);
        assert_eq!(
            shared, step.candidates_shared,
            "{}: candidates shared",
            step.what
        );
        if step.what == "a workload comes under a second Sidecar" {
            assert!(overlap(&incremental), "{:#?}", incremental.diagnostics);
        }
        previous = incremental;
    }
}

#[test]
fn an_endpoint_change_rebuilds_only_the_services_that_select_it() {
    let mut store = FileStore::default();
    for (path, text) in initial() {
        store.apply(Path::new(&path), &text);
    }
    store.take_changed();
    let before = Snapshot::build(1, &store.config());
    store.apply(
        Path::new("shop/reviews-2.yaml"),
        &workload("reviews-2", "shop", "10.0.0.9", "app: reviews, version: v2"),
    );
    let after = Snapshot::build_after(&before, 2, &store.config(), &store.take_changed());
    for (host, service) in &after.registry.services {
        let same = Arc::ptr_eq(service, &before.registry.services[host]);
        assert_eq!(same, host != "reviews.shop.svc.cluster.local", "{host}");
    }
    assert!(Arc::ptr_eq(&after.sidecars, &before.sidecars));
    let unchanged = |s: &Snapshot| {
        s.workload_entries
            .iter()
            .filter(|we| we.meta.name != "reviews-2")
            .cloned()
            .collect::<Vec<_>>()
    };
    assert!(
        unchanged(&after)
            .iter()
            .zip(unchanged(&before))
            .all(|(a, b)| Arc::ptr_eq(a, &b))
    );
}

/// A pod's endpoint as a Kubernetes source supplies it.
fn pod_endpoint(address: &str, version: &str) -> discovery::Endpoint {
    discovery::Endpoint {
        address: address.to_string(),
        ports: BTreeMap::from([(80, 8080), (9000, 9000)]),
        labels: BTreeMap::from([
            ("app".to_string(), "reviews".to_string()),
            ("version".to_string(), version.to_string()),
        ]),
        service_account: Some("reviews".to_string()),
        locality: "region/zone".to_string(),
        weight: 1,
        workload: Some(("shop".to_string(), format!("reviews-{version}"))),
    }
}

#[test]
fn supplied_endpoints_alone_rebuild_only_their_service_and_match_the_full_build() {
    let mut store = FileStore::default();
    for (path, text) in initial() {
        store.apply(Path::new(&path), &text);
    }
    store.take_changed();
    let with = |endpoints: Vec<discovery::Endpoint>| {
        let mut config = store.config();
        let mut supplied = discovery::ServiceEndpoints::new();
        supplied.insert("shop", "reviews", endpoints);
        config.endpoints = Arc::new(supplied);
        config
    };
    let reviews = ObjectKey {
        kind: Kind::Service,
        namespace: "shop".into(),
        name: "reviews".into(),
    };
    let changed = BTreeSet::from([reviews.clone()]);
    let before = Snapshot::build(1, &with(vec![pod_endpoint("10.1.0.1", "v1")]));

    // A pod joins: incremental, and the same as the full build.
    let config = with(vec![
        pod_endpoint("10.1.0.1", "v1"),
        pod_endpoint("10.1.0.2", "v2"),
    ]);
    assert!(incremental(&before, 2, &config, &changed).is_some());
    let after = Snapshot::build_after(&before, 2, &config, &changed);
    assert_same(&after, &Snapshot::build(2, &config), &before, "a pod joins");
    for (host, service) in &after.registry.services {
        let same = Arc::ptr_eq(service, &before.registry.services[host]);
        assert_eq!(same, host != "reviews.shop.svc.cluster.local", "{host}");
    }
    assert!(Arc::ptr_eq(
        &after.virtual_services,
        &before.virtual_services
    ));
    assert_eq!(
        ChangeSet::between(&before, &after).endpoints_only(),
        Some(crate::snapshot::EndpointChanges {
            hosts: BTreeSet::from(["reviews.shop.svc.cluster.local".to_string()]),
            addresses: BTreeSet::from(["10.1.0.2".to_string()]),
        })
    );

    // Every pod goes: still incremental, still the full build's.
    let empty = with(Vec::new());
    let gone = Snapshot::build_after(&after, 3, &empty, &changed);
    assert_same(&gone, &Snapshot::build(3, &empty), &after, "every pod goes");

    // The definition changes (a port): that is the full build's to do.
    store.apply(
        Path::new("shop/reviews.yaml"),
        &service("reviews", "shop", "").replace("port: 80}", "port: 8000}"),
    );
    let redefined = store.take_changed();
    let mut config = store.config();
    config.endpoints = empty.endpoints.clone();
    assert!(incremental(&gone, 4, &config, &redefined).is_none());
}
