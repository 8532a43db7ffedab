//! The bootstrap of a proxyless gRPC client: the JSON gRPC's xDS client
//! reads from the file `GRPC_XDS_BOOTSTRAP` names (gRFC A27), carrying the
//! node metadata of this contract.
//!
//! ```text
//! NodeMetadata (generator grpc) ──► GrpcBootstrap::to_json ──► bootstrap.json
//!   gRPC client: xds:///HOST:PORT ──► ADS to server_uri, node = {id, cluster, metadata}
//! ```

use serde_json::{Value as Json, json};

use crate::NodeMetadata;

/// What a proxyless gRPC client's bootstrap says: the control plane to ask
/// and the node to ask as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcBootstrap {
    /// The control plane's ADS address as a gRPC target, `HOST:PORT`.
    pub server_uri: String,
    pub node: NodeMetadata,
}

impl GrpcBootstrap {
    /// The bootstrap JSON: one xDS server over plaintext speaking xDS v3,
    /// and the node with its Istio-style id, cluster and metadata.
    pub fn to_json(&self) -> Json {
        json!({
            "xds_servers": [{
                "server_uri": self.server_uri,
                "channel_creds": [{"type": "insecure"}],
                "server_features": ["xds_v3"],
            }],
            "node": {
                "id": self.node.node_id(),
                "cluster": self.node.cluster(),
                "metadata": self.node.to_json(),
            },
        })
    }
}
