//! Which VirtualServices and DestinationRules may apply to each service.
//!
//! Built once per snapshot: every host an object names is resolved, exact
//! hosts are filed under the service of that name, and wildcards under every
//! service they match, found by looking up the wildcards of each service
//! name (`*.b.c`, `*.c`, `*` for `a.b.c`) in an index of the objects'
//! wildcards, so the cost does not grow with the number of wildcards.
//!
//! Each service's list is in Istio's order of host specificity (the exact
//! host, then longer wildcards before shorter ones), and in namespace/name
//! order among objects with the same host; the lookups in `Snapshot` apply
//! namespace precedence on top of it.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use discovery::Registry;
use policy::networking::{DestinationRule, VirtualService};
use policy::{Diagnostic, FieldPath, Kind, ObjectKey};

use crate::hosts;

/// An object that applies to services by host: a VirtualService or a DestinationRule.
pub trait HostPolicy {
    const KIND: Kind;
    fn key(&self) -> ObjectKey;
    fn namespace(&self) -> &str;
    fn export_to(&self) -> &[String];
    /// The hosts as written, in order.
    fn hosts(&self) -> Vec<&str>;
    /// The field path of the `index`-th host.
    fn host_path(&self, index: usize) -> FieldPath;
}

impl HostPolicy for VirtualService {
    const KIND: Kind = Kind::VirtualService;
    fn key(&self) -> ObjectKey {
        key_of(Self::KIND, &self.meta)
    }
    fn namespace(&self) -> &str {
        &self.meta.namespace
    }
    fn export_to(&self) -> &[String] {
        &self.spec.export_to
    }
    fn hosts(&self) -> Vec<&str> {
        self.spec.hosts.iter().map(String::as_str).collect()
    }
    fn host_path(&self, index: usize) -> FieldPath {
        FieldPath::new("spec.hosts").index(index)
    }
}

impl HostPolicy for DestinationRule {
    const KIND: Kind = Kind::DestinationRule;
    fn key(&self) -> ObjectKey {
        key_of(Self::KIND, &self.meta)
    }
    fn namespace(&self) -> &str {
        &self.meta.namespace
    }
    fn export_to(&self) -> &[String] {
        &self.spec.export_to
    }
    fn hosts(&self) -> Vec<&str> {
        vec![self.spec.host.as_str()]
    }
    fn host_path(&self, _index: usize) -> FieldPath {
        FieldPath::new("spec.host")
    }
}

pub(super) fn key_of(kind: Kind, meta: &policy::ObjectMeta) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
    }
}

/// An object that may apply to a service, and the host by which it does.
#[derive(Debug)]
pub struct Candidate<T> {
    pub object: Arc<T>,
    /// The object's host, resolved: the service's own name, or a wildcard
    /// that matches it (shared: one wildcard's candidates are many).
    pub host: Arc<str>,
    /// Where that host is in the object (`spec.hosts[index]`; 0 for a DestinationRule).
    pub index: usize,
}

// Not derived: a derive would require `T: Clone`, and only the `Arc` is cloned.
impl<T> Clone for Candidate<T> {
    fn clone(&self) -> Self {
        Candidate {
            object: self.object.clone(),
            host: self.host.clone(),
            index: self.index,
        }
    }
}

impl<T> Candidate<T> {
    /// How specific the host is: an exact name beats every wildcard, and a
    /// longer wildcard beats a shorter one (Istio's `MostSpecificHostMatch`).
    /// Two hosts that match one service with the same specificity are equal.
    pub fn specificity(&self) -> usize {
        if hosts::is_wildcard(&self.host) {
            self.host.len()
        } else {
            usize::MAX
        }
    }
}

/// The candidates of every service that has some, by service FQDN.
pub type Candidates<T> = BTreeMap<String, Vec<Candidate<T>>>;

/// Files `objects` (in namespace/name order) under the services their hosts
/// select, and warns about each host that selects none.
pub(super) fn index<T: HostPolicy>(
    registry: &Registry,
    objects: &[Arc<T>],
    diagnostics: &mut Vec<Diagnostic>,
) -> Candidates<T> {
    let mut exact: Candidates<T> = BTreeMap::new();
    // Wildcard suffix -> the objects that name the wildcard, in object order.
    let mut wildcards: HashMap<String, Vec<Candidate<T>>> = HashMap::new();
    for object in objects {
        for (index, host) in object.hosts().into_iter().enumerate() {
            let host = hosts::resolve(registry, host, object.namespace());
            let list = if hosts::is_wildcard(&host) {
                wildcards.entry(hosts::wildcard_suffix(&host)).or_default()
            } else if registry.services.contains_key(&host) {
                exact.entry(host.clone()).or_default()
            } else {
                diagnostics.push(no_service(object.as_ref(), index, &host));
                continue;
            };
            // One object naming a host twice (`reviews` and its FQDN) counts once.
            if list.last().is_some_and(|c| Arc::ptr_eq(&c.object, object)) {
                continue;
            }
            list.push(Candidate {
                object: object.clone(),
                host: host.into(),
                index,
            });
        }
    }
    if wildcards.is_empty() {
        return exact;
    }

    let mut matched: HashSet<&str> = HashSet::new();
    let mut all = exact;
    for hostname in registry.services.keys() {
        let lower = hostname.to_ascii_lowercase();
        let mut found = hosts::matching_suffixes(&lower)
            .filter_map(|suffix| wildcards.get_key_value(suffix))
            .peekable();
        if found.peek().is_none() {
            continue;
        }
        let list = all.entry(hostname.clone()).or_default();
        for (suffix, wildcard_candidates) in found {
            matched.insert(suffix);
            // An object already filed by a more specific host keeps that place.
            for c in wildcard_candidates {
                if !list.iter().any(|l| Arc::ptr_eq(&l.object, &c.object)) {
                    list.push(c.clone());
                }
            }
        }
    }
    let mut unmatched: Vec<&Candidate<T>> = wildcards
        .iter()
        .filter(|(suffix, _)| !matched.contains(suffix.as_str()))
        .flat_map(|(_, list)| list)
        .collect();
    unmatched.sort_by_key(|c| (c.object.key(), c.index));
    for c in unmatched {
        diagnostics.push(no_service(c.object.as_ref(), c.index, &c.host));
    }
    all
}

fn no_service<T: HostPolicy>(object: &T, index: usize, host: &str) -> Diagnostic {
    Diagnostic::warning(
        object.host_path(index),
        format!("host {host:?} matches no service"),
    )
    .on(object.key())
}
