//! The bootstrap of a proxyless gRPC client: the JSON gRPC's xDS client
//! reads from the file `GRPC_XDS_BOOTSTRAP` names (gRFC A27), carrying the
//! node metadata of this contract.
//!
//! ```text
//! NodeMetadata (generator grpc) ──► GrpcBootstrap::to_json ──► bootstrap.json
//!   gRPC client: xds:///HOST:PORT ──► ADS to server_uri, node = {id, cluster, metadata}
//!   calls over mutual TLS (gRFC A29): certificate_providers.default (file_watcher)
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
    /// The certificate provider `default` (gRFC A29, a `file_watcher` on
    /// these files, as Istio's agent writes it) that clusters with
    /// ISTIO_MUTUAL take the client's certificate and the roots from; the
    /// application dials with xDS channel credentials. Usually the same
    /// files as `tls`.
    pub certificate_provider: Option<GrpcTls>,
}

/// How often gRPC's `file_watcher` reads the certificate files again; the
/// agent renews at half a lifetime, so minutes are early enough.
const CERTIFICATE_REFRESH: &str = "60s";

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
        let mut bootstrap = json!({
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
        });
        if let Some(files) = &self.certificate_provider {
            bootstrap["certificate_providers"] = json!({
                crate::DEFAULT_SECRET: {
                    "plugin_name": "file_watcher",
                    "config": {
                        "certificate_file": files.certificate_file,
                        "private_key_file": files.private_key_file,
                        "ca_certificate_file": files.ca_certificate_file,
                        "refresh_interval": CERTIFICATE_REFRESH,
                    },
                },
            });
        }
        bootstrap
    }
}
