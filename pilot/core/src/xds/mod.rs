//! The xDS protocol of ADS for LDS, RDS, CDS and EDS, in both the
//! state-of-the-world (SotW) and incremental (Delta) variants, with no I/O.
//!
//! ```text
//!  first request ──► Proxy::try_from(&Node) ──► compile ──► ProxyResources
//!                                                                 │
//!  request ──► connection (state machine) ◄───────────────────────┘
//!                ├─ sotw:  nonce, ACK, NACK, names
//!                └─ delta: what the client has        ──► Vec<Response> ──► status
//! ```
//!
//! `connection`, `sotw` and `delta` are deterministic functions of the
//! messages they are given; the tonic streams that carry those messages
//! live in `pilot-server`.

pub mod connection;
mod delta;
mod held;
pub mod identity;
pub mod request;
mod sotw;
pub mod status;

#[cfg(test)]
mod tests;

pub use crate::proxy::NodeError;
pub use connection::{Connection, DeltaResponse, Mode, Payload, Response, SotwResponse};
pub use identity::{IdentityMismatch, PeerIdentity, check_node_identity};
pub use request::SotwRequest;
pub use status::{Nack, TypeStatus, XdsStatus};
