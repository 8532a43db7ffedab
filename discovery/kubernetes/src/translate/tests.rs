//! The translation, from k8s-openapi objects built as the API server would
//! serve them.

use std::collections::BTreeMap;
use std::sync::Arc;

use discovery::{Protocol, Registry};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, Namespace, Node, ObjectReference, Pod, PodIP, PodSpec, PodStatus,
    Service as KubeService, ServicePort as KubeServicePort, ServiceSpec as KubeServiceSpec,
};
use k8s_openapi::api::discovery::v1::{
    Endpoint as SliceEndpoint, EndpointConditions, EndpointPort, EndpointSlice,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use policy::service::TargetPort;

use super::*;

fn labels(pairs: &[(&str, &str)]) -> Option<BTreeMap<String, String>> {
    Some(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

fn meta(namespace: &str, name: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name.to_string()),
        namespace: Some(namespace.to_string()).filter(|n| !n.is_empty()),
        ..ObjectMeta::default()
    }
}

fn port(name: &str, number: i32, target: Option<IntOrString>) -> KubeServicePort {
    KubeServicePort {
        name: Some(name.to_string()).filter(|n| !n.is_empty()),
        port: number,
        target_port: target,
        ..KubeServicePort::default()
    }
}

/// `reviews` in `shop`: http 9080 -> named port `web`, grpc 9090 -> 19090.
fn reviews() -> KubeService {
    KubeService {
        metadata: meta("shop", "reviews"),
        spec: Some(KubeServiceSpec {
            cluster_ip: Some("10.96.0.10".into()),
            selector: labels(&[("app", "reviews")]),
            ports: Some(vec![
                port("http", 9080, Some(IntOrString::String("web".into()))),
                port("grpc", 9090, Some(IntOrString::Int(19090))),
            ]),
            ..KubeServiceSpec::default()
        }),
        ..KubeService::default()
    }
}

fn pod(name: &str, ip: &str, node: &str, extra: &[(&str, &str)]) -> Pod {
    let mut pod_labels = vec![("app", "reviews")];
    pod_labels.extend_from_slice(extra);
    Pod {
        metadata: ObjectMeta {
            labels: labels(&pod_labels),
            ..meta("shop", name)
        },
        spec: Some(PodSpec {
            service_account_name: Some("bookinfo-reviews".into()),
            node_name: Some(node.into()),
            containers: vec![Container {
                name: "app".into(),
                ports: Some(vec![ContainerPort {
                    name: Some("web".into()),
                    container_port: 8080,
                    ..ContainerPort::default()
                }]),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        status: Some(PodStatus {
            pod_ip: Some(ip.into()),
            pod_ips: Some(vec![PodIP { ip: ip.into() }]),
            ..PodStatus::default()
        }),
    }
}

fn node(name: &str, region: &str, zone: &str, subzone: Option<&str>) -> Node {
    let mut node_labels = vec![(REGION_LABEL, region), (ZONE_LABEL, zone)];
    if let Some(subzone) = subzone {
        node_labels.push((SUBZONE_LABEL, subzone));
    }
    Node {
        metadata: ObjectMeta {
            labels: labels(&node_labels),
            ..meta("", name)
        },
        ..Node::default()
    }
}

fn conditions(
    ready: Option<bool>,
    serving: Option<bool>,
    terminating: Option<bool>,
) -> Option<EndpointConditions> {
    Some(EndpointConditions {
        ready,
        serving,
        terminating,
    })
}

fn endpoint(ip: &str, pod: Option<&str>) -> SliceEndpoint {
    SliceEndpoint {
        addresses: vec![ip.to_string()],
        conditions: conditions(Some(true), Some(true), Some(false)),
        target_ref: pod.map(|name| ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some("shop".into()),
            name: Some(name.into()),
            ..ObjectReference::default()
        }),
        ..SliceEndpoint::default()
    }
}

fn slice_port(name: &str, number: Option<i32>) -> EndpointPort {
    EndpointPort {
        name: Some(name.to_string()),
        port: number,
        protocol: Some("TCP".into()),
        ..EndpointPort::default()
    }
}

/// A slice of `reviews` with the controller's resolved ports.
fn slice(name: &str, endpoints: Vec<SliceEndpoint>) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            labels: labels(&[(SERVICE_NAME_LABEL, "reviews")]),
            ..meta("shop", name)
        },
        address_type: "IPv4".into(),
        endpoints: Some(endpoints),
        ports: Some(vec![
            slice_port("http", Some(8080)),
            slice_port("grpc", Some(19090)),
        ]),
    }
}

fn cluster(
    services: Vec<KubeService>,
    slices: Vec<EndpointSlice>,
    pods: Vec<Pod>,
    nodes: Vec<Node>,
) -> Cluster {
    Cluster {
        services: services.into_iter().map(Arc::new).collect(),
        endpoint_slices: slices.into_iter().map(Arc::new).collect(),
        pods: pods.into_iter().map(Arc::new).collect(),
        nodes: nodes.into_iter().map(Arc::new).collect(),
        namespaces: Vec::new(),
    }
}

fn addresses(t: &Translation, ns: &str, name: &str) -> Vec<String> {
    t.endpoints
        .get(ns, name)
        .iter()
        .map(|e| e.address.clone())
        .collect()
}

#[test]
fn a_cluster_ip_service_becomes_a_policy_service() {
    let mut svc = reviews();
    svc.metadata.annotations = labels(&[("networking.istio.io/exportTo", ".")]);
    let spec = svc.spec.as_mut().unwrap();
    spec.ports.as_mut().unwrap().extend([
        KubeServicePort {
            app_protocol: Some("kubernetes.io/h2c".into()),
            ..port("tcp-db", 5432, None)
        },
        KubeServicePort {
            protocol: Some("UDP".into()),
            ..port("dns", 53, None)
        },
    ]);
    let t = translate(&cluster(vec![svc], vec![], vec![], vec![]));
    assert!(t.diagnostics.is_empty());
    let [service] = t.services.as_slice() else {
        panic!("one service: {:?}", t.services);
    };
    assert_eq!(service.meta.namespace, "shop");
    assert_eq!(service.meta.name, "reviews");
    assert_eq!(
        service.meta.annotations["networking.istio.io/exportTo"],
        "."
    );
    assert_eq!(
        service.spec.selector,
        labels(&[("app", "reviews")]).unwrap()
    );
    let ports: Vec<(u16, Option<&TargetPort>, Option<&str>)> = service
        .spec
        .ports
        .iter()
        .map(|p| (p.port, p.target_port.as_ref(), p.app_protocol.as_deref()))
        .collect();
    // UDP is left out.
    assert_eq!(
        ports,
        [
            (9080, Some(&TargetPort::Name("web".into())), None),
            (9090, Some(&TargetPort::Number(19090)), None),
            (5432, None, Some("kubernetes.io/h2c")),
        ]
    );

    // In the registry, exactly as a Service read from a file.
    let config = t.config_set();
    let (registry, _) =
        Registry::build_with(config.objects.iter().map(|o| o.as_ref()), &config.endpoints);
    let model = registry.get("reviews.shop.svc.cluster.local").unwrap();
    let protocols: Vec<Protocol> = model.ports.iter().map(|p| p.protocol).collect();
    assert_eq!(protocols, [Protocol::Http, Protocol::Grpc, Protocol::Http2]);
    assert_eq!(model.export_to, ["."]);
}

#[test]
fn external_name_services_are_left_out_with_a_warning() {
    let svc = KubeService {
        metadata: meta("shop", "payments"),
        spec: Some(KubeServiceSpec {
            type_: Some("ExternalName".into()),
            external_name: Some("payments.example.com".into()),
            ..KubeServiceSpec::default()
        }),
        ..KubeService::default()
    };
    let t = translate(&cluster(vec![svc, reviews()], vec![], vec![], vec![]));
    let names: Vec<&str> = t.services.iter().map(|s| s.meta.name.as_str()).collect();
    assert_eq!(names, ["reviews"]);
    let found: Vec<String> = t.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        [
            "warning: Service shop/payments: spec.type: ExternalName services are not supported yet; the service is left out"
        ]
    );
}

#[test]
fn endpoints_come_from_every_slice_with_pod_identity_and_node_locality() {
    let slices = vec![
        slice(
            "reviews-b",
            vec![endpoint("10.1.0.3", Some("reviews-v2-x"))],
        ),
        slice(
            "reviews-a",
            vec![
                endpoint("10.1.0.2", Some("reviews-v1-x")),
                // Listed twice while the controller moves it: one endpoint.
                endpoint("10.1.0.3", Some("reviews-v2-x")),
            ],
        ),
    ];
    let pods = vec![
        pod(
            "reviews-v1-x",
            "10.1.0.2",
            "node-a",
            &[("version", "v1"), (TLS_MODE_LABEL, "istio")],
        ),
        pod("reviews-v2-x", "10.1.0.3", "node-b", &[("version", "v2")]),
    ];
    let nodes = vec![
        node("node-a", "eu-west-1", "eu-west-1a", Some("rack-7")),
        node("node-b", "eu-west-1", "eu-west-1b", None),
    ];
    let t = translate(&cluster(vec![reviews()], slices, pods, nodes));
    assert!(t.diagnostics.is_empty(), "{:?}", t.diagnostics);
    let found = t.endpoints.get("shop", "reviews");
    assert_eq!(found.len(), 2);
    let v1 = &found[0];
    assert_eq!(v1.address, "10.1.0.2");
    assert_eq!(v1.ports, BTreeMap::from([(9080, 8080), (9090, 19090)]));
    assert_eq!(v1.labels["version"], "v1");
    assert_eq!(v1.labels[TLS_MODE_LABEL], "istio");
    assert_eq!(v1.service_account.as_deref(), Some("bookinfo-reviews"));
    assert_eq!(v1.locality, "eu-west-1/eu-west-1a/rack-7");
    assert_eq!(v1.workload, Some(("shop".into(), "reviews-v1-x".into())));
    assert_eq!(v1.weight, 1);
    let v2 = &found[1];
    assert_eq!(v2.address, "10.1.0.3");
    assert_eq!(v2.locality, "eu-west-1/eu-west-1b");
    // No sidecar label: no sidecar, so clients speak plaintext to it.
    assert_eq!(v2.labels[TLS_MODE_LABEL], TLS_MODE_DISABLED);

    // The registry merges them into the service, as it would WorkloadEntries.
    let config = t.config_set();
    let (registry, _) =
        Registry::build_with(config.objects.iter().map(|o| o.as_ref()), &config.endpoints);
    let model = registry.get("reviews.shop.svc.cluster.local").unwrap();
    assert_eq!(model.endpoints, found);
}

#[test]
fn only_ready_endpoints_that_are_not_terminating_take_traffic() {
    let with = |ip: &str, ready, serving, terminating| SliceEndpoint {
        conditions: conditions(ready, serving, terminating),
        ..endpoint(ip, None)
    };
    let slices = vec![slice(
        "reviews-a",
        vec![
            with("10.1.0.1", Some(true), Some(true), Some(false)),
            // Absent conditions mean ready.
            with("10.1.0.2", None, None, None),
            SliceEndpoint {
                conditions: None,
                ..endpoint("10.1.0.3", None)
            },
            with("10.1.0.4", Some(false), Some(false), Some(false)),
            // Terminating but still serving: no new requests.
            with("10.1.0.5", Some(false), Some(true), Some(true)),
            with("10.1.0.6", Some(true), Some(true), Some(true)),
            // Serving alone does not make an endpoint ready.
            with("10.1.0.7", Some(false), Some(true), None),
        ],
    )];
    let t = translate(&cluster(vec![reviews()], slices, vec![], vec![]));
    assert_eq!(
        addresses(&t, "shop", "reviews"),
        ["10.1.0.1", "10.1.0.2", "10.1.0.3"]
    );
    // Without a pod there are no labels or identity.
    let first = &t.endpoints.get("shop", "reviews")[0];
    assert!(first.labels.is_empty());
    assert_eq!(first.workload, None);
    assert_eq!(first.service_account, None);
}

#[test]
fn a_ready_copy_of_a_duplicated_address_wins_over_a_stale_one() {
    let stale = SliceEndpoint {
        conditions: conditions(Some(false), Some(false), Some(true)),
        ..endpoint("10.1.0.2", Some("reviews-v1-x"))
    };
    let pods = vec![pod("reviews-v1-x", "10.1.0.2", "node-a", &[])];
    for slices in [
        vec![
            slice("reviews-a", vec![stale.clone()]),
            slice(
                "reviews-b",
                vec![endpoint("10.1.0.2", Some("reviews-v1-x"))],
            ),
        ],
        vec![
            slice(
                "reviews-a",
                vec![endpoint("10.1.0.2", Some("reviews-v1-x"))],
            ),
            slice("reviews-b", vec![stale.clone()]),
        ],
    ] {
        let t = translate(&cluster(vec![reviews()], slices, pods.clone(), vec![]));
        assert_eq!(addresses(&t, "shop", "reviews"), ["10.1.0.2"]);
    }
}

#[test]
fn a_pod_being_deleted_and_a_pod_not_yet_seen_give_no_endpoint() {
    let mut deleted = pod("reviews-v1-x", "10.1.0.2", "node-a", &[]);
    deleted.metadata.deletion_timestamp = Some(Time(Default::default()));
    let slices = vec![slice(
        "reviews-a",
        vec![
            endpoint("10.1.0.2", Some("reviews-v1-x")),
            endpoint("10.1.0.3", Some("reviews-v2-x")),
        ],
    )];
    let t = translate(&cluster(
        vec![reviews()],
        slices.clone(),
        vec![deleted],
        vec![],
    ));
    assert!(addresses(&t, "shop", "reviews").is_empty());

    // Once the pod arrives, its endpoint does, with its labels.
    let pods = vec![pod(
        "reviews-v2-x",
        "10.1.0.3",
        "node-a",
        &[("version", "v2")],
    )];
    let t = translate(&cluster(vec![reviews()], slices, pods, vec![]));
    assert_eq!(addresses(&t, "shop", "reviews"), ["10.1.0.3"]);
    assert_eq!(
        t.endpoints.get("shop", "reviews")[0].labels["version"],
        "v2"
    );
}

#[test]
fn an_endpoint_without_a_target_ref_is_joined_to_the_pod_with_its_ip() {
    let pods = vec![
        pod("reviews-v1-x", "10.1.0.2", "node-a", &[("version", "v1")]),
        // Host-network pods share an IP and are never joined by it.
        Pod {
            spec: Some(PodSpec {
                host_network: Some(true),
                ..pod("agent", "10.0.0.1", "node-a", &[]).spec.unwrap()
            }),
            ..pod("agent", "10.0.0.1", "node-a", &[])
        },
    ];
    let slices = vec![slice(
        "reviews-a",
        vec![endpoint("10.1.0.2", None), endpoint("10.0.0.1", None)],
    )];
    let t = translate(&cluster(vec![reviews()], slices, pods, vec![]));
    let found = t.endpoints.get("shop", "reviews");
    assert_eq!(found.len(), 2);
    assert_eq!(found[0].address, "10.0.0.1");
    assert_eq!(found[0].workload, None);
    assert_eq!(
        found[1].workload,
        Some(("shop".into(), "reviews-v1-x".into()))
    );
    assert_eq!(found[1].labels["version"], "v1");
}

#[test]
fn slice_ports_without_a_number_take_the_target_port_through_the_pod() {
    let mut unresolved = slice(
        "reviews-a",
        vec![endpoint("10.1.0.2", Some("reviews-v1-x"))],
    );
    unresolved.ports = Some(vec![slice_port("http", None), slice_port("grpc", None)]);
    let mut svc = reviews();
    svc.spec
        .as_mut()
        .unwrap()
        .ports
        .as_mut()
        .unwrap()
        .push(port("admin", 9901, None));
    unresolved
        .ports
        .as_mut()
        .unwrap()
        .push(slice_port("admin", None));
    let pods = vec![pod("reviews-v1-x", "10.1.0.2", "node-a", &[])];
    let t = translate(&cluster(vec![svc], vec![unresolved], pods, vec![]));
    let found = t.endpoints.get("shop", "reviews");
    // Named through the pod's containerPorts, numbered as is, none: the port itself.
    assert_eq!(
        found[0].ports,
        BTreeMap::from([(9080, 8080), (9090, 19090), (9901, 9901)])
    );

    // A name the pod does not declare leaves that port unserved; a port
    // with no slice port is not served either.
    let mut other = pod("reviews-v1-x", "10.1.0.2", "node-a", &[]);
    other.spec.as_mut().unwrap().containers[0].ports = None;
    let mut partial = slice(
        "reviews-a",
        vec![endpoint("10.1.0.2", Some("reviews-v1-x"))],
    );
    partial.ports = Some(vec![slice_port("http", None)]);
    let t = translate(&cluster(
        vec![reviews()],
        vec![partial],
        vec![other],
        vec![],
    ));
    assert!(t.endpoints.get("shop", "reviews").is_empty());
}

#[test]
fn unnamed_single_ports_match_and_udp_slice_ports_do_not() {
    let svc = KubeService {
        metadata: meta("shop", "reviews"),
        spec: Some(KubeServiceSpec {
            ports: Some(vec![port("", 80, Some(IntOrString::Int(8080)))]),
            ..KubeServiceSpec::default()
        }),
        ..KubeService::default()
    };
    let mut tcp = slice("reviews-a", vec![endpoint("10.1.0.2", None)]);
    tcp.ports = Some(vec![EndpointPort {
        name: Some(String::new()),
        port: Some(8080),
        ..EndpointPort::default()
    }]);
    let mut udp = slice("reviews-b", vec![endpoint("10.1.0.3", None)]);
    udp.ports = Some(vec![EndpointPort {
        protocol: Some("UDP".into()),
        ..slice_port("", Some(8080))
    }]);
    let t = translate(&cluster(vec![svc], vec![tcp, udp], vec![], vec![]));
    let found = t.endpoints.get("shop", "reviews");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].ports, BTreeMap::from([(80, 8080)]));
}

#[test]
fn ipv6_and_fqdn_slices_are_reported_and_ignored() {
    let mut v6 = slice("reviews-v6", vec![endpoint("fd00::2", None)]);
    v6.address_type = "IPv6".into();
    let mut fqdn = slice("reviews-fqdn", vec![endpoint("reviews.example.com", None)]);
    fqdn.address_type = "FQDN".into();
    let v4 = slice("reviews-v4", vec![endpoint("10.1.0.2", None)]);
    let t = translate(&cluster(
        vec![reviews()],
        vec![v6, fqdn, v4],
        vec![],
        vec![],
    ));
    assert_eq!(addresses(&t, "shop", "reviews"), ["10.1.0.2"]);
    let found: Vec<String> = t.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(
        found,
        [
            "warning: Service shop/reviews: EndpointSlice reviews-fqdn: addressType FQDN is not supported; its endpoints are ignored",
            "warning: Service shop/reviews: EndpointSlice reviews-v6: addressType IPv6 is not supported; its endpoints are ignored",
        ]
    );
}

#[test]
fn slices_join_their_service_by_label_and_namespace() {
    let mut other_ns = slice("reviews-x", vec![endpoint("10.2.0.1", None)]);
    other_ns.metadata.namespace = Some("other".into());
    let mut unlabelled = slice("reviews-y", vec![endpoint("10.2.0.2", None)]);
    unlabelled.metadata.labels = None;
    let mut ratings = slice("ratings-a", vec![endpoint("10.2.0.3", None)]);
    ratings.metadata.labels = labels(&[(SERVICE_NAME_LABEL, "ratings")]);
    let t = translate(&cluster(
        vec![reviews()],
        vec![
            other_ns,
            unlabelled,
            ratings,
            slice("reviews-a", vec![endpoint("10.1.0.2", None)]),
        ],
        vec![],
        vec![],
    ));
    assert_eq!(addresses(&t, "shop", "reviews"), ["10.1.0.2"]);
    assert!(addresses(&t, "shop", "ratings").is_empty());
}

#[test]
fn locality_falls_back_to_the_endpoint_zone_and_the_legacy_labels() {
    let mut legacy = Node {
        metadata: ObjectMeta {
            labels: labels(&[
                ("failure-domain.beta.kubernetes.io/region", "us-east-1"),
                ("failure-domain.beta.kubernetes.io/zone", "us-east-1c"),
            ]),
            ..meta("", "node-old")
        },
        ..Node::default()
    };
    let mut on_unknown_node = endpoint("10.1.0.3", None);
    on_unknown_node.node_name = Some("node-gone".into());
    on_unknown_node.zone = Some("us-east-1d".into());
    let mut on_legacy = endpoint("10.1.0.2", None);
    on_legacy.node_name = Some("node-old".into());
    let t = translate(&cluster(
        vec![reviews()],
        vec![slice("reviews-a", vec![on_legacy, on_unknown_node])],
        vec![],
        vec![std::mem::take(&mut legacy)],
    ));
    let found: Vec<&str> = t
        .endpoints
        .get("shop", "reviews")
        .iter()
        .map(|e| e.locality.as_str())
        .collect();
    assert_eq!(found, ["us-east-1/us-east-1c", "/us-east-1d"]);
}

#[test]
fn headless_services_are_served_from_their_endpoints() {
    let mut svc = reviews();
    svc.spec.as_mut().unwrap().cluster_ip = Some("None".into());
    let t = translate(&cluster(
        vec![svc],
        vec![slice("reviews-a", vec![endpoint("10.1.0.2", None)])],
        vec![],
        vec![],
    ));
    let config = t.config_set();
    let (registry, _) =
        Registry::build_with(config.objects.iter().map(|o| o.as_ref()), &config.endpoints);
    let model = registry.get("reviews.shop.svc.cluster.local").unwrap();
    assert_eq!(model.resolution, discovery::model::Resolution::Static);
    assert_eq!(model.endpoints.len(), 1);
    // No virtual IP for captured clients to match on.
    assert!(model.addresses.is_empty());
}

#[test]
fn a_services_cluster_ip_is_its_address() {
    let t = translate(&cluster(vec![reviews()], vec![], vec![], vec![]));
    let config = t.config_set();
    let (registry, _) =
        Registry::build_with(config.objects.iter().map(|o| o.as_ref()), &config.endpoints);
    let model = registry.get("reviews.shop.svc.cluster.local").unwrap();
    assert_eq!(
        model.addresses,
        ["10.96.0.10".parse::<std::net::IpAddr>().unwrap()]
    );
}

#[test]
fn namespace_labels_are_kept() {
    let mut c = cluster(vec![], vec![], vec![], vec![]);
    c.namespaces = vec![Arc::new(Namespace {
        metadata: ObjectMeta {
            labels: labels(&[("istio-injection", "enabled")]),
            ..meta("", "shop")
        },
        ..Namespace::default()
    })];
    let t = translate(&c);
    assert_eq!(t.namespaces["shop"]["istio-injection"], "enabled");
}

#[test]
fn changed_since_names_services_whose_definition_or_endpoints_moved() {
    let ratings = KubeService {
        metadata: meta("shop", "ratings"),
        ..reviews()
    };
    let before = translate(&cluster(
        vec![reviews(), ratings.clone()],
        vec![slice("reviews-a", vec![endpoint("10.1.0.2", None)])],
        vec![],
        vec![],
    ));
    assert!(before.changed_since(&before).is_empty());
    let key = |name: &str| ObjectKey {
        kind: Kind::Service,
        namespace: "shop".into(),
        name: name.into(),
    };
    // An endpoint more: reviews only.
    let after = translate(&cluster(
        vec![reviews(), ratings.clone()],
        vec![slice(
            "reviews-a",
            vec![endpoint("10.1.0.2", None), endpoint("10.1.0.3", None)],
        )],
        vec![],
        vec![],
    ));
    assert_eq!(
        after.changed_since(&before),
        BTreeSet::from([key("reviews")])
    );
    // ratings gone, reviews' endpoints gone.
    let after = translate(&cluster(vec![reviews()], vec![], vec![], vec![]));
    assert_eq!(
        after.changed_since(&before),
        BTreeSet::from([key("ratings"), key("reviews")])
    );
}
