//! Pilot's core: turns the mesh's configuration into Envoy configuration,
//! and speaks the xDS protocol as a state machine.
//!
//! ```text
//! ConfigSet ──► Snapshot::build (immutable, Arc) ──► ChangeSet + PushContext ──► compile (pure) ──► ProxyResources
//!                                                                                                       │
//!                                        requests ──► xds::Connection (state machine) ◄─────────────────┘
//!                                                          └──► Vec<Response> (CDS, EDS, LDS, RDS order)
//! ```
//!
//! Everything here is a function of its inputs: no sockets, files,
//! processes, clock or environment. Cargo holds the seam: this crate does
//! not depend on tokio, tonic, axum, clap, anyhow or nix (a test reads the
//! resolved dependency tree to keep it so). The runtime that moves these
//! values over the network is `pilot-server`.

pub mod blame;
pub mod compile;
pub mod diff;
pub mod explain;
pub mod hosts;
pub mod mesh;
pub mod proxy;
pub mod resources;
pub mod snapshot;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
pub mod topology;
pub mod xds;
