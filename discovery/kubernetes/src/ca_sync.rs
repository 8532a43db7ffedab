//! A root rotation across replicas: the CA's state directory of every
//! replica follows the Secret [`SECRET_NAME`], and the replicas tell the
//! leader how far the new trust bundle has reached their proxies.
//!
//! ```text
//! bowline ca rotate-root (in any replica's pod) ─► its state directory ─► Follower: Push ─► Secret
//! Secret ─(watch)─► every Follower: Pull ─► its state directory ─► the CA reloads (each second)
//! leader: distributing ─► every live replica reported the bundle, no proxy pending ─► reissuing
//!         (its step files go back into the Secret the same way)
//! ```
//!
//! **Follower.** Each round compares three sets of files: the last ones
//! agreed with the Secret, the state directory's and the Secret's. When the
//! Secret changed, it wins: its files are written and the ones it dropped
//! removed (a retired root's key); else, when the directory changed, the
//! directory is published, with the resourceVersion it was read at, so two
//! writers never overwrite each other (a 409 retries from the Secret's
//! side on the next round). One exception: an `ID-signed-until` mark only
//! moves forward, as the later of the two, since every replica signs and
//! moves its own. `issued.json` (each replica's own counts) stays out.
//!
//! **Distribution.** Each replica writes, under its identity in the
//! ConfigMap [`DISTRIBUTION_NAME`], the bundle its proxies are served and
//! how many of them have not ACKed it yet, when that changes and every
//! [`REPORT_REFRESH`] while it is not done; the leader moves a rotation on
//! only when every replica heard from within [`REPORT_STALE`] reports the
//! current bundle with none pending. A replica that stopped drops out when
//! its report goes stale.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use futures_util::StreamExt;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Patch, PatchParams, PostParams};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;
use tracing::info;

use crate::state::SECRET_NAME;

/// The ConfigMap of the replicas' distribution reports.
pub const DISTRIBUTION_NAME: &str = "bowline-ca-distribution";
/// How often a replica repeats a report that is not done.
pub const REPORT_REFRESH: Duration = Duration::from_secs(10);
/// A report older than this is a replica that stopped.
pub const REPORT_STALE: Duration = Duration::from_secs(30);
/// Each replica's own file, never shared.
const LOCAL_FILES: [&str; 1] = ["issued.json"];

/// Files by name.
pub type Files = BTreeMap<String, Vec<u8>>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {namespace}/{name}: {source}")]
    Api {
        what: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// What one round of [`plan`] does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    Nothing,
    /// The Secret changed: write these files, remove these.
    Pull {
        write: Files,
        remove: Vec<String>,
    },
    /// The directory changed: publish it.
    Push(Files),
}

/// The round's work, from the files last agreed with the Secret, the
/// directory's and the Secret's.
pub fn plan(last: &Files, local: &Files, remote: &Files) -> Plan {
    if remote != last {
        let write = remote
            .iter()
            .filter(|(name, bytes)| {
                let keep_local = is_mark(name)
                    && local
                        .get(*name)
                        .is_some_and(|mine| mark(mine) > mark(bytes));
                !keep_local && local.get(*name) != Some(*bytes)
            })
            .map(|(name, bytes)| (name.clone(), bytes.clone()))
            .collect();
        // Only what was shared and is gone; a file this replica just made
        // is published on a later round.
        let remove = local
            .keys()
            .filter(|name| last.contains_key(*name) && !remote.contains_key(*name))
            .cloned()
            .collect();
        return Plan::Pull { write, remove };
    }
    if local != last {
        return Plan::Push(local.clone());
    }
    Plan::Nothing
}

fn is_mark(name: &str) -> bool {
    name.ends_with("-signed-until")
}

fn mark(bytes: &[u8]) -> u64 {
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// What a round did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synced {
    /// Files written or removed from the Secret.
    Pulled(Vec<String>),
    /// The directory published.
    Pushed,
}

/// Keeps one replica's state directory and the Secret in step.
#[derive(Debug)]
pub struct Follower {
    api: Api<Secret>,
    namespace: String,
    store: Store<Secret>,
    watch: JoinHandle<()>,
    dir: PathBuf,
    /// The files last agreed with the Secret; empty at first, so the first
    /// round takes the Secret's.
    last: Files,
    /// The resourceVersion a push replaced: until the watch has caught up
    /// past it, the Secret seen is older than the directory.
    pushed_over: Option<String>,
}

impl Follower {
    pub fn start(client: Client, namespace: &str, dir: &Path) -> Self {
        let api: Api<Secret> = Api::namespaced(client, namespace);
        let (store, writer) = reflector::store();
        let config = watcher::Config::default().fields(&format!("metadata.name={SECRET_NAME}"));
        let stream = reflector::reflector(writer, watcher(api.clone(), config))
            .default_backoff()
            .applied_objects();
        let watch = tokio::spawn(async move {
            futures_util::pin_mut!(stream);
            while let Some(event) = stream.next().await {
                if let Err(error) = event {
                    tracing::debug!(%error, "watching the CA's Secret");
                }
            }
        });
        Follower {
            api,
            namespace: namespace.to_string(),
            store,
            watch,
            dir: dir.to_path_buf(),
            last: Files::new(),
            pushed_over: None,
        }
    }

    /// One round; `None` until the Secret has been seen.
    pub async fn sync(&mut self) -> Result<Option<Synced>, Error> {
        let Some(secret) = self
            .store
            .get(&ObjectRef::new(SECRET_NAME).within(&self.namespace))
        else {
            return Ok(None);
        };
        let version = secret.metadata.resource_version.clone();
        if self.pushed_over.is_some() {
            if self.pushed_over == version {
                return Ok(None);
            }
            self.pushed_over = None;
        }
        let remote: Files = secret
            .data
            .iter()
            .flatten()
            .filter(|(name, _)| shareable(name))
            .map(|(name, bytes)| (name.clone(), bytes.0.clone()))
            .collect();
        let local = read_dir(&self.dir)?;
        match plan(&self.last, &local, &remote) {
            Plan::Nothing => Ok(None),
            Plan::Pull { write, remove } => {
                let mut changed: Vec<String> = write.keys().cloned().collect();
                for (name, bytes) in &write {
                    write_file(&self.dir, name, bytes)?;
                }
                for name in &remove {
                    let path = self.dir.join(name);
                    match std::fs::remove_file(&path) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(source) => {
                            return Err(Error::File {
                                path: path.display().to_string(),
                                source,
                            });
                        }
                    }
                }
                changed.extend(remove);
                self.last = remote;
                if !changed.is_empty() {
                    info!(files = ?changed, "the CA's state followed the Secret");
                }
                Ok(Some(Synced::Pulled(changed)))
            }
            Plan::Push(files) => {
                let mut next = (*secret).clone();
                next.metadata.managed_fields = None;
                next.data = Some(
                    files
                        .iter()
                        .map(|(name, bytes)| (name.clone(), ByteString(bytes.clone())))
                        .collect(),
                );
                match self
                    .api
                    .replace(SECRET_NAME, &PostParams::default(), &next)
                    .await
                {
                    Ok(_) => {
                        info!("the CA's state published to the Secret");
                        self.last = files;
                        self.pushed_over = version;
                        Ok(Some(Synced::Pushed))
                    }
                    // Another writer was first: its version comes in
                    // through the watch and wins the next round.
                    Err(kube::Error::Api(status)) if status.code == 409 => Ok(None),
                    Err(source) => Err(Error::Api {
                        what: "the Secret",
                        namespace: self.namespace.clone(),
                        name: SECRET_NAME.to_string(),
                        source: Box::new(source),
                    }),
                }
            }
        }
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.watch.abort();
    }
}

fn shareable(name: &str) -> bool {
    !name.starts_with('.') && !name.contains('/') && !LOCAL_FILES.contains(&name)
}

/// The shareable files of `dir`.
fn read_dir(dir: &Path) -> Result<Files, Error> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| Error::File { path, source }
    };
    let mut files = Files::new();
    for entry in std::fs::read_dir(dir).map_err(io(dir))? {
        let entry = entry.map_err(io(dir))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if !shareable(&name) || !entry.file_type().map_err(io(dir))?.is_file() {
            continue;
        }
        let path = entry.path();
        files.insert(name, std::fs::read(&path).map_err(io(&path))?);
    }
    Ok(files)
}

/// Writes `name` in `dir` atomically, mode 0600.
fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), Error> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.sync"));
    let failed = |p: &Path| {
        let path = p.display().to_string();
        move |source| Error::File { path, source }
    };
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(failed(&tmp))?;
    file.write_all(bytes).map_err(failed(&tmp))?;
    file.sync_all().map_err(failed(&tmp))?;
    std::fs::rename(&tmp, &path).map_err(failed(&path))
}

/// One replica's word on the trust bundle: which one its proxies are
/// served, how many have not ACKed it, and when it said so (Unix seconds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Report {
    pub bundle: String,
    pub pending: usize,
    pub at: u64,
}

/// The replicas (by identity) whose report is fresh at `now` and not done
/// with `bundle`: what the leader waits for.
pub fn lagging(reports: &BTreeMap<String, Report>, bundle: &str, now: u64) -> Vec<String> {
    reports
        .iter()
        .filter(|(_, r)| now.saturating_sub(r.at) <= REPORT_STALE.as_secs())
        .filter(|(_, r)| r.bundle != bundle || r.pending > 0)
        .map(|(who, _)| who.clone())
        .collect()
}

/// This replica's reports, and the leader's reading of everyone's.
#[derive(Debug)]
pub struct Distribution {
    api: Api<ConfigMap>,
    namespace: String,
    identity: String,
    last: Option<Report>,
}

impl Distribution {
    pub fn new(client: Client, namespace: &str, identity: &str) -> Self {
        Distribution {
            api: Api::namespaced(client, namespace),
            namespace: namespace.to_string(),
            identity: identity.to_string(),
            last: None,
        }
    }

    fn failed(&self, source: kube::Error) -> Error {
        Error::Api {
            what: "the ConfigMap",
            namespace: self.namespace.clone(),
            name: DISTRIBUTION_NAME.to_string(),
            source: Box::new(source),
        }
    }

    /// Reports `pending` proxies of `bundle` at `now`: when it changed, or
    /// again after [`REPORT_REFRESH`] while some are pending or the bundle
    /// is new to the others (`refresh`).
    pub async fn report(
        &mut self,
        bundle: &str,
        pending: usize,
        refresh: bool,
        now: SystemTime,
    ) -> Result<(), Error> {
        let at = unix(now);
        let due = match &self.last {
            None => true,
            Some(last) => {
                last.bundle != bundle
                    || last.pending != pending
                    || (refresh && at.saturating_sub(last.at) >= REPORT_REFRESH.as_secs())
            }
        };
        if !due {
            return Ok(());
        }
        let report = Report {
            bundle: bundle.to_string(),
            pending,
            at,
        };
        let text = serde_json::to_string(&report).unwrap_or_default();
        let patch = serde_json::json!({"data": {&self.identity: text}});
        match self
            .api
            .patch(
                DISTRIBUTION_NAME,
                &PatchParams::default(),
                &Patch::Merge(&patch),
            )
            .await
        {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {
                let map = ConfigMap {
                    metadata: ObjectMeta {
                        name: Some(DISTRIBUTION_NAME.to_string()),
                        namespace: Some(self.namespace.clone()),
                        labels: Some(
                            [("app.kubernetes.io/part-of".into(), "bowline".into())].into(),
                        ),
                        ..ObjectMeta::default()
                    },
                    data: Some([(self.identity.clone(), text)].into()),
                    ..ConfigMap::default()
                };
                match self.api.create(&PostParams::default(), &map).await {
                    Ok(_) => {}
                    // Another replica made it first: report into theirs.
                    Err(kube::Error::Api(status)) if status.code == 409 => {
                        self.api
                            .patch(
                                DISTRIBUTION_NAME,
                                &PatchParams::default(),
                                &Patch::Merge(&patch),
                            )
                            .await
                            .map_err(|e| self.failed(e))?;
                    }
                    Err(source) => return Err(self.failed(source)),
                }
            }
            Err(source) => return Err(self.failed(source)),
        }
        self.last = Some(report);
        Ok(())
    }

    /// Every replica's report (the malformed left out).
    pub async fn reports(&self) -> Result<BTreeMap<String, Report>, Error> {
        let map = match self.api.get_opt(DISTRIBUTION_NAME).await {
            Ok(map) => map,
            Err(source) => return Err(self.failed(source)),
        };
        Ok(map
            .and_then(|m| m.data)
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(who, text)| Some((who, serde_json::from_str(&text).ok()?)))
            .collect())
    }
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(pairs: &[(&str, &str)]) -> Files {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn the_secret_wins_when_it_changed_and_the_directory_is_published_when_it_did() {
        let last = files(&[("rotation.json", "idle"), ("root-key.pem", "k")]);
        // Nothing new on either side.
        assert_eq!(plan(&last, &last, &last), Plan::Nothing);
        // A rotation begun here: published.
        let local = files(&[
            ("rotation.json", "distributing"),
            ("root-key.pem", "k"),
            ("root-2-key.pem", "k2"),
        ]);
        assert_eq!(plan(&last, &local, &last), Plan::Push(local.clone()));
        // Begun elsewhere: taken, even over a change of ours.
        let mine = files(&[("rotation.json", "mine"), ("root-key.pem", "k")]);
        assert_eq!(
            plan(&last, &mine, &local),
            Plan::Pull {
                write: files(&[("rotation.json", "distributing"), ("root-2-key.pem", "k2")]),
                remove: vec![],
            }
        );
        // A retired root's key leaves every directory; a file just made here
        // and not shared yet stays, to be published next.
        let retired = files(&[("rotation.json", "idle"), ("root-2-key.pem", "k2")]);
        let local = files(&[
            ("rotation.json", "distributing"),
            ("root-key.pem", "k"),
            ("root-2-key.pem", "k2"),
            ("root-2-force", "1"),
        ]);
        assert_eq!(
            plan(&local_without(&local, "root-2-force"), &local, &retired),
            Plan::Pull {
                write: files(&[("rotation.json", "idle")]),
                remove: vec!["root-key.pem".to_string()],
            }
        );
    }

    fn local_without(files: &Files, name: &str) -> Files {
        let mut files = files.clone();
        files.remove(name);
        files
    }

    #[test]
    fn a_signed_until_mark_only_moves_forward() {
        let last = files(&[("root-signed-until", "100\n")]);
        let remote = files(&[("root-signed-until", "150\n")]);
        // Ours is later: kept (and published on the next round).
        let local = files(&[("root-signed-until", "200\n")]);
        assert_eq!(
            plan(&last, &local, &remote),
            Plan::Pull {
                write: Files::new(),
                remove: vec![]
            }
        );
        assert_eq!(plan(&remote, &local, &remote), Plan::Push(local.clone()));
        // Theirs is later: taken.
        let local = files(&[("root-signed-until", "120\n")]);
        assert_eq!(
            plan(&last, &local, &remote),
            Plan::Pull {
                write: remote.clone(),
                remove: vec![]
            }
        );
    }

    #[test]
    fn the_leader_waits_for_every_live_replica() {
        let report = |bundle: &str, pending, at| Report {
            bundle: bundle.to_string(),
            pending,
            at,
        };
        let now = 1_000;
        let mut reports = BTreeMap::from([
            ("a".to_string(), report("new", 0, now)),
            ("b".to_string(), report("old", 0, now - 5)),
            ("c".to_string(), report("new", 2, now - 5)),
            // Stopped long ago: not waited for.
            ("d".to_string(), report("old", 3, now - 31)),
        ]);
        assert_eq!(lagging(&reports, "new", now), ["b", "c"]);
        reports.insert("b".into(), report("new", 0, now));
        reports.insert("c".into(), report("new", 0, now));
        assert!(lagging(&reports, "new", now).is_empty());
    }
}
