//! The custom resource watch's state machines, fed events by hand as the
//! watcher delivers them: no API server.

use discovery::file::FileStore;
use policy::ObjectKey;

use super::*;

fn virtual_service() -> ApiResource {
    resources()
        .into_iter()
        .find(|(kind, _)| *kind == Kind::VirtualService)
        .map(|(_, r)| r)
        .unwrap()
}

fn object(name: &str, spec: Value) -> DynamicObject {
    serde_json::from_value(json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {
            "name": name, "namespace": "shop", "uid": "u-1", "resourceVersion": "7",
            "generation": 2, "creationTimestamp": "2026-12-01T00:00:00Z",
            "managedFields": [{"manager": "kubectl"}],
            "labels": {"team": "a"},
        },
        "spec": spec,
        "status": {"conditions": []},
    }))
    .unwrap()
}

fn routes_to(host: &str) -> Value {
    json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": host}}]}]})
}

fn paths(changes: &[FileChange]) -> Vec<(String, bool)> {
    changes
        .iter()
        .map(|c| {
            let upsert = matches!(c, FileChange::Upsert { .. });
            (c.path().display().to_string(), upsert)
        })
        .collect()
}

const REVIEWS: &str = "/apis/networking.istio.io/v1/namespaces/shop/virtualservices/reviews";
const RATINGS: &str = "/apis/networking.istio.io/v1/namespaces/shop/virtualservices/ratings";

#[test]
fn every_istio_kind_but_service_is_watched_at_its_preferred_version() {
    let watched: Vec<(Kind, String, String)> = resources()
        .into_iter()
        .map(|(k, r)| (k, r.api_version, r.plural))
        .collect();
    assert_eq!(watched.len(), Kind::ALL.len() - 1);
    assert!(watched.contains(&(
        Kind::AuthorizationPolicy,
        "security.istio.io/v1".into(),
        "authorizationpolicies".into()
    )));
    assert!(!watched.iter().any(|(k, _, _)| *k == Kind::Service));
}

#[test]
fn an_object_is_a_document_the_file_store_decodes_without_the_servers_metadata() {
    let mut tracked = Tracked::new(virtual_service());
    let Step::Changes(changes) = tracked.event(Event::Apply(object("reviews", routes_to("v2"))))
    else {
        panic!("an applied object is a change");
    };
    assert_eq!(paths(&changes), [(REVIEWS.to_string(), true)]);
    let mut store = FileStore::new();
    let FileChange::Upsert { path, text } = &changes[0] else {
        unreachable!()
    };
    assert!(
        !text.contains("managedFields") && !text.contains("status"),
        "{text}"
    );
    store.apply(path, text);
    let config = store.config();
    assert_eq!(config.diagnostics, [], "{text}");
    assert_eq!(config.objects.len(), 1);
    assert_eq!(config.objects[0].meta().namespace, "shop");
    assert_eq!(config.objects[0].meta().labels["team"], "a");
    let key = ObjectKey {
        kind: Kind::VirtualService,
        namespace: "shop".into(),
        name: "reviews".into(),
    };
    assert_eq!(config.origins[&key], (REVIEWS.to_string(), 0));
}

#[test]
fn an_invalid_object_is_reported_at_its_api_path_with_the_field() {
    let mut tracked = Tracked::new(virtual_service());
    let spec = json!({"hosts": ["reviews"], "http": [{"retries": {"attempts": "three"}}]});
    let Step::Changes(changes) = tracked.event(Event::Apply(object("reviews", spec))) else {
        panic!("a change");
    };
    let mut store = FileStore::new();
    store.apply_change(&changes[0]);
    let config = store.config();
    assert!(config.objects.is_empty());
    let error = &config.diagnostics[0];
    assert!(error.is_error());
    assert_eq!(error.file, REVIEWS);
    assert!(error.path.to_string().contains("retries"), "{error}");
}

#[test]
fn a_relist_replaces_the_kinds_objects_in_one_batch() {
    let mut tracked = Tracked::new(virtual_service());
    assert_eq!(tracked.event(Event::Init), Step::Nothing);
    let first = object("reviews", routes_to("v1"));
    assert_eq!(tracked.event(Event::InitApply(first)), Step::Nothing);
    let ratings = object("ratings", routes_to("v1"));
    assert_eq!(tracked.event(Event::InitApply(ratings)), Step::Nothing);
    let Step::Listed(listed) = tracked.event(Event::InitDone) else {
        panic!("a list ends listed");
    };
    assert_eq!(
        paths(&listed),
        [(REVIEWS.to_string(), true), (RATINGS.to_string(), true)]
    );

    // After a 410, the new list lacks ratings (deleted meanwhile): the
    // batch at InitDone removes it, and nothing goes out before.
    assert_eq!(tracked.event(Event::Init), Step::Nothing);
    let again = object("reviews", routes_to("v2"));
    assert_eq!(tracked.event(Event::InitApply(again)), Step::Nothing);
    let Step::Listed(relisted) = tracked.event(Event::InitDone) else {
        panic!("listed");
    };
    assert_eq!(
        paths(&relisted),
        [(REVIEWS.to_string(), true), (RATINGS.to_string(), false)]
    );
}

#[test]
fn deletes_remove_and_are_forgotten_by_the_next_relist() {
    let mut tracked = Tracked::new(virtual_service());
    tracked.event(Event::Apply(object("reviews", routes_to("v1"))));
    let Step::Changes(removed) = tracked.event(Event::Delete(object("reviews", json!({})))) else {
        panic!("a delete is a change");
    };
    assert_eq!(paths(&removed), [(REVIEWS.to_string(), false)]);
    tracked.event(Event::Init);
    assert_eq!(tracked.event(Event::InitDone), Step::Listed(Vec::new()));
}

#[test]
fn the_gate_holds_everything_until_every_kind_has_listed() {
    let mut gate = Gate::new(2);
    let change = |name: &str| FileChange::Remove {
        path: PathBuf::from(name),
    };
    assert_eq!(gate.take(0, Step::Listed(vec![change("a")])), None);
    // A change of a synced kind while another still lists: held too.
    assert_eq!(gate.take(0, Step::Changes(vec![change("b")])), None);
    assert_eq!(gate.take(1, Step::Nothing), None);
    assert!(!gate.is_open());
    assert_eq!(
        gate.take(1, Step::Listed(Vec::new())),
        Some(vec![change("a"), change("b")])
    );
    assert!(gate.is_open());
    assert_eq!(
        gate.take(1, Step::Changes(vec![change("c")])),
        Some(vec![change("c")])
    );
    // A later relist with nothing new sends nothing.
    assert_eq!(gate.take(0, Step::Listed(Vec::new())), None);
}

#[test]
fn an_empty_cluster_opens_the_gate_with_an_empty_batch() {
    let mut gate = Gate::new(1);
    assert_eq!(gate.take(0, Step::Listed(Vec::new())), Some(Vec::new()));
}
