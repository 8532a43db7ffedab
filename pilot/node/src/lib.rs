//! The contract between the sidecar agent and the control plane: who a
//! sidecar says it is, in its Envoy node, and which ADS variant it speaks.
//!
//! ```text
//! agent:  NodeMetadata ──► encode ──► bootstrap node.metadata (JSON) ──► Envoy
//!                                                                          │ first xDS request
//! server: NodeMetadata ◄── decode ◄── Node.metadata (protobuf Struct) ◄────┘
//! ```
//!
//! Both directions live here, beside the keys, so the two sides cannot
//! drift: a round-trip test holds them together. This crate knows Envoy's
//! `Node` message and JSON, nothing of the compiler, the server or the
//! process that runs Envoy; `pilot-agent` and `pilot-core` both depend on it.

mod decode;
mod encode;
mod generator;
mod grpc;
mod mode;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};

pub use decode::{NodeError, Result};
pub use encode::json_to_proto;
pub use generator::{Generator, UnknownGenerator};
pub use grpc::{GrpcBootstrap, GrpcTls};
pub use mode::{Mode, UnknownMode};

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
    /// `"true"` when the bootstrap's `sds-grpc` cluster reaches an agent that
    /// serves the workload's certificate as [`DEFAULT_SECRET`](crate::DEFAULT_SECRET).
    pub const SDS: &str = "sds";
    /// How the pod's traffic reaches the sidecar: `REDIRECT` when the
    /// capture rules (`bowline capture`, iptables) send it there, `NONE`
    /// (or absent) when the application dials the explicit listeners.
    /// Istio's key, with Istio's values.
    pub const INTERCEPTION_MODE: &str = "INTERCEPTION_MODE";
    /// What kind of xDS client the node is (see [`Generator`](crate::Generator)):
    /// absent for an Envoy sidecar, `grpc` for a proxyless gRPC client.
    /// Istio's key, with Istio's values.
    pub const GENERATOR: &str = "GENERATOR";
    /// Istio's keys for the namespace and the labels, which the bootstrap
    /// Istio's agent writes for a proxyless gRPC client carries; read for
    /// proxyless nodes when [`NAMESPACE`] or [`LABELS`] is absent.
    pub const ISTIO_NAMESPACE: &str = "NAMESPACE";
    pub const ISTIO_LABELS: &str = "LABELS";
}

/// The bootstrap cluster on the agent's SDS socket.
pub const SDS_CLUSTER: &str = "sds-grpc";
/// The SDS secret with the workload's own certificate and key, which the
/// agent serves on its socket (istio-agent's name for it).
pub const DEFAULT_SECRET: &str = "default";
/// The SDS secret with the roots workloads trust, which the control plane
/// serves over ADS (istio-agent's name for it).
pub const ROOT_SECRET: &str = "ROOTCA";

/// Port of the outbound listener when the node does not set one.
pub const DEFAULT_OUTBOUND_PORT: u16 = 15001;
/// Port of Envoy's admin interface on the workload's address.
pub const DEFAULT_ADMIN_PORT: u16 = 15000;
/// Where the capture rules send a pod's outbound TCP: the virtual outbound
/// listener's port (15001 is the explicit outbound listener's).
pub const OUTBOUND_CAPTURE_PORT: u16 = 15002;
/// Where the capture rules send a pod's inbound TCP: the virtual inbound
/// listener's port (Istio's).
pub const INBOUND_CAPTURE_PORT: u16 = 15006;
/// The address a captured sidecar's connections to its application leave
/// from (Istio's), which the capture rules let pass, so that they do not
/// loop back into the capture.
pub const INBOUND_PASSTHROUGH_SOURCE: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 6);

/// What a sidecar (or a proxyless gRPC client) declares about its workload
/// in the node metadata.
///
/// A proxyless gRPC client needs to declare only its namespace (and its
/// labels, for Sidecar scopes and `sourceLabels`); its workload name and
/// address come from an Istio-style node id when the metadata leaves them
/// out, and it has no listeners of its own, so the application and
/// outbound ports do not apply to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeMetadata {
    pub namespace: String,
    pub workload: String,
    /// The workload's own address; admin and all listeners bind to it.
    pub address: IpAddr,
    pub labels: BTreeMap<String, String>,
    pub service_account: Option<String>,
    /// Where the application listens for inbound ports not in `app_ports`.
    pub app_address: Option<SocketAddr>,
    /// Inbound port -> where the application listens for it.
    pub app_ports: BTreeMap<u16, SocketAddr>,
    pub outbound_port: u16,
    /// Envoy sidecar or proxyless gRPC client.
    pub generator: Generator,
    /// Whether the agent serves the workload's certificate over SDS (see
    /// [`meta::SDS`]); only then can the sidecar speak mutual TLS.
    pub sds: bool,
    /// Whether the pod's traffic is captured (see [`meta::INTERCEPTION_MODE`]):
    /// then the sidecar gets the virtual outbound and inbound listeners, and
    /// the application listens on the inbound ports itself.
    pub capture: bool,
}

impl NodeMetadata {
    /// Workload `workload` of `namespace` at `address`, with no labels,
    /// service account or application address, and the default outbound port.
    pub fn new(namespace: impl Into<String>, workload: impl Into<String>, address: IpAddr) -> Self {
        NodeMetadata {
            namespace: namespace.into(),
            workload: workload.into(),
            address,
            labels: BTreeMap::new(),
            service_account: None,
            app_address: None,
            app_ports: BTreeMap::new(),
            outbound_port: DEFAULT_OUTBOUND_PORT,
            generator: Generator::Envoy,
            sds: false,
            capture: false,
        }
    }

    /// A proxyless gRPC client `workload` of `namespace` at `address`.
    pub fn grpc(
        namespace: impl Into<String>,
        workload: impl Into<String>,
        address: IpAddr,
    ) -> Self {
        NodeMetadata {
            generator: Generator::Grpc,
            ..NodeMetadata::new(namespace, workload, address)
        }
    }

    /// Whether the node is a proxyless gRPC client.
    pub fn is_proxyless(&self) -> bool {
        self.generator.is_proxyless()
    }

    /// The node id the agent gives this workload.
    pub fn node_id(&self) -> String {
        node_id(self.address, &self.workload, &self.namespace)
    }

    /// The node's `cluster`: `WORKLOAD.NAMESPACE`.
    pub fn cluster(&self) -> String {
        format!("{}.{}", self.workload, self.namespace)
    }

    /// Where inbound traffic for `port` goes: the declared application
    /// address; in capture mode, the workload's own address at that port
    /// unless one is declared.
    pub fn app_for(&self, port: u16) -> Option<SocketAddr> {
        self.app_ports
            .get(&port)
            .copied()
            .or(self.app_address)
            .or_else(|| self.capture.then(|| SocketAddr::new(self.address, port)))
    }
}

/// The node id of a workload, in Istio's format:
/// `sidecar~ADDRESS~WORKLOAD.NAMESPACE~NAMESPACE.svc.cluster.local`.
pub fn node_id(address: IpAddr, workload: &str, namespace: &str) -> String {
    format!("sidecar~{address}~{workload}.{namespace}~{namespace}.svc.cluster.local")
}

/// The address and the workload name in a node id of [`node_id`]'s format,
/// as far as it has them.
pub(crate) fn parse_node_id(id: &str) -> (Option<IpAddr>, Option<&str>) {
    let mut parts = id.split('~');
    let _kind = parts.next();
    let address = parts.next().and_then(|a| a.parse().ok());
    let workload = parts
        .next()
        .and_then(|w| w.split('.').next())
        .filter(|w| !w.is_empty());
    (address, workload)
}
