//! The object store: one global, increasing resourceVersion (as etcd's
//! revision), the history of changes since the compaction point, and the
//! open watches.
//!
//! ```text
//! write ─► objects ─► history (rv, before, after) ─► each matching watch
//!                       └─ list at an older rv undoes history (continue tokens)
//! ```

use std::collections::BTreeMap;

use bytes::Bytes;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::resources::ResourceType;
use crate::selector::Selectors;
use crate::status::Failure;

/// `(namespace, name)`; the namespace is `""` for cluster-scoped objects.
type ObjectKey = (String, String);
/// `(group, plural)`: every version of a resource shares one bucket.
type BucketKey = (String, String);

/// What a watch stream carries: a JSON line, or the order to break the connection.
#[derive(Debug)]
pub(crate) enum WatchMsg {
    Line(Bytes),
    Abort,
}

#[derive(Debug, Clone)]
struct Change {
    rv: u64,
    bucket: BucketKey,
    key: ObjectKey,
    before: Option<Value>,
    after: Option<Value>,
}

#[derive(Debug)]
struct Watch {
    bucket: BucketKey,
    namespace: Option<String>,
    api_version: String,
    kind: String,
    selectors: Selectors,
    bookmarks: bool,
    tx: mpsc::UnboundedSender<WatchMsg>,
}

/// How a watch from a compacted resourceVersion is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GoneDelivery {
    /// HTTP 200 and one `ERROR` watch event holding a 410 `Expired` Status,
    /// then the end of the stream: what kube-apiserver's watch cache does.
    #[default]
    WatchEvent,
    /// An HTTP 410 response holding the Status, before any stream starts.
    HttpStatus,
}

/// A list request's scope and paging.
#[derive(Debug, Default)]
pub(crate) struct ListQuery {
    pub(crate) namespace: Option<String>,
    pub(crate) selectors: Selectors,
    pub(crate) limit: Option<usize>,
    pub(crate) continue_token: Option<String>,
    /// `resourceVersion` with `resourceVersionMatch=Exact`: a list as of then.
    pub(crate) exact: Option<u64>,
}

/// A watch request's scope and starting point.
#[derive(Debug, Default)]
pub(crate) struct WatchQuery {
    pub(crate) namespace: Option<String>,
    pub(crate) selectors: Selectors,
    /// `None` (or `"0"`): start with an ADDED event for every current object.
    pub(crate) resource_version: Option<u64>,
    pub(crate) bookmarks: bool,
    /// `sendInitialEvents=true`: ADDED events, then a bookmark marking their end.
    pub(crate) initial_events: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    rv: u64,
    compacted: u64,
    objects: BTreeMap<BucketKey, BTreeMap<ObjectKey, Value>>,
    history: Vec<Change>,
    watches: Vec<Watch>,
    pub(crate) gone: GoneDelivery,
}

fn bucket(rt: &ResourceType) -> BucketKey {
    (rt.group.clone(), rt.plural.clone())
}

fn meta<'a>(object: &'a Value, field: &str) -> Option<&'a str> {
    object.get("metadata")?.get(field)?.as_str()
}

fn set_meta(object: &mut Value, field: &str, value: Value) {
    if !object.get("metadata").is_some_and(Value::is_object) {
        object["metadata"] = json!({});
    }
    object["metadata"][field] = value;
}

pub(crate) fn now() -> String {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    now.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn uid() -> String {
    let hex = format!("{:032x}", fastrand::u128(..));
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

fn event_line(kind: &str, object: &Value) -> Bytes {
    let mut line = json!({"type": kind, "object": object}).to_string();
    line.push('\n');
    Bytes::from(line)
}

fn with_api_version(mut object: Value, api_version: &str) -> Value {
    object["apiVersion"] = json!(api_version);
    object
}

/// The `kind`'s plural name a plain error message uses: `pods`, `leases.coordination.k8s.io`.
fn qualified(rt: &ResourceType) -> String {
    if rt.group.is_empty() {
        rt.plural.clone()
    } else {
        format!("{}.{}", rt.plural, rt.group)
    }
}

impl Store {
    pub(crate) fn resource_version(&self) -> u64 {
        self.rv
    }

    fn bucket_mut(&mut self, rt: &ResourceType) -> &mut BTreeMap<ObjectKey, Value> {
        self.objects.entry(bucket(rt)).or_default()
    }

    pub(crate) fn get(&self, rt: &ResourceType, namespace: &str, name: &str) -> Option<&Value> {
        self.objects
            .get(&bucket(rt))?
            .get(&(namespace.to_string(), name.to_string()))
    }

    pub(crate) fn get_view(
        &self,
        rt: &ResourceType,
        version: &str,
        namespace: &str,
        name: &str,
    ) -> Result<Value, Failure> {
        self.get(rt, namespace, name)
            .map(|o| with_api_version(o.clone(), &rt.api_version(version)))
            .ok_or_else(|| Failure::not_found(&qualified(rt), name))
    }

    /// Records a change at a new resourceVersion and tells every watch that cares.
    fn commit(
        &mut self,
        rt: &ResourceType,
        key: ObjectKey,
        before: Option<Value>,
        after: Option<Value>,
    ) -> Value {
        self.rv += 1;
        let rv = self.rv;
        let mut after = after;
        if let Some(object) = after.as_mut() {
            set_meta(object, "resourceVersion", json!(rv.to_string()));
            self.bucket_mut(rt).insert(key.clone(), object.clone());
        } else {
            self.bucket_mut(rt).remove(&key);
        }
        let change = Change {
            rv,
            bucket: bucket(rt),
            key,
            before,
            after,
        };
        self.watches.retain(|w| match route(w, &change) {
            Some(line) => w.tx.send(WatchMsg::Line(line)).is_ok(),
            None => !w.tx.is_closed(),
        });
        self.history.push(change.clone());
        match (change.after, change.before) {
            (Some(after), _) => after,
            (None, Some(mut before)) => {
                set_meta(&mut before, "resourceVersion", json!(rv.to_string()));
                before
            }
            (None, None) => Value::Null,
        }
    }

    pub(crate) fn create(
        &mut self,
        rt: &ResourceType,
        version: &str,
        namespace: &str,
        mut object: Value,
    ) -> Result<Value, Failure> {
        if !object.is_object() {
            return Err(Failure::bad_request("the body must be a JSON object"));
        }
        let mut name = meta(&object, "name").unwrap_or_default().to_string();
        if name.is_empty() {
            let Some(prefix) = meta(&object, "generateName") else {
                return Err(Failure::new(
                    422,
                    "Invalid",
                    format!("{} \"\" is invalid: metadata.name: Required value", rt.kind),
                ));
            };
            let suffix: String = (0..5)
                .map(|_| fastrand::alphanumeric().to_ascii_lowercase())
                .collect();
            name = format!("{prefix}{suffix}");
        }
        if let Some(body_ns) =
            meta(&object, "namespace").filter(|n| !n.is_empty() && *n != namespace)
            && rt.namespaced
        {
            return Err(Failure::bad_request(format!(
                "the namespace of the provided object ({body_ns}) does not match the namespace sent on the request ({namespace})"
            )));
        }
        let key = (namespace.to_string(), name.clone());
        if self.bucket_mut(rt).contains_key(&key) {
            return Err(Failure::new(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", qualified(rt)),
            ));
        }
        object["apiVersion"] = json!(rt.api_version(version));
        object["kind"] = json!(rt.kind);
        set_meta(&mut object, "name", json!(name));
        if rt.namespaced {
            set_meta(&mut object, "namespace", json!(namespace));
        }
        set_meta(&mut object, "uid", json!(uid()));
        set_meta(&mut object, "creationTimestamp", json!(now()));
        set_meta(&mut object, "generation", json!(1));
        Ok(self.commit(rt, key, None, Some(object)))
    }

    /// Replaces an object. `check_rv` refuses a stale `metadata.resourceVersion`;
    /// `status` selects what the write may change: only `status` (the status
    /// subresource), everything but `status` (the main resource), or both
    /// (the fixture's own `apply`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update(
        &mut self,
        rt: &ResourceType,
        version: &str,
        namespace: &str,
        name: &str,
        mut object: Value,
        check_rv: bool,
        status: StatusScope,
    ) -> Result<Value, Failure> {
        if !object.is_object() {
            return Err(Failure::bad_request("the body must be a JSON object"));
        }
        let key = (namespace.to_string(), name.to_string());
        let Some(current) = self.bucket_mut(rt).get(&key).cloned() else {
            return Err(Failure::not_found(&qualified(rt), name));
        };
        if let Some(body_name) = meta(&object, "name").filter(|n| !n.is_empty() && *n != name) {
            return Err(Failure::bad_request(format!(
                "the name of the object ({body_name}) does not match the name on the URL ({name})"
            )));
        }
        let stale = meta(&object, "resourceVersion")
            .filter(|rv| !rv.is_empty())
            .is_some_and(|rv| Some(rv) != meta(&current, "resourceVersion"));
        if check_rv && stale {
            return Err(Failure::new(
                409,
                "Conflict",
                format!(
                    "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again",
                    qualified(rt)
                ),
            ));
        }
        match status {
            StatusScope::Only => {
                let mut next = current.clone();
                match object.get("status") {
                    Some(s) => next["status"] = s.clone(),
                    None => {
                        next.as_object_mut().map(|o| o.remove("status"));
                    }
                }
                object = next;
            }
            StatusScope::Keep => match current.get("status") {
                Some(s) => object["status"] = s.clone(),
                None => {
                    object.as_object_mut().map(|o| o.remove("status"));
                }
            },
            StatusScope::Write => {}
        }
        object["apiVersion"] = json!(rt.api_version(version));
        object["kind"] = json!(rt.kind);
        set_meta(&mut object, "name", json!(name));
        if rt.namespaced {
            set_meta(&mut object, "namespace", json!(namespace));
        }
        for field in ["uid", "creationTimestamp", "generation"] {
            if let Some(v) = current["metadata"].get(field) {
                set_meta(&mut object, field, v.clone());
            }
        }
        set_meta(
            &mut object,
            "resourceVersion",
            current["metadata"]["resourceVersion"].clone(),
        );
        // Compare as stored: a write that changes nothing keeps the resourceVersion.
        let mut stored = current.clone();
        stored["apiVersion"] = object["apiVersion"].clone();
        if object == stored {
            return Ok(current);
        }
        if object.get("spec") != current.get("spec") && status != StatusScope::Only {
            let generation = current["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
            set_meta(&mut object, "generation", json!(generation));
        }
        Ok(self.commit(rt, key, Some(current), Some(object)))
    }

    pub(crate) fn delete(
        &mut self,
        rt: &ResourceType,
        namespace: &str,
        name: &str,
    ) -> Result<Value, Failure> {
        let key = (namespace.to_string(), name.to_string());
        let Some(current) = self.bucket_mut(rt).get(&key).cloned() else {
            return Err(Failure::not_found(&qualified(rt), name));
        };
        Ok(self.commit(rt, key, Some(current), None))
    }

    /// The bucket as it was at `rv`, undoing later history.
    fn bucket_at(&self, b: &BucketKey, rv: u64) -> Result<BTreeMap<ObjectKey, Value>, Failure> {
        if rv < self.compacted {
            return Err(Failure::expired(format!(
                "The resourceVersion for the provided list is too old: {rv} is older than the compaction point {}",
                self.compacted
            )));
        }
        let mut objects = self.objects.get(b).cloned().unwrap_or_default();
        for change in self
            .history
            .iter()
            .rev()
            .take_while(|c| c.rv > rv)
            .filter(|c| &c.bucket == b)
        {
            match &change.before {
                Some(before) => objects.insert(change.key.clone(), before.clone()),
                None => objects.remove(&change.key),
            };
        }
        Ok(objects)
    }

    /// A list: `(items, resourceVersion, continue token)`.
    pub(crate) fn list(
        &self,
        rt: &ResourceType,
        version: &str,
        query: &ListQuery,
    ) -> Result<(Vec<Value>, u64, Option<String>), Failure> {
        let (rv, after) = match &query.continue_token {
            Some(token) => decode_continue(token)?,
            None => (query.exact.unwrap_or(self.rv), None),
        };
        let objects = if rv == self.rv {
            self.objects.get(&bucket(rt)).cloned().unwrap_or_default()
        } else {
            self.bucket_at(&bucket(rt), rv).map_err(|e| {
                if query.continue_token.is_some() {
                    Failure::expired("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.")
                } else {
                    e
                }
            })?
        };
        let api_version = rt.api_version(version);
        let mut items = Vec::new();
        let mut next = None;
        for ((ns, name), object) in objects {
            if query.namespace.as_ref().is_some_and(|want| *want != ns) {
                continue;
            }
            if after
                .as_ref()
                .is_some_and(|a: &ObjectKey| (&ns, &name) <= (&a.0, &a.1))
            {
                continue;
            }
            if !query.selectors.matches(&object) {
                continue;
            }
            if query.limit.is_some_and(|limit| items.len() >= limit) {
                next = Some(encode_continue(rv, &ns, &name, &items));
                break;
            }
            items.push(with_api_version(object, &api_version));
        }
        Ok((items, rv, next))
    }

    /// Opens a watch: its stream, or the Status refusing it.
    pub(crate) fn watch(
        &mut self,
        rt: &ResourceType,
        version: &str,
        query: WatchQuery,
    ) -> Result<mpsc::UnboundedReceiver<WatchMsg>, Failure> {
        let (tx, rx) = mpsc::unbounded_channel();
        let watch = Watch {
            bucket: bucket(rt),
            namespace: query.namespace,
            api_version: rt.api_version(version),
            kind: rt.kind.clone(),
            selectors: query.selectors,
            bookmarks: query.bookmarks,
            tx,
        };
        match query.resource_version.filter(|_| !query.initial_events) {
            Some(rv) if rv < self.compacted => {
                let gone = Failure::expired(format!(
                    "too old resource version: {rv} ({})",
                    self.compacted
                ));
                if self.gone == GoneDelivery::HttpStatus {
                    return Err(gone);
                }
                let _ = watch
                    .tx
                    .send(WatchMsg::Line(event_line("ERROR", &gone.to_json())));
                return Ok(rx);
            }
            Some(rv) => {
                for change in self.history.iter().filter(|c| c.rv > rv) {
                    if let Some(line) = route(&watch, change) {
                        let _ = watch.tx.send(WatchMsg::Line(line));
                    }
                }
            }
            None => {
                for ((ns, _), object) in self.objects.get(&watch.bucket).into_iter().flatten() {
                    if watch.namespace.as_ref().is_none_or(|want| want == ns)
                        && watch.selectors.matches(object)
                    {
                        let object = with_api_version(object.clone(), &watch.api_version);
                        let _ = watch.tx.send(WatchMsg::Line(event_line("ADDED", &object)));
                    }
                }
                if query.initial_events {
                    let mut mark = bookmark(&watch, self.rv);
                    mark["metadata"]["annotations"] = json!({"k8s.io/initial-events-end": "true"});
                    let _ = watch.tx.send(WatchMsg::Line(event_line("BOOKMARK", &mark)));
                }
            }
        }
        self.watches.push(watch);
        Ok(rx)
    }

    /// Sends a BOOKMARK at the current resourceVersion to every watch that allows them.
    pub(crate) fn bookmark(&mut self) {
        let rv = self.rv;
        for w in self.watches.iter().filter(|w| w.bookmarks) {
            let _ =
                w.tx.send(WatchMsg::Line(event_line("BOOKMARK", &bookmark(w, rv))));
        }
    }

    /// Breaks every open watch; returns how many there were.
    pub(crate) fn drop_watches(&mut self) -> usize {
        let watches = std::mem::take(&mut self.watches);
        let open = watches.iter().filter(|w| !w.tx.is_closed()).count();
        for w in watches {
            let _ = w.tx.send(WatchMsg::Abort);
        }
        open
    }

    /// Forgets the history: every watch or continue token from before now expires.
    /// The compaction consumes a resourceVersion, so even a client that saw the
    /// newest change must relist.
    pub(crate) fn compact(&mut self) -> u64 {
        self.rv += 1;
        self.compacted = self.rv;
        self.history.clear();
        self.compacted
    }

    pub(crate) fn open_watches(&self) -> usize {
        self.watches.iter().filter(|w| !w.tx.is_closed()).count()
    }
}

/// Which part of an object a write may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StatusScope {
    /// The status subresource: only `status` changes.
    Only,
    /// The main resource: `status` stays as stored.
    Keep,
    /// Both, as the fixture's own writes do.
    Write,
}

fn bookmark(w: &Watch, rv: u64) -> Value {
    json!({"kind": w.kind, "apiVersion": w.api_version, "metadata": {"resourceVersion": rv.to_string()}})
}

/// The event a watch sees for a change, honouring its selectors as the
/// API server's watch cache does: an object that stops matching is DELETED
/// (its old content at the new resourceVersion), one that starts matching is ADDED.
fn route(w: &Watch, change: &Change) -> Option<Bytes> {
    if w.bucket != change.bucket || w.namespace.as_ref().is_some_and(|ns| *ns != change.key.0) {
        return None;
    }
    let was = change.before.as_ref().filter(|o| w.selectors.matches(o));
    let is = change.after.as_ref().filter(|o| w.selectors.matches(o));
    let (kind, object) = match (was, is) {
        (None, Some(after)) => ("ADDED", after.clone()),
        (Some(_), Some(after)) => ("MODIFIED", after.clone()),
        (Some(before), None) => {
            let mut gone = before.clone();
            set_meta(&mut gone, "resourceVersion", json!(change.rv.to_string()));
            ("DELETED", gone)
        }
        (None, None) => return None,
    };
    Some(event_line(kind, &with_api_version(object, &w.api_version)))
}

fn encode_continue(rv: u64, ns: &str, name: &str, items: &[Value]) -> String {
    use base64::Engine;
    // Continue after the last item returned (the current one was not).
    let (ns, name) = items
        .last()
        .map(|o| {
            (
                meta(o, "namespace").unwrap_or_default().to_string(),
                meta(o, "name").unwrap_or_default().to_string(),
            )
        })
        .unwrap_or((ns.to_string(), name.to_string()));
    let token = json!({"rv": rv, "namespace": ns, "name": name}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(token)
}

fn decode_continue(token: &str) -> Result<(u64, Option<ObjectKey>), Failure> {
    use base64::Engine;
    let invalid = || Failure::bad_request(format!("invalid continue token {token:?}"));
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| invalid())?;
    let value: Value = serde_json::from_slice(&raw).map_err(|_| invalid())?;
    let rv = value["rv"].as_u64().ok_or_else(invalid)?;
    let ns = value["namespace"].as_str().ok_or_else(invalid)?.to_string();
    let name = value["name"].as_str().ok_or_else(invalid)?.to_string();
    Ok((rv, Some((ns, name))))
}
