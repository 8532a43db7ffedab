//! The xDS server: Aggregated Discovery Service (ADS) for LDS, RDS, CDS and
//! EDS, in both the state-of-the-world (SotW) and incremental (Delta) variants.
//!
//! ```text
//!              first request ──► node::TryFrom ──► Proxy ──► compile ──► ProxyResources
//!                                                                               │
//! Envoy ◄──► service + codec ◄──► server (moves messages) ◄──► connection (state machine, no I/O)
//!                                   │                              ├─ sotw:  nonce, ACK, NACK, names
//!                                   ▼                              └─ delta: what the client has
//!                           status::StatusRegistry ──► admin API
//! ```
//!
//! Responses carry the snapshot's encoded resources (`Arc<Resource>`), not
//! prost messages: `service` routes the two ADS methods through tonic with
//! the `codec`, which writes each response's wire format around those shared
//! bytes, so no resource is copied per proxy before the frame.
//!
//! Only `server` and `service` touch tonic streams and tokio; `connection`,
//! `sotw` and `delta` are deterministic functions of the messages they are
//! given.

pub mod codec;
pub mod connection;
mod delta;
mod held;
pub mod node;
pub mod push;
pub mod server;
mod service;
mod sotw;
pub mod status;

#[cfg(test)]
mod tests;

pub use connection::{Connection, DeltaResponse, Mode, Response, SotwResponse};
pub use node::NodeError;
pub use server::AdsServer;
pub use service::AdsService;
pub use status::{Inconsistency, Nack, ProxyStatus, StatusRegistry, TypeStatus, XdsStatus};
