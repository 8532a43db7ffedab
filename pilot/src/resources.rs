//! Compiled Envoy resources for one proxy, with content-hash versions.
//!
//! A version is the XXH3 (64-bit) hash of the encoded bytes, computed once
//! when the resource is built. XXH3 is specified and stable across Rust
//! releases and platforms (unlike `std`'s `DefaultHasher`), so the same
//! config gets the same version from any build of the server: a proxy that
//! reconnects to a restarted or upgraded control plane is recognised as up
//! to date.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use xxhash_rust::xxh3::{Xxh3Default, xxh3_64};

/// The xDS resource types Bowline serves, in make-before-break push order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    Cluster,
    Endpoint,
    Listener,
    Route,
}

impl ResourceType {
    /// Push order: clusters before their endpoints, listeners before their routes.
    pub const ALL: [ResourceType; 4] = [
        ResourceType::Cluster,
        ResourceType::Endpoint,
        ResourceType::Listener,
        ResourceType::Route,
    ];

    pub const fn type_url(self) -> &'static str {
        match self {
            ResourceType::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            ResourceType::Endpoint => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            ResourceType::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            ResourceType::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        }
    }

    pub fn from_type_url(url: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.type_url() == url)
    }

    /// Whether Envoy subscribes to all resources of this type (LDS, CDS) rather
    /// than naming them (RDS, EDS).
    pub const fn is_wildcard(self) -> bool {
        matches!(self, ResourceType::Cluster | ResourceType::Listener)
    }

    const fn index(self) -> usize {
        self as usize
    }
}

/// One encoded resource and the hash of its bytes.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub name: String,
    pub version: String,
    pub body: Any,
}

impl Resource {
    /// Encodes `message` as an `Any` of the type's URL and versions it by content.
    pub fn new<M: Message>(ty: ResourceType, name: impl Into<String>, message: &M) -> Self {
        let value = message.encode_to_vec();
        let version = content_hash(&value);
        Resource {
            name: name.into(),
            version,
            body: Any {
                type_url: ty.type_url().to_string(),
                value,
            },
        }
    }
}

/// Resources of one type, by name.
pub type ResourceMap = BTreeMap<String, Arc<Resource>>;

/// Everything one proxy should have. Maps are shared between proxies where the
/// compiler can share them (clusters and endpoints do not depend on the proxy).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProxyResources {
    by_type: [Arc<ResourceMap>; 4],
}

impl ProxyResources {
    pub fn new(
        clusters: Arc<ResourceMap>,
        endpoints: Arc<ResourceMap>,
        listeners: Arc<ResourceMap>,
        routes: Arc<ResourceMap>,
    ) -> Self {
        ProxyResources {
            by_type: [clusters, endpoints, listeners, routes],
        }
    }

    pub fn get(&self, ty: ResourceType) -> &ResourceMap {
        &self.by_type[ty.index()]
    }

    /// Version of a set of resources: equal sets give equal versions. Each
    /// name and version goes in with its length, so no two different sets
    /// feed the hash the same bytes.
    pub fn version_of<'a>(resources: impl IntoIterator<Item = &'a Resource>) -> String {
        let mut h = Xxh3Default::new();
        for r in resources {
            for part in [&r.name, &r.version] {
                h.update(&(part.len() as u64).to_le_bytes());
                h.update(part.as_bytes());
            }
        }
        format!("{:016x}", h.digest())
    }

    /// Version of all resources of a type.
    pub fn version(&self, ty: ResourceType) -> String {
        Self::version_of(self.get(ty).values().map(|r| r.as_ref()))
    }
}

/// Hex XXH3-64 hash of bytes. Only ever compared for equality.
pub fn content_hash(bytes: &[u8]) -> String {
    format!("{:016x}", xxh3_64(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Pinned values, cross-checked against the reference implementation (the
    // `xxhash` Python binding of the C library): a change of hash algorithm,
    // or of how a set is fed to it, changes every version a proxy holds and
    // must show here.
    #[test]
    fn content_hash_is_xxh3_64() {
        assert_eq!(content_hash(b""), "2d06800538d394c2");
        assert_eq!(content_hash(b"bowline"), "2c2e5616a42b6f31");
    }

    #[test]
    fn set_version_is_pinned_and_depends_on_names_and_versions() {
        let a = Resource::new(ResourceType::Cluster, "a", &Any::default());
        let b = Resource::new(ResourceType::Cluster, "b", &Any::default());
        assert_eq!(a.version, "2d06800538d394c2");
        assert_eq!(ProxyResources::version_of([&a, &b]), "ed1932db7f04e990");
        assert_eq!(ProxyResources::version_of([]), "2d06800538d394c2");
        assert_ne!(
            ProxyResources::version_of([&a, &b]),
            ProxyResources::version_of([&a])
        );
        // Lengths keep ("ab", "") apart from ("a", "b").
        let split = Resource {
            name: "a".into(),
            version: "b".into(),
            body: Any::default(),
        };
        let joined = Resource {
            name: "ab".into(),
            version: String::new(),
            body: Any::default(),
        };
        assert_ne!(
            ProxyResources::version_of([&split]),
            ProxyResources::version_of([&joined])
        );
    }
}
