//! State-of-the-world rules: every response carries the whole subscribed set.
//!
//! - A request with no nonce (first request, or a reconnect carrying the
//!   proxy's old `version_info`) is always answered.
//! - A request echoing an older nonce is stale and ignored; the proxy will
//!   send its current subscription again when it ACKs our latest response.
//! - A NACK is recorded and answered with nothing: the proxy keeps its last
//!   good configuration, and the rejected version is not sent again.
//! - An ACK is answered only when the subscribed names changed.
//!
//! LDS and CDS are wildcard: the names in requests are ignored and everything
//! is sent. RDS and EDS send the requested names that exist.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use tracing::{debug, warn};

use crate::resources::{ProxyResources, ResourceType};
use crate::xds::connection::{Connection, Mode, Reply, Response, SotwResponse, TypeState};

impl Connection {
    /// Handles one state-of-the-world request; returns what to send back.
    pub fn on_sotw_request(&mut self, req: DiscoveryRequest) -> Vec<Response> {
        if self.mode() != Mode::Sotw {
            warn!("state-of-the-world request on a delta stream, ignored");
            return Vec::new();
        }
        let DiscoveryRequest {
            version_info,
            node: _,
            resource_names,
            resource_locators: _,
            type_url,
            response_nonce,
            error_detail,
        } = req;
        let Some(ty) = ResourceType::from_type_url(&type_url) else {
            warn!(%type_url, "request for an unsupported resource type, ignored");
            return Vec::new();
        };
        let names: BTreeSet<String> = if ty.is_wildcard() {
            BTreeSet::new()
        } else {
            resource_names.into_iter().collect()
        };

        if response_nonce.is_empty() {
            let state = self.types.entry(ty).or_insert_with(|| TypeState {
                wildcard: ty.is_wildcard(),
                ..TypeState::default()
            });
            debug!(%type_url, %version_info, names = names.len(), "subscribe");
            state.names = names;
            return vec![self.sotw_response(ty)];
        }

        let Some(state) = self.types.get_mut(&ty) else {
            debug!(%type_url, nonce = %response_nonce, "nonce for a type never requested, ignored");
            return Vec::new();
        };
        let reply = state.on_reply(ty, &response_nonce, error_detail);
        if reply == Reply::Nack {
            self.nacks += 1;
        }
        if reply == Reply::Stale || state.names == names {
            return Vec::new();
        }
        state.names = names;
        let rejected = match (reply, &state.nack) {
            (Reply::Nack, Some(nack)) => Some(nack.version.clone()),
            _ => None,
        };
        if rejected.is_some_and(|v| v == self.sotw_version(ty)) {
            return Vec::new();
        }
        vec![self.sotw_response(ty)]
    }

    /// The response for `ty` after new resources, if its content changed.
    pub(super) fn sotw_push(&mut self, ty: ResourceType) -> Option<Response> {
        let version = self.sotw_version(ty);
        let sent = self.types.get(&ty)?.sent_version.as_deref();
        (sent != Some(version.as_str())).then(|| self.sotw_response(ty))
    }

    /// Version of the subscribed set of `ty`.
    fn sotw_version(&self, ty: ResourceType) -> String {
        match self.types.get(&ty) {
            Some(state) => ProxyResources::version_of(
                state
                    .subscribed(ty, self.resources())
                    .into_values()
                    .map(|r| r.as_ref()),
            ),
            None => ProxyResources::version_of([]),
        }
    }

    /// Builds the full response for `ty` and records it as sent.
    fn sotw_response(&mut self, ty: ResourceType) -> Response {
        let nonce = self.next_nonce();
        let resources = self.resources().clone();
        let state = self.types.entry(ty).or_default();
        let subscribed = state.subscribed(ty, &resources);
        let version = ProxyResources::version_of(subscribed.values().map(|r| r.as_ref()));
        let shared = subscribed.into_values().cloned().collect();
        state.nonce = Some(nonce.clone());
        state.sent_version = Some(version.clone());
        Response::Sotw(SotwResponse {
            version_info: version,
            resources: shared,
            ty,
            nonce,
        })
    }
}
