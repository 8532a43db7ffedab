//! The state directory (`--state-dir`, default `./.bowline`): where the CA
//! keeps its root and the token signing key between runs.
//!
//! Files are written atomically: to a temporary file in the same directory
//! (created with its final mode, so a key is never readable by others, not
//! even for a moment), synced, then linked into place. Linking refuses to
//! replace a file, so two processes that start on an empty directory at once
//! agree on one key: the loser reads the winner's.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The default state directory, relative to where Bowline runs.
pub const DEFAULT_STATE_DIR: &str = ".bowline";

/// Mode of key files.
pub const KEY_MODE: u32 = 0o600;
/// Mode of public files (certificates).
pub const PUBLIC_MODE: u32 = 0o644;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("state directory {path}: cannot create")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot read")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot write")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: mode {mode:o} lets others read a key; expected 600")]
    OpenKey { path: PathBuf, mode: u32 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A state directory, created (mode 0700) when opened.
#[derive(Clone, Debug)]
pub struct StateDir {
    path: PathBuf,
}

impl StateDir {
    pub fn open(path: impl Into<PathBuf>) -> Result<Self> {
        let path = path.into();
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)
            .map_err(|source| Error::CreateDir {
                path: path.clone(),
                source,
            })?;
        Ok(StateDir { path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The file's text, or `None` if it does not exist. A key file (`mode`
    /// [`KEY_MODE`]) that group or others may read is refused.
    pub fn read(&self, name: &str, mode: u32) -> Result<Option<String>> {
        let path = self.file(name);
        match fs::read_to_string(&path) {
            Ok(text) => {
                if mode == KEY_MODE {
                    check_key_mode(&path)?;
                }
                Ok(Some(text))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(Error::Read { path, source }),
        }
    }

    /// Writes `name` atomically with `mode` unless it exists. Returns
    /// whether this call wrote it (`false`: another writer was first, and
    /// its file stands).
    pub fn create(&self, name: &str, contents: &str, mode: u32) -> Result<bool> {
        let path = self.file(name);
        let tmp = self.temporary(name, contents, mode)?;
        let linked = fs::hard_link(&tmp, &path);
        let _ = fs::remove_file(&tmp);
        match linked {
            Ok(()) => {
                self.sync();
                Ok(true)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
            Err(source) => Err(Error::Write { path, source }),
        }
    }

    /// `contents` in a new temporary file beside `name`, with `mode`, synced.
    fn temporary(&self, name: &str, contents: &str, mode: u32) -> Result<PathBuf> {
        let tmp = self.file(&format!(".{name}.{}.{}.tmp", std::process::id(), unique()));
        let written = (|| {
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(mode)
                .open(&tmp)?;
            // The umask may have narrowed the mode; never widened it, but a
            // public file should still be readable.
            file.set_permissions(fs::Permissions::from_mode(mode))?;
            file.write_all(contents.as_bytes())?;
            file.sync_all()
        })();
        match written {
            Ok(()) => Ok(tmp),
            Err(source) => {
                let _ = fs::remove_file(&tmp);
                Err(Error::Write {
                    path: self.file(name),
                    source,
                })
            }
        }
    }

    /// Makes the directory's entries durable.
    fn sync(&self) {
        if let Ok(dir) = fs::File::open(&self.path) {
            let _ = dir.sync_all();
        }
    }
}

impl StateDir {
    /// Writes `name` atomically with `mode`, replacing what is there: a
    /// reader sees the old contents or the new, never a part.
    pub fn replace(&self, name: &str, contents: &str, mode: u32) -> Result<()> {
        let path = self.file(name);
        let tmp = self.temporary(name, contents, mode)?;
        if let Err(source) = fs::rename(&tmp, &path) {
            let _ = fs::remove_file(&tmp);
            return Err(Error::Write { path, source });
        }
        self.sync();
        Ok(())
    }

    /// Removes `name`; a file already gone is no error.
    pub fn remove(&self, name: &str) -> Result<()> {
        let path = self.file(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(Error::Write { path, source }),
        }
    }
}

fn check_key_mode(path: &Path) -> Result<()> {
    let meta = fs::metadata(path).map_err(|source| Error::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(Error::OpenKey {
            path: path.to_path_buf(),
            mode,
        });
    }
    Ok(())
}

/// A number no other temporary file of this process has used.
fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn creates_with_the_mode_and_never_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path().join("state")).unwrap();
        assert_eq!(mode(state.path()), 0o700);
        assert!(state.create("key.pem", "first", KEY_MODE).unwrap());
        assert!(!state.create("key.pem", "second", KEY_MODE).unwrap());
        assert_eq!(mode(&state.file("key.pem")), 0o600);
        assert_eq!(
            state.read("key.pem", KEY_MODE).unwrap().as_deref(),
            Some("first")
        );
        assert!(state.create("cert.pem", "c", PUBLIC_MODE).unwrap());
        assert_eq!(mode(&state.file("cert.pem")), 0o644);
        assert_eq!(state.read("missing.pem", KEY_MODE).unwrap(), None);
        // No temporary file is left behind.
        let names: Vec<_> = fs::read_dir(state.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
    }

    #[test]
    fn a_key_others_can_read_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let state = StateDir::open(dir.path()).unwrap();
        state.create("key.pem", "k", KEY_MODE).unwrap();
        fs::set_permissions(state.file("key.pem"), fs::Permissions::from_mode(0o644)).unwrap();
        assert!(matches!(
            state.read("key.pem", KEY_MODE),
            Err(Error::OpenKey { mode: 0o644, .. })
        ));
    }
}
