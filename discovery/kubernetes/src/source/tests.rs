//! The plumbing between the stores and the published translation, with the
//! stores fed by hand as the reflector feeds them: no API server, no
//! sockets.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::runtime::reflector::store::Writer;

use super::*;

fn service(name: &str) -> core::Service {
    core::Service {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some("shop".into()),
            ..ObjectMeta::default()
        },
        ..core::Service::default()
    }
}

/// Five stores with their writers and watches, and the publishing task.
struct Harness {
    changed: Arc<Notify>,
    synced: Arc<Synced>,
    services: Writer<core::Service>,
    endpoint_slices: Writer<disc::EndpointSlice>,
    pods: Writer<core::Pod>,
    nodes: Writer<core::Node>,
    namespaces: Writer<core::Namespace>,
    /// One per kind, in the order of `WATCHED_KINDS`.
    watches: Vec<Watch>,
    stores: Stores,
}

impl Harness {
    fn new() -> Harness {
        let (services, services_w) = reflector::store();
        let (endpoint_slices, endpoint_slices_w) = reflector::store();
        let (pods, pods_w) = reflector::store();
        let (nodes, nodes_w) = reflector::store();
        let (namespaces, namespaces_w) = reflector::store();
        let changed = Arc::new(Notify::new());
        let synced = Arc::new(Synced::default());
        let watches = (0..WATCHED_KINDS.len())
            .map(|index| Watch {
                index,
                changed: changed.clone(),
                synced: synced.clone(),
            })
            .collect();
        Harness {
            changed,
            synced,
            watches,
            services: services_w,
            endpoint_slices: endpoint_slices_w,
            pods: pods_w,
            nodes: nodes_w,
            namespaces: namespaces_w,
            stores: Stores {
                services,
                endpoint_slices,
                pods,
                nodes,
                namespaces,
            },
        }
    }

    fn publish(&self) -> watch::Receiver<Option<Arc<Translation>>> {
        let (tx, rx) = watch::channel(None);
        tokio::spawn(publish(
            self.stores.clone(),
            self.changed.clone(),
            self.synced.clone(),
            tx,
        ));
        rx
    }
}

/// What the reflector and the watch task do with one event.
fn feed<K>(writer: &mut Writer<K>, watch: &Watch, event: Event<K>)
where
    K: Resource + Clone,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    writer.apply_watcher_event(&event);
    watch.observe(&Ok(event));
}

fn synced_empty<K>(writer: &mut Writer<K>, watch: &Watch)
where
    K: Resource + Clone,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    feed(writer, watch, Event::Init);
    feed(writer, watch, Event::InitDone);
}

/// Waits for a published translation that satisfies `done`; the limit only
/// guards against a hang.
async fn wait_for(
    rx: &mut watch::Receiver<Option<Arc<Translation>>>,
    done: impl FnMut(&Option<Arc<Translation>>) -> bool,
) -> Arc<Translation> {
    let found = tokio::time::timeout(Duration::from_secs(30), rx.wait_for(done))
        .await
        .expect("a translation is published")
        .expect("the publisher runs");
    found.clone().expect("a translation")
}

/// The Services watch lists `names` (Init, InitApply each, InitDone).
fn list_services(h: &mut Harness, names: &[&str]) {
    feed(&mut h.services, &h.watches[0], Event::Init);
    for name in names {
        feed(
            &mut h.services,
            &h.watches[0],
            Event::InitApply(service(name)),
        );
    }
    feed(&mut h.services, &h.watches[0], Event::InitDone);
}

fn names(t: &Translation) -> Vec<&str> {
    t.services.iter().map(|s| s.meta.name.as_str()).collect()
}

#[tokio::test]
async fn the_first_translation_waits_for_every_watch_and_holds_the_whole_cluster() {
    let mut h = Harness::new();
    let mut rx = h.publish();
    list_services(&mut h, &["reviews"]);
    synced_empty(&mut h.endpoint_slices, &h.watches[1]);
    synced_empty(&mut h.pods, &h.watches[2]);
    synced_empty(&mut h.nodes, &h.watches[3]);
    // A change while one kind is still listing publishes nothing either.
    feed(
        &mut h.services,
        &h.watches[0],
        Event::Apply(service("ratings")),
    );
    assert!(!h.synced.all());
    assert!(rx.borrow().is_none());

    synced_empty(&mut h.namespaces, &h.watches[4]);
    let first = wait_for(&mut rx, |t| t.is_some()).await;
    assert_eq!(names(&first), ["ratings", "reviews"]);
}

#[tokio::test]
async fn a_relist_replaces_a_store_in_one_step() {
    let mut h = Harness::new();
    let mut rx = h.publish();
    list_services(&mut h, &["reviews"]);
    synced_empty(&mut h.endpoint_slices, &h.watches[1]);
    synced_empty(&mut h.pods, &h.watches[2]);
    synced_empty(&mut h.nodes, &h.watches[3]);
    synced_empty(&mut h.namespaces, &h.watches[4]);
    wait_for(&mut rx, |t| t.is_some()).await;

    // A 410 Gone relists: until InitDone the store keeps the old list.
    feed(&mut h.services, &h.watches[0], Event::Init);
    feed(
        &mut h.services,
        &h.watches[0],
        Event::InitApply(service("ratings")),
    );
    let held: Vec<String> = h
        .stores
        .services
        .state()
        .iter()
        .filter_map(|s| s.metadata.name.clone())
        .collect();
    assert_eq!(held, ["reviews"]);
    feed(&mut h.services, &h.watches[0], Event::InitDone);
    let after = wait_for(&mut rx, |t| {
        t.as_ref().is_some_and(|t| names(t) != ["reviews"])
    })
    .await;
    assert_eq!(names(&after), ["ratings"]);

    // A delete is published too.
    feed(
        &mut h.services,
        &h.watches[0],
        Event::Delete(service("ratings")),
    );
    let after = wait_for(&mut rx, |t| {
        t.as_ref().is_some_and(|t| t.services.is_empty())
    })
    .await;
    assert!(after.services.is_empty());
}
