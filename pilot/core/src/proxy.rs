//! A connected sidecar (or proxyless gRPC client) as the compiler sees it: its node id and the
//! metadata it declared.
//!
//! The metadata, its keys and how they are written and read are the
//! contract with the agent, and live once, in `pilot-node`.

use std::net::SocketAddr;

use envoy_types::pb::envoy::config::core::v3::Node;
pub use pilot_node::{
    DEFAULT_ADMIN_PORT, DEFAULT_OUTBOUND_PORT, Generator, NodeError, NodeMetadata, meta,
};

/// A connected sidecar, as the compiler sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxy {
    /// Envoy's node id: `sidecar~ADDRESS~WORKLOAD.NAMESPACE~NAMESPACE.svc.cluster.local`.
    pub id: String,
    /// What the sidecar declared about its workload.
    pub metadata: NodeMetadata,
}

impl Proxy {
    /// The sidecar the agent starts for `metadata`, with the node id the agent gives it.
    pub fn new(metadata: NodeMetadata) -> Proxy {
        Proxy {
            id: metadata.node_id(),
            metadata,
        }
    }

    /// A workload `client` of `namespace` at `address`, with `labels` and no
    /// application ports: the proxy unit tests compile for.
    #[cfg(test)]
    pub(crate) fn client(
        namespace: &str,
        address: std::net::IpAddr,
        labels: &[(&str, &str)],
    ) -> Proxy {
        let mut metadata = NodeMetadata::new(namespace, "client", address);
        metadata.labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Proxy::new(metadata)
    }

    /// Where inbound traffic for `port` goes: the declared application address.
    pub fn app_for(&self, port: u16) -> Option<SocketAddr> {
        self.metadata.app_for(port)
    }
}

/// The proxy of a stream, from the node of its first request.
impl TryFrom<&Node> for Proxy {
    type Error = NodeError;

    fn try_from(node: &Node) -> Result<Self, NodeError> {
        Ok(Proxy {
            metadata: NodeMetadata::from_node(node)?,
            id: node.id.clone(),
        })
    }
}
