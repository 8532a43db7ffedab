//! Discovery: where services and their workloads live.
//!
//! ```text
//! discovery-file (discovery/file: walk, watch, read a directory of YAML)
//!   ──► FileChange ──► file::FileStore (last good object per key) ──► ConfigSet
//!                                                                       │
//!                              Registry::build (services → endpoints) ◄─┘
//! ```
//!
//! This crate is plain data and pure code: the registry model and the
//! file store, with no I/O and no runtime, so `pilot-core` can link it
//! (`pilot/core/tests/seams.rs` checks that it links no tokio, notify or
//! kube). Sources that read or watch live in crates of their own beside
//! it: the file source in `discovery/file` (`discovery-file`), and a later
//! Kubernetes source in `discovery/kubernetes`, the one crate that may
//! depend on kube, feeding the same `Registry`: its Services are
//! `policy` Services, and their EndpointSlices arrive as
//! [`ServiceEndpoints`], which [`Registry::build_with`] merges with what
//! the Services' selectors pick, so the compiler cannot tell the sources
//! apart.

pub mod file;
pub mod model;

pub use model::{Endpoint, Port, Protocol, Registry, ServiceEndpoints, ServiceModel};
