//! What a stream's state machine knows about each resource type, as the
//! server reports it: versions and generations sent and ACKed, and the last
//! NACK. [`crate::xds::Connection::status`] produces it; the server's status
//! registry and admin API publish it. It depends on nothing else in `xds`,
//! so the connection depends on it and not the other way round.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A configuration the proxy rejected, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nack {
    /// The version we sent that was rejected.
    pub version: String,
    /// Envoy's error text.
    pub message: String,
    /// The config objects the rejected resources came from, as far as the
    /// text names them (see [`crate::blame`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<crate::blame::Blamed>,
}

/// Protocol state of one resource type on one stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TypeStatus {
    pub sent_version: Option<String>,
    pub acked_version: Option<String>,
    /// The last NACK on this stream; kept after later ACKs, so compare its
    /// version with `acked_version` to see whether it is still current.
    pub nack: Option<Nack>,
    /// The newest snapshot generation the last response sent carries.
    pub sent_generation: Option<u64>,
    /// The newest snapshot generation the last response ACKed carries.
    pub acked_generation: Option<u64>,
}

/// Type URL -> state, for the types the proxy has requested.
pub type XdsStatus = BTreeMap<String, TypeStatus>;

/// The lowest generation ACKed across the types of `xds`, if every type has one.
pub fn acked_generation(xds: &XdsStatus) -> Option<u64> {
    let mut lowest: Option<u64> = None;
    for s in xds.values() {
        let g = s.acked_generation?;
        lowest = Some(lowest.map_or(g, |l| l.min(g)));
    }
    lowest
}
