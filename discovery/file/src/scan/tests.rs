//! Scans of real temporary directories. Modification times and the scan's
//! clock are set explicitly, so the racy cases do not depend on how fast the
//! test runs or on the filesystem's timestamp granularity.

use std::collections::BTreeSet;
use std::time::UNIX_EPOCH;

use super::*;

/// A fixed moment, long past.
fn t0() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn write(root: &Path, rel: &str, text: &str) -> PathBuf {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(&path, text).unwrap();
    path
}

fn set_mtime(path: &Path, at: SystemTime) {
    fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(at)
        .unwrap();
}

/// Writes `text` in place (same inode) and sets the modification time.
fn write_at(root: &Path, rel: &str, text: &str, at: SystemTime) -> PathBuf {
    let path = write(root, rel, text);
    set_mtime(&path, at);
    path
}

fn upsert(path: &Path, text: &str) -> FileChange {
    FileChange::Upsert {
        path: path.to_path_buf(),
        text: text.into(),
    }
}

fn remove(path: &Path) -> FileChange {
    FileChange::Remove {
        path: path.to_path_buf(),
    }
}

#[test]
fn only_changes_are_sent() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let b = write_at(root, "b.yaml", "b", t0());
    let a = write_at(root, "a.yaml", "a", t0());
    let mut known = Known::default();
    let first = known.rescan(root, t0() + secs(60)).unwrap();
    assert_eq!(first.changes, vec![upsert(&a, "a"), upsert(&b, "b")]);
    let same = known.rescan(root, t0() + secs(120)).unwrap();
    assert!(same.changes.is_empty(), "{same:?}");

    write_at(root, "a.yaml", "a2", t0() + secs(130));
    let c = write_at(root, "c.yaml", "c", t0() + secs(130));
    fs::remove_file(&b).unwrap();
    let changed = known.rescan(root, t0() + secs(200)).unwrap();
    assert_eq!(
        changed.changes,
        vec![upsert(&a, "a2"), remove(&b), upsert(&c, "c")]
    );
}

#[test]
fn a_rescan_reads_only_the_files_whose_stat_changed() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for i in 0..50 {
        write_at(
            root,
            &format!("ns/we-{i}.yaml"),
            &format!("entry {i}"),
            t0(),
        );
    }
    let mut known = Known::default();
    let first = known.rescan(root, t0() + secs(60)).unwrap();
    assert_eq!((first.reads, first.changes.len()), (50, 50));

    let again = known.rescan(root, t0() + secs(120)).unwrap();
    assert_eq!(again, Rescan::default());

    let moved = write_at(root, "ns/we-7.yaml", "entry 7 moved", t0() + secs(130));
    let one = known.rescan(root, t0() + secs(200)).unwrap();
    assert_eq!(one.reads, 1);
    assert_eq!(one.changes, vec![upsert(&moved, "entry 7 moved")]);
}

#[test]
fn a_touch_without_a_change_is_read_and_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let a = write_at(root, "a.yaml", "same", t0());
    let mut known = Known::default();
    known.rescan(root, t0() + secs(60)).unwrap();
    set_mtime(&a, t0() + secs(61));
    let touched = known.rescan(root, t0() + secs(120)).unwrap();
    assert_eq!(touched.reads, 1);
    assert!(touched.changes.is_empty(), "{touched:?}");
    // Its new stat is remembered: the next scan does not read it.
    assert_eq!(known.rescan(root, t0() + secs(180)).unwrap().reads, 0);
}

#[test]
fn a_file_read_within_the_racy_window_of_its_mtime_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let a = write_at(root, "a.yaml", "one", t0());
    let mut known = Known::default();
    // Read one second after its last write: a second write in the same
    // clock tick would leave the same stat behind.
    let first = known.rescan(root, t0() + secs(1)).unwrap();
    assert_eq!(first.changes, vec![upsert(&a, "one")]);

    // Such a write: same size, same inode, same modification time.
    write_at(root, "a.yaml", "two", t0());
    let racy = known.rescan(root, t0() + secs(10)).unwrap();
    assert_eq!(racy.changes, vec![upsert(&a, "two")]);

    // Read well after its modification time now: a stat that did not move
    // is trusted, so an edit that restores size and mtime goes unseen, as
    // it does for git.
    write_at(root, "a.yaml", "six", t0());
    let trusted = known.rescan(root, t0() + secs(20)).unwrap();
    assert_eq!(trusted, Rescan::default());
}

#[test]
fn the_racy_files_are_rechecked_by_path_without_a_walk() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let a = write_at(root, "a.yaml", "one", t0());
    let b = write_at(root, "b.yaml", "old", t0() - secs(60));
    let mut known = Known::default();
    known.rescan(root, t0() + secs(1)).unwrap();
    // Only `a` was read too close to its write.
    assert_eq!(known.racy(), set(&[&a]));
    // A second write in the same tick, then the look at the racy files
    // alone finds it, and `a` is no longer racy.
    write_at(root, "a.yaml", "two", t0());
    let racy = known.recheck(root, &known.racy(), t0() + secs(10)).unwrap();
    assert_eq!(racy.changes, vec![upsert(&a, "two")]);
    assert!(known.racy().is_empty());
    assert!(known.files.contains_key(&b));
}

#[test]
fn a_modification_time_after_the_read_is_racy() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let a = write_at(root, "a.yaml", "one", t0() + secs(3600));
    let mut known = Known::default();
    known.rescan(root, t0()).unwrap();
    write_at(root, "a.yaml", "two", t0() + secs(3600));
    let next = known.rescan(root, t0() + secs(60)).unwrap();
    assert_eq!(next.changes, vec![upsert(&a, "two")]);
}

#[test]
fn a_new_inode_is_read_even_with_the_same_size_and_mtime() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let a = write_at(root, "a.yaml", "one", t0());
    let mut known = Known::default();
    known.rescan(root, t0() + secs(60)).unwrap();
    // An editor's save: a new file renamed over the old one.
    let swap = write_at(root, ".a.yaml.swp", "two", t0());
    fs::rename(&swap, &a).unwrap();
    let saved = known.rescan(root, t0() + secs(120)).unwrap();
    assert_eq!(saved.changes, vec![upsert(&a, "two")]);
}

#[test]
fn unreadable_files_and_directories_keep_their_last_text() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let a = write_at(root, "a.yaml", "a", t0());
    let b = write_at(root, "sub/b.yaml", "b", t0());
    let mut known = Known::default();
    assert_eq!(
        known.rescan(root, t0() + secs(60)).unwrap().changes.len(),
        2
    );

    // `a` turns into bytes that are not UTF-8; `sub` cannot be listed.
    fs::write(&a, [0xff, 0xfe, 0x00]).unwrap();
    set_mtime(&a, t0() + secs(70));
    let mut walk = walk(root).unwrap();
    walk.files.retain(|(p, _)| !p.starts_with(root.join("sub")));
    walk.unreadable_dirs
        .push((root.join("sub"), io::Error::other("denied")));
    let scan = known.apply(walk, t0() + secs(120));
    assert!(scan.changes.is_empty(), "{scan:?}");
    assert_eq!(
        scan.unreadable.keys().collect::<Vec<_>>(),
        vec![&a, &root.join("sub")]
    );
    assert_eq!(known.files[&a].text, "a");
    assert_eq!(known.files[&b].text, "b");

    // Readable again with the very stat of the failed read, which was not
    // recorded: it is read.
    fs::write(&a, "a:2").unwrap();
    set_mtime(&a, t0() + secs(70));
    let scan = known.rescan(root, t0() + secs(180)).unwrap();
    assert_eq!(scan.changes, vec![upsert(&a, "a:2")]);
}

#[test]
fn an_unreadable_file_never_read_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let bad = root.join("bad.yaml");
    fs::write(&bad, [0xff, 0xfe, 0x00]).unwrap();
    let mut known = Known::default();
    let scan = known.rescan(root, t0()).unwrap();
    assert!(scan.changes.is_empty());
    assert_eq!(scan.unreadable.keys().collect::<Vec<_>>(), vec![&bad]);
}

#[cfg(unix)]
#[test]
fn follows_file_links_like_a_configmap_volume() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_at(root, "..2024_01_01/mesh.yaml", "m", t0());
    std::os::unix::fs::symlink("..2024_01_01", root.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/mesh.yaml", root.join("mesh.yaml")).unwrap();
    std::os::unix::fs::symlink(".", root.join("loop")).unwrap();
    let mut known = Known::default();
    let scan = known.rescan(root, t0() + secs(60)).unwrap();
    assert_eq!(scan.changes, vec![upsert(&root.join("mesh.yaml"), "m")]);

    // The kubelet's update: a new directory, then `..data` swapped to it.
    // The link's target is another inode, though size and mtime match.
    write_at(root, "..2024_01_02/mesh.yaml", "n", t0());
    std::os::unix::fs::symlink("..2024_01_02", root.join("..data_tmp")).unwrap();
    fs::rename(root.join("..data_tmp"), root.join("..data")).unwrap();
    let scan = known.rescan(root, t0() + secs(120)).unwrap();
    assert_eq!(scan.changes, vec![upsert(&root.join("mesh.yaml"), "n")]);
}

fn set(paths: &[&PathBuf]) -> BTreeSet<PathBuf> {
    paths.iter().map(|p| p.to_path_buf()).collect()
}

#[test]
fn a_recheck_looks_at_the_named_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let a = write_at(root, "a.yaml", "a", t0());
    let b = write_at(root, "ns/b.yaml", "b", t0());
    let c = write_at(root, "c.yaml", "c", t0());
    let mut known = Known::default();
    known.rescan(root, t0() + secs(60)).unwrap();

    write_at(root, "ns/b.yaml", "b2", t0() + secs(61));
    write_at(root, "c.yaml", "c2", t0() + secs(61));
    let d = write_at(root, "ns/d.yaml", "d", t0() + secs(61));
    fs::remove_file(&a).unwrap();
    let one = known
        .recheck(root, &set(&[&a, &b, &d]), t0() + secs(120))
        .unwrap();
    assert_eq!(one.reads, 2);
    assert_eq!(
        one.changes,
        vec![remove(&a), upsert(&b, "b2"), upsert(&d, "d")]
    );
    // What no event named is found by the next full rescan.
    let rest = known.rescan(root, t0() + secs(180)).unwrap();
    assert_eq!((rest.reads, rest.changes), (1, vec![upsert(&c, "c2")]));
}

#[cfg(unix)]
#[test]
fn a_recheck_of_a_directory_or_through_a_link_asks_for_a_rescan() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write_at(root, "real/x.yaml", "x", t0());
    fs::create_dir_all(root.join("dir.yaml")).unwrap();
    std::os::unix::fs::symlink("real", root.join("linked")).unwrap();
    let mut known = Known::default();
    known.rescan(root, t0() + secs(60)).unwrap();
    let now = t0() + secs(120);
    assert_eq!(
        known.recheck(root, &set(&[&root.join("dir.yaml")]), now),
        None
    );
    assert_eq!(
        known.recheck(root, &set(&[&root.join("linked/x.yaml")]), now),
        None
    );
    let unchanged = known.recheck(root, &set(&[&root.join("real/x.yaml")]), now);
    assert_eq!(unchanged, Some(Rescan::default()));
}

#[test]
fn a_missing_root_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(
        Known::default()
            .rescan(&dir.path().join("nope"), SystemTime::now())
            .is_err()
    );
}
