//! Clusters: one per service port (`outbound|PORT||HOST`), one per subset of a
//! DestinationRule (`outbound|PORT|SUBSET|HOST`), and one per inbound port
//! that leads to the local application (`inbound|PORT||`).
//!
//! ```text
//! DestinationRule ─► traffic_policy::effective (per port, per subset) ─► OutboundCluster ─► Cluster
//!                                                  load balancer, connection pool, outlier detection
//! ```

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use discovery::model::Resolution;
use discovery::{Port, ServiceModel};
use envoy_types::pb::envoy::config::cluster::v3::{
    CircuitBreakers, Cluster, OutlierDetection as EnvoyOutlierDetection,
    circuit_breakers::Thresholds,
    cluster::{
        ClusterDiscoveryType, CommonLbConfig, DiscoveryType, DnsLookupFamily, EdsClusterConfig,
        LbConfig, LbPolicy, MaglevLbConfig, OriginalDstLbConfig, RingHashLbConfig,
        common_lb_config::{LocalityConfigSpecifier, LocalityWeightedLbConfig},
    },
};
use envoy_types::pb::envoy::config::core::v3::{
    Http1ProtocolOptions, Http2ProtocolOptions, HttpProtocolOptions as CommonHttpOptions,
};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::{Any, UInt32Value, UInt64Value};
use policy::networking::{
    ConnectionPool, DestinationRule, HashAlgorithm, LbPolicy as IstioLb, LocalityLbSetting,
    OutlierDetection, SimpleLb,
};

use super::endpoint::{self, Client};
use super::names;
use super::proto;
use super::tls::{self, MeshTls};
use super::traffic_policy::{self, EffectivePolicy};

/// Istio's default connect timeout.
pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Istio's circuit-breaker thresholds when a DestinationRule sets none:
/// effectively unlimited, rather than Envoy's 1024 connections and 3 retries.
const UNLIMITED: u32 = u32::MAX;

/// The `typed_extension_protocol_options` key of upstream HTTP options.
const HTTP_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";

/// What an outbound cluster needs: its service port, for a subset the labels
/// its endpoints must carry, and the traffic policy in force for it.
#[derive(Debug)]
pub(crate) struct OutboundCluster<'a> {
    pub(crate) name: String,
    pub(crate) service: &'a ServiceModel,
    pub(crate) port: &'a Port,
    pub(crate) subset_labels: Option<&'a BTreeMap<String, String>>,
    pub(crate) policy: EffectivePolicy<'a>,
    /// What mutual TLS needs from the snapshot; `None` leaves the cluster's
    /// endpoints without TLS metadata (unit tests of other settings).
    pub(crate) mesh: Option<&'a MeshTls>,
}

/// How the endpoints of a cluster depend on the locality of the proxy that
/// receives them (Istio's locality load balancing).
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum LocalityMode<'a> {
    /// `distribute`: locality weights chosen by the proxy's locality.
    Distribute(&'a LocalityLbSetting),
    /// Priorities relative to the proxy's locality, with `failover` and
    /// `failoverPriority`. Istio applies them only with outlier detection,
    /// which is what moves traffic off unhealthy endpoints.
    Failover(Option<&'a LocalityLbSetting>),
}

/// Every outbound cluster of a service: the whole service per port, then each
/// subset of its DestinationRule per port. Passthrough services get none.
pub(crate) fn outbound_clusters<'a>(
    service: &'a ServiceModel,
    rule: Option<&'a DestinationRule>,
) -> Vec<OutboundCluster<'a>> {
    if service.resolution == Resolution::Passthrough {
        return Vec::new();
    }
    let mut clusters = Vec::new();
    for port in &service.ports {
        clusters.push(OutboundCluster {
            name: names::outbound_cluster(port.number, None, &service.hostname),
            service,
            port,
            subset_labels: None,
            policy: traffic_policy::effective(rule, None, port.number),
            mesh: None,
        });
        for subset in rule.map(|r| r.spec.subsets.as_slice()).unwrap_or_default() {
            clusters.push(OutboundCluster {
                name: names::outbound_cluster(port.number, Some(&subset.name), &service.hostname),
                service,
                port,
                subset_labels: Some(&subset.labels),
                policy: traffic_policy::effective(rule, Some(&subset.name), port.number),
                mesh: None,
            });
        }
    }
    clusters
}

impl OutboundCluster<'_> {
    /// Whether the cluster's endpoints come over EDS (otherwise they are
    /// inline, or, for PASSTHROUGH, chosen by the caller).
    pub(crate) fn uses_eds(&self) -> bool {
        self.service.resolution == Resolution::Static && !self.passthrough()
    }

    fn passthrough(&self) -> bool {
        matches!(self.lb(), Some(IstioLb::Simple(SimpleLb::Passthrough)))
    }

    fn lb(&self) -> Option<&IstioLb> {
        self.policy.load_balancer.and_then(|lb| lb.policy.as_ref())
    }

    /// How this cluster's endpoints depend on the receiving proxy's locality;
    /// `None` when they do not, and one assignment serves every proxy.
    pub(crate) fn locality_mode(&self) -> Option<LocalityMode<'_>> {
        if !self.uses_eds() {
            return None;
        }
        let setting = self
            .policy
            .load_balancer
            .and_then(|lb| lb.locality_lb_setting.as_ref());
        if setting.is_some_and(|s| s.enabled == Some(false)) {
            return None;
        }
        match setting {
            Some(s) if !s.distribute.is_empty() => Some(LocalityMode::Distribute(s)),
            // Istio's mesh default enables locality load balancing, so outlier
            // detection alone already prefers the proxy's own locality.
            _ if self.policy.outlier_detection.is_some() => Some(LocalityMode::Failover(setting)),
            _ => None,
        }
    }

    /// The endpoints every proxy gets (no locality preference).
    pub(crate) fn load_assignment(&self) -> ClusterLoadAssignment {
        endpoint::load_assignment(
            &self.name,
            self.service,
            self.port,
            self.subset_labels,
            self.endpoint_tls(),
        )
    }

    /// What marks this cluster's plaintext endpoints: only EDS endpoints
    /// are chosen between by transport socket matches.
    fn endpoint_tls(&self) -> Option<&MeshTls> {
        self.mesh.filter(|_| self.uses_eds())
    }

    /// The cluster's TLS, for a client sidecar that has a mesh certificate
    /// or not: the DestinationRule's `tls`, else auto-mTLS.
    pub(crate) fn secure(&self, cluster: &mut Cluster, client_has_certificate: bool) {
        let identities = || {
            self.mesh
                .map(|mesh| mesh.identities(self.service))
                .unwrap_or_default()
        };
        let subset = self.subset_name();
        let upstream = tls::upstream(
            self.policy.tls,
            client_has_certificate,
            self.uses_eds(),
            tls::sni(self.port.number, subset, &self.service.hostname),
            identities,
        );
        tls::apply(cluster, upstream);
    }

    /// The cluster's TLS for a proxyless gRPC client: see
    /// [`tls::grpc_upstream`].
    pub(crate) fn secure_grpc(&self, cluster: &mut Cluster) {
        let identities = || {
            self.mesh
                .map(|mesh| mesh.identities(self.service))
                .unwrap_or_default()
        };
        cluster.transport_socket = tls::grpc_upstream(self.policy.tls, identities);
    }

    /// The subset part of the cluster's name, if any.
    fn subset_name(&self) -> Option<&str> {
        self.subset_labels?;
        self.name.split('|').nth(2).filter(|s| !s.is_empty())
    }

    /// The endpoints as seen from `client`: with locality priorities or
    /// weights when [`Self::locality_mode`] says so.
    pub(crate) fn load_assignment_for(&self, client: &Client<'_>) -> ClusterLoadAssignment {
        match self.locality_mode() {
            None => self.load_assignment(),
            Some(LocalityMode::Distribute(setting)) => {
                endpoint::distribute(self.load_assignment(), client.locality, &setting.distribute)
            }
            Some(LocalityMode::Failover(setting)) => endpoint::prioritized(
                &self.name,
                self.service,
                self.port,
                self.subset_labels,
                self.endpoint_tls(),
                client,
                setting.map(|s| s.failover.as_slice()).unwrap_or_default(),
                setting
                    .map(|s| s.failover_priority.as_slice())
                    .unwrap_or_default(),
            ),
        }
    }

    pub(crate) fn to_proto(&self) -> Cluster {
        let mut cluster = Cluster {
            name: self.name.clone(),
            connect_timeout: Some(proto::duration(CONNECT_TIMEOUT)),
            lb_policy: LbPolicy::LeastRequest as i32,
            ..Default::default()
        };
        if self.passthrough() {
            // No capture: the caller names the endpoint in
            // `x-envoy-original-dst-host` (IP:port); without it the request gets 503.
            cluster.cluster_discovery_type = Some(ClusterDiscoveryType::Type(
                DiscoveryType::OriginalDst as i32,
            ));
            cluster.lb_config = Some(LbConfig::OriginalDstLbConfig(OriginalDstLbConfig {
                use_http_header: true,
                ..Default::default()
            }));
        } else if self.uses_eds() {
            cluster.cluster_discovery_type =
                Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32));
            cluster.eds_cluster_config = Some(EdsClusterConfig {
                eds_config: Some(proto::ads()),
                service_name: self.name.clone(),
            });
        } else {
            cluster.cluster_discovery_type =
                Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32));
            cluster.dns_lookup_family = DnsLookupFamily::V4Preferred as i32;
            cluster.load_assignment = Some(self.load_assignment());
        }
        apply_load_balancer(&mut cluster, self.lb());
        // As Istio: weighted localities with `distribute`, and with failover
        // the rule configures (`failover` or `failoverPriority`, in force
        // only with outlier detection); not for the mesh's default failover.
        let weighted = match self.locality_mode() {
            Some(LocalityMode::Distribute(_)) => true,
            Some(LocalityMode::Failover(Some(s))) => {
                !s.failover.is_empty() || !s.failover_priority.is_empty()
            }
            _ => false,
        };
        if weighted {
            common_lb_config(&mut cluster).locality_config_specifier = Some(
                LocalityConfigSpecifier::LocalityWeightedLbConfig(LocalityWeightedLbConfig {}),
            );
        }
        let http2 = matches!(
            self.port.protocol,
            discovery::Protocol::Http2 | discovery::Protocol::Grpc
        );
        apply_connection_pool(&mut cluster, self.policy.connection_pool, http2);
        if let Some(outlier) = self.policy.outlier_detection {
            apply_outlier_detection(&mut cluster, outlier);
        }
        cluster
    }
}

fn common_lb_config(cluster: &mut Cluster) -> &mut CommonLbConfig {
    cluster
        .common_lb_config
        .get_or_insert_with(CommonLbConfig::default)
}

/// `loadBalancer.simple` and `consistentHash` (PASSTHROUGH is set up with the
/// discovery type); unset and UNSPECIFIED are Istio's LEAST_REQUEST.
fn apply_load_balancer(cluster: &mut Cluster, lb: Option<&IstioLb>) {
    let policy = match lb {
        None | Some(IstioLb::Simple(SimpleLb::Unspecified | SimpleLb::LeastRequest)) => {
            LbPolicy::LeastRequest
        }
        Some(IstioLb::Simple(SimpleLb::RoundRobin)) => LbPolicy::RoundRobin,
        Some(IstioLb::Simple(SimpleLb::Random)) => LbPolicy::Random,
        Some(IstioLb::Simple(SimpleLb::Passthrough)) => LbPolicy::ClusterProvided,
        Some(IstioLb::ConsistentHash(hash)) => match hash.algorithm {
            HashAlgorithm::RingHash { minimum_ring_size } => {
                cluster.lb_config = Some(LbConfig::RingHashLbConfig(RingHashLbConfig {
                    minimum_ring_size: minimum_ring_size
                        .filter(|&n| n > 0)
                        .map(|value| UInt64Value { value }),
                    ..Default::default()
                }));
                LbPolicy::RingHash
            }
            HashAlgorithm::Maglev { table_size } => {
                cluster.lb_config = Some(LbConfig::MaglevLbConfig(MaglevLbConfig {
                    table_size: table_size
                        .filter(|&n| n > 0)
                        .map(|value| UInt64Value { value }),
                }));
                LbPolicy::Maglev
            }
        },
    };
    cluster.lb_policy = policy as i32;
}

/// `connectionPool`, over Istio's defaults; a limit of 0 counts as unset, as in Istio.
fn apply_connection_pool(cluster: &mut Cluster, pool: Option<&ConnectionPool>, http2: bool) {
    let tcp = pool.and_then(|p| p.tcp.as_ref());
    let http = pool.and_then(|p| p.http.as_ref());
    let limit = |v: Option<u32>| UInt32Value {
        value: v.filter(|&n| n > 0).unwrap_or(UNLIMITED),
    };
    cluster.circuit_breakers = Some(CircuitBreakers {
        thresholds: vec![Thresholds {
            max_connections: Some(limit(tcp.and_then(|t| t.max_connections))),
            max_pending_requests: Some(limit(http.and_then(|h| h.http1_max_pending_requests))),
            max_requests: Some(limit(http.and_then(|h| h.http2_max_requests))),
            max_retries: Some(limit(http.and_then(|h| h.max_retries))),
            track_remaining: true,
            ..Default::default()
        }],
        ..Default::default()
    });
    if let Some(timeout) = tcp.and_then(|t| t.connect_timeout) {
        cluster.connect_timeout = Some(proto::duration(timeout));
    }
    let common = http.and_then(|h| {
        let options = CommonHttpOptions {
            idle_timeout: h.idle_timeout.map(proto::duration),
            max_requests_per_connection: h
                .max_requests_per_connection
                .filter(|&n| n > 0)
                .map(|value| UInt32Value { value }),
            ..Default::default()
        };
        (options != CommonHttpOptions::default()).then_some(options)
    });
    if http2 || common.is_some() {
        cluster.typed_extension_protocol_options =
            [(HTTP_OPTIONS.to_string(), http_options(http2, common))].into();
    }
}

/// Upstream HTTP options: the protocol (HTTP/2 for http2 and grpc ports,
/// else HTTP/1.1) and the per-connection settings of `connectionPool.http`.
fn http_options(http2: bool, common: Option<CommonHttpOptions>) -> Any {
    use http_protocol_options::explicit_http_config::ProtocolConfig;
    let protocol = if http2 {
        ProtocolConfig::Http2ProtocolOptions(Http2ProtocolOptions::default())
    } else {
        ProtocolConfig::HttpProtocolOptions(Http1ProtocolOptions::default())
    };
    proto::any(HttpProtocolOptions {
        common_http_protocol_options: common,
        upstream_protocol_options: Some(
            http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                http_protocol_options::ExplicitHttpConfig {
                    protocol_config: Some(protocol),
                },
            ),
        ),
        ..Default::default()
    })
}

/// `outlierDetection`, as Istio maps it: success-rate ejection off, each
/// error count enforced only when non-zero, and the panic threshold set to
/// `minHealthPercent` (0, which disables panic mode, when unset).
///
/// The deprecated `consecutiveErrors` counts gateway errors (502, 503, 504),
/// as Istio's API reference and its translation before it dropped the field
/// say: gateway ejection on, and 5xx ejection explicitly off, since Envoy's
/// own default would still eject after five 5xx. `consecutive5xxErrors` and
/// `consecutiveGatewayErrors` then override the detector each one sets.
fn apply_outlier_detection(cluster: &mut Cluster, outlier: &OutlierDetection) {
    let enforcing = |n: u32| UInt32Value {
        value: if n > 0 { 100 } else { 0 },
    };
    let mut out = EnvoyOutlierDetection {
        enforcing_success_rate: Some(UInt32Value { value: 0 }),
        interval: outlier.interval.map(proto::duration),
        base_ejection_time: outlier.base_ejection_time.map(proto::duration),
        max_ejection_percent: outlier
            .max_ejection_percent
            .filter(|&n| n > 0)
            .map(|value| UInt32Value { value }),
        ..Default::default()
    };
    if let Some(n) = outlier.consecutive_errors.filter(|&n| n > 0) {
        out.consecutive_gateway_failure = Some(UInt32Value { value: n });
        out.enforcing_consecutive_gateway_failure = Some(enforcing(n));
        out.enforcing_consecutive_5xx = Some(UInt32Value { value: 0 });
    }
    if let Some(n) = outlier.consecutive_5xx_errors {
        out.consecutive_5xx = Some(UInt32Value { value: n });
        out.enforcing_consecutive_5xx = Some(enforcing(n));
    }
    if let Some(n) = outlier.consecutive_gateway_errors {
        out.consecutive_gateway_failure = Some(UInt32Value { value: n });
        out.enforcing_consecutive_gateway_failure = Some(enforcing(n));
    }
    cluster.outlier_detection = Some(out);
    common_lb_config(cluster).healthy_panic_threshold = Some(Percent {
        value: f64::from(outlier.min_health_percent.unwrap_or(0)),
    });
}

/// The cluster behind an inbound listener: the application's own address.
pub(crate) fn inbound(port: u16, app: SocketAddr, http2: bool) -> Cluster {
    let name = names::inbound_cluster(port);
    let mut cluster = Cluster {
        name: name.clone(),
        connect_timeout: Some(proto::duration(CONNECT_TIMEOUT)),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        load_assignment: Some(endpoint::single(&name, app)),
        ..Default::default()
    };
    if http2 {
        cluster.typed_extension_protocol_options = [proto::http2_upstream()].into();
    }
    cluster
}

#[cfg(test)]
mod tests {
    use discovery::Protocol;
    use discovery::model::Endpoint;
    use policy::ObjectMeta;
    use policy::networking::{
        ConsistentHash, DestinationRuleSpec, HashKey, HttpSettings, LoadBalancer,
        PortTrafficPolicy, Subset, TcpSettings, TrafficPolicy,
    };
    use prost::Message;

    use super::*;

    fn service(protocol: Protocol) -> ServiceModel {
        ServiceModel {
            hostname: "svc.ns.svc.cluster.local".into(),
            namespace: "ns".into(),
            name: Some("svc".into()),
            ports: vec![
                Port {
                    name: "http".into(),
                    number: 80,
                    protocol,
                },
                Port {
                    name: "http-admin".into(),
                    number: 9000,
                    protocol,
                },
            ],
            endpoints: vec![Endpoint {
                address: "10.0.0.1".into(),
                ports: [(80, 8080), (9000, 9000)].into(),
                labels: [("version".to_string(), "v1".to_string())].into(),
                service_account: None,
                locality: "r1/z1".into(),
                weight: 1,
                workload: None,
            }],
            resolution: Resolution::Static,
            mesh_external: false,
            export_to: Vec::new(),
            addresses: Vec::new(),
            object: None,
        }
    }

    fn rule(top: TrafficPolicy, v1: Option<TrafficPolicy>) -> DestinationRule {
        DestinationRule {
            meta: ObjectMeta {
                name: "r".into(),
                namespace: "ns".into(),
                ..Default::default()
            },
            spec: DestinationRuleSpec {
                host: "svc".into(),
                traffic_policy: Some(Box::new(top)),
                subsets: vec![Subset {
                    name: "v1".into(),
                    labels: [("version".to_string(), "v1".to_string())].into(),
                    traffic_policy: v1,
                }],
                export_to: Vec::new(),
            },
        }
    }

    fn lb(policy: IstioLb) -> Option<LoadBalancer> {
        Some(LoadBalancer {
            policy: Some(policy),
            locality_lb_setting: None,
        })
    }

    /// The clusters of `svc` under `rule`, by name.
    fn compiled(svc: &ServiceModel, rule: Option<&DestinationRule>) -> BTreeMap<String, Cluster> {
        outbound_clusters(svc, rule)
            .iter()
            .map(|c| (c.name.clone(), c.to_proto()))
            .collect()
    }

    const WHOLE: &str = "outbound|80||svc.ns.svc.cluster.local";
    const V1: &str = "outbound|80|v1|svc.ns.svc.cluster.local";
    const ADMIN: &str = "outbound|9000||svc.ns.svc.cluster.local";

    #[test]
    fn defaults_are_least_request_and_unlimited_circuit_breakers() {
        let svc = service(Protocol::Http);
        let c = &compiled(&svc, None)[WHOLE];
        assert_eq!(c.lb_policy, LbPolicy::LeastRequest as i32);
        let t = &c.circuit_breakers.as_ref().unwrap().thresholds[0];
        for v in [
            &t.max_connections,
            &t.max_pending_requests,
            &t.max_requests,
            &t.max_retries,
        ] {
            assert_eq!(v.unwrap().value, u32::MAX);
        }
        assert!(c.outlier_detection.is_none());
        assert!(c.typed_extension_protocol_options.is_empty());
        assert_eq!(c.connect_timeout.unwrap().seconds, 10);
    }

    #[test]
    fn simple_load_balancers_map_to_lb_policies() {
        let svc = service(Protocol::Http);
        for (simple, want) in [
            (SimpleLb::RoundRobin, LbPolicy::RoundRobin),
            (SimpleLb::Random, LbPolicy::Random),
            (SimpleLb::LeastRequest, LbPolicy::LeastRequest),
            (SimpleLb::Unspecified, LbPolicy::LeastRequest),
        ] {
            let r = rule(
                TrafficPolicy {
                    load_balancer: lb(IstioLb::Simple(simple)),
                    ..Default::default()
                },
                None,
            );
            let clusters = compiled(&svc, Some(&r));
            assert_eq!(clusters[WHOLE].lb_policy, want as i32, "{simple:?}");
            // The subset inherits the rule's policy.
            assert_eq!(clusters[V1].lb_policy, want as i32, "{simple:?}");
        }
    }

    #[test]
    fn passthrough_is_an_original_destination_cluster_chosen_by_header() {
        let svc = service(Protocol::Http);
        let r = rule(
            TrafficPolicy {
                load_balancer: lb(IstioLb::Simple(SimpleLb::Passthrough)),
                ..Default::default()
            },
            None,
        );
        let clusters = outbound_clusters(&svc, Some(&r));
        assert!(clusters.iter().all(|c| !c.uses_eds()));
        let c = clusters[0].to_proto();
        assert_eq!(c.lb_policy, LbPolicy::ClusterProvided as i32);
        assert_eq!(
            c.cluster_discovery_type,
            Some(ClusterDiscoveryType::Type(
                DiscoveryType::OriginalDst as i32
            ))
        );
        assert!(c.eds_cluster_config.is_none() && c.load_assignment.is_none());
        let Some(LbConfig::OriginalDstLbConfig(config)) = c.lb_config else {
            panic!("{:?}", c.lb_config);
        };
        assert!(config.use_http_header);
    }

    #[test]
    fn consistent_hash_selects_ring_hash_or_maglev() {
        let svc = service(Protocol::Http);
        let hashing = |algorithm| {
            rule(
                TrafficPolicy {
                    load_balancer: lb(IstioLb::ConsistentHash(ConsistentHash {
                        key: HashKey::UseSourceIp,
                        algorithm,
                    })),
                    ..Default::default()
                },
                None,
            )
        };
        let ring = hashing(HashAlgorithm::RingHash {
            minimum_ring_size: Some(2048),
        });
        let c = &compiled(&svc, Some(&ring))[WHOLE];
        assert_eq!(c.lb_policy, LbPolicy::RingHash as i32);
        let Some(LbConfig::RingHashLbConfig(config)) = &c.lb_config else {
            panic!("{:?}", c.lb_config);
        };
        assert_eq!(config.minimum_ring_size.unwrap().value, 2048);

        let maglev = hashing(HashAlgorithm::Maglev {
            table_size: Some(65537),
        });
        let c = &compiled(&svc, Some(&maglev))[WHOLE];
        assert_eq!(c.lb_policy, LbPolicy::Maglev as i32);
        assert_eq!(
            c.lb_config,
            Some(LbConfig::MaglevLbConfig(MaglevLbConfig {
                table_size: Some(UInt64Value { value: 65537 })
            }))
        );
    }

    fn decoded_http_options(c: &Cluster) -> HttpProtocolOptions {
        let any = &c.typed_extension_protocol_options[HTTP_OPTIONS];
        HttpProtocolOptions::decode(any.value.as_slice()).unwrap()
    }

    #[test]
    fn connection_pool_sets_thresholds_timeouts_and_http_options() {
        let pool = ConnectionPool {
            tcp: Some(TcpSettings {
                max_connections: Some(7),
                connect_timeout: Some(Duration::from_millis(250)),
            }),
            http: Some(HttpSettings {
                http1_max_pending_requests: Some(3),
                http2_max_requests: Some(11),
                max_requests_per_connection: Some(1),
                max_retries: Some(2),
                idle_timeout: Some(Duration::from_secs(30)),
            }),
        };
        for protocol in [Protocol::Http, Protocol::Grpc] {
            let svc = service(protocol);
            let r = rule(
                TrafficPolicy {
                    connection_pool: Some(pool.clone()),
                    ..Default::default()
                },
                None,
            );
            let c = &compiled(&svc, Some(&r))[WHOLE];
            let t = &c.circuit_breakers.as_ref().unwrap().thresholds[0];
            assert_eq!(t.max_connections.unwrap().value, 7);
            assert_eq!(t.max_pending_requests.unwrap().value, 3);
            assert_eq!(t.max_requests.unwrap().value, 11);
            assert_eq!(t.max_retries.unwrap().value, 2);
            assert_eq!(c.connect_timeout.unwrap().nanos, 250_000_000);
            let options = decoded_http_options(c);
            let common = options.common_http_protocol_options.unwrap();
            assert_eq!(common.max_requests_per_connection.unwrap().value, 1);
            assert_eq!(common.idle_timeout.unwrap().seconds, 30);
            let Some(http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(explicit)) =
                options.upstream_protocol_options
            else {
                panic!("no explicit protocol");
            };
            let http2 = matches!(
                explicit.protocol_config,
                Some(http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(_))
            );
            assert_eq!(http2, protocol == Protocol::Grpc);
        }
    }

    #[test]
    fn zero_limits_count_as_unset() {
        let svc = service(Protocol::Http);
        let r = rule(
            TrafficPolicy {
                connection_pool: Some(ConnectionPool {
                    tcp: Some(TcpSettings {
                        max_connections: Some(0),
                        connect_timeout: None,
                    }),
                    http: None,
                }),
                ..Default::default()
            },
            None,
        );
        let c = &compiled(&svc, Some(&r))[WHOLE];
        let t = &c.circuit_breakers.as_ref().unwrap().thresholds[0];
        assert_eq!(t.max_connections.unwrap().value, u32::MAX);
    }

    #[test]
    fn outlier_detection_follows_istio() {
        let svc = service(Protocol::Http);
        let r = rule(
            TrafficPolicy {
                outlier_detection: Some(OutlierDetection {
                    consecutive_5xx_errors: Some(0),
                    consecutive_gateway_errors: Some(3),
                    consecutive_errors: None,
                    interval: Some(Duration::from_secs(5)),
                    base_ejection_time: Some(Duration::from_secs(60)),
                    max_ejection_percent: Some(50),
                    min_health_percent: None,
                }),
                ..Default::default()
            },
            Some(TrafficPolicy {
                outlier_detection: Some(OutlierDetection {
                    consecutive_5xx_errors: Some(2),
                    min_health_percent: Some(30),
                    ..Default::default()
                }),
                ..Default::default()
            }),
        );
        let clusters = compiled(&svc, Some(&r));
        let whole = &clusters[WHOLE];
        let o = whole.outlier_detection.as_ref().unwrap();
        assert_eq!(o.consecutive_5xx.unwrap().value, 0);
        assert_eq!(o.enforcing_consecutive_5xx.unwrap().value, 0);
        assert_eq!(o.consecutive_gateway_failure.unwrap().value, 3);
        assert_eq!(o.enforcing_consecutive_gateway_failure.unwrap().value, 100);
        assert_eq!(o.enforcing_success_rate.unwrap().value, 0);
        assert_eq!(o.interval.unwrap().seconds, 5);
        assert_eq!(o.base_ejection_time.unwrap().seconds, 60);
        assert_eq!(o.max_ejection_percent.unwrap().value, 50);
        let panic = |c: &Cluster| {
            c.common_lb_config
                .as_ref()
                .unwrap()
                .healthy_panic_threshold
                .unwrap()
                .value
        };
        assert_eq!(panic(whole), 0.0);

        // The subset's outlier detection replaces the rule's as a whole.
        let v1 = &clusters[V1];
        let o = v1.outlier_detection.as_ref().unwrap();
        assert_eq!(o.consecutive_5xx.unwrap().value, 2);
        assert_eq!(o.enforcing_consecutive_5xx.unwrap().value, 100);
        assert!(o.consecutive_gateway_failure.is_none() && o.interval.is_none());
        assert_eq!(panic(v1), 30.0);
    }

    /// The outlier detection compiled for the whole service under `outlier`.
    fn outlier_of(outlier: OutlierDetection) -> EnvoyOutlierDetection {
        let svc = service(Protocol::Http);
        let r = rule(
            TrafficPolicy {
                outlier_detection: Some(outlier),
                ..Default::default()
            },
            None,
        );
        compiled(&svc, Some(&r))[WHOLE]
            .outlier_detection
            .clone()
            .unwrap()
    }

    /// (consecutive_5xx, enforcing_consecutive_5xx, consecutive_gateway_failure,
    /// enforcing_consecutive_gateway_failure); `None` where unset.
    fn detectors(o: &EnvoyOutlierDetection) -> [Option<u32>; 4] {
        [
            o.consecutive_5xx,
            o.enforcing_consecutive_5xx,
            o.consecutive_gateway_failure,
            o.enforcing_consecutive_gateway_failure,
        ]
        .map(|v| v.map(|v| v.value))
    }

    #[test]
    fn deprecated_consecutive_errors_are_gateway_errors_with_5xx_ejection_off() {
        let o = outlier_of(OutlierDetection {
            consecutive_errors: Some(3),
            ..Default::default()
        });
        assert_eq!(detectors(&o), [None, Some(0), Some(3), Some(100)]);
        // 0 sets nothing, as in Istio.
        let o = outlier_of(OutlierDetection {
            consecutive_errors: Some(0),
            ..Default::default()
        });
        assert_eq!(detectors(&o), [None; 4]);
        // consecutive5xxErrors sets the 5xx detector over it.
        let o = outlier_of(OutlierDetection {
            consecutive_errors: Some(3),
            consecutive_5xx_errors: Some(4),
            ..Default::default()
        });
        assert_eq!(detectors(&o), [Some(4), Some(100), Some(3), Some(100)]);
        // consecutiveGatewayErrors replaces its gateway detector; 5xx stays off.
        let o = outlier_of(OutlierDetection {
            consecutive_errors: Some(3),
            consecutive_gateway_errors: Some(0),
            ..Default::default()
        });
        assert_eq!(detectors(&o), [None, Some(0), Some(0), Some(0)]);
    }

    #[test]
    fn port_level_settings_apply_to_their_port_only() {
        let svc = service(Protocol::Http);
        let r = rule(
            TrafficPolicy {
                load_balancer: lb(IstioLb::Simple(SimpleLb::Random)),
                port_level_settings: vec![PortTrafficPolicy {
                    port: 9000,
                    load_balancer: lb(IstioLb::Simple(SimpleLb::RoundRobin)),
                    ..Default::default()
                }],
                ..Default::default()
            },
            None,
        );
        let clusters = compiled(&svc, Some(&r));
        assert_eq!(clusters[WHOLE].lb_policy, LbPolicy::Random as i32);
        assert_eq!(clusters[ADMIN].lb_policy, LbPolicy::RoundRobin as i32);
    }

    #[test]
    fn locality_mode_needs_outlier_detection_or_distribute() {
        let svc = service(Protocol::Http);
        let setting = LocalityLbSetting {
            failover: vec![("r1".into(), "r2".into())],
            ..Default::default()
        };
        let with = |outlier: bool, setting: LocalityLbSetting| {
            rule(
                TrafficPolicy {
                    load_balancer: Some(LoadBalancer {
                        policy: None,
                        locality_lb_setting: Some(setting),
                    }),
                    outlier_detection: outlier.then(OutlierDetection::default),
                    ..Default::default()
                },
                None,
            )
        };
        let no_outlier = with(false, setting.clone());
        assert!(
            outbound_clusters(&svc, Some(&no_outlier))[0]
                .locality_mode()
                .is_none()
        );
        let failover = with(true, setting.clone());
        let clusters = outbound_clusters(&svc, Some(&failover));
        assert!(matches!(
            clusters[0].locality_mode(),
            Some(LocalityMode::Failover(Some(_)))
        ));
        // Failover the rule configures weighs localities, as Istio does.
        assert!(matches!(
            clusters[0]
                .to_proto()
                .common_lb_config
                .unwrap()
                .locality_config_specifier,
            Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(_))
        ));
        // The mesh's default failover (outlier detection alone) does not.
        let default = rule(
            TrafficPolicy {
                outlier_detection: Some(OutlierDetection::default()),
                ..Default::default()
            },
            None,
        );
        let clusters = outbound_clusters(&svc, Some(&default));
        assert!(matches!(
            clusters[0].locality_mode(),
            Some(LocalityMode::Failover(None))
        ));
        assert!(
            clusters[0]
                .to_proto()
                .common_lb_config
                .unwrap()
                .locality_config_specifier
                .is_none()
        );
        let disabled = with(
            true,
            LocalityLbSetting {
                enabled: Some(false),
                ..setting
            },
        );
        assert!(
            outbound_clusters(&svc, Some(&disabled))[0]
                .locality_mode()
                .is_none()
        );
        let distribute = with(
            false,
            LocalityLbSetting {
                distribute: vec![("r1/*".into(), [("r1/*".to_string(), 100)].into())],
                ..Default::default()
            },
        );
        let clusters = outbound_clusters(&svc, Some(&distribute));
        assert!(matches!(
            clusters[0].locality_mode(),
            Some(LocalityMode::Distribute(_))
        ));
        let c = clusters[0].to_proto();
        assert!(matches!(
            c.common_lb_config.unwrap().locality_config_specifier,
            Some(LocalityConfigSpecifier::LocalityWeightedLbConfig(_))
        ));
        // Without a rule, endpoints are the same for every proxy.
        assert!(outbound_clusters(&svc, None)[0].locality_mode().is_none());
    }
}
