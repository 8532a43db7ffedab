//! Incremental (Delta) rules: send only what the client does not have.
//!
//! - Subscriptions change by `resource_names_subscribe` / `_unsubscribe`; the
//!   first request of LDS or CDS with no names (or `*`) is a wildcard.
//! - The connection tracks, per type, the version of each resource the client
//!   has, seeded on reconnect from `initial_resource_versions`.
//! - A response carries the subscribed resources whose version differs from
//!   the client's, and `removed_resources` for the names the client has that
//!   it should no longer have (deleted, or unsubscribed).
//! - ACK and NACK follow the nonce as in state of the world; a stale nonce is
//!   ignored but the subscription changes in its request still apply.
//! - A request is answered only when it changes what should be sent, except
//!   the first request of a type, which is always answered.

use std::collections::BTreeMap;
use std::sync::Arc;

use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use tracing::{debug, warn};

use crate::resources::{ProxyResources, Resource, ResourceType};
use crate::xds::connection::{Connection, DeltaResponse, Mode, Reply, Response, TypeState};

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
        let state = self.types.entry(ty).or_default();
        if first {
            state.wildcard = ty.is_wildcard() && resource_names_subscribe.is_empty();
            state.client_has = initial_resource_versions.into_iter().collect();
            debug!(
                %type_url,
                wildcard = state.wildcard,
                known = state.client_has.len(),
                "subscribe"
            );
        }
        for name in resource_names_subscribe {
            if name == WILDCARD {
                state.wildcard = true;
            } else {
                state.names.insert(name);
            }
        }
        for name in resource_names_unsubscribe {
            if name == WILDCARD {
                state.wildcard = false;
            } else {
                state.names.remove(&name);
            }
        }
        if state.on_reply(ty, &response_nonce, error_detail) == Reply::Nack {
            self.nacks += 1;
        }
        self.delta_response(ty, first).into_iter().collect()
    }

    /// The response that brings the client's `ty` up to date, if it is behind
    /// (or always, when `always`).
    pub(super) fn delta_response(&mut self, ty: ResourceType, always: bool) -> Option<Response> {
        let resources = self.resources().clone();
        let state: &TypeState = self.types.get(&ty)?;
        let subscribed = state.subscribed(ty, &resources);
        let changed: Vec<Arc<Resource>> = subscribed
            .values()
            .filter(|r| state.client_has.get(&r.name) != Some(&r.version))
            .map(|&r| r.clone())
            .collect();
        let removed: Vec<String> = state
            .client_has
            .keys()
            .filter(|name| !subscribed.contains_key(name.as_str()))
            .cloned()
            .collect();
        if changed.is_empty() && removed.is_empty() && !always {
            return None;
        }
        let version = ProxyResources::version_of(subscribed.values().map(|r| r.as_ref()));
        let client_has: BTreeMap<String, String> = subscribed
            .values()
            .map(|r| (r.name.clone(), r.version.clone()))
            .collect();

        let nonce = self.next_nonce();
        let state = self.types.get_mut(&ty)?;
        state.client_has = client_has;
        state.nonce = Some(nonce.clone());
        state.sent_version = Some(version.clone());
        Some(Response::Delta(DeltaResponse {
            system_version_info: version,
            resources: changed,
            ty,
            removed_resources: removed,
            nonce,
        }))
    }
}
