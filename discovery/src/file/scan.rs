//! Listing a config directory and comparing listings.
//!
//! A scan reads every `.yaml`/`.yml` file under the directory, skipping hidden
//! files and directories and editor temporaries. Comparing a scan with the
//! texts last sent gives the changes to send: contents are compared, so an
//! editor that writes through a temporary file and a rename is seen as one
//! edit, and a touch without a change is nothing.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::FileChange;

/// One scan of the directory.
#[derive(Debug, Default, PartialEq, Eq)]
pub(crate) struct Listing {
    pub(crate) files: BTreeMap<PathBuf, Read>,
    /// Subdirectories that could not be listed, with why: their files are
    /// kept as they were.
    pub(crate) unreadable_dirs: Vec<(PathBuf, String)>,
}

/// The result of reading one file.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Read {
    Text(String),
    /// Present but unreadable (permissions, not UTF-8), with why: keep the
    /// last text.
    Unreadable(String),
}

/// Whether a file name is config: `.yaml` or `.yml`, not hidden, not an
/// editor's temporary (`.#x.yaml`, `x.yaml~`, `#x.yaml#`, `.x.yaml.swp`).
pub(crate) fn is_config_file(name: &str) -> bool {
    let temporary = name.starts_with('.') || name.starts_with('#') || name.ends_with('~');
    !temporary && (name.ends_with(".yaml") || name.ends_with(".yml"))
}

/// Lists `root` recursively. Fails only when `root` itself cannot be listed.
/// Symbolic links to files are followed (a Kubernetes ConfigMap volume is
/// made of them); links to directories are not, so a loop cannot form.
pub(crate) fn scan(root: &Path) -> io::Result<Listing> {
    let mut listing = Listing::default();
    walk(root, &mut listing, true)?;
    Ok(listing)
}

fn walk(dir: &Path, listing: &mut Listing, is_root: bool) -> io::Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if is_root => return Err(e),
        Err(e) => {
            listing
                .unreadable_dirs
                .push((dir.to_path_buf(), e.to_string()));
            return Ok(());
        }
    };
    for entry in entries {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => {
                listing
                    .unreadable_dirs
                    .push((dir.to_path_buf(), e.to_string()));
                return Ok(());
            }
        };
        let name = entry.file_name();
        let Some(name) = name.to_str() else {
            continue;
        };
        let path = entry.path();
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        if file_type.is_dir() {
            if !name.starts_with('.') {
                walk(&path, listing, false)?;
            }
            continue;
        }
        if !is_config_file(name) {
            continue;
        }
        // Follows a symbolic link; a dangling one is skipped like a vanished file.
        match fs::metadata(&path) {
            Ok(meta) if meta.is_file() => {}
            _ => continue,
        }
        match fs::read_to_string(&path) {
            Ok(text) => {
                listing.files.insert(path, Read::Text(text));
            }
            // Deleted between listing and reading: it is simply gone.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                listing.files.insert(path, Read::Unreadable(e.to_string()));
            }
        }
    }
    Ok(())
}

/// Every path that could not be read, with why: files and directories.
pub(crate) fn unreadable(listing: &Listing) -> BTreeMap<PathBuf, String> {
    let files = listing.files.iter().filter_map(|(p, r)| match r {
        Read::Unreadable(why) => Some((p.clone(), why.clone())),
        Read::Text(_) => None,
    });
    files
        .chain(listing.unreadable_dirs.iter().cloned())
        .collect()
}

/// The changes from the texts last sent (`known`) to `listing`, sorted by
/// path; `known` is updated to match.
pub(crate) fn diff(known: &mut BTreeMap<PathBuf, String>, listing: Listing) -> Vec<FileChange> {
    let mut changes = Vec::new();
    let gone: Vec<PathBuf> = known
        .keys()
        .filter(|p| !listing.files.contains_key(*p))
        .filter(|p| {
            !listing
                .unreadable_dirs
                .iter()
                .any(|(d, _)| p.starts_with(d))
        })
        .cloned()
        .collect();
    for path in gone {
        known.remove(&path);
        changes.push(FileChange::Remove { path });
    }
    for (path, read) in listing.files {
        let Read::Text(text) = read else {
            continue;
        };
        if known.get(&path) != Some(&text) {
            known.insert(path.clone(), text.clone());
            changes.push(FileChange::Upsert { path, text });
        }
    }
    changes.sort_by(|a, b| a.path().cmp(b.path()));
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(files: &[(&str, Option<&str>)], unreadable_dirs: &[&str]) -> Listing {
        Listing {
            files: files
                .iter()
                .map(|(p, t)| {
                    let read = t.map_or(Read::Unreadable("denied".into()), |t| {
                        Read::Text(t.to_string())
                    });
                    (PathBuf::from(p), read)
                })
                .collect(),
            unreadable_dirs: unreadable_dirs
                .iter()
                .map(|d| (PathBuf::from(d), "denied".to_string()))
                .collect(),
        }
    }

    fn upsert(path: &str, text: &str) -> FileChange {
        FileChange::Upsert {
            path: path.into(),
            text: text.into(),
        }
    }

    fn remove(path: &str) -> FileChange {
        FileChange::Remove { path: path.into() }
    }

    #[test]
    fn names() {
        assert!(is_config_file("a.yaml"));
        assert!(is_config_file("a.yml"));
        assert!(!is_config_file("a.json"));
        assert!(!is_config_file(".hidden.yaml"));
        assert!(!is_config_file(".#a.yaml"));
        assert!(!is_config_file("#a.yaml#"));
        assert!(!is_config_file("a.yaml~"));
        assert!(!is_config_file(".a.yaml.swp"));
        assert!(!is_config_file("a.yaml.tmp"));
    }

    #[test]
    fn only_changes_are_sent() {
        let mut known = BTreeMap::new();
        let first = diff(
            &mut known,
            listing(&[("d/b.yaml", Some("b")), ("d/a.yaml", Some("a"))], &[]),
        );
        assert_eq!(
            first,
            vec![upsert("d/a.yaml", "a"), upsert("d/b.yaml", "b")]
        );
        let same = diff(
            &mut known,
            listing(&[("d/a.yaml", Some("a")), ("d/b.yaml", Some("b"))], &[]),
        );
        assert!(same.is_empty());
        let changed = diff(
            &mut known,
            listing(&[("d/a.yaml", Some("a2")), ("d/c.yaml", Some("c"))], &[]),
        );
        assert_eq!(
            changed,
            vec![
                upsert("d/a.yaml", "a2"),
                remove("d/b.yaml"),
                upsert("d/c.yaml", "c")
            ]
        );
    }

    #[test]
    fn unreadable_files_and_directories_keep_their_last_text() {
        let mut known = BTreeMap::new();
        diff(
            &mut known,
            listing(&[("d/a.yaml", Some("a")), ("d/sub/b.yaml", Some("b"))], &[]),
        );
        let changes = diff(&mut known, listing(&[("d/a.yaml", None)], &["d/sub"]));
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(
            known.get(Path::new("d/a.yaml")).map(String::as_str),
            Some("a")
        );
        assert_eq!(known.len(), 2);
        let why = unreadable(&listing(&[("d/a.yaml", None)], &["d/sub"]));
        assert_eq!(
            why.keys().collect::<Vec<_>>(),
            vec![Path::new("d/a.yaml"), Path::new("d/sub")]
        );
        // Unreadable and never read: nothing to send.
        assert!(
            diff(
                &mut known,
                listing(
                    &[
                        ("d/a.yaml", None),
                        ("d/sub/b.yaml", Some("b")),
                        ("d/new.yaml", None)
                    ],
                    &[]
                )
            )
            .is_empty()
        );
    }

    #[test]
    fn scans_recursively_and_skips_what_is_not_config() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("sub/deeper")).unwrap();
        fs::create_dir_all(root.join(".hidden")).unwrap();
        fs::write(root.join("a.yaml"), "a").unwrap();
        fs::write(root.join("sub/deeper/b.yml"), "b").unwrap();
        fs::write(root.join(".hidden/c.yaml"), "c").unwrap();
        fs::write(root.join(".#a.yaml"), "x").unwrap();
        fs::write(root.join("a.yaml~"), "x").unwrap();
        fs::write(root.join("notes.txt"), "x").unwrap();
        fs::write(root.join("bad.yaml"), [0xff, 0xfe, 0x00]).unwrap();
        let listing = scan(root).unwrap();
        let found: Vec<(String, bool)> = listing
            .files
            .iter()
            .map(|(p, r)| {
                let rel = p.strip_prefix(root).unwrap().display().to_string();
                (rel, matches!(r, Read::Text(_)))
            })
            .collect();
        assert_eq!(
            found,
            vec![
                ("a.yaml".to_string(), true),
                ("bad.yaml".to_string(), false),
                ("sub/deeper/b.yml".to_string(), true),
            ]
        );
    }

    #[cfg(unix)]
    #[test]
    fn follows_file_links_like_a_configmap_volume() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("..2024_01_01")).unwrap();
        fs::write(root.join("..2024_01_01/mesh.yaml"), "m").unwrap();
        std::os::unix::fs::symlink("..2024_01_01", root.join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/mesh.yaml", root.join("mesh.yaml")).unwrap();
        std::os::unix::fs::symlink(".", root.join("loop")).unwrap();
        let listing = scan(root).unwrap();
        let paths: Vec<&PathBuf> = listing.files.keys().collect();
        assert_eq!(paths, vec![&root.join("mesh.yaml")]);
        assert_eq!(
            listing.files[&root.join("mesh.yaml")],
            Read::Text("m".into())
        );
    }

    #[test]
    fn a_missing_root_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(scan(&dir.path().join("nope")).is_err());
    }
}
