//! What a change of config would change in each sidecar's Envoy config:
//! `bowline diff`. Pure: two snapshots and the proxies in, per proxy the
//! resources added, removed and changed out (their bytes compared).
//!
//! ```text
//! before, after: Snapshot ──► per proxy: compile(before), compile(after) ──► per type, by name:
//!                                            only after: Added · only before: Removed · bytes differ: Changed
//! ```

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use crate::compile::compile;
use crate::proxy::{NodeMetadata, Proxy};
use crate::resources::{Resource, ResourceType};
use crate::snapshot::Snapshot;

/// How one resource would change.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Added,
    Removed,
    Changed,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Added => "added",
            Change::Removed => "removed",
            Change::Changed => "changed",
        }
    }
}

/// One resource of one proxy that would change.
#[derive(Clone, Debug)]
pub struct ResourceChange {
    pub ty: ResourceType,
    pub name: String,
    pub change: Change,
    pub before: Option<Arc<Resource>>,
    pub after: Option<Arc<Resource>>,
}

/// A proxy whose config would change, and how.
#[derive(Clone, Debug)]
pub struct ProxyChanges {
    pub proxy: Proxy,
    pub changes: Vec<ResourceChange>,
}

/// The application port a diffed sidecar's application is taken to listen
/// on, at the workload's address (the convention of the compiler's golden
/// files), so that inbound listeners and clusters are compiled too.
pub const APP_PORT: u16 = 15080;

/// The sidecars of the WorkloadEntries of either snapshot (by namespace and
/// name; the newer entry wins), each with a workload certificate, as
/// `bowline proxy` starts them in a mesh with a CA.
pub fn workload_proxies(before: &Snapshot, after: &Snapshot) -> Vec<Proxy> {
    let mut entries = std::collections::BTreeMap::new();
    for we in before
        .workload_entries
        .iter()
        .chain(&after.workload_entries)
    {
        entries.insert(
            (we.meta.namespace.clone(), we.meta.name.clone()),
            we.clone(),
        );
    }
    entries
        .into_values()
        .filter_map(|we| {
            let address: IpAddr = we.spec.address.parse().ok()?;
            let mut metadata = NodeMetadata::new(&we.meta.namespace, &we.meta.name, address);
            metadata.labels = we.spec.labels.clone();
            metadata.service_account = we.spec.service_account.clone();
            metadata.app_address = Some(SocketAddr::new(address, APP_PORT));
            metadata.sds = true;
            Some(Proxy::new(metadata))
        })
        .collect()
}

/// Per proxy of `proxies` whose config differs between the snapshots, the
/// resources that do, by type (CDS, EDS, LDS, RDS, SDS) and name.
pub fn changes(before: &Snapshot, after: &Snapshot, proxies: &[Proxy]) -> Vec<ProxyChanges> {
    let mut out = Vec::new();
    for proxy in proxies {
        let (old, new) = (compile(before, proxy), compile(after, proxy));
        let mut changes = Vec::new();
        for ty in ResourceType::ALL {
            let (old, new) = (old.get(ty), new.get(ty));
            let mut names: Vec<&String> = old.keys().chain(new.keys()).collect();
            names.sort();
            names.dedup();
            for name in names {
                let (b, a) = (old.get(name), new.get(name));
                let change = match (b, a) {
                    (None, Some(_)) => Change::Added,
                    (Some(_), None) => Change::Removed,
                    (Some(b), Some(a)) if b.encoded() != a.encoded() => Change::Changed,
                    _ => continue,
                };
                changes.push(ResourceChange {
                    ty,
                    name: name.clone(),
                    change,
                    before: b.cloned(),
                    after: a.cloned(),
                });
            }
        }
        if !changes.is_empty() {
            out.push(ProxyChanges {
                proxy: proxy.clone(),
                changes,
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::snapshot_of as snapshot;

    const MESH: &str = "\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-1, namespace: shop}
spec: {address: 10.0.0.1, labels: {app: reviews, version: v1}, serviceAccount: reviews}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ledger-1, namespace: bank}
spec: {address: 10.0.1.1, labels: {app: ledger}}
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: bank}
spec:
  egress: [{hosts: [./*]}]
";

    fn summary(changes: &[ProxyChanges]) -> Vec<String> {
        changes
            .iter()
            .flat_map(|p| {
                p.changes.iter().map(move |c| {
                    format!(
                        "{}.{} {} {:?} {}",
                        p.proxy.metadata.workload,
                        p.proxy.metadata.namespace,
                        c.change.as_str(),
                        c.ty,
                        c.name
                    )
                })
            })
            .collect()
    }

    #[test]
    fn a_subset_and_its_route_change_the_proxies_that_see_the_service_only() {
        let before = snapshot(1, MESH);
        let after = snapshot(
            2,
            &format!(
                "{MESH}---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {{name: reviews, namespace: shop}}
spec:
  host: reviews
  subsets: [{{name: v1, labels: {{version: v1}}}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: reviews, namespace: shop}}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {{host: reviews, subset: v1}}
"
            ),
        );
        let proxies = workload_proxies(&before, &after);
        assert_eq!(proxies.len(), 2);
        // ledger-1's Sidecar scope keeps it to its own namespace: unchanged.
        assert_eq!(
            summary(&changes(&before, &after, &proxies)),
            [
                "reviews-1.shop added Cluster outbound|9080|v1|reviews.shop.svc.cluster.local",
                "reviews-1.shop added Endpoint outbound|9080|v1|reviews.shop.svc.cluster.local",
                "reviews-1.shop changed Route outbound",
            ]
        );
        assert!(changes(&before, &before, &proxies).is_empty());
    }
}
