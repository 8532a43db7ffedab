//! The admin API (axum): health, connected proxies with their xDS state,
//! services with their endpoints, the config's diagnostics, the snapshot
//! generation being served with how many proxies have ACKed it, the CA's
//! trust bundle, and `/metrics` for Prometheus.
//!
//! Paths and JSON field names are a public contract: dashboards and scripts
//! read them. Add fields; never rename or remove one.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use discovery::model::Resolution;
use discovery::{Protocol, ServiceModel};
use policy::{Diagnostic, Severity};
use serde::Serialize;
use tokio::sync::watch;

use crate::xds::{ProxyStatus, StatusRegistry};
use pilot_core::resources::ResourceType;
use pilot_core::snapshot::Snapshot;

/// What the handlers read: the current snapshot and the proxies' status.
#[derive(Clone, Debug)]
pub struct AdminState {
    pub snapshots: watch::Receiver<Arc<Snapshot>>,
    pub status: Arc<StatusRegistry>,
    /// The CA's roots, PEM; `None` when no CA runs.
    pub trust_bundle: watch::Receiver<Option<Arc<str>>>,
    /// What `/api/v1/ca` shows (the CA's roots and root rotation), as the
    /// CA's driver reports it; `None` when no CA runs.
    pub ca: watch::Receiver<Option<serde_json::Value>>,
    /// JWT key sources the control plane cannot fetch.
    pub key_failures: watch::Receiver<crate::jwks::Failures>,
    /// The config directory `POST /api/v1/apply` writes into (file mode).
    pub config_dir: Option<std::path::PathBuf>,
    /// Serialises writers.
    pub writes: Arc<tokio::sync::Mutex<()>>,
    /// The mesh config, to compile what an apply would change.
    pub mesh: Arc<pilot_core::mesh::Mesh>,
    /// The other replicas of the control plane.
    pub replicas: Replicas,
}

/// The replicas `GET /api/v1/replicas/proxies` asks.
#[derive(Clone, Debug)]
pub struct Replicas {
    /// This replica's admin address (not asked over the network).
    pub own: std::net::SocketAddr,
    /// The admin token's file: the replicas share one (a Secret), and a
    /// peer under `--admin-read-auth` needs it.
    pub token: Option<std::path::PathBuf>,
    pub peers: Peers,
}

#[derive(Clone)]
pub enum Peers {
    /// Admin API URLs, as given (`--peer`).
    Urls(Vec<String>),
    /// The endpoints of the control plane's Service, read at each request.
    Service {
        client: discovery_kubernetes::KubeClient,
        service: discovery_kubernetes::replicas::ControlPlaneService,
    },
}

impl std::fmt::Debug for Peers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Peers::Urls(urls) => f.debug_tuple("Urls").field(urls).finish(),
            Peers::Service { service, .. } => f.debug_tuple("Service").field(service).finish(),
        }
    }
}

pub fn router(state: AdminState) -> Router {
    Router::new()
        .route("/", get(dashboard_page))
        .route("/ui/{file}", get(dashboard_asset))
        .route("/healthz", get(healthz))
        .route("/api/v1/proxies", get(proxies))
        .route("/api/v1/replicas/proxies", get(replica_proxies))
        .route("/api/v1/proxies/{id}", get(proxy))
        .route("/api/v1/proxies/{id}/config", get(proxy_config))
        .route("/api/v1/services", get(services))
        .route("/api/v1/diagnostics", get(diagnostics))
        .route("/api/v1/snapshot", get(snapshot))
        .route("/api/v1/trust-bundle", get(trust_bundle))
        .route("/api/v1/ca", get(ca))
        .route("/metrics", get(metrics))
        .route("/api/v1/apply", axum::routing::post(apply))
        .route("/api/v1/events", get(events))
        .route("/api/v1/topology", get(topology))
        .route("/api/v1/config/{group}/{kind}", get(config_list))
        .route(
            "/api/v1/config/{group}/{kind}/{namespace}/{name}",
            get(config_object).delete(config_object),
        )
        .with_state(state)
        .merge(webhook(None))
}

/// The dashboard, built from `pilot/server/dashboard/src` into `dist/`
/// (committed, so the build needs no npm) and embedded here.
const DASHBOARD_HTML: &str = include_str!("../dashboard/dist/index.html");
const DASHBOARD_ASSETS: [(&str, &str, &str); 3] = [
    (
        "dashboard.js",
        "text/javascript; charset=utf-8",
        include_str!("../dashboard/dist/dashboard.js"),
    ),
    (
        "dashboard.css",
        "text/css; charset=utf-8",
        include_str!("../dashboard/dist/dashboard.css"),
    ),
    (
        "THIRD-PARTY-LICENSES.txt",
        "text/plain; charset=utf-8",
        include_str!("../dashboard/dist/THIRD-PARTY-LICENSES.txt"),
    ),
];

/// `GET /`: the dashboard's page. It carries no mesh data (that comes from
/// the API), so it needs no token; the API it reads may.
async fn dashboard_page() -> axum::response::Html<&'static str> {
    axum::response::Html(DASHBOARD_HTML)
}

/// `GET /ui/{file}`: the dashboard's script, style and licences.
async fn dashboard_asset(
    axum::extract::Path(file): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    match DASHBOARD_ASSETS.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *body,
        )
            .into_response(),
        None => not_found(format!("no dashboard file {file}")),
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn proxies(State(state): State<AdminState>) -> Json<Vec<ProxyStatus>> {
    Json(state.status.list())
}

/// Only a guard: a replica that does not answer in this time is reported
/// as unreachable.
const REPLICA_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// `GET /api/v1/replicas/proxies`: the proxies of every replica, merged,
/// as `bowline proxy-status` merges several `--server`s: `servers` (each
/// replica asked: `server`, `proxies` or `error`) and `proxies` (each
/// entry of its `/api/v1/proxies` with the `server` it is connected to).
/// The replicas are the Service's ready endpoints in Kubernetes mode (this
/// one answered locally), else the `--peer` URLs.
async fn replica_proxies(State(state): State<AdminState>) -> Json<serde_json::Value> {
    let own_url = format!("http://{}", state.replicas.own);
    let local = state.status.list();
    let mut servers =
        vec![serde_json::json!({"server": own_url, "proxies": local.len(), "self": true})];
    let mut proxies: Vec<serde_json::Value> = local
        .into_iter()
        .map(|p| {
            let mut value = serde_json::to_value(p).unwrap_or_default();
            value["server"] = own_url.clone().into();
            value
        })
        .collect();
    let urls = match &state.replicas.peers {
        Peers::Urls(urls) => urls.clone(),
        Peers::Service { client, service } => {
            match discovery_kubernetes::replicas::admin_addresses_of(client.clone(), service).await
            {
                Ok(addrs) => {
                    let pod_ip: Option<std::net::IpAddr> =
                        std::env::var("POD_IP").ok().and_then(|ip| ip.parse().ok());
                    addrs
                        .into_iter()
                        .filter(|a| *a != state.replicas.own && Some(a.ip()) != pod_ip)
                        .map(|a| format!("http://{a}"))
                        .collect()
                }
                Err(error) => {
                    servers.push(serde_json::json!({
                        "server": format!("endpoints of {}/{}", service.namespace, service.name),
                        "error": error.to_string(),
                    }));
                    Vec::new()
                }
            }
        }
    };
    let token = state
        .replicas
        .token
        .as_ref()
        .and_then(|f| std::fs::read_to_string(f).ok())
        .map(|t| t.trim().to_string());
    let http = reqwest::Client::builder()
        .no_proxy()
        .timeout(REPLICA_TIMEOUT)
        .build()
        .unwrap_or_default();
    for url in urls {
        let mut request = http.get(format!("{}/api/v1/proxies", url.trim_end_matches('/')));
        if let Some(token) = &token {
            request = request.bearer_auth(token);
        }
        let answer = async {
            let response = request.send().await.map_err(|e| e.to_string())?;
            if !response.status().is_success() {
                return Err(format!("answered {}", response.status()));
            }
            response
                .json::<Vec<serde_json::Value>>()
                .await
                .map_err(|e| e.to_string())
        };
        match answer.await {
            Ok(list) => {
                servers.push(serde_json::json!({"server": url, "proxies": list.len()}));
                proxies.extend(list.into_iter().map(|mut p| {
                    p["server"] = url.clone().into();
                    p
                }));
            }
            Err(error) => servers.push(serde_json::json!({"server": url, "error": error})),
        }
    }
    Json(serde_json::json!({"servers": servers, "proxies": proxies}))
}

/// `GET /api/v1/proxies/{id}`: one proxy, by its node id or as
/// `WORKLOAD.NAMESPACE` (as `bowline proxy-status` names it); 404 when
/// none is connected, 409 when that name fits several (give the node id).
async fn proxy(
    State(state): State<AdminState>,
    axum::extract::Path(id): axum::extract::Path<String>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match named_proxy(&state.status, &id) {
        Ok(status) => Json(status).into_response(),
        Err(refusal) => *refusal,
    }
}

/// The proxy `id` names: its node id, or `WORKLOAD.NAMESPACE`; else the
/// answer to give (404 for none, 409 for several).
fn named_proxy(
    status: &StatusRegistry,
    id: &str,
) -> Result<ProxyStatus, Box<axum::response::Response>> {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    if let Some(status) = status.get(id) {
        return Ok(status);
    }
    let mut named: Vec<ProxyStatus> = status
        .list()
        .into_iter()
        .filter(|p| format!("{}.{}", p.workload, p.namespace) == id)
        .collect();
    match named.len() {
        1 => Ok(named.remove(0)),
        0 => Err(Box::new(not_found(format!("no proxy {id} is connected")))),
        _ => Err(Box::new(
            (
                StatusCode::CONFLICT,
                Json(serde_json::json!({
                    "error": format!("{id} names several proxies: give the node id"),
                    "proxies": named.iter().map(|p| p.id.clone()).collect::<Vec<_>>(),
                })),
            )
                .into_response(),
        )),
    }
}

/// The query of `GET /api/v1/proxies/{id}/config`.
#[derive(Debug, Default, serde::Deserialize)]
struct ConfigQuery {
    #[serde(rename = "type")]
    ty: Option<String>,
}

/// The short name of a type in the config view and `bowline proxy-config`.
pub fn type_name(ty: ResourceType) -> &'static str {
    match ty {
        ResourceType::Cluster => "cluster",
        ResourceType::Endpoint => "endpoint",
        ResourceType::Listener => "listener",
        ResourceType::Route => "route",
        ResourceType::Secret => "secret",
    }
}

/// `GET /api/v1/proxies/{id}/config[?type=listener|route|cluster|endpoint|secret]`:
/// the resources last sent to the proxy, per type, as JSON in the form of
/// Envoy's config dump, with the version sent; key material redacted.
async fn proxy_config(
    State(state): State<AdminState>,
    axum::extract::Path(id): axum::extract::Path<String>,
    axum::extract::Query(query): axum::extract::Query<ConfigQuery>,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let proxy = match named_proxy(&state.status, &id) {
        Ok(proxy) => proxy,
        Err(refusal) => return *refusal,
    };
    let wanted = match query.ty.as_deref() {
        None => None,
        Some(name) => match ResourceType::ALL.iter().find(|t| type_name(**t) == name) {
            Some(ty) => Some(*ty),
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(serde_json::json!({"error": format!(
                        "type {name:?}: expected listener, route, cluster, endpoint or secret"
                    )})),
                )
                    .into_response();
            }
        },
    };
    let sent = state.status.sent(&proxy.id).unwrap_or_default();
    let mut types = serde_json::Map::new();
    for (ty, (version, set, _)) in &sent {
        if wanted.is_some_and(|w| w != *ty) {
            continue;
        }
        let resources: Vec<serde_json::Value> = set
            .values()
            .map(|r| {
                let config = match pilot_envoy_json::to_json(ty.type_url(), r.value()) {
                    Ok(mut config) => {
                        pilot_envoy_json::redact(&mut config);
                        config
                    }
                    Err(error) => serde_json::json!({"error": error}),
                };
                serde_json::json!({"name": r.name, "config": config})
            })
            .collect();
        types.insert(
            type_name(*ty).to_string(),
            serde_json::json!({
                "type_url": ty.type_url(),
                "version": version,
                "resources": resources,
            }),
        );
    }
    Json(serde_json::json!({"proxy": proxy.id, "address": proxy.address, "types": types}))
        .into_response()
}

async fn services(State(state): State<AdminState>) -> Json<Vec<ServiceView>> {
    let snapshot = state.snapshots.borrow().clone();
    Json(
        snapshot
            .registry
            .services
            .values()
            .map(|s| {
                let mut view = ServiceView::from(s.as_ref());
                (view.subsets, view.policies) =
                    pilot_core::topology::policies_of(&snapshot, &s.hostname);
                for (view, endpoint) in view.endpoints.iter_mut().zip(&s.endpoints) {
                    view.identity = endpoint.workload.as_ref().map(|(namespace, _)| {
                        format!(
                            "spiffe://{}/ns/{namespace}/sa/{}",
                            snapshot.mesh.trust_domain,
                            endpoint.service_account.as_deref().unwrap_or("default")
                        )
                    });
                }
                view
            })
            .collect(),
    )
}

/// `GET /api/v1/trust-bundle`: every root workloads trust, PEM.
async fn trust_bundle(State(state): State<AdminState>) -> axum::response::Response {
    use axum::http::{StatusCode, header};
    use axum::response::IntoResponse;
    match state.trust_bundle.borrow().clone() {
        Some(pem) => (
            [(header::CONTENT_TYPE, "application/x-pem-file")],
            pem.to_string(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no CA runs in this control plane\n").into_response(),
    }
}

/// `POST /validate`: Kubernetes validating admission (an AdmissionReview),
/// with the checks of `bowline validate`; Istio's webhook path. Served on
/// the admin API and, over HTTPS as the API server requires, on the CA's
/// TLS port.
pub fn webhook(injection: Option<pilot_inject::Injection>) -> Router {
    let router = Router::new().route("/validate", axum::routing::post(validate));
    match injection {
        Some(injection) => router.route(
            "/inject",
            axum::routing::post(move |body: axum::body::Bytes| async move {
                Json(pilot_inject::review(&body, &injection))
            }),
        ),
        None => router,
    }
}

async fn validate(body: axum::body::Bytes) -> Json<serde_json::Value> {
    Json(policy::admission::review(&body))
}

/// `GET /api/v1/ca`: the roots, their expiry, the rotation's step, and how
/// many workloads hold a certificate from each root.
async fn ca(State(state): State<AdminState>) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    match state.ca.borrow().clone() {
        Some(view) => Json(view).into_response(),
        None => (StatusCode::NOT_FOUND, "no CA runs in this control plane\n").into_response(),
    }
}

#[derive(Debug, serde::Deserialize)]
struct ApplyQuery {
    #[serde(rename = "dryRun", default)]
    dry_run: bool,
    /// `diff=false`: no per-proxy summary (it compiles the mesh twice).
    #[serde(default = "yes")]
    diff: bool,
}

fn yes() -> bool {
    true
}

/// Why a control plane without a config directory of its own to write
/// refuses config writes.
const NO_WRITES: &str = "this control plane writes no config: it reads no config directory, or it \
                         reads the cluster's, where custom resources are applied with kubectl under \
                         the user's own RBAC";

/// `POST /api/v1/apply[?dryRun=true]`: see [`crate::apply`].
async fn apply(
    State(state): State<AdminState>,
    axum::extract::Query(query): axum::extract::Query<ApplyQuery>,
    body: String,
) -> axum::response::Response {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    let Some(dir) = &state.config_dir else {
        return (
            StatusCode::NOT_IMPLEMENTED,
            Json(serde_json::json!({"error": NO_WRITES})),
        )
            .into_response();
    };
    let _writer = state.writes.lock().await;
    let snapshot = state.snapshots.borrow().clone();
    let origin = |key: &policy::ObjectKey| snapshot.origins.get(key).cloned();
    // Checked as a dry run first: what it would write is compiled against
    // the files in force for the summary, before anything is written.
    let planned = match crate::apply::apply(dir, &body, true, origin) {
        Ok(planned) => planned,
        Err(refused) => return refusal(refused),
    };
    let preview = if query.diff {
        let (dir, mesh, dry_run) = (dir.clone(), state.mesh.clone(), query.dry_run);
        let writes: Vec<(std::path::PathBuf, String)> = planned
            .iter()
            .map(|a| (std::path::PathBuf::from(&a.file), a.text.clone()))
            .collect();
        let compiled = tokio::task::spawn_blocking(move || {
            let files = crate::preview::read_dir(&dir);
            crate::preview::preview(&mesh, &files, &writes, dry_run)
        })
        .await;
        compiled.ok()
    } else {
        None
    };
    let applied = if query.dry_run {
        planned
    } else {
        let origin = |key: &policy::ObjectKey| snapshot.origins.get(key).cloned();
        match crate::apply::apply(dir, &body, false, origin) {
            Ok(applied) => applied,
            Err(refused) => return refusal(refused),
        }
    };
    let mut answer = serde_json::json!({"dryRun": query.dry_run, "applied": applied});
    if let Some(preview) = preview {
        answer["proxies"] = serde_json::to_value(preview).unwrap_or_default();
    }
    Json(answer).into_response()
}

/// The answer to a refused write.
fn refusal(refused: crate::apply::Refused) -> axum::response::Response {
    use crate::apply::Refused;
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    match refused {
        Refused::Invalid(errors) => (
            StatusCode::BAD_REQUEST,
            Json(serde_json::json!({"errors": errors})),
        )
            .into_response(),
        Refused::HandWritten { object, file } => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({
                "error": format!("{object} is defined in {file}, by hand: edit that file"),
                "file": file,
            })),
        )
            .into_response(),
        Refused::Stale {
            object,
            asked,
            current,
        } => (
            StatusCode::CONFLICT,
            Json(serde_json::json!({
                "error": format!("{object} is no longer at resourceVersion {asked}: read it again"),
                "resourceVersion": current,
            })),
        )
            .into_response(),
        Refused::Write { file, error } => (
            StatusCode::INTERNAL_SERVER_ERROR,
            Json(serde_json::json!({"error": format!("cannot write {file}: {error}")})),
        )
            .into_response(),
    }
}

/// The kind a config path names: as written (`VirtualService`), in lower
/// case, or Istio's plural (`virtualservices`), under its own group.
fn config_kind(group: &str, kind: &str) -> Option<policy::Kind> {
    let lower = kind.to_ascii_lowercase();
    policy::Kind::ALL.into_iter().find(|k| {
        let name = k.as_str().to_ascii_lowercase();
        k.group() == group && (lower == name || lower == format!("{name}s"))
    })
}

fn not_found(what: String) -> axum::response::Response {
    use axum::response::IntoResponse;
    (
        axum::http::StatusCode::NOT_FOUND,
        Json(serde_json::json!({"error": what})),
    )
        .into_response()
}

/// `GET /api/v1/config/{group}/{kind}`: every object of the kind in force.
async fn config_list(
    State(state): State<AdminState>,
    axum::extract::Path((group, kind)): axum::extract::Path<(String, String)>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Some(kind) = config_kind(&group, &kind) else {
        return not_found(format!("no kind {kind} in group {group}"));
    };
    let snapshot = state.snapshots.borrow().clone();
    let objects: Vec<crate::apply::Stored> = snapshot
        .origins
        .iter()
        .filter(|(key, _)| key.kind == kind)
        .filter_map(|(key, origin)| crate::apply::stored(key, origin))
        .collect();
    Json(objects).into_response()
}

/// `GET|DELETE /api/v1/config/{group}/{kind}/{namespace}/{name}`.
async fn config_object(
    State(state): State<AdminState>,
    method: axum::http::Method,
    axum::extract::Path((group, kind, namespace, name)): axum::extract::Path<(
        String,
        String,
        String,
        String,
    )>,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    let Some(kind) = config_kind(&group, &kind) else {
        return not_found(format!("no kind {kind} in group {group}"));
    };
    let key = policy::ObjectKey {
        kind,
        namespace,
        name,
    };
    let what = format!("{} {}/{}", key.kind, key.namespace, key.name);
    if method == axum::http::Method::DELETE {
        let Some(dir) = &state.config_dir else {
            return not_found(NO_WRITES.to_string());
        };
        let _writer = state.writes.lock().await;
        let snapshot = state.snapshots.borrow().clone();
        return match crate::apply::delete(dir, &key, snapshot.origins.get(&key)) {
            Ok(true) => Json(serde_json::json!({"deleted": what})).into_response(),
            Ok(false) => not_found(format!("{what} is not the admin API's")),
            Err(refused) => refusal(refused),
        };
    }
    let snapshot = state.snapshots.borrow().clone();
    match snapshot
        .origins
        .get(&key)
        .and_then(|origin| crate::apply::stored(&key, origin))
    {
        Some(stored) => Json(stored).into_response(),
        None => not_found(format!("no {what}")),
    }
}

/// `GET /api/v1/topology`: see [`pilot_core::topology`].
async fn topology(State(state): State<AdminState>) -> Json<pilot_core::topology::Topology> {
    let snapshot = state.snapshots.borrow().clone();
    Json(pilot_core::topology::build(&snapshot))
}

/// `GET /api/v1/events`: Server-Sent Events, each named by its `type`
/// and carrying it as JSON: `config_applied` (a new snapshot: generation,
/// services, errors), `connected`, `disconnected`, `nack` (type URL,
/// version, Envoy's text) and `push_completed` (a set that a snapshot change
/// compiled went out), from the moment the client connects. A client too
/// slow to keep up gets `lagged` with how many it missed.
async fn events(
    State(state): State<AdminState>,
) -> axum::response::sse::Sse<
    impl tokio_stream::Stream<Item = Result<axum::response::sse::Event, std::convert::Infallible>>,
> {
    use axum::response::sse::{Event, KeepAlive, Sse};
    use tokio_stream::StreamExt;
    use tokio_stream::wrappers::errors::BroadcastStreamRecvError;
    use tokio_stream::wrappers::{BroadcastStream, WatchStream};
    let named = |value: serde_json::Value| {
        let name = value["type"].as_str().unwrap_or("event").to_string();
        Event::default()
            .event(name)
            .json_data(&value)
            .unwrap_or_default()
    };
    let proxies = BroadcastStream::new(state.status.events()).map(move |event| {
        Ok(match event {
            Ok(event) => named(serde_json::to_value(event).unwrap_or_default()),
            Err(BroadcastStreamRecvError::Lagged(missed)) => {
                Event::default().event("lagged").data(missed.to_string())
            }
        })
    });
    let configs = WatchStream::from_changes(state.snapshots.clone()).map(move |snapshot| {
        Ok(named(serde_json::json!({
            "type": "config_applied",
            "generation": snapshot.generation,
            "services": snapshot.registry.services.len(),
            "errors": snapshot.diagnostics.iter().filter(|d| d.is_error()).count(),
        })))
    });
    Sse::new(proxies.merge(configs)).keep_alive(KeepAlive::default())
}

/// `GET /metrics`: Prometheus text, Istio's names (see [`crate::metrics`]).
async fn metrics(State(state): State<AdminState>) -> axum::response::Response {
    use axum::http::header;
    use axum::response::IntoResponse;
    let snapshot = state.snapshots.borrow().clone();
    let readings = crate::metrics::Readings {
        connected: state.status.len() as u64,
        config_errors: snapshot
            .diagnostics
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count() as u64,
        inconsistent: state.status.inconsistent_total(),
        ca: state
            .ca
            .borrow()
            .as_ref()
            .map(crate::metrics::CaReadings::from_view),
    };
    (
        [(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)],
        crate::metrics::render(state.status.metrics(), &readings),
    )
        .into_response()
}

async fn snapshot(State(state): State<AdminState>) -> Json<SnapshotView> {
    let snapshot = state.snapshots.borrow().clone();
    Json(SnapshotView::new(&snapshot, &state.status.list()))
}

/// `GET /api/v1/snapshot`: the generation being served, and how many of the
/// connected proxies have ACKed it. "Converged" reads exactly: every proxy's
/// `acked_generation` in `/api/v1/proxies` is at least `generation`.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct SnapshotView {
    /// The current snapshot's generation; it increases with every rebuild.
    pub generation: u64,
    /// Connected proxies.
    pub proxies: usize,
    /// Connected proxies whose `acked_generation` is at least `generation`.
    pub converged: usize,
}

impl SnapshotView {
    pub fn new(snapshot: &Snapshot, proxies: &[ProxyStatus]) -> Self {
        SnapshotView {
            generation: snapshot.generation,
            proxies: proxies.len(),
            converged: proxies
                .iter()
                .filter(|p| p.has_converged(snapshot.generation))
                .count(),
        }
    }
}

async fn diagnostics(State(state): State<AdminState>) -> Json<Vec<DiagnosticView>> {
    let snapshot = state.snapshots.borrow().clone();
    let failures = state.key_failures.borrow().clone();
    let mut views = diagnostic_views(&snapshot, &state.status);
    views.extend(key_failure_views(&snapshot, &failures));
    Json(views)
}

/// A warning on each JWT rule whose keys the control plane cannot fetch:
/// its tokens are refused (401) until a fetch succeeds, or verified with
/// the last keys fetched.
pub fn key_failure_views(
    snapshot: &Snapshot,
    failures: &BTreeMap<policy::security::KeySource, String>,
) -> Vec<DiagnosticView> {
    let mut out = Vec::new();
    if failures.is_empty() {
        return out;
    }
    for ra in snapshot.security.request_authentications() {
        for (i, rule) in ra.spec.jwt_rules.iter().enumerate() {
            let Some(source) = rule.key_source() else {
                continue;
            };
            let Some(error) = failures.get(&source) else {
                continue;
            };
            let path = match &rule.jwks_uri {
                Some(_) => format!("spec.jwtRules[{i}].jwksUri"),
                None => format!("spec.jwtRules[{i}].issuer"),
            };
            let fetched = snapshot.jwks.contains_key(&source);
            let message = format!(
                "the control plane cannot fetch the keys of issuer {:?}: {error}; {}",
                rule.issuer,
                if fetched {
                    "its tokens are verified with the keys fetched last"
                } else {
                    "its tokens are refused with 401 until a fetch succeeds"
                }
            );
            let origin = snapshot.origins.get(&policy::ObjectKey {
                kind: policy::Kind::RequestAuthentication,
                namespace: ra.meta.namespace.clone(),
                name: ra.meta.name.clone(),
            });
            out.push(DiagnosticView {
                severity: "warning",
                file: origin.map(|(file, _)| file.clone()).unwrap_or_default(),
                document: origin.map(|(_, document)| *document),
                kind: Some("RequestAuthentication".to_string()),
                namespace: Some(ra.meta.namespace.clone()),
                name: Some(ra.meta.name.clone()),
                text: format!(
                    "RequestAuthentication {}/{}: {path}: {message}",
                    ra.meta.namespace, ra.meta.name
                ),
                path,
                message,
                proxy: None,
                count: None,
            });
        }
    }
    out
}

/// The config's findings, then every proxy whose compiled set failed the
/// consistency check (and so was not pushed).
pub fn diagnostic_views(snapshot: &Snapshot, status: &StatusRegistry) -> Vec<DiagnosticView> {
    let config = snapshot.diagnostics.iter().map(DiagnosticView::from);
    let inconsistent = status.inconsistencies().into_iter().map(|i| {
        let message = format!(
            "the config compiled for this proxy from snapshot {} fails the consistency check, so it was not pushed and the proxy keeps its previous config: {}",
            i.generation,
            i.problems.join("; ")
        );
        DiagnosticView {
            severity: "error",
            file: String::new(),
            document: None,
            kind: None,
            namespace: None,
            name: None,
            path: String::new(),
            text: format!("proxy {}: {message}", i.proxy),
            message,
            proxy: Some(i.proxy),
            count: Some(i.count),
        }
    });
    config
        .chain(inconsistent)
        .chain(nack_views(status))
        .collect()
}

/// Every configuration a proxy rejects now (its last NACK is of the version
/// it was sent last), once per object it came from, or once without one.
fn nack_views(status: &StatusRegistry) -> Vec<DiagnosticView> {
    let mut out = Vec::new();
    for proxy in status.list() {
        for (type_url, state) in &proxy.xds {
            let Some(nack) = &state.nack else { continue };
            let current = state.sent_version.as_deref() == Some(nack.version.as_str())
                && state.acked_version != state.sent_version;
            if !current {
                continue;
            }
            let short = type_url.rsplit('.').next().unwrap_or(type_url);
            let message = format!(
                "the proxy rejected {short} version {}: {}",
                nack.version,
                nack.message.trim()
            );
            let view = |object: Option<&pilot_core::blame::Blamed>| DiagnosticView {
                severity: "error",
                file: object.and_then(|o| o.file.clone()).unwrap_or_default(),
                document: object.and_then(|o| o.document),
                kind: object.map(|o| o.kind.clone()),
                namespace: object.map(|o| o.namespace.clone()),
                name: object.map(|o| o.name.clone()),
                path: object.map(|o| o.resource.clone()).unwrap_or_default(),
                text: match object {
                    Some(o) => format!(
                        "proxy {}: {message} (from {} {}/{}: {})",
                        proxy.id, o.kind, o.namespace, o.name, o.resource
                    ),
                    None => format!("proxy {}: {message}", proxy.id),
                },
                message: message.clone(),
                proxy: Some(proxy.id.clone()),
                count: None,
            };
            if nack.objects.is_empty() {
                out.push(view(None));
            } else {
                out.extend(nack.objects.iter().map(|o| view(Some(o))));
            }
        }
    }
    out
}

/// A service in `GET /api/v1/services`.
#[derive(Debug, Serialize)]
pub struct ServiceView {
    pub hostname: String,
    pub namespace: String,
    pub name: Option<String>,
    pub resolution: &'static str,
    pub mesh_external: bool,
    pub ports: Vec<PortView>,
    pub endpoints: Vec<EndpointView>,
    /// The subsets of the DestinationRule that applies (from the service's
    /// own namespace).
    pub subsets: Vec<pilot_core::topology::SubsetView>,
    /// The objects that apply to it and its workloads: VirtualService,
    /// DestinationRule, PeerAuthentication, RequestAuthentication,
    /// AuthorizationPolicy (see [`pilot_core::topology::policies_of`]).
    pub policies: Vec<pilot_core::topology::PolicyRef>,
}

#[derive(Debug, Serialize)]
pub struct PortView {
    pub name: String,
    pub port: u16,
    pub protocol: &'static str,
}

#[derive(Debug, Serialize)]
pub struct EndpointView {
    pub address: String,
    /// Service port -> port on this endpoint.
    pub ports: BTreeMap<u16, u16>,
    pub labels: BTreeMap<String, String>,
    pub service_account: Option<String>,
    pub locality: String,
    pub weight: u32,
    /// `namespace/name` of the WorkloadEntry behind the endpoint.
    pub workload: Option<String>,
    /// `HEALTHY`: endpoints that are not ready, or are terminating, are not
    /// in the registry at all (not sent to proxies, as Istio by default).
    pub health: &'static str,
    /// The SPIFFE identity a mesh workload's sidecar presents there
    /// (`spiffe://TRUST_DOMAIN/ns/NS/sa/SA`); `null` for an endpoint
    /// without a workload (a ServiceEntry's).
    pub identity: Option<String>,
}

impl From<&ServiceModel> for ServiceView {
    fn from(s: &ServiceModel) -> Self {
        ServiceView {
            hostname: s.hostname.clone(),
            namespace: s.namespace.clone(),
            name: s.name.clone(),
            resolution: match s.resolution {
                Resolution::Static => "STATIC",
                Resolution::Dns => "DNS",
                Resolution::Passthrough => "NONE",
            },
            mesh_external: s.mesh_external,
            ports: s
                .ports
                .iter()
                .map(|p| PortView {
                    name: p.name.clone(),
                    port: p.number,
                    protocol: protocol_name(p.protocol),
                })
                .collect(),
            endpoints: s
                .endpoints
                .iter()
                .map(|e| EndpointView {
                    address: e.address.clone(),
                    ports: e.ports.clone(),
                    labels: e.labels.clone(),
                    service_account: e.service_account.clone(),
                    locality: e.locality.clone(),
                    weight: e.weight,
                    workload: e.workload.as_ref().map(|(ns, name)| format!("{ns}/{name}")),
                    health: "HEALTHY",
                    identity: None,
                })
                .collect(),
            subsets: Vec::new(),
            policies: Vec::new(),
        }
    }
}

fn protocol_name(p: Protocol) -> &'static str {
    match p {
        Protocol::Http => "HTTP",
        Protocol::Http2 => "HTTP2",
        Protocol::Grpc => "GRPC",
        Protocol::Tcp => "TCP",
        Protocol::Tls => "TLS",
        Protocol::Https => "HTTPS",
        Protocol::Unknown => "UNKNOWN",
    }
}

/// A finding in `GET /api/v1/diagnostics`.
#[derive(Debug, Serialize)]
pub struct DiagnosticView {
    pub severity: &'static str,
    pub file: String,
    pub document: Option<usize>,
    pub kind: Option<String>,
    pub namespace: Option<String>,
    pub name: Option<String>,
    pub path: String,
    pub message: String,
    /// The whole finding as one line, as `bowline` logs it.
    pub text: String,
    /// For a compiled set that failed the consistency check: the proxy's node id.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub proxy: Option<String>,
    /// For a compiled set that failed the consistency check: how many of the
    /// proxy's sets failed it since it connected.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
}

impl From<&Diagnostic> for DiagnosticView {
    fn from(d: &Diagnostic) -> Self {
        DiagnosticView {
            severity: match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            file: d.file.clone(),
            document: d.document,
            kind: d.object.as_ref().map(|o| format!("{:?}", o.kind)),
            namespace: d.object.as_ref().map(|o| o.namespace.clone()),
            name: d.object.as_ref().map(|o| o.name.clone()),
            path: d.path.to_string(),
            message: d.message.clone(),
            text: d.to_string(),
            proxy: None,
            count: None,
        }
    }
}
