//! Pilot: turns the mesh's configuration into Envoy configuration and serves it.
//!
//! ```text
//! ConfigSet ──► Snapshot::build (immutable, Arc) ──► ChangeSet + PushContext ──► compile (pure) ──► ProxyResources
//!                     │                                 (xds::push: which proxies, on ≤ cores threads)      │
//!                     └──► admin API (axum)                                       xds::Connection ◄─────┘
//!                                                                                 (state machine) ──► tonic ADS stream ──► Envoy
//! ```
//!
//! `compile` and `xds::connection` do no I/O and read no clock or environment;
//! sockets, files and processes live in `serve`, `xds::server`, `admin`,
//! `agent`, `echo` and `demo`.

pub mod admin;
pub mod agent;
pub mod compile;
pub mod debounce;
pub mod demo;
pub mod echo;
pub mod hosts;
pub mod mesh;
pub mod proxy;
pub mod resources;
pub mod serve;
mod signal;
pub mod snapshot;
pub mod validate;
pub mod xds;
