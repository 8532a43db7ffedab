//! The tonic side of the Aggregated Discovery Service (ADS), for LDS, RDS,
//! CDS and EDS, in both the state-of-the-world (SotW) and incremental
//! (Delta) variants.
//!
//! ```text
//!              first request ──► Proxy::try_from(&Node) ──► push queue ──► compile ──► ProxyResources
//!                                                                                           │
//! Envoy ◄──► service + codec ◄──► server (moves messages) ◄──► pilot_core::xds::Connection ◄┘
//!                                   │
//!                                   ▼
//!                           StatusRegistry ──► admin API
//! ```
//!
//! Responses carry the snapshot's encoded resources (`Arc<Resource>`), not
//! prost messages: `service` routes the two ADS methods through tonic with
//! the `codec`, which writes each response's wire format around those shared
//! bytes, so no resource is copied per proxy before the frame.

pub mod codec;
pub mod push;
pub mod server;
mod service;
pub mod status;

#[cfg(test)]
mod tests;

pub use pilot_core::xds::{Connection, DeltaResponse, Mode, Payload, Response, SotwResponse};
pub use server::AdsServer;
pub use service::AdsService;
pub use status::{Inconsistency, ProxyEvent, ProxyStatus, StatusRegistry};
