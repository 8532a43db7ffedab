//! A Service's endpoints from its EndpointSlices, with identity, labels and
//! locality from the Pods and Nodes behind them.
//!
//! ```text
//! EndpointSlices labelled kubernetes.io/service-name=<svc> (by slice name)
//!   └─ each endpoint: addresses[0], conditions, targetRef ──► Pod (labels, service account, node)
//!                                                               └─► Node (region, zone, subzone)
//!   ──► one Endpoint per address, merged across slices
//! ```
//!
//! - **Conditions.** An endpoint takes traffic when it is `ready` (absent
//!   means ready, as the API says) and not `terminating`, and its pod, if
//!   known, is not being deleted. A terminating endpoint, even one still
//!   `serving`, is left out: Envoy then sends it no new requests, while
//!   the requests already in flight on its connections finish (Envoy
//!   drains a host that leaves EDS rather than cutting it). `serving`
//!   alone never adds an endpoint. The controller marks every endpoint of
//!   a Service with `publishNotReadyAddresses` ready, so they all take
//!   traffic, but for those terminating.
//! - **Duplicates.** The controller may list an address in two slices
//!   while it moves it. Slices are read in name order; one address is one
//!   endpoint, taken from a copy that takes traffic if any does, with the
//!   ports of every such copy.
//! - **Address types.** IPv4 slices only. IPv6 and FQDN slices are left
//!   out with a warning on the Service. Of an endpoint's addresses the
//!   first is used, as kube-proxy does.
//! - **Ports.** A Service port is matched to the slice port of the same
//!   name (both empty for a Service's single unnamed port), whose number
//!   the controller has already resolved, named `targetPort`s included.
//!   Where a slice port carries no number, the Service's `targetPort`
//!   decides: a number as is, a name through the pod's TCP
//!   `containerPorts`, none as the Service port. A Service port with no
//!   matching slice port is not served by that slice's endpoints; an
//!   endpoint that serves none is left out.
//! - **Pods.** The endpoint's `targetRef` (kind `Pod`) names its pod; an
//!   endpoint without one is joined to the one pod of the slice's
//!   namespace with that IP, when there is exactly one (host-network pods
//!   share their node's IP and are never joined by it). The endpoint's
//!   labels and service account are the pod's, and its workload is
//!   (namespace, pod name). An endpoint whose `targetRef` names a pod the
//!   store does not hold yet is left out until the pod arrives, so that it
//!   never serves with the wrong labels or identity. An endpoint with no
//!   pod is served without labels, identity or sidecar.
//! - **Sidecars.** A pod's `security.istio.io/tlsMode` label passes
//!   through; Istio's injector sets it to `istio` on pods that get a
//!   sidecar. A pod without it has no sidecar as far as the mesh knows,
//!   so its endpoint carries `security.istio.io/tlsMode: disabled` and
//!   clients reach it in plaintext, as Istio's auto mTLS does.
//! - **Locality** is `region/zone/subzone` from the node's
//!   `topology.kubernetes.io/region` and `topology.kubernetes.io/zone`
//!   labels (the older `failure-domain.beta.kubernetes.io/*` ones where
//!   those are missing) and `topology.istio.io/subzone`; the endpoint's
//!   own `zone` stands in for the zone when the node is unknown. Trailing
//!   empty parts are dropped.

use std::collections::{BTreeMap, HashMap};

use discovery::Endpoint;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as disc;
use policy::service::{Service, TargetPort};
use policy::{Diagnostic, FieldPath, Kind, ObjectKey};

use super::Cluster;
use super::service::is_tcp;

/// The label joining an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
pub const REGION_LABEL: &str = "topology.kubernetes.io/region";
pub const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
pub const SUBZONE_LABEL: &str = "topology.istio.io/subzone";
const LEGACY_REGION_LABEL: &str = "failure-domain.beta.kubernetes.io/region";
const LEGACY_ZONE_LABEL: &str = "failure-domain.beta.kubernetes.io/zone";
/// Istio's label saying whether a workload's sidecar takes mutual TLS.
pub const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
/// Its value for a workload without a sidecar.
pub const TLS_MODE_DISABLED: &str = "disabled";

/// The cluster's objects, indexed for the joins.
#[derive(Debug)]
pub(super) struct Index<'a> {
    /// (namespace, service name) -> its slices, by slice name.
    slices: HashMap<(&'a str, &'a str), Vec<&'a disc::EndpointSlice>>,
    pods: HashMap<(&'a str, &'a str), &'a core::Pod>,
    /// (namespace, IP) -> the pods (not on the host network) with that IP.
    pods_by_ip: HashMap<(&'a str, &'a str), Vec<&'a core::Pod>>,
    /// Node name -> `region/zone/subzone` parts.
    nodes: HashMap<&'a str, [&'a str; 3]>,
}

/// What a slice port says about a Service port's endpoint port.
#[derive(Clone, Copy, Debug)]
enum SlicePort<'a> {
    Number(u16),
    /// The slice port has no number: the Service's target port decides.
    Target(Option<&'a TargetPort>),
}

impl<'a> Index<'a> {
    pub(super) fn new(cluster: &'a Cluster) -> Self {
        let mut slices: HashMap<_, Vec<&disc::EndpointSlice>> = HashMap::new();
        for slice in &cluster.endpoint_slices {
            let meta = &slice.metadata;
            let (Some(ns), Some(service)) = (
                meta.namespace.as_deref(),
                meta.labels.as_ref().and_then(|l| l.get(SERVICE_NAME_LABEL)),
            ) else {
                continue;
            };
            slices
                .entry((ns, service.as_str()))
                .or_default()
                .push(slice);
        }
        for list in slices.values_mut() {
            list.sort_by(|a, b| a.metadata.name.cmp(&b.metadata.name));
        }
        let mut pods = HashMap::new();
        let mut pods_by_ip: HashMap<_, Vec<&core::Pod>> = HashMap::new();
        for pod in &cluster.pods {
            let (Some(ns), Some(name)) = (
                pod.metadata.namespace.as_deref(),
                pod.metadata.name.as_deref(),
            ) else {
                continue;
            };
            pods.insert((ns, name), pod.as_ref());
            let host_network = pod
                .spec
                .as_ref()
                .and_then(|s| s.host_network)
                .unwrap_or(false);
            if host_network {
                continue;
            }
            for ip in pod_ips(pod) {
                let list = pods_by_ip.entry((ns, ip)).or_default();
                if !list.iter().any(|p| std::ptr::eq(*p, pod.as_ref())) {
                    list.push(pod);
                }
            }
        }
        let nodes = cluster
            .nodes
            .iter()
            .filter_map(|node| Some((node.metadata.name.as_deref()?, node_locality(node))))
            .collect();
        Index {
            slices,
            pods,
            pods_by_ip,
            nodes,
        }
    }

    /// The endpoints of `service`, sorted by address.
    pub(super) fn endpoints_of(
        &self,
        service: &Service,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Vec<Endpoint> {
        let namespace = service.meta.namespace.as_str();
        let slices = self
            .slices
            .get(&(namespace, service.meta.name.as_str()))
            .map_or(&[][..], Vec::as_slice);
        let mut found: BTreeMap<String, Found> = BTreeMap::new();
        for slice in slices {
            if slice.address_type != "IPv4" {
                diagnostics.push(
                    Diagnostic::warning(
                        FieldPath::root(),
                        format!(
                            "EndpointSlice {}: addressType {} is not supported; its endpoints are ignored",
                            slice.metadata.name.as_deref().unwrap_or_default(),
                            slice.address_type
                        ),
                    )
                    .on(ObjectKey {
                        kind: Kind::Service,
                        namespace: namespace.to_string(),
                        name: service.meta.name.clone(),
                    }),
                );
                continue;
            }
            let ports = slice_ports(service, slice);
            if ports.is_empty() {
                continue;
            }
            for endpoint in slice.endpoints.iter().flatten() {
                let Some(next) = self.endpoint(namespace, endpoint, &ports) else {
                    continue;
                };
                match found.get_mut(&next.endpoint.address) {
                    None => {
                        found.insert(next.endpoint.address.clone(), next);
                    }
                    Some(current) if current.serves && next.serves => {
                        for (port, target) in next.endpoint.ports {
                            current.endpoint.ports.entry(port).or_insert(target);
                        }
                    }
                    Some(current) if next.serves => *current = next,
                    Some(_) => {}
                }
            }
        }
        found
            .into_values()
            .filter(|f| f.serves)
            .map(|f| f.endpoint)
            .collect()
    }

    /// One slice endpoint, or `None` when it has no IPv4 address, serves no
    /// port, or names a pod not in the store yet.
    fn endpoint(
        &self,
        namespace: &str,
        endpoint: &disc::Endpoint,
        ports: &[(u16, SlicePort<'_>)],
    ) -> Option<Found> {
        let address = endpoint.addresses.first()?;
        let pod = match &endpoint.target_ref {
            Some(target) if target.kind.as_deref() == Some("Pod") => {
                let ns = target.namespace.as_deref().unwrap_or(namespace);
                Some(*self.pods.get(&(ns, target.name.as_deref()?))?)
            }
            Some(_) => None,
            None => match self.pods_by_ip.get(&(namespace, address.as_str())) {
                Some(list) if list.len() == 1 => Some(list[0]),
                _ => None,
            },
        };
        let ports: BTreeMap<u16, u16> = ports
            .iter()
            .filter_map(|(port, slice_port)| {
                let target = match slice_port {
                    SlicePort::Number(n) => *n,
                    SlicePort::Target(None) => *port,
                    SlicePort::Target(Some(TargetPort::Number(n))) => *n,
                    SlicePort::Target(Some(TargetPort::Name(name))) => container_port(pod?, name)?,
                };
                Some((*port, target))
            })
            .collect();
        if ports.is_empty() {
            return None;
        }
        let conditions = endpoint.conditions.as_ref();
        let ready = conditions.and_then(|c| c.ready).unwrap_or(true);
        let terminating = conditions.and_then(|c| c.terminating).unwrap_or(false);
        let deleted = pod.is_some_and(|p| p.metadata.deletion_timestamp.is_some());
        let serves = ready && !terminating && !deleted;

        let node_name = endpoint.node_name.as_deref().or_else(|| {
            pod.and_then(|p| p.spec.as_ref())
                .and_then(|s| s.node_name.as_deref())
        });
        let node = node_name.and_then(|n| self.nodes.get(n));
        let [region, zone, subzone] = node.copied().unwrap_or_default();
        let zone = match zone {
            "" => endpoint.zone.as_deref().unwrap_or_default(),
            zone => zone,
        };
        let (labels, service_account, workload) = match pod {
            Some(pod) => {
                let mut labels = pod.metadata.labels.clone().unwrap_or_default();
                labels
                    .entry(TLS_MODE_LABEL.to_string())
                    .or_insert_with(|| TLS_MODE_DISABLED.to_string());
                let account = pod
                    .spec
                    .as_ref()
                    .and_then(|s| s.service_account_name.clone())
                    .filter(|a| !a.is_empty());
                let workload = pod
                    .metadata
                    .namespace
                    .clone()
                    .zip(pod.metadata.name.clone());
                (labels, account, workload)
            }
            None => (BTreeMap::new(), None, None),
        };
        Some(Found {
            serves,
            endpoint: Endpoint {
                address: address.clone(),
                ports,
                labels,
                service_account,
                locality: locality(region, zone, subzone),
                weight: 1,
                workload,
            },
        })
    }
}

/// A slice endpoint, and whether it takes traffic.
#[derive(Debug)]
struct Found {
    serves: bool,
    endpoint: Endpoint,
}

/// Each Service port the slice serves, with what its slice port says.
fn slice_ports<'s>(service: &'s Service, slice: &disc::EndpointSlice) -> Vec<(u16, SlicePort<'s>)> {
    let slice_ports = slice.ports.as_deref().unwrap_or_default();
    service
        .spec
        .ports
        .iter()
        .filter_map(|port| {
            let name = port.name.as_deref().unwrap_or_default();
            let matched = slice_ports.iter().find(|p| {
                p.name.as_deref().unwrap_or_default() == name && is_tcp(p.protocol.as_deref())
            })?;
            let what = match matched.port.map(u16::try_from) {
                Some(Ok(n)) if n != 0 => SlicePort::Number(n),
                Some(_) => return None,
                None => SlicePort::Target(port.target_port.as_ref()),
            };
            Some((port.port, what))
        })
        .collect()
}

/// The number of the pod's TCP container port named `name`.
fn container_port(pod: &core::Pod, name: &str) -> Option<u16> {
    let spec = pod.spec.as_ref()?;
    spec.containers
        .iter()
        .flat_map(|c| c.ports.iter().flatten())
        .find(|p| p.name.as_deref() == Some(name) && is_tcp(p.protocol.as_deref()))
        .and_then(|p| u16::try_from(p.container_port).ok())
}

/// The pod's IPs, the primary first.
fn pod_ips(pod: &core::Pod) -> impl Iterator<Item = &str> {
    let status = pod.status.as_ref();
    let primary = status.and_then(|s| s.pod_ip.as_deref());
    let all = status
        .and_then(|s| s.pod_ips.as_ref())
        .into_iter()
        .flatten()
        .map(|ip| ip.ip.as_str());
    primary.into_iter().chain(all).filter(|ip| !ip.is_empty())
}

fn node_locality(node: &core::Node) -> [&str; 3] {
    let labels = node.metadata.labels.as_ref();
    let label = |names: &[&str]| {
        names
            .iter()
            .find_map(|n| labels.and_then(|l| l.get(*n)))
            .map_or("", String::as_str)
    };
    [
        label(&[REGION_LABEL, LEGACY_REGION_LABEL]),
        label(&[ZONE_LABEL, LEGACY_ZONE_LABEL]),
        label(&[SUBZONE_LABEL]),
    ]
}

/// `region/zone/subzone` without its trailing empty parts.
fn locality(region: &str, zone: &str, subzone: &str) -> String {
    format!("{region}/{zone}/{subzone}")
        .trim_end_matches('/')
        .to_string()
}
