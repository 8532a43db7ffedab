//! The traffic policy in force for one cluster: a DestinationRule's
//! `trafficPolicy`, its `portLevelSettings` and a subset's `trafficPolicy`,
//! merged the way Istio merges them.
//!
//! ```text
//! rule.trafficPolicy ─► rule portLevelSettings[port] ─► subset.trafficPolicy ─► subset portLevelSettings[port]
//!   (weakest)                                                                     (strongest)
//! ```
//!
//! The unit of the merge is each of `loadBalancer`, `connectionPool` and
//! `outlierDetection` as a whole: a later layer that sets one replaces it.
//! A matching port-level entry replaces all three at once, so a part it
//! leaves unset falls back to the default rather than being inherited
//! (Istio documents this for `portLevelSettings`).

use envoy_types::pb::envoy::config::route::v3::route_action::{HashPolicy, hash_policy};
use policy::networking::{
    ClientTls, ConnectionPool, DestinationRule, HashKey, LbPolicy, LoadBalancer, OutlierDetection,
    PortTrafficPolicy, TrafficPolicy,
};

use super::proto;

/// The merged policy of one cluster; `None` parts take Istio's defaults.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct EffectivePolicy<'a> {
    pub(crate) load_balancer: Option<&'a LoadBalancer>,
    pub(crate) connection_pool: Option<&'a ConnectionPool>,
    pub(crate) outlier_detection: Option<&'a OutlierDetection>,
    pub(crate) tls: Option<&'a ClientTls>,
}

impl<'a> EffectivePolicy<'a> {
    /// Lays the parts `policy` sets over these ones.
    fn overlay(self, policy: &'a TrafficPolicy) -> Self {
        EffectivePolicy {
            load_balancer: policy.load_balancer.as_ref().or(self.load_balancer),
            connection_pool: policy.connection_pool.as_ref().or(self.connection_pool),
            outlier_detection: policy.outlier_detection.as_ref().or(self.outlier_detection),
            tls: policy.tls.as_ref().or(self.tls),
        }
    }

    /// A policy, then its entry for `port` (which replaces every part).
    fn layer(self, policy: &'a TrafficPolicy, port: u16) -> Self {
        match port_level(policy, port) {
            Some(p) => EffectivePolicy {
                load_balancer: p.load_balancer.as_ref(),
                connection_pool: p.connection_pool.as_ref(),
                outlier_detection: p.outlier_detection.as_ref(),
                tls: p.tls.as_ref(),
            },
            None => self.overlay(policy),
        }
    }
}

fn port_level(policy: &TrafficPolicy, port: u16) -> Option<&PortTrafficPolicy> {
    policy.port_level_settings.iter().find(|p| p.port == port)
}

/// The policy of the cluster for `port` of the rule's host, and `subset` of it
/// if named. A subset the rule does not define adds nothing.
pub(crate) fn effective<'a>(
    rule: Option<&'a DestinationRule>,
    subset: Option<&str>,
    port: u16,
) -> EffectivePolicy<'a> {
    let Some(rule) = rule else {
        return EffectivePolicy::default();
    };
    let mut policy = EffectivePolicy::default();
    if let Some(top) = rule.spec.traffic_policy.as_deref() {
        policy = policy.layer(top, port);
    }
    let subset_policy = subset.and_then(|name| {
        rule.spec
            .subsets
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.traffic_policy.as_ref())
    });
    if let Some(sp) = subset_policy {
        policy = policy.layer(sp, port);
    }
    policy
}

/// The route-side hash policy of the consistent-hash load balancer of
/// `policy`; empty when it does not hash.
pub(crate) fn hash_policies_of(policy: &EffectivePolicy<'_>) -> Vec<HashPolicy> {
    let Some(LbPolicy::ConsistentHash(hash)) =
        policy.load_balancer.and_then(|lb| lb.policy.as_ref())
    else {
        return Vec::new();
    };
    let specifier =
        match &hash.key {
            HashKey::HttpHeaderName(name) => {
                hash_policy::PolicySpecifier::Header(hash_policy::Header {
                    header_name: name.clone(),
                    ..Default::default()
                })
            }
            HashKey::HttpCookie { name, path, ttl } => {
                hash_policy::PolicySpecifier::Cookie(hash_policy::Cookie {
                    name: name.clone(),
                    path: path.clone().unwrap_or_default(),
                    ttl: ttl.map(proto::duration),
                    ..Default::default()
                })
            }
            HashKey::UseSourceIp => hash_policy::PolicySpecifier::ConnectionProperties(
                hash_policy::ConnectionProperties { source_ip: true },
            ),
            HashKey::HttpQueryParameterName(name) => {
                hash_policy::PolicySpecifier::QueryParameter(hash_policy::QueryParameter {
                    name: name.clone(),
                })
            }
        };
    vec![HashPolicy {
        policy_specifier: Some(specifier),
        terminal: false,
    }]
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use policy::ObjectMeta;
    use policy::networking::{
        ConsistentHash, DestinationRuleSpec, HashAlgorithm, SimpleLb, Subset, TcpSettings,
    };

    use super::*;

    fn simple(lb: SimpleLb) -> LoadBalancer {
        LoadBalancer {
            policy: Some(LbPolicy::Simple(lb)),
            locality_lb_setting: None,
        }
    }

    fn hashing(key: HashKey) -> LoadBalancer {
        LoadBalancer {
            policy: Some(LbPolicy::ConsistentHash(ConsistentHash {
                key,
                algorithm: HashAlgorithm::RingHash {
                    minimum_ring_size: None,
                },
            })),
            locality_lb_setting: None,
        }
    }

    fn pool(max: u32) -> ConnectionPool {
        ConnectionPool {
            tcp: Some(TcpSettings {
                max_connections: Some(max),
                connect_timeout: None,
            }),
            http: None,
        }
    }

    fn rule(top: Option<TrafficPolicy>, subsets: Vec<Subset>) -> DestinationRule {
        DestinationRule {
            meta: ObjectMeta {
                name: "r".into(),
                namespace: "ns".into(),
                ..Default::default()
            },
            spec: DestinationRuleSpec {
                host: "svc.ns.svc.cluster.local".into(),
                traffic_policy: top.map(Box::new),
                subsets,
                export_to: Vec::new(),
            },
        }
    }

    fn subset(name: &str, policy: Option<TrafficPolicy>) -> Subset {
        Subset {
            name: name.into(),
            labels: [("version".to_string(), name.to_string())].into(),
            traffic_policy: policy,
        }
    }

    #[test]
    fn no_rule_means_defaults() {
        assert_eq!(effective(None, Some("v1"), 80), EffectivePolicy::default());
    }

    #[test]
    fn subset_overrides_rule_part_by_part() {
        let r = rule(
            Some(TrafficPolicy {
                load_balancer: Some(simple(SimpleLb::Random)),
                connection_pool: Some(pool(10)),
                ..Default::default()
            }),
            vec![subset(
                "v1",
                Some(TrafficPolicy {
                    load_balancer: Some(simple(SimpleLb::RoundRobin)),
                    ..Default::default()
                }),
            )],
        );
        let whole = effective(Some(&r), None, 80);
        assert_eq!(whole.load_balancer, Some(&simple(SimpleLb::Random)));
        assert_eq!(whole.connection_pool, Some(&pool(10)));

        let v1 = effective(Some(&r), Some("v1"), 80);
        assert_eq!(v1.load_balancer, Some(&simple(SimpleLb::RoundRobin)));
        // Not set on the subset: inherited from the rule.
        assert_eq!(v1.connection_pool, Some(&pool(10)));
        assert_eq!(v1.outlier_detection, None);

        // An unknown subset adds nothing.
        assert_eq!(effective(Some(&r), Some("v9"), 80), whole);
    }

    #[test]
    fn port_level_replaces_every_part_for_its_port_only() {
        let r = rule(
            Some(TrafficPolicy {
                load_balancer: Some(simple(SimpleLb::Random)),
                connection_pool: Some(pool(10)),
                outlier_detection: None,
                tls: None,
                port_level_settings: vec![PortTrafficPolicy {
                    port: 9080,
                    connection_pool: Some(pool(5)),
                    ..Default::default()
                }],
            }),
            vec![subset("v1", None)],
        );
        let p9080 = effective(Some(&r), None, 9080);
        assert_eq!(p9080.connection_pool, Some(&pool(5)));
        // Port-level settings do not inherit the rule's other parts.
        assert_eq!(p9080.load_balancer, None);
        let p80 = effective(Some(&r), None, 80);
        assert_eq!(p80.connection_pool, Some(&pool(10)));
        assert_eq!(p80.load_balancer, Some(&simple(SimpleLb::Random)));
        // A subset without a policy takes the rule's, port-level included.
        assert_eq!(effective(Some(&r), Some("v1"), 9080), p9080);
    }

    #[test]
    fn subset_beats_rule_port_level_and_subset_port_level_beats_all() {
        let r = rule(
            Some(TrafficPolicy {
                port_level_settings: vec![PortTrafficPolicy {
                    port: 9080,
                    load_balancer: Some(simple(SimpleLb::Random)),
                    connection_pool: Some(pool(5)),
                    ..Default::default()
                }],
                ..Default::default()
            }),
            vec![
                subset(
                    "v1",
                    Some(TrafficPolicy {
                        load_balancer: Some(simple(SimpleLb::RoundRobin)),
                        ..Default::default()
                    }),
                ),
                subset(
                    "v2",
                    Some(TrafficPolicy {
                        load_balancer: Some(simple(SimpleLb::RoundRobin)),
                        port_level_settings: vec![PortTrafficPolicy {
                            port: 9080,
                            connection_pool: Some(pool(1)),
                            ..Default::default()
                        }],
                        ..Default::default()
                    }),
                ),
            ],
        );
        let v1 = effective(Some(&r), Some("v1"), 9080);
        assert_eq!(v1.load_balancer, Some(&simple(SimpleLb::RoundRobin)));
        assert_eq!(v1.connection_pool, Some(&pool(5)));
        let v2 = effective(Some(&r), Some("v2"), 9080);
        assert_eq!(v2.connection_pool, Some(&pool(1)));
        assert_eq!(v2.load_balancer, None);
        let v2_other = effective(Some(&r), Some("v2"), 80);
        assert_eq!(v2_other.load_balancer, Some(&simple(SimpleLb::RoundRobin)));
        assert_eq!(v2_other.connection_pool, None);
    }

    fn hash_of(key: HashKey) -> Vec<HashPolicy> {
        let lb = hashing(key);
        hash_policies_of(&EffectivePolicy {
            load_balancer: Some(&lb),
            ..Default::default()
        })
    }

    #[test]
    fn hash_keys_map_to_route_hash_policies() {
        let header = hash_of(HashKey::HttpHeaderName("x-user".into()));
        assert_eq!(
            header[0].policy_specifier,
            Some(hash_policy::PolicySpecifier::Header(hash_policy::Header {
                header_name: "x-user".into(),
                regex_rewrite: None,
            }))
        );
        let cookie = hash_of(HashKey::HttpCookie {
            name: "session".into(),
            path: Some("/".into()),
            ttl: Some(Duration::from_secs(60)),
        });
        let Some(hash_policy::PolicySpecifier::Cookie(c)) = &cookie[0].policy_specifier else {
            panic!("not a cookie: {cookie:?}");
        };
        assert_eq!((c.name.as_str(), c.path.as_str()), ("session", "/"));
        assert_eq!(c.ttl.as_ref().map(|t| t.seconds), Some(60));
        let ip = hash_of(HashKey::UseSourceIp);
        assert_eq!(
            ip[0].policy_specifier,
            Some(hash_policy::PolicySpecifier::ConnectionProperties(
                hash_policy::ConnectionProperties { source_ip: true }
            ))
        );
        let query = hash_of(HashKey::HttpQueryParameterName("user".into()));
        assert_eq!(
            query[0].policy_specifier,
            Some(hash_policy::PolicySpecifier::QueryParameter(
                hash_policy::QueryParameter {
                    name: "user".into()
                }
            ))
        );
        assert!(query.iter().all(|h| !h.terminal) && query.len() == 1);
    }

    #[test]
    fn no_hash_policy_without_consistent_hash() {
        let lb = simple(SimpleLb::RoundRobin);
        let policy = EffectivePolicy {
            load_balancer: Some(&lb),
            ..Default::default()
        };
        assert!(hash_policies_of(&policy).is_empty());
        assert!(hash_policies_of(&EffectivePolicy::default()).is_empty());
    }
}
