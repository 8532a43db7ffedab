//! The xDS server: Aggregated Discovery Service (ADS) for LDS, RDS, CDS and
//! EDS, in both the state-of-the-world (SotW) and incremental (Delta) variants.
//!
//! ```text
//!              first request ──► node::TryFrom ──► Proxy ──► compile ──► ProxyResources
//!                                                                             │
//! Envoy ◄──► server (tonic stream, moves messages) ◄──► connection (state machine, no I/O)
//!                               │                           ├─ sotw:  nonce, ACK, NACK, names
//!                               ▼                           └─ delta: what the client has
//!                      status::StatusRegistry ──► admin API
//! ```
//!
//! Only `server` touches tonic streams and tokio; `connection`, `sotw` and
//! `delta` are deterministic functions of the messages they are given.

pub mod connection;
mod delta;
pub mod node;
pub mod push;
pub mod server;
mod sotw;
pub mod status;

#[cfg(test)]
mod tests;

pub use connection::{Connection, Mode, Response};
pub use node::NodeError;
pub use server::AdsServer;
pub use status::{Inconsistency, Nack, ProxyStatus, StatusRegistry, TypeStatus, XdsStatus};
