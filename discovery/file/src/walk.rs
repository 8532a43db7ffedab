//! The one directory walker for config: what `bowline serve` and `demo`
//! follow (through [`FileSource`](crate::FileSource)) and what `bowline
//! validate` checks.
//!
//! ```text
//! root ──► read_dir, recursively ──► name is config? (.yaml/.yml, not hidden, not an editor temporary)
//!            │                              └──► stat (following a file link) ──► Walk.files
//!            └─ hidden directories and directory links are not entered; unlistable ones ──► Walk.unreadable_dirs
//! ```
//!
//! Symbolic links to files are followed (a Kubernetes ConfigMap volume is
//! made of them: `mesh.yaml -> ..data/mesh.yaml`, `..data -> ..2024_01_01`);
//! links to directories are not, so a loop cannot form.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// The config files under a directory.
#[derive(Debug, Default)]
pub struct Walk {
    /// Each file's path and its metadata (of the target, for a link), or
    /// why it could not be had; sorted by path (each directory is read in
    /// name order, so no sort of the whole list is needed).
    pub files: Vec<(PathBuf, io::Result<fs::Metadata>)>,
    /// Subdirectories that could not be listed, with why.
    pub unreadable_dirs: Vec<(PathBuf, io::Error)>,
}

/// Whether a file name is config: `.yaml` or `.yml`, not hidden, not an
/// editor's temporary (`.#x.yaml`, `x.yaml~`, `#x.yaml#`, `.x.yaml.swp`).
pub fn is_config_file(name: &str) -> bool {
    let temporary = name.starts_with('.') || name.starts_with('#') || name.ends_with('~');
    !temporary && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// Lists the config files under `root`, recursively. Fails only when
/// `root` itself cannot be listed.
pub fn walk(root: &Path) -> io::Result<Walk> {
    let mut walk = Walk::default();
    walk_dir(root, &mut walk, true)?;
    Ok(walk)
}

fn walk_dir(dir: &Path, walk: &mut Walk, is_root: bool) -> io::Result<()> {
    let listed = fs::read_dir(dir).and_then(|entries| entries.collect::<io::Result<Vec<_>>>());
    let mut entries = match listed {
        Ok(entries) => entries,
        Err(e) if is_root => return Err(e),
        Err(e) => {
            walk.unreadable_dirs.push((dir.to_path_buf(), e));
            return Ok(());
        }
    };
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let path = entry.path();
        // Not followed: a link to a directory is not a directory here.
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            if !name.starts_with('.') {
                walk_dir(&path, walk, false)?;
            }
            continue;
        }
        if !is_config_file(name) {
            continue;
        }
        // Follows a link; a dangling one is skipped like a vanished file.
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => walk.files.push((path, Ok(meta))),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => walk.files.push((path, Err(e))),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests;
