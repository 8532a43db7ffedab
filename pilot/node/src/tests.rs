//! Reading node metadata, and the round trip through what Envoy sends.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Struct, Value};

use crate::{DEFAULT_OUTBOUND_PORT, Generator, GrpcBootstrap, NodeError, NodeMetadata, meta};

fn string(s: &str) -> Value {
    Value {
        kind: Some(Kind::StringValue(s.to_string())),
    }
}

fn number(n: f64) -> Value {
    Value {
        kind: Some(Kind::NumberValue(n)),
    }
}

fn object(fields: &[(&str, Value)]) -> Value {
    Value {
        kind: Some(Kind::StructValue(Struct {
            fields: fields
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
        })),
    }
}

const ID: &str = "sidecar~10.0.0.7~shop.store~store.svc.cluster.local";

/// The metadata the agent writes, minus nothing.
fn full() -> Vec<(&'static str, Value)> {
    vec![
        (meta::NAMESPACE, string("store")),
        (meta::WORKLOAD, string("shop")),
        (meta::ADDRESS, string("10.0.0.7")),
        (
            meta::LABELS,
            object(&[("app", string("shop")), ("version", string("v1"))]),
        ),
        (meta::SERVICE_ACCOUNT, string("shop-sa")),
        (meta::APP_ADDRESS, string("127.0.0.1:8080")),
        (
            meta::APP_PORTS,
            object(&[("9090", string("127.0.0.1:9091"))]),
        ),
        (meta::OUTBOUND_PORT, number(15006.0)),
        ("ISTIO_VERSION", string("ignored")),
    ]
}

fn node(fields: Vec<(&'static str, Value)>) -> Node {
    Node {
        id: ID.to_string(),
        metadata: Some(Struct {
            fields: fields
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect(),
        }),
        ..Default::default()
    }
}

fn with(key: &'static str, value: Value) -> Node {
    let mut fields: Vec<_> = full().into_iter().filter(|(k, _)| *k != key).collect();
    fields.push((key, value));
    node(fields)
}

fn without(key: &str) -> Node {
    node(full().into_iter().filter(|(k, _)| *k != key).collect())
}

fn error(node: &Node) -> String {
    NodeMetadata::from_node(node).unwrap_err().to_string()
}

#[test]
fn full_metadata_parses() {
    let proxy = NodeMetadata::from_node(&node(full())).unwrap();
    assert_eq!(
        proxy,
        NodeMetadata {
            namespace: "store".to_string(),
            workload: "shop".to_string(),
            address: "10.0.0.7".parse().unwrap(),
            labels: BTreeMap::from([
                ("app".to_string(), "shop".to_string()),
                ("version".to_string(), "v1".to_string()),
            ]),
            service_account: Some("shop-sa".to_string()),
            app_address: Some("127.0.0.1:8080".parse().unwrap()),
            app_ports: BTreeMap::from([(9090, "127.0.0.1:9091".parse().unwrap())]),
            outbound_port: 15006,
            generator: Generator::Envoy,
            sds: false,
            capture: false,
        }
    );
}

#[test]
fn minimal_metadata_takes_defaults() {
    let proxy = NodeMetadata::from_node(&node(vec![
        (meta::NAMESPACE, string("store")),
        (meta::WORKLOAD, string("shop")),
        (meta::ADDRESS, string("fd00::7")),
    ]))
    .unwrap();
    assert_eq!(
        proxy.address,
        "fd00::7".parse::<std::net::IpAddr>().unwrap()
    );
    assert!(proxy.labels.is_empty());
    assert_eq!(proxy.service_account, None);
    assert_eq!(proxy.app_address, None);
    assert!(proxy.app_ports.is_empty());
    assert_eq!(proxy.outbound_port, DEFAULT_OUTBOUND_PORT);
}

#[test]
fn outbound_port_may_be_a_string() {
    let proxy = NodeMetadata::from_node(&with(meta::OUTBOUND_PORT, string("15009"))).unwrap();
    assert_eq!(proxy.outbound_port, 15009);
}

#[test]
fn required_keys_are_named_when_missing() {
    for key in [meta::NAMESPACE, meta::WORKLOAD, meta::ADDRESS] {
        assert_eq!(
            NodeMetadata::from_node(&without(key)),
            Err(NodeError::Missing(key))
        );
        assert_eq!(
            error(&without(key)),
            format!("node metadata.{key}: missing")
        );
        // An empty string is as good as missing.
        assert_eq!(
            NodeMetadata::from_node(&with(key, string(""))),
            Err(NodeError::Missing(key))
        );
    }
    let bare = Node {
        id: ID.to_string(),
        ..Default::default()
    };
    assert_eq!(
        NodeMetadata::from_node(&bare),
        Err(NodeError::Missing(meta::NAMESPACE))
    );
}

#[test]
fn empty_node_id_is_rejected() {
    let mut n = node(full());
    n.id.clear();
    assert_eq!(NodeMetadata::from_node(&n), Err(NodeError::MissingId));
}

#[test]
fn bad_values_are_named() {
    let cases = [
        (
            with(meta::ADDRESS, string("shop")),
            "node metadata.address: \"shop\" is not an IP address",
        ),
        (
            with(meta::NAMESPACE, number(1.0)),
            "node metadata.namespace: expected a string, got a number",
        ),
        (
            with(meta::LABELS, object(&[("app", number(1.0))])),
            "node metadata.labels.app: expected a string, got a number",
        ),
        (
            with(meta::LABELS, string("app=shop")),
            "node metadata.labels: expected a struct, got a string",
        ),
        (
            with(
                meta::SERVICE_ACCOUNT,
                Value {
                    kind: Some(Kind::BoolValue(true)),
                },
            ),
            "node metadata.service_account: expected a string, got a boolean",
        ),
        (
            with(meta::APP_ADDRESS, string("localhost:8080")),
            "node metadata.app_address: \"localhost:8080\" is not an IP:PORT address",
        ),
        (
            with(meta::APP_PORTS, object(&[("http", string("127.0.0.1:1"))])),
            "node metadata.app_ports.http: \"http\" is not a port number",
        ),
        (
            with(meta::APP_PORTS, object(&[("80", string("127.0.0.1"))])),
            "node metadata.app_ports.80: \"127.0.0.1\" is not an IP:PORT address",
        ),
        (
            with(meta::OUTBOUND_PORT, number(0.0)),
            "node metadata.outbound_port: 0 is not a port number",
        ),
        (
            with(meta::OUTBOUND_PORT, number(1.5)),
            "node metadata.outbound_port: 1.5 is not a port number",
        ),
        (
            with(meta::OUTBOUND_PORT, number(70000.0)),
            "node metadata.outbound_port: 70000 is not a port number",
        ),
        (
            with(meta::OUTBOUND_PORT, string("x")),
            "node metadata.outbound_port: \"x\" is not a port number",
        ),
        (
            with(
                meta::OUTBOUND_PORT,
                Value {
                    kind: Some(Kind::BoolValue(false)),
                },
            ),
            "node metadata.outbound_port: expected a number or a string, got a boolean",
        ),
    ];
    for (node, expected) in cases {
        assert_eq!(error(&node), expected);
    }
}

#[test]
fn null_optional_values_are_absent() {
    let null = Value {
        kind: Some(Kind::NullValue(0)),
    };
    let proxy = NodeMetadata::from_node(&with(meta::OUTBOUND_PORT, null.clone())).unwrap();
    assert_eq!(proxy.outbound_port, DEFAULT_OUTBOUND_PORT);
    let proxy = NodeMetadata::from_node(&with(meta::LABELS, null)).unwrap();
    assert!(proxy.labels.is_empty());
}

fn reviews() -> NodeMetadata {
    let mut m = NodeMetadata::new("shop", "reviews-v2", "127.0.1.7".parse().unwrap());
    m.labels = BTreeMap::from([
        ("app".to_string(), "reviews".to_string()),
        ("version".to_string(), "v2".to_string()),
    ]);
    m.service_account = Some("bookinfo-reviews".to_string());
    m.app_address = Some("127.0.1.7:15080".parse().unwrap());
    m.app_ports = BTreeMap::from([(7070, "127.0.1.7:17070".parse().unwrap())]);
    m.outbound_port = 16001;
    m
}

#[test]
fn what_is_encoded_decodes_to_the_same_metadata() {
    let minimal = NodeMetadata::new("default", "client", "fd00::8".parse().unwrap());
    let mut proxyless = NodeMetadata::grpc("shop", "ratings", "127.0.1.9".parse().unwrap());
    proxyless.labels = BTreeMap::from([("app".to_string(), "ratings".to_string())]);
    for m in [reviews(), minimal, proxyless] {
        let node = m.to_node();
        assert_eq!(node.id, m.node_id());
        assert_eq!(node.cluster, m.cluster());
        assert_eq!(NodeMetadata::from_node(&node), Ok(m.clone()));
        assert_eq!(NodeMetadata::from_struct(&m.to_struct()), Ok(m));
    }
}

#[test]
fn the_encoding_uses_every_key_as_documented() {
    assert_eq!(
        reviews().to_json(),
        serde_json::json!({
            "namespace": "shop",
            "workload": "reviews-v2",
            "address": "127.0.1.7",
            "labels": { "app": "reviews", "version": "v2" },
            "service_account": "bookinfo-reviews",
            "app_address": "127.0.1.7:15080",
            "app_ports": { "7070": "127.0.1.7:17070" },
            "outbound_port": "16001",
        })
    );
    let minimal = NodeMetadata::new("default", "client", "10.0.0.1".parse().unwrap());
    let json = minimal.to_json();
    let keys: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            meta::ADDRESS,
            meta::APP_PORTS,
            meta::LABELS,
            meta::NAMESPACE,
            meta::OUTBOUND_PORT,
            meta::WORKLOAD
        ]
    );
}

#[test]
fn node_ids_follow_istio() {
    assert_eq!(
        reviews().node_id(),
        "sidecar~127.0.1.7~reviews-v2.shop~shop.svc.cluster.local"
    );
    assert_eq!(reviews().cluster(), "reviews-v2.shop");
}

#[test]
fn inbound_ports_find_their_application() {
    let m = reviews();
    assert_eq!(m.app_for(7070), Some("127.0.1.7:17070".parse().unwrap()));
    assert_eq!(m.app_for(9080), m.app_address);
}

#[test]
fn modes_read_and_print_their_names() {
    use crate::Mode;
    for (name, mode) in Mode::NAMES.into_iter().zip([Mode::Sotw, Mode::Delta]) {
        assert_eq!(name.parse::<Mode>(), Ok(mode));
        assert_eq!(mode.to_string(), name);
        assert_eq!(serde_json::to_value(mode).unwrap(), name);
    }
    assert_eq!(Mode::Sotw.api_type(), "GRPC");
    assert_eq!(Mode::Delta.api_type(), "DELTA_GRPC");
    assert_eq!(
        "grpc".parse::<Mode>().unwrap_err().to_string(),
        "unknown xDS mode \"grpc\": expected sotw or delta"
    );
}

#[test]
fn grpc_generator_marks_a_proxyless_client() {
    let proxyless = NodeMetadata::from_node(&with(meta::GENERATOR, string("grpc"))).unwrap();
    assert_eq!(proxyless.generator, Generator::Grpc);
    assert!(proxyless.is_proxyless());
    let istio = NodeMetadata::from_node(&with(meta::GENERATOR, string("istio"))).unwrap();
    assert_eq!(istio.generator, Generator::Envoy);
    assert_eq!(
        NodeMetadata::from_node(&node(full())).unwrap().generator,
        Generator::Envoy
    );
    assert_eq!(
        error(&with(meta::GENERATOR, string("api"))),
        "node metadata.GENERATOR: unknown generator \"api\": expected grpc, or no GENERATOR for an Envoy sidecar"
    );
}

/// What Istio's agent writes for a proxyless client: Istio's keys, and the
/// workload and address only in the node id.
#[test]
fn a_proxyless_client_needs_only_its_namespace() {
    let m = NodeMetadata::from_node(&node(vec![
        (meta::GENERATOR, string("grpc")),
        (meta::ISTIO_NAMESPACE, string("store")),
        (meta::ISTIO_LABELS, object(&[("app", string("shop"))])),
    ]))
    .unwrap();
    assert_eq!(m.namespace, "store");
    assert_eq!(m.workload, "shop");
    assert_eq!(m.address, "10.0.0.7".parse::<std::net::IpAddr>().unwrap());
    assert_eq!(
        m.labels,
        BTreeMap::from([("app".to_string(), "shop".to_string())])
    );

    let bare = Node {
        id: "client-1".to_string(),
        ..node(vec![
            (meta::GENERATOR, string("grpc")),
            (meta::NAMESPACE, string("store")),
        ])
    };
    let m = NodeMetadata::from_node(&bare).unwrap();
    assert_eq!(m.workload, "client-1");
    assert!(m.address.is_unspecified());

    // The namespace is the one thing it must say, under either key.
    let none = node(vec![(meta::GENERATOR, string("grpc"))]);
    assert_eq!(error(&none), "node metadata.namespace: missing");
    // An Envoy sidecar still declares everything.
    assert_eq!(
        error(&node(vec![(meta::NAMESPACE, string("store"))])),
        "node metadata.workload: missing"
    );
}

#[test]
fn a_grpc_bootstrap_over_mutual_tls_names_its_files() {
    let node = NodeMetadata::grpc("shop", "client", "127.0.85.1".parse().unwrap());
    let bootstrap = GrpcBootstrap {
        server_uri: "127.0.85.250:15012".to_string(),
        node,
        tls: Some(crate::GrpcTls {
            ca_certificate_file: "/run/ca.pem".to_string(),
            certificate_file: "/run/cert.pem".to_string(),
            private_key_file: "/run/key.pem".to_string(),
        }),
        certificate_provider: None,
    }
    .to_json();
    assert_eq!(
        bootstrap["xds_servers"][0]["channel_creds"],
        serde_json::json!([{"type": "tls", "config": {
            "ca_certificate_file": "/run/ca.pem",
            "certificate_file": "/run/cert.pem",
            "private_key_file": "/run/key.pem",
        }}])
    );
    assert!(bootstrap.get("certificate_providers").is_none());
}

#[test]
fn a_grpc_bootstrap_for_calls_over_mutual_tls_defines_the_default_provider() {
    let node = NodeMetadata::grpc("shop", "client", "127.0.85.1".parse().unwrap());
    let files = crate::GrpcTls {
        ca_certificate_file: "/run/ca.pem".to_string(),
        certificate_file: "/run/cert.pem".to_string(),
        private_key_file: "/run/key.pem".to_string(),
    };
    let bootstrap = GrpcBootstrap {
        server_uri: "127.0.85.250:15010".to_string(),
        node,
        tls: None,
        certificate_provider: Some(files),
    }
    .to_json();
    assert_eq!(
        bootstrap["certificate_providers"],
        serde_json::json!({"default": {"plugin_name": "file_watcher", "config": {
            "ca_certificate_file": "/run/ca.pem",
            "certificate_file": "/run/cert.pem",
            "private_key_file": "/run/key.pem",
            "refresh_interval": "60s",
        }}})
    );
}

#[test]
fn the_grpc_bootstrap_names_the_server_and_the_node() {
    let node = NodeMetadata::grpc("shop", "client", "127.0.85.1".parse().unwrap());
    let bootstrap = GrpcBootstrap {
        server_uri: "127.0.85.250:15010".to_string(),
        node: node.clone(),
        tls: None,
        certificate_provider: None,
    }
    .to_json();
    assert_eq!(
        bootstrap["xds_servers"],
        serde_json::json!([{
            "server_uri": "127.0.85.250:15010",
            "channel_creds": [{"type": "insecure"}],
            "server_features": ["xds_v3"],
        }])
    );
    assert_eq!(
        bootstrap["node"]["id"],
        "sidecar~127.0.85.1~client.shop~shop.svc.cluster.local"
    );
    assert_eq!(bootstrap["node"]["metadata"][meta::GENERATOR], "grpc");
    let Some(envoy_types::pb::google::protobuf::value::Kind::StructValue(metadata)) =
        crate::json_to_proto(&bootstrap["node"]["metadata"]).kind
    else {
        panic!("metadata is an object: {bootstrap}");
    };
    assert_eq!(NodeMetadata::from_struct(&metadata), Ok(node));
}

#[test]
fn sds_says_whether_the_agent_serves_the_workload_certificate() {
    assert!(!NodeMetadata::from_node(&node(full())).unwrap().sds);
    assert!(
        NodeMetadata::from_node(&with(meta::SDS, string("true")))
            .unwrap()
            .sds
    );
    assert!(
        !NodeMetadata::from_node(&with(meta::SDS, string("false")))
            .unwrap()
            .sds
    );
    assert_eq!(
        error(&with(meta::SDS, string("yes"))),
        "node metadata.sds: \"yes\" is neither \"true\" nor \"false\""
    );
    let mut metadata = reviews();
    metadata.sds = true;
    assert_eq!(
        NodeMetadata::from_struct(&metadata.to_struct()).unwrap(),
        metadata
    );
}

#[test]
fn interception_mode_says_whether_the_pods_traffic_is_captured() {
    assert!(!NodeMetadata::from_node(&node(full())).unwrap().capture);
    assert!(
        NodeMetadata::from_node(&with(meta::INTERCEPTION_MODE, string("REDIRECT")))
            .unwrap()
            .capture
    );
    assert!(
        !NodeMetadata::from_node(&with(meta::INTERCEPTION_MODE, string("NONE")))
            .unwrap()
            .capture
    );
    assert_eq!(
        error(&with(meta::INTERCEPTION_MODE, string("TPROXY"))),
        "node metadata.INTERCEPTION_MODE: \"TPROXY\" is neither \"REDIRECT\" nor \"NONE\" (TPROXY is not supported)"
    );
    let mut metadata = reviews();
    metadata.capture = true;
    assert_eq!(metadata.to_json()[meta::INTERCEPTION_MODE], "REDIRECT");
    assert_eq!(
        NodeMetadata::from_struct(&metadata.to_struct()).unwrap(),
        metadata
    );
    // The application listens on the workload's own address unless declared.
    metadata.app_address = None;
    metadata.app_ports.clear();
    assert_eq!(
        metadata.app_for(9080),
        Some(SocketAddr::new(metadata.address, 9080))
    );
}
