//! Writing [`NodeMetadata`]: the JSON the agent puts in the bootstrap, and
//! the protobuf `Struct` Envoy makes of it.

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{ListValue, Struct, Value};
use serde_json::{Map, Value as Json};

use crate::{NodeMetadata, meta};

impl NodeMetadata {
    /// The bootstrap's `node.metadata`, with every [`meta`] key (`GENERATOR`
    /// only for a proxyless gRPC client). Labels and
    /// application ports are objects of strings, the outbound port is a
    /// string; the service account and the application address are left out
    /// when unset, and `sds` unless it is true.
    pub fn to_json(&self) -> Json {
        let NodeMetadata {
            namespace,
            workload,
            address,
            labels,
            service_account,
            app_address,
            app_ports,
            outbound_port,
            generator,
            sds,
            capture,
        } = self;
        let mut m = Map::new();
        m.insert(meta::NAMESPACE.into(), namespace.clone().into());
        m.insert(meta::WORKLOAD.into(), workload.clone().into());
        m.insert(meta::ADDRESS.into(), address.to_string().into());
        let labels: Map<String, Json> = labels
            .iter()
            .map(|(k, v)| (k.clone(), Json::String(v.clone())))
            .collect();
        m.insert(meta::LABELS.into(), Json::Object(labels));
        if let Some(sa) = service_account {
            m.insert(meta::SERVICE_ACCOUNT.into(), sa.clone().into());
        }
        if let Some(app) = app_address {
            m.insert(meta::APP_ADDRESS.into(), app.to_string().into());
        }
        let app_ports: Map<String, Json> = app_ports
            .iter()
            .map(|(port, addr)| (port.to_string(), Json::String(addr.to_string())))
            .collect();
        m.insert(meta::APP_PORTS.into(), Json::Object(app_ports));
        m.insert(meta::OUTBOUND_PORT.into(), outbound_port.to_string().into());
        if *sds {
            m.insert(meta::SDS.into(), "true".into());
        }
        if *capture {
            m.insert(meta::INTERCEPTION_MODE.into(), "REDIRECT".into());
        }
        // Envoy sidecars leave the key out, as Istio's do.
        if generator.is_proxyless() {
            m.insert(meta::GENERATOR.into(), generator.as_str().into());
        }
        Json::Object(m)
    }

    /// The metadata as Envoy sends it: [`NodeMetadata::to_json`] read into
    /// a protobuf `Struct`, as Envoy reads its bootstrap.
    pub fn to_struct(&self) -> Struct {
        match json_to_proto(&self.to_json()).kind {
            Some(Kind::StructValue(s)) => s,
            _ => Struct::default(),
        }
    }

    /// The node a sidecar with this metadata sends on its first request:
    /// id, cluster and metadata. For clients that stand in for Envoy (the
    /// load harness, tests).
    pub fn to_node(&self) -> Node {
        Node {
            id: self.node_id(),
            cluster: self.cluster(),
            metadata: Some(self.to_struct()),
            ..Node::default()
        }
    }
}

/// JSON to a protobuf `Value`, as Envoy maps a bootstrap's `Struct` fields.
pub fn json_to_proto(json: &Json) -> Value {
    let kind = match json {
        Json::Null => Kind::NullValue(0),
        Json::Bool(b) => Kind::BoolValue(*b),
        Json::Number(n) => n.as_f64().map_or(Kind::NullValue(0), Kind::NumberValue),
        Json::String(s) => Kind::StringValue(s.clone()),
        Json::Array(items) => Kind::ListValue(ListValue {
            values: items.iter().map(json_to_proto).collect(),
        }),
        Json::Object(map) => Kind::StructValue(Struct {
            fields: map
                .iter()
                .map(|(k, v)| (k.clone(), json_to_proto(v)))
                .collect(),
        }),
    };
    Value { kind: Some(kind) }
}
