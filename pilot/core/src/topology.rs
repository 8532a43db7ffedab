//! The mesh as a graph, for `GET /api/v1/topology` and dashboards: a pure
//! function of the snapshot.
//!
//! ```text
//! services ──route (VirtualService: weight, subset, match)──► services
//! services ──endpoint (port, the workload's mTLS mode there)──► workloads
//! ```
//!
//! A service's routes are those of the VirtualService that wins for it
//! (the most specific host, then namespace and name, as the compiler picks
//! it); a service without one routes to itself, which no edge shows.

use serde::Serialize;

use policy::networking::{HttpMatchRequest, StringMatch};
use policy::security::MtlsMode;

use crate::hosts;
use crate::snapshot::Snapshot;

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Topology {
    pub nodes: Vec<Node>,
    pub edges: Vec<Edge>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Node {
    /// `service:HOST` or `workload:NAMESPACE/NAME`.
    pub id: String,
    /// `service` or `workload`.
    pub kind: &'static str,
    pub namespace: String,
    pub name: String,
    /// The service's host, or the workload's address.
    pub address: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Edge {
    pub from: String,
    pub to: String,
    /// `route` (a VirtualService's destination) or `endpoint`.
    pub kind: &'static str,
    /// Routes: the destination's subset, weight (percent) and what the
    /// route matches (`*` for everything), and the route it comes from
    /// (`VirtualService NAMESPACE/NAME http[I]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weight: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub matches: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// Endpoints: the workload's port, and the mTLS mode its
    /// PeerAuthentication sets there (`STRICT`, `PERMISSIVE`, `DISABLE`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mtls: Option<&'static str>,
}

fn service_id(host: &str) -> String {
    format!("service:{host}")
}

fn mode(mode: MtlsMode) -> &'static str {
    match mode {
        MtlsMode::Strict => "STRICT",
        MtlsMode::Disable => "DISABLE",
        MtlsMode::Permissive | MtlsMode::Unset => "PERMISSIVE",
    }
}

fn string_match(m: &StringMatch) -> String {
    match m {
        StringMatch::Exact(v) => format!("exact {v}"),
        StringMatch::Prefix(v) => format!("prefix {v}"),
        StringMatch::Regex(v) => format!("regex {v}"),
    }
}

/// `uri prefix /api, header x-user exact tester`; alternatives with ` | `.
fn summary(matches: &[HttpMatchRequest]) -> String {
    if matches.is_empty() {
        return "*".to_string();
    }
    let alternatives: Vec<String> = matches
        .iter()
        .map(|m| {
            let mut parts = Vec::new();
            for (what, value) in [
                ("uri", &m.uri),
                ("method", &m.method),
                ("authority", &m.authority),
                ("scheme", &m.scheme),
            ] {
                if let Some(v) = value {
                    parts.push(format!("{what} {}", string_match(v)));
                }
            }
            for (name, v) in &m.headers {
                parts.push(format!("header {name} {}", string_match(v)));
            }
            for (name, v) in &m.query_params {
                parts.push(format!("query {name} {}", string_match(v)));
            }
            for name in m.without_headers.keys() {
                parts.push(format!("no header {name}"));
            }
            if parts.is_empty() {
                "*".to_string()
            } else {
                parts.join(", ")
            }
        })
        .collect();
    alternatives.join(" | ")
}

/// The graph of `snapshot`, nodes and edges sorted.
pub fn build(snapshot: &Snapshot) -> Topology {
    let mut nodes = Vec::new();
    let mut edges = Vec::new();
    for (host, service) in &snapshot.registry.services {
        nodes.push(Node {
            id: service_id(host),
            kind: "service",
            namespace: service.namespace.clone(),
            name: service.name.clone().unwrap_or_else(|| host.clone()),
            address: host.clone(),
        });
        if let Some(winner) = snapshot
            .virtual_services
            .get(host)
            .and_then(|list| list.first())
        {
            let vs = &winner.object;
            for (i, route) in vs.spec.http.iter().enumerate() {
                let even = route.route.len().max(1) as u32;
                for dest in &route.route {
                    let to = hosts::resolve(
                        &snapshot.registry,
                        &dest.destination.host,
                        &vs.meta.namespace,
                    );
                    edges.push(Edge {
                        from: service_id(host),
                        to: service_id(&to),
                        kind: "route",
                        subset: dest.destination.subset.clone(),
                        weight: Some(dest.weight.unwrap_or(100 / even)),
                        matches: Some(summary(&route.matches)),
                        source: Some(format!(
                            "VirtualService {}/{} http[{i}]",
                            vs.meta.namespace, vs.meta.name
                        )),
                        port: None,
                        mtls: None,
                    });
                }
            }
        }
        for endpoint in &service.endpoints {
            let Some((namespace, name)) = &endpoint.workload else {
                continue;
            };
            let policy = snapshot
                .security
                .peer_authentication_for(namespace, &endpoint.labels);
            for target in endpoint.ports.values() {
                edges.push(Edge {
                    from: service_id(host),
                    to: format!("workload:{namespace}/{name}"),
                    kind: "endpoint",
                    subset: None,
                    weight: None,
                    matches: None,
                    source: None,
                    port: Some(*target),
                    mtls: Some(mode(policy.mode_at(*target))),
                });
            }
        }
    }
    for we in &snapshot.workload_entries {
        nodes.push(Node {
            id: format!("workload:{}/{}", we.meta.namespace, we.meta.name),
            kind: "workload",
            namespace: we.meta.namespace.clone(),
            name: we.meta.name.clone(),
            address: we.spec.address.clone(),
        });
    }
    nodes.sort_by(|a, b| a.id.cmp(&b.id));
    nodes.dedup_by(|a, b| a.id == b.id);
    edges.sort_by(|a, b| {
        (&a.from, &a.to, a.kind, &a.subset, a.port)
            .cmp(&(&b.from, &b.to, b.kind, &b.subset, b.port))
    });
    edges.dedup();
    Topology { nodes, edges }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn services_route_by_weight_and_reach_workloads_with_their_mtls_mode() {
        let mut store = discovery::file::FileStore::default();
        store.apply(
            std::path::Path::new("mesh.yaml"),
            r#"apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080, targetPort: 8080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1, namespace: shop}
spec: {address: 127.0.9.2, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {x-user: {exact: tester}}}]
    route: [{destination: {host: reviews, subset: v2}}]
  - route:
    - {destination: {host: reviews, subset: v1}, weight: 90}
    - {destination: {host: reviews, subset: v2}, weight: 10}
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {name: default, namespace: shop}
spec: {mtls: {mode: STRICT}}
"#,
        );
        let snapshot = Snapshot::build(1, &store.config());
        let topology = build(&snapshot);
        let ids: Vec<&str> = topology.nodes.iter().map(|n| n.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "service:reviews.shop.svc.cluster.local",
                "workload:shop/reviews-v1"
            ]
        );
        let routes: Vec<(Option<&str>, Option<u32>, &str)> = topology
            .edges
            .iter()
            .filter(|e| e.kind == "route")
            .map(|e| {
                (
                    e.subset.as_deref(),
                    e.weight,
                    e.matches.as_deref().unwrap_or_default(),
                )
            })
            .collect();
        assert_eq!(
            routes,
            [
                (Some("v1"), Some(90), "*"),
                (Some("v2"), Some(100), "header x-user exact tester"),
                (Some("v2"), Some(10), "*"),
            ]
        );
        let endpoint = topology
            .edges
            .iter()
            .find(|e| e.kind == "endpoint")
            .unwrap();
        assert_eq!(endpoint.to, "workload:shop/reviews-v1");
        assert_eq!((endpoint.port, endpoint.mtls), (Some(8080), Some("STRICT")));
    }
}
