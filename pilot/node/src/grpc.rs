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
    /// xDS over mutual TLS (gRFC A65 `tls` channel credentials): the files
    /// the client reads its certificate, key and the CA's roots from.
    /// `None`: plaintext (the control plane's `--xds-addr`).
    pub tls: Option<GrpcTls>,
}

/// The files of a proxyless client's mutual TLS to the control plane.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GrpcTls {
    /// The CA's roots (PEM).
    pub ca_certificate_file: String,
    /// The workload certificate chain, the leaf first (PEM).
    pub certificate_file: String,
    /// Its private key (PEM).
    pub private_key_file: String,
}

impl GrpcBootstrap {
    /// The bootstrap JSON: one xDS server speaking xDS v3, over mutual TLS
    /// or plaintext, and the node with its Istio-style id, cluster and
    /// metadata.
    pub fn to_json(&self) -> Json {
        let creds = match &self.tls {
            None => json!({"type": "insecure"}),
            Some(tls) => json!({
                "type": "tls",
                "config": {
                    "ca_certificate_file": tls.ca_certificate_file,
                    "certificate_file": tls.certificate_file,
                    "private_key_file": tls.private_key_file,
                },
            }),
        };
        json!({
            "xds_servers": [{
                "server_uri": self.server_uri,
                "channel_creds": [creds],
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
