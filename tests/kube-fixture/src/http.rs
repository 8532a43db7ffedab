//! Routing: the API server's paths and verbs, onto the store.
//!
//! ```text
//! /api/v1[/namespaces/NS]/PLURAL[/NAME[/status]]
//! /apis/GROUP/VERSION[/namespaces/NS]/PLURAL[/NAME[/status]]
//! /api  /apis  /api/v1  /apis/GROUP/VERSION  /version  (discovery)
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};

use crate::body::Body;
use crate::resources::ResourceType;
use crate::selector::{FieldSelector, LabelSelector, Selectors};
use crate::status::Failure;
use crate::store::{ListQuery, StatusScope, WatchQuery};
use crate::{RequestRecord, Shared, Verb};

type Reply = Result<Response<Body>, Failure>;

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(crate) fn parse_query(query: Option<&str>) -> BTreeMap<String, String> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (percent_decode(k), percent_decode(v)),
            None => (percent_decode(p), String::new()),
        })
        .collect()
}

fn json_response(code: u16, value: &Value) -> Response<Body> {
    let mut res = Response::new(Body::Full(Some(Bytes::from(value.to_string()))));
    *res.status_mut() = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    res
}

fn ok(value: Value) -> Reply {
    Ok(json_response(200, &value))
}

/// What a path names.
#[derive(Debug)]
struct Target {
    rt: ResourceType,
    version: String,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

/// Serves one request and records it.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    req: Request<hyper::body::Incoming>,
) -> Response<Body> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let query = parse_query(req.uri().query());
    let authorized = authorized(&shared, &req);
    let (verb, reply) = if matches!(path.as_str(), "/healthz" | "/livez" | "/readyz") {
        (
            Verb::Discovery,
            Ok(Response::new(Body::Full(Some(Bytes::from_static(b"ok"))))),
        )
    } else if !authorized {
        (
            Verb::Unauthorized,
            Err(Failure::new(401, "Unauthorized", "Unauthorized")),
        )
    } else {
        route(&shared, req, &path, &query).await
    };
    let res = reply.unwrap_or_else(|f| json_response(f.code, &f.to_json()));
    shared.record(RequestRecord {
        method: method.to_string(),
        path,
        query,
        verb,
        status: res.status().as_u16(),
    });
    res
}

fn authorized(shared: &Shared, req: &Request<hyper::body::Incoming>) -> bool {
    let header = req
        .headers()
        .get(hyper::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok());
    let Some(token) = header.and_then(|h| h.strip_prefix("Bearer ")) else {
        return false;
    };
    shared
        .client_tokens
        .lock()
        .map(|t| t.contains(token.trim()))
        .unwrap_or(false)
}

async fn route(
    shared: &Shared,
    req: Request<hyper::body::Incoming>,
    path: &str,
    query: &BTreeMap<String, String>,
) -> (Verb, Reply) {
    let segments: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .collect();
    let (group, version, rest) = match segments.as_slice() {
        ["version"] => return (Verb::Discovery, ok(version_info())),
        ["api"] => {
            return (
                Verb::Discovery,
                ok(
                    json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
                ),
            );
        }
        ["apis"] => return (Verb::Discovery, ok(shared.group_list())),
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return (Verb::Other, Err(Failure::no_route())),
    };
    if rest.is_empty() {
        return (
            Verb::Discovery,
            shared
                .resource_list(group, version)
                .ok_or_else(Failure::no_route)
                .and_then(ok),
        );
    }
    let resources = shared.resources_snapshot();
    let find = |plural: &str| {
        resources
            .iter()
            .find(|r| {
                r.group == group && r.plural == plural && r.versions.iter().any(|v| v == version)
            })
            .cloned()
    };
    let namespaced_target = match rest {
        ["namespaces", ns, plural, tail @ ..] if tail.len() <= 2 => find(plural)
            .filter(|rt| rt.namespaced)
            .map(|rt| (rt, Some(ns.to_string()), tail)),
        _ => None,
    };
    let (rt, namespace, tail) = match namespaced_target {
        Some(t) => t,
        None => match rest {
            [plural, tail @ ..] if tail.len() <= 2 => match find(plural) {
                Some(rt) => (rt, None, tail),
                None => return (Verb::Other, Err(Failure::no_route())),
            },
            _ => return (Verb::Other, Err(Failure::no_route())),
        },
    };
    let (name, status) = match tail {
        [] => (None, false),
        [name] => (Some(name.to_string()), false),
        [name, "status"] => (Some(name.to_string()), true),
        _ => return (Verb::Other, Err(Failure::no_route())),
    };
    let target = Target {
        rt,
        version: version.to_string(),
        namespace,
        name,
        status,
    };
    let method = req.method().clone();
    let content_type = req
        .headers()
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let body = match http_body_bytes(req).await {
        Ok(b) => b,
        Err(f) => return (Verb::Other, Err(f)),
    };
    handle(shared, &method, &target, query, &content_type, body).await
}

async fn http_body_bytes(req: Request<hyper::body::Incoming>) -> Result<Bytes, Failure> {
    use http_body::Body as _;
    let mut body = req.into_body();
    let mut out = Vec::new();
    while let Some(frame) =
        std::future::poll_fn(|cx| std::pin::Pin::new(&mut body).poll_frame(cx)).await
    {
        let frame = frame.map_err(|e| Failure::bad_request(format!("reading the body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            out.extend_from_slice(&data);
        }
    }
    Ok(Bytes::from(out))
}

fn version_info() -> Value {
    json!({
        "major": "1", "minor": "34", "gitVersion": "v1.34.0-kube-fixture", "gitCommit": "", "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64",
    })
}

fn parse_json(body: &Bytes) -> Result<Value, Failure> {
    serde_json::from_slice(body)
        .map_err(|e| Failure::bad_request(format!("the body is not JSON: {e}")))
}

fn selectors(query: &BTreeMap<String, String>) -> Result<Selectors, Failure> {
    Ok(Selectors {
        labels: query
            .get("labelSelector")
            .map(|s| LabelSelector::parse(s))
            .transpose()
            .map_err(Failure::bad_request)?
            .unwrap_or_default(),
        fields: query
            .get("fieldSelector")
            .map(|s| FieldSelector::parse(s))
            .transpose()
            .map_err(Failure::bad_request)?
            .unwrap_or_default(),
    })
}

fn parse_rv(raw: Option<&String>) -> Result<Option<u64>, Failure> {
    match raw.map(String::as_str) {
        None | Some("") | Some("0") => Ok(None),
        Some(rv) => rv
            .parse()
            .map(Some)
            .map_err(|_| Failure::bad_request(format!("invalid resourceVersion {rv:?}"))),
    }
}

fn is_true(query: &BTreeMap<String, String>, key: &str) -> bool {
    matches!(query.get(key).map(String::as_str), Some("true" | "1"))
}

async fn handle(
    shared: &Shared,
    method: &Method,
    t: &Target,
    query: &BTreeMap<String, String>,
    content_type: &str,
    body: Bytes,
) -> (Verb, Reply) {
    let ns = t.namespace.clone().unwrap_or_default();
    if t.rt.namespaced && t.name.is_some() && t.namespace.is_none() {
        return (Verb::Other, Err(Failure::no_route()));
    }
    let Some(name) = t.name.as_deref() else {
        return match *method {
            Method::GET if is_true(query, "watch") => (Verb::Watch, watch(shared, t, query).await),
            Method::GET => (Verb::List, list(shared, t, query)),
            Method::POST
                if t.rt.group == "authentication.k8s.io" && t.rt.plural == "tokenreviews" =>
            {
                (
                    Verb::TokenReview,
                    parse_json(&body)
                        .map(|b| shared.token_review(&b))
                        .and_then(ok),
                )
            }
            Method::POST => {
                if t.rt.namespaced && t.namespace.is_none() {
                    return (Verb::Create, Err(Failure::no_route()));
                }
                let reply = parse_json(&body)
                    .and_then(|b| shared.store().create(&t.rt, &t.version, &ns, b));
                (Verb::Create, reply.map(|o| json_response(201, &o)))
            }
            _ => (
                Verb::Other,
                Err(Failure::new(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )),
            ),
        };
    };
    let scope = if t.status {
        StatusScope::Only
    } else {
        StatusScope::Keep
    };
    match *method {
        Method::GET => (
            Verb::Get,
            shared
                .store()
                .get_view(&t.rt, &t.version, &ns, name)
                .and_then(ok),
        ),
        Method::PUT => {
            let reply = parse_json(&body).and_then(|b| {
                shared
                    .store()
                    .update(&t.rt, &t.version, &ns, name, b, true, scope)
            });
            (Verb::Update, reply.and_then(ok))
        }
        Method::PATCH => (
            Verb::Patch,
            patch(shared, t, &ns, name, query, content_type, &body, scope).and_then(ok),
        ),
        Method::DELETE if !t.status => (
            Verb::Delete,
            shared.store().delete(&t.rt, &ns, name).and_then(ok),
        ),
        _ => (
            Verb::Other,
            Err(Failure::new(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )),
        ),
    }
}

fn list(shared: &Shared, t: &Target, query: &BTreeMap<String, String>) -> Reply {
    let exact = match query.get("resourceVersionMatch").map(String::as_str) {
        Some("Exact") => parse_rv(query.get("resourceVersion"))?,
        _ => None,
    };
    let limit = query
        .get("limit")
        .map(|l| l.parse::<usize>())
        .transpose()
        .map_err(|_| Failure::bad_request("invalid limit"))?
        .filter(|l| *l > 0);
    let q = ListQuery {
        namespace: t.namespace.clone(),
        selectors: selectors(query)?,
        limit,
        continue_token: query.get("continue").filter(|c| !c.is_empty()).cloned(),
        exact,
    };
    let (items, rv, next) = shared.store().list(&t.rt, &t.version, &q)?;
    let mut metadata = json!({"resourceVersion": rv.to_string()});
    if let Some(next) = next {
        metadata["continue"] = json!(next);
    }
    ok(json!({
        "kind": format!("{}List", t.rt.kind),
        "apiVersion": t.rt.api_version(&t.version),
        "metadata": metadata,
        "items": items,
    }))
}

async fn watch(shared: &Shared, t: &Target, query: &BTreeMap<String, String>) -> Reply {
    // A test may hold new watches back, to change the store while none is open.
    let mut held = shared.hold.subscribe();
    let _ = held.wait_for(|h| !*h).await;
    let q = WatchQuery {
        namespace: t.namespace.clone(),
        selectors: selectors(query)?,
        resource_version: parse_rv(query.get("resourceVersion"))?,
        bookmarks: is_true(query, "allowWatchBookmarks"),
        initial_events: is_true(query, "sendInitialEvents"),
    };
    let timeout = query
        .get("timeoutSeconds")
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0);
    let rx = shared.store().watch(&t.rt, &t.version, q)?;
    let deadline = timeout.map(|s| Box::pin(tokio::time::sleep(std::time::Duration::from_secs(s))));
    let mut res = Response::new(Body::Watch { rx, deadline });
    res.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    Ok(res)
}

#[allow(clippy::too_many_arguments)]
fn patch(
    shared: &Shared,
    t: &Target,
    ns: &str,
    name: &str,
    query: &BTreeMap<String, String>,
    content_type: &str,
    body: &Bytes,
    scope: StatusScope,
) -> Result<Value, Failure> {
    let kind = content_type.split(';').next().unwrap_or_default().trim();
    let mut store = shared.store();
    let current = store.get(&t.rt, ns, name).cloned();
    match kind {
        "application/apply-patch+yaml" => {
            let manager = query.get("fieldManager").filter(|m| !m.is_empty()).ok_or_else(|| {
                Failure::bad_request("PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch")
            })?;
            let config: Value = serde_yaml::from_slice(body).map_err(|e| {
                Failure::bad_request(format!("the apply configuration is not YAML: {e}"))
            })?;
            let entry = json!({
                "manager": manager, "operation": "Apply", "apiVersion": t.rt.api_version(&t.version),
                "time": crate::store::now(), "fieldsType": "FieldsV1", "fieldsV1": {},
            });
            let with_manager = |object: &mut Value| {
                let mut fields: Vec<Value> = object["metadata"]["managedFields"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                fields
                    .retain(|f| f["manager"] != json!(manager) || f["operation"] != json!("Apply"));
                fields.push(entry.clone());
                object["metadata"]["managedFields"] = Value::Array(fields);
            };
            // `dryRun=All`: the result, as it would be, stored nowhere.
            let dry_run = query.get("dryRun").is_some_and(|d| d == "All");
            match current {
                None if scope == StatusScope::Only => Err(Failure::not_found(&t.rt.plural, name)),
                None => {
                    let mut object = config;
                    with_manager(&mut object);
                    if !object["metadata"].is_object() {
                        return Err(Failure::bad_request(
                            "the apply configuration has no metadata",
                        ));
                    }
                    object["metadata"]["name"] = json!(name);
                    if dry_run {
                        object["metadata"]["namespace"] = json!(ns);
                        return Ok(object);
                    }
                    store.create(&t.rt, &t.version, ns, object)
                }
                Some(mut object) => {
                    crate::patch::merge(&mut object, &config);
                    with_manager(&mut object);
                    if dry_run {
                        return Ok(object);
                    }
                    store.update(&t.rt, &t.version, ns, name, object, true, scope)
                }
            }
        }
        "application/merge-patch+json"
        | "application/strategic-merge-patch+json"
        | "application/json-patch+json" => {
            let mut object = current.ok_or_else(|| Failure::not_found(&t.rt.plural, name))?;
            let patch = parse_json(body)?;
            if kind == "application/json-patch+json" {
                crate::patch::json_patch(&mut object, &patch)
                    .map_err(|e| Failure::new(422, "Invalid", e))?;
            } else {
                crate::patch::merge(&mut object, &patch);
            }
            store.update(&t.rt, &t.version, ns, name, object, true, scope)
        }
        other => Err(Failure::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml (got {other:?})"
            ),
        )),
    }
}
