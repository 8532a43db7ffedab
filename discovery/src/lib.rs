//! Discovery: where services and their workloads live.
//!
//! ```text
//! file source (a directory of YAML) ──► FileStore (last good object per key) ──► ConfigSet
//!                                                                                   │
//!                                          Registry::build (services → endpoints) ◄─┘
//! ```
//!
//! A later source (Kubernetes) feeds the same `Registry`. Only this crate may
//! depend on kube; the model it exposes is plain data.

pub mod file;
pub mod model;

pub use model::{Endpoint, Port, Protocol, Registry, ServiceModel};
