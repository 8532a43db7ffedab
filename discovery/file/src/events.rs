//! What a filesystem event asks of the file source: nothing, a look at some
//! config files, or a full rescan.
//!
//! ```text
//! notify event ──► opened, read, closed unwritten ──► nothing (our own reads report these)
//!              ──► a config file the walker lists, written, created, removed or renamed ──► re-stat that path
//!              ──► a file that is not config; a hidden temporary renamed away ──► nothing
//!              ──► anything else (directories, a rename to a name not listed, config names in
//!                  hidden directories, unknown kinds) ──► full rescan
//! ```
//!
//! Pure: only the path's shape is looked at here. The source re-stats the
//! paths it is given and still rescans everything on its resync tick (30 s),
//! so an event missed or misread costs at most one tick.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

use notify::event::{
    AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RemoveKind, RenameMode,
};

use crate::walk::is_config_file;

/// What the file source has to look at after some events.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Wake {
    /// Walk the whole directory.
    pub(crate) full: bool,
    /// Config files to stat again, by path.
    pub(crate) paths: BTreeSet<PathBuf>,
}

impl Wake {
    /// A full rescan.
    pub(crate) fn full() -> Wake {
        Wake {
            full: true,
            ..Wake::default()
        }
    }

    /// Whether there is anything to look at.
    pub(crate) fn is_empty(&self) -> bool {
        !self.full && self.paths.is_empty()
    }

    /// Adds what an event of `kind` on `paths` (under `root`) asks for.
    pub(crate) fn add(&mut self, root: &Path, kind: &EventKind, paths: &[PathBuf]) {
        match kind {
            // Opening or reading a file, and closing it unwritten, change
            // nothing; the source's own reads report them, so heeding them
            // would make every scan wake the next.
            EventKind::Access(AccessKind::Close(AccessMode::Write))
            | EventKind::Create(CreateKind::File)
            | EventKind::Remove(RemoveKind::File)
            | EventKind::Modify(ModifyKind::Data(_) | ModifyKind::Metadata(_)) => {
                for path in paths {
                    self.written(root, path);
                }
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
                paths.iter().for_each(|p| self.renamed_from(root, p));
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::To)) => {
                paths.iter().for_each(|p| self.renamed_to(root, p));
            }
            EventKind::Modify(ModifyKind::Name(RenameMode::Both)) if paths.len() == 2 => {
                self.renamed_from(root, &paths[0]);
                self.renamed_to(root, &paths[1]);
            }
            EventKind::Access(_) => {}
            _ => self.full = true,
        }
    }

    /// A file's content or metadata changed, or it appeared or went.
    fn written(&mut self, root: &Path, path: &Path) {
        match listed(root, path) {
            Some(path) => {
                self.paths.insert(path);
            }
            // A config name the walker does not list is in a hidden
            // directory, such as a ConfigMap's data, read through a link.
            None if has_config_name(path) => self.full = true,
            // Not config: nothing the source reads.
            None => {}
        }
    }

    /// Something was renamed away from `path`.
    fn renamed_from(&mut self, root: &Path, path: &Path) {
        match listed(root, path) {
            Some(path) => {
                self.paths.insert(path);
            }
            // A hidden name (a temporary renamed into place) holds nothing
            // the walker lists; anything else may have been a directory.
            None if is_hidden(path) => {}
            None => self.full = true,
        }
    }

    /// Something was renamed to `path`: a listed file, or a directory, or a
    /// link swapped into place (a ConfigMap's `..data`).
    fn renamed_to(&mut self, root: &Path, path: &Path) {
        match listed(root, path) {
            Some(path) => {
                self.paths.insert(path);
            }
            None => self.full = true,
        }
    }
}

fn file_name(path: &Path) -> Option<&str> {
    path.file_name().and_then(|n| n.to_str())
}

fn has_config_name(path: &Path) -> bool {
    file_name(path).is_some_and(is_config_file)
}

fn is_hidden(path: &Path) -> bool {
    file_name(path).is_some_and(|n| n.starts_with('.'))
}

/// `path`, when the walker of `root` would list a file there: a config
/// name under plain, visible directories. Whether those are real
/// directories and not links is for whoever stats it.
fn listed(root: &Path, path: &Path) -> Option<PathBuf> {
    let rel = path.strip_prefix(root).ok()?;
    let mut components = rel.components().peekable();
    while let Some(component) = components.next() {
        let Component::Normal(name) = component else {
            return None;
        };
        let name = name.to_str()?;
        let last = components.peek().is_none();
        if last && !is_config_file(name) || !last && name.starts_with('.') {
            return None;
        }
    }
    (rel.components().next().is_some()).then(|| path.to_path_buf())
}

#[cfg(test)]
mod tests {
    use notify::event::{DataChange, MetadataKind};

    use super::*;

    fn wake(kind: EventKind, paths: &[&str]) -> Wake {
        let paths: Vec<PathBuf> = paths.iter().map(|p| Path::new("/cfg").join(p)).collect();
        let mut wake = Wake::default();
        wake.add(Path::new("/cfg"), &kind, &paths);
        wake
    }

    fn paths(list: &[&str]) -> Wake {
        Wake {
            full: false,
            paths: list.iter().map(|p| Path::new("/cfg").join(p)).collect(),
        }
    }

    fn full() -> Wake {
        Wake::full()
    }

    #[test]
    fn reads_wake_nothing() {
        for kind in [
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            EventKind::Access(AccessKind::Read),
            EventKind::Access(AccessKind::Close(AccessMode::Read)),
        ] {
            assert!(wake(kind, &["a.yaml"]).is_empty(), "{kind:?}");
            assert!(wake(kind, &[""]).is_empty(), "{kind:?} on the directory");
        }
    }

    #[test]
    fn writes_to_listed_config_files_name_them() {
        let write = EventKind::Access(AccessKind::Close(AccessMode::Write));
        assert_eq!(wake(write, &["a.yaml"]), paths(&["a.yaml"]));
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Content));
        assert_eq!(wake(data, &["ns/b.yml"]), paths(&["ns/b.yml"]));
        let touched = EventKind::Modify(ModifyKind::Metadata(MetadataKind::WriteTime));
        assert_eq!(wake(touched, &["a.yaml"]), paths(&["a.yaml"]));
        assert_eq!(
            wake(EventKind::Create(CreateKind::File), &["c.yaml"]),
            paths(&["c.yaml"])
        );
        assert_eq!(
            wake(EventKind::Remove(RemoveKind::File), &["c.yaml"]),
            paths(&["c.yaml"])
        );
    }

    #[test]
    fn a_save_through_a_hidden_temporary_names_the_file() {
        let root = Path::new("/cfg");
        let (tmp, file) = (root.join(".a.yaml.tmp"), root.join("a.yaml"));
        let mut w = Wake::default();
        w.add(
            root,
            &EventKind::Create(CreateKind::File),
            std::slice::from_ref(&tmp),
        );
        w.add(
            root,
            &EventKind::Modify(ModifyKind::Data(DataChange::Any)),
            std::slice::from_ref(&tmp),
        );
        w.add(
            root,
            &EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            std::slice::from_ref(&tmp),
        );
        w.add(
            root,
            &EventKind::Modify(ModifyKind::Name(RenameMode::To)),
            std::slice::from_ref(&file),
        );
        w.add(
            root,
            &EventKind::Modify(ModifyKind::Name(RenameMode::Both)),
            &[tmp.clone(), file.clone()],
        );
        assert_eq!(w, paths(&["a.yaml"]));
    }

    #[test]
    fn a_listed_file_renamed_away_is_named() {
        let from = EventKind::Modify(ModifyKind::Name(RenameMode::From));
        assert_eq!(wake(from, &["a.yaml"]), paths(&["a.yaml"]));
    }

    #[test]
    fn files_that_are_not_config_wake_nothing() {
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Content));
        assert!(wake(data, &["notes.txt", ".#a.yaml", "a.yaml~"]).is_empty());
    }

    #[test]
    fn directories_hidden_paths_and_unknown_kinds_rescan_everything() {
        assert_eq!(
            wake(EventKind::Create(CreateKind::Folder), &["sub"]),
            full()
        );
        assert_eq!(
            wake(EventKind::Remove(RemoveKind::Folder), &["sub"]),
            full()
        );
        assert_eq!(
            wake(EventKind::Remove(RemoveKind::Any), &["a.yaml"]),
            full()
        );
        assert_eq!(wake(EventKind::Any, &[]), full());
        let data = EventKind::Modify(ModifyKind::Data(DataChange::Content));
        assert_eq!(wake(data, &["..2024_01_01/mesh.yaml"]), full());
        let renamed = EventKind::Modify(ModifyKind::Name(RenameMode::Both));
        assert_eq!(wake(renamed, &["..data_tmp", "..data"]), full());
        assert_eq!(wake(renamed, &["old-dir", "new-dir"]), full());
        let from = EventKind::Modify(ModifyKind::Name(RenameMode::From));
        assert_eq!(wake(from, &["sub"]), full());
        let to = EventKind::Modify(ModifyKind::Name(RenameMode::To));
        assert_eq!(wake(to, &["sub"]), full());
        assert_eq!(
            wake(EventKind::Modify(ModifyKind::Any), &["a.yaml"]),
            full()
        );
    }
}
