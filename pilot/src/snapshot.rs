//! One immutable view of the mesh, built once per change and shared by every proxy.
//!
//! `Snapshot::build` resolves everything the compiler would otherwise look up
//! per proxy: the registry, the VirtualServices and DestinationRules of each
//! host in precedence order, and the cross-object findings (in the manner of
//! `istioctl analyze`) that the admin API and `bowline validate` report.
//!
//! Which policy governs a host for a given proxy follows Istio: only objects
//! exported to the proxy's namespace count (`exportTo`: `*` by default, `.`
//! for the object's own namespace, `~` for none, or namespace names); among
//! those, one in the proxy's own namespace wins, then (for DestinationRules)
//! one in the service's namespace, then the first by namespace and name.
//! Istio breaks the remaining ties by creation time, which files do not have.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use discovery::Registry;
use discovery::file::ConfigSet;
use discovery::model::ServiceModel;
use policy::networking::{DestinationRule, VirtualService, WorkloadEntry};
use policy::{Diagnostic, FieldPath, Kind, Object, ObjectKey, ObjectMeta};

use crate::compile::SharedResources;
use crate::hosts;
use crate::resources::Resource;

/// The mesh at one moment. Never mutated after `build`; proxies hold it by `Arc`.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Increases by one per build; for logs, never compared for content.
    pub generation: u64,
    pub registry: Registry,
    /// The VirtualServices of each fully qualified host, by namespace and name.
    pub virtual_services: BTreeMap<String, Vec<Arc<VirtualService>>>,
    /// The DestinationRules of each fully qualified host, by namespace and name.
    pub destination_rules: BTreeMap<String, Vec<Arc<DestinationRule>>>,
    /// Every WorkloadEntry, selected by a service or not, sorted by namespace and name.
    pub workload_entries: Vec<Arc<WorkloadEntry>>,
    /// Problems found in the config this snapshot was built from.
    pub diagnostics: Vec<Diagnostic>,
    /// What the compiler builds once per snapshot and namespace rather than
    /// once per proxy (a memo: it never changes what `compile` returns).
    pub(crate) shared: Mutex<HashMap<String, Arc<SharedResources>>>,
    /// The outbound route configuration per (namespace, labels); a memo too.
    pub(crate) routes: Mutex<HashMap<RouteKey, Arc<Resource>>>,
}

/// What a proxy's outbound routes depend on: its namespace and labels.
pub(crate) type RouteKey = (String, BTreeMap<String, String>);

impl Snapshot {
    /// Builds the snapshot of a config set: the registry, the policy of each
    /// host, and every finding about how the objects fit together.
    pub fn build(generation: u64, config: &ConfigSet) -> Snapshot {
        let objects: Vec<&Object> = config.objects.iter().map(|o| o.as_ref()).collect();
        let (registry, registry_diagnostics) = Registry::build(objects.iter().copied());
        let mut diagnostics = config.diagnostics.clone();
        diagnostics.extend(registry_diagnostics);

        let mut virtual_services: BTreeMap<String, Vec<Arc<VirtualService>>> = BTreeMap::new();
        let mut destination_rules: BTreeMap<String, Vec<Arc<DestinationRule>>> = BTreeMap::new();
        let mut workload_entries = Vec::new();
        // Objects arrive sorted by key, so every list is in namespace/name order.
        for object in &objects {
            match object {
                Object::VirtualService(vs) => {
                    let vs = Arc::new(vs.clone());
                    for (i, host) in vs.spec.hosts.iter().enumerate() {
                        let fqdn = hosts::resolve(&registry, host, &vs.meta.namespace);
                        if registry.services.contains_key(&fqdn) {
                            virtual_services.entry(fqdn).or_default().push(vs.clone());
                        } else {
                            diagnostics.push(
                                Diagnostic::warning(
                                    FieldPath::new("spec.hosts").index(i),
                                    format!("host {fqdn:?} matches no service"),
                                )
                                .on(key_of(Kind::VirtualService, &vs.meta)),
                            );
                        }
                    }
                }
                Object::DestinationRule(dr) => {
                    let fqdn = hosts::resolve(&registry, &dr.spec.host, &dr.meta.namespace);
                    if registry.services.contains_key(&fqdn) {
                        destination_rules
                            .entry(fqdn)
                            .or_default()
                            .push(Arc::new(dr.clone()));
                    } else {
                        diagnostics.push(
                            Diagnostic::warning(
                                FieldPath::new("spec.host"),
                                format!("host {fqdn:?} matches no service"),
                            )
                            .on(key_of(Kind::DestinationRule, &dr.meta)),
                        );
                    }
                }
                Object::WorkloadEntry(we) => workload_entries.push(Arc::new(we.clone())),
                _ => {}
            }
        }

        let mut snapshot = Snapshot {
            generation,
            registry,
            virtual_services,
            destination_rules,
            workload_entries,
            diagnostics: Vec::new(),
            shared: Mutex::new(HashMap::new()),
            routes: Mutex::new(HashMap::new()),
        };
        snapshot.report_conflicts(&mut diagnostics);
        snapshot.check_routes(&mut diagnostics);
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
        snapshot
    }

    /// The VirtualService that routes `host` for proxies in `namespace`.
    pub fn virtual_service(&self, host: &str, namespace: &str) -> Option<&Arc<VirtualService>> {
        let candidates = self.virtual_services.get(host)?;
        let visible = || {
            candidates
                .iter()
                .filter(|vs| exported_to(&vs.spec.export_to, &vs.meta.namespace, namespace))
        };
        visible()
            .find(|vs| vs.meta.namespace == namespace)
            .or_else(|| visible().next())
    }

    /// The DestinationRule that applies to `host` for proxies in `namespace`.
    pub fn destination_rule(&self, host: &str, namespace: &str) -> Option<&Arc<DestinationRule>> {
        let candidates = self.destination_rules.get(host)?;
        let service_namespace = self
            .registry
            .services
            .get(host)
            .map(|s| s.namespace.as_str());
        let visible = || {
            candidates
                .iter()
                .filter(|dr| exported_to(&dr.spec.export_to, &dr.meta.namespace, namespace))
        };
        visible()
            .find(|dr| dr.meta.namespace == namespace)
            .or_else(|| visible().find(|dr| Some(dr.meta.namespace.as_str()) == service_namespace))
            .or_else(|| visible().next())
    }

    /// The namespaces some object of the snapshot mentions, plus `namespace`:
    /// the places from which a host's precedence can differ.
    fn namespaces(&self) -> BTreeSet<String> {
        let mut namespaces: BTreeSet<String> = self
            .registry
            .services
            .values()
            .map(|s| s.namespace.clone())
            .collect();
        namespaces.extend(
            self.workload_entries
                .iter()
                .map(|we| we.meta.namespace.clone()),
        );
        namespaces
    }

    /// Warns about each VirtualService or DestinationRule that some namespace
    /// sees for a host but that loses it to another one.
    fn report_conflicts(&self, diagnostics: &mut Vec<Diagnostic>) {
        let namespaces = self.namespaces();
        for (host, list) in &self.virtual_services {
            for vs in list.iter().filter(|_| list.len() > 1) {
                let losing_to = namespaces.iter().find_map(|ns| {
                    let winner = self.virtual_service(host, ns)?;
                    let sees = exported_to(&vs.spec.export_to, &vs.meta.namespace, ns);
                    (sees && !Arc::ptr_eq(winner, vs)).then_some((ns, winner))
                });
                if let Some((ns, winner)) = losing_to {
                    let i = host_index(&self.registry, &vs.spec.hosts, host, &vs.meta.namespace);
                    diagnostics.push(
                        Diagnostic::warning(
                            FieldPath::new("spec.hosts").index(i),
                            format!(
                                "host {host:?} is also routed by VirtualService {}/{}, which wins for namespace {ns}; this one is ignored there",
                                winner.meta.namespace, winner.meta.name
                            ),
                        )
                        .on(key_of(Kind::VirtualService, &vs.meta)),
                    );
                }
            }
        }
        for (host, list) in &self.destination_rules {
            for dr in list.iter().filter(|_| list.len() > 1) {
                let losing_to = namespaces.iter().find_map(|ns| {
                    let winner = self.destination_rule(host, ns)?;
                    let sees = exported_to(&dr.spec.export_to, &dr.meta.namespace, ns);
                    (sees && !Arc::ptr_eq(winner, dr)).then_some((ns, winner))
                });
                if let Some((ns, winner)) = losing_to {
                    diagnostics.push(
                        Diagnostic::warning(
                            FieldPath::new("spec.host"),
                            format!(
                                "host {host:?} also has DestinationRule {}/{}, which wins for namespace {ns}; this one is ignored there",
                                winner.meta.namespace, winner.meta.name
                            ),
                        )
                        .on(key_of(Kind::DestinationRule, &dr.meta)),
                    );
                }
            }
        }
    }

    /// Warns about routes that will answer 503: destinations that name no
    /// service, a port the service lacks, or a subset no DestinationRule
    /// visible from the VirtualService's namespace defines.
    fn check_routes(&self, diagnostics: &mut Vec<Diagnostic>) {
        let mut seen = BTreeSet::new();
        for vs in self.virtual_services.values().flatten() {
            let key = key_of(Kind::VirtualService, &vs.meta);
            if !seen.insert(key.clone()) {
                continue;
            }
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

fn host_index(registry: &Registry, hosts_list: &[String], fqdn: &str, namespace: &str) -> usize {
    hosts_list
        .iter()
        .position(|h| hosts::resolve(registry, h, namespace) == fqdn)
        .unwrap_or(0)
}

fn key_of(kind: Kind, meta: &ObjectMeta) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
