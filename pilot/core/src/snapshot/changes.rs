//! What changed between two snapshots, and which proxies it can reach
//! (Istio's push request and `ProxyNeedsPush`).
//!
//! ```text
//! previous, next ──► ChangeSet { reasons, hosts, endpoint_hosts, addresses, everyone }
//!                          │
//!                          ├──► reaches(&Proxy): compile and push this proxy at all?
//!                          └──► endpoints_only(): the next push context may start from the last
//! ```
//!
//! The analysis only ever errs towards pushing: a proxy it lets through is
//! compiled and pushed only the types whose content changed, while a proxy
//! it skips keeps what it has. So every rule here answers "may this change
//! alter what this proxy is sent?", and anything it cannot attribute
//! reaches every proxy.
//!
//! - A service whose definition changed (ports, resolution, exportTo, ...),
//!   appeared or went: its host changed, for every namespace that saw it
//!   before or sees it now; the proxies at its endpoints' addresses, before
//!   and after, too (their inbound listeners come from it).
//! - A service whose endpoints alone changed, served over EDS: an endpoint
//!   host. A DNS-resolved service carries its endpoints inside the cluster,
//!   so there it is a definition change.
//! - A VirtualService or DestinationRule that appeared, went or changed: the
//!   hosts it applied to before and applies to now.
//! - A WorkloadEntry that changed: the proxy at its address, before and after
//!   (a proxy's locality is read from the entry at its address).
//! - A Sidecar that appeared, went or changed: every proxy. So does a
//!   change of the security policies (their inbound listeners). A host that some
//!   Sidecar scope admits before and not after, or the other way round (a
//!   VirtualService's new destination, say): a changed host. A proxy is
//!   reached by a changed host only if its scope admits it before or after.

use std::cmp::Ordering;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use discovery::model::{Resolution, ServiceModel};
use policy::ObjectKey;
use policy::networking::WorkloadEntry;

use super::{Candidates, HostPolicy, Snapshot, visible};
use crate::proxy::Proxy;

/// A change between two snapshots that touched the endpoints of some hosts
/// and nothing else (no service definition, no policy).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EndpointChanges {
    /// The hosts whose endpoints changed.
    pub hosts: BTreeSet<String>,
    /// Addresses of the endpoints that appeared, went or changed, before and
    /// after: a proxy at one of them may see its inbound listeners or its
    /// locality change, so it is compiled in full.
    pub addresses: BTreeSet<String>,
}

/// Why a push happens: the kinds of change a build found, in a closed set.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PushReason {
    /// Endpoints of EDS services changed.
    EndpointUpdate,
    /// A service appeared, went, or its definition changed.
    ServiceUpdate,
    /// A VirtualService or DestinationRule changed.
    ConfigUpdate,
    /// A WorkloadEntry changed (the proxies at its addresses).
    WorkloadUpdate,
    /// The first snapshot, or a change whose reach is not worked out per proxy.
    GlobalUpdate,
    /// The CA's trust bundle changed (a root joined or left it).
    TrustBundle,
}

/// The difference between two snapshots, as far as proxies are concerned.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChangeSet {
    pub reasons: BTreeSet<PushReason>,
    /// Hosts whose service definition or policy changed.
    pub hosts: BTreeSet<String>,
    /// Hosts whose EDS endpoints alone changed.
    pub endpoint_hosts: BTreeSet<String>,
    /// Addresses whose proxy may see its own inbound side or locality change.
    pub addresses: BTreeSet<String>,
    /// Every proxy is reached.
    pub everyone: bool,
    /// The trust bundle changed: every sidecar's `ROOTCA` secret with it.
    pub trust_bundle: bool,
}

impl ChangeSet {
    /// The change that reaches every proxy: the first snapshot.
    pub fn everything() -> Self {
        ChangeSet {
            reasons: BTreeSet::from([PushReason::GlobalUpdate]),
            everyone: true,
            ..ChangeSet::default()
        }
    }

    /// What changed from `previous` to `next`.
    pub fn between(previous: &Snapshot, next: &Snapshot) -> Self {
        let mut changes = ChangeSet::default();
        changes.services(previous, next);
        changes.policies(&previous.virtual_services, &next.virtual_services);
        changes.policies(&previous.destination_rules, &next.destination_rules);
        changes.workload_entries(previous, next);
        changes.sidecars(previous, next);
        changes.security(previous, next);
        // Telemetry goes into the listeners of the workloads it selects;
        // rare enough to reach everyone.
        if !Arc::ptr_eq(&previous.telemetry, &next.telemetry)
            && previous.telemetry != next.telemetry
        {
            changes.reasons.insert(PushReason::ConfigUpdate);
            changes.everyone = true;
        }
        // Fetched keys go into the JWT filters of the workloads their
        // RequestAuthentications select; rare enough to reach everyone.
        if !Arc::ptr_eq(&previous.jwks, &next.jwks) && previous.jwks != next.jwks {
            changes.reasons.insert(PushReason::ConfigUpdate);
            changes.everyone = true;
        }
        if previous.trust_bundle != next.trust_bundle {
            changes.reasons.insert(PushReason::TrustBundle);
            changes.trust_bundle = true;
        }
        changes
    }

    /// Whether the trust bundle is all that changed: then only secrets
    /// differ, and nothing else needs compiling again.
    pub fn trust_bundle_only(&self) -> bool {
        self.trust_bundle && self.reasons.len() == 1
    }

    pub fn is_empty(&self) -> bool {
        self.reasons.is_empty()
    }

    /// The endpoint-only change this is, if it is one.
    pub fn endpoints_only(&self) -> Option<EndpointChanges> {
        let only_endpoints = self
            .reasons
            .iter()
            .all(|r| matches!(r, PushReason::EndpointUpdate | PushReason::WorkloadUpdate));
        (only_endpoints && !self.everyone && self.hosts.is_empty()).then(|| EndpointChanges {
            hosts: self.endpoint_hosts.clone(),
            addresses: self.addresses.clone(),
        })
    }

    /// Whether the change may alter what `proxy` is sent, seen from the
    /// snapshots before and after it.
    pub fn reaches(&self, proxy: &Proxy, previous: &Snapshot, next: &Snapshot) -> bool {
        if self.everyone || (self.trust_bundle && !proxy.metadata.is_proxyless()) {
            return true;
        }
        if !self.addresses.is_empty()
            && self.addresses.contains(&proxy.metadata.address.to_string())
        {
            return true;
        }
        let scopes = [previous.scope_for(proxy), next.scope_for(proxy)];
        let seen = |host: &String| {
            [previous, next].iter().zip(&scopes).any(|(s, scope)| {
                s.registry.services.get(host).is_some_and(|service| {
                    visible(service, &proxy.metadata.namespace) && scope.admits(service)
                })
            })
        };
        self.hosts.iter().any(seen) || self.endpoint_hosts.iter().any(seen)
    }

    fn services(&mut self, previous: &Snapshot, next: &Snapshot) {
        let (before, after) = (&previous.registry.services, &next.registry.services);
        let hosts: BTreeSet<&String> = before.keys().chain(after.keys()).collect();
        for host in hosts {
            let (old, new) = (before.get(host), after.get(host));
            match (old, new) {
                (Some(old), Some(new)) if Arc::ptr_eq(old, new) || old == new => {}
                (Some(old), Some(new)) if endpoints_differ_only(old, new) => {
                    self.reasons.insert(PushReason::EndpointUpdate);
                    self.endpoint_hosts.insert(host.clone());
                    self.addresses.extend(moved_addresses(old, new));
                }
                _ => {
                    self.reasons.insert(PushReason::ServiceUpdate);
                    self.hosts.insert(host.clone());
                    for service in old.into_iter().chain(new) {
                        self.addresses
                            .extend(service.endpoints.iter().map(|e| e.address.clone()));
                    }
                }
            }
        }
    }

    /// The hosts of the VirtualServices (or DestinationRules) that differ.
    fn policies<T: HostPolicy + PartialEq>(
        &mut self,
        previous: &Arc<Candidates<T>>,
        next: &Arc<Candidates<T>>,
    ) {
        // A snapshot built after a change that touched none of them shares them.
        if Arc::ptr_eq(previous, next) {
            return;
        }
        let objects = |candidates: &Candidates<T>| -> BTreeMap<ObjectKey, Arc<T>> {
            candidates
                .values()
                .flatten()
                .map(|c| (c.object.key(), c.object.clone()))
                .collect()
        };
        let (before, after) = (objects(previous), objects(next));
        let changed: BTreeSet<&ObjectKey> = before
            .iter()
            .filter(|(k, v)| after.get(*k).is_none_or(|n| !same(v, n)))
            .map(|(k, _)| k)
            .chain(after.keys().filter(|k| !before.contains_key(*k)))
            .collect();
        if changed.is_empty() {
            return;
        }
        self.reasons.insert(PushReason::ConfigUpdate);
        for candidates in [previous, next] {
            for (host, list) in candidates.iter() {
                if list.iter().any(|c| changed.contains(&c.object.key())) {
                    self.hosts.insert(host.clone());
                }
            }
        }
    }

    /// Any change of PeerAuthentications, AuthorizationPolicies or
    /// RequestAuthentications reaches every proxy.
    fn security(&mut self, previous: &Snapshot, next: &Snapshot) {
        if Arc::ptr_eq(&previous.security, &next.security) || previous.security == next.security {
            return;
        }
        self.reasons.insert(PushReason::ConfigUpdate);
        self.everyone = true;
    }

    fn sidecars(&mut self, previous: &Snapshot, next: &Snapshot) {
        if Arc::ptr_eq(&previous.sidecars, &next.sidecars) {
            return;
        }
        if !previous.sidecars.same_sources(&next.sidecars) {
            self.reasons.insert(PushReason::ConfigUpdate);
            self.everyone = true;
            return;
        }
        let hosts = previous.sidecars.admission_changes(&next.sidecars);
        if !hosts.is_empty() {
            self.reasons.insert(PushReason::ConfigUpdate);
            self.hosts.extend(hosts);
        }
    }

    /// One walk of both lists, sorted by namespace and name; an entry
    /// shared by both snapshots is passed over by pointer.
    fn workload_entries(&mut self, previous: &Snapshot, next: &Snapshot) {
        let (mut before, mut after) = (
            previous.workload_entries.iter().peekable(),
            next.workload_entries.iter().peekable(),
        );
        fn name(we: &WorkloadEntry) -> (&str, &str) {
            (&we.meta.namespace, &we.meta.name)
        }
        loop {
            let (old, new) = match (before.peek(), after.peek()) {
                (None, None) => break,
                (Some(o), Some(n)) => match name(o).cmp(&name(n)) {
                    Ordering::Less => (before.next(), None),
                    Ordering::Greater => (None, after.next()),
                    Ordering::Equal => (before.next(), after.next()),
                },
                (Some(_), None) => (before.next(), None),
                (None, Some(_)) => (None, after.next()),
            };
            if old.zip(new).is_some_and(|(o, n)| same(o, n)) {
                continue;
            }
            self.reasons.insert(PushReason::WorkloadUpdate);
            for we in old.into_iter().chain(new) {
                self.addresses.insert(we.spec.address.clone());
            }
        }
    }
}

fn same<T: PartialEq>(a: &Arc<T>, b: &Arc<T>) -> bool {
    Arc::ptr_eq(a, b) || a == b
}

/// Whether two versions of a service differ in their endpoints alone, with
/// endpoints served over EDS.
fn endpoints_differ_only(old: &ServiceModel, new: &ServiceModel) -> bool {
    // Spelled out rather than compared through a copy without endpoints, so
    // that a new field of `ServiceModel` fails to compile here until it is
    // classified.
    let ServiceModel {
        hostname,
        namespace,
        name,
        ports,
        endpoints: _,
        resolution,
        mesh_external,
        export_to,
        addresses,
        object,
    } = old;
    *resolution == Resolution::Static
        && new.resolution == Resolution::Static
        && *hostname == new.hostname
        && *namespace == new.namespace
        && *name == new.name
        && *ports == new.ports
        && *mesh_external == new.mesh_external
        && *export_to == new.export_to
        && *addresses == new.addresses
        && *object == new.object
        && identities(old) == identities(new)
}

/// The workloads' identities behind a service, which its clusters verify
/// peers against (`compile::tls`): when they change, so do the clusters.
fn identities(service: &ServiceModel) -> BTreeSet<(&str, &str)> {
    service
        .endpoints
        .iter()
        .filter_map(|ep| {
            let (namespace, _) = ep.workload.as_ref()?;
            Some((
                namespace.as_str(),
                ep.service_account.as_deref().unwrap_or("default"),
            ))
        })
        .collect()
}

/// The addresses of endpoints that are not in both versions unchanged.
fn moved_addresses(old: &ServiceModel, new: &ServiceModel) -> BTreeSet<String> {
    let unchanged = |e: &discovery::Endpoint, other: &ServiceModel| other.endpoints.contains(e);
    old.endpoints
        .iter()
        .filter(|e| !unchanged(e, new))
        .chain(new.endpoints.iter().filter(|e| !unchanged(e, old)))
        .map(|e| e.address.clone())
        .collect()
}

/// For tests of what a change reaches: `reviews` in `shop` with two
/// workloads (the second at `second`), seen by every namespace, and `ledger`
/// in `bank`, exported to its own namespace only; `extra` is appended.
#[cfg(any(test, feature = "testing"))]
pub fn test_mesh(generation: u64, second: &str, extra: &str) -> Snapshot {
    let text = format!(
        r#"
apiVersion: v1
kind: Service
metadata: {{name: reviews, namespace: shop}}
spec:
  selector: {{app: reviews}}
  ports: [{{name: http, port: 80}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-1, namespace: shop}}
spec: {{address: 10.0.0.1, labels: {{app: reviews}}}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: reviews-2, namespace: shop}}
spec: {{address: {second}, labels: {{app: reviews}}}}
---
apiVersion: v1
kind: Service
metadata:
  name: ledger
  namespace: bank
  annotations: {{networking.istio.io/exportTo: "."}}
spec:
  selector: {{app: ledger}}
  ports: [{{name: http, port: 80}}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {{name: ledger-1, namespace: bank}}
spec: {{address: 10.0.1.1, labels: {{app: ledger}}}}
{extra}"#
    );
    let mut store = discovery::file::FileStore::default();
    store.apply(std::path::Path::new("mesh.yaml"), &text);
    Snapshot::build(generation, &store.config())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mesh(reviews_second_address: &str, extra: &str) -> Snapshot {
        test_mesh(1, reviews_second_address, extra)
    }

    fn proxy(namespace: &str, address: &str) -> Proxy {
        Proxy::client(namespace, address.parse().unwrap(), &[])
    }

    const REVIEWS: &str = "reviews.shop.svc.cluster.local";
    const LEDGER: &str = "ledger.bank.svc.cluster.local";

    fn vs(host: &str, namespace: &str, weight_header: &str) -> String {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: vs, namespace: {namespace}}}\nspec:\n  hosts: [{host}]\n  http:\n  - headers: {{request: {{set: {{x-rev: '{weight_header}'}}}}}}\n    route:\n    - destination: {{host: {host}}}\n"
        )
    }

    #[test]
    fn the_same_config_changes_nothing() {
        let changes = ChangeSet::between(&mesh("10.0.0.2", ""), &mesh("10.0.0.2", ""));
        assert!(changes.is_empty(), "{changes:?}");
        assert!(!changes.reaches(
            &proxy("shop", "10.0.0.1"),
            &mesh("10.0.0.2", ""),
            &mesh("10.0.0.2", "")
        ));
    }

    #[test]
    fn a_moved_endpoint_is_an_endpoint_only_change_of_its_service() {
        let (before, after) = (mesh("10.0.0.2", ""), mesh("10.0.0.3", ""));
        let changes = ChangeSet::between(&before, &after);
        assert!(changes.reasons.contains(&PushReason::EndpointUpdate));
        assert_eq!(
            changes.endpoint_hosts,
            BTreeSet::from([REVIEWS.to_string()])
        );
        assert!(changes.hosts.is_empty());
        let endpoints = changes.endpoints_only().expect("endpoint-only");
        assert_eq!(
            endpoints.addresses,
            BTreeSet::from(["10.0.0.2".to_string(), "10.0.0.3".to_string()])
        );
        // Every namespace sees reviews; only bank sees ledger.
        assert!(changes.reaches(&proxy("bank", "10.9.0.1"), &before, &after));
        assert!(changes.reaches(&proxy("shop", "10.9.0.1"), &before, &after));
    }

    #[test]
    fn a_new_identity_behind_a_service_is_a_service_change() {
        // Clients verify the service accounts behind reviews: they are in
        // its clusters, so an endpoint with another one changes those.
        let (before, after) = (
            mesh("10.0.0.2", ""),
            mesh("10.0.0.2, serviceAccount: reviews-admin", ""),
        );
        let changes = ChangeSet::between(&before, &after);
        assert!(changes.reasons.contains(&PushReason::ServiceUpdate));
        assert_eq!(changes.hosts, BTreeSet::from([REVIEWS.to_string()]));
        assert!(changes.endpoints_only().is_none());
    }

    /// A Sidecar in `ns` importing `hosts`.
    fn sidecar(ns: &str, hosts: &str) -> String {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: default, namespace: {ns}}}\nspec:\n  egress: [{{hosts: {hosts}}}]\n"
        )
    }

    #[test]
    fn a_change_outside_a_proxys_sidecar_scope_does_not_reach_it() {
        // bank's proxies import only their own namespace: reviews is hidden.
        let scoped = sidecar("bank", "['./*']");
        let (before, after) = (
            mesh("10.0.0.2", &(scoped.clone() + &vs(REVIEWS, "shop", "1"))),
            mesh("10.0.0.2", &(scoped + &vs(REVIEWS, "shop", "2"))),
        );
        let changes = ChangeSet::between(&before, &after);
        assert_eq!(changes.hosts, BTreeSet::from([REVIEWS.to_string()]));
        assert!(!changes.reaches(&proxy("bank", "10.9.0.1"), &before, &after));
        assert!(changes.reaches(&proxy("shop", "10.9.0.1"), &before, &after));
        // An endpoint move of reviews does not reach bank either.
        let (before, after) = (
            mesh("10.0.0.2", &sidecar("bank", "['./*']")),
            mesh("10.0.0.3", &sidecar("bank", "['./*']")),
        );
        let changes = ChangeSet::between(&before, &after);
        assert!(changes.endpoints_only().is_some());
        assert!(!changes.reaches(&proxy("bank", "10.9.0.1"), &before, &after));
    }

    #[test]
    fn a_sidecar_change_reaches_every_proxy() {
        let (before, after) = (
            mesh("10.0.0.2", &sidecar("bank", "['./*']")),
            mesh("10.0.0.2", &sidecar("bank", "['*/*']")),
        );
        let changes = ChangeSet::between(&before, &after);
        assert!(changes.everyone);
        assert!(changes.endpoints_only().is_none());
        assert!(changes.reaches(&proxy("shop", "10.9.0.1"), &before, &after));
    }

    #[test]
    fn a_security_policy_change_reaches_every_proxy() {
        let policy = |action: &str| {
            format!(
                "---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: p, namespace: shop}}\nspec:\n  action: {action}\n  rules: [{{}}]\n"
            )
        };
        let (before, after) = (
            mesh("10.0.0.2", &policy("ALLOW")),
            mesh("10.0.0.2", &policy("DENY")),
        );
        let changes = ChangeSet::between(&before, &after);
        assert!(changes.everyone);
        assert!(changes.reasons.contains(&PushReason::ConfigUpdate));
        assert!(changes.endpoints_only().is_none());
        assert!(!before.same_apart_from_routes(&after));
        let again = mesh("10.0.0.2", &policy("DENY"));
        assert!(ChangeSet::between(&after, &again).is_empty());
    }

    #[test]
    fn a_new_virtual_service_destination_changes_what_a_scope_admits() {
        // bank imports shop's VirtualService for ledger; once it routes to
        // reviews, bank's scope admits reviews, though nothing about reviews
        // itself or its policies changed.
        let scoped = sidecar("bank", "['./*', 'shop/ledger.bank.svc.cluster.local']");
        let route = |dest: &str| {
            format!(
                "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: to, namespace: shop}}\nspec:\n  hosts: [ledger.bank.svc.cluster.local]\n  http:\n  - route: [{{destination: {{host: {dest}}}}}]\n"
            )
        };
        let (before, after) = (
            mesh("10.0.0.2", &(scoped.clone() + &route(LEDGER))),
            mesh("10.0.0.2", &(scoped + &route(REVIEWS))),
        );
        let changes = ChangeSet::between(&before, &after);
        assert!(changes.hosts.contains(REVIEWS), "{changes:?}");
        assert!(changes.reaches(&proxy("bank", "10.9.0.1"), &before, &after));
    }

    #[test]
    fn a_policy_change_reaches_only_the_namespaces_that_see_its_host() {
        let (before, after) = (
            mesh("10.0.0.2", &vs(LEDGER, "bank", "1")),
            mesh("10.0.0.2", &vs(LEDGER, "bank", "2")),
        );
        let changes = ChangeSet::between(&before, &after);
        assert_eq!(changes.reasons, BTreeSet::from([PushReason::ConfigUpdate]));
        assert_eq!(changes.hosts, BTreeSet::from([LEDGER.to_string()]));
        assert!(changes.endpoints_only().is_none());
        assert!(changes.reaches(&proxy("bank", "10.9.0.1"), &before, &after));
        assert!(!changes.reaches(&proxy("shop", "10.9.0.1"), &before, &after));
    }

    #[test]
    fn a_new_policy_and_a_removed_one_count_for_their_hosts() {
        let (without, with) = (
            mesh("10.0.0.2", ""),
            mesh("10.0.0.2", &vs(REVIEWS, "shop", "1")),
        );
        for (before, after) in [(&without, &with), (&with, &without)] {
            let changes = ChangeSet::between(before, after);
            assert_eq!(changes.hosts, BTreeSet::from([REVIEWS.to_string()]));
        }
    }

    #[test]
    fn a_changed_service_definition_is_not_endpoint_only_and_reaches_its_workloads() {
        let before = mesh("10.0.0.2", "");
        let mut after = mesh("10.0.0.2", "");
        let mut reviews = (*after.registry.services[REVIEWS]).clone();
        reviews.ports[0].number = 8080;
        after
            .registry
            .services
            .insert(REVIEWS.to_string(), Arc::new(reviews));
        let changes = ChangeSet::between(&before, &after);
        assert_eq!(changes.reasons, BTreeSet::from([PushReason::ServiceUpdate]));
        assert!(changes.endpoints_only().is_none());
        // The service's workloads are reached by address: their inbound
        // side comes from the service.
        assert!(changes.addresses.contains("10.0.0.1"));
        assert!(changes.reaches(&proxy("shop", "10.0.0.1"), &before, &after));
    }
}
