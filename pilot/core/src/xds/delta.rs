//! Incremental (Delta) rules: send only what the client does not have.
//!
//! - Subscriptions change by `resource_names_subscribe` / `_unsubscribe`; the
//!   first request of LDS or CDS with no names (or `*`) is a wildcard.
//! - The connection tracks, per type, the version of each resource the client
//!   has, seeded on reconnect from `initial_resource_versions`.
//! - A response carries the subscribed resources whose version differs from
//!   the client's, and `removed_resources` for the names the client has that
//!   it should no longer have (deleted, or unsubscribed), and for every name
//!   subscribed explicitly that does not exist. The spec has the server say
//!   so, rather than leave the client waiting for its initial fetch
//!   timeout (Envoy's cluster warming, gRPC's does-not-exist timer); a
//!   subscription to a missing name is answered at once, and the name is
//!   listed again in every later response of its type while it stays
//!   missing. When it appears it is sent like any new resource.
//! - ACK and NACK follow the nonce as in state of the world, and open the
//!   push gate the same way; a stale nonce is ignored but the subscription
//!   changes in its request still apply, and are answered at once.
//! - A request is answered only when it changes what should be sent, except
//!   the first request of a type, which is always answered.

use std::collections::BTreeSet;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use tracing::{debug, warn};

use crate::resources::{Resource, ResourceType};
use crate::xds::connection::{
    Connection, DeltaResponse, Held, HeldRef, HeldSet, Mode, Reply, Response, TypeState,
};

/// The name that stands for every resource of a type.
const WILDCARD: &str = "*";

impl Connection {
    /// Handles one Delta request; returns what to send back.
    pub fn on_delta_request(&mut self, req: DeltaDiscoveryRequest) -> Vec<Response> {
        if self.mode() != Mode::Delta {
            warn!("delta request on a state-of-the-world stream, ignored");
            return Vec::new();
        }
        let DeltaDiscoveryRequest {
            node: _,
            type_url,
            resource_names_subscribe,
            resource_names_unsubscribe,
            resource_locators_subscribe: _,
            resource_locators_unsubscribe: _,
            initial_resource_versions,
            response_nonce,
            error_detail,
        } = req;
        let Some(ty) = ResourceType::from_type_url(&type_url) else {
            warn!(%type_url, "request for an unsupported resource type, ignored");
            return Vec::new();
        };

        let first = !self.types.contains_key(&ty);
        let release = self.may_release(ty);
        let current = self.resources().get(ty).clone();
        let state = self.types.entry(ty).or_default();
        if first {
            state.wildcard = ty.is_wildcard() && resource_names_subscribe.is_empty();
            state.client_has = initial_resource_versions
                .into_iter()
                .map(|(name, version)| Held::reported(name, version))
                .collect();
            debug!(
                %type_url,
                wildcard = state.wildcard,
                known = state.client_has.len(),
                "subscribe"
            );
        }
        let mut subscribed = Vec::new();
        for name in resource_names_subscribe {
            if name == WILDCARD {
                state.wildcard = true;
            } else {
                subscribed.push(name.clone());
                state.names.insert(name);
            }
        }
        for name in resource_names_unsubscribe {
            if name == WILDCARD {
                state.wildcard = false;
            } else {
                state.acked_has.remove(&name);
                state.names.remove(&name);
            }
        }
        let reply = state.on_reply(ty, &response_nonce, error_detail);
        state.names.settle(&current);
        if reply == Reply::Nack {
            self.nacks += 1;
        }
        let own = self.delta_response(ty, first, &subscribed);
        if release {
            self.recheck_removals();
        }
        self.answer(own)
    }

    /// The response that brings the client's `ty` up to date, if it is behind,
    /// or if one of the names `subscribed` just now does not exist (or
    /// always, when `always`).
    pub(super) fn delta_response(
        &mut self,
        ty: ResourceType,
        always: bool,
        subscribed_now: &[String],
    ) -> Option<Response> {
        let resources = self.resources().clone();
        let kept = self.kept(ty);
        let state: &TypeState = self.types.get(&ty)?;
        let subscribed = state.subscribed(resources.get(ty), &kept);
        let changed: Vec<Arc<Resource>> = subscribed
            .iter()
            .filter(|r| {
                state.client_has.get(&r.name).map(HeldRef::version) != Some(r.version.as_str())
            })
            .map(Arc::clone)
            .collect();
        let gone: BTreeSet<&str> = state
            .client_has
            .names()
            .filter(|name| !subscribed.contains(name))
            .collect();
        let missing: BTreeSet<&str> = state
            .names
            .iter()
            .filter(|name| !subscribed.contains(name))
            .collect();
        let newly_missing = subscribed_now
            .iter()
            .any(|name| missing.contains(name.as_str()));
        if changed.is_empty() && gone.is_empty() && !newly_missing && !always {
            return None;
        }
        let removed: Vec<String> = gone.union(&missing).map(|n| n.to_string()).collect();
        let version = subscribed.version();
        let client_has = match subscribed.whole() {
            Some(set) => HeldSet::Whole(set.clone()),
            None => subscribed
                .iter()
                .map(|r| Held::Sent(Arc::clone(r)))
                .collect(),
        };

        let nonce = self.next_nonce();
        let generation = self.resources().generation();
        let state = self.types.get_mut(&ty)?;
        state.client_has = client_has;
        state.record_sent(&nonce, &version, generation);
        Some(Response::Delta(DeltaResponse {
            system_version_info: version,
            resources: changed,
            ty,
            removed_resources: removed,
            nonce,
        }))
    }
}
