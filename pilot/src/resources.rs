//! Compiled Envoy resources for one proxy, with content-hash versions.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use bytes::Bytes;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};

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
///
/// The resource is kept only as the encoded `google.protobuf.Any` that goes on
/// the wire, in a [`Bytes`] that every response carrying it shares: a push to
/// a proxy splices these bytes into the response frame (see `xds::codec`)
/// instead of copying them into a prost message first.
#[derive(Clone, Debug, PartialEq)]
pub struct Resource {
    pub name: String,
    pub version: String,
    ty: ResourceType,
    /// `google.protobuf.Any { type_url, value }`, as prost encodes it.
    encoded: Bytes,
    /// Where `Any.value` (the message itself) starts in `encoded`.
    value_at: usize,
}

/// `google.protobuf.Any.type_url`.
const ANY_TYPE_URL: u32 = 1;
/// `google.protobuf.Any.value`.
const ANY_VALUE: u32 = 2;

impl Resource {
    /// Encodes `message` as an `Any` of the type's URL and versions it by content.
    pub fn new<M: Message>(ty: ResourceType, name: impl Into<String>, message: &M) -> Self {
        let type_url = ty.type_url().as_bytes();
        let len = message.encoded_len();
        let mut buf = Vec::with_capacity(
            2 * key_len(ANY_VALUE) + 2 * encoded_len_varint(len as u64) + type_url.len() + len,
        );
        // Field by field as prost writes `Any`: an empty value is left out.
        encode_key(ANY_TYPE_URL, WireType::LengthDelimited, &mut buf);
        encode_varint(type_url.len() as u64, &mut buf);
        buf.extend_from_slice(type_url);
        if len > 0 {
            encode_key(ANY_VALUE, WireType::LengthDelimited, &mut buf);
            encode_varint(len as u64, &mut buf);
        }
        let value_at = buf.len();
        message.encode_raw(&mut buf);
        let version = content_hash(&buf[value_at..]);
        Resource {
            name: name.into(),
            version,
            ty,
            encoded: Bytes::from(buf),
            value_at,
        }
    }

    pub fn resource_type(&self) -> ResourceType {
        self.ty
    }

    /// The encoded `google.protobuf.Any`, shared, not copied.
    pub fn encoded(&self) -> &Bytes {
        &self.encoded
    }

    /// The encoded message (`Any.value`).
    pub fn value(&self) -> &[u8] {
        &self.encoded[self.value_at..]
    }

    /// The resource as a prost `Any`: a copy, for tests and the admin API.
    pub fn any(&self) -> Any {
        Any {
            type_url: self.ty.type_url().to_string(),
            value: self.value().to_vec(),
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
