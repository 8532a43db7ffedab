//! Endpoints a source supplies for Services directly.
//!
//! ```text
//! file source:        Service ──selector──► WorkloadEntries ──► endpoints
//! Kubernetes source:  Service ──selector──► WorkloadEntries ─┐
//!                     EndpointSlices ──► ServiceEndpoints ───┴► endpoints
//! ```
//!
//! A Kubernetes Service's endpoints are not chosen by Bowline: the cluster's
//! EndpointSlice controller picks the pods, resolves named target ports and
//! tracks readiness, and the source reads its result. So the source hands
//! the Service over as the [`policy::service::Service`] it always was, and
//! the endpoints beside it, already in model terms. [`Registry::build_with`]
//! merges the two; the resulting [`ServiceModel`] does not say where an
//! endpoint came from, so nothing downstream can tell the sources apart.
//!
//! [`Registry::build_with`]: super::Registry::build_with
//! [`ServiceModel`]: super::ServiceModel

use std::collections::BTreeMap;

use super::Endpoint;

/// The endpoints a source knows for each Service, by the Service's
/// (namespace, name). A Service's endpoints in the registry are these
/// followed by the WorkloadEntries its selector matches (Istio's
/// Kubernetes registry selects WorkloadEntries too), sorted as the model
/// sorts them. Endpoints of a Service that is not in the config are
/// ignored, as is a Service's entry when another object holds its host.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceEndpoints {
    by_service: BTreeMap<(String, String), Vec<Endpoint>>,
}

impl ServiceEndpoints {
    pub fn new() -> Self {
        ServiceEndpoints::default()
    }

    /// Sets the endpoints of Service `namespace/name`, replacing any it had.
    /// An empty list removes the entry.
    pub fn insert(
        &mut self,
        namespace: impl Into<String>,
        name: impl Into<String>,
        endpoints: Vec<Endpoint>,
    ) {
        let key = (namespace.into(), name.into());
        if endpoints.is_empty() {
            self.by_service.remove(&key);
        } else {
            self.by_service.insert(key, endpoints);
        }
    }

    /// The endpoints of Service `namespace/name`; empty when it has none.
    pub fn get(&self, namespace: &str, name: &str) -> &[Endpoint] {
        self.by_service
            .get(&(namespace.to_string(), name.to_string()))
            .map_or(&[], Vec::as_slice)
    }

    pub fn is_empty(&self) -> bool {
        self.by_service.is_empty()
    }

    /// Every Service with endpoints, in (namespace, name) order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str, &[Endpoint])> {
        self.by_service
            .iter()
            .map(|((ns, name), eps)| (ns.as_str(), name.as_str(), eps.as_slice()))
    }
}
