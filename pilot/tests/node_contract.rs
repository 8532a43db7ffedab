//! The contract between the agent and the control plane, end to end: the
//! bootstrap the agent writes, read as Envoy reads it, is exactly what the
//! xDS server reads back as a `Proxy`. `pilot-node` holds the contract and
//! its own round-trip test; this one joins the two crates that use it.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::value::Kind;
use pilot_agent::NodeMetadata;
use pilot_agent::bootstrap::{self, BootstrapConfig, XdsAddress};
use pilot_core::proxy::Proxy;

/// The node Envoy sends from the bootstrap `cfg`.
fn node_of(cfg: &BootstrapConfig) -> Node {
    let bootstrap = bootstrap::build(cfg);
    let Some(Kind::StructValue(metadata)) =
        pilot_node::json_to_proto(&bootstrap["node"]["metadata"]).kind
    else {
        panic!("node metadata is an object: {bootstrap}");
    };
    Node {
        id: bootstrap["node"]["id"].as_str().unwrap().to_string(),
        cluster: bootstrap["node"]["cluster"].as_str().unwrap().to_string(),
        metadata: Some(metadata),
        ..Default::default()
    }
}

fn xds() -> XdsAddress {
    XdsAddress::from("127.0.0.1:15010".parse::<SocketAddr>().unwrap())
}

#[test]
fn what_the_agent_declares_is_what_the_control_plane_reads() {
    let address: IpAddr = "127.0.1.7".parse().unwrap();
    let app: SocketAddr = "127.0.1.7:15080".parse().unwrap();
    let grpc: SocketAddr = "127.0.1.7:17070".parse().unwrap();
    let mut node = NodeMetadata::new("shop", "reviews-v2", address);
    node.labels = BTreeMap::from([
        ("app".to_string(), "reviews".to_string()),
        ("version".to_string(), "v2".to_string()),
    ]);
    node.service_account = Some("bookinfo-reviews".to_string());
    node.app_address = Some(app);
    node.app_ports = BTreeMap::from([(7070, grpc)]);
    node.outbound_port = 16001;
    let cfg = BootstrapConfig::new(node.clone(), xds());

    let proxy = Proxy::try_from(&node_of(&cfg)).unwrap();
    assert_eq!(
        proxy,
        Proxy {
            id: "sidecar~127.0.1.7~reviews-v2.shop~shop.svc.cluster.local".to_string(),
            metadata: node,
        }
    );
    assert_eq!(proxy.app_for(7070), Some(grpc));
    assert_eq!(proxy.app_for(9080), Some(app));
}

#[test]
fn a_minimal_agent_gives_the_defaults() {
    let address: IpAddr = "127.0.1.8".parse().unwrap();
    let cfg = BootstrapConfig::new(NodeMetadata::new("default", "client", address), xds());
    let proxy = Proxy::try_from(&node_of(&cfg)).unwrap();
    assert_eq!(proxy.id, cfg.node_id());
    assert_eq!(
        proxy.metadata.outbound_port,
        pilot_node::DEFAULT_OUTBOUND_PORT
    );
    assert!(proxy.metadata.labels.is_empty());
    assert_eq!(proxy.metadata.service_account, None);
    assert_eq!(proxy.metadata.app_address, None);
}
