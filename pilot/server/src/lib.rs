//! Pilot's runtime: the control plane process around `pilot-core`.
//!
//! ```text
//! FileSource ──► serve::build_loop (debounce, Snapshot::build) ──watch──► xds::push (PushQueue: compile on ≤ cores threads)
//!                                                  │                                │ newest set per proxy
//!                                                  └──► admin API (axum)            ▼
//!                                                         ▲              xds::server (one task per ADS stream)
//!                                                         └── StatusRegistry ◄──┘  └─ service + codec (tonic) ──► Envoy
//! ```
//!
//! This is the only crate that sees tonic and axum. It holds no protocol
//! logic of its own: what to send is `pilot_core::xds::Connection`'s
//! decision, what to compile is `pilot_core::compile`'s.

pub mod admin;
pub mod apply;
pub mod auth;
pub mod debounce;
pub mod jwks;
pub mod mesh;
pub mod metrics;
pub mod preview;
pub mod serve;
pub mod xds;
