//! `networking.istio.io` objects: WorkloadEntry, ServiceEntry, VirtualService and
//! DestinationRule. Field names follow Istio's API; apiVersions v1, v1beta1 and
//! v1alpha3 all decode to these types.

use std::collections::BTreeMap;

use crate::object::ObjectMeta;

/// A workload outside Kubernetes: one address that Services select by labels.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadEntry {
    pub meta: ObjectMeta,
    pub spec: WorkloadEntrySpec,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkloadEntrySpec {
    pub address: String,
    pub labels: BTreeMap<String, String>,
    /// Port name -> port number on this workload; overrides a Service's targetPort.
    pub ports: BTreeMap<String, u16>,
    pub service_account: Option<String>,
    pub locality: Option<String>,
    pub weight: Option<u32>,
}

/// A service the registry does not otherwise know, usually outside the mesh.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceEntry {
    pub meta: ObjectMeta,
    pub spec: ServiceEntrySpec,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceEntrySpec {
    pub hosts: Vec<String>,
    pub ports: Vec<ServiceEntryPort>,
    pub location: Location,
    pub resolution: Resolution,
    pub endpoints: Vec<ServiceEntryEndpoint>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceEntryPort {
    pub number: u16,
    pub name: String,
    /// Upper-cased protocol name (`HTTP`, `TCP`, ...); Istio accepts any case.
    pub protocol: Option<String>,
    pub target_port: Option<u16>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Location {
    #[default]
    MeshExternal,
    MeshInternal,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Resolution {
    #[default]
    None,
    Static,
    Dns,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceEntryEndpoint {
    pub address: String,
    /// Port name -> port number on this endpoint.
    pub ports: BTreeMap<String, u16>,
    pub labels: BTreeMap<String, String>,
    pub locality: Option<String>,
    pub weight: Option<u32>,
    pub service_account: Option<String>,
}

/// Routing rules for traffic addressed to some hosts.
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualService {
    pub meta: ObjectMeta,
    pub spec: VirtualServiceSpec,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct VirtualServiceSpec {
    pub hosts: Vec<String>,
    pub http: Vec<HttpRoute>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpRoute {
    pub name: Option<String>,
    /// Any entry may match; an empty list matches every request.
    pub matches: Vec<HttpMatchRequest>,
    pub route: Vec<HttpRouteDestination>,
}

/// All conditions set in one entry must hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpMatchRequest {
    pub name: Option<String>,
    pub uri: Option<StringMatch>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpRouteDestination {
    pub destination: Destination,
    /// Percent of traffic; `None` when the route has a single destination.
    pub weight: Option<u32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Destination {
    pub host: String,
    pub subset: Option<String>,
    pub port: Option<u16>,
}

/// Policies for traffic to one host once routing has happened.
#[derive(Clone, Debug, PartialEq)]
pub struct DestinationRule {
    pub meta: ObjectMeta,
    pub spec: DestinationRuleSpec,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DestinationRuleSpec {
    pub host: String,
    pub subsets: Vec<Subset>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Subset {
    pub name: String,
    pub labels: BTreeMap<String, String>,
}
