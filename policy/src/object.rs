//! Every object Bowline decodes, by kind, and how one is identified across
//! files. It depends on the object modules (`service`, `networking`) and
//! on `meta`; none of them depends on it.

use std::fmt;

use crate::meta::ObjectMeta;
use crate::networking::{DestinationRule, ServiceEntry, Sidecar, VirtualService, WorkloadEntry};
use crate::security::{AuthorizationPolicy, PeerAuthentication, RequestAuthentication};
use crate::service::Service;
use crate::telemetry::Telemetry;

pub use crate::parse::{ParsedDocument, decode_document, parse_documents, parse_stream};

/// The kinds Bowline understands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    Service,
    WorkloadEntry,
    ServiceEntry,
    VirtualService,
    DestinationRule,
    Sidecar,
    PeerAuthentication,
    AuthorizationPolicy,
    RequestAuthentication,
    Telemetry,
}

/// Identifies one object across files: two documents with the same key are the same object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
}

/// One decoded and validated object.
#[derive(Clone, Debug, PartialEq)]
pub enum Object {
    Service(Service),
    WorkloadEntry(WorkloadEntry),
    ServiceEntry(ServiceEntry),
    VirtualService(VirtualService),
    DestinationRule(DestinationRule),
    Sidecar(Sidecar),
    PeerAuthentication(PeerAuthentication),
    AuthorizationPolicy(AuthorizationPolicy),
    RequestAuthentication(RequestAuthentication),
    Telemetry(Telemetry),
}

impl Kind {
    /// Every kind, in key order.
    pub const ALL: [Kind; 10] = [
        Kind::Service,
        Kind::WorkloadEntry,
        Kind::ServiceEntry,
        Kind::VirtualService,
        Kind::DestinationRule,
        Kind::Sidecar,
        Kind::PeerAuthentication,
        Kind::AuthorizationPolicy,
        Kind::RequestAuthentication,
        Kind::Telemetry,
    ];

    /// The `kind` as written in YAML.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Service => "Service",
            Kind::WorkloadEntry => "WorkloadEntry",
            Kind::ServiceEntry => "ServiceEntry",
            Kind::VirtualService => "VirtualService",
            Kind::DestinationRule => "DestinationRule",
            Kind::Sidecar => "Sidecar",
            Kind::PeerAuthentication => "PeerAuthentication",
            Kind::AuthorizationPolicy => "AuthorizationPolicy",
            Kind::RequestAuthentication => "RequestAuthentication",
            Kind::Telemetry => "Telemetry",
        }
    }

    /// The API group that serves the kind: Istio's, or `core` for
    /// Kubernetes' own `Service` (the admin API's config paths name it).
    pub fn group(self) -> &'static str {
        crate::envelope::served(self).map_or("core", |(group, _)| group)
    }

    /// The custom resource's API group and the versions it serves, the
    /// preferred first; `None` for Kubernetes' own `Service`.
    pub fn served(self) -> Option<(&'static str, &'static [&'static str])> {
        crate::envelope::served(self)
    }

    /// The kind named `kind` in YAML, if Bowline decodes it.
    pub fn from_name(kind: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == kind)
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}/{}", self.kind, self.namespace, self.name)
    }
}

impl Object {
    pub fn kind(&self) -> Kind {
        match self {
            Object::Service(_) => Kind::Service,
            Object::WorkloadEntry(_) => Kind::WorkloadEntry,
            Object::ServiceEntry(_) => Kind::ServiceEntry,
            Object::VirtualService(_) => Kind::VirtualService,
            Object::DestinationRule(_) => Kind::DestinationRule,
            Object::Sidecar(_) => Kind::Sidecar,
            Object::PeerAuthentication(_) => Kind::PeerAuthentication,
            Object::AuthorizationPolicy(_) => Kind::AuthorizationPolicy,
            Object::RequestAuthentication(_) => Kind::RequestAuthentication,
            Object::Telemetry(_) => Kind::Telemetry,
        }
    }

    pub fn meta(&self) -> &ObjectMeta {
        match self {
            Object::Service(o) => &o.meta,
            Object::WorkloadEntry(o) => &o.meta,
            Object::ServiceEntry(o) => &o.meta,
            Object::VirtualService(o) => &o.meta,
            Object::DestinationRule(o) => &o.meta,
            Object::Sidecar(o) => &o.meta,
            Object::PeerAuthentication(o) => &o.meta,
            Object::AuthorizationPolicy(o) => &o.meta,
            Object::RequestAuthentication(o) => &o.meta,
            Object::Telemetry(o) => &o.meta,
        }
    }

    pub fn key(&self) -> ObjectKey {
        let meta = self.meta();
        ObjectKey {
            kind: self.kind(),
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_names() {
        for kind in Kind::ALL {
            assert_eq!(Kind::from_name(kind.as_str()), Some(kind));
        }
        assert_eq!(Kind::from_name("Gateway"), None);
        assert_eq!(Kind::from_name("Sidecar"), Some(Kind::Sidecar));
        let mut sorted = Kind::ALL;
        sorted.sort();
        assert_eq!(sorted, Kind::ALL);
    }

    #[test]
    fn key_display_names_kind_namespace_and_name() {
        let key = ObjectKey {
            kind: Kind::VirtualService,
            namespace: "default".into(),
            name: "reviews".into(),
        };
        assert_eq!(key.to_string(), "VirtualService default/reviews");
    }
}
