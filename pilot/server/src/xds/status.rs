//! What each connected proxy has been sent, has ACKed and has rejected.
//!
//! The xDS server writes a [`ProxyStatus`] after every step of a stream; the
//! admin API reads [`StatusRegistry::list`]. The per-type part, [`XdsStatus`],
//! is the state machine's own report (`pilot_core::xds::status`); this
//! module adds who the proxy is and keeps one entry per connected node. The JSON shape of `ProxyStatus`
//! is a public contract:
//!
//! ```text
//! {"id": "...", "namespace": "...", "workload": "...", "address": "...",
//!  "mode": "sotw" | "delta", "stream_id": 7, "nacks": 0,
//!  "generation": 13, "acked_generation": 12 | null,
//!  "xds": {"<type url>": {"sent_version": "..." | null,
//!                         "acked_version": "..." | null,
//!                         "nack": null | {"version": "...", "message": "..."},
//!                         "sent_generation": 12 | null,
//!                         "acked_generation": 11 | null}}}
//! ```
//!
//! Generations are the snapshot generations of `/api/v1/snapshot`. A type's
//! `sent_generation` is the newest snapshot whose content of that type the
//! last response carries (a snapshot that changes nothing of the type for
//! this proxy moves it on without a response); `acked_generation` is the same
//! for the last response the proxy ACKed. The proxy's `acked_generation` is
//! the lowest across the types it has requested, or null while one of them
//! has no ACK. The proxy's `generation` is that of the newest set compiled
//! for it, which the server is sending or holding until the proxy ACKs the
//! previous push: `generation` ahead of `acked_generation` means the proxy
//! is behind. So a proxy has converged on snapshot `g` exactly when its
//! `acked_generation` is at least `g`. A proxy whose set for `g` failed the
//! consistency check (see `/api/v1/diagnostics`) stays behind, as it should:
//! it does not have `g`.

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use dashmap::DashMap;
use serde::{Deserialize, Serialize};

use pilot_core::proxy::Proxy;
use pilot_core::resources::{ResourceSet, ResourceType};
use pilot_core::xds::Mode;
use pilot_core::xds::PeerIdentity;
use pilot_core::xds::connection::Connection;
pub use pilot_core::xds::status::{Nack, TypeStatus, XdsStatus, acked_generation};

/// One connected proxy.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProxyStatus {
    pub id: String,
    pub namespace: String,
    pub workload: String,
    pub address: IpAddr,
    pub mode: Mode,
    /// A proxyless gRPC client (node metadata `GENERATOR: grpc`) rather
    /// than an Envoy sidecar.
    #[serde(default)]
    pub proxyless: bool,
    /// Increases with every stream the server accepts; a reconnect gets a new one.
    pub stream_id: u64,
    /// NACKs received on this stream, of every type.
    pub nacks: u64,
    /// The snapshot generation of the newest set compiled for the proxy.
    pub generation: u64,
    /// The lowest snapshot generation ACKed across the requested types;
    /// null while one has no ACK (or none is requested).
    pub acked_generation: Option<u64>,
    /// The SPIFFE id of the client certificate the stream came with (xDS
    /// over mutual TLS, checked against the node); `null` on plaintext.
    #[serde(default)]
    pub identity: Option<String>,
    pub xds: XdsStatus,
    /// When the stream last sent a response (of any type), RFC 3339 in
    /// UTC; `null` before the first.
    #[serde(default)]
    pub last_push: Option<String>,
}

/// `at` as RFC 3339 in UTC, to the millisecond.
fn rfc3339(at: std::time::SystemTime) -> String {
    let format = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    time::OffsetDateTime::from(at)
        .format(&format)
        .unwrap_or_default()
}

impl ProxyStatus {
    pub fn new(
        proxy: &Proxy,
        stream_id: u64,
        connection: &Connection,
        identity: Option<&PeerIdentity>,
    ) -> Self {
        let xds = connection.status();
        ProxyStatus {
            id: proxy.id.clone(),
            namespace: proxy.metadata.namespace.clone(),
            workload: proxy.metadata.workload.clone(),
            address: proxy.metadata.address,
            mode: connection.mode(),
            proxyless: proxy.metadata.is_proxyless(),
            stream_id,
            nacks: connection.nacks(),
            generation: connection.resources().generation(),
            acked_generation: acked_generation(&xds),
            identity: identity.map(ToString::to_string),
            xds,
            last_push: None,
        }
    }

    /// Whether the proxy has ACKed snapshot `generation` (or a later one)
    /// for every type it has requested.
    pub fn has_converged(&self, generation: u64) -> bool {
        self.acked_generation.is_some_and(|g| g >= generation)
    }
}

/// A compiled set the server did not push because it failed the consistency
/// check; the proxy keeps what it had.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Inconsistency {
    /// The proxy's node id.
    pub proxy: String,
    /// The snapshot generation of the last set that failed.
    pub generation: u64,
    /// Every dangling reference in that set.
    pub problems: Vec<String>,
    /// How many compiled sets of this proxy failed the check since it connected.
    pub count: u64,
}

/// Status of every connected proxy, by node id, the NACK counter, and the
/// compiled sets that failed the consistency check.
#[derive(Debug, Default)]
pub struct StatusRegistry {
    proxies: DashMap<String, ProxyStatus>,
    /// What each proxy's stream sent last, by type (for
    /// `/api/v1/proxies/{id}/config`), with the stream's id.
    sent: DashMap<String, (u64, SentConfig)>,
    nacks_total: AtomicU64,
    inconsistent: DashMap<String, Inconsistency>,
    inconsistent_total: AtomicU64,
    metrics: crate::metrics::XdsMetrics,
    events: Events,
}

/// What a proxy was sent last, by type: the version, the compiled set the
/// response was built from (two pointers; nothing is copied), and when.
pub type SentConfig =
    std::collections::BTreeMap<ResourceType, (String, ResourceSet, std::time::SystemTime)>;

/// What `GET /api/v1/events` streams about proxies (the config's own
/// events come from the snapshots).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProxyEvent {
    Connected {
        proxy: String,
    },
    Disconnected {
        proxy: String,
    },
    /// The proxy rejected a response: its type URL and Envoy's text.
    Nack {
        proxy: String,
        type_url: String,
        version: String,
        message: String,
        /// The config objects the rejected resources came from.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        objects: Vec<pilot_core::blame::Blamed>,
    },
    /// A set compiled for a snapshot change went out to the proxy.
    PushCompleted {
        proxy: String,
        generation: u64,
    },
}

/// A broadcast of [`ProxyEvent`]s; sending with no one listening is free.
#[derive(Debug)]
struct Events(tokio::sync::broadcast::Sender<ProxyEvent>);

impl Default for Events {
    fn default() -> Self {
        Events(tokio::sync::broadcast::channel(1024).0)
    }
}

impl StatusRegistry {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records `status`, unless a newer stream of the same node id already
    /// holds the entry.
    pub fn update(&self, status: ProxyStatus) {
        match self.proxies.entry(status.id.clone()) {
            dashmap::Entry::Occupied(mut e) => {
                if e.get().stream_id <= status.stream_id {
                    e.insert(status);
                }
            }
            dashmap::Entry::Vacant(e) => {
                e.insert(status);
            }
        }
    }

    /// Publishes the status of `proxy`'s stream `stream_id`, updating the
    /// entry in place when the stream already has one (no copy of the
    /// proxy's names, and versions written over the strings they replace).
    pub fn refresh(
        &self,
        proxy: &Proxy,
        stream_id: u64,
        connection: &Connection,
        identity: Option<&PeerIdentity>,
    ) {
        if let Some(mut entry) = self.proxies.get_mut(&proxy.id) {
            if entry.stream_id > stream_id {
                return;
            }
            if entry.stream_id == stream_id {
                let status = &mut *entry;
                connection.status_into(&mut status.xds);
                status.nacks = connection.nacks();
                status.generation = connection.resources().generation();
                status.acked_generation = acked_generation(&status.xds);
                return;
            }
        }
        self.update(ProxyStatus::new(proxy, stream_id, connection, identity));
    }

    /// Records that `proxy`'s stream `stream_id` sent `version` of `ty`,
    /// built from `set`.
    pub fn record_sent(
        &self,
        proxy: &str,
        stream_id: u64,
        ty: ResourceType,
        version: &str,
        set: &ResourceSet,
    ) {
        if let Some(mut entry) = self.sent.get_mut(proxy) {
            if entry.0 > stream_id {
                return;
            }
            if entry.0 < stream_id {
                *entry = (stream_id, SentConfig::new());
            }
            // Written over the version it replaces: no allocation per push
            // once the type has been sent.
            let now = std::time::SystemTime::now();
            match entry.1.get_mut(&ty) {
                Some((sent, sent_set, at)) => {
                    sent.clear();
                    sent.push_str(version);
                    *sent_set = set.clone();
                    *at = now;
                }
                None => {
                    entry.1.insert(ty, (version.to_string(), set.clone(), now));
                }
            }
            return;
        }
        let now = std::time::SystemTime::now();
        let config = SentConfig::from([(ty, (version.to_string(), set.clone(), now))]);
        self.sent.insert(proxy.to_string(), (stream_id, config));
    }

    /// What `id` was sent last, by type.
    pub fn sent(&self, id: &str) -> Option<SentConfig> {
        self.sent.get(id).map(|e| e.1.clone())
    }

    /// Forgets `id` when its stream `stream_id` ends, unless a newer stream
    /// of the same node id replaced it.
    pub fn remove(&self, id: &str, stream_id: u64) {
        self.sent.remove_if(id, |_, (s, _)| *s == stream_id);
        if self
            .proxies
            .remove_if(id, |_, s| s.stream_id == stream_id)
            .is_some()
        {
            self.inconsistent.remove(id);
        }
    }

    /// Records that the set compiled for `proxy` at `generation` failed the
    /// consistency check and was not pushed.
    pub fn record_inconsistent(&self, proxy: &str, generation: u64, problems: Vec<String>) {
        self.inconsistent_total.fetch_add(1, Ordering::Relaxed);
        let mut entry = self
            .inconsistent
            .entry(proxy.to_string())
            .or_insert_with(|| Inconsistency {
                proxy: proxy.to_string(),
                generation,
                problems: Vec::new(),
                count: 0,
            });
        entry.generation = generation;
        entry.problems = problems;
        entry.count += 1;
    }

    /// Forgets `proxy`'s failure once a consistent set compiles for it.
    pub fn clear_inconsistent(&self, proxy: &str) {
        self.inconsistent.remove(proxy);
    }

    /// The proxies whose latest compiled set failed the consistency check, by node id.
    pub fn inconsistencies(&self) -> Vec<Inconsistency> {
        let mut all: Vec<Inconsistency> = self.inconsistent.iter().map(|e| e.clone()).collect();
        all.sort_by(|a, b| a.proxy.cmp(&b.proxy));
        all
    }

    /// Compiled sets that failed the consistency check since the server started.
    pub fn inconsistent_total(&self) -> u64 {
        self.inconsistent_total.load(Ordering::Relaxed)
    }

    /// Counts `n` more NACKs, from any proxy.
    pub fn record_nacks(&self, n: u64) {
        self.nacks_total.fetch_add(n, Ordering::Relaxed);
    }

    /// Whether anyone listens, so that the push path builds no event for
    /// no one.
    pub fn listening(&self) -> bool {
        self.events.0.receiver_count() > 0
    }

    /// Tells whoever listens (`GET /api/v1/events`).
    pub fn emit(&self, event: ProxyEvent) {
        if self.listening() {
            let _ = self.events.0.send(event);
        }
    }

    /// The proxy events from now on.
    pub fn events(&self) -> tokio::sync::broadcast::Receiver<ProxyEvent> {
        self.events.0.subscribe()
    }

    /// What the streams count for `/metrics`.
    pub fn metrics(&self) -> &crate::metrics::XdsMetrics {
        &self.metrics
    }

    /// NACKs received since the server started, from every proxy.
    pub fn nacks_total(&self) -> u64 {
        self.nacks_total.load(Ordering::Relaxed)
    }

    pub fn get(&self, id: &str) -> Option<ProxyStatus> {
        self.proxies.get(id).map(|s| self.with_last_push(s.clone()))
    }

    /// Every connected proxy, sorted by node id.
    pub fn list(&self) -> Vec<ProxyStatus> {
        let mut all: Vec<ProxyStatus> = self
            .proxies
            .iter()
            .map(|s| self.with_last_push(s.clone()))
            .collect();
        all.sort_by(|a, b| a.id.cmp(&b.id));
        all
    }

    /// `status` with the time its stream last sent a response, read from
    /// the record of what it was sent (kept there, so the push path writes
    /// one time beside the version it writes anyway).
    fn with_last_push(&self, mut status: ProxyStatus) -> ProxyStatus {
        status.last_push = self
            .sent
            .get(&status.id)
            .filter(|e| e.0 == status.stream_id)
            .and_then(|e| e.1.values().map(|(_, _, at)| *at).max())
            .map(rfc3339);
        status
    }

    pub fn len(&self) -> usize {
        self.proxies.len()
    }

    pub fn is_empty(&self) -> bool {
        self.proxies.is_empty()
    }
}
