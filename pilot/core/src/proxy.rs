//! The identity a sidecar declares in its Envoy node metadata, and how the
//! control plane reads it back.
//!
//! The agent (`bowline proxy`) writes these keys into the bootstrap; the xDS
//! server parses them from the first request of a stream. They are a public
//! contract between the two, so they live in one place.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

/// Node metadata keys.
pub mod meta {
    pub const NAMESPACE: &str = "namespace";
    pub const WORKLOAD: &str = "workload";
    pub const LABELS: &str = "labels";
    pub const SERVICE_ACCOUNT: &str = "service_account";
    /// The workload's own IP address; the sidecar's listeners bind to it.
    pub const ADDRESS: &str = "address";
    /// Where the application listens, `HOST:PORT`, for inbound ports not in `app_ports`.
    pub const APP_ADDRESS: &str = "app_address";
    /// Inbound port -> application `HOST:PORT`.
    pub const APP_PORTS: &str = "app_ports";
    /// Port of the outbound listener (15001 unless set).
    pub const OUTBOUND_PORT: &str = "outbound_port";
}

/// Port of the outbound listener when the node does not set one.
pub const DEFAULT_OUTBOUND_PORT: u16 = 15001;
/// Port of Envoy's admin interface on the workload's address.
pub const DEFAULT_ADMIN_PORT: u16 = 15000;

/// A connected sidecar, as the compiler sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Proxy {
    /// Envoy's node id: `sidecar~ADDRESS~WORKLOAD.NAMESPACE~NAMESPACE.svc.cluster.local`.
    pub id: String,
    pub namespace: String,
    pub workload: String,
    pub address: IpAddr,
    pub labels: BTreeMap<String, String>,
    pub service_account: Option<String>,
    pub app_address: Option<SocketAddr>,
    pub app_ports: BTreeMap<u16, SocketAddr>,
    pub outbound_port: u16,
}

impl Proxy {
    /// The node id the agent gives a workload, in Istio's format.
    pub fn node_id(address: IpAddr, workload: &str, namespace: &str) -> String {
        format!("sidecar~{address}~{workload}.{namespace}~{namespace}.svc.cluster.local")
    }

    /// A workload `client` of `namespace` at `address`, with `labels` and no
    /// application ports: the proxy unit tests compile for.
    #[cfg(test)]
    pub(crate) fn client(namespace: &str, address: IpAddr, labels: &[(&str, &str)]) -> Proxy {
        Proxy {
            id: Proxy::node_id(address, "client", namespace),
            namespace: namespace.into(),
            workload: "client".into(),
            address,
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            service_account: None,
            app_address: None,
            app_ports: BTreeMap::new(),
            outbound_port: DEFAULT_OUTBOUND_PORT,
        }
    }

    /// Where inbound traffic for `port` goes: the declared application address.
    pub fn app_for(&self, port: u16) -> Option<SocketAddr> {
        self.app_ports.get(&port).copied().or(self.app_address)
    }
}
