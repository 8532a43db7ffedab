//! Bowline's own protos: the trust an agent follows, `bowline.ca.v1.Trust`,
//! served beside the CA. Hand-written prost messages, as [`crate::istio`]'s.
//!
//! ```text
//! rpc Watch(WatchTrustRequest) returns (stream TrustUpdate)
//!   the current trust at once, then each change
//! ```

/// `bowline.ca.v1.WatchTrustRequest`: nothing to ask yet.
#[derive(Clone, PartialEq, prost::Message)]
pub struct WatchTrustRequest {}

/// `bowline.ca.v1.TrustUpdate`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TrustUpdate {
    /// Every root of the trust bundle, PEM, one after another.
    #[prost(string, tag = "1")]
    pub bundle_pem: String,
    /// The root workload chains end at now, PEM, as in the chains.
    #[prost(string, tag = "2")]
    pub signing_root_pem: String,
    /// A workload whose chain ends at another root renews now
    /// (`bowline ca rotate-root --force`).
    #[prost(bool, tag = "3")]
    pub reissue: bool,
}

/// The gRPC service name.
pub const TRUST_SERVICE: &str = "bowline.ca.v1.Trust";
/// Its one method's path.
pub const WATCH_TRUST_PATH: &str = "/bowline.ca.v1.Trust/Watch";
