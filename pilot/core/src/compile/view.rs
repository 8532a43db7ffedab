//! The first step of translation: a snapshot resolved, for the proxies of
//! one namespace and Sidecar scope, into the small form the translators
//! read (envoy-gateway's intermediate representation).
//!
//! ```text
//!                 resolve, once per (namespace, scope)         translate
//! Snapshot ───────────────────────────────────────► ScopeView ─┬─► clusters, endpoints
//!   exportTo, Sidecar hosts and imports,              services ├─► routes (virtual hosts)
//!   DestinationRule and VirtualService precedence,    targets  └─► gRPC listeners and routes
//!   short host names
//! ```
//!
//! A [`ScopeView`] holds, per service the scope admits: its admitted ports,
//! the DestinationRule in force and the VirtualService in force (and, through
//! [`ServiceView::clusters`], the effective traffic policy of each port and
//! subset); and per destination some route names: the host it means, that
//! host's ports and its DestinationRule. Every precedence question is
//! answered here, once; the translators read the answers and never go back
//! to the snapshot's lookups.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use discovery::{Port, Registry, ServiceModel};
use policy::networking::{DestinationRule, VirtualService};

use super::cluster::{self, OutboundCluster};
use super::tls::MeshTls;
use crate::hosts;
use crate::snapshot::{SidecarScope, Snapshot, visible};

/// The mesh as the proxies of one namespace and Sidecar scope see it.
#[derive(Clone, Debug, Default)]
pub(crate) struct ScopeView {
    /// The namespace the view is seen from.
    namespace: String,
    /// Visible services the scope admits, by host (the registry's order).
    services: BTreeMap<String, ServiceView>,
    /// Where the destinations of the view's VirtualServices go, by the
    /// namespace of the VirtualService, then the host as written there.
    targets: HashMap<String, HashMap<String, Target>>,
}

/// One service as a [`ScopeView`] sees it.
#[derive(Clone, Debug)]
pub(crate) struct ServiceView {
    pub(crate) service: Arc<ServiceModel>,
    /// The ports the scope admits, by number.
    ports: BTreeSet<u16>,
    /// The DestinationRule in force for the service.
    pub(crate) rule: Option<Arc<DestinationRule>>,
    /// The VirtualService in force for the service, imported by the scope.
    pub(crate) virtual_service: Option<Arc<VirtualService>>,
    /// What mutual TLS toward the service's endpoints needs (shared by
    /// every service of the view).
    mesh: Arc<MeshTls>,
}

/// A host some route sends to (or mirrors to), resolved.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// The fully qualified host.
    pub(crate) host: String,
    /// The ports of the service of that host; empty when there is none.
    pub(crate) ports: Vec<u16>,
    /// The DestinationRule in force for the host.
    pub(crate) rule: Option<Arc<DestinationRule>>,
}

impl ScopeView {
    /// Resolves `snapshot` for proxies of `namespace` in `scope`.
    pub(crate) fn resolve(snapshot: &Snapshot, namespace: &str, scope: &SidecarScope) -> Self {
        let registry = &snapshot.registry;
        let mesh = Arc::new(MeshTls {
            security: Arc::clone(&snapshot.security),
            trust_domain: snapshot.mesh.trust_domain.clone(),
        });
        let mut services = BTreeMap::new();
        let mut admit = |service: &Arc<ServiceModel>| {
            if !visible(service, namespace) || !scope.admits(service) {
                return;
            }
            let host = &service.hostname;
            services.insert(
                host.clone(),
                ServiceView {
                    service: Arc::clone(service),
                    ports: service
                        .ports
                        .iter()
                        .map(|p| p.number)
                        .filter(|&p| scope.admits_port(service, p))
                        .collect(),
                    rule: snapshot.destination_rule(host, namespace).cloned(),
                    virtual_service: snapshot.virtual_service_in(host, namespace, scope).cloned(),
                    mesh: Arc::clone(&mesh),
                },
            );
        };
        match scope.sidecar() {
            // A Sidecar names its hosts: look only those up.
            Some(_) => scope
                .service_names()
                .into_iter()
                .filter_map(|host| registry.services.get(host))
                .for_each(&mut admit),
            None => registry.services.values().for_each(&mut admit),
        }
        let mut targets: HashMap<String, HashMap<String, Target>> = HashMap::new();
        for vs in services.values().filter_map(|s| s.virtual_service.as_ref()) {
            let vs_namespace = &vs.meta.namespace;
            let targets = targets.entry(vs_namespace.clone()).or_default();
            for http in &vs.spec.http {
                let hosts = http
                    .route
                    .iter()
                    .map(|r| &r.destination.host)
                    .chain(http.mirror.as_ref().map(|m| &m.host));
                for written in hosts {
                    if !targets.contains_key(written) {
                        let target = Target::resolve(snapshot, namespace, vs_namespace, written);
                        targets.insert(written.clone(), target);
                    }
                }
            }
        }
        ScopeView {
            namespace: namespace.to_string(),
            services,
            targets,
        }
    }

    /// This view after a change of endpoints only: the services of `hosts`
    /// take their new endpoints from `registry`; precedence, scope and
    /// routes are as they were (an endpoint-only change touches none).
    pub(crate) fn with_endpoints_of(&self, registry: &Registry, hosts: &BTreeSet<String>) -> Self {
        let mut view = self.clone();
        for host in hosts {
            let Some(service) = view.services.get_mut(host) else {
                continue;
            };
            match registry.services.get(host) {
                Some(new) => service.service = Arc::clone(new),
                None => {
                    view.services.remove(host);
                }
            }
        }
        view
    }

    /// The namespace the view is seen from.
    pub(crate) fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The admitted services, by host.
    pub(crate) fn services(&self) -> impl Iterator<Item = &ServiceView> {
        self.services.values()
    }

    /// The admitted service of `host`, if any.
    pub(crate) fn service(&self, host: &str) -> Option<&ServiceView> {
        self.services.get(host)
    }

    /// Where `host`, as written in a VirtualService of `namespace`, goes.
    /// Every destination of the view's VirtualServices is resolved when the
    /// view is built; `None` for any other host.
    pub(crate) fn target(&self, namespace: &str, host: &str) -> Option<&Target> {
        self.targets.get(namespace)?.get(host)
    }
}

impl ServiceView {
    /// The admitted ports, in the service's order.
    pub(crate) fn ports(&self) -> impl Iterator<Item = &Port> {
        self.service
            .ports
            .iter()
            .filter(|p| self.ports.contains(&p.number))
    }

    /// The outbound clusters of the admitted ports: per port, then per
    /// subset of the DestinationRule in force, with the effective policy.
    pub(crate) fn clusters(&self) -> impl Iterator<Item = OutboundCluster<'_>> {
        cluster::outbound_clusters(&self.service, self.rule.as_deref())
            .into_iter()
            .filter(|c| self.ports.contains(&c.port.number))
            .map(|c| OutboundCluster {
                mesh: Some(&self.mesh),
                ..c
            })
    }
}

impl Target {
    fn resolve(snapshot: &Snapshot, namespace: &str, vs_namespace: &str, written: &str) -> Self {
        let host = hosts::resolve(&snapshot.registry, written, vs_namespace);
        let ports = snapshot
            .registry
            .services
            .get(&host)
            .map(|s| s.ports.iter().map(|p| p.number).collect())
            .unwrap_or_default();
        let rule = snapshot.destination_rule(&host, namespace).cloned();
        Target { host, ports, rule }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use discovery::file::FileStore;

    use super::*;
    use crate::proxy::Proxy;

    const MESH: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 80}, {name: http-admin, port: 9000}]
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
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  trafficPolicy: {loadBalancer: {simple: RANDOM}}
  subsets: [{name: v1, labels: {version: v1}}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews-for-bank, namespace: bank}
spec:
  host: reviews.shop.svc.cluster.local
  trafficPolicy: {loadBalancer: {simple: ROUND_ROBIN}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ledger, namespace: bank}
spec:
  host: ledger
  trafficPolicy:
    loadBalancer: {consistentHash: {httpHeaderName: x-user}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - mirror: {host: ratings}
    route: [{destination: {host: ledger.bank}}]
"#;

    const SIDECAR: &str = r#"
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: bank}
spec:
  egress: [{hosts: ["./*"]}]
"#;

    fn snapshot(text: &str) -> Snapshot {
        let mut store = FileStore::default();
        store.apply(Path::new("mesh.yaml"), text);
        let config = store.config();
        assert!(config.diagnostics.is_empty(), "{:?}", config.diagnostics);
        Snapshot::build(1, &config)
    }

    fn view(snapshot: &Snapshot, namespace: &str) -> ScopeView {
        let proxy = Proxy::client(namespace, std::net::IpAddr::from([10, 0, 0, 1]), &[]);
        ScopeView::resolve(snapshot, namespace, &snapshot.scope_for(&proxy))
    }

    fn rule_name(rule: &Option<Arc<DestinationRule>>) -> Option<String> {
        rule.as_ref()
            .map(|r| format!("{}/{}", r.meta.namespace, r.meta.name))
    }

    const REVIEWS: &str = "reviews.shop.svc.cluster.local";

    #[test]
    fn each_namespace_gets_the_rule_its_precedence_picks() {
        let snapshot = snapshot(MESH);
        let shop = view(&snapshot, "shop");
        let bank = view(&snapshot, "bank");
        let reviews = |v: &ScopeView| rule_name(&v.service(REVIEWS).expect("admitted").rule);
        assert_eq!(reviews(&shop).as_deref(), Some("shop/reviews"));
        assert_eq!(reviews(&bank).as_deref(), Some("bank/reviews-for-bank"));
        // The effective policy of each port and subset comes with it.
        let names: Vec<String> = shop
            .service(REVIEWS)
            .expect("admitted")
            .clusters()
            .map(|c| c.name)
            .collect();
        assert_eq!(
            names,
            [
                "outbound|80||reviews.shop.svc.cluster.local",
                "outbound|80|v1|reviews.shop.svc.cluster.local",
                "outbound|9000||reviews.shop.svc.cluster.local",
                "outbound|9000|v1|reviews.shop.svc.cluster.local",
            ]
        );
    }

    #[test]
    fn destinations_are_resolved_from_the_virtual_service_s_namespace() {
        let snapshot = snapshot(MESH);
        let shop = view(&snapshot, "shop");
        let vs = shop
            .service(REVIEWS)
            .and_then(|s| s.virtual_service.as_ref())
            .expect("the VirtualService in force");
        assert_eq!(vs.meta.name, "reviews");
        let ledger = shop.target("shop", "ledger.bank").expect("resolved");
        assert_eq!(ledger.host, "ledger.bank.svc.cluster.local");
        assert_eq!(ledger.ports, [80]);
        assert_eq!(rule_name(&ledger.rule).as_deref(), Some("bank/ledger"));
        let mirror = shop.target("shop", "ratings").expect("resolved");
        assert_eq!(mirror.host, "ratings.shop.svc.cluster.local");
    }

    #[test]
    fn a_sidecar_s_view_holds_only_what_it_admits() {
        let snapshot = snapshot(&format!("{MESH}{SIDECAR}"));
        let hosts = |v: &ScopeView| -> Vec<String> {
            v.services().map(|s| s.service.hostname.clone()).collect()
        };
        assert_eq!(
            hosts(&view(&snapshot, "bank")),
            ["ledger.bank.svc.cluster.local"]
        );
        // Without a Sidecar, every visible service.
        assert_eq!(hosts(&view(&snapshot, "shop")).len(), 3);
    }

    #[test]
    fn an_endpoint_change_keeps_everything_but_the_changed_services() {
        let before = snapshot(MESH);
        let after = snapshot(&format!(
            "{MESH}---\napiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: reviews-1, namespace: shop}}\nspec: {{address: 10.0.0.7, labels: {{app: reviews}}}}\n"
        ));
        let old = view(&before, "shop");
        let new = old.with_endpoints_of(&after.registry, &[REVIEWS.to_string()].into());
        let (a, b) = (old.service(REVIEWS).unwrap(), new.service(REVIEWS).unwrap());
        assert!(Arc::ptr_eq(&b.service, &after.registry.services[REVIEWS]));
        assert!(!Arc::ptr_eq(&a.service, &b.service));
        assert!(Arc::ptr_eq(
            a.rule.as_ref().unwrap(),
            b.rule.as_ref().unwrap()
        ));
        let ratings = "ratings.shop.svc.cluster.local";
        assert!(Arc::ptr_eq(
            &old.service(ratings).unwrap().service,
            &new.service(ratings).unwrap().service
        ));
    }
}
