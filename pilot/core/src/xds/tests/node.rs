//! Reading a `Proxy` from node metadata.

use std::collections::BTreeMap;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Struct, Value};

use crate::proxy::{DEFAULT_OUTBOUND_PORT, Proxy, meta};
use crate::xds::node::NodeError;

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
    Proxy::try_from(node).unwrap_err().to_string()
}

#[test]
fn full_metadata_parses() {
    let proxy = Proxy::try_from(&node(full())).unwrap();
    assert_eq!(
        proxy,
        Proxy {
            id: ID.to_string(),
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
        }
    );
}

#[test]
fn minimal_metadata_takes_defaults() {
    let proxy = Proxy::try_from(&node(vec![
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
    let proxy = Proxy::try_from(&with(meta::OUTBOUND_PORT, string("15009"))).unwrap();
    assert_eq!(proxy.outbound_port, 15009);
}

#[test]
fn required_keys_are_named_when_missing() {
    for key in [meta::NAMESPACE, meta::WORKLOAD, meta::ADDRESS] {
        assert_eq!(Proxy::try_from(&without(key)), Err(NodeError::Missing(key)));
        assert_eq!(
            error(&without(key)),
            format!("node metadata.{key}: missing")
        );
        // An empty string is as good as missing.
        assert_eq!(
            Proxy::try_from(&with(key, string(""))),
            Err(NodeError::Missing(key))
        );
    }
    let bare = Node {
        id: ID.to_string(),
        ..Default::default()
    };
    assert_eq!(
        Proxy::try_from(&bare),
        Err(NodeError::Missing(meta::NAMESPACE))
    );
}

#[test]
fn empty_node_id_is_rejected() {
    let mut n = node(full());
    n.id.clear();
    assert_eq!(Proxy::try_from(&n), Err(NodeError::MissingId));
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
    let proxy = Proxy::try_from(&with(meta::OUTBOUND_PORT, null.clone())).unwrap();
    assert_eq!(proxy.outbound_port, DEFAULT_OUTBOUND_PORT);
    let proxy = Proxy::try_from(&with(meta::LABELS, null)).unwrap();
    assert!(proxy.labels.is_empty());
}
