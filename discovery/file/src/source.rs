//! The I/O edge of the file source: read a directory, watch it, send changes.
//!
//! ```text
//! start ──► scan ──► send full listing (always, even empty)
//!   loop: notify events (then a short quiet period) ──► recheck the config files they name,
//!                                                       or rescan when they name more (see `events`)
//!       | 2 s tick ──► recheck the racy files (read too soon after their last write)
//!       | 30 s resync tick ──► rescan (walk, stat every file, read the changed)
//!         ──► send changes, if any
//! ```
//!
//! A rescan costs one `stat` per file and a read of the files whose stat
//! moved (see `scan`); an edit of one file costs a `stat` and a read of that
//! file. The resync only catches events the watch missed (Linux reports an
//! overflowed inotify queue, which rescans at once), so it runs every 30 s:
//! on a directory of 12,000 files each rescan costs about 60 ms of CPU,
//! which every 2 s was a twentieth of a core for nothing. Files read too
//! close to their last write (see `scan`) are looked at again every 2 s,
//! by path, without a walk. Events for opens and reads are ignored:
//! our own reads cause them, and heeding them made every scan wake the next.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use discovery::file::FileChange;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::events::Wake;
use crate::scan::{Known, Rescan};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("config directory {} does not exist", path.display())]
    MissingDirectory { path: PathBuf },
    #[error("config path {} is not a directory", path.display())]
    NotADirectory { path: PathBuf },
    #[error("cannot read config directory {}", path.display())]
    ReadDirectory {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot watch config directory {}", path.display())]
    Watch {
        path: PathBuf,
        #[source]
        source: notify::Error,
    },
    #[error("config directory scan did not finish")]
    ScanTask(#[source] tokio::task::JoinError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How long to wait after a file event for the events that come with it
/// (an editor's write, rename and chmod), so they are looked at in one
/// pass. Short: coalescing a burst of changes is the control plane's
/// debounce (100 ms quiet), which follows; a longer wait here only added
/// to every change's latency.
const QUIET: Duration = Duration::from_millis(10);
/// How often to rescan in case an event was missed.
const RESYNC: Duration = Duration::from_secs(30);
/// How often to look at the files whose last read was racy.
const RACY_RECHECK: Duration = crate::scan::RACY;
/// Past this many files named by events, one walk is cheaper than a look at each.
const MAX_RECHECK: usize = 256;

/// Watches a directory of YAML files and sends their changes.
#[derive(Debug)]
pub struct FileSource {
    dir: PathBuf,
}

impl FileSource {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        FileSource { dir: dir.into() }
    }

    /// Sends the full listing as the first batch, then every change. Returns
    /// `Ok` when `tx` is closed; fails when the directory is missing at start
    /// or cannot be watched.
    pub async fn run(self, tx: mpsc::Sender<Vec<FileChange>>) -> Result<()> {
        let dir = self.dir;
        check_directory(&dir).await?;

        // Watch before the first scan, so nothing written in between is missed.
        let pending = Arc::new(Mutex::new(Wake::default()));
        let (wake_tx, mut wake_rx) = mpsc::channel::<()>(1);
        let (root, sink) = (dir.clone(), pending.clone());
        let mut watcher =
            notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
                let mut wake = sink.lock().unwrap_or_else(PoisonError::into_inner);
                match &event {
                    Ok(event) => wake.add(&root, &event.kind, &event.paths),
                    Err(e) => {
                        warn!(error = %e, "config directory watch error; rescanning");
                        wake.full = true;
                    }
                }
                if !wake.is_empty() {
                    // A full channel already holds a wake-up, which is all this says.
                    let _ = wake_tx.try_send(());
                }
            })
            .map_err(|source| Error::Watch {
                path: dir.clone(),
                source,
            })?;
        watcher
            .watch(&dir, RecursiveMode::Recursive)
            .map_err(|source| Error::Watch {
                path: dir.clone(),
                source,
            })?;

        let mut known = Known::default();
        let mut warned = BTreeMap::new();
        let (scan, back) = rescan_blocking(&dir, known, Wake::full()).await?;
        known = back;
        let scan = scan.map_err(|source| Error::ReadDirectory {
            path: dir.clone(),
            source,
        })?;
        warn_unreadable(&mut warned, &scan, None);
        let initial = scan.changes;
        info!(dir = %dir.display(), files = initial.len(), "config directory loaded");
        if tx.send(initial).await.is_err() {
            return Ok(());
        }

        let mut resync = tokio::time::interval(RESYNC);
        resync.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        resync.tick().await;
        let mut racy = tokio::time::interval(RACY_RECHECK);
        racy.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        racy.tick().await;
        loop {
            let tick = tokio::select! {
                () = tx.closed() => return Ok(()),
                Some(()) = wake_rx.recv() => {
                    tokio::time::sleep(QUIET).await;
                    while wake_rx.try_recv().is_ok() {}
                    Tick::Event
                }
                _ = resync.tick() => Tick::Resync,
                _ = racy.tick() => Tick::Racy,
            };
            let mut wake =
                std::mem::take(&mut *pending.lock().unwrap_or_else(PoisonError::into_inner));
            let full = match tick {
                Tick::Resync => true,
                Tick::Racy => {
                    wake.paths.extend(known.racy());
                    false
                }
                Tick::Event => false,
            };
            if full || wake.paths.len() > MAX_RECHECK {
                wake = Wake::full();
            }
            if wake.is_empty() {
                continue;
            }
            let checked = (!wake.full).then(|| wake.paths.clone());
            let (scan, back) = rescan_blocking(&dir, known, wake).await?;
            known = back;
            let scan = match scan {
                Ok(scan) => scan,
                Err(e) => {
                    warn!(dir = %dir.display(), error = %e, "cannot list config directory; keeping the last files");
                    continue;
                }
            };
            warn_unreadable(&mut warned, &scan, checked.as_ref());
            let changes = scan.changes;
            if changes.is_empty() {
                continue;
            }
            debug!(dir = %dir.display(), changes = changes.len(), reads = scan.reads, "config files changed");
            if tx.send(changes).await.is_err() {
                return Ok(());
            }
        }
    }
}

/// What woke the source's loop.
#[derive(Clone, Copy, Debug)]
enum Tick {
    /// Filesystem events, after a quiet period.
    Event,
    /// The racy files are due for another look.
    Racy,
    /// The full rescan is due.
    Resync,
}

/// Warns once about each path that has become unreadable, not on every
/// scan. After a look at some files only (`checked`), only what is known of
/// those changes.
fn warn_unreadable(
    warned: &mut BTreeMap<PathBuf, String>,
    scan: &Rescan,
    checked: Option<&std::collections::BTreeSet<PathBuf>>,
) {
    for (path, why) in &scan.unreadable {
        if warned.get(path) != Some(why) {
            warn!(path = %path.display(), error = %why, "cannot read config path; keeping its last text");
        }
    }
    match checked {
        None => warned.clone_from(&scan.unreadable),
        Some(paths) => {
            for path in paths {
                match scan.unreadable.get(path) {
                    Some(why) => warned.insert(path.clone(), why.clone()),
                    None => warned.remove(path),
                };
            }
        }
    }
}

async fn check_directory(dir: &Path) -> Result<()> {
    match tokio::fs::metadata(dir).await {
        Ok(meta) if meta.is_dir() => Ok(()),
        Ok(_) => Err(Error::NotADirectory {
            path: dir.to_path_buf(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(Error::MissingDirectory {
            path: dir.to_path_buf(),
        }),
        Err(source) => Err(Error::ReadDirectory {
            path: dir.to_path_buf(),
            source,
        }),
    }
}

/// Rescans (or rechecks the files `wake` names) on the blocking pool:
/// directory walks, stats and reads are blocking I/O. Hands back what is
/// known for the next one.
async fn rescan_blocking(
    dir: &Path,
    mut known: Known,
    wake: Wake,
) -> Result<(io::Result<Rescan>, Known)> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || {
        // Taken before any stat, so no read is dated later than it happened.
        let now = SystemTime::now();
        let checked = if wake.full {
            None
        } else {
            known.recheck(&dir, &wake.paths, now)
        };
        let scan = match checked {
            Some(scan) => Ok(scan),
            None => known.rescan(&dir, now),
        };
        (scan, known)
    })
    .await
    .map_err(Error::ScanTask)
}

#[cfg(test)]
mod tests;
