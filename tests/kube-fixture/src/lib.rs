//! A test fixture, not an API server: a loopback stand-in for kube-apiserver
//! that speaks enough of the real Kubernetes API protocol, over HTTPS, for
//! kube-rs clients (Bowline's included) to run against it unchanged through
//! a kubeconfig file. It exists because no real API server can run where
//! Bowline's tests run.
//!
//! ```text
//! kube::Client ──HTTPS (kubeconfig: CA, server, token)──► ApiServer
//!                                                          ├─ http: paths and verbs → store
//!                                                          ├─ store: objects, one resourceVersion,
//!                                                          │         history, watches, compaction
//!                                                          └─ TokenReview from registered tokens
//! test ── apply / delete / drop_watches / compact / requests ──┘
//! ```
//!
//! It holds everything in memory, runs no admission, defaulting, validation,
//! garbage collection or finalizers, and deletes objects at once. It depends
//! on nothing of Bowline.

mod body;
mod http;
mod patch;
mod resources;
mod selector;
mod status;
mod store;
mod tls;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::watch;

pub use resources::ResourceType;
pub use store::GoneDelivery;

/// Errors starting the fixture or using its hooks.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The listening address could not be bound.
    #[error("binding {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The serving certificate could not be made.
    #[error("serving certificate: {0}")]
    Tls(String),
    /// The kubeconfig could not be written.
    #[error("writing kubeconfig {path}: {source}")]
    Kubeconfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A hook was given an object the store refuses, with the API server's message.
    #[error("{0}")]
    Object(String),
}

/// The fixture's result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a served request did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verb {
    /// A list of a collection.
    List,
    /// A watch of a collection.
    Watch,
    /// A get of one object (or its status).
    Get,
    /// A POST to a collection.
    Create,
    /// A PUT of an object (or its status).
    Update,
    /// A PATCH of an object (or its status), server-side apply included.
    Patch,
    /// A DELETE of an object.
    Delete,
    /// A POST of a TokenReview.
    TokenReview,
    /// `/api`, `/apis`, `/version`, resource lists, health.
    Discovery,
    /// Refused for a missing or unknown bearer token.
    Unauthorized,
    /// Anything else (unknown paths, methods).
    Other,
}

/// One served request, in the log the fixture keeps.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The path, without the query.
    pub path: String,
    /// The query parameters, decoded.
    pub query: BTreeMap<String, String>,
    /// What the request did.
    pub verb: Verb,
    /// The HTTP status answered (200 for a watch, whatever the stream then held).
    pub status: u16,
}

impl RequestRecord {
    /// The `resourceVersion` query parameter, if any.
    pub fn resource_version(&self) -> Option<&str> {
        self.query.get("resourceVersion").map(String::as_str)
    }
}

#[derive(Debug)]
struct ServiceAccountToken {
    token: String,
    namespace: String,
    service_account: String,
    audiences: Vec<String>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    store: Mutex<store::Store>,
    resources: Mutex<Vec<ResourceType>>,
    pub(crate) client_tokens: Mutex<HashSet<String>>,
    sa_tokens: Mutex<Vec<ServiceAccountToken>>,
    log: Mutex<Vec<RequestRecord>>,
    log_changed: watch::Sender<usize>,
    pub(crate) hold: watch::Sender<bool>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn store(&self) -> MutexGuard<'_, store::Store> {
        lock(&self.store)
    }

    pub(crate) fn resources_snapshot(&self) -> Vec<ResourceType> {
        lock(&self.resources).clone()
    }

    pub(crate) fn record(&self, record: RequestRecord) {
        lock(&self.log).push(record);
        self.log_changed.send_modify(|n| *n += 1);
    }

    /// The type an `apiVersion` and `kind` name, with the version asked for.
    fn resolve(&self, api_version: &str, kind: &str) -> Result<(ResourceType, String)> {
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        lock(&self.resources)
            .iter()
            .find(|r| r.group == group && r.kind == kind && r.versions.iter().any(|v| v == version))
            .map(|r| (r.clone(), version.to_string()))
            .ok_or_else(|| Error::Object(format!("no resource type for {api_version} {kind}")))
    }

    pub(crate) fn group_list(&self) -> Value {
        let mut groups: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for r in lock(&self.resources).iter().filter(|r| !r.group.is_empty()) {
            let versions = groups.entry(r.group.clone()).or_default();
            for v in &r.versions {
                if !versions.contains(v) {
                    versions.push(v.clone());
                }
            }
        }
        let groups: Vec<Value> = groups
            .into_iter()
            .map(|(name, versions)| {
                let list: Vec<Value> = versions
                    .iter()
                    .map(|v| json!({"groupVersion": format!("{name}/{v}"), "version": v}))
                    .collect();
                json!({"name": name, "versions": list, "preferredVersion": list.first()})
            })
            .collect();
        json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})
    }

    pub(crate) fn resource_list(&self, group: &str, version: &str) -> Option<Value> {
        let mut resources = Vec::new();
        for r in lock(&self.resources)
            .iter()
            .filter(|r| r.group == group && r.versions.iter().any(|v| v == version))
        {
            let singular = r.kind.to_lowercase();
            let verbs = json!([
                "create", "delete", "get", "list", "patch", "update", "watch"
            ]);
            resources.push(json!({"name": r.plural, "singularName": singular, "namespaced": r.namespaced, "kind": r.kind, "verbs": verbs}));
            resources.push(json!({"name": format!("{}/status", r.plural), "singularName": "", "namespaced": r.namespaced, "kind": r.kind, "verbs": ["get", "patch", "update"]}));
        }
        if resources.is_empty() {
            return None;
        }
        let group_version = if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        };
        Some(
            json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version, "resources": resources}),
        )
    }

    /// Answers a TokenReview from the registered service-account tokens.
    pub(crate) fn token_review(&self, review: &Value) -> Value {
        let token = review
            .pointer("/spec/token")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let wanted: Vec<String> = review
            .pointer("/spec/audiences")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        let tokens = lock(&self.sa_tokens);
        let found = tokens.iter().find(|t| t.token == token);
        let status = match found {
            None => json!({"authenticated": false, "user": {}, "error": "invalid bearer token"}),
            Some(t) => {
                // No audiences asked for: the token's own are taken (the API server would use its own).
                let audiences: Vec<&String> = if wanted.is_empty() {
                    t.audiences.iter().collect()
                } else {
                    wanted.iter().filter(|a| t.audiences.contains(a)).collect()
                };
                if audiences.is_empty() {
                    json!({"authenticated": false, "user": {}, "error": "token audiences do not intersect the requested audiences"})
                } else {
                    json!({
                        "authenticated": true,
                        "user": {
                            "username": format!("system:serviceaccount:{}:{}", t.namespace, t.service_account),
                            "uid": format!("{:032x}", fastrand::u128(..)),
                            "groups": ["system:serviceaccounts", format!("system:serviceaccounts:{}", t.namespace), "system:authenticated"],
                        },
                        "audiences": audiences,
                    })
                }
            }
        };
        let mut answer = review.clone();
        answer["apiVersion"] = json!("authentication.k8s.io/v1");
        answer["kind"] = json!("TokenReview");
        if !answer["metadata"].is_object() {
            answer["metadata"] = json!({});
        }
        answer["metadata"]["creationTimestamp"] = Value::Null;
        answer["status"] = status;
        answer
    }
}

/// The running fixture: a loopback HTTPS listener and its store. Dropping it stops it.
#[derive(Debug)]
pub struct ApiServer {
    addr: SocketAddr,
    ca_pem: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ApiServer {
    /// Starts on 127.0.0.1 with a port the system picks.
    pub async fn start() -> Result<Self> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// Starts on the given (loopback) address.
    pub async fn start_on(addr: SocketAddr) -> Result<Self> {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| Error::Bind { addr, source })?;
        let (acceptor, ca_pem) = tls::serving(addr.ip())?;
        let shared = Arc::new(Shared {
            store: Mutex::new(store::Store::default()),
            resources: Mutex::new(resources::builtin()),
            client_tokens: Mutex::new(HashSet::new()),
            sa_tokens: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            log_changed: watch::channel(0).0,
            hold: watch::channel(false).0,
        });
        let task = tokio::spawn(accept(listener, acceptor, shared.clone()));
        Ok(Self {
            addr,
            ca_pem,
            shared,
            task,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The PEM of the CA that signed the serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// Writes a kubeconfig for this server (its CA, its URL, and `token` as
    /// the user's bearer token), and accepts `token` from now on.
    pub fn kubeconfig(&self, path: impl AsRef<Path>, token: &str) -> Result<()> {
        use base64::Engine;
        let path = path.as_ref();
        let ca = base64::engine::general_purpose::STANDARD.encode(&self.ca_pem);
        let config = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: kube-fixture\n  cluster:\n    server: {}\n    certificate-authority-data: {ca}\nusers:\n- name: kube-fixture\n  user:\n    token: {token}\ncontexts:\n- name: kube-fixture\n  context:\n    cluster: kube-fixture\n    user: kube-fixture\n    namespace: default\ncurrent-context: kube-fixture\n",
            self.url()
        );
        std::fs::write(path, config).map_err(|source| Error::Kubeconfig {
            path: path.to_path_buf(),
            source,
        })?;
        lock(&self.shared.client_tokens).insert(token.to_string());
        Ok(())
    }

    /// Stops serving: the listener closes and every connection, watches included, breaks.
    pub fn stop(self) {
        self.task.abort();
    }

    /// Serves one more resource type (a custom resource, say).
    pub fn add_resource(&self, rt: ResourceType) {
        let mut resources = lock(&self.shared.resources);
        resources.retain(|r| !(r.group == rt.group && r.plural == rt.plural));
        resources.push(rt);
    }

    /// Stops serving a resource type, as a cluster without its
    /// CustomResourceDefinition: its paths answer 404.
    pub fn remove_resource(&self, group: &str, plural: &str) {
        lock(&self.shared.resources).retain(|r| !(r.group == group && r.plural == plural));
    }

    /// Creates or replaces an object straight in the store, status included,
    /// as though a controller wrote it; watches see it. Returns it as stored.
    pub fn apply(&self, object: Value) -> Result<Value> {
        let api_version = object["apiVersion"].as_str().unwrap_or_default();
        let kind = object["kind"].as_str().unwrap_or_default();
        let (rt, version) = self.shared.resolve(api_version, kind)?;
        let namespace = if rt.namespaced {
            object
                .pointer("/metadata/namespace")
                .and_then(Value::as_str)
                .unwrap_or("default")
        } else {
            ""
        }
        .to_string();
        let name = object
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut store = self.shared.store();
        let result = if store.get(&rt, &namespace, &name).is_some() {
            store.update(
                &rt,
                &version,
                &namespace,
                &name,
                object,
                false,
                store::StatusScope::Write,
            )
        } else {
            store.create(&rt, &version, &namespace, object)
        };
        result.map_err(|f| Error::Object(f.message))
    }

    /// Deletes an object straight from the store; watches see it. Returns it.
    pub fn delete(
        &self,
        api_version: &str,
        kind: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value> {
        let (rt, _) = self.shared.resolve(api_version, kind)?;
        let namespace = if rt.namespaced { namespace } else { "" };
        self.shared
            .store()
            .delete(&rt, namespace, name)
            .map_err(|f| Error::Object(f.message))
    }

    /// An object as stored, if it exists.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let (rt, version) = self.shared.resolve(api_version, kind).ok()?;
        let namespace = if rt.namespaced { namespace } else { "" };
        self.shared
            .store()
            .get_view(&rt, &version, namespace, name)
            .ok()
    }

    /// Every object of a type, in every namespace, as stored.
    pub fn objects(&self, api_version: &str, kind: &str) -> Vec<Value> {
        let Ok((rt, version)) = self.shared.resolve(api_version, kind) else {
            return Vec::new();
        };
        self.shared
            .store()
            .list(&rt, &version, &store::ListQuery::default())
            .map(|(items, _, _)| items)
            .unwrap_or_default()
    }

    /// The newest resourceVersion issued.
    pub fn resource_version(&self) -> String {
        self.shared.store().resource_version().to_string()
    }

    /// Ends every open watch stream abruptly, as a dropped connection would.
    /// Returns how many were open.
    pub fn drop_watches(&self) -> usize {
        self.shared.store().drop_watches()
    }

    /// Moves the compaction point to now: a watch (or a continue token) from
    /// any earlier resourceVersion gets 410 Expired. Returns the new point.
    pub fn compact(&self) -> String {
        self.shared.store().compact().to_string()
    }

    /// Sends a BOOKMARK at the newest resourceVersion on every watch that allows bookmarks.
    pub fn bookmark(&self) {
        self.shared.store().bookmark();
    }

    /// Holds new watch requests before they start, until [`Self::release_watches`]:
    /// a test can then change the store while no watch is open.
    pub fn hold_watches(&self) {
        self.shared.hold.send_replace(true);
    }

    /// Lets held and new watch requests start.
    pub fn release_watches(&self) {
        self.shared.hold.send_replace(false);
    }

    /// Chooses how a watch from a compacted resourceVersion is refused.
    pub fn set_gone_delivery(&self, gone: GoneDelivery) {
        self.shared.store().gone = gone;
    }

    /// How many watch streams are open.
    pub fn open_watches(&self) -> usize {
        self.shared.store().open_watches()
    }

    /// Registers a service-account token for TokenReview.
    pub fn add_service_account_token(
        &self,
        token: &str,
        namespace: &str,
        service_account: &str,
        audiences: &[&str],
    ) {
        lock(&self.shared.sa_tokens).push(ServiceAccountToken {
            token: token.to_string(),
            namespace: namespace.to_string(),
            service_account: service_account.to_string(),
            audiences: audiences.iter().map(|a| a.to_string()).collect(),
        });
    }

    /// Every request served so far, oldest first.
    pub fn requests(&self) -> Vec<RequestRecord> {
        lock(&self.shared.log).clone()
    }

    /// How many served requests match.
    pub fn count(&self, matches: impl Fn(&RequestRecord) -> bool) -> usize {
        self.requests().iter().filter(|r| matches(r)).count()
    }

    /// Waits for the first served request (past or future) that matches.
    /// It never gives up: put a timeout around it.
    pub async fn wait_for_request(
        &self,
        matches: impl Fn(&RequestRecord) -> bool,
    ) -> RequestRecord {
        let mut changed = self.shared.log_changed.subscribe();
        loop {
            // A copy, so that `matches` may look at the log itself.
            let log = lock(&self.shared.log).clone();
            if let Some(found) = log.into_iter().find(|r| matches(r)) {
                return found;
            }
            if changed.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }
}

async fn accept(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    shared: Arc<Shared>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let Ok((tcp, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        let (acceptor, shared) = (acceptor.clone(), shared.clone());
        connections.spawn(async move {
            let Ok(tls) = acceptor.accept(tcp).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, std::convert::Infallible>(http::serve(shared, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                .await;
        });
    }
}
