//! The file source against a real temporary directory. Waits are bounded
//! only to turn a hang into a failure; nothing here asserts on timing.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::*;

/// Long enough never to fire unless the source is broken.
const HANG: Duration = Duration::from_secs(20);

/// What the consumer has seen: relative path -> text, and every change.
struct Mirror {
    root: PathBuf,
    rx: mpsc::Receiver<Vec<FileChange>>,
    files: BTreeMap<String, String>,
    seen: Vec<FileChange>,
    task: JoinHandle<Result<()>>,
}

impl Mirror {
    fn start(root: &Path) -> Mirror {
        let (tx, rx) = mpsc::channel(16);
        let task = tokio::spawn(FileSource::new(root).run(tx));
        Mirror {
            root: root.to_path_buf(),
            rx,
            files: BTreeMap::new(),
            seen: Vec::new(),
            task,
        }
    }

    fn relative(&self, path: &Path) -> String {
        path.strip_prefix(&self.root).unwrap().display().to_string()
    }

    async fn batch(&mut self) -> Vec<FileChange> {
        let batch = tokio::time::timeout(HANG, self.rx.recv())
            .await
            .expect("the source sent nothing")
            .expect("the source stopped");
        for change in &batch {
            let rel = self.relative(change.path());
            match change {
                FileChange::Upsert { text, .. } => {
                    self.files.insert(rel, text.clone());
                }
                FileChange::Remove { .. } => {
                    self.files.remove(&rel);
                }
            }
        }
        self.seen.extend(batch.iter().cloned());
        batch
    }

    /// Receives batches until the mirror holds exactly `expected`.
    async fn until(&mut self, expected: &[(&str, &str)]) {
        let expected: BTreeMap<String, String> = expected
            .iter()
            .map(|(p, t)| (p.to_string(), t.to_string()))
            .collect();
        while self.files != expected {
            self.batch().await;
        }
    }
}

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

#[tokio::test]
async fn the_first_batch_is_the_full_listing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a.yaml", "a");
    write(root, "sub/b.yml", "b");
    write(root, ".#a.yaml", "lock");
    write(root, "a.yaml~", "backup");
    write(root, "readme.md", "doc");
    let mut mirror = Mirror::start(root);
    let first = mirror.batch().await;
    let paths: Vec<String> = first.iter().map(|c| mirror.relative(c.path())).collect();
    assert_eq!(paths, vec!["a.yaml", "sub/b.yml"]);
    assert!(first.iter().all(|c| matches!(c, FileChange::Upsert { .. })));
    assert_eq!(mirror.files.get("a.yaml").map(String::as_str), Some("a"));
}

#[tokio::test]
async fn an_empty_directory_still_sends_a_first_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut mirror = Mirror::start(dir.path());
    assert!(mirror.batch().await.is_empty());
}

#[tokio::test]
async fn follows_create_edit_rename_over_nested_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut mirror = Mirror::start(root);
    assert!(mirror.batch().await.is_empty());

    write(root, "c.yaml", "one");
    mirror.until(&[("c.yaml", "one")]).await;

    write(root, "c.yaml", "two");
    mirror.until(&[("c.yaml", "two")]).await;

    // An editor that saves through a temporary file and a rename.
    write(root, ".c.yaml.swp", "three");
    fs::rename(root.join(".c.yaml.swp"), root.join("c.yaml")).unwrap();
    mirror.until(&[("c.yaml", "three")]).await;

    write(root, "sub/deeper/d.yml", "four");
    write(root, "sub/deeper/.#d.yml", "lock");
    write(root, "sub/deeper/d.yml~", "backup");
    mirror
        .until(&[("c.yaml", "three"), ("sub/deeper/d.yml", "four")])
        .await;

    fs::remove_file(root.join("c.yaml")).unwrap();
    mirror.until(&[("sub/deeper/d.yml", "four")]).await;
    assert!(matches!(
        mirror.seen.last(),
        Some(FileChange::Remove { .. })
    ));

    fs::remove_dir_all(root.join("sub")).unwrap();
    mirror.until(&[]).await;

    let temporaries: Vec<&FileChange> = mirror
        .seen
        .iter()
        .filter(|c| {
            let name = c.path().file_name().unwrap().to_str().unwrap();
            name.starts_with('.') || name.ends_with('~')
        })
        .collect();
    assert!(temporaries.is_empty(), "{temporaries:?}");
}

#[tokio::test]
async fn unchanged_content_sends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a.yaml", "same");
    let mut mirror = Mirror::start(root);
    mirror.until(&[("a.yaml", "same")]).await;
    // Rewriting the same text, then a real change: the next batch is the real change only.
    write(root, "a.yaml", "same");
    write(root, "b.yaml", "new");
    let batch = mirror.batch().await;
    let paths: Vec<String> = batch.iter().map(|c| mirror.relative(c.path())).collect();
    assert!(!paths.contains(&"a.yaml".to_string()), "{batch:?}");
}

#[tokio::test]
async fn a_missing_directory_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = mpsc::channel(1);
    let err = FileSource::new(dir.path().join("nope"))
        .run(tx)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::MissingDirectory { .. }), "{err:?}");
    assert!(err.to_string().starts_with("config directory "));

    write(dir.path(), "file.yaml", "x");
    let (tx, _rx) = mpsc::channel(1);
    let err = FileSource::new(dir.path().join("file.yaml"))
        .run(tx)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NotADirectory { .. }), "{err:?}");
}

#[tokio::test]
async fn returns_when_the_receiver_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let mut mirror = Mirror::start(dir.path());
    mirror.batch().await;
    drop(mirror.rx);
    let result = tokio::time::timeout(HANG, mirror.task)
        .await
        .expect("the source kept running")
        .unwrap();
    assert!(result.is_ok());
}

#[tokio::test]
async fn a_file_renamed_in_from_outside_over_one_of_the_same_size_is_seen() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "ns/vs.yaml", "revision: r0");
    // Written long ago: not racy, so only its stat tells of a change.
    let old = std::time::SystemTime::now() - Duration::from_secs(3600);
    fs::File::options()
        .write(true)
        .open(root.join("ns/vs.yaml"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let mut mirror = Mirror::start(root);
    mirror.until(&[("ns/vs.yaml", "revision: r0")]).await;
    // `sed ... > /tmp/x && mv /tmp/x vs.yaml`: a new file of the same size
    // moved in from a directory the source does not watch.
    let staged = outside.path().join("vs.tmp");
    fs::write(&staged, "revision: r1").unwrap();
    fs::rename(&staged, root.join("ns/vs.yaml")).unwrap();
    mirror.until(&[("ns/vs.yaml", "revision: r1")]).await;
}
