//! Citadel: the mesh's certificate authority.
//!
//! It issues short-lived SPIFFE certificates to workloads, so that sidecars
//! talk over mutual TLS. It owns the root of trust (self-signed and kept in
//! the state directory, or plugged in from Istio's `cacerts` files), the
//! trust bundle, the tokens workloads authenticate with, and the
//! per-identity rate limit on signing.
//!
//! ```text
//! bearer token ──► token::Verifier ──► SpiffeId (the caller) ─┐
//! CSR (PEM) ─────► csr::verify (signature, requested SANs) ───┼─► Ca::issue ──► [leaf, chain…, root] (PEM)
//!                           limit::RateLimiter (per identity) ─┘
//! state dir: root-cert.pem, root-key.pem (0600), token-key.pem (0600), cacerts/ (plug-in),
//!            rotation.json and root-N-{cert,key,cross}.pem while a root rotates (see `rotation`)
//! ```
//!
//! Pure: no tokio, tonic or kube here; the gRPC service is `citadel-server`.
//! Files are read and written with `std::fs`, keys atomically and mode 0600.
//! No key material is ever logged or put in an error message.

pub mod admin_token;
pub mod authority;
pub mod csr;
pub mod duration;
pub mod identity;
pub mod limit;
pub mod pem;
pub mod review;
pub mod rotation;
pub mod signing;
pub mod state;
pub mod token;
pub mod verify;

pub use authority::{Ca, CaConfig, IssueRequest, ServingCert, Trust};
pub use identity::{DEFAULT_TRUST_DOMAIN, SpiffeId};
pub use limit::RateLimiter;
pub use signing::{Credential, Signer};
pub use token::{TOKEN_AUDIENCE, Tokens};

/// What a refusal means to a caller, in the terms of gRPC's status codes
/// (istiod answers with the same ones).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No, expired, forged or wrong-audience credentials.
    Unauthenticated,
    /// The caller asked for an identity that is not its own.
    PermissionDenied,
    /// A bad CSR or a TTL over the maximum.
    InvalidArgument,
    /// The caller's signing rate is over its limit.
    ResourceExhausted,
    /// The CA failed (a file, a key): not the caller's doing.
    Internal,
}
