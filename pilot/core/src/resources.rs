//! Compiled Envoy resources for one proxy, with content-hash versions.
//!
//! A version is the XXH3 (64-bit) hash of the encoded bytes, computed once
//! when the resource is built. XXH3 is specified and stable across Rust
//! releases and platforms (unlike `std`'s `DefaultHasher`), so the same
//! config gets the same version from any build of the server: a proxy that
//! reconnects to a restarted or upgraded control plane is recognised as up
//! to date.

use std::collections::{BTreeMap, btree_map};
use std::sync::{Arc, OnceLock};

use bytes::{Bytes, BytesMut};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;
use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint, key_len};
use xxhash_rust::xxh3::{Xxh3Default, xxh3_64, xxh3_128};

/// The xDS resource types Bowline serves, in make-before-break push order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ResourceType {
    Cluster,
    Endpoint,
    Listener,
    Route,
    /// SDS over ADS: the bundle's roots (`ROOTCA`), which carry no secret.
    /// The workload's key and certificate never pass through the control
    /// plane: the agent serves them on its own socket.
    Secret,
}

impl ResourceType {
    /// Push order: clusters before their endpoints, listeners before their
    /// routes, then secrets (as Istio orders them). Envoy asks for a secret
    /// only once a cluster or listener names it, and waits for it while
    /// warming, so the order of a secret among the others does not matter.
    pub const ALL: [ResourceType; 5] = [
        ResourceType::Cluster,
        ResourceType::Endpoint,
        ResourceType::Listener,
        ResourceType::Route,
        ResourceType::Secret,
    ];

    pub const fn type_url(self) -> &'static str {
        match self {
            ResourceType::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            ResourceType::Endpoint => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            ResourceType::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            ResourceType::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
            ResourceType::Secret => {
                "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.Secret"
            }
        }
    }

    pub fn from_type_url(url: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.type_url() == url)
    }

    /// Whether Envoy subscribes to all resources of this type (LDS, CDS) rather
    /// than naming them (RDS, EDS, SDS).
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
#[derive(Clone, Debug)]
pub struct Resource {
    pub name: String,
    pub version: String,
    ty: ResourceType,
    /// `google.protobuf.Any { type_url, value }`, as prost encodes it.
    encoded: Bytes,
    /// Where `Any.value` (the message itself) starts in `encoded`.
    value_at: usize,
    /// What the resource points at, read from its bytes on first use.
    references: OnceLock<Box<[String]>>,
}

impl PartialEq for Resource {
    fn eq(&self, other: &Self) -> bool {
        // `references` and `value_at` are derived from `encoded`.
        self.name == other.name
            && self.version == other.version
            && self.ty == other.ty
            && self.encoded == other.encoded
    }
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
            references: OnceLock::new(),
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

    /// The names, sorted, of the resources one level down that this one
    /// needs: for a listener or a route configuration the clusters its
    /// routes and TCP proxies send to, for an EDS cluster its load
    /// assignment; nothing for other types. Decoded once per resource (and
    /// resources are shared between proxies), the first time the xDS
    /// connection orders a removal by it.
    pub fn references(&self) -> &[String] {
        self.references.get_or_init(|| {
            let mut names = references::of(self.ty, self.value());
            names.sort();
            names.dedup();
            names.into_boxed_slice()
        })
    }

    /// Whether [`Resource::references`] names `name`.
    pub fn references_name(&self, name: &str) -> bool {
        self.references()
            .binary_search_by(|n| n.as_str().cmp(name))
            .is_ok()
    }
}

/// Reading references out of encoded resources. A body that does not decode
/// references nothing (the compiler only emits what decodes).
mod references {
    use envoy_types::pb::envoy::config::cluster::v3::Cluster;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{
        ClusterDiscoveryType, DiscoveryType,
    };
    use envoy_types::pb::envoy::config::listener::v3::{Listener, filter};
    use envoy_types::pb::envoy::config::route::v3::{
        RouteConfiguration, route::Action, route_action, route_action::RequestMirrorPolicy,
    };
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
        HttpConnectionManager, http_connection_manager::RouteSpecifier,
    };
    use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
        TcpProxy, tcp_proxy,
    };
    use prost::{Message, Name};

    use super::ResourceType;

    pub(super) fn of(ty: ResourceType, bytes: &[u8]) -> Vec<String> {
        let mut out = Vec::new();
        match Some(ty) {
            Some(ResourceType::Listener) => {
                if let Ok(l) = Listener::decode(bytes) {
                    listener(&l, &mut out);
                }
            }
            Some(ResourceType::Route) => {
                if let Ok(r) = RouteConfiguration::decode(bytes) {
                    routes(&r, &mut out);
                }
            }
            Some(ResourceType::Cluster) => {
                if let Ok(c) = Cluster::decode(bytes) {
                    let eds = matches!(
                        c.cluster_discovery_type,
                        Some(ClusterDiscoveryType::Type(t)) if t == DiscoveryType::Eds as i32
                    );
                    if eds {
                        let service = c.eds_cluster_config.map(|e| e.service_name);
                        out.push(service.filter(|n| !n.is_empty()).unwrap_or(c.name));
                    }
                }
            }
            Some(ResourceType::Endpoint | ResourceType::Secret) | None => {}
        }
        out
    }

    fn listener(l: &Listener, out: &mut Vec<String>) {
        for chain in l.filter_chains.iter().chain(&l.default_filter_chain) {
            for f in &chain.filters {
                let Some(filter::ConfigType::TypedConfig(any)) = &f.config_type else {
                    continue;
                };
                if any.type_url == HttpConnectionManager::type_url() {
                    let Ok(hcm) = HttpConnectionManager::decode(any.value.as_slice()) else {
                        continue;
                    };
                    if let Some(RouteSpecifier::RouteConfig(r)) = &hcm.route_specifier {
                        routes(r, out);
                    }
                } else if any.type_url == TcpProxy::type_url() {
                    let Ok(tcp) = TcpProxy::decode(any.value.as_slice()) else {
                        continue;
                    };
                    match tcp.cluster_specifier {
                        Some(tcp_proxy::ClusterSpecifier::Cluster(c)) => out.push(c),
                        Some(tcp_proxy::ClusterSpecifier::WeightedClusters(w)) => {
                            out.extend(w.clusters.into_iter().map(|c| c.name));
                        }
                        None => {}
                    }
                }
            }
        }
    }

    fn routes(r: &RouteConfiguration, out: &mut Vec<String>) {
        mirrors(&r.request_mirror_policies, out);
        for vhost in &r.virtual_hosts {
            mirrors(&vhost.request_mirror_policies, out);
            for route in &vhost.routes {
                let Some(Action::Route(action)) = &route.action else {
                    continue;
                };
                mirrors(&action.request_mirror_policies, out);
                match &action.cluster_specifier {
                    Some(route_action::ClusterSpecifier::Cluster(c)) => out.push(c.clone()),
                    Some(route_action::ClusterSpecifier::WeightedClusters(w)) => {
                        out.extend(w.clusters.iter().map(|c| c.name.clone()));
                    }
                    _ => {}
                }
            }
        }
    }

    fn mirrors(policies: &[RequestMirrorPolicy], out: &mut Vec<String>) {
        out.extend(
            policies
                .iter()
                .filter(|m| !m.cluster.is_empty())
                .map(|m| m.cluster.clone()),
        );
    }
}

/// Resources of one type, by name.
pub type ResourceMap = BTreeMap<String, Arc<Resource>>;

/// The resources of one type that one proxy should have: a map shared with
/// the other proxies that see the same part of the mesh, and the few that
/// are this proxy's own (its inbound clusters, load assignments weighted
/// for its locality), which take the place of a shared one of the same name.
/// Cloning it clones two pointers, so a proxy never holds a copy of the
/// shared map, and the shared map's version is hashed once for all of them.
#[derive(Clone, Debug, Default)]
pub struct ResourceSet {
    shared: Arc<Versioned>,
    own: Arc<Versioned>,
    /// Names in both maps together.
    len: usize,
}

/// A map and its [`ProxyResources::version_of`], computed when first asked for.
#[derive(Debug, Default)]
struct Versioned {
    map: ResourceMap,
    version: OnceLock<String>,
    /// A hash of the names alone.
    names: OnceLock<u64>,
    /// Every resource as an element of `DiscoveryResponse.resources`, in
    /// name order, written once for every response that carries the map
    /// (see [`ResourceSet::sotw_wire`]).
    wire: OnceLock<Arc<[Bytes]>>,
    /// The sum of [`name_hash`] over the names: the same for the same names
    /// in any order, so a request's list is checked against the map
    /// without building a set of it.
    name_sum: OnceLock<u128>,
}

impl Versioned {
    fn new(map: ResourceMap) -> Arc<Versioned> {
        Arc::new(Versioned {
            map,
            version: OnceLock::new(),
            names: OnceLock::new(),
            wire: OnceLock::new(),
            name_sum: OnceLock::new(),
        })
    }

    fn wire(&self) -> &Arc<[Bytes]> {
        self.wire.get_or_init(|| {
            let mut pieces = Vec::new();
            let mut run = BytesMut::new();
            for r in self.map.values() {
                let encoded = r.encoded();
                let mut prefix = [0u8; 15];
                let mut rest = &mut prefix[..];
                encode_key(SOTW_RESOURCES, WireType::LengthDelimited, &mut rest);
                encode_varint(encoded.len() as u64, &mut rest);
                let written = 15 - rest.len();
                run.extend_from_slice(&prefix[..written]);
                if encoded.len() < SHARE_AT {
                    run.extend_from_slice(encoded);
                } else {
                    pieces.push(std::mem::take(&mut run).freeze());
                    pieces.push(encoded.clone());
                }
            }
            if !run.is_empty() {
                pieces.push(run.freeze());
            }
            pieces.into()
        })
    }

    fn name_sum(&self) -> u128 {
        *self
            .name_sum
            .get_or_init(|| sum_names(self.map.keys().map(|k| k.as_bytes())))
    }

    fn names(&self) -> u64 {
        *self.names.get_or_init(|| {
            let mut h = Xxh3Default::new();
            for name in self.map.keys() {
                h.update(&(name.len() as u64).to_le_bytes());
                h.update(name.as_bytes());
            }
            h.digest()
        })
    }

    fn version(&self) -> &str {
        self.version
            .get_or_init(|| ProxyResources::version_of(self.map.values().map(|r| r.as_ref())))
    }
}

impl ResourceSet {
    /// `own` over `shared`: where both hold a name, `own`'s resource is the one.
    pub fn new(shared: &ResourceSet, own: ResourceMap) -> Self {
        debug_assert!(shared.own.map.is_empty(), "layers are one deep");
        let len = shared.len + own.keys().filter(|k| !shared.contains_key(k)).count();
        ResourceSet {
            shared: shared.shared.clone(),
            own: Versioned::new(own),
            len,
        }
    }

    /// Whether `self` and `other` are the very same set, not only equal.
    pub fn same(&self, other: &ResourceSet) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared) && Arc::ptr_eq(&self.own, &other.own)
    }

    pub fn get(&self, name: &str) -> Option<&Arc<Resource>> {
        self.own.map.get(name).or_else(|| self.shared.map.get(name))
    }

    pub fn get_key_value(&self, name: &str) -> Option<(&String, &Arc<Resource>)> {
        self.own
            .map
            .get_key_value(name)
            .or_else(|| self.shared.map.get_key_value(name))
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.own.map.contains_key(name) || self.shared.map.contains_key(name)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every resource, in name order.
    pub fn iter(&self) -> Layered<'_> {
        Layered {
            own: self.own.map.iter().peekable(),
            shared: self.shared.map.iter().peekable(),
        }
    }

    pub fn keys(&self) -> impl Iterator<Item = &String> + Clone {
        self.iter().map(|(k, _)| k)
    }

    pub fn values(&self) -> impl Iterator<Item = &Arc<Resource>> + Clone {
        self.iter().map(|(_, v)| v)
    }

    /// Whether both sets hold resources of the same names. Sets layered the
    /// same way compare by a hash of their names, computed once per shared
    /// map, so a proxy's check costs nothing per name.
    pub fn same_names(&self, other: &ResourceSet) -> bool {
        if self.len != other.len {
            return false;
        }
        let hashed = |s: &ResourceSet| (s.shared.names(), s.own.names());
        if self.own.map.len() == other.own.map.len() && hashed(self) == hashed(other) {
            return true;
        }
        self.keys().eq(other.keys())
    }

    /// The set as elements of `DiscoveryResponse.resources` (field
    /// [`SOTW_RESOURCES`]), already encoded, in pieces: the proxy's own
    /// resources, then the shared ones. Each map's pieces are written once,
    /// for every response that carries it: the small resources copied
    /// together with the keys and lengths of all, the large ones (at least
    /// [`SHARE_AT`] bytes) as their own shared bytes, so no resource is
    /// copied per proxy and a large one is never copied at all. `None` when
    /// a resource of the proxy's own takes the place of a shared one: then
    /// the shared pieces would carry a resource the proxy must not get.
    pub fn sotw_wire(&self) -> Option<[&Arc<[Bytes]>; 2]> {
        if self.len != self.own.map.len() + self.shared.map.len() {
            return None;
        }
        Some([self.own.wire(), self.shared.wire()])
    }

    /// The sum of [`name_hash`] over the set's names (see
    /// [`sum_names`]); for a shared map computed once, for a layered set
    /// from the proxy's own names alone.
    pub fn name_sum(&self) -> u128 {
        let mut sum = self.shared.name_sum();
        for name in self.own.map.keys() {
            if !self.shared.map.contains_key(name) {
                sum = sum.wrapping_add(name_hash(name.as_bytes()));
            }
        }
        sum
    }

    /// The set's version: equal sets built the same way have equal
    /// versions, and a set that changes gets a new one. A set without
    /// resources of its own has [`ProxyResources::version_of`] its
    /// resources, hashed once and shared by every proxy holding it; one
    /// with its own has a hash of both layers' versions, so what a proxy
    /// pays per push is the hash of its own few.
    pub fn version(&self) -> String {
        if self.own.map.is_empty() {
            return self.shared.version().to_string();
        }
        let mut h = Xxh3Default::new();
        for part in [self.shared.version(), self.own.version()] {
            h.update(part.as_bytes());
        }
        format!("{:016x}", h.digest())
    }
}

impl From<ResourceMap> for ResourceSet {
    fn from(map: ResourceMap) -> Self {
        ResourceSet {
            len: map.len(),
            shared: Versioned::new(map),
            own: Arc::default(),
        }
    }
}

impl PartialEq for ResourceSet {
    fn eq(&self, other: &Self) -> bool {
        self.same(other) || (self.len() == other.len() && self.iter().eq(other.iter()))
    }
}

impl std::ops::Index<&str> for ResourceSet {
    type Output = Arc<Resource>;

    fn index(&self, name: &str) -> &Arc<Resource> {
        self.get(name)
            .unwrap_or_else(|| panic!("no resource named {name}"))
    }
}

impl<'a> IntoIterator for &'a ResourceSet {
    type Item = (&'a String, &'a Arc<Resource>);
    type IntoIter = Layered<'a>;

    fn into_iter(self) -> Layered<'a> {
        self.iter()
    }
}

/// The resources of a [`ResourceSet`] in name order: both maps walked
/// together, the proxy's own winning a name they share.
#[derive(Clone, Debug)]
pub struct Layered<'a> {
    own: std::iter::Peekable<btree_map::Iter<'a, String, Arc<Resource>>>,
    shared: std::iter::Peekable<btree_map::Iter<'a, String, Arc<Resource>>>,
}

impl<'a> Iterator for Layered<'a> {
    type Item = (&'a String, &'a Arc<Resource>);

    fn next(&mut self) -> Option<Self::Item> {
        match (self.own.peek(), self.shared.peek()) {
            (Some((own, _)), Some((shared, _))) => match own.cmp(shared) {
                std::cmp::Ordering::Less => self.own.next(),
                std::cmp::Ordering::Equal => {
                    self.shared.next();
                    self.own.next()
                }
                std::cmp::Ordering::Greater => self.shared.next(),
            },
            (Some(_), None) => self.own.next(),
            (None, _) => self.shared.next(),
        }
    }
}

/// Everything one proxy should have. Maps are shared between proxies where the
/// compiler can share them (see [`ResourceSet`]).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ProxyResources {
    by_type: [ResourceSet; 5],
    /// The snapshot generation the set was compiled from (0 until the
    /// caller sets it), so the xDS connection can say which generation a
    /// proxy has ACKed.
    generation: u64,
}

impl ProxyResources {
    pub fn new(
        clusters: impl Into<ResourceSet>,
        endpoints: impl Into<ResourceSet>,
        listeners: impl Into<ResourceSet>,
        routes: impl Into<ResourceSet>,
    ) -> Self {
        ProxyResources {
            by_type: [
                clusters.into(),
                endpoints.into(),
                listeners.into(),
                routes.into(),
                ResourceSet::default(),
            ],
            generation: 0,
        }
    }

    /// The same set, marked as compiled from snapshot `generation`.
    pub fn with_generation(mut self, generation: u64) -> Self {
        self.generation = generation;
        self
    }

    /// The snapshot generation the set was compiled from.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    pub fn get(&self, ty: ResourceType) -> &ResourceSet {
        &self.by_type[ty.index()]
    }

    /// The same resources with those of `ty` replaced; the other sets are shared.
    pub fn with(&self, ty: ResourceType, resources: impl Into<ResourceSet>) -> ProxyResources {
        let mut next = self.clone();
        next.by_type[ty.index()] = resources.into();
        next
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

    /// Version of all resources of a type (see [`ResourceSet::version`]).
    pub fn version(&self, ty: ResourceType) -> String {
        self.get(ty).version()
    }
}

/// A resource at least this large goes out as its own shared bytes; smaller
/// ones are copied together with what surrounds them.
pub const SHARE_AT: usize = 512;

/// `DiscoveryResponse.resources`: the field each resource of a
/// state-of-the-world response is written as.
pub const SOTW_RESOURCES: u32 = 2;

/// A 128-bit XXH3 hash of one resource name.
pub fn name_hash(name: &[u8]) -> u128 {
    xxh3_128(name)
}

/// The wrapping sum of [`name_hash`] over `names`: equal for the same
/// names in any order. Compared together with the count, a different list
/// of names matches by chance with a probability of about 2^-128.
pub fn sum_names<'a>(names: impl IntoIterator<Item = &'a [u8]>) -> u128 {
    names
        .into_iter()
        .fold(0u128, |sum, name| sum.wrapping_add(name_hash(name)))
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
        let mut split = a.clone();
        split.version = "b".into();
        let mut joined = a.clone();
        joined.name = "ab".into();
        joined.version = String::new();
        assert_ne!(
            ProxyResources::version_of([&split]),
            ProxyResources::version_of([&joined])
        );
    }

    #[test]
    fn references_are_the_clusters_a_listener_or_route_sends_to() {
        use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
        use envoy_types::pb::envoy::config::route::v3::{
            Route, RouteAction, RouteConfiguration, VirtualHost, WeightedCluster,
            route::Action,
            route_action::{ClusterSpecifier, RequestMirrorPolicy},
            weighted_cluster::ClusterWeight,
        };
        use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
            HttpConnectionManager, http_connection_manager::RouteSpecifier,
        };
        use prost::Name;

        let weighted = |names: &[&str]| {
            ClusterSpecifier::WeightedClusters(WeightedCluster {
                clusters: names
                    .iter()
                    .map(|n| ClusterWeight {
                        name: n.to_string(),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            })
        };
        let routes = RouteConfiguration {
            name: "r".into(),
            virtual_hosts: vec![VirtualHost {
                routes: vec![
                    Route {
                        action: Some(Action::Route(RouteAction {
                            cluster_specifier: Some(weighted(&["v1", "v2"])),
                            request_mirror_policies: vec![RequestMirrorPolicy {
                                cluster: "mirror".into(),
                                ..Default::default()
                            }],
                            ..Default::default()
                        })),
                        ..Default::default()
                    },
                    Route {
                        action: Some(Action::Route(RouteAction {
                            cluster_specifier: Some(ClusterSpecifier::Cluster("v1".into())),
                            ..Default::default()
                        })),
                        ..Default::default()
                    },
                ],
                ..Default::default()
            }],
            ..Default::default()
        };
        let r = Resource::new(ResourceType::Route, "r", &routes);
        assert_eq!(r.references(), ["mirror", "v1", "v2"]);
        assert!(r.references_name("v2") && !r.references_name("v3"));

        // A listener with the same routes inline names the same clusters.
        let hcm = HttpConnectionManager {
            route_specifier: Some(RouteSpecifier::RouteConfig(routes)),
            ..Default::default()
        };
        let l = Listener {
            name: "in".into(),
            filter_chains: vec![FilterChain {
                filters: vec![Filter {
                    name: "hcm".into(),
                    config_type: Some(filter::ConfigType::TypedConfig(Any {
                        type_url: HttpConnectionManager::type_url(),
                        value: hcm.encode_to_vec(),
                    })),
                }],
                ..Default::default()
            }],
            ..Default::default()
        };
        let l = Resource::new(ResourceType::Listener, "in", &l);
        assert_eq!(l.references(), ["mirror", "v1", "v2"]);

        // An endpoint set references nothing.
        assert!(a_resource().references().is_empty());
    }

    #[test]
    fn a_set_is_its_own_resources_over_the_shared_ones() {
        let r = |name: &str, body: &str| {
            let any = Any {
                type_url: body.to_string(),
                value: Vec::new(),
            };
            Arc::new(Resource::new(ResourceType::Endpoint, name, &any))
        };
        let shared: ResourceMap = [("a", "shared"), ("b", "shared"), ("d", "shared")]
            .into_iter()
            .map(|(n, b)| (n.to_string(), r(n, b)))
            .collect();
        let own: ResourceMap = [("b", "own"), ("c", "own")]
            .into_iter()
            .map(|(n, b)| (n.to_string(), r(n, b)))
            .collect();
        let set = ResourceSet::new(&ResourceSet::from(shared.clone()), own.clone());
        let merged: ResourceMap = [("a", "shared"), ("b", "own"), ("c", "own"), ("d", "shared")]
            .into_iter()
            .map(|(n, b)| (n.to_string(), r(n, b)))
            .collect();
        assert_eq!(set.len(), 4);
        assert!(set.iter().eq(merged.iter()));
        assert_eq!(set.get("b"), merged.get("b"));
        assert!(set.contains_key("c") && !set.contains_key("e"));
        assert_eq!(set, ResourceSet::from(merged.clone()));
        // An unlayered set's version is its resources'; a layered one's
        // follows either layer.
        assert_eq!(
            ResourceSet::from(merged.clone()).version(),
            ProxyResources::version_of(merged.values().map(|r| r.as_ref()))
        );
        let again = ResourceSet::new(&ResourceSet::from(shared.clone()), own.clone());
        assert_eq!(set.version(), again.version());
        assert!(!set.same(&again));
        let mut other = own.clone();
        other.insert("c".into(), r("c", "changed"));
        let changed = ResourceSet::new(&ResourceSet::from(shared), other);
        assert_ne!(set.version(), changed.version());
    }

    #[test]
    fn a_set_is_written_whole_unless_its_own_resources_shadow_shared_ones() {
        let r = |name: &str| {
            let any = Any {
                type_url: name.to_string(),
                value: vec![1; 3],
            };
            Arc::new(Resource::new(ResourceType::Cluster, name, &any))
        };
        let map = |names: &[&str]| -> ResourceMap {
            names.iter().map(|n| (n.to_string(), r(n))).collect()
        };
        // What prost writes for `DiscoveryResponse { resources }`.
        let listed = |names: &[&str]| {
            let message = envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse {
                resources: names.iter().map(|n| r(n).any()).collect(),
                ..Default::default()
            };
            message.encode_to_vec()
        };
        let joined = |pieces: &[Bytes]| pieces.concat();
        let shared = ResourceSet::from(map(&["a", "b", "d"]));
        let [own, all] = shared.sotw_wire().expect("no layer of its own");
        assert!(own.is_empty());
        assert_eq!(joined(all), listed(&["a", "b", "d"]));
        assert_eq!(all.len(), 1, "small resources copied together");
        // Own resources of new names go first; the shared pieces are the
        // same bytes, not a copy.
        let layered = ResourceSet::new(&shared, map(&["c"]));
        let [own, rest] = layered.sotw_wire().expect("disjoint layers");
        assert_eq!(joined(own), listed(&["c"]));
        assert!(Arc::ptr_eq(rest, all));
        // An own resource in the place of a shared one: not written whole.
        assert!(ResourceSet::new(&shared, map(&["b"])).sotw_wire().is_none());
        // A large resource is a piece of its own: the resource's bytes.
        let large = Arc::new(Resource::new(
            ResourceType::Route,
            "big",
            &Any {
                type_url: "t".into(),
                value: vec![2; SHARE_AT],
            },
        ));
        let mut with_large = map(&["a", "z"]);
        with_large.insert("big".into(), large.clone());
        let set = ResourceSet::from(with_large);
        let [_, pieces] = set.sotw_wire().unwrap();
        assert_eq!(pieces.len(), 3, "a and big's key; big; z");
        assert_eq!(pieces[1].as_ptr(), large.encoded().as_ptr());
        let expected = envoy_types::pb::envoy::service::discovery::v3::DiscoveryResponse {
            resources: [r("a").any(), large.any(), r("z").any()].into(),
            ..Default::default()
        };
        assert_eq!(joined(pieces), expected.encode_to_vec());
    }

    #[test]
    fn a_name_sum_is_the_same_for_the_same_names_in_any_order() {
        let names = |list: &[&str]| sum_names(list.iter().map(|n| n.as_bytes()));
        assert_eq!(names(&["a", "b", "c"]), names(&["c", "a", "b"]));
        assert_ne!(names(&["a", "b"]), names(&["a", "c"]));
        assert_ne!(names(&["ab"]), names(&["a", "b"]));
        let r = |name: &str| Arc::new(Resource::new(ResourceType::Cluster, name, &Any::default()));
        let map =
            |list: &[&str]| -> ResourceMap { list.iter().map(|n| (n.to_string(), r(n))).collect() };
        let shared = ResourceSet::from(map(&["a", "b", "d"]));
        assert_eq!(shared.name_sum(), names(&["d", "b", "a"]));
        // A layered set counts a shadowed name once.
        let layered = ResourceSet::new(&shared, map(&["b", "c"]));
        assert_eq!(layered.name_sum(), names(&["a", "b", "c", "d"]));
    }

    fn a_resource() -> Resource {
        Resource::new(ResourceType::Endpoint, "e", &Any::default())
    }
}
