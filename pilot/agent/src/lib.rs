//! The sidecar agent behind `bowline proxy`: it writes a workload's Envoy
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

pub mod bootstrap;
pub mod envoy;
pub mod sidecar;

pub use bootstrap::{BootstrapConfig, XdsAddress, XdsMode};
pub use sidecar::{RestartPolicy, Sidecar, SidecarConfig};
