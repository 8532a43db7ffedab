//! The Istio custom resources as config: one kube-runtime watcher per kind
//! Bowline decodes, each object handed on as a document of its own, so
//! that the same store that reads files (`discovery::file::FileStore`)
//! decodes, validates and keeps the last valid version of each.
//!
//! ```text
//! watcher(VirtualService) ─► Tracked (relist = replace) ─┐
//! watcher(DestinationRule) ─► Tracked                    ─┤ (kind, changes, synced)
//! ...                                                     ─┤
//!                                                         ▼
//!                                 Gate: nothing until every kind synced, then one batch,
//!                                       then each change as it comes
//!                                                         │ Vec<FileChange>
//!                                                         ▼
//!                                          the control plane's build loop (FileStore)
//! ```
//!
//! - **An object is a document.** Its "file" is its API path
//!   (`/apis/networking.istio.io/v1/namespaces/shop/virtualservices/reviews`),
//!   which is what `/api/v1/diagnostics` names, and what `kubectl get --raw`
//!   reads. The document keeps `apiVersion`, `kind`, `metadata.name`,
//!   `namespace`, `labels`, `annotations` and `spec`: the server's own
//!   metadata (uid, managedFields, ...) is not the user's config.
//! - **A relist replaces.** After a `410 Gone` the watcher lists again; the
//!   objects of the new list are upserted and those it no longer has are
//!   removed, in one batch at `InitDone`, so a relist neither loses nor
//!   duplicates an object and nothing in between is seen.
//! - **Synced.** The first batch goes out once every kind has listed once:
//!   a control plane that waits for it never serves half a cluster's
//!   policy. A kind whose CustomResourceDefinition is not installed
//!   (404) counts as synced and empty, with a warning; the watcher keeps
//!   retrying, so installing the CRD later brings its objects in.
//!
//! The state machines ([`Tracked`], [`Gate`]) are pure and tested without
//! an API server; the tasks only move events through them.

use std::collections::BTreeSet;
use std::path::PathBuf;

use discovery::file::FileChange;
use futures_util::StreamExt;
use kube::api::{ApiResource, DynamicObject};
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use policy::Kind;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

/// The custom resources watched: every Istio kind Bowline decodes, at the
/// version it prefers (what Istio's own CRDs store and serve first).
pub fn resources() -> Vec<(Kind, ApiResource)> {
    Kind::ALL
        .into_iter()
        .filter_map(|kind| {
            let (group, versions) = kind.served()?;
            let version = versions.first()?;
            let (plural, _) = policy::crd::names(kind);
            Some((
                kind,
                ApiResource {
                    group: group.to_string(),
                    version: version.to_string(),
                    api_version: format!("{group}/{version}"),
                    kind: kind.as_str().to_string(),
                    plural: plural.to_string(),
                },
            ))
        })
        .collect()
}

/// Where an object of `resource` lives in the API: its document's "file".
pub fn object_path(resource: &ApiResource, namespace: &str, name: &str) -> PathBuf {
    PathBuf::from(format!(
        "/apis/{}/namespaces/{namespace}/{}/{name}",
        resource.api_version, resource.plural
    ))
}

/// The document of one object: what its author wrote, as JSON (which YAML reads).
fn document(resource: &ApiResource, object: &DynamicObject) -> String {
    let mut metadata = Map::new();
    let meta = &object.metadata;
    if let Some(name) = &meta.name {
        metadata.insert("name".into(), json!(name));
    }
    if let Some(namespace) = &meta.namespace {
        metadata.insert("namespace".into(), json!(namespace));
    }
    if let Some(labels) = meta.labels.as_ref().filter(|l| !l.is_empty()) {
        metadata.insert("labels".into(), json!(labels));
    }
    if let Some(annotations) = meta.annotations.as_ref().filter(|a| !a.is_empty()) {
        metadata.insert("annotations".into(), json!(annotations));
    }
    let mut doc = Map::new();
    let api_version = object
        .types
        .as_ref()
        .map_or(resource.api_version.as_str(), |t| t.api_version.as_str());
    doc.insert("apiVersion".into(), json!(api_version));
    doc.insert("kind".into(), json!(resource.kind));
    doc.insert("metadata".into(), Value::Object(metadata));
    // Everything else the object has beside metadata and status is the
    // user's (`spec`, or a field the decoder will reject by its path).
    if let Value::Object(data) = &object.data {
        for (field, value) in data {
            if field != "status" {
                doc.insert(field.clone(), value.clone());
            }
        }
    }
    Value::Object(doc).to_string()
}

/// One kind's objects as the watcher reports them, turned into changes.
#[derive(Debug)]
pub struct Tracked {
    resource: ApiResource,
    /// The paths of the objects handed on.
    known: BTreeSet<PathBuf>,
    /// A list under way: the paths it has, and its upserts.
    listing: Option<(BTreeSet<PathBuf>, Vec<FileChange>)>,
}

/// What one event meant.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Nothing to hand on yet (a list under way).
    Nothing,
    /// Changes to hand on.
    Changes(Vec<FileChange>),
    /// A list completed: its changes (perhaps none), and the kind is synced.
    Listed(Vec<FileChange>),
}

impl Tracked {
    pub fn new(resource: ApiResource) -> Tracked {
        Tracked {
            resource,
            known: BTreeSet::new(),
            listing: None,
        }
    }

    fn path(&self, object: &DynamicObject) -> Option<PathBuf> {
        let name = object.metadata.name.as_deref()?;
        let namespace = object.metadata.namespace.as_deref().unwrap_or("default");
        Some(object_path(&self.resource, namespace, name))
    }

    fn upsert(&self, object: &DynamicObject) -> Option<FileChange> {
        Some(FileChange::Upsert {
            path: self.path(object)?,
            text: document(&self.resource, object),
        })
    }

    /// Takes one event of the watcher.
    pub fn event(&mut self, event: Event<DynamicObject>) -> Step {
        match event {
            Event::Init => {
                self.listing = Some((BTreeSet::new(), Vec::new()));
                Step::Nothing
            }
            Event::InitApply(object) => {
                let change = self.upsert(&object);
                if let (Some((paths, changes)), Some(change)) = (&mut self.listing, change) {
                    paths.insert(change.path().to_path_buf());
                    changes.push(change);
                }
                Step::Nothing
            }
            Event::InitDone => {
                let (listed, mut changes) = self.listing.take().unwrap_or_default();
                changes.extend(
                    self.known
                        .difference(&listed)
                        .map(|path| FileChange::Remove { path: path.clone() }),
                );
                self.known = listed;
                Step::Listed(changes)
            }
            Event::Apply(object) => match self.upsert(&object) {
                Some(change) => {
                    self.known.insert(change.path().to_path_buf());
                    Step::Changes(vec![change])
                }
                None => Step::Nothing,
            },
            Event::Delete(object) => match self.path(&object) {
                Some(path) => {
                    self.known.remove(&path);
                    Step::Changes(vec![FileChange::Remove { path }])
                }
                None => Step::Nothing,
            },
        }
    }
}

/// Holds every change until each kind has synced once, then lets them through.
#[derive(Debug)]
pub struct Gate {
    synced: Vec<bool>,
    held: Option<Vec<FileChange>>,
}

impl Gate {
    /// A gate for `kinds` kinds.
    pub fn new(kinds: usize) -> Gate {
        Gate {
            synced: vec![false; kinds],
            held: Some(Vec::new()),
        }
    }

    /// Takes kind `index`'s step; what to send on, if anything. The first
    /// batch (perhaps empty) goes out when the last kind syncs.
    pub fn take(&mut self, index: usize, step: Step) -> Option<Vec<FileChange>> {
        let changes = match step {
            Step::Nothing => return None,
            Step::Changes(changes) => changes,
            Step::Listed(changes) => {
                if let Some(synced) = self.synced.get_mut(index) {
                    *synced = true;
                }
                changes
            }
        };
        match &mut self.held {
            Some(held) => {
                held.extend(changes);
                if self.synced.iter().all(|s| *s) {
                    self.held.take()
                } else {
                    None
                }
            }
            None => (!changes.is_empty()).then_some(changes),
        }
    }

    /// Whether the first batch has gone out.
    pub fn is_open(&self) -> bool {
        self.held.is_none()
    }
}

/// A running watch of the custom resources. Dropping it stops the watches.
#[derive(Debug)]
pub struct ConfigWatch {
    tasks: Vec<JoinHandle<()>>,
}

impl ConfigWatch {
    /// Starts watching every kind of [`resources`] in all namespaces, and
    /// sends their changes to `changes`: a first batch once every kind has
    /// synced, then each change. Must be called within a tokio runtime.
    pub fn start(client: Client, changes: mpsc::Sender<Vec<FileChange>>) -> ConfigWatch {
        let resources = resources();
        let (steps_tx, mut steps) = mpsc::channel::<(usize, Step)>(64);
        let mut tasks: Vec<JoinHandle<()>> = resources
            .iter()
            .enumerate()
            .map(|(index, (_, resource))| {
                let api: Api<DynamicObject> = Api::all_with(client.clone(), resource);
                tokio::spawn(watch_kind(index, resource.clone(), api, steps_tx.clone()))
            })
            .collect();
        drop(steps_tx);
        let kinds = resources.len();
        tasks.push(tokio::spawn(async move {
            let mut gate = Gate::new(kinds);
            while let Some((index, step)) = steps.recv().await {
                let was_open = gate.is_open();
                if let Some(batch) = gate.take(index, step) {
                    if !was_open {
                        info!(objects = batch.len(), "every custom resource watch synced");
                    }
                    if changes.send(batch).await.is_err() {
                        return;
                    }
                }
            }
        }));
        ConfigWatch { tasks }
    }
}

impl Drop for ConfigWatch {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Whether an error says the resource type is not served (its CRD is not installed).
fn not_installed(error: &watcher::Error) -> bool {
    matches!(
        error,
        watcher::Error::InitialListFailed(kube::Error::Api(status)) if status.code == 404
    )
}

async fn watch_kind(
    index: usize,
    resource: ApiResource,
    api: Api<DynamicObject>,
    steps: mpsc::Sender<(usize, Step)>,
) {
    let kind = resource.kind.clone();
    let mut tracked = Tracked::new(resource);
    let mut synced = false;
    let events = watcher::watcher(api, watcher::Config::default()).default_backoff();
    let mut events = std::pin::pin!(events);
    while let Some(event) = events.next().await {
        let step = match event {
            Ok(event) => tracked.event(event),
            Err(error) if not_installed(&error) => {
                if synced {
                    continue;
                }
                warn!(
                    kind,
                    "its CustomResourceDefinition is not installed: no such objects are read until it is"
                );
                Step::Listed(Vec::new())
            }
            Err(error) => {
                warn!(kind, %error, "watch failed; retrying with backoff");
                continue;
            }
        };
        if matches!(step, Step::Listed(_)) && !synced {
            synced = true;
            debug!(kind, "custom resource watch synced");
        }
        if steps.send((index, step)).await.is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
