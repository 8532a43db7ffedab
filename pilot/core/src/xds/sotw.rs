//! State-of-the-world rules: every response carries the whole subscribed set.
//!
//! - A request with no nonce (first request, or a reconnect carrying the
//!   proxy's old `version_info`) is always answered.
//! - A request echoing an older nonce is stale and ignored; the proxy will
//!   send its current subscription again when it ACKs our latest response.
//! - A NACK is recorded and answered with nothing: the proxy keeps its last
//!   good configuration, and the rejected version is not sent again.
//! - An ACK is answered only when the subscribed names changed. An ACK or
//!   NACK also opens the push gate of its type (see
//!   [`Connection::on_resources`]), so a push held behind it goes out then.
//! - A request is answered with every subscribed resource; a push after new
//!   resources carries, for RDS and EDS, only those whose version differs
//!   from the client's (LDS and CDS are always complete; see [`complete`]).
//!
//! Names follow the xDS spec's subscription rules. For LDS and CDS, a
//! request with no names from a client that has never named any (Envoy's
//! way), or one naming `*`, is a wildcard subscription: everything is sent.
//! Once a client names resources (proxyless gRPC asks for its listener by
//! name, then for the route configuration and clusters it names), it gets
//! just those; an empty list then means none. RDS and EDS are never
//! wildcard: they send the requested names that exist.

use std::sync::Arc;

use tracing::{debug, warn};

use crate::resources::{ProxyResources, Resource, ResourceSet, ResourceType};
use crate::xds::connection::{Connection, Mode, Names, Payload, Reply, Response, SotwResponse};
use crate::xds::request::{RequestNames, SotwRequest};

/// The name that stands for every resource of a wildcard type.
const WILDCARD: &str = "*";

/// Reads a request's names: whether it subscribes to the wildcard, and
/// whether the client has now named resources explicitly (which ends the
/// legacy meaning of an empty list); returns the names without `*`.
fn subscription(ty: ResourceType, names: RequestNames, named: bool) -> (bool, bool, RequestNames) {
    if !ty.is_wildcard() {
        let named = named || !names.is_empty();
        return (false, named, names);
    }
    if names.contains(WILDCARD) {
        return (true, true, names.without(WILDCARD));
    }
    if names.is_empty() && !named {
        return (true, false, names);
    }
    (false, true, names)
}

impl Connection {
    /// Handles one state-of-the-world request; returns what to send back.
    /// Takes prost's `DiscoveryRequest` too (tests build those); the
    /// server decodes [`SotwRequest`]s straight off the wire.
    pub fn on_sotw_request(&mut self, req: impl Into<SotwRequest>) -> Vec<Response> {
        if self.mode() != Mode::Sotw {
            warn!("state-of-the-world request on a delta stream, ignored");
            return Vec::new();
        }
        let SotwRequest {
            version_info,
            node: _,
            resource_names,
            type_url,
            response_nonce,
            error_detail,
        } = req.into();
        let Some(ty) = ResourceType::from_type_url(&type_url) else {
            warn!(%type_url, "request for an unsupported resource type, ignored");
            return Vec::new();
        };
        let names = RequestNames::new(resource_names);
        let release = self.may_release(ty);
        let current = self.resources().get(ty).clone();

        if response_nonce.is_empty() {
            let state = self.types.entry(ty).or_default();
            let (wildcard, named, names) = subscription(ty, names, state.named);
            debug!(%type_url, %version_info, wildcard, names = names.len(), "subscribe");
            state.wildcard = wildcard;
            state.named = named;
            state.names = Names::from_request(&names, &current);
            let own = self.sotw_response(ty);
            if release {
                self.recheck_removals();
            }
            return self.answer(Some(own));
        }

        let Some(state) = self.types.get_mut(&ty) else {
            debug!(%type_url, nonce = %response_nonce, "nonce for a type never requested, ignored");
            return Vec::new();
        };
        let reply = state.on_reply(ty, &response_nonce, error_detail);
        if reply == Reply::Nack {
            self.nacks += 1;
        }
        if reply == Reply::Stale {
            return Vec::new();
        }
        let (wildcard, named, names) = subscription(ty, names, state.named);
        state.named = named;
        // Under a wildcard, names beside `*` select nothing more.
        let unchanged = state.wildcard == wildcard && (wildcard || state.names.same_as(&names));
        state.wildcard = wildcard;
        if !unchanged {
            state.names = Names::from_request(&names, &current);
            state.forget_unsubscribed();
        }
        let rejected = match (reply, &state.nack) {
            (Reply::Nack, Some(nack)) => Some(nack.version.clone()),
            _ => None,
        };
        let own = if unchanged || rejected.is_some_and(|v| v == self.sotw_version(ty)) {
            None
        } else {
            Some(self.sotw_response(ty))
        };
        if release {
            self.recheck_removals();
        }
        // An ACK or NACK (the nonce is current): the gate is open again.
        self.answer(own)
    }

    /// The response for `ty` after new resources, if what the client should
    /// have changed. LDS and CDS send the complete set; RDS and EDS only the
    /// resources whose version differs from the client's (see [`complete`]).
    pub(super) fn sotw_push(&mut self, ty: ResourceType) -> Option<Response> {
        let resources = self.resources().clone();
        let kept = self.kept(ty);
        let state = self.types.get(&ty)?;
        let subscribed = state.subscribed(resources.get(ty), &kept);
        let version = subscribed.version();
        if state.sent_version.as_deref() == Some(version.as_str()) {
            return None;
        }
        if complete(ty) {
            return Some(self.sotw_response(ty));
        }
        // Both are in name order: one walk finds what differs.
        let mut held = state.client_has.iter().peekable();
        let changed: Vec<Arc<Resource>> = subscribed
            .iter()
            .filter(|r| {
                while held.next_if(|h| h.name() < r.name.as_str()).is_some() {}
                held.peek()
                    .filter(|h| h.name() == r.name.as_str())
                    .map(|h| h.version())
                    != Some(r.version.as_str())
            })
            .map(Arc::clone)
            .collect();
        drop(held);
        if changed.is_empty() {
            return None;
        }
        // With the changed ones, the client holds every subscribed resource.
        let holds = subscribed.whole().cloned();
        Some(self.send(ty, version, Payload::Listed(changed), holds))
    }

    /// Version of the subscribed set of `ty`.
    fn sotw_version(&self, ty: ResourceType) -> String {
        let kept = self.kept(ty);
        match self.types.get(&ty) {
            Some(state) => state.subscribed(self.resources().get(ty), &kept).version(),
            None => ProxyResources::version_of([]),
        }
    }

    /// Builds the response carrying every subscribed resource of `ty`.
    fn sotw_response(&mut self, ty: ResourceType) -> Response {
        let resources = self.resources().clone();
        let kept = self.kept(ty);
        let state = self.types.entry(ty).or_default();
        let subscribed = state.subscribed(resources.get(ty), &kept);
        let version = subscribed.version();
        let holds = subscribed.whole().cloned();
        let all = match &holds {
            Some(set) => Payload::of(set),
            None => Payload::Listed(subscribed.iter().map(Arc::clone).collect()),
        };
        if complete(ty) {
            state.client_has.clear();
        } else {
            // The client drops what it no longer names.
            state.forget_unsubscribed();
        }
        self.send(ty, version, all, holds)
    }

    /// Records `resources` as sent at `version` and builds their response.
    /// `holds` is the set the client holds all of once it has them, when
    /// that is what the response brings it to.
    fn send(
        &mut self,
        ty: ResourceType,
        version: String,
        resources: Payload,
        holds: Option<ResourceSet>,
    ) -> Response {
        let nonce = self.next_nonce();
        let generation = self.resources().generation();
        let state = self.types.entry(ty).or_default();
        match (holds, &resources) {
            (Some(set), _) => state.client_has.hold(&set),
            (None, Payload::Listed(list)) => state.client_has.insert_sorted(list),
            (None, Payload::Whole(whole)) => state.client_has.hold(whole.set()),
        }
        state.record_sent(&nonce, &version, generation);
        Response::Sotw(SotwResponse {
            version_info: version,
            resources,
            ty,
            nonce,
        })
    }
}

/// Whether a state-of-the-world response of `ty` must carry every
/// subscribed resource. The xDS spec asks it of LDS and CDS only (a
/// listener or cluster left out is deleted); an RDS or EDS response may carry
/// a subset, and the client keeps the subscribed resources it leaves out.
/// Envoy does: its SotW mux (`GrpcMuxImpl::processDiscoveryResources` in
/// source/extensions/config_subscription/grpc/grpc_mux_impl.cc) calls a
/// named watch's `onConfigUpdate` only when the response carries one of
/// its names ("onConfigUpdate should be called only on watches
/// (clusters/listeners) that have updates in the message for EDS/RDS"),
/// while the wildcard watches of LDS and CDS always get the whole response.
/// So a push after an endpoint change carries only the changed load
/// assignments.
fn complete(ty: ResourceType) -> bool {
    ty.is_wildcard()
}
