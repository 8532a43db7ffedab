//! Listing a config directory and comparing it with what was last sent.
//!
//! ```text
//! walk (names, stat) ──► stat as when last read, and not racy? ──yes──► unchanged: not read
//!                                  │ no
//!                                  └──► read ──► text differs from the last sent? ──► Upsert
//! last sent, no longer listed (and not under an unreadable directory) ──► Remove
//! ```
//!
//! A scan reads every config file the walker (`walk`) lists. A rescan reads only
//! the files that are new or whose stat (size, modification time to the
//! nanosecond, inode and device) differs from when they were last read; the
//! rest cost one `stat` each. What is read is still compared by content, so
//! an editor that writes through a temporary file and a rename is seen as
//! one edit, and a touch without a change is nothing.
//!
//! Racy files: a modification time is only as fine as the filesystem's
//! clock, so a write landing in the same tick as our read leaves the stat
//! as it was. As git does for racy index entries, a file whose modification
//! time is not at least [`RACY`] older than the moment it was read is read
//! again on the next scan, until a read happens that long after its last
//! change.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use discovery::file::FileChange;

use crate::walk::{Walk, walk};

/// How close to its read a file's modification time may be before the
/// read is not trusted to have seen its final content.
pub(crate) const RACY: Duration = Duration::from_secs(2);

/// What identifies one version of a file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Stat {
    size: u64,
    modified: Option<SystemTime>,
    inode: u64,
    device: u64,
}

impl Stat {
    pub(crate) fn of(meta: &fs::Metadata) -> Stat {
        #[cfg(unix)]
        let (inode, device) = {
            use std::os::unix::fs::MetadataExt;
            (meta.ino(), meta.dev())
        };
        #[cfg(not(unix))]
        let (inode, device) = (0, 0);
        Stat {
            size: meta.len(),
            modified: meta.modified().ok(),
            inode,
            device,
        }
    }

    /// Whether a read at `read_at` may have missed a write made in the same
    /// clock tick as this modification time (always, without one).
    fn racy(&self, read_at: SystemTime) -> bool {
        self.modified.is_none_or(|modified| {
            // A modification time after the read is racy too.
            !read_at
                .duration_since(modified)
                .is_ok_and(|age| age >= RACY)
        })
    }
}

/// A file as last sent: its text, and the stat and time of the read that
/// gave it.
#[derive(Debug)]
struct Sent {
    text: String,
    stat: Stat,
    read_at: SystemTime,
}

/// What has been sent of a directory, to compare the next scan with.
#[derive(Debug, Default)]
pub(crate) struct Known {
    /// Hashed, not sorted: a scan looks up every file, and comparing paths
    /// component by component is what a sorted map would spend its time on.
    files: HashMap<PathBuf, Sent>,
}

/// The result of one rescan.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Rescan {
    /// The changes to send, sorted by path.
    pub(crate) changes: Vec<FileChange>,
    /// Every path that could not be read, with why: files and directories.
    pub(crate) unreadable: BTreeMap<PathBuf, String>,
    /// How many files were read (the rest were known by their stat).
    pub(crate) reads: usize,
}

impl Known {
    /// Scans `root` and returns what changed since the last scan, reading
    /// only files whose stat changed, that are new, or that were racy when
    /// last read. `now` is taken before the scan starts, so that it is no
    /// later than any read it stands for. Fails only when `root` itself
    /// cannot be listed; then nothing is changed.
    pub(crate) fn rescan(&mut self, root: &Path, now: SystemTime) -> io::Result<Rescan> {
        let walk = walk(root)?;
        Ok(self.apply(walk, now))
    }

    /// The files whose last read was racy (see [`RACY`]): a look at these
    /// alone, a [`RACY`] later, reads each once more, so a write that left
    /// the stat as it was is not missed until the next full rescan.
    pub(crate) fn racy(&self) -> BTreeSet<PathBuf> {
        self.files
            .iter()
            .filter(|(_, sent)| sent.stat.racy(sent.read_at))
            .map(|(path, _)| path.clone())
            .collect()
    }

    /// Like [`Known::rescan`] for `paths` alone (config files the walker
    /// of `root` would list, by their shape; see `events`), without walking
    /// the directory. `None` when one of them is not a plain file under
    /// real directories of `root` (a directory, or reached through a link
    /// to one): then only a full rescan can tell what changed.
    pub(crate) fn recheck(
        &mut self,
        root: &Path,
        paths: &BTreeSet<PathBuf>,
        now: SystemTime,
    ) -> Option<Rescan> {
        let mut rescan = Rescan::default();
        for path in paths {
            let parents = path.parent()?.strip_prefix(root).ok()?;
            let mut dir = root.to_path_buf();
            for component in parents.components() {
                dir.push(component);
                if !fs::symlink_metadata(&dir).ok()?.is_dir() {
                    return None;
                }
            }
            match fs::metadata(path) {
                Ok(meta) if meta.is_file() => self.visit(path.clone(), Ok(meta), now, &mut rescan),
                Ok(_) => return None,
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if self.files.remove(path).is_some() {
                        rescan
                            .changes
                            .push(FileChange::Remove { path: path.clone() });
                    }
                }
                Err(e) => self.visit(path.clone(), Err(e), now, &mut rescan),
            }
        }
        Some(rescan)
    }

    fn apply(&mut self, walk: Walk, now: SystemTime) -> Rescan {
        let mut rescan = Rescan::default();
        let listed: HashSet<&Path> = walk.files.iter().map(|(p, _)| p.as_path()).collect();
        let gone: Vec<PathBuf> = self
            .files
            .keys()
            .filter(|p| !listed.contains(p.as_path()))
            .filter(|p| !walk.unreadable_dirs.iter().any(|(d, _)| p.starts_with(d)))
            .cloned()
            .collect();
        drop(listed);
        for path in gone {
            self.files.remove(&path);
            rescan.changes.push(FileChange::Remove { path });
        }
        for (path, meta) in walk.files {
            self.visit(path, meta, now, &mut rescan);
        }
        rescan.unreadable.extend(
            walk.unreadable_dirs
                .into_iter()
                .map(|(dir, e)| (dir, e.to_string())),
        );
        rescan.changes.sort_by(|a, b| a.path().cmp(b.path()));
        rescan
    }

    /// One listed file: read it unless its stat says it is as last read.
    fn visit(
        &mut self,
        path: PathBuf,
        meta: io::Result<fs::Metadata>,
        now: SystemTime,
        rescan: &mut Rescan,
    ) {
        let meta = match meta {
            Ok(meta) => meta,
            Err(e) => {
                rescan.unreadable.insert(path, e.to_string());
                return;
            }
        };
        let stat = Stat::of(&meta);
        let sent = self.files.get_mut(&path);
        if let Some(sent) = &sent
            && sent.stat == stat
            && !stat.racy(sent.read_at)
        {
            return;
        }
        rescan.reads += 1;
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            // Deleted between listing and reading: the next scan sees it gone.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return,
            // Keep the last text; the stat stays as it was, so the file is
            // read again on every scan until it can be.
            Err(e) => {
                rescan.unreadable.insert(path, e.to_string());
                return;
            }
        };
        match sent {
            Some(sent) => {
                sent.stat = stat;
                sent.read_at = now;
                if sent.text != text {
                    sent.text.clone_from(&text);
                    rescan.changes.push(FileChange::Upsert { path, text });
                }
            }
            None => {
                let sent = Sent {
                    text: text.clone(),
                    stat,
                    read_at: now,
                };
                self.files.insert(path.clone(), sent);
                rescan.changes.push(FileChange::Upsert { path, text });
            }
        }
    }
}

#[cfg(test)]
mod tests;
