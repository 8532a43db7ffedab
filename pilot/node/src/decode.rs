//! Reading [`NodeMetadata`] from the Envoy `Node` of the first xDS request.
//!
//! The keys are the ones in [`crate::meta`], written by the agent into the
//! bootstrap. Unknown keys are ignored: Envoy and other agents add their own.
//!
//! A proxyless gRPC client (`GENERATOR: grpc`) is held to less: its
//! bootstrap is often written by hand or by Istio's agent, so the namespace
//! and labels may come under Istio's keys, and the workload and address
//! default to the ones in an Istio-style node id
//! (`sidecar~ADDRESS~WORKLOAD.NAMESPACE~...`), else to none.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::google::protobuf::value::Kind;
use envoy_types::pb::google::protobuf::{Struct, Value};

use crate::{DEFAULT_OUTBOUND_PORT, Generator, NodeMetadata, meta, parse_node_id};

/// Why a node cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NodeError {
    #[error("node id is empty")]
    MissingId,
    #[error("node metadata.{0}: missing")]
    Missing(&'static str),
    #[error("node metadata.{key}: {reason}")]
    Invalid { key: String, reason: String },
}

pub type Result<T, E = NodeError> = std::result::Result<T, E>;

impl NodeMetadata {
    /// The metadata of `node`, which must also carry an id.
    #[allow(deprecated)] // `listening_addresses` is deprecated but still a field.
    pub fn from_node(node: &Node) -> Result<Self> {
        let Node {
            id,
            cluster: _,
            metadata,
            dynamic_parameters: _,
            locality: _,
            user_agent_name: _,
            extensions: _,
            client_features: _,
            listening_addresses: _,
            user_agent_version_type: _,
        } = node;
        if id.is_empty() {
            return Err(NodeError::MissingId);
        }
        NodeMetadata::read(metadata.as_ref().unwrap_or(&Struct::default()), Some(id))
    }

    /// The metadata in `metadata`, every [`meta`] key checked.
    pub fn from_struct(metadata: &Struct) -> Result<Self> {
        NodeMetadata::read(metadata, None)
    }

    /// The metadata in `metadata` of the node `id`.
    fn read(metadata: &Struct, id: Option<&str>) -> Result<Self> {
        let fields = Fields(metadata);

        let generator = match fields.optional_string(meta::GENERATOR)? {
            None => Generator::Envoy,
            Some(value) => {
                Generator::parse(&value).map_err(|e| invalid(meta::GENERATOR, e.to_string()))?
            }
        };
        let proxyless = generator.is_proxyless();
        let (id_address, id_workload) = id.map(parse_node_id).unwrap_or_default();

        let namespace = match fields.optional_string(meta::NAMESPACE)? {
            Some(namespace) => namespace,
            None if proxyless => fields
                .optional_string(meta::ISTIO_NAMESPACE)?
                .ok_or(NodeError::Missing(meta::NAMESPACE))?,
            None => return Err(NodeError::Missing(meta::NAMESPACE)),
        };
        let workload = match fields.optional_string(meta::WORKLOAD)? {
            Some(workload) => workload,
            None if proxyless => id_workload.or(id).unwrap_or_default().to_string(),
            None => return Err(NodeError::Missing(meta::WORKLOAD)),
        };
        let address = match fields.optional_string(meta::ADDRESS)? {
            Some(address) => address
                .parse()
                .map_err(|_| invalid(meta::ADDRESS, format!("{address:?} is not an IP address")))?,
            None if proxyless => id_address.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED)),
            None => return Err(NodeError::Missing(meta::ADDRESS)),
        };
        let mut labels = fields.string_map(meta::LABELS)?;
        if proxyless && fields.get(meta::LABELS).is_none() {
            labels = fields.string_map(meta::ISTIO_LABELS)?;
        }
        let service_account = fields.optional_string(meta::SERVICE_ACCOUNT)?;
        let app_address = fields
            .optional_string(meta::APP_ADDRESS)?
            .map(|s| socket_addr(meta::APP_ADDRESS, &s))
            .transpose()?;
        let app_ports = fields
            .string_map(meta::APP_PORTS)?
            .into_iter()
            .map(|(port, target)| {
                let key = format!("{}.{port}", meta::APP_PORTS);
                Ok((parse_port(&key, &port)?, socket_addr(&key, &target)?))
            })
            .collect::<Result<BTreeMap<_, _>>>()?;
        let outbound_port = fields.port(meta::OUTBOUND_PORT)?;
        let sds = match fields.optional_string(meta::SDS)?.as_deref() {
            None | Some("false") => false,
            Some("true") => true,
            Some(other) => {
                return Err(invalid(
                    meta::SDS,
                    format!("{other:?} is neither \"true\" nor \"false\""),
                ));
            }
        };
        let capture = match fields.optional_string(meta::INTERCEPTION_MODE)?.as_deref() {
            None | Some("NONE") => false,
            Some("REDIRECT") => true,
            Some(other) => {
                return Err(invalid(
                    meta::INTERCEPTION_MODE,
                    format!(
                        "{other:?} is neither \"REDIRECT\" nor \"NONE\" (TPROXY is not supported)"
                    ),
                ));
            }
        };

        Ok(NodeMetadata {
            namespace,
            workload,
            address,
            labels,
            service_account,
            app_address,
            app_ports,
            outbound_port: outbound_port.unwrap_or(DEFAULT_OUTBOUND_PORT),
            generator,
            sds,
            capture,
        })
    }
}

/// The node's metadata struct, with typed accessors that name the key on error.
struct Fields<'a>(&'a Struct);

impl Fields<'_> {
    /// The value of `key`, with JSON `null` treated as absent.
    fn get(&self, key: &str) -> Option<&Kind> {
        match self.0.fields.get(key) {
            Some(Value {
                kind: Some(Kind::NullValue(_)) | None,
            })
            | None => None,
            Some(Value { kind: Some(kind) }) => Some(kind),
        }
    }

    /// A string value; an empty string counts as absent.
    fn optional_string(&self, key: &'static str) -> Result<Option<String>> {
        match self.get(key) {
            None => Ok(None),
            Some(Kind::StringValue(s)) if s.is_empty() => Ok(None),
            Some(Kind::StringValue(s)) => Ok(Some(s.clone())),
            Some(other) => Err(invalid(
                key,
                format!("expected a string, got {}", kind_name(other)),
            )),
        }
    }

    /// A struct whose values are all strings; absent is empty.
    fn string_map(&self, key: &'static str) -> Result<BTreeMap<String, String>> {
        match self.get(key) {
            None => Ok(BTreeMap::new()),
            Some(Kind::StructValue(s)) => s
                .fields
                .iter()
                .map(|(k, v)| match &v.kind {
                    Some(Kind::StringValue(s)) => Ok((k.clone(), s.clone())),
                    other => Err(invalid(
                        &format!("{key}.{k}"),
                        format!(
                            "expected a string, got {}",
                            other.as_ref().map_or("nothing", kind_name)
                        ),
                    )),
                })
                .collect(),
            Some(other) => Err(invalid(
                key,
                format!("expected a struct, got {}", kind_name(other)),
            )),
        }
    }

    /// A port given as a number or a decimal string.
    fn port(&self, key: &'static str) -> Result<Option<u16>> {
        match self.get(key) {
            None => Ok(None),
            Some(Kind::StringValue(s)) => parse_port(key, s).map(Some),
            Some(Kind::NumberValue(n)) => {
                let port = *n as u16;
                if *n >= 1.0 && f64::from(port) == *n {
                    Ok(Some(port))
                } else {
                    Err(invalid(key, format!("{n} is not a port number")))
                }
            }
            Some(other) => Err(invalid(
                key,
                format!("expected a number or a string, got {}", kind_name(other)),
            )),
        }
    }
}

fn parse_port(key: &str, s: &str) -> Result<u16> {
    match s.parse::<u16>() {
        Ok(port) if port != 0 => Ok(port),
        _ => Err(invalid(key, format!("{s:?} is not a port number"))),
    }
}

fn socket_addr(key: &str, s: &str) -> Result<SocketAddr> {
    s.parse()
        .map_err(|_| invalid(key, format!("{s:?} is not an IP:PORT address")))
}

fn invalid(key: &str, reason: String) -> NodeError {
    NodeError::Invalid {
        key: key.to_string(),
        reason,
    }
}

fn kind_name(kind: &Kind) -> &'static str {
    match kind {
        Kind::NullValue(_) => "null",
        Kind::NumberValue(_) => "a number",
        Kind::StringValue(_) => "a string",
        Kind::BoolValue(_) => "a boolean",
        Kind::StructValue(_) => "a struct",
        Kind::ListValue(_) => "a list",
    }
}
