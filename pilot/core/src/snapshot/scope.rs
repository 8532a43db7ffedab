//! Config scoping: which services and VirtualServices a proxy sees, from
//! Istio's `Sidecar` resource (pilot/pkg/model/sidecar.go).
//!
//! ```text
//! Sidecars (by namespace) ──► Sidecars::build ──► one SidecarScope per Sidecar (its own namespace)
//!                                             └─► the root namespace's default, one per proxy namespace
//! proxy ──► Snapshot::scope_for: selector match in its namespace ► its namespace's default
//!                                ► the root namespace's default ► the whole mesh
//! ```
//!
//! An egress host `namespace/dnsName` selects config by the namespace it
//! lives in: a Service's or ServiceEntry's own namespace, a VirtualService's.
//! `*` is any namespace, `.` the Sidecar's own (for the root namespace's
//! default: the proxy's), a `~` prefix excludes what it names instead
//! (`~/*` alone imports nothing). Only what the proxy's namespace sees
//! (`exportTo`) can be imported. The destinations of every imported
//! VirtualService stay reachable, as in Istio: their services are imported
//! too, with only the ports the routes name when they all name one.
//!
//! Scopes are computed once per snapshot, so compile only asks
//! [`SidecarScope::admits`] and [`SidecarScope::imports`].

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use discovery::{Registry, ServiceModel};
use policy::networking::{Sidecar, VirtualService, WorkloadEntry};
use policy::{Diagnostic, FieldPath, Kind, ObjectKey};

use super::exported_to;
use crate::hosts;

/// What one proxy sees. A scope without a Sidecar admits everything.
#[derive(Debug, Default)]
pub struct SidecarScope {
    /// The Sidecar this scope comes from; `None` for the whole mesh.
    sidecar: Option<ObjectKey>,
    /// Admitted services by host name, with the ports admitted.
    services: HashMap<String, Ports>,
    /// Imported VirtualServices by (namespace, name).
    virtual_services: HashSet<(String, String)>,
}

/// Which ports of an admitted service a scope admits.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Ports {
    All,
    Only(BTreeSet<u16>),
}

/// What a proxy's compiled config depends on in its scope: the Sidecar, if
/// any (with the proxy's namespace, which every memo key has already).
pub(crate) type ScopeKey = Option<(String, String)>;

impl SidecarScope {
    /// The scope of a proxy no Sidecar applies to: the whole mesh.
    pub fn mesh() -> Self {
        SidecarScope::default()
    }

    /// The Sidecar this scope comes from, if any.
    pub fn sidecar(&self) -> Option<&ObjectKey> {
        self.sidecar.as_ref()
    }

    pub(crate) fn key(&self) -> ScopeKey {
        self.sidecar
            .as_ref()
            .map(|k| (k.namespace.clone(), k.name.clone()))
    }

    /// Whether both scopes admit the same services with the same ports,
    /// from the same Sidecar: then a proxy gets the same clusters and
    /// endpoints in either (its routes may still differ, by the
    /// VirtualServices each imports).
    pub fn same_admission(&self, other: &SidecarScope) -> bool {
        self.sidecar == other.sidecar && self.services == other.services
    }

    /// Whether the proxy gets any cluster or route of `service`.
    pub fn admits(&self, service: &ServiceModel) -> bool {
        self.sidecar.is_none() || self.services.contains_key(&service.hostname)
    }

    /// Whether the proxy gets the clusters and routes of `port` of `service`.
    pub fn admits_port(&self, service: &ServiceModel, port: u16) -> bool {
        if self.sidecar.is_none() {
            return true;
        }
        match self.services.get(&service.hostname) {
            Some(Ports::All) => true,
            Some(Ports::Only(ports)) => ports.contains(&port),
            None => false,
        }
    }

    /// Whether the routes of `vs` apply to this proxy's traffic.
    pub fn imports(&self, vs: &VirtualService) -> bool {
        self.sidecar.is_none()
            || self
                .virtual_services
                .contains(&(vs.meta.namespace.clone(), vs.meta.name.clone()))
    }

    /// The admitted services' host names, sorted (for tests and the admin API).
    pub fn service_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self.services.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    /// Builds the scope of `sidecar` for proxies of `namespace` (its own,
    /// or any for the root namespace's default).
    fn build(
        registry: &Registry,
        virtual_services: &[Arc<VirtualService>],
        sidecar: &Sidecar,
        namespace: &str,
    ) -> SidecarScope {
        let imports = Imports::parse(sidecar, namespace);
        let mut scope = SidecarScope {
            sidecar: Some(ObjectKey {
                kind: Kind::Sidecar,
                namespace: sidecar.meta.namespace.clone(),
                name: sidecar.meta.name.clone(),
            }),
            ..SidecarScope::default()
        };
        for service in registry.services.values() {
            if super::visible(service, namespace) && imports.admits_service(service) {
                scope.services.insert(service.hostname.clone(), Ports::All);
            }
        }
        for vs in virtual_services {
            let visible = exported_to(&vs.spec.export_to, &vs.meta.namespace, namespace);
            if !visible || !imports.admits_virtual_service(registry, vs) {
                continue;
            }
            scope
                .virtual_services
                .insert((vs.meta.namespace.clone(), vs.meta.name.clone()));
            scope.keep_destinations(registry, vs, namespace);
        }
        scope
    }

    /// Imports the services `vs` routes to from `namespace` (Istio's
    /// `virtualServiceDestinationsFilteredBySourceNamespace`): a route whose
    /// matches all name other source namespaces is left out, and a service
    /// only routed to on some ports gets only those.
    fn keep_destinations(&mut self, registry: &Registry, vs: &VirtualService, namespace: &str) {
        let mut wanted: HashMap<String, Option<BTreeSet<u16>>> = HashMap::new();
        for http in &vs.spec.http {
            let sources: Vec<&str> = http
                .matches
                .iter()
                .filter_map(|m| m.source_namespace.as_deref())
                .collect();
            if !sources.is_empty() && !sources.contains(&namespace) {
                continue;
            }
            let destinations = http
                .route
                .iter()
                .map(|r| &r.destination)
                .chain(http.mirror.as_ref());
            for dest in destinations {
                let fqdn = hosts::resolve(registry, &dest.host, &vs.meta.namespace);
                let ports = wanted.entry(fqdn).or_insert_with(|| Some(BTreeSet::new()));
                match (ports, dest.port) {
                    (Some(set), Some(port)) => {
                        set.insert(port);
                    }
                    // A destination without a port depends on every port.
                    (ports, _) => *ports = None,
                }
            }
        }
        for (fqdn, ports) in wanted {
            let Some(service) = registry.services.get(&fqdn) else {
                continue;
            };
            if !super::visible(service, namespace) {
                continue;
            }
            let admitted = match ports {
                None => Ports::All,
                Some(ports) => {
                    let found: BTreeSet<u16> = service
                        .ports
                        .iter()
                        .map(|p| p.number)
                        .filter(|n| ports.contains(n))
                        .collect();
                    // Routes only to ports the service lacks: Istio leaves it out.
                    if found.is_empty() {
                        continue;
                    }
                    if found.len() == service.ports.len() {
                        Ports::All
                    } else {
                        Ports::Only(found)
                    }
                }
            };
            let entry = self
                .services
                .entry(fqdn)
                .or_insert(Ports::Only(BTreeSet::new()));
            *entry = match (std::mem::replace(entry, Ports::All), admitted) {
                (Ports::Only(mut a), Ports::Only(b)) => {
                    a.extend(b);
                    Ports::Only(a)
                }
                _ => Ports::All,
            };
        }
    }
}

/// The egress hosts of one Sidecar for one namespace, by the config
/// namespace they name (`*` for any).
#[derive(Debug, Default)]
struct Imports {
    by_namespace: HashMap<String, Hosts>,
}

/// The dnsName parts of the hosts for one config namespace, lower-cased.
#[derive(Debug, Default)]
struct Hosts {
    exact: HashSet<String>,
    /// Every imported name, exact and wildcard, in order.
    all: Vec<String>,
    excluded: Vec<String>,
}

impl Imports {
    fn parse(sidecar: &Sidecar, namespace: &str) -> Imports {
        let mut imports = Imports::default();
        for host in sidecar.spec.egress.iter().flat_map(|e| &e.hosts) {
            // Validation rejects any other form.
            let Some((ns, name)) = host.split_once('/') else {
                continue;
            };
            let (excluded, ns) = match ns.strip_prefix('~') {
                Some("") => (true, "*"),
                Some(rest) => (true, rest),
                None => (false, ns),
            };
            let ns = if ns == "." { namespace } else { ns };
            let hosts = imports.by_namespace.entry(ns.to_string()).or_default();
            let name = name.to_ascii_lowercase();
            if excluded {
                hosts.excluded.push(name);
                continue;
            }
            if !hosts::is_wildcard(&name) {
                hosts.exact.insert(name.clone());
            }
            hosts.all.push(name);
        }
        imports
    }

    fn get(&self, namespace: &str) -> Option<&Hosts> {
        self.by_namespace.get(namespace)
    }

    /// Istio's `selectServices`: an import of the service's namespace, else
    /// of any namespace, unless either excludes it.
    fn admits_service(&self, service: &ServiceModel) -> bool {
        let host = service.hostname.to_ascii_lowercase();
        let own = self.get(&service.namespace);
        let any = self.get("*");
        if [own, any].into_iter().flatten().any(|h| h.excludes(&host)) {
            return false;
        }
        [own, any].into_iter().flatten().any(|h| h.admits(&host))
    }

    /// Istio's `SelectVirtualServices`: some host of the VirtualService
    /// matches an import of its namespace or of any, and is not excluded.
    fn admits_virtual_service(&self, registry: &Registry, vs: &VirtualService) -> bool {
        let own = self.get(&vs.meta.namespace);
        let any = self.get("*");
        vs.spec.hosts.iter().any(|host| {
            let host = hosts::resolve(registry, host, &vs.meta.namespace).to_ascii_lowercase();
            let excluded = [own, any].into_iter().flatten().any(|h| h.excludes(&host));
            !excluded && [own, any].into_iter().flatten().any(|h| h.matches(&host))
        })
    }
}

impl Hosts {
    /// A service host the imports cover (`SubsetOf`).
    fn admits(&self, host: &str) -> bool {
        self.exact.contains(host) || self.all.iter().any(|i| subset_of(host, i))
    }

    /// A VirtualService host that overlaps an import either way (Istio's
    /// bidirectional `Matches`: `*.com` in a VirtualService matches an
    /// import of `a.com`).
    fn matches(&self, host: &str) -> bool {
        self.exact.contains(host)
            || self
                .all
                .iter()
                .any(|i| subset_of(host, i) || subset_of(i, host))
    }

    fn excludes(&self, host: &str) -> bool {
        self.excluded.iter().any(|e| subset_of(host, e))
    }
}

/// Whether every name `host` matches is matched by `pattern` (Istio's
/// `host.Name.SubsetOf`); both lower-cased.
fn subset_of(host: &str, pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    match (host.strip_prefix('*'), pattern.strip_prefix('*')) {
        (Some(h), Some(p)) => h.ends_with(p),
        (None, Some(p)) => host.ends_with(p),
        (Some(_), None) => false,
        (None, None) => host == pattern,
    }
}

/// The Sidecars of one snapshot and the scopes they give.
#[derive(Debug, Default)]
pub(crate) struct Sidecars {
    /// Per namespace, in the order they are tried.
    namespaces: HashMap<String, NamespaceSidecars>,
    /// The root namespace's Sidecar without a selector.
    root: Option<Arc<Sidecar>>,
    /// Its scope for each namespace the snapshot knows of.
    root_scopes: HashMap<String, Arc<SidecarScope>>,
    mesh: Arc<SidecarScope>,
    /// Every VirtualService, for scopes built for other namespaces later.
    virtual_services: Vec<Arc<VirtualService>>,
    /// The Sidecars and root namespace these scopes come from, to tell
    /// whether two snapshots differ in them.
    objects: Vec<Arc<Sidecar>>,
    root_namespace: String,
}

#[derive(Debug, Default)]
struct NamespaceSidecars {
    /// Sidecars with a selector, by name: the first that matches applies.
    selected: Vec<(Arc<Sidecar>, Arc<SidecarScope>)>,
    /// The namespace's Sidecar without a selector.
    default: Option<Arc<SidecarScope>>,
}

impl Sidecars {
    /// Resolves the Sidecars (sorted by namespace and name) against the
    /// registry. `namespaces` are those proxies are expected in; a root
    /// default is precomputed for each.
    pub(crate) fn build(
        registry: &Registry,
        sidecars: &[Arc<Sidecar>],
        virtual_services: &[Arc<VirtualService>],
        root_namespace: &str,
        namespaces: &BTreeSet<String>,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Sidecars {
        let mut out = Sidecars {
            virtual_services: virtual_services.to_vec(),
            objects: sidecars.to_vec(),
            root_namespace: root_namespace.to_string(),
            ..Sidecars::default()
        };
        let mut defaults: HashMap<&str, &Sidecar> = HashMap::new();
        for sidecar in sidecars {
            let ns = sidecar.meta.namespace.as_str();
            let has_selector = sidecar.spec.workload_selector.is_some();
            if has_selector && ns == root_namespace {
                diagnostics.push(
                    Diagnostic::error(
                        FieldPath::new("spec.workloadSelector"),
                        format!(
                            "a Sidecar in the root namespace {root_namespace} is the mesh-wide default and cannot have a workload selector; this Sidecar is ignored"
                        ),
                    )
                    .on(key_of(sidecar)),
                );
                continue;
            }
            if !has_selector {
                if let Some(first) = defaults.get(ns) {
                    diagnostics.push(
                        Diagnostic::warning(
                            FieldPath::root(),
                            format!(
                                "namespace {ns} has another Sidecar without a workload selector, {ns}/{}, which applies (the first by name); this one is ignored",
                                first.meta.name
                            ),
                        )
                        .on(key_of(sidecar)),
                    );
                    continue;
                }
                defaults.insert(ns, sidecar);
            }
            let scope = Arc::new(SidecarScope::build(registry, virtual_services, sidecar, ns));
            let entry = out.namespaces.entry(ns.to_string()).or_default();
            if has_selector {
                entry.selected.push((sidecar.clone(), scope));
            } else {
                entry.default = Some(scope);
                if ns == root_namespace {
                    out.root = Some(sidecar.clone());
                }
            }
        }
        if let Some(root) = &out.root {
            for ns in namespaces {
                if out.namespaces.get(ns).is_some_and(|n| n.default.is_some()) {
                    continue;
                }
                let scope = SidecarScope::build(registry, virtual_services, root, ns);
                out.root_scopes.insert(ns.clone(), Arc::new(scope));
            }
        }
        out
    }

    /// The scope of a proxy in `namespace` with `labels`, in Istio's order.
    pub(crate) fn scope_for(
        &self,
        registry: &Registry,
        namespace: &str,
        labels: &std::collections::BTreeMap<String, String>,
    ) -> Arc<SidecarScope> {
        if let Some(found) = self.namespaces.get(namespace) {
            if let Some((_, scope)) = found.selected.iter().find(|(s, _)| selects(s, labels)) {
                return scope.clone();
            }
            if let Some(scope) = &found.default {
                return scope.clone();
            }
        }
        let Some(root) = &self.root else {
            return self.mesh.clone();
        };
        match self.root_scopes.get(namespace) {
            Some(scope) => scope.clone(),
            // A namespace no object mentions: built on demand, the same
            // every time for this snapshot.
            None => Arc::new(SidecarScope::build(
                registry,
                &self.virtual_services,
                root,
                namespace,
            )),
        }
    }
}

impl Sidecars {
    /// Whether `other` was built from the same Sidecars and root namespace.
    pub(crate) fn same_sources(&self, other: &Sidecars) -> bool {
        self.root_namespace == other.root_namespace
            && self.objects.len() == other.objects.len()
            && self
                .objects
                .iter()
                .zip(&other.objects)
                .all(|(a, b)| Arc::ptr_eq(a, b) || a == b)
    }

    /// The hosts that some precomputed scope admits in one of `self` and
    /// `other` and not in the other, or with other ports: a service or
    /// VirtualService change elsewhere can change what a scope admits.
    pub(crate) fn admission_changes(&self, other: &Sidecars) -> BTreeSet<String> {
        let (before, after) = (self.scopes(), other.scopes());
        let mut hosts = BTreeSet::new();
        for (key, scope) in &before {
            let Some(next) = after.get(key) else { continue };
            for (host, ports) in &scope.services {
                if next.services.get(host) != Some(ports) {
                    hosts.insert(host.clone());
                }
            }
            for host in next.services.keys() {
                if !scope.services.contains_key(host) {
                    hosts.insert(host.clone());
                }
            }
        }
        hosts
    }

    /// Whether there are no Sidecars, so every proxy sees the whole mesh.
    pub(crate) fn is_empty(&self) -> bool {
        self.objects.is_empty()
    }

    /// Every precomputed scope, by (Sidecar, namespace computed for).
    fn scopes(&self) -> HashMap<(ScopeKey, &str), &SidecarScope> {
        let mut out = HashMap::new();
        for (ns, found) in &self.namespaces {
            for scope in found.selected.iter().map(|(_, s)| s).chain(&found.default) {
                out.insert((scope.key(), ns.as_str()), scope.as_ref());
            }
        }
        for (ns, scope) in &self.root_scopes {
            out.insert((scope.key(), ns.as_str()), scope.as_ref());
        }
        out
    }
}

fn key_of(sidecar: &Sidecar) -> ObjectKey {
    super::candidates::key_of(Kind::Sidecar, &sidecar.meta)
}

fn selects(sidecar: &Sidecar, labels: &std::collections::BTreeMap<String, String>) -> bool {
    sidecar.spec.workload_selector.as_ref().is_some_and(|s| {
        s.labels
            .iter()
            .all(|(k, v)| labels.get(k).is_some_and(|l| l == v))
    })
}

impl Sidecars {
    /// Warns about each Sidecar with a selector that selects a workload an
    /// earlier one (by name) already selects: Istio applies the oldest,
    /// files have no age, so the first by name applies. Apart from
    /// [`Sidecars::build`], as the workloads change more often than the
    /// scopes.
    pub(crate) fn report_overlaps(
        &self,
        workload_entries: &[Arc<WorkloadEntry>],
        diagnostics: &mut Vec<Diagnostic>,
    ) {
        report_overlaps(self, workload_entries, diagnostics);
    }
}

fn report_overlaps(
    sidecars: &Sidecars,
    workload_entries: &[Arc<WorkloadEntry>],
    diagnostics: &mut Vec<Diagnostic>,
) {
    if sidecars.namespaces.values().all(|n| n.selected.is_empty()) {
        return;
    }
    let mut reported = HashSet::new();
    for we in workload_entries {
        let Some(found) = sidecars.namespaces.get(&we.meta.namespace) else {
            continue;
        };
        let mut matching = found
            .selected
            .iter()
            .map(|(s, _)| s)
            .filter(|s| selects(s, &we.spec.labels));
        let Some(first) = matching.next() else {
            continue;
        };
        for other in matching {
            if !reported.insert(key_of(other)) {
                continue;
            }
            diagnostics.push(
                Diagnostic::warning(
                    FieldPath::new("spec.workloadSelector"),
                    format!(
                        "selects workload {}/{}, as does Sidecar {}/{}, which applies to it (the first by name); this one is ignored there",
                        we.meta.namespace, we.meta.name, first.meta.namespace, first.meta.name
                    ),
                )
                .on(key_of(other)),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::Path;

    use discovery::file::FileStore;

    use super::*;
    use crate::snapshot::Snapshot;

    const SERVICES: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: a, namespace: one}\nspec:\n  ports: [{name: http, port: 80}]\n---\napiVersion: v1\nkind: Service\nmetadata: {name: b, namespace: two}\nspec:\n  ports: [{name: http, port: 80}]\n";

    fn sidecar(ns: &str, name: &str, selector: &str, hosts: &str) -> String {
        format!(
            "---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n{selector}  egress: [{{hosts: {hosts}}}]\n"
        )
    }

    fn snapshot(extra: &str) -> Snapshot {
        let mut store = FileStore::default();
        store.apply(Path::new("mesh.yaml"), &format!("{SERVICES}{extra}"));
        Snapshot::build(1, &store.config())
    }

    fn scope(s: &Snapshot, ns: &str, labels: &[(&str, &str)]) -> (Option<String>, Vec<String>) {
        let labels: BTreeMap<String, String> = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let scope = s.sidecars.scope_for(&s.registry, ns, &labels);
        (
            scope
                .sidecar()
                .map(|k| format!("{}/{}", k.namespace, k.name)),
            scope
                .service_names()
                .into_iter()
                .map(String::from)
                .collect(),
        )
    }

    #[test]
    fn scopes_apply_in_istios_order() {
        let s = snapshot(
            &(sidecar("one", "default", "", "['./*']")
                + &sidecar(
                    "one",
                    "web",
                    "  workloadSelector: {labels: {app: web}}\n",
                    "['two/*']",
                )
                + &sidecar("istio-system", "default", "", "['./*']")),
        );
        let a = "a.one.svc.cluster.local".to_string();
        let b = "b.two.svc.cluster.local".to_string();
        // A selector match, then the namespace default.
        assert_eq!(
            scope(&s, "one", &[("app", "web")]),
            (Some("one/web".into()), vec![b.clone()])
        );
        assert_eq!(
            scope(&s, "one", &[("app", "db")]),
            (Some("one/default".into()), vec![a])
        );
        // The root default, '.' being the proxy's namespace: precomputed for
        // a namespace the snapshot knows, built on demand for another.
        assert_eq!(
            scope(&s, "two", &[]),
            (Some("istio-system/default".into()), vec![b])
        );
        assert_eq!(
            scope(&s, "elsewhere", &[]),
            (Some("istio-system/default".into()), vec![])
        );
    }

    #[test]
    fn without_sidecars_the_scope_is_the_mesh() {
        let s = snapshot(&sidecar(
            "one",
            "web",
            "  workloadSelector: {labels: {app: web}}\n",
            "['two/*']",
        ));
        let (sidecar, _) = scope(&s, "one", &[("app", "db")]);
        assert_eq!(sidecar, None);
        let mesh = s.sidecars.scope_for(&s.registry, "two", &BTreeMap::new());
        assert!(s.registry.services.values().all(|svc| mesh.admits(svc)));
    }

    #[test]
    fn subset_follows_istio_host_names() {
        assert!(subset_of("a.b.com", "*"));
        assert!(subset_of("a.b.com", "*.b.com"));
        assert!(subset_of("a.b.com", "*.com"));
        assert!(!subset_of("b.com", "*.b.com"));
        assert!(subset_of("*.b.com", "*.com"));
        assert!(!subset_of("*.com", "*.b.com"));
        assert!(!subset_of("*.b.com", "a.b.com"));
        assert!(subset_of("a.b.com", "a.b.com"));
        assert!(!subset_of("a.b.com", "c.b.com"));
    }
}
