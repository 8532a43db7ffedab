//! The CA's signing API: Istio's `istio.v1.auth.IstioCertificateService`
//! over gRPC on TLS, so that Istio-style agents can ask Bowline for their
//! certificates.
//!
//! ```text
//! agent ──TLS (server cert from the same CA; client cert for renewals)──► CaServer (tonic)
//!   CreateCertificate{csr, validity_duration, metadata}
//!     authorization: Bearer TOKEN ─┐
//!     or the client certificate ───┴─► citadel::Signer ──► {cert_chain: [leaf, …, root]}
//!   refusals: UNAUTHENTICATED · PERMISSION_DENIED · INVALID_ARGUMENT · RESOURCE_EXHAUSTED
//! ```
//!
//! Beside it, `bowline.ca.v1.Trust/Watch` ([`trust`]) streams the trust
//! bundle and the signing root to agents, so that they renew at once when
//! a forced root rotation asks them to.
//!
//! What to sign and for whom is `citadel`'s decision; this crate moves
//! messages and maps refusals to status codes. It has no command line.

pub mod client;
pub mod io;
pub mod server;
pub mod service;
pub mod trust;

pub use client::CaClient;
pub use server::{CaServer, CaServerConfig};
pub use service::{CertificateService, TokenReviewer};
pub use trust::TrustService;
