//! The contract between the agent and the control plane: the node metadata
//! the agent writes into Envoy's bootstrap is exactly what the xDS server
//! reads back as a `Proxy`. Each side has its own tests; this one joins them.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value, value::Kind};
use pilot_agent::bootstrap::{self, BootstrapConfig, XdsAddress};
use pilot_core::proxy::Proxy;

/// JSON, as Envoy reads it from the bootstrap file, to the protobuf Struct
/// it sends in the node.
fn to_proto(json: &serde_json::Value) -> Value {
    let kind = match json {
        serde_json::Value::Null => Kind::NullValue(0),
        serde_json::Value::Bool(b) => Kind::BoolValue(*b),
        serde_json::Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap()),
        serde_json::Value::String(s) => Kind::StringValue(s.clone()),
        serde_json::Value::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(to_proto).collect(),
        }),
        serde_json::Value::Object(map) => Kind::StructValue(Struct {
            fields: map.iter().map(|(k, v)| (k.clone(), to_proto(v))).collect(),
        }),
    };
    Value { kind: Some(kind) }
}

fn node_of(cfg: &BootstrapConfig) -> Node {
    let bootstrap = bootstrap::build(cfg);
    let Some(Kind::StructValue(metadata)) = to_proto(&bootstrap["node"]["metadata"]).kind else {
        panic!("node metadata is an object: {bootstrap}");
    };
    Node {
        id: bootstrap["node"]["id"].as_str().unwrap().to_string(),
        cluster: bootstrap["node"]["cluster"].as_str().unwrap().to_string(),
        metadata: Some(metadata),
        ..Default::default()
    }
}

#[test]
fn what_the_agent_declares_is_what_the_control_plane_reads() {
    let address: IpAddr = "127.0.1.7".parse().unwrap();
    let app: SocketAddr = "127.0.1.7:15080".parse().unwrap();
    let grpc: SocketAddr = "127.0.1.7:17070".parse().unwrap();
    let mut cfg = BootstrapConfig::new(
        "shop",
        "reviews-v2",
        address,
        XdsAddress::from("127.0.0.1:15010".parse::<SocketAddr>().unwrap()),
    );
    cfg.labels = BTreeMap::from([
        ("app".to_string(), "reviews".to_string()),
        ("version".to_string(), "v2".to_string()),
    ]);
    cfg.service_account = Some("bookinfo-reviews".to_string());
    cfg.app_address = Some(app);
    cfg.app_ports = BTreeMap::from([(7070, grpc)]);
    cfg.outbound_port = 16001;

    let proxy = Proxy::try_from(&node_of(&cfg)).unwrap();
    assert_eq!(
        proxy,
        Proxy {
            id: Proxy::node_id(address, "reviews-v2", "shop"),
            namespace: "shop".to_string(),
            workload: "reviews-v2".to_string(),
            address,
            labels: cfg.labels.clone(),
            service_account: Some("bookinfo-reviews".to_string()),
            app_address: Some(app),
            app_ports: BTreeMap::from([(7070, grpc)]),
            outbound_port: 16001,
        }
    );
    assert_eq!(proxy.app_for(7070), Some(grpc));
    assert_eq!(proxy.app_for(9080), Some(app));
}

#[test]
fn a_minimal_agent_gives_the_defaults() {
    let address: IpAddr = "127.0.1.8".parse().unwrap();
    let cfg = BootstrapConfig::new(
        "default",
        "client",
        address,
        XdsAddress::from("127.0.0.1:15010".parse::<SocketAddr>().unwrap()),
    );
    let proxy = Proxy::try_from(&node_of(&cfg)).unwrap();
    assert_eq!(proxy.id, cfg.node_id());
    assert_eq!(
        proxy.outbound_port,
        pilot_core::proxy::DEFAULT_OUTBOUND_PORT
    );
    assert!(proxy.labels.is_empty());
    assert_eq!(proxy.service_account, None);
    assert_eq!(proxy.app_address, None);
}
