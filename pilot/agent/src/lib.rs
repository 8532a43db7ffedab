//! The sidecar agent behind `bowline proxy` and `bowline demo`: it writes a workload's Envoy
//! bootstrap, starts Envoy and keeps it running.
//!
//! ```text
//! ProxyArgs ──► BootstrapConfig ──► bootstrap::build (pure) ──► file
//!                                                              │
//! envoy::locate ──► Sidecar::start ──► envoy -c FILE ──ADS──► control plane (xds-grpc, HTTP/2)
//!                        └─ supervisor: restart with backoff; SIGTERM then SIGKILL on stop
//! ```
//!
//! `bootstrap` does no I/O; `envoy` reads the file system; `sidecar` owns the
//! child process. The demo uses `Sidecar` directly.
//!
//! The workload certificate's pure half is here too: `secret` (the chain and
//! key as Envoy's `Secret` named `default`), `sds` (one SDS stream as a
//! state machine) and `rotation` (when to renew). The CA client and the
//! tonic SDS server around them are `pilot-sds`, so this crate links no
//! tonic.
//!
//! Who the sidecar is comes from the node contract, `pilot-node`, which the
//! control plane reads with the same code. This crate does not depend on the
//! compiler or the server (`pilot-core`, `pilot-server`), nor on clap or
//! anyhow: the command line is the binary's.

pub mod bootstrap;
pub mod capture;
pub mod envoy;
pub mod rotation;
pub mod sds;
pub mod secret;
pub mod sidecar;

pub use bootstrap::{BootstrapConfig, XdsAddress};
pub use pilot_node::{Mode, NodeMetadata};
pub use sidecar::{RestartPolicy, Sidecar, SidecarConfig};
