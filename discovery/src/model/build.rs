//! Building the registry from config objects.
//!
//! ```text
//! Service ──► name.namespace.svc.cluster.local ◄── WorkloadEntries its selector matches
//!                                               ◄── endpoints a source supplies (ServiceEndpoints)
//! ServiceEntry ──► one service per host ◄── its endpoints (or the host itself, for DNS)
//! ```
//!
//! Objects are taken in key order (kind, namespace, name), so when two claim
//! the same host the first wins, every time.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use policy::networking::{self, Location, ServiceEntry, ServiceEntryEndpoint, WorkloadEntry};
use policy::service::{Service, TargetPort};
use policy::{Diagnostic, FieldPath, Object, ObjectKey};

use super::{Endpoint, Port, Protocol, Registry, Resolution, ServiceEndpoints, ServiceModel};

/// The suffix Kubernetes Services get in their fully qualified host name.
pub const CLUSTER_DOMAIN: &str = "svc.cluster.local";

impl Registry {
    /// Builds the registry from config objects, ignoring kinds that do not
    /// define services or workloads. The diagnostics are warnings about hosts
    /// that two objects define: the object that lost is named.
    pub fn build<'a>(objects: impl IntoIterator<Item = &'a Object>) -> (Registry, Vec<Diagnostic>) {
        Registry::build_with(objects, &ServiceEndpoints::default())
    }

    /// [`Registry::build`], with the endpoints a source supplies for its
    /// Services (a Kubernetes source's EndpointSlices) merged with those
    /// their selectors pick from the WorkloadEntries.
    pub fn build_with<'a>(
        objects: impl IntoIterator<Item = &'a Object>,
        supplied: &ServiceEndpoints,
    ) -> (Registry, Vec<Diagnostic>) {
        let mut objects: Vec<(ObjectKey, &Object)> =
            objects.into_iter().map(|o| (o.key(), o)).collect();
        objects.sort_by(|a, b| a.0.cmp(&b.0));
        let workloads = Workloads::index(objects.iter().filter_map(|(_, o)| match o {
            Object::WorkloadEntry(w) => Some(w),
            _ => None,
        }));

        let mut claims = Claims::default();
        for (key, object) in &objects {
            match object {
                Object::Service(svc) => {
                    let model = service_model(svc, &workloads, supplied);
                    claims.claim(model, key, FieldPath::new("metadata.name"));
                }
                Object::ServiceEntry(se) => {
                    for (i, host) in se.spec.hosts.iter().enumerate() {
                        let model = service_entry_model(se, host);
                        claims.claim(model, key, FieldPath::new("spec.hosts").index(i));
                    }
                }
                _ => {}
            }
        }
        (
            Registry {
                services: claims.services,
            },
            claims.diagnostics,
        )
    }

    /// This registry with the endpoints of `services` selected again from
    /// `workloads` (every WorkloadEntry of those services' namespaces),
    /// beside those `supplied` for them (the same as the build's):
    /// what a change of WorkloadEntries alone gives, the rest untouched. A
    /// Service that does not hold its host here (another object claimed it
    /// first) is left out, as [`Registry::build`] leaves it out; a model
    /// that comes out the same keeps its `Arc`.
    pub fn with_reselected<'a>(
        &self,
        services: impl IntoIterator<Item = &'a Service>,
        workloads: impl IntoIterator<Item = &'a WorkloadEntry>,
        supplied: &ServiceEndpoints,
    ) -> Registry {
        let workloads = Workloads::index(workloads);
        let mut next = self.clone();
        for svc in services {
            let model = service_model(svc, &workloads, supplied);
            let Some(current) = next.services.get_mut(&model.hostname) else {
                continue;
            };
            let holds = current.name.as_deref() == Some(svc.meta.name.as_str())
                && current.namespace == svc.meta.namespace;
            if holds && **current != model {
                *current = Arc::new(model);
            }
        }
        next
    }

    /// The service with this fully qualified host name.
    pub fn get(&self, hostname: &str) -> Option<&Arc<ServiceModel>> {
        self.services.get(hostname)
    }
}

/// WorkloadEntries by (namespace, label key, label value), in key order
/// within each list: a selector is matched against the entries carrying its
/// rarest label only, not against every entry of the mesh.
#[derive(Debug, Default)]
struct Workloads<'a> {
    by_label: HashMap<(&'a str, &'a str, &'a str), Vec<&'a WorkloadEntry>>,
}

impl<'a> Workloads<'a> {
    fn index(entries: impl IntoIterator<Item = &'a WorkloadEntry>) -> Self {
        let mut by_label: HashMap<_, Vec<_>> = HashMap::new();
        for w in entries {
            for (k, v) in &w.spec.labels {
                by_label
                    .entry((w.meta.namespace.as_str(), k.as_str(), v.as_str()))
                    .or_default()
                    .push(w);
            }
        }
        Workloads { by_label }
    }

    /// The entries of `namespace` whose labels include all of `selector`
    /// (none for an empty selector), in key order.
    fn selected(
        &self,
        namespace: &str,
        selector: &BTreeMap<String, String>,
    ) -> Vec<&'a WorkloadEntry> {
        let rarest = selector
            .iter()
            .map(|(k, v)| {
                self.by_label
                    .get(&(namespace, k.as_str(), v.as_str()))
                    .map_or(&[][..], Vec::as_slice)
            })
            .min_by_key(|list| list.len())
            .unwrap_or(&[]);
        rarest
            .iter()
            .copied()
            .filter(|w| {
                selector
                    .iter()
                    .all(|(k, v)| w.spec.labels.get(k) == Some(v))
            })
            .collect()
    }
}

/// Who holds each host so far.
#[derive(Debug, Default)]
struct Claims {
    services: BTreeMap<String, Arc<ServiceModel>>,
    owners: BTreeMap<String, ObjectKey>,
    diagnostics: Vec<Diagnostic>,
}

impl Claims {
    fn claim(&mut self, model: ServiceModel, key: &ObjectKey, path: FieldPath) {
        if let Some(owner) = self.owners.get(&model.hostname) {
            self.diagnostics.push(
                Diagnostic::warning(
                    path,
                    format!(
                        "host {} is already defined by {owner}; this definition is ignored",
                        model.hostname
                    ),
                )
                .on(key.clone()),
            );
            return;
        }
        self.owners.insert(model.hostname.clone(), key.clone());
        self.services
            .insert(model.hostname.clone(), Arc::new(model));
    }
}

/// The annotation by which a Kubernetes Service limits the namespaces that see it.
const EXPORT_TO_ANNOTATION: &str = "networking.istio.io/exportTo";

/// A Service's `networking.istio.io/exportTo` annotation: namespaces (or `.`,
/// `*`, `~`) separated by commas, as Istio reads it; absent or empty: all.
fn service_export_to(svc: &Service) -> Vec<String> {
    svc.meta
        .annotations
        .get(EXPORT_TO_ANNOTATION)
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|ns| !ns.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn service_model(
    svc: &Service,
    workloads: &Workloads<'_>,
    supplied: &ServiceEndpoints,
) -> ServiceModel {
    let meta = &svc.meta;
    let spec = &svc.spec;
    let ports = spec
        .ports
        .iter()
        .map(|p| Port {
            name: p.name.clone().unwrap_or_default(),
            number: p.port,
            protocol: Protocol::of_service_port(p.name.as_deref(), p.app_protocol.as_deref()),
        })
        .collect();
    let selected = workloads.selected(&meta.namespace, &spec.selector);
    let mut endpoints: Vec<Endpoint> = supplied.get(&meta.namespace, &meta.name).to_vec();
    endpoints.extend(
        selected
            .into_iter()
            .filter_map(|w| workload_endpoint(svc, w)),
    );
    sort_endpoints(&mut endpoints);
    ServiceModel {
        hostname: format!("{}.{}.{CLUSTER_DOMAIN}", meta.name, meta.namespace),
        namespace: meta.namespace.clone(),
        name: Some(meta.name.clone()),
        ports,
        endpoints,
        resolution: Resolution::Static,
        mesh_external: false,
        export_to: service_export_to(svc),
        addresses: spec.cluster_ip.into_iter().collect(),
        object: Some(policy::ObjectKey {
            kind: policy::Kind::Service,
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
        }),
    }
}

/// The endpoint a WorkloadEntry gives a Service; `None` when it serves none
/// of the service's ports.
fn workload_endpoint(svc: &Service, w: &WorkloadEntry) -> Option<Endpoint> {
    let mut ports = BTreeMap::new();
    for port in &svc.spec.ports {
        let by_name = port
            .name
            .as_ref()
            .and_then(|n| w.spec.ports.get(n))
            .copied();
        let target = match (&port.target_port, by_name) {
            (_, Some(number)) => Some(number),
            (Some(TargetPort::Number(n)), None) => Some(*n),
            (Some(TargetPort::Name(name)), None) => w.spec.ports.get(name).copied(),
            (None, None) => Some(port.port),
        };
        if let Some(target) = target {
            ports.insert(port.port, target);
        }
    }
    if ports.is_empty() {
        return None;
    }
    Some(Endpoint {
        address: w.spec.address.clone(),
        ports,
        labels: w.spec.labels.clone(),
        service_account: w.spec.service_account.clone(),
        locality: w.spec.locality.clone().unwrap_or_default(),
        weight: weight(w.spec.weight),
        workload: Some((w.meta.namespace.clone(), w.meta.name.clone())),
    })
}

fn service_entry_model(se: &ServiceEntry, host: &str) -> ServiceModel {
    let spec = &se.spec;
    let ports = spec
        .ports
        .iter()
        .map(|p| Port {
            name: p.name.clone(),
            number: p.number,
            protocol: p
                .protocol
                .as_deref()
                .map_or(Protocol::Unknown, Protocol::from_name),
        })
        .collect();
    let resolution = match spec.resolution {
        networking::Resolution::Static => Resolution::Static,
        networking::Resolution::Dns => Resolution::Dns,
        networking::Resolution::None => Resolution::Passthrough,
    };
    let mut endpoints: Vec<Endpoint> = match resolution {
        Resolution::Passthrough => Vec::new(),
        Resolution::Dns if spec.endpoints.is_empty() => {
            let host_endpoint = ServiceEntryEndpoint {
                address: host.to_string(),
                ..Default::default()
            };
            vec![entry_endpoint(se, &host_endpoint)]
        }
        _ => spec
            .endpoints
            .iter()
            .map(|e| entry_endpoint(se, e))
            .collect(),
    };
    sort_endpoints(&mut endpoints);
    ServiceModel {
        hostname: host.to_string(),
        namespace: se.meta.namespace.clone(),
        name: None,
        ports,
        endpoints,
        resolution,
        mesh_external: spec.location == Location::MeshExternal,
        export_to: spec.export_to.clone(),
        // Single addresses (`10.0.0.1`, `10.0.0.1/32`, `fd00::1/128`); a
        // wider CIDR block is not matched on (validation says so).
        addresses: spec
            .addresses
            .iter()
            .filter_map(|a| {
                let (ip, prefix) = a.split_once('/').unwrap_or((a, ""));
                let ip: std::net::IpAddr = ip.parse().ok()?;
                let full = if ip.is_ipv4() { "32" } else { "128" };
                (prefix.is_empty() || prefix == full).then_some(ip)
            })
            .collect(),
        object: Some(policy::ObjectKey {
            kind: policy::Kind::ServiceEntry,
            namespace: se.meta.namespace.clone(),
            name: se.meta.name.clone(),
        }),
    }
}

/// Endpoint ports: the endpoint's own `ports[name]`, else the port's
/// `targetPort`, else the port number.
fn entry_endpoint(se: &ServiceEntry, e: &ServiceEntryEndpoint) -> Endpoint {
    let ports = se
        .spec
        .ports
        .iter()
        .map(|p| {
            let target = e
                .ports
                .get(&p.name)
                .copied()
                .or(p.target_port)
                .unwrap_or(p.number);
            (p.number, target)
        })
        .collect();
    Endpoint {
        address: e.address.clone(),
        ports,
        labels: e.labels.clone(),
        service_account: e.service_account.clone(),
        locality: e.locality.clone().unwrap_or_default(),
        weight: weight(e.weight),
        workload: None,
    }
}

/// Weights default to 1, and 0 means the default.
fn weight(weight: Option<u32>) -> u32 {
    weight.unwrap_or(1).max(1)
}

fn sort_endpoints(endpoints: &mut [Endpoint]) {
    endpoints.sort_by(|a, b| {
        (&a.address, &a.workload, &a.ports).cmp(&(&b.address, &b.workload, &b.ports))
    });
}

#[cfg(test)]
mod tests;
