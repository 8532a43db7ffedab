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
//! Names follow the xDS spec's subscription rules. For LDS and CDS, a
//! request with no names from a client that has never named any (Envoy's
//! way), or one naming `*`, is a wildcard subscription: everything is sent.
//! Once a client names resources (proxyless gRPC asks for its listener by
//! name, then for the route configuration and clusters it names), it gets
//! just those; an empty list then means none. RDS and EDS are never
//! wildcard: they send the requested names that exist.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use tracing::{debug, warn};

use crate::resources::{ProxyResources, ResourceType};
use crate::xds::connection::{Connection, Mode, Reply, Response, TypeState};

/// The name that stands for every resource of a wildcard type.
const WILDCARD: &str = "*";

/// Reads a request's names: whether it subscribes to the wildcard, and
/// whether the client has now named resources explicitly (which ends the
/// legacy meaning of an empty list). Removes `*` from `names`.
fn subscription(ty: ResourceType, names: &mut BTreeSet<String>, named: bool) -> (bool, bool) {
    if !ty.is_wildcard() {
        return (false, named || !names.is_empty());
    }
    if names.remove(WILDCARD) {
        return (true, true);
    }
    if names.is_empty() && !named {
        return (true, false);
    }
    (false, true)
}

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
        let mut names: BTreeSet<String> = resource_names.into_iter().collect();

        if response_nonce.is_empty() {
            let state = self.types.entry(ty).or_default();
            let (wildcard, named) = subscription(ty, &mut names, state.named);
            debug!(%type_url, %version_info, wildcard, names = names.len(), "subscribe");
            state.wildcard = wildcard;
            state.named = named;
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
        if reply == Reply::Stale {
            return Vec::new();
        }
        let (wildcard, named) = subscription(ty, &mut names, state.named);
        state.named = named;
        // Under a wildcard, names beside `*` select nothing more.
        let unchanged = state.wildcard == wildcard && (wildcard || state.names == names);
        state.wildcard = wildcard;
        state.names = names;
        if unchanged {
            return Vec::new();
        }
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
        let bodies = subscribed.values().map(|r| r.body.clone()).collect();
        state.nonce = Some(nonce.clone());
        state.sent_version = Some(version.clone());
        Response::Sotw(DiscoveryResponse {
            version_info: version,
            resources: bodies,
            type_url: ty.type_url().to_string(),
            nonce,
            ..DiscoveryResponse::default()
        })
    }
}
