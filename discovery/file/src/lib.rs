//! The file source: a directory of YAML files as the mesh's config.
//!
//! ```text
//! FileSource (I/O: walk, stat, read; notify watch, 2 s recheck of racy files, 30 s resync) ──► Vec<FileChange>
//!   ──► discovery::file::FileStore::apply / remove (pure) ──► config() ──► ConfigSet
//! ```
//!
//! One walker ([`mod@walk`]) decides which files are config, for the file
//! source and for `bowline validate` alike.
//!
//! This crate is the I/O half of the file source: the walker, the scan that
//! stats and reads, the notify watch and the tokio task around them. The
//! pure half (`FileStore`, `ConfigSet`, `FileChange`) stays in `discovery`,
//! because `pilot-core` builds its snapshot from a `ConfigSet` and fills a
//! `FileStore` in its tests and benches, and must not link tokio or notify
//! to do so (`pilot/core/tests/seams.rs` checks it). The walker needs no
//! runtime either, but it reads the disk and its rules are the ones the
//! watch's event filter (`events`) mirrors, so it lives here with them;
//! `bowline validate` takes it from here.

mod events;
mod scan;
mod source;
pub mod walk;

pub use discovery::file::FileChange;
pub use source::{Error, FileSource, Result};
pub use walk::{Walk, is_config_file, walk};
