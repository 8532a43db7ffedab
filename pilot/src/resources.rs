//! Compiled Envoy resources for one proxy, with content-hash versions.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use envoy_types::pb::google::protobuf::Any;
use prost::Message;

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

    /// The same resources with those of `ty` replaced; the other maps are shared.
    pub fn with(&self, ty: ResourceType, resources: Arc<ResourceMap>) -> ProxyResources {
        let mut next = self.clone();
        next.by_type[ty.index()] = resources;
        next
    }

    /// Version of a set of resources: equal sets give equal versions.
    pub fn version_of<'a>(resources: impl IntoIterator<Item = &'a Resource>) -> String {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for r in resources {
            r.name.hash(&mut h);
            r.version.hash(&mut h);
        }
        format!("{:016x}", h.finish())
    }

    /// Version of all resources of a type.
    pub fn version(&self, ty: ResourceType) -> String {
        Self::version_of(self.get(ty).values().map(|r| r.as_ref()))
    }
}

/// Hex hash of bytes. Only ever compared for equality.
pub fn content_hash(bytes: &[u8]) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    bytes.hash(&mut h);
    format!("{:016x}", h.finish())
}
