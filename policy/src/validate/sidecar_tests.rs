//! Sidecar decoding and validation, through the whole parse path.

use super::tests::{errors, warnings};
use crate::networking::{EgressListener, WorkloadSelector};
use crate::object::{Object, ParsedDocument, parse_documents};

const SIDECAR: &str = "apiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata:\n  name: default\n  namespace: shop\nspec:\n";

fn sidecar(spec: &str) -> String {
    format!("{SIDECAR}{spec}")
}

#[test]
fn decodes_selector_and_egress_hosts_in_every_api_version() {
    for version in ["v1", "v1beta1", "v1alpha3"] {
        let text = sidecar("  workloadSelector:\n    labels: {app: web}\n  egress:\n  - hosts: [./*, istio-system/*]\n")
            .replace("networking.istio.io/v1", &format!("networking.istio.io/{version}"));
        let docs = parse_documents("s.yaml", &text);
        let [
            ParsedDocument::Object {
                object, warnings, ..
            },
        ] = docs.as_slice()
        else {
            panic!("{version}: {docs:#?}");
        };
        assert!(warnings.is_empty(), "{warnings:?}");
        let Object::Sidecar(s) = object else {
            panic!("{object:?}")
        };
        assert_eq!(
            s.spec.workload_selector,
            Some(WorkloadSelector {
                labels: [("app".to_string(), "web".to_string())].into()
            })
        );
        assert_eq!(
            s.spec.egress,
            [EgressListener {
                hosts: vec!["./*".into(), "istio-system/*".into()]
            }]
        );
    }
}

#[test]
fn other_fields_are_not_supported_yet_by_path() {
    let cases = [
        ("  ingress:\n  - port: {number: 80}\n", "spec.ingress"),
        (
            "  outboundTrafficPolicy: {mode: REGISTRY_ONLY}\n",
            "spec.outboundTrafficPolicy",
        ),
        (
            "  inboundConnectionPool: {tcp: {maxConnections: 1}}\n",
            "spec.inboundConnectionPool",
        ),
        (
            "  egress:\n  - port: {number: 80, protocol: HTTP}\n    hosts: [./*]\n",
            "spec.egress[0].port",
        ),
        (
            "  egress:\n  - bind: 127.0.0.1\n    hosts: [./*]\n",
            "spec.egress[0].bind",
        ),
        (
            "  egress:\n  - captureMode: NONE\n    hosts: [./*]\n",
            "spec.egress[0].captureMode",
        ),
        (
            "  egress:\n  - hosts: [./*]\n    capture_mode: NONE\n",
            "spec.egress[0].capture_mode",
        ),
    ];
    for (spec, path) in cases {
        assert_eq!(
            errors(&sidecar(spec)),
            [format!("{path}: field is not supported yet")],
            "{spec}"
        );
    }
    assert_eq!(
        errors(&sidecar("  egress:\n  - hosts: [./*]\n    hostz: [a]\n")),
        ["spec.egress[0].hostz: unknown field"]
    );
    assert_eq!(
        errors(&sidecar(
            "  workloadSelector: {matchLabels: {app: a}}\n  egress: [{hosts: [./*]}]\n"
        )),
        ["spec.workloadSelector.matchLabels: unknown field"]
    );
}

#[test]
fn at_least_one_egress_listener_with_hosts() {
    assert_eq!(
        errors(&sidecar("  workloadSelector: {labels: {app: a}}\n")),
        ["spec.egress: at least one egress listener is required"]
    );
    assert_eq!(
        errors(&sidecar("  egress:\n  - hosts: []\n")),
        ["spec.egress[0].hosts: egress listener must contain at least one host"]
    );
    assert_eq!(
        errors(&sidecar("  egress:\n  - null\n")),
        ["spec.egress[0]: egress listener may not be null"]
    );
    let e = errors(&sidecar(
        "  egress:\n  - hosts: [./*]\n  - hosts: [prod/*]\n",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("spec.egress[0]: an egress listener without a port must be the last one"),
        "{e:?}"
    );
}

#[test]
fn hosts_are_namespace_slash_dns_name() {
    let e = errors(&sidecar(
        "  egress:\n  - hosts: [reviews.shop.svc.cluster.local, 'Shop/*', shop/reviews, '*/*foo.com']\n",
    ));
    assert_eq!(e.len(), 4, "{e:#?}");
    assert!(e[0].starts_with("spec.egress[0].hosts[0]: host \"reviews.shop.svc.cluster.local\" must be of the form namespace/dnsName"));
    assert!(
        e[1].starts_with("spec.egress[0].hosts[1]: host \"Shop/*\": invalid namespace \"Shop\"")
    );
    assert!(e[2].starts_with(
        "spec.egress[0].hosts[2]: host \"shop/reviews\": short names are not allowed"
    ));
    assert!(e[3].starts_with("spec.egress[0].hosts[3]: host \"*/*foo.com\": "));
    assert_eq!(
        errors(&sidecar(
            "  egress:\n  - hosts: ['*/*', './*.shop.svc.cluster.local', '~/*', '~prod/a.prod.svc.cluster.local', istio-system/api.example.com]\n"
        )),
        Vec::<String>::new()
    );
}

#[test]
fn duplicates_and_star_star_with_others_are_warnings() {
    let w = warnings(&sidecar(
        "  egress:\n  - hosts: [shop/*, ./a.shop.svc.cluster.local, '*/*', prod/b.example.com, prod/b.example.com]\n",
    ));
    assert_eq!(
        w,
        [
            "spec.egress[0].hosts[1]: duplicated egress host \"./a.shop.svc.cluster.local\"",
            "spec.egress[0].hosts[4]: duplicated egress host \"prod/b.example.com\"",
            "spec.egress[0].hosts: host \"*/*\" imports everything: the other hosts add nothing",
        ]
    );
}

#[test]
fn selectors_take_no_wildcards_and_warn_when_empty() {
    let e = errors(&sidecar(
        "  workloadSelector:\n    labels: {app: '*', 'bad key!': x}\n  egress: [{hosts: [./*]}]\n",
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(
        e[0],
        "spec.workloadSelector.labels[app]: wildcard is not supported in selector: \"app=*\""
    );
    assert!(e[1].starts_with(
        "spec.workloadSelector.labels[bad key!]: \"bad key!\" is not a valid label key"
    ));
    assert_eq!(
        warnings(&sidecar(
            "  workloadSelector: {}\n  egress: [{hosts: [./*]}]\n"
        )),
        [
            "spec.workloadSelector.labels: workload selector specified without labels: the Sidecar applies to every workload in its namespace"
        ]
    );
}
