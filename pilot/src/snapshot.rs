//! One immutable view of the mesh, built once per change and shared by every proxy.
//!
//! `Snapshot::build` resolves everything the compiler would otherwise look up
//! per proxy: the registry, which VirtualService and DestinationRule govern
//! each host, and the cross-object findings (in the manner of `istioctl
//! analyze`) that the admin API reports.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

use discovery::Registry;
use discovery::file::ConfigSet;
use policy::networking::{DestinationRule, VirtualService, WorkloadEntry};
use policy::{Diagnostic, FieldPath, Kind, Object, ObjectKey, ObjectMeta};

use crate::compile::SharedResources;
use crate::hosts;

/// The mesh at one moment. Never mutated after `build`; proxies hold it by `Arc`.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Increases by one per build; for logs, never compared for content.
    pub generation: u64,
    pub registry: Registry,
    /// The VirtualService in force for each fully qualified host.
    pub virtual_services: BTreeMap<String, Arc<VirtualService>>,
    /// The DestinationRule in force for each fully qualified host.
    pub destination_rules: BTreeMap<String, Arc<DestinationRule>>,
    /// Every WorkloadEntry, selected by a service or not, sorted by namespace and name.
    pub workload_entries: Vec<Arc<WorkloadEntry>>,
    /// Problems found in the config this snapshot was built from.
    pub diagnostics: Vec<Diagnostic>,
    /// What the compiler builds once per snapshot rather than once per proxy.
    pub(crate) shared: OnceLock<Arc<SharedResources>>,
}

impl Snapshot {
    /// Builds the snapshot of a config set: the registry, the policy in force
    /// per host, and every finding about how the objects fit together.
    pub fn build(generation: u64, config: &ConfigSet) -> Snapshot {
        let objects: Vec<&Object> = config.objects.iter().map(|o| o.as_ref()).collect();
        let (registry, registry_diagnostics) = Registry::build(objects.iter().copied());
        let mut diagnostics = config.diagnostics.clone();
        diagnostics.extend(registry_diagnostics);

        let mut virtual_services = BTreeMap::new();
        let mut destination_rules = BTreeMap::new();
        let mut workload_entries = Vec::new();
        // Objects arrive sorted by key, so "first" is deterministic: the
        // lowest namespace/name wins a host, as Istio's oldest-first rule would
        // with equal creation times.
        for object in &objects {
            match object {
                Object::VirtualService(vs) => {
                    index_virtual_service(&registry, vs, &mut virtual_services, &mut diagnostics)
                }
                Object::DestinationRule(dr) => {
                    index_destination_rule(&registry, dr, &mut destination_rules, &mut diagnostics)
                }
                Object::WorkloadEntry(we) => workload_entries.push(Arc::new(we.clone())),
                _ => {}
            }
        }
        check_routes(
            &registry,
            &virtual_services,
            &destination_rules,
            &mut diagnostics,
        );
        // Findings about how objects fit together name where each object was read.
        for d in diagnostics.iter_mut().filter(|d| d.file.is_empty()) {
            if let Some((file, document)) = d.object.as_ref().and_then(|k| config.origins.get(k)) {
                d.file = file.clone();
                d.document = Some(*document);
            }
        }
        diagnostics.sort();
        diagnostics.dedup();

        Snapshot {
            generation,
            registry,
            virtual_services,
            destination_rules,
            workload_entries,
            diagnostics,
            shared: OnceLock::new(),
        }
    }
}

fn key_of(kind: Kind, meta: &ObjectMeta) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
    }
}

fn index_virtual_service(
    registry: &Registry,
    vs: &VirtualService,
    index: &mut BTreeMap<String, Arc<VirtualService>>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let key = key_of(Kind::VirtualService, &vs.meta);
    let vs = Arc::new(vs.clone());
    for (i, host) in vs.spec.hosts.iter().enumerate() {
        let path = FieldPath::new("spec.hosts").index(i);
        let fqdn = hosts::resolve(registry, host, &vs.meta.namespace);
        if !registry.services.contains_key(&fqdn) {
            diagnostics.push(
                Diagnostic::warning(path, format!("host {fqdn:?} matches no service"))
                    .on(key.clone()),
            );
            continue;
        }
        match index.get(&fqdn) {
            Some(winner) => diagnostics.push(
                Diagnostic::warning(
                    path,
                    format!(
                        "host {fqdn:?} is already routed by VirtualService {}/{}; this one is ignored for it",
                        winner.meta.namespace, winner.meta.name
                    ),
                )
                .on(key.clone()),
            ),
            None => {
                index.insert(fqdn, vs.clone());
            }
        }
    }
}

fn index_destination_rule(
    registry: &Registry,
    dr: &DestinationRule,
    index: &mut BTreeMap<String, Arc<DestinationRule>>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let key = key_of(Kind::DestinationRule, &dr.meta);
    let path = FieldPath::new("spec.host");
    let fqdn = hosts::resolve(registry, &dr.spec.host, &dr.meta.namespace);
    if !registry.services.contains_key(&fqdn) {
        diagnostics
            .push(Diagnostic::warning(path, format!("host {fqdn:?} matches no service")).on(key));
        return;
    }
    match index.get(&fqdn) {
        Some(winner) => diagnostics.push(
            Diagnostic::warning(
                path,
                format!(
                    "host {fqdn:?} already has DestinationRule {}/{}; this one is ignored",
                    winner.meta.namespace, winner.meta.name
                ),
            )
            .on(key),
        ),
        None => {
            index.insert(fqdn, Arc::new(dr.clone()));
        }
    }
}

/// Warns about routes that will answer 503: destinations that name no service,
/// a port the service lacks, or a subset no DestinationRule defines.
fn check_routes(
    registry: &Registry,
    virtual_services: &BTreeMap<String, Arc<VirtualService>>,
    destination_rules: &BTreeMap<String, Arc<DestinationRule>>,
    diagnostics: &mut Vec<Diagnostic>,
) {
    let mut seen = std::collections::BTreeSet::new();
    for vs in virtual_services.values() {
        let key = key_of(Kind::VirtualService, &vs.meta);
        if !seen.insert(key.clone()) {
            continue;
        }
        for (i, http) in vs.spec.http.iter().enumerate() {
            for (j, route) in http.route.iter().enumerate() {
                let path = FieldPath::new("spec.http")
                    .index(i)
                    .field("route")
                    .index(j)
                    .field("destination");
                let dest = &route.destination;
                let fqdn = hosts::resolve(registry, &dest.host, &vs.meta.namespace);
                let Some(service) = registry.services.get(&fqdn) else {
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
                    let defined = destination_rules
                        .get(&fqdn)
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
