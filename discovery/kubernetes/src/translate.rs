//! The pure half of the Kubernetes source: what the cluster's objects mean
//! in Bowline's registry model.
//!
//! ```text
//! Cluster (every Service, EndpointSlice, Pod, Node, Namespace)
//!   ──► translate ──► Translation ── config_set() ──► ConfigSet (Services + ServiceEndpoints)
//!                                 └─ changed_since(previous) ──► Service keys to build again
//! ```
//!
//! Nothing here talks to the API server: the watchers (`crate::source`)
//! fill a [`Cluster`] from their stores and call [`translate`]; tests build
//! the objects by hand. The translation is done from scratch on every
//! change, so it cannot drift from the stores it reads.
//!
//! Decisions, where Kubernetes and Istio leave room:
//!
//! - **Service types.** ClusterIP, NodePort and LoadBalancer Services are
//!   the same to the mesh: a host `name.namespace.svc.cluster.local` with
//!   statically resolved endpoints. A headless Service (`clusterIP: None`)
//!   is served the same way, load balanced over its ready endpoints: with
//!   explicit proxying the sidecar sees the service's host name, not an
//!   address a client picked, and the endpoints are what gives the pods
//!   behind it their inbound ports. Per-pod host names
//!   (`pod-0.name.namespace.svc.cluster.local`) are not served. An
//!   ExternalName Service is not supported yet: it is left out with a
//!   warning on it.
//! - **Ports.** Only TCP ports are carried (the protocol absent means TCP);
//!   UDP and SCTP ports are left out, as the sidecar does not proxy them.
//!   The application protocol comes from `appProtocol`, else the port
//!   name's prefix, as for every Service (`discovery::Protocol`).
//! - **Endpoints** come from the Service's EndpointSlices
//!   (`discovery.k8s.io/v1`, joined by the `kubernetes.io/service-name`
//!   label); see [`endpoints`] for conditions, duplicates, ports, pods
//!   and locality.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use discovery::ServiceEndpoints;
use discovery::file::ConfigSet;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as disc;
use policy::service::Service;
use policy::{Diagnostic, Kind, Object, ObjectKey};

mod endpoints;
mod service;

pub use endpoints::{
    REGION_LABEL, SERVICE_NAME_LABEL, SUBZONE_LABEL, TLS_MODE_DISABLED, TLS_MODE_LABEL, ZONE_LABEL,
};

/// Every object of the kinds the source watches, as the stores hold them.
#[derive(Clone, Debug, Default)]
pub struct Cluster {
    pub services: Vec<Arc<core::Service>>,
    pub endpoint_slices: Vec<Arc<disc::EndpointSlice>>,
    pub pods: Vec<Arc<core::Pod>>,
    pub nodes: Vec<Arc<core::Node>>,
    pub namespaces: Vec<Arc<core::Namespace>>,
}

/// What the cluster gives the registry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Translation {
    /// The Services, as `policy` Services, sorted by (namespace, name).
    pub services: Vec<Service>,
    /// Each Service's endpoints from its EndpointSlices.
    pub endpoints: ServiceEndpoints,
    /// Each namespace's labels, by name. Nothing reads them yet; Istio
    /// selects by them (injection, discovery selectors).
    pub namespaces: BTreeMap<String, BTreeMap<String, String>>,
    /// Warnings about what was left out and why, on the Service they
    /// concern, sorted.
    pub diagnostics: Vec<Diagnostic>,
}

/// Translates the whole cluster.
pub fn translate(cluster: &Cluster) -> Translation {
    let mut diagnostics = Vec::new();
    let index = endpoints::Index::new(cluster);
    let mut services: Vec<Service> = Vec::new();
    let mut supplied = ServiceEndpoints::new();
    for svc in &cluster.services {
        let Some(service) = service::to_service(svc, &mut diagnostics) else {
            continue;
        };
        let found = index.endpoints_of(&service, &mut diagnostics);
        supplied.insert(&service.meta.namespace, &service.meta.name, found);
        services.push(service);
    }
    services
        .sort_by(|a, b| (&a.meta.namespace, &a.meta.name).cmp(&(&b.meta.namespace, &b.meta.name)));
    let namespaces = cluster
        .namespaces
        .iter()
        .filter_map(|ns| {
            let name = ns.metadata.name.clone()?;
            Some((name, ns.metadata.labels.clone().unwrap_or_default()))
        })
        .collect();
    diagnostics.sort();
    Translation {
        services,
        endpoints: supplied,
        namespaces,
        diagnostics,
    }
}

impl Translation {
    /// The config set a snapshot is built from: the Services as objects in
    /// key order, their endpoints beside them, and the warnings.
    pub fn config_set(&self) -> ConfigSet {
        ConfigSet {
            objects: self
                .services
                .iter()
                .map(|s| Arc::new(Object::Service(s.clone())))
                .collect(),
            diagnostics: self.diagnostics.clone(),
            origins: Arc::default(),
            endpoints: Arc::new(self.endpoints.clone()),
        }
    }

    /// The keys of the Services that appeared, went, or whose definition or
    /// endpoints changed since `previous`: what an incremental snapshot
    /// build must look at again.
    pub fn changed_since(&self, previous: &Translation) -> BTreeSet<ObjectKey> {
        let by_key = |t: &'_ Translation| -> BTreeMap<ObjectKey, Service> {
            t.services
                .iter()
                .map(|s| (service_key(s), s.clone()))
                .collect()
        };
        let (before, after) = (by_key(previous), by_key(self));
        let keys: BTreeSet<&ObjectKey> = before.keys().chain(after.keys()).collect();
        keys.into_iter()
            .filter(|key| {
                before.get(*key) != after.get(*key)
                    || previous.endpoints.get(&key.namespace, &key.name)
                        != self.endpoints.get(&key.namespace, &key.name)
            })
            .cloned()
            .collect()
    }
}

fn service_key(svc: &Service) -> ObjectKey {
    ObjectKey {
        kind: Kind::Service,
        namespace: svc.meta.namespace.clone(),
        name: svc.meta.name.clone(),
    }
}

#[cfg(test)]
mod tests;
