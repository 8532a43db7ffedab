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
use policy::security::{AuthorizationAction, AuthorizationPolicy, MtlsMode, Operation, Rule};

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
    /// Endpoints: what the AuthorizationPolicies that apply to the
    /// workload decide for requests at that port; absent where none applies.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authz: Option<Authz>,
}

/// The authorization outcome of an endpoint edge, for any caller.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Authz {
    /// `ALLOW` (every request is allowed), `DENY` (every request is
    /// denied) or `CONDITIONAL` (it depends on the caller or the request:
    /// `bowline explain` decides one request).
    pub outcome: &'static str,
    /// `AuthorizationPolicy NAMESPACE/NAME (ACTION)`, in evaluation order
    /// (DENY before ALLOW, then namespace and name).
    pub policies: Vec<String>,
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

/// Whether a rule matches every request at `port`: no source, no
/// condition, and no operation other than one that names only ports of
/// which `port` is one.
fn matches_everything(rule: &Rule, port: u16) -> bool {
    let port = port.to_string();
    let operation_is_port = |op: &Operation| {
        let Operation {
            hosts,
            not_hosts,
            ports,
            not_ports,
            methods,
            not_methods,
            paths,
            not_paths,
        } = op;
        [
            hosts,
            not_hosts,
            not_ports,
            methods,
            not_methods,
            paths,
            not_paths,
        ]
        .iter()
        .all(|v| v.is_empty())
            && (ports.is_empty() || ports.contains(&port))
    };
    rule.from.is_empty()
        && rule.when.is_empty()
        && (rule.to.is_empty() || rule.to.iter().any(operation_is_port))
}

/// Whether a rule can match a request at `port` at all.
fn can_match_at(rule: &Rule, port: u16) -> bool {
    let port = port.to_string();
    rule.to.is_empty()
        || rule.to.iter().any(|op| {
            (op.ports.is_empty() || op.ports.contains(&port)) && !op.not_ports.contains(&port)
        })
}

/// What the AuthorizationPolicies of a workload decide at one of its ports,
/// for any caller, as Istio evaluates them: a DENY policy that matches a
/// request denies it; else, where ALLOW policies apply, a request must
/// match one of their rules (an ALLOW policy without rules allows
/// nothing). AUDIT policies decide nothing.
fn authz(
    snapshot: &Snapshot,
    namespace: &str,
    labels: &std::collections::BTreeMap<String, String>,
    port: u16,
) -> Option<Authz> {
    let mut applying: Vec<&AuthorizationPolicy> = snapshot
        .security
        .authorization_policies_for(namespace, labels)
        .map(|p| p.as_ref())
        .filter(|p| p.spec.action != AuthorizationAction::Audit)
        .collect();
    if applying.is_empty() {
        return None;
    }
    applying.sort_by_key(|p| p.spec.action != AuthorizationAction::Deny);
    let (deny, allow): (Vec<&AuthorizationPolicy>, Vec<&AuthorizationPolicy>) = applying
        .iter()
        .partition(|p| p.spec.action == AuthorizationAction::Deny);
    let denies_all = deny
        .iter()
        .any(|p| p.spec.rules.iter().any(|r| matches_everything(r, port)));
    let may_deny = deny
        .iter()
        .any(|p| p.spec.rules.iter().any(|r| can_match_at(r, port)));
    let allows_all = allow
        .iter()
        .any(|p| p.spec.rules.iter().any(|r| matches_everything(r, port)));
    let may_allow = allow
        .iter()
        .any(|p| p.spec.rules.iter().any(|r| can_match_at(r, port)));
    let outcome = if denies_all || (!allow.is_empty() && !may_allow) {
        "DENY"
    } else if !may_deny && (allow.is_empty() || allows_all) {
        "ALLOW"
    } else {
        "CONDITIONAL"
    };
    Some(Authz {
        outcome,
        policies: applying
            .iter()
            .map(|p| {
                format!(
                    "AuthorizationPolicy {}/{} ({})",
                    p.meta.namespace,
                    p.meta.name,
                    p.spec.action.as_str()
                )
            })
            .collect(),
    })
}

/// A subset of a service's DestinationRule.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct SubsetView {
    pub name: String,
    pub labels: std::collections::BTreeMap<String, String>,
}

/// A config object that applies to a service or its workloads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PolicyRef {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Where it was read (file mode).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
}

/// What applies to the service `host`, as seen from its own namespace: the
/// VirtualService and DestinationRule the compiler picks (with the rule's
/// subsets), and the PeerAuthentications, RequestAuthentications and
/// AuthorizationPolicies of its workloads. Empty for an unknown host.
pub fn policies_of(snapshot: &Snapshot, host: &str) -> (Vec<SubsetView>, Vec<PolicyRef>) {
    use policy::{Kind, ObjectKey};
    let Some(service) = snapshot.registry.services.get(host) else {
        return (Vec::new(), Vec::new());
    };
    let namespace = service.namespace.as_str();
    let mut keys: Vec<ObjectKey> = Vec::new();
    let push = |keys: &mut Vec<ObjectKey>, kind: Kind, meta: &policy::ObjectMeta| {
        let key = ObjectKey {
            kind,
            namespace: meta.namespace.clone(),
            name: meta.name.clone(),
        };
        if !keys.contains(&key) {
            keys.push(key);
        }
    };
    if let Some(vs) = snapshot.virtual_service(host, namespace) {
        push(&mut keys, Kind::VirtualService, &vs.meta);
    }
    let mut subsets = Vec::new();
    if let Some(dr) = snapshot.destination_rule(host, namespace) {
        push(&mut keys, Kind::DestinationRule, &dr.meta);
        subsets = dr
            .spec
            .subsets
            .iter()
            .map(|s| SubsetView {
                name: s.name.clone(),
                labels: s.labels.clone(),
            })
            .collect();
    }
    for endpoint in &service.endpoints {
        let Some((ns, _)) = &endpoint.workload else {
            continue;
        };
        let security = &snapshot.security;
        for source in security
            .peer_authentication_for(ns, &endpoint.labels)
            .sources
        {
            if !keys.contains(&source) {
                keys.push(source);
            }
        }
        for ra in security.request_authentications_for(ns, &endpoint.labels) {
            push(&mut keys, Kind::RequestAuthentication, &ra.meta);
        }
        for ap in security.authorization_policies_for(ns, &endpoint.labels) {
            push(&mut keys, Kind::AuthorizationPolicy, &ap.meta);
        }
    }
    let policies = keys
        .into_iter()
        .map(|key| {
            let origin = snapshot.origins.get(&key);
            PolicyRef {
                kind: key.kind.as_str().to_string(),
                namespace: key.namespace,
                name: key.name,
                file: origin.map(|(file, _)| file.clone()),
                document: origin.map(|(_, document)| *document),
            }
        })
        .collect();
    (subsets, policies)
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
                        authz: None,
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
                    authz: authz(snapshot, namespace, &endpoint.labels, *target),
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
        assert_eq!(endpoint.authz, None, "no AuthorizationPolicy applies");
    }

    fn mesh_with(policies: &str) -> Snapshot {
        let mut store = discovery::file::FileStore::default();
        store.apply(
            std::path::Path::new("mesh.yaml"),
            r#"apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: shop}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080}, {name: http-admin, port: 9090}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-v1, namespace: shop}
spec: {address: 127.0.9.3, labels: {app: ratings, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings, namespace: shop}
spec:
  host: ratings
  subsets: [{name: v1, labels: {version: v1}}]
"#,
        );
        store.apply(std::path::Path::new("policies.yaml"), policies);
        Snapshot::build(1, &store.config())
    }

    fn outcomes(snapshot: &Snapshot) -> Vec<(u16, &'static str)> {
        build(snapshot)
            .edges
            .into_iter()
            .filter(|e| e.kind == "endpoint")
            .map(|e| (e.port.unwrap(), e.authz.map_or("-", |a| a.outcome)))
            .collect()
    }

    #[test]
    fn endpoint_edges_carry_the_authorization_outcome_at_their_port() {
        let allow_some = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: from-web, namespace: shop}
spec:
  selector: {matchLabels: {app: ratings}}
  rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/web]}}]}]
"#;
        assert_eq!(
            outcomes(&mesh_with(allow_some)),
            [(9080, "CONDITIONAL"), (9090, "CONDITIONAL")]
        );
        let allow_nothing = "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {name: none, namespace: shop}\nspec: {}\n";
        assert_eq!(
            outcomes(&mesh_with(allow_nothing)),
            [(9080, "DENY"), (9090, "DENY")]
        );
        let allow_one_port = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: public, namespace: shop}
spec:
  rules: [{to: [{operation: {ports: ["9080"]}}]}]
"#;
        assert_eq!(
            outcomes(&mesh_with(allow_one_port)),
            [(9080, "ALLOW"), (9090, "DENY")]
        );
        let deny_admin = r#"apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {name: no-admin, namespace: shop}
spec:
  action: DENY
  rules: [{to: [{operation: {ports: ["9090"]}}]}]
"#;
        let snapshot = mesh_with(deny_admin);
        assert_eq!(outcomes(&snapshot), [(9080, "ALLOW"), (9090, "DENY")]);
        let edge = build(&snapshot)
            .edges
            .into_iter()
            .find(|e| e.port == Some(9090))
            .unwrap();
        assert_eq!(
            edge.authz.unwrap().policies,
            ["AuthorizationPolicy shop/no-admin (DENY)"]
        );
    }

    #[test]
    fn a_service_lists_its_subsets_and_the_policies_that_apply() {
        let snapshot = mesh_with(
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: default, namespace: shop}\nspec: {mtls: {mode: STRICT}}\n",
        );
        let (subsets, policies) = policies_of(&snapshot, "ratings.shop.svc.cluster.local");
        assert_eq!(subsets.len(), 1);
        assert_eq!(subsets[0].name, "v1");
        let named: Vec<(String, String, Option<String>)> = policies
            .into_iter()
            .map(|p| (p.kind, p.name, p.file))
            .collect();
        assert_eq!(
            named,
            [
                (
                    "DestinationRule".to_string(),
                    "ratings".to_string(),
                    Some("mesh.yaml".to_string())
                ),
                (
                    "PeerAuthentication".to_string(),
                    "default".to_string(),
                    Some("policies.yaml".to_string())
                ),
            ]
        );
        assert_eq!(policies_of(&snapshot, "nowhere.example").1, []);
    }
}
