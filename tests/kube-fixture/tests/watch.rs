//! kube-runtime's watcher against the fixture: the Init sequence, events,
//! resuming after a dropped watch, relisting after 410 Gone, selectors,
//! bookmarks.

mod common;

use std::collections::BTreeMap;

use common::{env, within};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, WatchEvent, WatchParams};
use kube::runtime::watcher::{self, Event};
use kube::{Resource, ResourceExt};
use kube_fixture::{GoneDelivery, RequestRecord, Verb};
use serde_json::{Value, json};

fn pod(name: &str, labels: Value) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
    })
}

type Item = Result<Event<Pod>, watcher::Error>;

/// What the watcher said, errors kept apart.
#[derive(Debug, PartialEq, Eq)]
enum Seen {
    Init,
    InitApply(String),
    InitDone,
    Apply(String),
    Delete(String),
}

/// A watcher driven on a task of its own (so it reconnects while the test
/// waits), and its consumer, keeping a store as a reflector would.
struct Follower {
    events: tokio::sync::mpsc::UnboundedReceiver<Item>,
    task: tokio::task::JoinHandle<()>,
    store: BTreeMap<String, String>,
    init: Option<BTreeMap<String, String>>,
    /// The resourceVersion of the newest Apply or Delete.
    last_rv: String,
    errors: Vec<String>,
}

impl Follower {
    fn new(api: Api<Pod>, config: watcher::Config) -> Self {
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let mut stream = watcher::watcher(api, config).boxed();
        let task = tokio::spawn(async move {
            while let Some(item) = stream.next().await {
                if tx.send(item).is_err() {
                    return;
                }
            }
        });
        Self {
            events,
            task,
            store: BTreeMap::new(),
            init: None,
            last_rv: String::new(),
            errors: Vec::new(),
        }
    }

    /// The next event, errors recorded and skipped.
    async fn next(&mut self) -> anyhow::Result<Seen> {
        loop {
            let item = within("the next watcher event", self.events.recv())
                .await?
                .ok_or_else(|| anyhow::anyhow!("the watcher ended"))?;
            let event = match item {
                Ok(event) => event,
                Err(e) => {
                    self.errors.push(e.to_string());
                    continue;
                }
            };
            let rv = |p: &Pod| p.resource_version().unwrap_or_default();
            return Ok(match event {
                Event::Init => {
                    self.init = Some(BTreeMap::new());
                    Seen::Init
                }
                Event::InitApply(p) => {
                    self.init
                        .get_or_insert_default()
                        .insert(p.name_any(), rv(&p));
                    Seen::InitApply(p.name_any())
                }
                Event::InitDone => {
                    self.store = self.init.take().unwrap_or_default();
                    Seen::InitDone
                }
                Event::Apply(p) => {
                    assert!(
                        rv(&p).parse::<u64>()? > self.last_rv.parse::<u64>().unwrap_or(0),
                        "an event twice: {p:?}"
                    );
                    self.last_rv = rv(&p);
                    self.store.insert(p.name_any(), rv(&p));
                    Seen::Apply(p.name_any())
                }
                Event::Delete(p) => {
                    assert!(
                        rv(&p).parse::<u64>()? > self.last_rv.parse::<u64>().unwrap_or(0),
                        "an event twice: {p:?}"
                    );
                    self.last_rv = rv(&p);
                    self.store.remove(&p.name_any());
                    Seen::Delete(p.name_any())
                }
            });
        }
    }

    async fn expect(&mut self, want: &[Seen]) -> anyhow::Result<()> {
        for w in want {
            let got = self.next().await?;
            anyhow::ensure!(
                &got == w,
                "expected {w:?}, got {got:?} (errors so far: {:?})",
                self.errors
            );
        }
        Ok(())
    }
}

impl Drop for Follower {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn is_watch(r: &RequestRecord) -> bool {
    r.verb == Verb::Watch && r.path == "/api/v1/namespaces/default/pods"
}

fn is_list(r: &RequestRecord) -> bool {
    r.verb == Verb::List && r.path == "/api/v1/namespaces/default/pods"
}

/// What the fixture holds, as the follower keeps it: name → resourceVersion.
fn stored(fixture: &kube_fixture::ApiServer) -> BTreeMap<String, String> {
    fixture
        .objects("v1", "Pod")
        .iter()
        .map(|p| {
            (
                p["metadata"]["name"].as_str().unwrap().to_string(),
                p["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap()
                    .to_string(),
            )
        })
        .collect()
}

#[tokio::test]
async fn watcher_resumes_after_a_drop_and_relists_after_410() -> anyhow::Result<()> {
    let env = env().await?;
    let fx = &env.fixture;
    fx.apply(pod("a", json!({"app": "web"})))?;
    let mut w = Follower::new(
        Api::namespaced(env.client.clone(), "default"),
        watcher::Config::default(),
    );
    w.expect(&[Seen::Init, Seen::InitApply("a".into()), Seen::InitDone])
        .await?;
    fx.apply(pod("b", json!({"app": "web"})))?;
    fx.delete("v1", "Pod", "default", "a")?;
    w.expect(&[Seen::Apply("b".into()), Seen::Delete("a".into())])
        .await?;
    assert_eq!(w.store, stored(fx));
    assert_eq!(fx.count(is_list), 1);

    // A dropped watch: changes made while none is open come from history.
    fx.hold_watches();
    assert_eq!(fx.drop_watches(), 1);
    fx.apply(pod("c", json!({"app": "web"})))?;
    fx.apply(pod("b", json!({"app": "web", "v": "2"})))?;
    let watches = fx.count(is_watch);
    fx.release_watches();
    let resumed_from = w.last_rv.clone();
    let resumed = within(
        "a resumed watch",
        fx.wait_for_request(|r| is_watch(r) && r.resource_version() == Some(&resumed_from)),
    )
    .await?;
    assert_eq!(resumed.status, 200);
    assert!(fx.count(is_watch) > watches);
    w.expect(&[Seen::Apply("c".into()), Seen::Apply("b".into())])
        .await?;
    assert_eq!(
        fx.count(is_list),
        1,
        "a dropped watch resumes without a relist"
    );
    assert_eq!(w.store, stored(fx));

    // Dropped and compacted: the resumed watch gets 410 and the watcher relists.
    fx.hold_watches();
    fx.drop_watches();
    fx.delete("v1", "Pod", "default", "c")?;
    fx.apply(pod("d", json!({"app": "db"})))?;
    fx.compact();
    fx.release_watches();
    w.expect(&[Seen::Init]).await?;
    assert!(
        w.errors
            .iter()
            .any(|e| e.contains("410") || e.to_lowercase().contains("expired")),
        "errors: {:?}",
        w.errors
    );
    let mut relisted = Vec::new();
    loop {
        match w.next().await? {
            Seen::InitApply(name) => relisted.push(name),
            Seen::InitDone => break,
            other => anyhow::bail!("unexpected {other:?} during a relist"),
        }
    }
    assert_eq!(relisted, ["b", "d"]);
    assert_eq!(fx.count(is_list), 2);
    assert_eq!(w.store, stored(fx));

    // And it watches on from the relist.
    fx.apply(pod("e", json!({"app": "web"})))?;
    w.expect(&[Seen::Apply("e".into())]).await?;
    assert_eq!(w.store, stored(fx));
    Ok(())
}

#[tokio::test]
async fn watcher_honours_label_selectors() -> anyhow::Result<()> {
    let env = env().await?;
    let fx = &env.fixture;
    fx.apply(pod("web-1", json!({"app": "web"})))?;
    fx.apply(pod("db-1", json!({"app": "db"})))?;
    let config = watcher::Config::default().labels("app in (web)");
    let mut w = Follower::new(Api::namespaced(env.client.clone(), "default"), config);
    w.expect(&[Seen::Init, Seen::InitApply("web-1".into()), Seen::InitDone])
        .await?;
    fx.apply(pod("db-2", json!({"app": "db"})))?;
    fx.apply(pod("web-2", json!({"app": "web"})))?;
    w.expect(&[Seen::Apply("web-2".into())]).await?;
    // Leaving the selector reads as a delete; entering it, as an add.
    fx.apply(pod("web-1", json!({"app": "db"})))?;
    w.expect(&[Seen::Delete("web-1".into())]).await?;
    fx.apply(pod("db-1", json!({"app": "web"})))?;
    w.expect(&[Seen::Apply("db-1".into())]).await?;
    let watch = within("a watch", fx.wait_for_request(is_watch)).await?;
    assert_eq!(
        watch.query.get("labelSelector").map(String::as_str),
        Some("app in (web)")
    );
    Ok(())
}

#[tokio::test]
async fn watcher_with_streaming_lists() -> anyhow::Result<()> {
    let env = env().await?;
    let fx = &env.fixture;
    fx.apply(pod("a", json!({})))?;
    let config = watcher::Config::default().streaming_lists();
    let mut w = Follower::new(Api::namespaced(env.client.clone(), "default"), config);
    w.expect(&[Seen::Init, Seen::InitApply("a".into()), Seen::InitDone])
        .await?;
    fx.apply(pod("b", json!({})))?;
    w.expect(&[Seen::Apply("b".into())]).await?;
    assert_eq!(fx.count(is_list), 0, "a streaming list is one watch");
    assert_eq!(w.store, stored(fx));
    Ok(())
}

#[tokio::test]
async fn all_namespace_watch_and_bookmarks() -> anyhow::Result<()> {
    let env = env().await?;
    let fx = &env.fixture;
    let pods: Api<Pod> = Api::all(env.client.clone());
    let list_rv = fx.resource_version();
    let mut stream = pods.watch(&WatchParams::default(), &list_rv).await?.boxed();
    let mut other = pod("x", json!({}));
    other["metadata"]["namespace"] = json!("shop");
    fx.apply(other)?;
    match within("an ADDED event", stream.try_next()).await?? {
        Some(WatchEvent::Added(p)) => assert_eq!(p.meta().namespace.as_deref(), Some("shop")),
        other => anyhow::bail!("expected ADDED, got {other:?}"),
    }
    fx.bookmark();
    match within("a BOOKMARK", stream.try_next()).await?? {
        Some(WatchEvent::Bookmark(b)) => {
            assert_eq!(b.metadata.resource_version, fx.resource_version())
        }
        other => anyhow::bail!("expected BOOKMARK, got {other:?}"),
    }
    // Stopping the fixture ends the stream.
    env.fixture.stop();
    let end = within("the end of the stream", stream.try_next()).await?;
    assert!(!matches!(end, Ok(Some(_))), "an event after stop: {end:?}");
    Ok(())
}

#[tokio::test]
async fn gone_as_a_watch_event_and_as_an_http_status() -> anyhow::Result<()> {
    let env = env().await?;
    let fx = &env.fixture;
    fx.apply(pod("a", json!({})))?;
    let old = fx.resource_version();
    fx.compact();
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");

    // As kube-apiserver sends it: 200, then one ERROR event, then the end.
    let mut stream = pods.watch(&WatchParams::default(), &old).await?.boxed();
    match within("an ERROR event", stream.try_next()).await?? {
        Some(WatchEvent::Error(s)) => assert_eq!((s.code, s.reason.as_str()), (410, "Expired")),
        other => anyhow::bail!("expected ERROR 410, got {other:?}"),
    }
    assert!(
        within("the end of the stream", stream.try_next())
            .await??
            .is_none()
    );

    // As an HTTP 410: the request itself fails.
    fx.set_gone_delivery(GoneDelivery::HttpStatus);
    let refused = common::status(pods.watch(&WatchParams::default(), &old).await.map(|_| ()));
    assert_eq!(
        (
            refused.code,
            refused.reason.as_str(),
            refused.message.contains("too old")
        ),
        (410, "Expired", true)
    );
    Ok(())
}

/// kube-runtime relists on a 410 ERROR event, but an HTTP 410 answer to the
/// watch request leaves it retrying the same resourceVersion: it never relists.
#[tokio::test]
async fn watcher_retries_an_http_410_without_relisting() -> anyhow::Result<()> {
    let env = env().await?;
    let fx = &env.fixture;
    fx.set_gone_delivery(GoneDelivery::HttpStatus);
    fx.apply(pod("a", json!({})))?;
    let mut w = Follower::new(
        Api::namespaced(env.client.clone(), "default"),
        watcher::Config::default(),
    );
    w.expect(&[Seen::Init, Seen::InitApply("a".into()), Seen::InitDone])
        .await?;
    within("the first watch", fx.wait_for_request(is_watch)).await?;
    fx.hold_watches();
    fx.drop_watches();
    fx.compact();
    fx.release_watches();
    within(
        "three refused watches",
        fx.wait_for_request(|r| {
            is_watch(r) && r.status == 410 && fx.count(|r| is_watch(r) && r.status == 410) >= 3
        }),
    )
    .await?;
    assert_eq!(fx.count(is_list), 1);
    drop(w);
    Ok(())
}
