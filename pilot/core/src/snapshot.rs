//! One immutable view of the mesh, built once per change and shared by every proxy.
//!
//! `Snapshot::build` resolves everything the compiler would otherwise look up
//! per proxy: the registry, the VirtualServices and DestinationRules of each
//! host in precedence order, and the cross-object findings (in the manner of
//! `istioctl analyze`) that the admin API and `bowline validate` report.
//!
//! Which policy governs a service for a given proxy follows Istio: only
//! objects exported to the proxy's namespace count (`exportTo`: `*` by
//! default, `.` for the object's own namespace, `~` for none, or namespace
//! names). A host may be a wildcard (`*.prod.svc.cluster.local`; for a
//! DestinationRule also `*`), which applies to every service it matches.
//!
//! - VirtualServices: the most specific host wins (the exact name, then the
//!   longest wildcard); among objects with that same host, the one in the
//!   proxy's namespace, then the first by namespace and name.
//! - DestinationRules: one in the proxy's namespace, then one in the
//!   service's namespace, then any; within each of these, the most specific
//!   host, then the first by namespace and name.
//!
//! Istio breaks the remaining ties by creation time, which files do not have.
//!
//! Sidecar resources narrow what a proxy sees; [`Snapshot::scope_for`] gives
//! a proxy its precomputed [`SidecarScope`] (see `scope`).
//!
//! The security policies are indexed in [`Security`], which answers which
//! PeerAuthentication and AuthorizationPolicies apply to a workload.
//!
//! After a change, [`Snapshot::build_after`] builds the next snapshot from
//! the previous one and the keys that changed, rebuilding only the parts
//! they touch (see `incremental`); the result is the same as a full build.

mod candidates;
mod changes;
mod incremental;
mod scope;
mod security;
pub mod telemetry;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use discovery::Registry;
use discovery::file::ConfigSet;
use discovery::model::ServiceModel;
use policy::mesh::MeshConfig;
use policy::networking::{DestinationRule, Sidecar, VirtualService, WorkloadEntry};
use policy::security::{AuthorizationPolicy, KeySource, PeerAuthentication, RequestAuthentication};
use policy::{Diagnostic, FieldPath, Object};

pub use candidates::{Candidate, Candidates, HostPolicy};
#[cfg(any(test, feature = "testing"))]
pub use changes::test_mesh;
pub use changes::{ChangeSet, EndpointChanges, PushReason};
pub(crate) use scope::ScopeKey;
pub use scope::SidecarScope;
pub use security::{EffectivePeerAuthentication, Security};

use crate::hosts;
use crate::proxy::Proxy;

/// The mesh at one moment. Never mutated after `build`; proxies hold it by `Arc`.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Increases by one per build; for logs, never compared for content.
    pub generation: u64,
    pub registry: Registry,
    /// The VirtualServices that may route each service (by FQDN), those
    /// selecting it by wildcard included, most specific host first, then by
    /// namespace and name. Shared with the next snapshot when no
    /// VirtualService changed.
    pub virtual_services: Arc<Candidates<VirtualService>>,
    /// The DestinationRules that may apply to each service, in the same order.
    pub destination_rules: Arc<Candidates<DestinationRule>>,
    /// Every WorkloadEntry, selected by a service or not, sorted by namespace and name.
    pub workload_entries: Vec<Arc<WorkloadEntry>>,
    /// Problems found in the config this snapshot was built from.
    pub diagnostics: Vec<Diagnostic>,
    /// The mesh-wide settings the snapshot was built with.
    pub mesh: MeshConfig,
    /// The Sidecar resources, resolved into scopes.
    sidecars: Arc<scope::Sidecars>,
    /// PeerAuthentications, AuthorizationPolicies and RequestAuthentications.
    pub security: Arc<Security>,
    /// Telemetry resources, resolved per workload.
    pub telemetry: Arc<telemetry::Telemetries>,
    /// The CA's roots (PEM, one or more certificates), which sidecars get
    /// as the SDS secret `ROOTCA` over ADS; `None` while no CA runs. Not
    /// read from the config: the control plane sets it (see
    /// [`Snapshot::with_trust_bundle`]), and a build after a previous
    /// snapshot keeps that one's.
    pub trust_bundle: Option<Arc<str>>,
    /// The key sets the control plane fetched for RequestAuthentications
    /// without inline `jwks` (from their `jwksUri`, or the issuer's
    /// discovery document), inlined into the JWT filter as istiod does, so
    /// sidecars need no route to the issuer. Set like the trust bundle
    /// ([`Snapshot::with_jwks`]) and kept by a build after a previous one.
    pub jwks: Arc<BTreeMap<KeySource, Arc<str>>>,
    /// Where each object in force was read: file and document (file mode),
    /// for findings made after the build (a JWT key fetch that fails).
    pub origins: Arc<BTreeMap<policy::ObjectKey, (String, usize)>>,
    /// What the build found, part by part, for the next build to reuse.
    parts: Parts,
}

/// The inputs and findings of one build, kept by part so that the next
/// build can take those a change did not touch.
#[derive(Debug, Default)]
struct Parts {
    /// The Services in force, sorted by namespace and name: an incremental
    /// build tells a change of their supplied endpoints from one of their
    /// definition by them.
    services: Vec<Arc<policy::service::Service>>,
    /// The objects of each policy kind, sorted by namespace and name.
    virtual_services: Vec<Arc<VirtualService>>,
    destination_rules: Vec<Arc<DestinationRule>>,
    sidecars: Vec<Arc<Sidecar>>,
    peer_authentications: Vec<Arc<PeerAuthentication>>,
    authorization_policies: Vec<Arc<AuthorizationPolicy>>,
    request_authentications: Vec<Arc<RequestAuthentication>>,
    telemetries: Vec<Arc<policy::telemetry::Telemetry>>,
    /// Every namespace some object is in: root-namespace scopes are
    /// precomputed for each.
    namespaces: BTreeSet<String>,
    /// Findings of each step, before they name their files.
    registry_diagnostics: Vec<Diagnostic>,
    sidecar_diagnostics: Vec<Diagnostic>,
    security_diagnostics: Vec<Diagnostic>,
    telemetry_diagnostics: Vec<Diagnostic>,
    overlap_diagnostics: Vec<Diagnostic>,
    virtual_service_diagnostics: Vec<Diagnostic>,
    destination_rule_diagnostics: Vec<Diagnostic>,
    check_diagnostics: Vec<Diagnostic>,
}

/// Which parts of `previous` a build takes as they are; the rest it builds.
#[derive(Clone, Copy, Debug, Default)]
struct Reuse<'a> {
    previous: Option<&'a Snapshot>,
    /// The scopes (not the overlap warnings, which read the workloads).
    sidecars: bool,
    virtual_services: bool,
    destination_rules: bool,
    /// Precedence conflicts and route checks.
    checks: bool,
}

impl Snapshot {
    /// Builds the snapshot of a config set: the registry, the policy of each
    /// host, and every finding about how the objects fit together.
    /// The same snapshot with `jwks` as the fetched key sets.
    pub fn with_jwks(mut self, jwks: Arc<BTreeMap<KeySource, Arc<str>>>) -> Snapshot {
        self.jwks = jwks;
        self
    }

    /// The same snapshot with `bundle` as its trust bundle.
    pub fn with_trust_bundle(mut self, bundle: Option<Arc<str>>) -> Snapshot {
        self.trust_bundle = bundle;
        self
    }

    pub fn build(generation: u64, config: &ConfigSet) -> Snapshot {
        Snapshot::build_with_mesh(generation, config, &MeshConfig::default())
    }

    /// Like [`Snapshot::build`], with the mesh-wide settings of `mesh`.
    pub fn build_with_mesh(generation: u64, config: &ConfigSet, mesh: &MeshConfig) -> Snapshot {
        let objects = config.objects.iter().map(|o| o.as_ref());
        let (registry, registry_diagnostics) =
            Registry::build_with(objects.clone(), &config.endpoints);
        let mut parts = Parts {
            registry_diagnostics,
            ..Parts::default()
        };
        let mut workload_entries = Vec::new();
        // Objects arrive sorted by key, so every list is in namespace/name order.
        for object in objects {
            if !parts.namespaces.contains(&object.meta().namespace) {
                parts.namespaces.insert(object.meta().namespace.clone());
            }
            match object {
                Object::VirtualService(vs) => parts.virtual_services.push(Arc::new(vs.clone())),
                Object::DestinationRule(dr) => parts.destination_rules.push(Arc::new(dr.clone())),
                Object::WorkloadEntry(we) => workload_entries.push(Arc::new(we.clone())),
                Object::Sidecar(sc) => parts.sidecars.push(Arc::new(sc.clone())),
                Object::PeerAuthentication(pa) => {
                    parts.peer_authentications.push(Arc::new(pa.clone()))
                }
                Object::AuthorizationPolicy(ap) => {
                    parts.authorization_policies.push(Arc::new(ap.clone()))
                }
                Object::RequestAuthentication(ra) => {
                    parts.request_authentications.push(Arc::new(ra.clone()))
                }
                Object::Service(svc) => parts.services.push(Arc::new(svc.clone())),
                Object::Telemetry(t) => parts.telemetries.push(Arc::new(t.clone())),
                Object::ServiceEntry(_) => {}
            }
        }
        Snapshot::finish(
            generation,
            config,
            mesh,
            registry,
            workload_entries,
            parts,
            Reuse::default(),
        )
    }

    /// Builds what `reuse` does not take from the previous snapshot, then
    /// gathers every finding, each naming the file its object was read from.
    fn finish(
        generation: u64,
        config: &ConfigSet,
        mesh: &MeshConfig,
        registry: Registry,
        workload_entries: Vec<Arc<WorkloadEntry>>,
        mut parts: Parts,
        reuse: Reuse<'_>,
    ) -> Snapshot {
        let previous = reuse.previous;
        let sidecars = match previous.filter(|_| reuse.sidecars) {
            Some(p) => {
                parts.sidecar_diagnostics = p.parts.sidecar_diagnostics.clone();
                p.sidecars.clone()
            }
            None => Arc::new(scope::Sidecars::build(
                &registry,
                &parts.sidecars,
                &parts.virtual_services,
                &mesh.root_namespace,
                &parts.namespaces,
                &mut parts.sidecar_diagnostics,
            )),
        };
        sidecars.report_overlaps(&workload_entries, &mut parts.overlap_diagnostics);
        let security = Arc::new(Security::build(
            &mesh.root_namespace,
            parts.peer_authentications.clone(),
            parts.authorization_policies.clone(),
            parts.request_authentications.clone(),
            &workload_entries,
            &mut parts.security_diagnostics,
        ));
        let telemetry = Arc::new(telemetry::Telemetries::build(
            mesh,
            parts.telemetries.clone(),
            &mut parts.telemetry_diagnostics,
        ));
        let virtual_services = match previous.filter(|_| reuse.virtual_services) {
            Some(p) => {
                parts.virtual_service_diagnostics = p.parts.virtual_service_diagnostics.clone();
                p.virtual_services.clone()
            }
            None => Arc::new(candidates::index(
                &registry,
                &parts.virtual_services,
                &mut parts.virtual_service_diagnostics,
            )),
        };
        let destination_rules = match previous.filter(|_| reuse.destination_rules) {
            Some(p) => {
                parts.destination_rule_diagnostics = p.parts.destination_rule_diagnostics.clone();
                p.destination_rules.clone()
            }
            None => Arc::new(candidates::index(
                &registry,
                &parts.destination_rules,
                &mut parts.destination_rule_diagnostics,
            )),
        };

        let mut snapshot = Snapshot {
            generation,
            registry,
            virtual_services,
            destination_rules,
            workload_entries,
            diagnostics: Vec::new(),
            mesh: mesh.clone(),
            sidecars,
            security,
            telemetry,
            trust_bundle: previous.and_then(|p| p.trust_bundle.clone()),
            jwks: previous.map(|p| p.jwks.clone()).unwrap_or_default(),
            origins: config.origins.clone(),
            parts: Parts::default(),
        };
        match previous.filter(|_| reuse.checks) {
            Some(p) => parts.check_diagnostics = p.parts.check_diagnostics.clone(),
            None => {
                snapshot.report_conflicts(&mut parts.check_diagnostics);
                snapshot.check_routes(&mut parts.check_diagnostics);
            }
        }

        let mut diagnostics = config.diagnostics.clone();
        for found in [
            &parts.registry_diagnostics,
            &parts.sidecar_diagnostics,
            &parts.security_diagnostics,
            &parts.telemetry_diagnostics,
            &parts.overlap_diagnostics,
            &parts.virtual_service_diagnostics,
            &parts.destination_rule_diagnostics,
            &parts.check_diagnostics,
        ] {
            diagnostics.extend(found.iter().cloned());
        }
        // Findings about how objects fit together name where each object was read.
        for d in diagnostics.iter_mut().filter(|d| d.file.is_empty()) {
            if let Some((file, document)) = d.object.as_ref().and_then(|k| config.origins.get(k)) {
                d.file = file.clone();
                d.document = Some(*document);
            }
        }
        diagnostics.sort();
        diagnostics.dedup();
        snapshot.diagnostics = diagnostics;
        snapshot.parts = parts;
        snapshot
    }

    /// Whether the two snapshots differ at most in their VirtualServices:
    /// the services and their endpoints, the DestinationRules, the Sidecars,
    /// the security policies, the Telemetry and the mesh settings are the same. A proxy whose scope admits the
    /// same in both ([`SidecarScope::same_admission`]) then has the same
    /// listeners, clusters and endpoints in both, and only its routes may
    /// differ: a VirtualService never changes a listener (outbound traffic
    /// goes through one listener and its route configuration, inbound
    /// routes go straight to the application) or a cluster (subsets and
    /// policies are the DestinationRule's).
    pub fn same_apart_from_routes(&self, other: &Snapshot) -> bool {
        fn same_rules(a: &Candidates<DestinationRule>, b: &Candidates<DestinationRule>) -> bool {
            a.len() == b.len()
                && a.iter().zip(b).all(|((ha, ca), (hb, cb))| {
                    ha == hb
                        && ca.len() == cb.len()
                        && ca.iter().zip(cb).all(|(x, y)| {
                            x.host == y.host
                                && x.index == y.index
                                && (Arc::ptr_eq(&x.object, &y.object) || x.object == y.object)
                        })
                })
        }
        self.mesh == other.mesh
            && self.sidecars.same_sources(&other.sidecars)
            && (Arc::ptr_eq(&self.security, &other.security) || self.security == other.security)
            && (Arc::ptr_eq(&self.telemetry, &other.telemetry) || self.telemetry == other.telemetry)
            && same_rules(&self.destination_rules, &other.destination_rules)
            && self.registry == other.registry
    }

    /// Whether every proxy's shared clusters and endpoints are the same in
    /// both snapshots: [`Snapshot::same_apart_from_routes`] without
    /// Sidecars, whose scopes a VirtualService can widen (its destinations
    /// stay reachable), so with Sidecars this says no.
    pub fn same_clusters(&self, other: &Snapshot) -> bool {
        self.sidecars.is_empty() && other.sidecars.is_empty() && self.same_apart_from_routes(other)
    }

    /// What `proxy` sees of the mesh: the scope of the Sidecar that applies
    /// to it (Istio's order: one in its namespace selecting its labels, its
    /// namespace's default, the root namespace's default), else all of it.
    pub fn scope_for(&self, proxy: &Proxy) -> Arc<SidecarScope> {
        self.sidecars.scope_for(
            &self.registry,
            &proxy.metadata.namespace,
            &proxy.metadata.labels,
        )
    }

    /// The VirtualService that routes the service `host` for proxies in `namespace`.
    pub fn virtual_service(&self, host: &str, namespace: &str) -> Option<&Arc<VirtualService>> {
        self.virtual_service_candidate(host, namespace, None)
            .map(|c| &c.object)
    }

    /// Like [`Snapshot::virtual_service`], among the VirtualServices `scope` imports.
    pub fn virtual_service_in(
        &self,
        host: &str,
        namespace: &str,
        scope: &SidecarScope,
    ) -> Option<&Arc<VirtualService>> {
        self.virtual_service_candidate(host, namespace, Some(scope))
            .map(|c| &c.object)
    }

    fn virtual_service_candidate(
        &self,
        host: &str,
        namespace: &str,
        scope: Option<&SidecarScope>,
    ) -> Option<&Candidate<VirtualService>> {
        let candidates = self.virtual_services.get(host)?;
        let visible = |c: &&Candidate<VirtualService>| {
            visible_from(c, namespace) && scope.is_none_or(|s| s.imports(&c.object))
        };
        let best = candidates.iter().find(visible)?;
        let found = candidates
            .iter()
            .filter(visible)
            .take_while(|c| c.host == best.host)
            .find(|c| c.object.meta.namespace == namespace);
        Some(found.unwrap_or(best))
    }

    /// The DestinationRule that applies to the service `host` for proxies in `namespace`.
    pub fn destination_rule(&self, host: &str, namespace: &str) -> Option<&Arc<DestinationRule>> {
        self.destination_rule_candidate(host, namespace)
            .map(|c| &c.object)
    }

    fn destination_rule_candidate(
        &self,
        host: &str,
        namespace: &str,
    ) -> Option<&Candidate<DestinationRule>> {
        let candidates = self.destination_rules.get(host)?;
        let service_namespace = self
            .registry
            .services
            .get(host)
            .map(|s| s.namespace.as_str());
        // Istio's three tiers: the proxy's namespace, the service's, then
        // the root namespace (mesh-wide defaults). A rule in any other
        // namespace does not apply, whatever its `exportTo`. The list is most
        // specific first, so the first of each tier is the most specific
        // host within it.
        let root = self.mesh.root_namespace.as_str();
        let (mut in_service_namespace, mut in_root) = (None, None);
        for c in candidates.iter().filter(|c| visible_from(c, namespace)) {
            let owner = c.object.meta.namespace.as_str();
            if owner == namespace {
                return Some(c);
            }
            if in_service_namespace.is_none() && Some(owner) == service_namespace {
                in_service_namespace = Some(c);
            }
            if in_root.is_none() && owner == root {
                in_root = Some(c);
            }
        }
        in_service_namespace.or(in_root)
    }

    /// The namespaces some object of the snapshot mentions, plus `namespace`:
    /// the places from which a host's precedence can differ.
    fn namespaces(&self) -> BTreeSet<String> {
        let mut namespaces = BTreeSet::new();
        let services = self.registry.services.values().map(|s| &s.namespace);
        let workloads = self.workload_entries.iter().map(|we| &we.meta.namespace);
        for ns in services.chain(workloads) {
            if !namespaces.contains(ns) {
                namespaces.insert(ns.clone());
            }
        }
        namespaces
    }

    /// Warns about each VirtualService or DestinationRule that some namespace
    /// sees for a service but that loses it to another one by precedence: to
    /// an object with the same host, or (DestinationRules) to a less specific
    /// one of a namespace that ranks higher. Losing to a more specific host is
    /// how wildcards are meant to work and is not reported. Each host of an
    /// object is reported once, for the first service where it loses.
    fn report_conflicts(&self, diagnostics: &mut Vec<Diagnostic>) {
        let namespaces = self.namespaces();
        report_losers(
            &self.virtual_services,
            &namespaces,
            |host, ns| self.virtual_service_candidate(host, ns, None),
            "is also routed by",
            diagnostics,
        );
        report_losers(
            &self.destination_rules,
            &namespaces,
            |host, ns| self.destination_rule_candidate(host, ns),
            "also has",
            diagnostics,
        );
    }

    /// Warns about routes that will answer 503: destinations that name no
    /// service, a port the service lacks, or a subset no DestinationRule
    /// visible from the VirtualService's namespace defines.
    fn check_routes(&self, diagnostics: &mut Vec<Diagnostic>) {
        let mut seen = HashSet::new();
        for candidate in self.virtual_services.values().flatten() {
            let vs = &candidate.object;
            if !seen.insert(Arc::as_ptr(vs)) {
                continue;
            }
            let key = vs.key();
            for (i, http) in vs.spec.http.iter().enumerate() {
                let http_path = FieldPath::new("spec.http").index(i);
                let destinations = http
                    .route
                    .iter()
                    .enumerate()
                    .map(|(j, r)| {
                        (
                            http_path.field("route").index(j).field("destination"),
                            &r.destination,
                        )
                    })
                    .chain(http.mirror.iter().map(|m| (http_path.field("mirror"), m)));
                for (path, dest) in destinations {
                    let fqdn = hosts::resolve(&self.registry, &dest.host, &vs.meta.namespace);
                    let Some(service) = self.registry.services.get(&fqdn) else {
                        diagnostics.push(
                            Diagnostic::warning(
                                path.field("host"),
                                format!(
                                    "host {fqdn:?} matches no service; requests routed here get 503"
                                ),
                            )
                            .on(key.clone()),
                        );
                        continue;
                    };
                    if let Some(port) = dest.port
                        && !service.ports.iter().any(|p| p.number == port)
                    {
                        diagnostics.push(
                            Diagnostic::warning(
                                path.field("port").field("number"),
                                format!("service {fqdn:?} has no port {port}"),
                            )
                            .on(key.clone()),
                        );
                    }
                    if let Some(subset) = &dest.subset {
                        let defined = self
                            .destination_rule(&fqdn, &vs.meta.namespace)
                            .is_some_and(|dr| dr.spec.subsets.iter().any(|s| &s.name == subset));
                        if !defined {
                            diagnostics.push(
                                Diagnostic::warning(
                                    path.field("subset"),
                                    format!(
                                        "subset {subset:?} of host {fqdn:?} is defined by no DestinationRule; requests routed here get 503"
                                    ),
                                )
                                .on(key.clone()),
                            );
                        }
                    }
                }
            }
        }
    }
}

/// Whether an object of `own` namespace with this `exportTo` is visible from `namespace`.
/// Whether proxies in `namespace` see `service` (a ServiceEntry's `exportTo`).
pub fn visible(service: &ServiceModel, namespace: &str) -> bool {
    exported_to(&service.export_to, &service.namespace, namespace)
}

pub fn exported_to(export_to: &[String], own: &str, namespace: &str) -> bool {
    export_to.is_empty()
        || export_to.iter().any(|e| match e.as_str() {
            "*" => true,
            "." => own == namespace,
            "~" => false,
            ns => ns == namespace,
        })
}

fn visible_from<T: HostPolicy>(candidate: &Candidate<T>, namespace: &str) -> bool {
    let object = candidate.object.as_ref();
    exported_to(object.export_to(), object.namespace(), namespace)
}

/// See [`Snapshot::report_conflicts`]; `winner` is the lookup for one kind.
fn report_losers<'a, T: HostPolicy + 'a>(
    candidates: &'a Candidates<T>,
    namespaces: &BTreeSet<String>,
    winner: impl Fn(&str, &str) -> Option<&'a Candidate<T>>,
    verb: &str,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let kind = T::KIND;
    let mut reported = HashSet::new();
    for (service, list) in candidates.iter().filter(|(_, l)| l.len() > 1) {
        // One lookup per namespace, not one per candidate and namespace.
        let winners: Vec<(&String, &Candidate<T>)> = namespaces
            .iter()
            .filter_map(|ns| Some((ns, winner(service, ns)?)))
            .collect();
        for c in list {
            if reported.contains(&(Arc::as_ptr(&c.object), c.index)) {
                continue;
            }
            let losing_to = winners.iter().copied().find(|&(ns, w)| {
                visible_from(c, ns)
                    && !Arc::ptr_eq(&w.object, &c.object)
                    && w.specificity() <= c.specificity()
            });
            let Some((ns, w)) = losing_to else {
                continue;
            };
            reported.insert((Arc::as_ptr(&c.object), c.index));
            let winner_key = w.object.key();
            let message = if w.host == c.host {
                format!(
                    "host {:?} {verb} {kind} {}/{}, which wins for namespace {ns}; this one is ignored there",
                    c.host, winner_key.namespace, winner_key.name
                )
            } else {
                format!(
                    "host {:?} {verb} {kind} {}/{} (host {:?}), which wins for service {service:?} in namespace {ns}; this one is ignored there",
                    c.host, winner_key.namespace, winner_key.name, w.host
                )
            };
            diagnostics
                .push(Diagnostic::warning(c.object.host_path(c.index), message).on(c.object.key()));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use discovery::file::FileStore;

    use super::*;

    /// Services `a` and `b` in `prod` and `c` in `dev`, plus `extra`.
    fn snapshot(extra: &str) -> Snapshot {
        let mut text = String::new();
        for (name, ns) in [("a", "prod"), ("b", "prod"), ("c", "dev")] {
            text.push_str(&format!(
                "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  ports:\n  - {{name: http, port: 80}}\n---\n"
            ));
        }
        text.push_str(extra);
        let mut store = FileStore::default();
        store.apply(Path::new("mesh.yaml"), &text);
        Snapshot::build(1, &store.config())
    }

    fn vs(namespace: &str, name: &str, hosts: &str) -> String {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  hosts: {hosts}\n  http:\n  - route:\n    - destination: {{host: a.prod.svc.cluster.local}}\n"
        )
    }

    fn dr(namespace: &str, name: &str, host: &str) -> String {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  host: '{host}'\n"
        )
    }

    const A: &str = "a.prod.svc.cluster.local";
    const B: &str = "b.prod.svc.cluster.local";
    const C: &str = "c.dev.svc.cluster.local";

    fn vs_name(s: &Snapshot, host: &str, ns: &str) -> Option<String> {
        s.virtual_service(host, ns)
            .map(|v| format!("{}/{}", v.meta.namespace, v.meta.name))
    }

    fn dr_name(s: &Snapshot, host: &str, ns: &str) -> Option<String> {
        s.destination_rule(host, ns)
            .map(|d| format!("{}/{}", d.meta.namespace, d.meta.name))
    }

    fn warnings(s: &Snapshot) -> Vec<String> {
        s.diagnostics.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn a_wildcard_virtual_service_routes_every_service_it_matches() {
        let s = snapshot(&vs("prod", "wild", "['*.prod.svc.cluster.local']"));
        assert_eq!(vs_name(&s, A, "dev").as_deref(), Some("prod/wild"));
        assert_eq!(vs_name(&s, B, "prod").as_deref(), Some("prod/wild"));
        assert_eq!(vs_name(&s, C, "dev"), None);
    }

    #[test]
    fn an_exact_virtual_service_beats_a_wildcard_even_from_the_proxy_namespace() {
        let config = vs("prod", "wild", "['*.prod.svc.cluster.local']")
            + &vs("dev", "dev-wild", "['*.svc.cluster.local']")
            + &vs("other", "exact-a", "[a.prod.svc.cluster.local]");
        let s = snapshot(&config);
        // Exact beats both wildcards, wherever the proxy is.
        assert_eq!(vs_name(&s, A, "dev").as_deref(), Some("other/exact-a"));
        assert_eq!(vs_name(&s, A, "prod").as_deref(), Some("other/exact-a"));
        // The longest wildcard wins, even over one in the proxy's namespace.
        assert_eq!(vs_name(&s, B, "dev").as_deref(), Some("prod/wild"));
        assert_eq!(vs_name(&s, C, "prod").as_deref(), Some("dev/dev-wild"));
        // Layering by specificity is not a conflict.
        assert!(
            !warnings(&s).iter().any(|w| w.contains("ignored there")),
            "{:?}",
            warnings(&s)
        );
    }

    #[test]
    fn among_equal_wildcards_the_proxy_namespace_then_name_order_wins() {
        let config = vs("dev", "x", "['*.prod.svc.cluster.local']")
            + &vs("prod", "y", "['*.prod.svc.cluster.local']");
        let s = snapshot(&config);
        assert_eq!(vs_name(&s, A, "prod").as_deref(), Some("prod/y"));
        assert_eq!(vs_name(&s, A, "dev").as_deref(), Some("dev/x"));
        assert_eq!(vs_name(&s, A, "elsewhere").as_deref(), Some("dev/x"));
        // Each loser is reported once, not once per matching service.
        let w = warnings(&s);
        let lost: Vec<&String> = w.iter().filter(|w| w.contains("ignored there")).collect();
        assert_eq!(lost.len(), 2, "{w:?}");
        assert!(lost[0].contains("VirtualService dev/x: spec.hosts[0]: host \"*.prod.svc.cluster.local\" is also routed by VirtualService prod/y, which wins for namespace prod"), "{lost:?}");
    }

    #[test]
    fn a_wildcard_loses_where_it_is_not_exported() {
        let config = vs("prod", "wild", "['*.prod.svc.cluster.local']")
            .replace("  hosts:", "  exportTo: ['.']\n  hosts:")
            + &vs("dev", "broad", "['*.svc.cluster.local']");
        let s = snapshot(&config);
        assert_eq!(vs_name(&s, A, "prod").as_deref(), Some("prod/wild"));
        assert_eq!(vs_name(&s, A, "dev").as_deref(), Some("dev/broad"));
    }

    #[test]
    fn one_object_with_an_exact_and_a_wildcard_host_counts_once_at_its_best() {
        let s = snapshot(&vs("prod", "both", "['*.prod.svc.cluster.local', a]"));
        let list = &s.virtual_services[A];
        assert_eq!(list.len(), 1);
        assert_eq!((&*list[0].host, list[0].index), (A, 1));
        assert_eq!(s.virtual_services[B][0].index, 0);
    }

    #[test]
    fn destination_rules_rank_namespace_before_specificity() {
        let config = dr("prod", "exact-a", "a")
            + &dr("prod", "wild", "*.prod.svc.cluster.local")
            + &dr("dev", "all", "*")
            + &dr("team", "team-a", "a.prod.svc.cluster.local")
            + &dr("zeta", "zeta-all", "*");
        let s = snapshot(&config);
        // In the service's namespace: the exact host beats the wildcard.
        assert_eq!(dr_name(&s, A, "prod").as_deref(), Some("prod/exact-a"));
        assert_eq!(dr_name(&s, B, "prod").as_deref(), Some("prod/wild"));
        // The proxy's namespace ranks first, even with a bare `*`.
        assert_eq!(dr_name(&s, A, "dev").as_deref(), Some("dev/all"));
        assert_eq!(dr_name(&s, A, "team").as_deref(), Some("team/team-a"));
        // Then the service's namespace, most specific first.
        assert_eq!(dr_name(&s, A, "other").as_deref(), Some("prod/exact-a"));
        assert_eq!(dr_name(&s, B, "other").as_deref(), Some("prod/wild"));
        // The service's namespace is the service's, not the rule's host's:
        // `dev/all` is C's.
        assert_eq!(dr_name(&s, C, "other").as_deref(), Some("dev/all"));
        assert_eq!(dr_name(&s, C, "zeta").as_deref(), Some("zeta/zeta-all"));
    }

    #[test]
    fn a_rule_of_a_third_namespace_applies_in_its_own_namespace_only() {
        // As in Istio, whatever its exportTo: neither the proxy's nor the
        // service's nor the root namespace.
        let s = snapshot(&dr("team", "team-a", "a.prod.svc.cluster.local"));
        assert_eq!(dr_name(&s, A, "other"), None);
        assert_eq!(dr_name(&s, A, "prod"), None);
        assert_eq!(dr_name(&s, A, "team").as_deref(), Some("team/team-a"));
    }

    #[test]
    fn the_root_namespace_ranks_after_the_service_s() {
        let root = dr("istio-system", "mesh", "*")
            + &dr("istio-system", "mesh-a", "a.prod.svc.cluster.local");
        let s = snapshot(&(root.clone() + &dr("prod", "wild", "*.prod.svc.cluster.local")));
        // The service's namespace beats the root's more specific host.
        assert_eq!(dr_name(&s, A, "other").as_deref(), Some("prod/wild"));
        // Where the service's namespace has none, the root's applies, most
        // specific first.
        assert_eq!(
            dr_name(&s, C, "other").as_deref(),
            Some("istio-system/mesh")
        );
        let s = snapshot(&root);
        assert_eq!(
            dr_name(&s, A, "other").as_deref(),
            Some("istio-system/mesh-a")
        );
        // The proxy's own namespace still ranks first.
        let s = snapshot(&(root + &dr("team", "all", "*")));
        assert_eq!(dr_name(&s, A, "team").as_deref(), Some("team/all"));
    }

    #[test]
    fn a_bare_star_destination_rule_in_the_root_namespace_applies_to_every_service() {
        let s = snapshot(&dr("istio-system", "all", "*"));
        for host in [A, B, C] {
            assert_eq!(
                dr_name(&s, host, "anywhere").as_deref(),
                Some("istio-system/all")
            );
        }
        let s = snapshot(&dr("team", "all", "*"));
        assert_eq!(dr_name(&s, A, "anywhere"), None);
        assert_eq!(dr_name(&s, A, "team").as_deref(), Some("team/all"));
    }

    #[test]
    fn a_namespace_override_of_an_exact_rule_by_a_wildcard_is_reported() {
        let config = dr("prod", "exact-a", "a") + &dr("dev", "all", "*");
        let s = snapshot(&config);
        let w = warnings(&s);
        let lost: Vec<&String> = w.iter().filter(|w| w.contains("ignored there")).collect();
        assert_eq!(lost.len(), 1, "{w:?}");
        assert!(
            lost[0].contains("DestinationRule prod/exact-a: spec.host: host \"a.prod.svc.cluster.local\" also has DestinationRule dev/all (host \"*\"), which wins for service \"a.prod.svc.cluster.local\" in namespace dev"),
            "{lost:?}"
        );
    }

    #[test]
    fn wildcards_that_match_no_service_are_reported() {
        let config = vs("prod", "wild", "['*.nowhere.svc.cluster.local', a]")
            + &dr("prod", "rule", "*.example.com");
        let s = snapshot(&config);
        let w = warnings(&s);
        assert!(
            w.iter().any(|w| w.contains("VirtualService prod/wild: spec.hosts[0]: host \"*.nowhere.svc.cluster.local\" matches no service")),
            "{w:?}"
        );
        assert!(
            w.iter().any(|w| w.contains(
                "DestinationRule prod/rule: spec.host: host \"*.example.com\" matches no service"
            )),
            "{w:?}"
        );
        assert_eq!(vs_name(&s, A, "prod").as_deref(), Some("prod/wild"));
    }

    #[test]
    fn subsets_of_a_wildcard_destination_rule_count_for_routes() {
        let config = vs("prod", "to-v1", "[a]").replace(
            "destination: {host: a.prod.svc.cluster.local}",
            "destination: {host: a, subset: v1}",
        ) + &dr("prod", "wild", "*.prod.svc.cluster.local")
            + "  subsets:\n  - name: v1\n    labels: {version: v1}\n";
        let s = snapshot(&config);
        let w = warnings(&s);
        assert!(!w.iter().any(|w| w.contains("subset")), "{w:?}");
    }

    #[test]
    fn export_to_follows_istio() {
        let all: Vec<String> = vec![];
        assert!(exported_to(&all, "a", "b"));
        assert!(exported_to(&["*".into()], "a", "b"));
        assert!(exported_to(&[".".into()], "a", "a"));
        assert!(!exported_to(&[".".into()], "a", "b"));
        assert!(!exported_to(&["~".into()], "a", "a"));
        assert!(exported_to(&["b".into(), "c".into()], "a", "c"));
        assert!(!exported_to(&["b".into()], "a", "c"));
    }
}
