//! The push context: one per snapshot, holding what the compiler builds once
//! and every proxy of the snapshot shares (Istio's PushContext, without its
//! locks across compilation).
//!
//! ```text
//! Arc<Snapshot> ──► PushContext ─┬─ views:  (namespace, scope) ──► ScopeView (the resolved form)
//!  (immutable)     (per snapshot) ├─ shared: (namespace, scope) ──► clusters + endpoints (encoded)
//!                                 ├─ routes: (namespace, labels, scope) ──► route configuration (encoded)
//!                                 ├─ grpc:   (namespace, labels, scope) ──► API listeners + routes
//!                                 │          (proxyless gRPC clients)
//!                                 └─ inbound security: (namespace, labels) ──► JWT and RBAC filters
//!
//! Every part is translated from the view of its namespace and scope,
//! resolved once per snapshot.
//!                        │
//!                        └──► compile_consistent(&Proxy) on any thread, concurrently
//! ```
//!
//! Each entry is a `OnceLock` behind a concurrent map: a map shard is locked
//! only to find or insert the cell, never while compiling, so proxies of
//! different namespaces compile in parallel and proxies of the same one wait
//! for the single build of what they share. The snapshot itself holds no
//! memo and is never written after it is built.
//!
//! After a change of endpoints only, the next context starts from the
//! previous one's views (with the changed services' endpoints) and shared clusters (see [`PushContext::after_endpoint_change`])
//! and a proxy whose last set came from the previous snapshot gets only its
//! endpoints compiled again ([`PushContext::endpoints_update`]). After a
//! change that leaves every shared cluster and endpoint as it was (routes
//! only, [`PushContext::with_clusters_of`]), the shared parts carry over
//! whole and only routes and the proxies' own parts are compiled.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;

use super::grpc::{self, GrpcResources};
use super::view::ScopeView;
use super::{
    ClientKind, InboundSecurity, Inconsistent, SharedResources, checked, compile_parts,
    compile_shared, derive_shared, outbound_routes, proxy_endpoints,
};
use crate::proxy::Proxy;
use crate::resources::{ProxyResources, Resource, ResourceSet, ResourceType};
use crate::snapshot::{EndpointChanges, ScopeKey, SidecarScope, Snapshot};

/// What a proxy's outbound routes depend on: its namespace, the labels some
/// `sourceLabels` reads, and its Sidecar scope.
type RouteKey = (String, BTreeMap<String, String>, ScopeKey);

/// What a proxy's shared clusters and endpoints depend on: its namespace,
/// Sidecar scope, and kind of client (proxyless gRPC clients take clusters
/// with the load balancers gRPC has; only sidecars with a certificate take
/// mutual TLS).
type SharedKey = (String, ScopeKey, ClientKind);

/// What a view depends on: the namespace it is seen from and the scope.
type ViewKey = (String, ScopeKey);

/// What the security policies that apply to a workload depend on.
type SecurityKey = (String, BTreeMap<String, String>);

/// Compiled, encoded resources of one snapshot, shared by its proxies.
#[derive(Debug)]
pub struct PushContext {
    snapshot: Arc<Snapshot>,
    /// The snapshot resolved per namespace and scope: what every part
    /// below is translated from.
    views: DashMap<ViewKey, Arc<OnceLock<Arc<ScopeView>>>>,
    shared: DashMap<SharedKey, Arc<OnceLock<Arc<SharedResources>>>>,
    routes: DashMap<RouteKey, Arc<OnceLock<Arc<Resource>>>>,
    /// Proxyless gRPC clients' listeners and routes, which depend on what
    /// outbound routes depend on.
    grpc: DashMap<RouteKey, Arc<OnceLock<Arc<GrpcResources>>>>,
    /// The inbound filters of the security policies, by the namespace and
    /// labels of the workloads they apply to.
    inbound_security: DashMap<SecurityKey, Arc<OnceLock<Arc<InboundSecurity>>>>,
    /// The label keys some VirtualService's `sourceLabels` reads: the only
    /// labels of a proxy its routes depend on.
    route_labels: BTreeSet<String>,
    /// The secrets every sidecar gets (the bundle's `ROOTCA`).
    secrets: OnceLock<ResourceSet>,
    after: Option<EndpointBase>,
    /// The snapshot before, when this one differs from it in VirtualServices
    /// only ([`PushContext::after_route_change`]).
    routes_after: Option<Arc<Snapshot>>,
    /// The generation before, when this snapshot differs from it in the
    /// trust bundle only ([`PushContext::after_trust_bundle_change`]).
    secrets_after: Option<u64>,
}

/// Where a context that follows a change the shared clusters survive
/// starts from.
#[derive(Debug)]
struct EndpointBase {
    /// The generation of the snapshot before the change.
    previous: u64,
    /// The endpoints that changed; `None` when none did (a change of
    /// routes only): then the shared parts carry over as they are.
    changes: Option<EndpointChanges>,
    /// The previous context's shared parts, by namespace and scope, as far
    /// as they were built.
    shared: HashMap<SharedKey, Arc<SharedResources>>,
    /// The previous context's views, as far as they were built.
    views: HashMap<ViewKey, Arc<ScopeView>>,
}

impl PushContext {
    /// An empty context of `snapshot`: every part is built on first use.
    pub fn new(snapshot: Arc<Snapshot>) -> Self {
        let route_labels = snapshot
            .virtual_services
            .values()
            .flatten()
            .flat_map(|c| &c.object.spec.http)
            .flat_map(|http| &http.matches)
            .flat_map(|m| m.source_labels.keys())
            .cloned()
            .collect();
        PushContext {
            snapshot,
            views: DashMap::new(),
            shared: DashMap::new(),
            routes: DashMap::new(),
            grpc: DashMap::new(),
            inbound_security: DashMap::new(),
            route_labels,
            secrets: OnceLock::new(),
            after: None,
            routes_after: None,
            secrets_after: None,
        }
    }

    /// The context of `snapshot` when it differs from `previous`'s only in
    /// its trust bundle: a proxy whose last set came from `previous` gets
    /// only its secrets replaced ([`PushContext::secrets_update`]), and the
    /// rest is compiled afresh only for proxies that need a full compile.
    pub fn after_trust_bundle_change(previous: &PushContext, snapshot: Arc<Snapshot>) -> Self {
        PushContext {
            secrets_after: Some(previous.generation()),
            ..PushContext::new(snapshot)
        }
    }

    /// `last` with this snapshot's secrets, when this context follows a
    /// change of the trust bundle alone from the snapshot `last` was
    /// compiled from. `None` otherwise (or for a proxyless client, which
    /// gets no secrets); then compile in full.
    pub fn secrets_update(
        &self,
        proxy: &Proxy,
        last: &ProxyResources,
        last_generation: u64,
    ) -> Option<ProxyResources> {
        if self.secrets_after != Some(last_generation) || proxy.metadata.is_proxyless() {
            return None;
        }
        Some(last.with(ResourceType::Secret, self.secrets()))
    }

    /// The secrets every sidecar of the snapshot gets, encoded once.
    pub(super) fn secrets(&self) -> ResourceSet {
        self.secrets
            .get_or_init(|| super::secrets(&self.snapshot))
            .clone()
    }

    /// The context of `snapshot` when it differs from `previous`'s snapshot
    /// only by `changes`: the shared clusters carry over and only the
    /// changed hosts' load assignments are compiled again.
    pub fn after_endpoint_change(
        previous: &PushContext,
        snapshot: Arc<Snapshot>,
        changes: EndpointChanges,
    ) -> Self {
        Self::carrying(previous, snapshot, Some(changes))
    }

    /// The context of `snapshot` when its shared clusters and endpoints
    /// are `previous`'s ([`Snapshot::same_clusters`]): a change of
    /// VirtualServices compiles routes again, not the mesh's clusters.
    pub fn with_clusters_of(previous: &PushContext, snapshot: Arc<Snapshot>) -> Self {
        debug_assert!(snapshot.same_clusters(&previous.snapshot));
        Self::carrying(previous, snapshot, None)
    }

    /// The context of `snapshot` when it differs from `previous`'s only in
    /// VirtualServices ([`Snapshot::same_apart_from_routes`]): the shared
    /// clusters carry over where no Sidecar can have changed them, and a
    /// proxy whose scope admits the same gets only its routes compiled
    /// again ([`PushContext::routes_update`]).
    pub fn after_route_change(previous: &PushContext, snapshot: Arc<Snapshot>) -> Self {
        debug_assert!(snapshot.same_apart_from_routes(&previous.snapshot));
        let mut context = if snapshot.same_clusters(&previous.snapshot) {
            Self::with_clusters_of(previous, snapshot)
        } else {
            PushContext::new(snapshot)
        };
        context.routes_after = Some(previous.snapshot.clone());
        context
    }

    /// `proxy`'s resources when this context follows a change of
    /// VirtualServices only from the snapshot `last` was compiled from:
    /// `last` with its routes compiled again, when the proxy's scope admits
    /// the same in both. `None` when that does not hold (or for a proxyless
    /// client, whose listeners are per route); then compile in full.
    pub fn routes_update(
        &self,
        proxy: &Proxy,
        last: &ProxyResources,
        last_generation: u64,
    ) -> Option<ProxyResources> {
        let before = self.routes_after.as_ref()?;
        if before.generation != last_generation || proxy.metadata.is_proxyless() {
            return None;
        }
        let scope = self.snapshot.scope_for(proxy);
        if !before.scope_for(proxy).same_admission(&scope) {
            return None;
        }
        let view = self.view(&proxy.metadata.namespace, &scope);
        let routes = self.outbound_routes(&view, proxy, &scope);
        let mut map = crate::resources::ResourceMap::new();
        map.insert(routes.name.clone(), routes);
        Some(last.with(ResourceType::Route, map))
    }

    fn carrying(
        previous: &PushContext,
        snapshot: Arc<Snapshot>,
        changes: Option<EndpointChanges>,
    ) -> Self {
        let shared = previous
            .shared
            .iter()
            .filter_map(|e| Some((e.key().clone(), e.value().get()?.clone())))
            .collect();
        let views = previous
            .views
            .iter()
            .filter_map(|e| Some((e.key().clone(), e.value().get()?.clone())))
            .collect();
        PushContext {
            after: Some(EndpointBase {
                previous: previous.generation(),
                changes,
                shared,
                views,
            }),
            ..PushContext::new(snapshot)
        }
    }

    pub fn snapshot(&self) -> &Arc<Snapshot> {
        &self.snapshot
    }

    pub fn generation(&self) -> u64 {
        self.snapshot.generation
    }

    /// Compiles `proxy`'s resources; the same bytes as
    /// [`compile`](super::compile) on the snapshot.
    pub fn compile(&self, proxy: &Proxy) -> ProxyResources {
        compile_parts(&self.snapshot, proxy, Some(self)).0
    }

    /// [`compile_consistent`](super::compile_consistent) through this context.
    pub fn compile_consistent(&self, proxy: &Proxy) -> Result<ProxyResources, Inconsistent> {
        checked(compile_parts(&self.snapshot, proxy, Some(self)))
    }

    /// `proxy`'s resources when this context follows an endpoint-only change
    /// from the snapshot `last` was compiled from: `last` with only its
    /// endpoints compiled again. `None` when that does not hold, or the
    /// change touched the proxy's own address; then compile in full.
    pub fn endpoints_update(
        &self,
        proxy: &Proxy,
        last: &ProxyResources,
        last_generation: u64,
    ) -> Option<ProxyResources> {
        let base = self.after.as_ref()?;
        let changes = base.changes.as_ref()?;
        if base.previous != last_generation
            || changes
                .addresses
                .contains(&proxy.metadata.address.to_string())
        {
            return None;
        }
        let scope = self.snapshot.scope_for(proxy);
        let view = self.view(&proxy.metadata.namespace, &scope);
        let shared = self.shared(&view, &scope, ClientKind::of(proxy));
        let endpoints = proxy_endpoints(&self.snapshot, &view, proxy, &shared);
        Some(last.with(ResourceType::Endpoint, endpoints))
    }

    /// The snapshot resolved for proxies of `namespace` in `scope`. After a
    /// change of endpoints only, the previous context's view with the
    /// changed services' endpoints; otherwise resolved afresh.
    pub(super) fn view(&self, namespace: &str, scope: &SidecarScope) -> Arc<ScopeView> {
        let key = (namespace.to_string(), scope.key());
        let cell = match self.views.get(&key) {
            Some(cell) => cell.clone(),
            None => self.views.entry(key.clone()).or_default().clone(),
        };
        cell.get_or_init(|| {
            let base = self.after.as_ref().and_then(|b| {
                let changes = b.changes.as_ref()?;
                Some((b.views.get(&key)?, changes))
            });
            Arc::new(match base {
                Some((base, changes)) => {
                    base.with_endpoints_of(&self.snapshot.registry, &changes.hosts)
                }
                None => ScopeView::resolve(&self.snapshot, namespace, scope),
            })
        })
        .clone()
    }

    /// The outbound clusters and endpoints of `view`.
    pub(super) fn shared(
        &self,
        view: &ScopeView,
        scope: &SidecarScope,
        client: ClientKind,
    ) -> Arc<SharedResources> {
        let key = (view.namespace().to_string(), scope.key(), client);
        let cell = match self.shared.get(&key) {
            Some(cell) => cell.clone(),
            None => self.shared.entry(key.clone()).or_default().clone(),
        };
        cell.get_or_init(|| {
            let base = self
                .after
                .as_ref()
                .and_then(|b| Some((b.shared.get(&key)?, b.changes.as_ref())));
            match base {
                Some((base, None)) => base.clone(),
                Some((base, Some(changes))) => Arc::new(derive_shared(view, base, &changes.hosts)),
                None => Arc::new(compile_shared(view, client)),
            }
        })
        .clone()
    }

    /// The outbound route configuration of `proxy`, shared by the proxies
    /// of the same namespace, labels and scope.
    ///
    /// Only the labels some `sourceLabels` reads are part of the key, so a
    /// fleet of distinct workloads shares one route configuration per
    /// namespace and scope unless routes really tell their labels apart.
    pub(super) fn outbound_routes(
        &self,
        view: &ScopeView,
        proxy: &Proxy,
        scope: &SidecarScope,
    ) -> Arc<Resource> {
        let key = self.route_key(proxy, scope);
        let cell = match self.routes.get(&key) {
            Some(cell) => cell.clone(),
            None => self.routes.entry(key).or_default().clone(),
        };
        cell.get_or_init(|| outbound_routes(view, &proxy.metadata.labels))
            .clone()
    }

    /// A proxyless gRPC client's listeners and routes, shared by the
    /// clients of the same namespace, route labels and scope.
    pub(super) fn grpc(
        &self,
        view: &ScopeView,
        proxy: &Proxy,
        scope: &SidecarScope,
    ) -> Arc<GrpcResources> {
        let key = self.route_key(proxy, scope);
        let cell = match self.grpc.get(&key) {
            Some(cell) => cell.clone(),
            None => self.grpc.entry(key).or_default().clone(),
        };
        cell.get_or_init(|| Arc::new(grpc::compile(view, &proxy.metadata.labels)))
            .clone()
    }

    /// The inbound JWT and RBAC filters of the workloads of `namespace`
    /// with `labels`, compiled once per snapshot.
    pub(super) fn inbound_security(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Arc<InboundSecurity> {
        let key = (namespace.to_string(), labels.clone());
        let cell = match self.inbound_security.get(&key) {
            Some(cell) => cell.clone(),
            None => self.inbound_security.entry(key).or_default().clone(),
        };
        cell.get_or_init(|| Arc::new(InboundSecurity::compile(&self.snapshot, namespace, labels)))
            .clone()
    }

    /// What `proxy`'s routes depend on: its namespace, the labels some
    /// `sourceLabels` reads, and its scope.
    fn route_key(&self, proxy: &Proxy, scope: &SidecarScope) -> RouteKey {
        let labels = proxy
            .metadata
            .labels
            .iter()
            .filter(|(k, _)| self.route_labels.contains(*k))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (proxy.metadata.namespace.clone(), labels, scope.key())
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use discovery::file::FileStore;

    use super::*;

    const MESH: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 80}]
"#;

    const BY_SOURCE: &str = r#"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{sourceLabels: {tier: canary}}]
    route: [{destination: {host: reviews}}]
    headers: {request: {set: {x-canary: "1"}}}
  - route: [{destination: {host: reviews}}]
"#;

    fn context(text: &str) -> PushContext {
        PushContext::new(snapshot(1, text))
    }

    fn proxy(n: u8, labels: &[(&str, &str)]) -> Proxy {
        Proxy::client("shop", std::net::IpAddr::from([10, 0, 0, n]), labels)
    }

    fn route(context: &PushContext, proxy: &Proxy) -> Arc<Resource> {
        let resources = context.compile(proxy);
        resources
            .get(ResourceType::Route)
            .values()
            .next()
            .unwrap()
            .clone()
    }

    #[test]
    fn labels_no_route_reads_do_not_split_the_route_memo() {
        let context = context(MESH);
        let a = proxy(1, &[("app", "a"), ("tier", "canary")]);
        let b = proxy(2, &[("app", "b")]);
        assert!(Arc::ptr_eq(&route(&context, &a), &route(&context, &b)));
    }

    #[test]
    fn one_view_per_namespace_and_scope_feeds_every_part() {
        let context = context(&format!("{MESH}{BY_SOURCE}"));
        let (a, b) = (proxy(1, &[("tier", "canary")]), proxy(2, &[]));
        context.compile(&a);
        context.compile(&b);
        let scope = context.snapshot().scope_for(&a);
        let view = context.view("shop", &scope);
        assert!(Arc::ptr_eq(&view, &context.view("shop", &scope)));
        assert_eq!(
            context.views.len(),
            1,
            "two proxies, one namespace and scope"
        );
        let other = Proxy::client("bank", std::net::IpAddr::from([10, 0, 1, 1]), &[]);
        context.compile(&other);
        assert_eq!(context.views.len(), 2);
    }

    #[test]
    fn labels_a_source_match_reads_do() {
        let context = context(&format!("{MESH}{BY_SOURCE}"));
        let canary = proxy(1, &[("app", "a"), ("tier", "canary")]);
        let other_canary = proxy(2, &[("app", "b"), ("tier", "canary")]);
        let stable = proxy(3, &[("app", "a"), ("tier", "stable")]);
        assert!(Arc::ptr_eq(
            &route(&context, &canary),
            &route(&context, &other_canary)
        ));
        assert_ne!(route(&context, &canary), route(&context, &stable));
    }

    fn snapshot(generation: u64, text: &str) -> Arc<Snapshot> {
        let mut store = FileStore::default();
        store.apply(Path::new("mesh.yaml"), text);
        Arc::new(Snapshot::build(generation, &store.config()))
    }

    const RULE: &str = r#"
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
"#;

    const SIDECAR: &str = r#"
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress: [{hosts: ["./*"]}]
"#;

    #[test]
    fn a_change_of_routes_only_carries_the_shared_clusters_over() {
        let before = snapshot(1, MESH);
        let after = snapshot(2, &format!("{MESH}{BY_SOURCE}"));
        assert!(after.same_clusters(&before));
        let previous = PushContext::new(before);
        let client = proxy(1, &[("tier", "canary")]);
        let old = previous.compile(&client);
        let next = PushContext::with_clusters_of(&previous, after.clone());
        let new = next.compile_consistent(&client).expect("consistent");
        // The very clusters and endpoints of the previous context, and the
        // bytes a compile from scratch gives.
        for ty in [ResourceType::Cluster, ResourceType::Endpoint] {
            let shared = |set: &crate::resources::ResourceSet| -> Vec<*const Resource> {
                set.values().map(Arc::as_ptr).collect()
            };
            let (old, new) = (old.get(ty), new.get(ty));
            let reused = shared(old)
                .iter()
                .zip(shared(new))
                .filter(|(a, b)| std::ptr::eq(**a, *b))
                .count();
            assert!(reused > 0, "{ty:?}: shared resources carried over");
        }
        assert_eq!(new, super::super::compile(&after, &client));
        assert_ne!(
            new.get(ResourceType::Route),
            old.get(ResourceType::Route),
            "the routes are compiled again"
        );
        // No endpoint shortcut: the routes changed.
        assert!(next.endpoints_update(&client, &old, 1).is_none());
    }

    #[test]
    fn rules_services_and_sidecars_make_clusters_differ() {
        let base = snapshot(1, MESH);
        for (what, text) in [
            ("a DestinationRule", format!("{MESH}{RULE}")),
            ("a Sidecar", format!("{MESH}{SIDECAR}")),
            ("a service port", MESH.replace("port: 80", "port: 81")),
        ] {
            assert!(!snapshot(2, &text).same_clusters(&base), "{what}");
        }
        assert!(snapshot(2, MESH).same_clusters(&base), "nothing changed");
    }

    const RATINGS: &str = r#"
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: shop}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: ledger, namespace: bank}
spec:
  selector: {app: ledger}
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress: [{hosts: ["./*"]}]
"#;

    fn vs_to(host: &str) -> String {
        format!(
            r#"
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: shop}}
spec:
  hosts: [reviews]
  http:
  - route: [{{destination: {{host: {host}}}}}]
"#
        )
    }

    #[test]
    fn a_change_of_routes_only_recompiles_only_routes_where_the_scope_is_the_same() {
        let before = snapshot(1, &format!("{MESH}{RATINGS}{}", vs_to("reviews")));
        let previous = PushContext::new(before.clone());
        let client = proxy(1, &[]);
        let last = previous.compile_consistent(&client).expect("consistent");

        // Scoped (a Sidecar), the edit stays within what the scope admits.
        let after = snapshot(2, &format!("{MESH}{RATINGS}{}", vs_to("ratings")));
        assert!(after.same_apart_from_routes(&before));
        assert!(
            !after.same_clusters(&before),
            "with Sidecars, not for every scope"
        );
        let next = PushContext::after_route_change(&previous, after.clone());
        let updated = next
            .routes_update(&client, &last, 1)
            .expect("the scope admits the same");
        assert_eq!(updated, super::super::compile(&after, &client));
        assert_ne!(
            updated.get(ResourceType::Route),
            last.get(ResourceType::Route)
        );
        for ty in [
            ResourceType::Cluster,
            ResourceType::Endpoint,
            ResourceType::Listener,
        ] {
            assert!(updated.get(ty).same(last.get(ty)), "{ty:?} carried over");
        }
        // Not from a set of another generation.
        assert!(next.routes_update(&client, &last, 7).is_none());

        // A destination outside the Sidecar's hosts stays reachable through
        // the VirtualService: the scope widens, so compile in full.
        let widened = snapshot(3, &format!("{MESH}{RATINGS}{}", vs_to("ledger.bank")));
        assert!(widened.same_apart_from_routes(&before));
        let next = PushContext::after_route_change(&previous, widened);
        assert!(next.routes_update(&client, &last, 1).is_none());

        // A DestinationRule is not a route.
        let ruled = snapshot(4, &format!("{MESH}{RATINGS}{}{RULE}", vs_to("reviews")));
        assert!(!ruled.same_apart_from_routes(&before));
    }
}
