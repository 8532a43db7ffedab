//! The file source: a directory of YAML files as the mesh's config.
//!
//! ```text
//! FileSource (I/O: scan, notify watch, 2 s resync) ──► Vec<FileChange> ──► FileStore::apply / remove (pure)
//!                                                                              └──► config() ──► ConfigSet
//! ```
//!
//! The store keeps the last valid version of every object, so a half-saved
//! edit never takes a working service down.

mod scan;
mod source;
mod store;

pub use source::{Error, FileChange, FileSource, Result};
pub use store::{ConfigSet, FileStore};
