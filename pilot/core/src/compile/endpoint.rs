//! Endpoints: a `ClusterLoadAssignment` per cluster, grouped by locality.
//!
//! Every locality group carries a `locality` and a `load_balancing_weight`
//! even when empty or uniform: gRPC's xDS client rejects groups without them.
//!
//! With locality load balancing in force, an assignment depends on the
//! proxy that receives it ([`Client`]), as in Istio:
//!
//! ```text
//! failover:    priority 0 same region/zone/subzone, 1 same zone, 2 same region,
//!              3 other region (the `failover` target when one is set), 4 the rest
//! failoverPriority:
//!              by labels (or `label=value`) equal to the proxy's, and only with
//!              `failover` also set, locality ranks below each label rank;
//!              then compacted
//! distribute:  the first `from` matching the proxy picks the `to` weights;
//!              localities matching no `to` get no traffic
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use discovery::model::Endpoint as RegistryEndpoint;
use discovery::{Port, ServiceModel};
use envoy_types::pb::envoy::config::core::v3::Locality;
use envoy_types::pb::envoy::config::endpoint::v3::{
    ClusterLoadAssignment, Endpoint, LbEndpoint, LocalityLbEndpoints, lb_endpoint::HostIdentifier,
};
use envoy_types::pb::google::protobuf::UInt32Value;

use super::proto;
use super::tls::{self, MeshTls};
use crate::proxy::Proxy;
use crate::snapshot::Snapshot;

/// The proxy an assignment is compiled for, as locality load balancing sees it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Client<'a> {
    /// `region/zone/subzone`; empty when unknown.
    pub(crate) locality: &'a str,
    pub(crate) labels: &'a BTreeMap<String, String>,
}

/// Label keys whose value is a part of the locality, in `failoverPriority`.
const REGION_LABEL: &str = "topology.kubernetes.io/region";
const ZONE_LABEL: &str = "topology.kubernetes.io/zone";
const SUBZONE_LABEL: &str = "topology.istio.io/subzone";
/// Istio's network label: first in `failoverPriority`, a mismatch lowers an
/// endpoint's rank without hiding the labels after it.
const NETWORK_LABEL: &str = "topology.istio.io/network";

/// Endpoints of one service port, restricted to those carrying `subset_labels`.
pub(crate) fn load_assignment(
    cluster: &str,
    service: &ServiceModel,
    port: &Port,
    subset_labels: Option<&BTreeMap<String, String>>,
    mesh: Option<&MeshTls>,
) -> ClusterLoadAssignment {
    let mut by_locality: BTreeMap<&str, Vec<LbEndpoint>> = BTreeMap::new();
    for (ep, target) in selected(service, port, subset_labels) {
        by_locality
            .entry(ep.locality.as_str())
            .or_default()
            .push(mesh_endpoint(ep, target, mesh));
    }
    ClusterLoadAssignment {
        cluster_name: cluster.to_string(),
        endpoints: by_locality
            .into_iter()
            .map(|(locality, lb_endpoints)| locality_group(locality, lb_endpoints))
            .collect(),
        ..Default::default()
    }
}

/// The endpoints of a service port that serve it at some target port and
/// carry the subset's labels.
fn selected<'a>(
    service: &'a ServiceModel,
    port: &'a Port,
    subset_labels: Option<&'a BTreeMap<String, String>>,
) -> impl Iterator<Item = (&'a RegistryEndpoint, u16)> + 'a {
    service.endpoints.iter().filter_map(move |ep| {
        let &target = ep.ports.get(&port.number)?;
        let selected =
            subset_labels.is_none_or(|want| want.iter().all(|(k, v)| ep.labels.get(k) == Some(v)));
        selected.then_some((ep, target))
    })
}

/// Endpoints in Envoy priorities relative to `client`, as Istio assigns
/// them: with `failover_priority`, by its labels ([`label_priority`]), and
/// locality proximity mixed in below them only when `failover` is set too;
/// without it, by locality proximity, `failover` steering the region to fail
/// over to. Priorities are renumbered to have no gaps.
#[allow(clippy::too_many_arguments)] // the selection, the client, and its two rule lists
pub(crate) fn prioritized(
    cluster: &str,
    service: &ServiceModel,
    port: &Port,
    subset_labels: Option<&BTreeMap<String, String>>,
    mesh: Option<&MeshTls>,
    client: &Client<'_>,
    failover: &[(String, String)],
    failover_priority: &[String],
) -> ClusterLoadAssignment {
    let mut groups: BTreeMap<(usize, &str), Vec<LbEndpoint>> = BTreeMap::new();
    for (ep, target) in selected(service, port, subset_labels) {
        let by_locality = || locality_priority(client.locality, &ep.locality, failover);
        let priority = if failover_priority.is_empty() {
            by_locality()
        } else {
            let by_labels = label_priority(client, &ep.labels, &ep.locality, failover_priority);
            if failover.is_empty() {
                by_labels
            } else {
                // Locality ranks 0-4 within each label rank.
                by_labels * 5 + by_locality()
            }
        };
        groups
            .entry((priority, ep.locality.as_str()))
            .or_default()
            .push(mesh_endpoint(ep, target, mesh));
    }
    let used: BTreeSet<usize> = groups.keys().map(|(p, _)| *p).collect();
    let compact: BTreeMap<usize, u32> = used.into_iter().zip(0u32..).collect();
    ClusterLoadAssignment {
        cluster_name: cluster.to_string(),
        endpoints: groups
            .into_iter()
            .map(|((priority, locality), lb_endpoints)| LocalityLbEndpoints {
                priority: compact.get(&priority).copied().unwrap_or_default(),
                ..locality_group(locality, lb_endpoints)
            })
            .collect(),
        ..Default::default()
    }
}

/// Istio's proximity ranks: 0 same region, zone and subzone; 1 same region and
/// zone; 2 same region; 3 another region; 4 another region that is not the
/// `failover` target of the client's region.
fn locality_priority(client: &str, endpoint: &str, failover: &[(String, String)]) -> usize {
    let (c, e) = (parts(client), parts(endpoint));
    if c[0] != e[0] {
        let target = failover.iter().find(|(from, _)| from == c[0]);
        return match target {
            Some((_, to)) if to != e[0] => 4,
            _ => 3,
        };
    }
    if c[1] != e[1] {
        2
    } else if c[2] != e[2] {
        1
    } else {
        0
    }
}

/// The rank of an endpoint by Istio's `failoverPriority` (before
/// renumbering): 0 when every label matches, else `len - i` for the first
/// label `i` that differs, so endpoints matching more leading labels rank
/// higher. An entry `label=value` compares the endpoint's label with `value`
/// instead of with the client's. A missing label has the empty value, so two
/// missing labels match. When the first entry is the network label
/// (`topology.istio.io/network`, without a value), a network mismatch does not
/// stop the comparison: it adds `len` to the rank of the remaining labels.
fn label_priority(
    client: &Client<'_>,
    labels: &BTreeMap<String, String>,
    locality: &str,
    failover_priority: &[String],
) -> usize {
    let lowest = failover_priority.len();
    let network_first = failover_priority.first().map(String::as_str) == Some(NETWORK_LABEL);
    let mut adjust = 0;
    for (i, entry) in failover_priority.iter().enumerate() {
        let (key, want) = match entry.split('=').collect::<Vec<_>>().as_slice() {
            [key, value] => (*key, *value),
            // Istio takes the part before the first `=` as the label and
            // uses the client's value unless there is exactly one `=`.
            parts => {
                let key = parts.first().copied().unwrap_or_default();
                (key, label_value(client.labels, client.locality, key))
            }
        };
        if want != label_value(labels, locality, key) {
            if i == 0 && network_first {
                adjust = lowest;
                continue;
            }
            return lowest - i + adjust;
        }
    }
    adjust
}

/// The value of `key` among `labels`, with the topology labels taken from
/// `locality` where it has that part (as Istio adds them to proxy and
/// endpoint labels); empty when missing.
fn label_value<'a>(labels: &'a BTreeMap<String, String>, locality: &'a str, key: &str) -> &'a str {
    let part = match key {
        REGION_LABEL => Some(0),
        ZONE_LABEL => Some(1),
        SUBZONE_LABEL => Some(2),
        _ => None,
    };
    part.map(|i| parts(locality)[i])
        .filter(|p| !p.is_empty())
        .or_else(|| labels.get(key).map(String::as_str))
        .unwrap_or_default()
}

/// Locality weights per Istio's `distribute`: the first entry whose `from`
/// matches the client's locality gives each `to` pattern its weight, split
/// among the localities it matches in proportion to their own weights;
/// localities no pattern matches are dropped. No matching `from`: unchanged.
pub(crate) fn distribute(
    mut assignment: ClusterLoadAssignment,
    client: &str,
    rules: &[(String, BTreeMap<String, u32>)],
) -> ClusterLoadAssignment {
    let Some((_, to)) = rules
        .iter()
        .find(|(from, _)| locality_matches(client, from))
    else {
        return assignment;
    };
    let mut weights: Vec<Option<u32>> = vec![None; assignment.endpoints.len()];
    for (pattern, &weight) in to {
        let matching: Vec<usize> = assignment
            .endpoints
            .iter()
            .enumerate()
            .filter(|(i, group)| {
                weights[*i].is_none() && locality_matches(&locality_name(group), pattern)
            })
            .map(|(i, _)| i)
            .collect();
        let own = |i: usize| {
            u64::from(
                assignment.endpoints[i]
                    .load_balancing_weight
                    .as_ref()
                    .map_or(1, |w| w.value),
            )
        };
        let total: u64 = matching.iter().map(|&i| own(i)).sum();
        for &i in &matching {
            let share = (own(i) * u64::from(weight)).div_ceil(total.max(1));
            weights[i] = Some(u32::try_from(share).unwrap_or(u32::MAX));
        }
    }
    let groups = std::mem::take(&mut assignment.endpoints);
    assignment.endpoints = groups
        .into_iter()
        .zip(weights)
        .filter_map(|(group, weight)| {
            let weight = weight.filter(|&w| w > 0)?;
            Some(LocalityLbEndpoints {
                load_balancing_weight: Some(UInt32Value { value: weight }),
                ..group
            })
        })
        .collect();
    assignment
}

/// Istio's locality patterns: `region/zone/subzone`, where `*` or a missing
/// part matches anything.
fn locality_matches(locality: &str, pattern: &str) -> bool {
    let have = parts(locality);
    pattern
        .split('/')
        .take(3)
        .enumerate()
        .all(|(i, want)| want == "*" || want == have[i])
}

fn locality_name(group: &LocalityLbEndpoints) -> String {
    group.locality.as_ref().map_or_else(String::new, |l| {
        format!("{}/{}/{}", l.region, l.zone, l.sub_zone)
    })
}

fn parts(locality: &str) -> [&str; 3] {
    let mut split = locality.splitn(3, '/');
    [
        split.next().unwrap_or_default(),
        split.next().unwrap_or_default(),
        split.next().unwrap_or_default(),
    ]
}

/// The proxy's locality: that of the WorkloadEntry at its address in its
/// namespace, else of a registry endpoint at its address; empty if unknown.
pub(crate) fn proxy_locality<'a>(snapshot: &'a Snapshot, proxy: &Proxy) -> &'a str {
    let address = proxy.metadata.address.to_string();
    let entry = snapshot
        .workload_entries
        .iter()
        .filter(|we| we.meta.namespace == proxy.metadata.namespace && we.spec.address == address)
        .find_map(|we| we.spec.locality.as_deref());
    entry
        .or_else(|| {
            snapshot
                .registry
                .services
                .values()
                .filter(|s| s.namespace == proxy.metadata.namespace)
                .flat_map(|s| s.endpoints.iter())
                .find(|ep| ep.address == address && !ep.locality.is_empty())
                .map(|ep| ep.locality.as_str())
        })
        .unwrap_or_default()
}

/// A one-endpoint assignment, for inbound clusters.
pub(crate) fn single(cluster: &str, addr: SocketAddr) -> ClusterLoadAssignment {
    ClusterLoadAssignment {
        cluster_name: cluster.to_string(),
        endpoints: vec![locality_group(
            "",
            vec![lb_endpoint(&addr.ip().to_string(), addr.port(), 1)],
        )],
        ..Default::default()
    }
}

/// An endpoint of a service at its `target` port, marked for plaintext
/// when `mesh` says it takes no mutual TLS (see `compile::tls`).
fn mesh_endpoint(ep: &RegistryEndpoint, target: u16, mesh: Option<&MeshTls>) -> LbEndpoint {
    let mut lb = lb_endpoint(&ep.address, target, ep.weight);
    if mesh.is_some_and(|mesh| mesh.plaintext(ep, target)) {
        lb.metadata = Some(tls::plaintext_metadata());
    }
    lb
}

fn lb_endpoint(address: &str, port: u16, weight: u32) -> LbEndpoint {
    LbEndpoint {
        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
            address: Some(proto::socket_address(address, port)),
            ..Default::default()
        })),
        load_balancing_weight: Some(UInt32Value {
            value: weight.max(1),
        }),
        ..Default::default()
    }
}

fn locality_group(locality: &str, lb_endpoints: Vec<LbEndpoint>) -> LocalityLbEndpoints {
    let weight: u32 = lb_endpoints
        .iter()
        .map(|e| e.load_balancing_weight.as_ref().map_or(1, |w| w.value))
        .sum();
    LocalityLbEndpoints {
        locality: Some(parse_locality(locality)),
        load_balancing_weight: Some(UInt32Value {
            value: weight.max(1),
        }),
        lb_endpoints,
        ..Default::default()
    }
}

/// `region/zone/subzone`, any part possibly missing.
fn parse_locality(locality: &str) -> Locality {
    let [region, zone, sub_zone] = parts(locality);
    Locality {
        region: region.to_string(),
        zone: zone.to_string(),
        sub_zone: sub_zone.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use discovery::Protocol;
    use discovery::model::Resolution;

    use super::*;
    use crate::proxy::NodeMetadata;

    fn endpoint(address: &str, locality: &str, labels: &[(&str, &str)]) -> RegistryEndpoint {
        RegistryEndpoint {
            address: address.into(),
            ports: [(80, 8080)].into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            service_account: None,
            locality: locality.into(),
            weight: 1,
            workload: None,
        }
    }

    fn service(endpoints: Vec<RegistryEndpoint>) -> ServiceModel {
        ServiceModel {
            hostname: "svc.ns.svc.cluster.local".into(),
            namespace: "ns".into(),
            name: Some("svc".into()),
            ports: vec![port()],
            endpoints,
            resolution: Resolution::Static,
            mesh_external: false,
            export_to: Vec::new(),
            addresses: Vec::new(),
            object: None,
        }
    }

    fn port() -> Port {
        Port {
            name: "http".into(),
            number: 80,
            protocol: Protocol::Http,
        }
    }

    /// (priority, locality, addresses) of every group.
    fn shape(cla: &ClusterLoadAssignment) -> Vec<(u32, String, Vec<String>)> {
        cla.endpoints
            .iter()
            .map(|g| {
                let addresses = g
                    .lb_endpoints
                    .iter()
                    .map(|e| match &e.host_identifier {
                        Some(HostIdentifier::Endpoint(ep)) => format!("{:?}", ep.address)
                            .split('"')
                            .nth(1)
                            .unwrap()
                            .to_string(),
                        other => panic!("{other:?}"),
                    })
                    .collect();
                (g.priority, locality_name(g), addresses)
            })
            .collect()
    }

    fn mesh() -> ServiceModel {
        service(vec![
            endpoint("10.0.0.1", "r1/z1", &[]),
            endpoint("10.0.0.2", "r1/z2", &[]),
            endpoint("10.0.0.3", "r2/z3", &[]),
            endpoint("10.0.0.4", "r3/z4", &[]),
            endpoint("10.0.0.5", "r1/z1/s2", &[]),
        ])
    }

    #[test]
    fn priorities_follow_proximity_and_failover_target() {
        let labels = BTreeMap::new();
        let client = Client {
            locality: "r1/z1",
            labels: &labels,
        };
        let failover = vec![("r1".to_string(), "r2".to_string())];
        let svc = mesh();
        let cla = prioritized("c", &svc, &port(), None, None, &client, &failover, &[]);
        assert_eq!(
            shape(&cla),
            vec![
                (0, "r1/z1/".into(), vec!["10.0.0.1".into()]),
                (1, "r1/z1/s2".into(), vec!["10.0.0.5".into()]),
                (2, "r1/z2/".into(), vec!["10.0.0.2".into()]),
                (3, "r2/z3/".into(), vec!["10.0.0.3".into()]),
                (4, "r3/z4/".into(), vec!["10.0.0.4".into()]),
            ]
        );
        // Without a failover rule every other region ranks the same.
        let cla = prioritized("c", &svc, &port(), None, None, &client, &[], &[]);
        let ranks: Vec<u32> = cla.endpoints.iter().map(|g| g.priority).collect();
        assert_eq!(ranks, vec![0, 1, 2, 3, 3]);
    }

    #[test]
    fn priorities_are_compacted() {
        let labels = BTreeMap::new();
        let client = Client {
            locality: "r1/z1",
            labels: &labels,
        };
        let svc = service(vec![
            endpoint("10.0.0.1", "r1/z1", &[]),
            endpoint("10.0.0.3", "r2/z3", &[]),
        ]);
        let cla = prioritized("c", &svc, &port(), None, None, &client, &[], &[]);
        let ranks: Vec<u32> = cla.endpoints.iter().map(|g| g.priority).collect();
        assert_eq!(ranks, vec![0, 1]);
    }

    fn ranks(cla: &ClusterLoadAssignment) -> Vec<(String, u32)> {
        let mut out: Vec<(String, u32)> = shape(cla)
            .into_iter()
            .flat_map(|(p, _, addresses)| addresses.into_iter().map(move |a| (a, p)))
            .collect();
        out.sort();
        out
    }

    fn ranked(pairs: &[(&str, u32)]) -> Vec<(String, u32)> {
        pairs.iter().map(|(a, p)| (a.to_string(), *p)).collect()
    }

    #[test]
    fn failover_priority_mixes_in_locality_only_with_failover() {
        let labels: BTreeMap<String, String> = [("network".to_string(), "n1".to_string())].into();
        let client = Client {
            locality: "r1/z1",
            labels: &labels,
        };
        let svc = service(vec![
            endpoint("10.0.0.1", "r1/z1", &[("network", "n2")]),
            endpoint("10.0.0.2", "r2/z3", &[("network", "n1")]),
            endpoint("10.0.0.3", "r1/z2", &[("network", "n1")]),
            endpoint("10.0.0.4", "r1/z1", &[("network", "n1")]),
        ]);
        let keys = vec!["network".to_string(), ZONE_LABEL.to_string()];
        // Labels alone: both labels match (.4), the network only (.2, .3,
        // whatever their regions), nothing (.1).
        let cla = prioritized("c", &svc, &port(), None, None, &client, &[], &keys);
        assert_eq!(
            ranks(&cla),
            ranked(&[
                ("10.0.0.1", 2),
                ("10.0.0.2", 1),
                ("10.0.0.3", 1),
                ("10.0.0.4", 0)
            ])
        );
        // With failover, locality proximity orders endpoints within a label
        // rank: same region (.3) before another region (.2).
        let failover = vec![("r1".to_string(), "r2".to_string())];
        let cla = prioritized("c", &svc, &port(), None, None, &client, &failover, &keys);
        assert_eq!(
            ranks(&cla),
            ranked(&[
                ("10.0.0.1", 3),
                ("10.0.0.2", 2),
                ("10.0.0.3", 1),
                ("10.0.0.4", 0)
            ])
        );
    }

    #[test]
    fn failover_priority_label_value_compares_with_the_value() {
        // The client carries tier=gold; `tier=silver` prefers silver endpoints
        // all the same.
        let labels: BTreeMap<String, String> = [("tier".to_string(), "gold".to_string())].into();
        let client = Client {
            locality: "r1/z1",
            labels: &labels,
        };
        let svc = service(vec![
            endpoint("10.0.0.1", "r1/z1", &[("tier", "gold")]),
            endpoint("10.0.0.2", "r1/z1", &[("tier", "silver")]),
            endpoint("10.0.0.3", "r1/z1", &[]),
        ]);
        let keys = vec!["tier=silver".to_string()];
        let cla = prioritized("c", &svc, &port(), None, None, &client, &[], &keys);
        assert_eq!(
            ranks(&cla),
            ranked(&[("10.0.0.1", 1), ("10.0.0.2", 0), ("10.0.0.3", 1)])
        );
        // A topology label with a value: the endpoint's zone (from its
        // locality) against the value.
        let keys = vec![format!("{ZONE_LABEL}=z2")];
        let svc = service(vec![
            endpoint("10.0.0.1", "r1/z1", &[]),
            endpoint("10.0.0.2", "r1/z2", &[]),
        ]);
        let cla = prioritized("c", &svc, &port(), None, None, &client, &[], &keys);
        assert_eq!(ranks(&cla), ranked(&[("10.0.0.1", 1), ("10.0.0.2", 0)]));
    }

    #[test]
    fn failover_priority_missing_labels_match_and_network_first_only_lowers() {
        let labels: BTreeMap<String, String> = [
            (NETWORK_LABEL.to_string(), "n1".to_string()),
            ("rack".to_string(), "a".to_string()),
        ]
        .into();
        let client = Client {
            locality: "r1/z1",
            labels: &labels,
        };
        let svc = service(vec![
            endpoint("10.0.0.1", "r1/z1", &[(NETWORK_LABEL, "n1"), ("rack", "a")]),
            endpoint("10.0.0.2", "r1/z1", &[(NETWORK_LABEL, "n1"), ("rack", "b")]),
            endpoint("10.0.0.3", "r1/z1", &[(NETWORK_LABEL, "n2"), ("rack", "a")]),
            endpoint("10.0.0.4", "r1/z1", &[(NETWORK_LABEL, "n2"), ("rack", "b")]),
        ]);
        // [network, rack, team]: nobody has `team`, so it always matches.
        // Raw ranks: .1 0, .2 3-1=2, .3 3+0=3, .4 3+2=5.
        let keys = vec![
            NETWORK_LABEL.to_string(),
            "rack".to_string(),
            "team".to_string(),
        ];
        let cla = prioritized("c", &svc, &port(), None, None, &client, &[], &keys);
        assert_eq!(
            ranks(&cla),
            ranked(&[
                ("10.0.0.1", 0),
                ("10.0.0.2", 1),
                ("10.0.0.3", 2),
                ("10.0.0.4", 3)
            ])
        );
        // Any other first label stops at the first mismatch: .3 and .4 rank
        // the same.
        let keys = vec!["rack".to_string(), NETWORK_LABEL.to_string()];
        let cla = prioritized("c", &svc, &port(), None, None, &client, &[], &keys);
        assert_eq!(
            ranks(&cla),
            ranked(&[
                ("10.0.0.1", 0),
                ("10.0.0.2", 2),
                ("10.0.0.3", 1),
                ("10.0.0.4", 2)
            ])
        );
    }

    #[test]
    fn distribute_weights_localities_for_the_matching_client() {
        let svc = service(vec![
            endpoint("10.0.0.1", "r1/z1", &[]),
            endpoint("10.0.0.2", "r1/z2", &[]),
            endpoint("10.0.0.3", "r1/z2", &[]),
            endpoint("10.0.0.4", "r2/z3", &[]),
        ]);
        let rules = vec![
            (
                "r1/z1/*".to_string(),
                [("r1/z1/*".to_string(), 80), ("r1/z2/*".to_string(), 20)].into(),
            ),
            ("r2/*".to_string(), [("r2/*".to_string(), 100)].into()),
        ];
        let base = load_assignment("c", &svc, &port(), None, None);
        let weights = |cla: &ClusterLoadAssignment| -> Vec<(String, u32)> {
            cla.endpoints
                .iter()
                .map(|g| (locality_name(g), g.load_balancing_weight.unwrap().value))
                .collect()
        };
        let from_z1 = distribute(base.clone(), "r1/z1", &rules);
        assert_eq!(
            weights(&from_z1),
            vec![("r1/z1/".into(), 80), ("r1/z2/".into(), 20)]
        );
        let from_r2 = distribute(base.clone(), "r2/z3", &rules);
        assert_eq!(weights(&from_r2), vec![("r2/z3/".into(), 100)]);
        // No matching `from`: the assignment is unchanged.
        assert_eq!(distribute(base.clone(), "r9/z9", &rules), base);
    }

    #[test]
    fn distribute_splits_a_wildcard_weight_by_locality_weight() {
        let svc = service(vec![
            endpoint("10.0.0.1", "r1/z1", &[]),
            endpoint("10.0.0.2", "r1/z2", &[]),
            endpoint("10.0.0.3", "r1/z2", &[]),
        ]);
        let rules = vec![("*".to_string(), [("r1/*".to_string(), 90)].into())];
        let cla = distribute(load_assignment("c", &svc, &port(), None, None), "", &rules);
        let weights: Vec<u32> = cla
            .endpoints
            .iter()
            .map(|g| g.load_balancing_weight.unwrap().value)
            .collect();
        assert_eq!(weights, vec![30, 60]);
    }

    #[test]
    fn locality_patterns() {
        assert!(locality_matches("r1/z1/s1", "r1"));
        assert!(locality_matches("r1/z1/s1", "r1/*"));
        assert!(locality_matches("r1/z1/s1", "r1/z1/s1"));
        assert!(locality_matches("r1/z1/s1", "*"));
        assert!(!locality_matches("r1/z1/s1", "r1/z2"));
        assert!(!locality_matches("r2/z1", "r1/*"));
    }

    /// A mesh of two clients in different regions calling `cart`, whose
    /// DestinationRule enables locality failover; `catalog` has no rule.
    const MESH: &str = r#"
apiVersion: v1
kind: Service
metadata: {name: cart, namespace: shop}
spec:
  selector: {app: cart}
  ports: [{name: http, port: 80}]
---
apiVersion: v1
kind: Service
metadata: {name: catalog, namespace: shop}
spec:
  selector: {app: cart}
  ports: [{name: http, port: 80}]
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: cart, namespace: shop}
spec:
  host: cart
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 1}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: west-client, namespace: shop}
spec: {address: 127.0.5.1, labels: {app: client}, locality: us-west/a}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: east-client, namespace: shop}
spec: {address: 127.0.5.2, labels: {app: client}, locality: us-east/a}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: cart-west, namespace: shop}
spec: {address: 127.0.5.3, labels: {app: cart}, locality: us-west/a}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: cart-east, namespace: shop}
spec: {address: 127.0.5.4, labels: {app: cart}, locality: us-east/a}
"#;

    fn proxy(address: &str) -> Proxy {
        let address: std::net::IpAddr = address.parse().unwrap();
        Proxy::new(NodeMetadata {
            namespace: "shop".into(),
            workload: "client".into(),
            address,
            labels: [("app".to_string(), "client".to_string())].into(),
            service_account: None,
            app_address: None,
            app_ports: BTreeMap::new(),
            outbound_port: crate::proxy::DEFAULT_OUTBOUND_PORT,
            generator: Default::default(),
            sds: false,
            capture: false,
        })
    }

    fn snapshot() -> Snapshot {
        let mut store = discovery::file::FileStore::default();
        store.apply(std::path::Path::new("mesh.yaml"), MESH);
        Snapshot::build(1, &store.config())
    }

    /// The addresses of `cluster`'s priority-0 endpoints, as compiled for `proxy`.
    fn first_choice(snapshot: &Snapshot, proxy: &Proxy, cluster: &str) -> Vec<String> {
        use prost::Message;
        let resources = crate::compile::compile(snapshot, proxy);
        let resource = &resources.get(crate::resources::ResourceType::Endpoint)[cluster];
        let cla = ClusterLoadAssignment::decode(resource.value()).unwrap();
        shape(&cla)
            .into_iter()
            .filter(|(priority, _, _)| *priority == 0)
            .flat_map(|(_, _, addresses)| addresses)
            .collect()
    }

    #[test]
    fn proxy_locality_comes_from_the_workload_entry_at_its_address() {
        let snapshot = snapshot();
        assert_eq!(snapshot.diagnostics, Vec::new());
        assert_eq!(proxy_locality(&snapshot, &proxy("127.0.5.1")), "us-west/a");
        assert_eq!(proxy_locality(&snapshot, &proxy("127.0.5.2")), "us-east/a");
        assert_eq!(proxy_locality(&snapshot, &proxy("127.0.5.9")), "");
    }

    #[test]
    fn each_proxy_prefers_endpoints_in_its_own_locality() {
        let snapshot = snapshot();
        let cart = "outbound|80||cart.shop.svc.cluster.local";
        let catalog = "outbound|80||catalog.shop.svc.cluster.local";
        let west = proxy("127.0.5.1");
        let east = proxy("127.0.5.2");
        assert_eq!(first_choice(&snapshot, &west, cart), vec!["127.0.5.3"]);
        assert_eq!(first_choice(&snapshot, &east, cart), vec!["127.0.5.4"]);
        // Without locality load balancing, every proxy gets the same, flat list.
        let flat = vec!["127.0.5.4".to_string(), "127.0.5.3".to_string()];
        assert_eq!(first_choice(&snapshot, &west, catalog), flat);
        assert_eq!(first_choice(&snapshot, &east, catalog), flat);
    }
}
