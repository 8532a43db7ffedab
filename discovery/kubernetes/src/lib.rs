//! The Kubernetes source: Services, EndpointSlices, Pods, Nodes and
//! Namespaces from an API server, as Bowline's registry input.
//!
//! ```text
//! client(kubeconfig) ──► kube::Client
//! API server ──► kube-runtime watcher per kind (backoff on errors)
//!                  └─► reflector store per kind (a relist replaces it in one step)
//!                        │ a change, once every watch has synced
//!                        ▼
//!                  translate(Cluster) (pure) ──► Translation ──► tokio::watch ──► KubeSource
//!                        Services as policy Services, EndpointSlices as ServiceEndpoints
//! ```
//!
//! This is the one crate that may depend on kube (and, for it, tokio):
//! `discovery` and the compiler read only what [`Translation::config_set`]
//! gives them, the same `ConfigSet` the file source gives, so they cannot
//! tell where a Service came from (`pilot/core/tests/seams.rs` checks that
//! `discovery` links no kube). The translation is pure and tested with
//! k8s-openapi objects built by hand; the watchers only move objects into
//! stores and say when something changed.

pub mod ca_sync;
pub mod client;
pub mod config;
pub mod leader;
pub mod objects;
pub mod replicas;
pub mod review;
pub mod roots;
pub mod state;
pub mod status;
pub mod translate;
pub mod webhooks;

mod source;

pub use client::client;
pub use config::ConfigWatch;
/// The Kubernetes client the source, the election and the reviews share.
pub use kube::Client as KubeClient;
pub use leader::{LeaderElector, LeaseConfig};
pub use review::TokenReviews;
pub use source::{KubeSource, WATCHED_KINDS};
pub use translate::{Cluster, Translation, translate};
