//! The watching half: one kube-runtime watcher and reflector store per
//! kind, and a task that translates the stores whenever one changes.
//!
//! ```text
//! watcher(Service)       ─► reflect ─► Store<Service>       ─┐
//! watcher(EndpointSlice) ─► reflect ─► Store<EndpointSlice> ─┤ Notify (one permit: changes coalesce)
//! watcher(Pod)           ─► reflect ─► Store<Pod>           ─┤        │ every kind synced?
//! watcher(Node)          ─► reflect ─► Store<Node>          ─┤        ▼
//! watcher(Namespace)     ─► reflect ─► Store<Namespace>     ─┘  translate (blocking pool)
//!                                                                    │ when it differs
//!                                                                    ▼
//!                                                     watch::Sender<Option<Arc<Translation>>>
//! ```
//!
//! - **Never polling.** Each kind is listed once and then watched; a watch
//!   that drops resumes from its last resourceVersion, and a `410 Gone`
//!   relists (kube-runtime's watcher does both). A relist arrives as
//!   `Init`, `InitApply`..., `InitDone`, and the store swaps in the new
//!   list at `InitDone`, in one step: nothing in between is translated.
//! - **Synced.** Nothing is published until every kind has seen its first
//!   `InitDone`; the first value is the whole cluster. Until then the
//!   watch holds `None`: a control plane reports ready, and pushes, only
//!   once it is `Some`.
//! - **Errors** from a watch (the API server unreachable, a forbidden
//!   list) are logged with the kind, and the watch is retried with
//!   kube-runtime's default backoff; the last published translation stays
//!   in force meanwhile.
//! - **Coalescing.** Changes that arrive while a translation runs make one
//!   more translation, not one each; the receiver of a `watch` sees only the
//!   newest. Debouncing beyond that is the snapshot builder's, which
//!   already waits for a quiet period with a cap.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures_util::StreamExt;
use k8s_openapi::api::core::v1 as core;
use k8s_openapi::api::discovery::v1 as disc;
use kube::runtime::WatchStreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client, Resource, ResourceExt};
use serde::de::DeserializeOwned;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::translate::{Cluster, Translation, translate};

/// The kinds the source watches, in the order it reports them.
pub const WATCHED_KINDS: [&str; 5] = ["Service", "EndpointSlice", "Pod", "Node", "Namespace"];

/// A running Kubernetes source: its watches, and the newest translation
/// of what they hold. Dropping it stops the watches.
#[derive(Debug)]
pub struct KubeSource {
    updates: watch::Receiver<Option<Arc<Translation>>>,
    tasks: Vec<JoinHandle<()>>,
}

/// Whether each kind of [`WATCHED_KINDS`] has seen its first `InitDone`.
#[derive(Debug, Default)]
struct Synced([AtomicBool; WATCHED_KINDS.len()]);

impl Synced {
    fn all(&self) -> bool {
        self.0.iter().all(|s| s.load(Ordering::Acquire))
    }
}

/// The stores the translation reads.
#[derive(Clone, Debug)]
struct Stores {
    services: Store<core::Service>,
    endpoint_slices: Store<disc::EndpointSlice>,
    pods: Store<core::Pod>,
    nodes: Store<core::Node>,
    namespaces: Store<core::Namespace>,
}

impl Stores {
    fn cluster(&self) -> Cluster {
        Cluster {
            services: self.services.state(),
            endpoint_slices: self.endpoint_slices.state(),
            pods: self.pods.state(),
            nodes: self.nodes.state(),
            namespaces: self.namespaces.state(),
        }
    }
}

impl KubeSource {
    /// Starts watching every kind in all namespaces, on the current tokio
    /// runtime. Must be called from within one.
    pub fn start(client: Client) -> KubeSource {
        let changed = Arc::new(Notify::new());
        let synced = Arc::new(Synced::default());
        let mut tasks = Vec::new();
        let spawn = |index: usize| Watch {
            index,
            changed: changed.clone(),
            synced: synced.clone(),
        };
        let stores = Stores {
            services: spawn(0).start(Api::all(client.clone()), &mut tasks),
            endpoint_slices: spawn(1).start(Api::all(client.clone()), &mut tasks),
            pods: spawn(2).start(Api::all(client.clone()), &mut tasks),
            nodes: spawn(3).start(Api::all(client.clone()), &mut tasks),
            namespaces: spawn(4).start(Api::all(client), &mut tasks),
        };
        let (tx, updates) = watch::channel(None);
        tasks.push(tokio::spawn(publish(stores, changed, synced, tx)));
        KubeSource { updates, tasks }
    }

    /// A receiver of every new translation; `None` until every watch has
    /// synced once.
    pub fn subscribe(&self) -> watch::Receiver<Option<Arc<Translation>>> {
        self.updates.clone()
    }

    /// The newest translation, `None` until every watch has synced once.
    pub fn latest(&self) -> Option<Arc<Translation>> {
        self.updates.borrow().clone()
    }

    /// Whether every watch has synced once.
    pub fn is_synced(&self) -> bool {
        self.updates.borrow().is_some()
    }

    /// Waits for a translation newer than the last one this handle returned
    /// (the first, once every watch has synced); `None` if the source
    /// stopped.
    pub async fn next(&mut self) -> Option<Arc<Translation>> {
        loop {
            self.updates.changed().await.ok()?;
            if let Some(t) = self.updates.borrow_and_update().clone() {
                return Some(t);
            }
        }
    }
}

impl Drop for KubeSource {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// One kind's watch: where it reports.
#[derive(Debug)]
struct Watch {
    index: usize,
    changed: Arc<Notify>,
    synced: Arc<Synced>,
}

impl Watch {
    fn start<K>(self, api: Api<K>, tasks: &mut Vec<JoinHandle<()>>) -> Store<K>
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
    {
        let (store, writer) = reflector::store();
        tasks.push(tokio::spawn(self.run(api, writer)));
        store
    }

    async fn run<K>(self, api: Api<K>, writer: reflector::store::Writer<K>)
    where
        K: Resource + Clone + DeserializeOwned + Debug + Send + Sync + 'static,
        K::DynamicType: Default + Eq + std::hash::Hash + Clone + Send + Sync,
    {
        // managedFields are the bulk of most objects and never read.
        let events = watcher::watcher(api, watcher::Config::default())
            .default_backoff()
            .modify(|o: &mut K| o.managed_fields_mut().clear())
            .reflect(writer);
        let mut events = std::pin::pin!(events);
        while let Some(event) = events.next().await {
            self.observe(&event);
        }
    }

    /// Notes what one event of the watch means for the translation; the
    /// reflector has already applied it to the store.
    fn observe<K>(&self, event: &Result<Event<K>, watcher::Error>) {
        let kind = WATCHED_KINDS[self.index];
        match event {
            Ok(Event::InitDone) => {
                if !self.synced.0[self.index].swap(true, Ordering::AcqRel) {
                    debug!(kind, "watch synced");
                }
                self.changed.notify_one();
            }
            Ok(Event::Apply(_) | Event::Delete(_)) => self.changed.notify_one(),
            // The store takes the new list at InitDone, in one step.
            Ok(Event::Init | Event::InitApply(_)) => {}
            Err(error) => warn!(kind, %error, "watch failed; retrying with backoff"),
        }
    }
}

/// Translates the stores after each change, once every kind has synced,
/// and publishes what differs from the last translation.
async fn publish(
    stores: Stores,
    changed: Arc<Notify>,
    synced: Arc<Synced>,
    tx: watch::Sender<Option<Arc<Translation>>>,
) {
    loop {
        changed.notified().await;
        if !synced.all() {
            continue;
        }
        let cluster = stores.cluster();
        let Ok(translation) = tokio::task::spawn_blocking(move || translate(&cluster)).await else {
            warn!("translating the cluster failed");
            continue;
        };
        let first = tx.borrow().is_none();
        let services = translation.services.len();
        tx.send_if_modified(|current| {
            if current.as_deref() == Some(&translation) {
                return false;
            }
            *current = Some(Arc::new(translation));
            true
        });
        if first {
            info!(services, "every watch synced");
        }
        if tx.is_closed() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
