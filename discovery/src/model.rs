//! The registry model: services with ports and endpoints, independent of where
//! they were discovered.

use std::collections::BTreeMap;
use std::sync::Arc;

mod build;
mod protocol;
mod supplied;

pub use build::CLUSTER_DOMAIN;
pub use supplied::ServiceEndpoints;

/// Application protocol of a port, from `appProtocol`, the port name prefix
/// (`http`, `http-web`, `grpc`, `tcp-db`, ...) or a ServiceEntry's `protocol`,
/// as Istio derives it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Protocol {
    Http,
    Http2,
    Grpc,
    Tcp,
    Tls,
    Https,
    /// Nothing said; Istio would sniff, Bowline treats it as TCP.
    Unknown,
}

impl Protocol {
    /// Whether the sidecar routes this port with the HTTP connection manager.
    pub fn is_http(self) -> bool {
        matches!(self, Protocol::Http | Protocol::Http2 | Protocol::Grpc)
    }
}

/// One service port as clients address it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Port {
    pub name: String,
    pub number: u16,
    pub protocol: Protocol,
}

/// One address behind a service port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    /// IP address, or a DNS name for DNS-resolved ServiceEntries.
    pub address: String,
    /// Service port number -> port on this endpoint.
    pub ports: BTreeMap<u16, u16>,
    pub labels: BTreeMap<String, String>,
    pub service_account: Option<String>,
    /// `region/zone/subzone`, possibly empty.
    pub locality: String,
    /// Load-balancing weight, at least 1.
    pub weight: u32,
    /// The workload (namespace, name) this endpoint came from, if any: a
    /// WorkloadEntry, or a Pod for endpoints a Kubernetes source supplies.
    /// An endpoint with a workload is a mesh workload: clients reach it
    /// over mutual TLS unless its `security.istio.io/tlsMode` label says
    /// otherwise.
    pub workload: Option<(String, String)>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// Endpoints are IP addresses, served over EDS.
    Static,
    /// Endpoints are host names that Envoy resolves.
    Dns,
    /// No endpoints: traffic goes to the address the caller asked for.
    Passthrough,
}

/// A service: a host name, ports, and the endpoints behind them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceModel {
    /// Fully qualified: `name.namespace.svc.cluster.local` for Services, the
    /// host as written for ServiceEntries.
    pub hostname: String,
    pub namespace: String,
    /// Short name for Kubernetes Services (`reviews`); `None` for ServiceEntry hosts.
    pub name: Option<String>,
    pub ports: Vec<Port>,
    pub endpoints: Vec<Endpoint>,
    pub resolution: Resolution,
    pub mesh_external: bool,
    /// Namespaces that see the service, as a ServiceEntry's `exportTo` or a
    /// Service's `networking.istio.io/exportTo` annotation says: `*`, `.`,
    /// `~` or names; empty means all.
    pub export_to: Vec<String>,
    /// The virtual IPs clients dial for the service: a Service's
    /// `clusterIP`, a ServiceEntry's single-IP `addresses`. A captured
    /// sidecar matches outbound connections on them.
    pub addresses: Vec<std::net::IpAddr>,
    /// The object that defines the service (the Service, or the
    /// ServiceEntry that first named the host), for telling operators
    /// where a piece of config came from.
    pub object: Option<policy::ObjectKey>,
}

/// Every service of the mesh, by host name. Immutable once built.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Registry {
    pub services: BTreeMap<String, Arc<ServiceModel>>,
}
