//! The xDS protocol of one ADS stream, as a state machine with no I/O.
//!
//! ```text
//! request ──► on_sotw_request / on_delta_request ──┐
//!                                                  ├──► Vec<Response> (CDS, EDS, LDS, RDS order)
//! new ProxyResources ──► on_resources ─────────────┘
//! ```
//!
//! Per resource type it tracks what was subscribed, the last nonce and version
//! sent, the version ACKed and the last NACK; in Delta mode also the version of
//! each resource the client has. Nonces come from a per-connection counter, so
//! the same inputs always give the same outputs. The variant-specific rules
//! live in `sotw` and `delta`.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryResponse, DiscoveryResponse, Resource as DeltaResource,
};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use serde::{Deserialize, Serialize};
use tracing::{debug, warn};

use crate::resources::{ProxyResources, Resource, ResourceType};
use crate::xds::status::{Nack, TypeStatus, XdsStatus};

/// The two variants of the xDS protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// State of the world: every response carries the full set of a type.
    Sotw,
    /// Incremental: responses carry changed resources and removed names.
    Delta,
}

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
    pub resources: Vec<Arc<Resource>>,
    pub ty: ResourceType,
    pub nonce: String,
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
    pub(super) names: BTreeSet<String>,
    /// Nonce of the last response sent; only a request echoing it is an ACK or NACK.
    pub(super) nonce: Option<String>,
    pub(super) sent_version: Option<String>,
    pub(super) acked_version: Option<String>,
    pub(super) nack: Option<Nack>,
    /// Delta only: name -> version of every resource the client has.
    pub(super) client_has: BTreeMap<String, String>,
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
        match error {
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
                });
                Reply::Nack
            }
            None => {
                self.acked_version = self.sent_version.clone();
                Reply::Ack
            }
        }
    }

    /// The subscribed resources that exist, in name order.
    pub(super) fn subscribed<'r>(
        &self,
        ty: ResourceType,
        resources: &'r ProxyResources,
    ) -> BTreeMap<&'r str, &'r Arc<Resource>> {
        let all = resources.get(ty);
        if self.wildcard {
            all.iter().map(|(k, v)| (k.as_str(), v)).collect()
        } else {
            self.names
                .iter()
                .filter_map(|n| all.get_key_value(n))
                .map(|(k, v)| (k.as_str(), v))
                .collect()
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
    /// EDS, LDS, RDS order, only for requested types whose subscribed content
    /// changed since it was last sent.
    pub fn on_resources(&mut self, resources: Arc<ProxyResources>) -> Vec<Response> {
        self.resources = resources;
        let requested: Vec<ResourceType> = ResourceType::ALL
            .into_iter()
            .filter(|ty| self.types.contains_key(ty))
            .collect();
        requested
            .into_iter()
            .filter_map(|ty| match self.mode {
                Mode::Sotw => self.sotw_push(ty),
                Mode::Delta => self.delta_response(ty, false),
            })
            .collect()
    }

    /// How many NACKs the proxy has sent on this stream.
    pub fn nacks(&self) -> u64 {
        self.nacks
    }

    /// Per requested type URL: the version sent, the version ACKed, the last NACK.
    pub fn status(&self) -> XdsStatus {
        self.types
            .iter()
            .map(|(ty, s)| {
                (
                    ty.type_url().to_string(),
                    TypeStatus {
                        sent_version: s.sent_version.clone(),
                        acked_version: s.acked_version.clone(),
                        nack: s.nack.clone(),
                    },
                )
            })
            .collect()
    }

    pub(super) fn next_nonce(&mut self) -> String {
        self.nonces += 1;
        self.nonces.to_string()
    }
}
