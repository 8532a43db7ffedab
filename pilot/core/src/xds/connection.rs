//! The xDS protocol of one ADS stream, as a state machine with no I/O.
//!
//! ```text
//! request ──► on_sotw_request / on_delta_request ──┐
//!                                                  ├──► Vec<Response> (CDS, EDS, LDS, RDS, SDS order)
//! new ProxyResources ──► on_resources ─────────────┘
//! ```
//!
//! Per resource type it tracks what was subscribed, the last nonce and version
//! sent, the version ACKed and the last NACK, the snapshot generations sent
//! and ACKed, and the version of each resource the client has (Delta needs
//! it by definition; state of the world uses it to send RDS and EDS changes
//! alone). Two rules span types and pushes: the push gate (one
//! server-initiated response per type in flight, see
//! [`Connection::on_resources`]) and make-before-break on removal (see
//! [`Connection::kept`]). Nonces come from a per-connection counter, so the
//! same inputs always give the same outputs. The variant-specific rules live
//! in `sotw` and `delta`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryResponse, DiscoveryResponse, Resource as DeltaResource,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use tracing::{debug, warn};

use crate::resources::{ProxyResources, Resource, ResourceMap, ResourceSet, ResourceType};
pub(super) use crate::xds::held::{Held, HeldRef, HeldSet, Names};
use crate::xds::status::{Nack, XdsStatus};

/// The two variants of the xDS protocol: the node contract's, which the
/// agent also writes into the bootstrap.
pub use pilot_node::Mode;

/// A message to send on the stream, of the connection's variant.
///
/// Responses hold the shared encoded resources, not prost messages: the
/// stream's codec writes the wire format around them (see `xds::codec`), so a
/// push never copies a resource into a per-proxy message.
#[derive(Clone, Debug, PartialEq)]
pub enum Response {
    Sotw(SotwResponse),
    Delta(DeltaResponse),
}

/// A `DiscoveryResponse`: the whole subscribed set of one type.
#[derive(Clone, Debug, PartialEq)]
pub struct SotwResponse {
    pub version_info: String,
    pub resources: Payload,
    pub ty: ResourceType,
    pub nonce: String,
}

/// The resources of a [`SotwResponse`].
///
/// A response that carries a whole set the proxy is served (the usual
/// case: Envoy subscribes to every cluster, and to the load assignments of
/// all of them) holds the set itself, and its codec writes the set's
/// pre-encoded entries ([`ResourceSet::sotw_wire`]): no per-response list
/// of thousands of pointers to build and drop, and no copying.
#[derive(Clone, Debug)]
pub enum Payload {
    /// These resources, in name order.
    Listed(Vec<Arc<Resource>>),
    /// Every resource of a set, with its pre-encoded entries.
    Whole(WholeSet),
}

/// A set whose entries are written whole ([`ResourceSet::sotw_wire`]); made
/// only by [`Payload::of`].
#[derive(Clone, Debug)]
pub struct WholeSet {
    set: ResourceSet,
    wire: [Arc<[Bytes]>; 2],
}

impl WholeSet {
    pub fn set(&self) -> &ResourceSet {
        &self.set
    }

    /// The encoded elements of `DiscoveryResponse.resources`, in pieces:
    /// the proxy's own, then the shared ones.
    pub fn pieces(&self) -> impl Iterator<Item = &Bytes> {
        self.wire.iter().flat_map(|pieces| pieces.iter())
    }

    pub fn piece_count(&self) -> usize {
        self.wire[0].len() + self.wire[1].len()
    }

    /// The `i`th of [`WholeSet::pieces`].
    pub fn piece(&self, i: usize) -> &Bytes {
        let own = &self.wire[0];
        if i < own.len() {
            &own[i]
        } else {
            &self.wire[1][i - own.len()]
        }
    }
}

impl Payload {
    /// All of `set`: as the set when its entries can be written whole,
    /// else listed.
    pub fn of(set: &ResourceSet) -> Payload {
        match set.sotw_wire() {
            Some([own, shared]) => Payload::Whole(WholeSet {
                set: set.clone(),
                wire: [own.clone(), shared.clone()],
            }),
            None => Payload::Listed(set.values().cloned().collect()),
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Payload::Listed(list) => list.len(),
            Payload::Whole(whole) => whole.set.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The resources in name order.
    pub fn iter(&self) -> Box<dyn Iterator<Item = &Arc<Resource>> + '_> {
        match self {
            Payload::Listed(list) => Box::new(list.iter()),
            Payload::Whole(whole) => Box::new(whole.set.values()),
        }
    }

    /// The `i`th resource in name order.
    pub fn get(&self, i: usize) -> Option<&Arc<Resource>> {
        match self {
            Payload::Listed(list) => list.get(i),
            Payload::Whole(whole) => whole.set.values().nth(i),
        }
    }

    pub fn to_vec(&self) -> Vec<Arc<Resource>> {
        self.iter().cloned().collect()
    }
}

impl PartialEq for Payload {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl std::ops::Index<usize> for Payload {
    type Output = Arc<Resource>;

    fn index(&self, i: usize) -> &Arc<Resource> {
        self.get(i)
            .unwrap_or_else(|| panic!("a response of {} resources has no {i}th", self.len()))
    }
}

impl From<Vec<Arc<Resource>>> for Payload {
    fn from(list: Vec<Arc<Resource>>) -> Self {
        Payload::Listed(list)
    }
}

/// A `DeltaDiscoveryResponse`: the resources the client lacks, each sent with
/// its own name and version, and the names it should drop.
#[derive(Clone, Debug, PartialEq)]
pub struct DeltaResponse {
    pub system_version_info: String,
    pub resources: Vec<Arc<Resource>>,
    pub ty: ResourceType,
    pub removed_resources: Vec<String>,
    pub nonce: String,
}

impl SotwResponse {
    /// The prost message with the same encoding; it copies every resource.
    pub fn to_proto(&self) -> DiscoveryResponse {
        DiscoveryResponse {
            version_info: self.version_info.clone(),
            resources: self.resources.iter().map(|r| r.any()).collect(),
            type_url: self.ty.type_url().to_string(),
            nonce: self.nonce.clone(),
            ..DiscoveryResponse::default()
        }
    }
}

impl DeltaResponse {
    /// The prost message with the same encoding; it copies every resource.
    pub fn to_proto(&self) -> DeltaDiscoveryResponse {
        DeltaDiscoveryResponse {
            system_version_info: self.system_version_info.clone(),
            resources: self
                .resources
                .iter()
                .map(|r| DeltaResource {
                    name: r.name.clone(),
                    version: r.version.clone(),
                    resource: Some(r.any()),
                    ..DeltaResource::default()
                })
                .collect(),
            type_url: self.ty.type_url().to_string(),
            removed_resources: self.removed_resources.clone(),
            nonce: self.nonce.clone(),
            ..DeltaDiscoveryResponse::default()
        }
    }
}

impl Response {
    pub fn type_url(&self) -> &str {
        match self {
            Response::Sotw(r) => r.ty.type_url(),
            Response::Delta(r) => r.ty.type_url(),
        }
    }

    pub fn nonce(&self) -> &str {
        match self {
            Response::Sotw(r) => &r.nonce,
            Response::Delta(r) => &r.nonce,
        }
    }

    /// The version of the type's subscribed set this response brings the client to.
    pub fn version(&self) -> &str {
        match self {
            Response::Sotw(r) => &r.version_info,
            Response::Delta(r) => &r.system_version_info,
        }
    }

    /// The response as a prost message (a copy; for tests and inspection).
    pub fn into_sotw(self) -> Option<DiscoveryResponse> {
        match self {
            Response::Sotw(r) => Some(r.to_proto()),
            Response::Delta(_) => None,
        }
    }

    /// The response as a prost message (a copy; for tests and inspection).
    pub fn into_delta(self) -> Option<DeltaDiscoveryResponse> {
        match self {
            Response::Delta(r) => Some(r.to_proto()),
            Response::Sotw(_) => None,
        }
    }
}

/// Protocol state of one ADS stream.
#[derive(Debug)]
pub struct Connection {
    mode: Mode,
    resources: Arc<ProxyResources>,
    /// Last nonce handed out; the next one is this plus one.
    nonces: u64,
    /// Types the client has asked for at least once on this stream.
    pub(super) types: BTreeMap<ResourceType, TypeState>,
    /// NACKs received on this stream, of every type.
    pub(super) nacks: u64,
}

/// What the connection knows about one resource type.
#[derive(Debug, Default)]
pub(super) struct TypeState {
    /// Subscribed to every resource of the type.
    pub(super) wildcard: bool,
    /// Resources subscribed by name.
    pub(super) names: Names,
    /// State of the world: the client has named resources (or `*`) in a
    /// request of this type, so an empty list no longer means wildcard.
    pub(super) named: bool,
    /// Nonce of the last response sent; only a request echoing it is an ACK or NACK.
    pub(super) nonce: Option<String>,
    /// The push gate: the last response sent has been neither ACKed nor
    /// NACKed yet, so new resources wait (see [`Connection::on_resources`]).
    pub(super) awaiting: bool,
    /// New resources arrived that this type has not been brought up to date
    /// with; a push is due as soon as the gate opens.
    pub(super) behind: bool,
    pub(super) sent_version: Option<String>,
    pub(super) acked_version: Option<String>,
    pub(super) nack: Option<Nack>,
    /// The newest snapshot generation whose content of this type the last
    /// response sent carries (a later set that changes nothing of the type
    /// moves it on), and the same for the last response ACKed.
    pub(super) sent_generation: Option<u64>,
    pub(super) acked_generation: Option<u64>,
    /// What the client holds of each resource of the type, by name: in Delta
    /// as the protocol defines it, in state of the world what the responses
    /// sent so far leave it with (RDS and EDS responses may carry a subset).
    pub(super) client_has: HeldSet,
    /// LDS and RDS: `client_has` as of the last ACK. With `client_has` it is
    /// what the client may be using, so what keeps a cluster it references.
    pub(super) acked_has: HeldSet,
}

/// What a request says about the last response of its type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Reply {
    /// No nonce: a new subscription, or a reconnect.
    Initial,
    /// A nonce other than the last one sent: the client has not seen our latest response yet.
    Stale,
    Ack,
    Nack,
}

impl TypeState {
    /// Records the ACK or NACK carried by a request echoing `nonce`.
    pub(super) fn on_reply(
        &mut self,
        ty: ResourceType,
        nonce: &str,
        error: Option<RpcStatus>,
    ) -> Reply {
        if nonce.is_empty() {
            return Reply::Initial;
        }
        if self.nonce.as_deref() != Some(nonce) {
            debug!(
                type_url = ty.type_url(),
                nonce,
                expected = self.nonce.as_deref().unwrap_or(""),
                "stale nonce, ignored"
            );
            return Reply::Stale;
        }
        let reply = match error {
            Some(error) => {
                let version = self.sent_version.clone().unwrap_or_default();
                warn!(
                    type_url = ty.type_url(),
                    %version,
                    code = error.code,
                    error = %error.message,
                    "proxy rejected configuration (NACK)"
                );
                self.nack = Some(Nack {
                    version,
                    message: error.message,
                    objects: Vec::new(),
                });
                Reply::Nack
            }
            None => {
                self.acked_version = self.sent_version.clone();
                self.acked_generation = self.sent_generation;
                if matches!(ty, ResourceType::Listener | ResourceType::Route) {
                    self.acked_has = self.client_has.clone();
                }
                Reply::Ack
            }
        };
        self.awaiting = false;
        reply
    }

    /// Records a response as sent: it carries the newest resources, and
    /// closes the gate until the client answers it.
    pub(super) fn record_sent(&mut self, nonce: &str, version: &str, generation: u64) {
        self.nonce = Some(nonce.to_string());
        self.sent_version = Some(version.to_string());
        self.sent_generation = Some(generation);
        self.awaiting = true;
        self.behind = false;
    }

    /// Records that the set of `generation` changes nothing the client
    /// should have of this type: what was last sent is that generation's
    /// content, and so is what was last ACKed if the client has ACKed the
    /// last response.
    pub(super) fn caught_up(&mut self, generation: u64) {
        if self.sent_generation.is_none() {
            return;
        }
        self.sent_generation = Some(generation);
        if !self.awaiting && self.acked_version.is_some() && self.acked_version == self.sent_version
        {
            self.acked_generation = Some(generation);
        }
    }

    /// The subscribed resources that exist, in name order, with those `kept`
    /// for make-before-break (see [`Connection::kept`]).
    pub(super) fn subscribed<'r>(
        &'r self,
        resources: &'r ResourceSet,
        kept: &'r ResourceMap,
    ) -> Subscribed<'r> {
        let all = self.wildcard || self.names.are_all_of(resources);
        if all && kept.is_empty() {
            return Subscribed::Whole(resources);
        }
        let mut out: Vec<&'r Arc<Resource>> = if all {
            resources.values().collect()
        } else {
            self.names.iter().filter_map(|n| resources.get(n)).collect()
        };
        if !kept.is_empty() {
            let chosen = |name: &str| self.wildcard || self.names.contains(name);
            out.extend(kept.values().filter(|r| chosen(&r.name)));
            out.sort_by(|a, b| a.name.cmp(&b.name));
            out.dedup_by(|later, first| later.name == first.name);
        }
        Subscribed::Listed(out)
    }

    /// Forgets what the client held of resources it no longer subscribes to.
    pub(super) fn forget_unsubscribed(&mut self) {
        if self.wildcard {
            return;
        }
        let names = &self.names;
        self.client_has.retain(|h| names.contains(h.name()));
        self.acked_has.retain(|h| names.contains(h.name()));
    }
}

/// The resources a client subscribes to of one type, in name order.
#[derive(Debug)]
pub(super) enum Subscribed<'r> {
    /// Every resource of the set and nothing else: its version is theirs,
    /// hashed once for every proxy holding the set.
    Whole(&'r ResourceSet),
    Listed(Vec<&'r Arc<Resource>>),
}

impl<'r> Subscribed<'r> {
    pub(super) fn iter(&self) -> Box<dyn Iterator<Item = &'r Arc<Resource>> + '_> {
        match self {
            Subscribed::Whole(set) => Box::new(set.values()),
            Subscribed::Listed(resources) => Box::new(resources.iter().copied()),
        }
    }

    /// The set, when these are all of it.
    pub(super) fn whole(&self) -> Option<&'r ResourceSet> {
        match self {
            Subscribed::Whole(set) => Some(set),
            Subscribed::Listed(_) => None,
        }
    }

    pub(super) fn contains(&self, name: &str) -> bool {
        match self {
            Subscribed::Whole(set) => set.contains_key(name),
            Subscribed::Listed(resources) => resources
                .binary_search_by(|r| r.name.as_str().cmp(name))
                .is_ok(),
        }
    }

    /// The version of the subscribed set.
    pub(super) fn version(&self) -> String {
        match self {
            Subscribed::Whole(set) => set.version(),
            Subscribed::Listed(resources) => {
                ProxyResources::version_of(resources.iter().map(|r| r.as_ref()))
            }
        }
    }
}

impl Connection {
    /// A connection speaking state-of-the-world xDS.
    pub fn sotw() -> Self {
        Self::new(Mode::Sotw)
    }

    /// A connection speaking incremental (Delta) xDS.
    pub fn delta() -> Self {
        Self::new(Mode::Delta)
    }

    pub fn new(mode: Mode) -> Self {
        Connection {
            mode,
            resources: Arc::default(),
            nonces: 0,
            types: BTreeMap::new(),
            nacks: 0,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The resources the connection currently serves.
    pub fn resources(&self) -> &Arc<ProxyResources> {
        &self.resources
    }

    /// Takes a new compiled set for this proxy. Returns what to push, in CDS,
    /// EDS, LDS, RDS, SDS order, for requested types whose subscribed content
    /// changed since it was last sent, and whose last response the client
    /// has answered.
    ///
    /// That is the push gate: at most one server-initiated response per type
    /// is in flight. A type whose last response is still unanswered is only
    /// marked behind; sets arriving meanwhile coalesce (the connection keeps
    /// the newest), and the push goes out, with the newest content, from the
    /// `on_*_request` that carries the ACK or NACK. Answers to the client's
    /// own requests (a new subscription, changed names: EDS after CDS, RDS
    /// after LDS) never wait behind the gate, or Envoy's cluster and
    /// listener warming would stall; they carry the newest content, so they
    /// also settle anything held for their type.
    pub fn on_resources(&mut self, resources: Arc<ProxyResources>) -> Vec<Response> {
        self.resources = resources;
        for (ty, state) in &mut self.types {
            state.names.settle(self.resources.get(*ty));
            state.behind = true;
        }
        self.due_pushes()
    }

    /// The pushes the gate lets through now: every type that is behind and
    /// not awaiting an answer, in make-before-break order.
    pub(super) fn due_pushes(&mut self) -> Vec<Response> {
        let mut out = Vec::new();
        for ty in ResourceType::ALL {
            let Some(state) = self.types.get_mut(&ty) else {
                continue;
            };
            if !state.behind || state.awaiting {
                continue;
            }
            state.behind = false;
            let push = match self.mode {
                Mode::Sotw => self.sotw_push(ty),
                Mode::Delta => self.delta_response(ty, false, &[]),
            };
            match push {
                Some(push) => out.push(push),
                None => {
                    let generation = self.resources.generation();
                    if let Some(state) = self.types.get_mut(&ty) {
                        state.caught_up(generation);
                    }
                }
            }
        }
        out
    }

    /// A request's own answer (if any) followed by the pushes that its ACK or
    /// NACK let through, in make-before-break order.
    pub(super) fn answer(&mut self, own: Option<Response>) -> Vec<Response> {
        let mut out: Vec<Response> = own.into_iter().collect();
        out.extend(self.due_pushes());
        out.sort_by_key(|r| ResourceType::from_type_url(r.type_url()));
        out
    }

    /// How many NACKs the proxy has sent on this stream.
    pub fn nacks(&self) -> u64 {
        self.nacks
    }

    /// Per requested type URL: the version and generation sent, the version
    /// and generation ACKed, the last NACK.
    /// Names the objects behind the last NACK of `ty`.
    pub fn blame_nack(&mut self, ty: ResourceType, objects: Vec<crate::blame::Blamed>) {
        if let Some(nack) = self.types.get_mut(&ty).and_then(|s| s.nack.as_mut()) {
            nack.objects = objects;
        }
    }

    pub fn status(&self) -> XdsStatus {
        let mut out = XdsStatus::new();
        self.status_into(&mut out);
        out
    }

    /// [`Connection::status`] written over `out`, reusing what it holds: a
    /// stream publishes its status after every message, so this runs for
    /// every push and every ACK of every proxy, and allocates nothing once
    /// the types are known.
    pub fn status_into(&self, out: &mut XdsStatus) {
        out.retain(|url, _| {
            ResourceType::from_type_url(url).is_some_and(|ty| self.types.contains_key(&ty))
        });
        for (ty, s) in &self.types {
            let status = match out.get_mut(ty.type_url()) {
                Some(status) => status,
                None => out.entry(ty.type_url().to_string()).or_default(),
            };
            status.sent_version.clone_from(&s.sent_version);
            status.acked_version.clone_from(&s.acked_version);
            status.nack.clone_from(&s.nack);
            status.sent_generation = s.sent_generation;
            status.acked_generation = s.acked_generation;
        }
    }

    /// Make-before-break across types on removal: the resources of `ty`
    /// that the newest set drops but that must stay in what is sent. A
    /// cluster stays while a listener or route configuration the client may
    /// be using (sent to it, or last ACKed) still sends traffic to it, and
    /// with it the load assignment it reads. Once the client has ACKed the
    /// LDS and RDS that stop naming it, nothing keeps it, and the next CDS
    /// (or Delta's `removed_resources`) drops it: Envoy never holds a route
    /// to a cluster it has already deleted.
    pub(super) fn kept(&self, ty: ResourceType) -> ResourceMap {
        match ty {
            ResourceType::Cluster => self.kept_clusters(),
            ResourceType::Endpoint => {
                let clusters = self.kept_clusters();
                let (Some(eds), false) = (self.types.get(&ty), clusters.is_empty()) else {
                    return ResourceMap::new();
                };
                let current = self.resources.get(ty);
                clusters
                    .values()
                    .flat_map(|c| c.references())
                    .filter(|name| !current.contains_key(name))
                    .filter_map(|name| eds.client_has.get(name)?.sent())
                    .map(|r| (r.name.clone(), Arc::clone(r)))
                    .collect()
            }
            ResourceType::Listener | ResourceType::Route | ResourceType::Secret => {
                ResourceMap::new()
            }
        }
    }

    fn kept_clusters(&self) -> ResourceMap {
        let Some(cds) = self.types.get(&ResourceType::Cluster) else {
            return ResourceMap::new();
        };
        let current = self.resources.get(ResourceType::Cluster);
        // The client holds what was last sent; when that was the whole
        // current set, it holds nothing that is no longer current.
        if cds.wildcard && cds.sent_version.as_deref() == Some(current.version().as_str()) {
            return ResourceMap::new();
        }
        // Both maps are sorted by name: one walk over both finds what the
        // client has that is no longer current, without a lookup per
        // cluster. This runs for every CDS and EDS evaluation and every
        // LDS and RDS request, with thousands of clusters per proxy.
        let mut names = current.keys().peekable();
        let mut dropped: Vec<&Arc<Resource>> = Vec::new();
        for held in cds.client_has.iter() {
            let name = held.name();
            while names.next_if(|n| n.as_str() < name).is_some() {}
            if names.peek().is_some_and(|n| n.as_str() == name) {
                continue;
            }
            dropped.extend(held.sent());
        }
        if dropped.is_empty() {
            return ResourceMap::new();
        }
        let users: Vec<&Arc<Resource>> = [ResourceType::Listener, ResourceType::Route]
            .iter()
            .filter_map(|ty| self.types.get(ty))
            .flat_map(|s| s.client_has.iter().chain(s.acked_has.iter()))
            .filter_map(HeldRef::sent)
            .collect();
        dropped
            .into_iter()
            .filter(|c| users.iter().any(|u| u.references_name(&c.name)))
            .map(|c| (c.name.clone(), Arc::clone(c)))
            .collect()
    }

    /// Whether a request of `ty` may change what [`Connection::kept`] keeps:
    /// one of LDS or RDS while a cluster is kept. Then CDS and EDS are due a
    /// look once the request is handled.
    pub(super) fn may_release(&self, ty: ResourceType) -> bool {
        matches!(ty, ResourceType::Listener | ResourceType::Route)
            && !self.kept_clusters().is_empty()
    }

    /// Marks CDS and EDS behind, after a request that released kept clusters.
    pub(super) fn recheck_removals(&mut self) {
        for ty in [ResourceType::Cluster, ResourceType::Endpoint] {
            if let Some(state) = self.types.get_mut(&ty) {
                state.behind = true;
            }
        }
    }

    pub(super) fn next_nonce(&mut self) -> String {
        self.nonces += 1;
        self.nonces.to_string()
    }
}
