//! The pure half of the file source: what a set of files defines.
//!
//! ```text
//! discovery-file's FileSource (I/O) ──► Vec<FileChange> ──► FileStore::apply / remove (pure)
//!                                                               └──► config() ──► ConfigSet
//! ```
//!
//! Nothing here touches the disk: the store takes a file's path and text
//! from whoever read it (the watching source, `bowline validate`, a test).
//! That is why it lives in this crate and not beside the source:
//! `pilot-core` builds its snapshot from a [`ConfigSet`], and its tests
//! and benches fill a [`FileStore`], without linking a runtime.
//!
//! The store keeps the last valid version of every object, so a half-saved
//! edit never takes a working service down.

use std::path::{Path, PathBuf};

mod store;

pub use store::{ConfigSet, FileStore};

/// One change to a config file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FileChange {
    /// The file is new or its text changed.
    Upsert { path: PathBuf, text: String },
    /// The file is gone.
    Remove { path: PathBuf },
}

impl FileChange {
    pub fn path(&self) -> &Path {
        match self {
            FileChange::Upsert { path, .. } | FileChange::Remove { path } => path,
        }
    }
}
