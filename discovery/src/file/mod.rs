//! The file source: a directory of YAML files as the mesh's config.
//!
//! ```text
//! FileSource (I/O: scan, notify watch, 2 s resync) ──► Vec<FileChange> ──► FileStore::apply / remove (pure)
//!                                                                              └──► config() ──► ConfigSet
//! ```
//!
//! One walker ([`walk`]) decides which files are config, for the file
//! source and for `bowline validate` alike.
//!
//! The store keeps the last valid version of every object, so a half-saved
//! edit never takes a working service down.

mod events;
mod scan;
mod source;
mod store;
pub mod walk;

pub use source::{Error, FileChange, FileSource, Result};
pub use store::{ConfigSet, FileStore};
pub use walk::{Walk, is_config_file, walk};
