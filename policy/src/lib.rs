//! Bowline's configuration API: the Kubernetes- and Istio-shaped objects that
//! users write in YAML, decoded strictly and validated with field paths.
//!
//! ```text
//! YAML text ──► parse_documents ──► route by apiVersion/kind ──► decode (strict) ──► validate ──► ParsedDocument
//!                    (every problem becomes a Diagnostic naming file, document, object and field path)
//! ```
//!
//! This crate is pure: it must not depend on tokio, tonic, kube or prost, and it
//! does no I/O. Discovery decides where the text comes from; pilot decides what
//! the objects mean for Envoy.

pub mod admission;
pub mod crd;
mod decode;
pub mod diag;
mod envelope;
pub mod mesh;
pub mod meta;
pub mod networking;
pub mod object;
mod parse;
pub mod protocol;
pub mod schema;
pub mod security;
pub mod service;
pub mod telemetry;
pub mod validate;

pub use decode::DEFAULT_NAMESPACE;
pub use diag::{Diagnostic, FieldPath, Severity};
pub use meta::ObjectMeta;
pub use object::{Kind, Object, ObjectKey, ParsedDocument, parse_documents};
