//! Strict decoding of one YAML document into the typed objects.
//!
//! ```text
//! serde_yaml::Value ──► Fields (known / not yet supported / ignored / unknown keys)
//!                   ──► scalars (string, port, weight, enum) ──► typed spec
//! ```
//!
//! Decoding walks the YAML tree by hand rather than through serde derives, so
//! that every error carries the exact path from the document root, and so that
//! Istio fields Bowline does not honour yet get their own message instead of
//! "unknown field". A structural error stops decoding of the document; findings
//! that do not prevent building the value (such as a StringMatch that sets two
//! kinds of match) go to a [`Findings`] list so they are reported together with
//! the semantic validation.

mod actions;
mod catalog;
mod duration;
mod fields;
mod matching;
mod meta;
mod routing;
mod scalar;
mod security;
mod service;
mod sidecar;
mod telemetry;
mod traffic;
mod workload;

pub(crate) use catalog::ShapeId;
pub(crate) use duration::duration;
pub(crate) use fields::{Fields, Shape};
pub use meta::DEFAULT_NAMESPACE;
pub(crate) use meta::{decode_meta, peek_key};
pub(crate) use routing::decode_virtual_service;
pub(crate) use scalar::{
    boolean, describe, keyword, list, map_entries, number, port, port_map, string, string_list,
    string_map, uint32, uint64,
};
pub(crate) use security::{
    decode_authorization_policy, decode_peer_authentication, decode_request_authentication,
};
pub(crate) use service::decode_service;
pub(crate) use sidecar::decode_sidecar;
pub(crate) use telemetry::decode_telemetry;
pub(crate) use traffic::decode_destination_rule;
pub(crate) use workload::{decode_service_entry, decode_workload_entry};

use crate::diag::{Diagnostic, FieldPath};

/// A structural problem that stops decoding of the document.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DecodeError {
    pub(crate) path: FieldPath,
    pub(crate) message: String,
}

impl DecodeError {
    pub(crate) fn new(path: &FieldPath, message: impl Into<String>) -> Self {
        DecodeError {
            path: path.clone(),
            message: message.into(),
        }
    }

    pub(crate) fn into_diagnostic(self) -> Diagnostic {
        Diagnostic::error(self.path, self.message)
    }
}

pub(crate) type Result<T, E = DecodeError> = std::result::Result<T, E>;

/// Problems found while decoding that do not stop it: reported alongside the
/// semantic validation, all at once.
pub(crate) type Findings = Vec<Diagnostic>;

#[cfg(test)]
mod tests;
