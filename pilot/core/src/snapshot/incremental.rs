//! Building the next snapshot from the previous one and the keys that
//! changed ([`FileStore::take_changed`](discovery::file::FileStore::take_changed)),
//! rebuilding only what they touch.
//!
//! ```text
//! changed keys ──► a Service appearing, going or redefined, ServiceEntry, Sidecar or a security policy; a namespace appearing or going; many keys ──► full build
//!      │
//!      ├─ Service, same definition (its supplied endpoints changed) ──► that Service's model rebuilt
//!      ├─ WorkloadEntry ──► workload list patched ──► the Services of its namespace selecting it
//!      │                    before or after: endpoints selected again (Registry::with_reselected)
//!      ├─ VirtualService ──► its list patched ──► its candidates, the Sidecar scopes, the checks again
//!      └─ DestinationRule ──► its list patched ──► its candidates, the checks again
//! everything else (registry models, candidates, scopes, findings): the previous snapshot's, shared by Arc
//! ```
//!
//! Why each reuse holds: a WorkloadEntry only feeds the endpoints of the
//! Services that select it, the Sidecar overlap warnings (always redone,
//! they are cheap) and, through the namespaces that have workloads, the
//! precedence checks (redone when that set moves). Scopes read service
//! definitions, never endpoints. Candidates read the registry's host names,
//! which only Services and ServiceEntries change. An unchanged object keeps
//! its `Arc`, so the change set that follows compares pointers. A test
//! applies sequences of changes both ways and compares the results.

use std::collections::BTreeSet;
use std::sync::Arc;

use discovery::file::ConfigSet;
use policy::networking::WorkloadEntry;
use policy::service::Service;
use policy::{Kind, Object, ObjectKey};

use super::{Parts, Reuse, Snapshot};

impl Snapshot {
    /// The snapshot of `config`, given that `previous` was built from a
    /// config that differs from it only in the objects of `changed`: the
    /// same snapshot as [`Snapshot::build_with_mesh`] with `previous`'s mesh
    /// settings, built from `previous`'s parts where the change allows.
    pub fn build_after(
        previous: &Snapshot,
        generation: u64,
        config: &ConfigSet,
        changed: &BTreeSet<ObjectKey>,
    ) -> Snapshot {
        incremental(previous, generation, config, changed)
            .unwrap_or_else(|| Snapshot::build_with_mesh(generation, config, &previous.mesh))
            .with_trust_bundle(previous.trust_bundle.clone())
            .with_jwks(previous.jwks.clone())
    }
}

/// The incremental build, or `None` where only a full build is known to be right.
fn incremental(
    previous: &Snapshot,
    generation: u64,
    config: &ConfigSet,
    changed: &BTreeSet<ObjectKey>,
) -> Option<Snapshot> {
    // Past a point, patching lists one change at a time costs more than
    // building them.
    if changed.len() > 16 + config.objects.len() / 4 {
        return None;
    }
    let objects = config.objects.as_slice();
    // A Service whose endpoints alone changed (a Kubernetes source's
    // EndpointSlices; its definition is the same object): its model is
    // rebuilt, as for a WorkloadEntry change.
    let mut supplied_changed: Vec<&Service> = Vec::new();
    for key in changed.iter().filter(|k| k.kind == Kind::Service) {
        let svc = endpoints_only_change(previous, objects, key)?;
        supplied_changed.push(svc);
    }
    for key in changed {
        let shapes_the_mesh = matches!(
            key.kind,
            Kind::ServiceEntry
                | Kind::Sidecar
                | Kind::PeerAuthentication
                | Kind::AuthorizationPolicy
                | Kind::RequestAuthentication
                | Kind::Telemetry
        );
        let was = previous.parts.namespaces.contains(&key.namespace);
        if shapes_the_mesh || was != in_use(objects, &key.namespace) {
            return None;
        }
    }
    let changed_kind = |kind| changed.iter().filter(move |k| k.kind == kind);

    let mut workload_entries = previous.workload_entries.clone();
    let mut registry = None;
    let mut workloads_moved_namespace = false;
    if changed_kind(Kind::WorkloadEntry).next().is_some() {
        let mut reselect: Vec<&Service> = Vec::new();
        let mut namespaces: BTreeSet<&str> = BTreeSet::new();
        for key in changed_kind(Kind::WorkloadEntry) {
            let new = find(objects, key).and_then(|o| match o.as_ref() {
                Object::WorkloadEntry(we) => Some(we),
                _ => None,
            });
            let old = patch(&mut workload_entries, key, new, |we| &we.meta);
            let labels = old
                .iter()
                .map(|we| &we.spec.labels)
                .chain(new.map(|we| &we.spec.labels));
            let labels: Vec<_> = labels.collect();
            for object in of_kind_in(objects, Kind::Service, &key.namespace) {
                let Object::Service(svc) = object.as_ref() else {
                    continue;
                };
                let selector = &svc.spec.selector;
                let selects = |l: &&std::collections::BTreeMap<String, String>| {
                    selector.iter().all(|(k, v)| l.get(k) == Some(v))
                };
                if !selector.is_empty()
                    && labels.iter().any(selects)
                    && !reselect.iter().any(|s| std::ptr::eq(*s, svc))
                {
                    reselect.push(svc);
                }
            }
            namespaces.insert(&key.namespace);
        }
        for ns in &namespaces {
            let had = !workloads_in(&previous.workload_entries, ns).is_empty();
            let has = !workloads_in(&workload_entries, ns).is_empty();
            workloads_moved_namespace |= had != has;
        }
        let workloads = namespaces
            .iter()
            .flat_map(|ns| of_kind_in(objects, Kind::WorkloadEntry, ns))
            .filter_map(|o| match o.as_ref() {
                Object::WorkloadEntry(we) => Some(we),
                _ => None,
            });
        registry = Some(
            previous
                .registry
                .with_reselected(reselect, workloads, &config.endpoints),
        );
    }
    if !supplied_changed.is_empty() {
        let namespaces: BTreeSet<&str> = supplied_changed
            .iter()
            .map(|svc| svc.meta.namespace.as_str())
            .collect();
        let workloads: Vec<&WorkloadEntry> = namespaces
            .iter()
            .flat_map(|ns| of_kind_in(objects, Kind::WorkloadEntry, ns))
            .filter_map(|o| match o.as_ref() {
                Object::WorkloadEntry(we) => Some(we),
                _ => None,
            })
            .collect();
        let base = registry.as_ref().unwrap_or(&previous.registry);
        registry = Some(base.with_reselected(supplied_changed, workloads, &config.endpoints));
    }
    let registry = registry.unwrap_or_else(|| previous.registry.clone());

    let p = &previous.parts;
    let mut parts = Parts {
        virtual_services: p.virtual_services.clone(),
        destination_rules: p.destination_rules.clone(),
        sidecars: p.sidecars.clone(),
        peer_authentications: p.peer_authentications.clone(),
        authorization_policies: p.authorization_policies.clone(),
        request_authentications: p.request_authentications.clone(),
        telemetries: p.telemetries.clone(),
        namespaces: p.namespaces.clone(),
        registry_diagnostics: p.registry_diagnostics.clone(),
        services: p.services.clone(),
        ..Parts::default()
    };
    let mut virtual_services_changed = false;
    for key in changed_kind(Kind::VirtualService) {
        let new = find(objects, key).and_then(|o| match o.as_ref() {
            Object::VirtualService(vs) => Some(vs),
            _ => None,
        });
        patch(&mut parts.virtual_services, key, new, |vs| &vs.meta);
        virtual_services_changed = true;
    }
    let mut destination_rules_changed = false;
    for key in changed_kind(Kind::DestinationRule) {
        let new = find(objects, key).and_then(|o| match o.as_ref() {
            Object::DestinationRule(dr) => Some(dr),
            _ => None,
        });
        patch(&mut parts.destination_rules, key, new, |dr| &dr.meta);
        destination_rules_changed = true;
    }

    let reuse = Reuse {
        previous: Some(previous),
        sidecars: !virtual_services_changed,
        virtual_services: !virtual_services_changed,
        destination_rules: !destination_rules_changed,
        checks: !virtual_services_changed
            && !destination_rules_changed
            && !workloads_moved_namespace,
    };
    let mesh = previous.mesh.clone();
    Some(Snapshot::finish(
        generation,
        config,
        &mesh,
        registry,
        workload_entries,
        parts,
        reuse,
    ))
}

/// The Service of `key` when its change is one of supplied endpoints only:
/// the same definition was in force before and holds its host, with a
/// static resolution (a DNS-resolved service carries its endpoints in its
/// cluster), so only its endpoints can differ. `None`: a Service that
/// appeared, went or changed, which the full build handles.
fn endpoints_only_change<'a>(
    previous: &Snapshot,
    objects: &'a [Arc<Object>],
    key: &ObjectKey,
) -> Option<&'a Service> {
    let Object::Service(svc) = find(objects, key)?.as_ref() else {
        return None;
    };
    let before = previous.parts.services.binary_search_by(|s| {
        (s.meta.namespace.as_str(), s.meta.name.as_str())
            .cmp(&(key.namespace.as_str(), key.name.as_str()))
    });
    let same = before.is_ok_and(|i| *previous.parts.services[i] == *svc);
    let holds = previous.registry.services.values().any(|m| {
        m.name.as_deref() == Some(svc.meta.name.as_str())
            && m.namespace == svc.meta.namespace
            && m.resolution == discovery::model::Resolution::Static
    });
    (same && holds).then_some(svc)
}

/// Puts `new` in place of the object of `key` in `list` (sorted by
/// namespace and name), inserting or removing it as needed; returns the
/// object it replaced.
fn patch<T: Clone>(
    list: &mut Vec<Arc<T>>,
    key: &ObjectKey,
    new: Option<&T>,
    meta: impl Fn(&T) -> &policy::ObjectMeta,
) -> Option<Arc<T>> {
    let at = list.binary_search_by(|o| {
        let m = meta(o);
        (m.namespace.as_str(), m.name.as_str()).cmp(&(key.namespace.as_str(), key.name.as_str()))
    });
    match (at, new) {
        (Ok(i), Some(new)) => Some(std::mem::replace(&mut list[i], Arc::new(new.clone()))),
        (Err(i), Some(new)) => {
            list.insert(i, Arc::new(new.clone()));
            None
        }
        (Ok(i), None) => Some(list.remove(i)),
        (Err(_), None) => None,
    }
}

/// The object of `key` in `objects` (sorted by key).
fn find<'a>(objects: &'a [Arc<Object>], key: &ObjectKey) -> Option<&'a Arc<Object>> {
    objects
        .binary_search_by(|o| {
            let m = o.meta();
            (o.kind(), m.namespace.as_str(), m.name.as_str()).cmp(&(
                key.kind,
                key.namespace.as_str(),
                key.name.as_str(),
            ))
        })
        .ok()
        .map(|i| &objects[i])
}

/// The objects of `kind` in `namespace`, from `objects` sorted by key.
fn of_kind_in<'a>(objects: &'a [Arc<Object>], kind: Kind, namespace: &str) -> &'a [Arc<Object>] {
    fn place(o: &Arc<Object>) -> (Kind, &str) {
        (o.kind(), o.meta().namespace.as_str())
    }
    let start = objects.partition_point(|o| place(o) < (kind, namespace));
    let len = objects[start..].partition_point(|o| place(o) == (kind, namespace));
    &objects[start..start + len]
}

/// Whether some object is in `namespace`.
fn in_use(objects: &[Arc<Object>], namespace: &str) -> bool {
    Kind::ALL
        .iter()
        .any(|&kind| !of_kind_in(objects, kind, namespace).is_empty())
}

/// The WorkloadEntries of `namespace`, from a list sorted by namespace and name.
fn workloads_in<'a>(list: &'a [Arc<WorkloadEntry>], namespace: &str) -> &'a [Arc<WorkloadEntry>] {
    let start = list.partition_point(|we| we.meta.namespace.as_str() < namespace);
    let len = list[start..].partition_point(|we| we.meta.namespace == namespace);
    &list[start..start + len]
}

#[cfg(test)]
mod tests;
