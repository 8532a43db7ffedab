//! What a simulated proxy needs to know of a resource, decoded once per
//! distinct content.
//!
//! A proxy's flow needs only a few facts of each resource: the EDS name of a
//! cluster, the RDS names of a listener; the harness needs the endpoint
//! addresses of a ClusterLoadAssignment and the revision markers of a route
//! configuration to tell by content that a change arrived. Every proxy of a
//! fleet receives the same bytes for the same resource, so the facts are kept
//! in one [`FactCache`] keyed by a hash of the bytes: each distinct resource
//! is decoded once, and a proxy holds only a reference to its facts. That
//! keeps the harness at a few hundred bytes per resource and proxy, where
//! keeping the bytes would take megabytes per proxy in a large mesh.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::cluster::v3::cluster::{ClusterDiscoveryType, DiscoveryType};
use envoy_types::pb::envoy::config::core::v3::address::Address as AddressKind;
use envoy_types::pb::envoy::config::core::v3::{HeaderValueOption, socket_address};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::endpoint::v3::lb_endpoint::HostIdentifier;
use envoy_types::pb::envoy::config::listener::v3::{Filter, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::route::Action;
use envoy_types::pb::envoy::config::route::v3::route_action::ClusterSpecifier;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpConnectionManager;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::RouteSpecifier;
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use crate::mesh::MARKER_HEADER;

/// The xDS types a sidecar subscribes to over ADS, in Envoy's request order.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum XdsType {
    Cluster,
    Endpoint,
    Listener,
    Route,
}

impl XdsType {
    pub const ALL: [XdsType; 4] = [
        XdsType::Cluster,
        XdsType::Endpoint,
        XdsType::Listener,
        XdsType::Route,
    ];

    pub const fn type_url(self) -> &'static str {
        match self {
            XdsType::Cluster => "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            XdsType::Endpoint => {
                "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
            }
            XdsType::Listener => "type.googleapis.com/envoy.config.listener.v3.Listener",
            XdsType::Route => "type.googleapis.com/envoy.config.route.v3.RouteConfiguration",
        }
    }

    pub fn from_type_url(url: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.type_url() == url)
    }

    /// The short name used in reports: cds, eds, lds, rds.
    pub const fn short(self) -> &'static str {
        match self {
            XdsType::Cluster => "cds",
            XdsType::Endpoint => "eds",
            XdsType::Listener => "lds",
            XdsType::Route => "rds",
        }
    }

    pub const fn index(self) -> usize {
        self as usize
    }

    /// CDS and LDS are wildcard subscriptions; EDS and RDS name what they want.
    pub const fn is_wildcard(self) -> bool {
        matches!(self, XdsType::Cluster | XdsType::Listener)
    }
}

const HCM_TYPE_URL: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";

/// One decoded resource.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Facts {
    pub name: Arc<str>,
    pub kind: Kind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A cluster; `eds` is the name its endpoints are requested by, if EDS.
    Cluster { eds: Option<String> },
    /// A ClusterLoadAssignment's endpoint IP addresses, sorted.
    Endpoints { addresses: Vec<String> },
    /// The RDS names of a listener's HTTP connection managers, sorted.
    Listener { routes: Vec<String> },
    /// The values of [`MARKER_HEADER`] anywhere in a route configuration.
    Routes { markers: Vec<String> },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("resource of type {found} in a {expected} response")]
    WrongType {
        expected: &'static str,
        found: String,
    },
    #[error("{type_url}: cannot decode: {reason}")]
    Decode {
        type_url: &'static str,
        reason: String,
    },
}

/// Decodes the facts of one resource of type `ty`.
pub fn decode(ty: XdsType, any: &Any) -> Result<Facts, Error> {
    if any.type_url != ty.type_url() {
        return Err(Error::WrongType {
            expected: ty.short(),
            found: any.type_url.clone(),
        });
    }
    let bad = |e: prost::DecodeError| Error::Decode {
        type_url: ty.type_url(),
        reason: e.to_string(),
    };
    let bytes = any.value.as_slice();
    let (name, kind) = match ty {
        XdsType::Cluster => {
            let c = Cluster::decode(bytes).map_err(bad)?;
            let is_eds = c.cluster_discovery_type
                == Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32));
            let eds = is_eds.then(|| match c.eds_cluster_config {
                Some(cfg) if !cfg.service_name.is_empty() => cfg.service_name,
                _ => c.name.clone(),
            });
            (c.name, Kind::Cluster { eds })
        }
        XdsType::Endpoint => {
            let cla = ClusterLoadAssignment::decode(bytes).map_err(bad)?;
            let mut addresses: Vec<String> = cla
                .endpoints
                .into_iter()
                .flat_map(|l| l.lb_endpoints)
                .filter_map(|lb| match lb.host_identifier {
                    Some(HostIdentifier::Endpoint(e)) => e.address,
                    _ => None,
                })
                .filter_map(|a| match a.address {
                    Some(AddressKind::SocketAddress(s)) => Some(s),
                    _ => None,
                })
                .filter(|s| {
                    matches!(
                        s.port_specifier,
                        Some(socket_address::PortSpecifier::PortValue(_)) | None
                    )
                })
                .map(|s| s.address)
                .collect();
            addresses.sort();
            addresses.dedup();
            (cla.cluster_name, Kind::Endpoints { addresses })
        }
        XdsType::Listener => {
            let l = Listener::decode(bytes).map_err(bad)?;
            let mut routes = Vec::new();
            let chains = l
                .filter_chains
                .iter()
                .chain(l.default_filter_chain.as_ref());
            for filter in chains.flat_map(|c| c.filters.iter()) {
                if let Some(name) = rds_name_of_filter(filter) {
                    routes.push(name);
                }
            }
            if let Some(api) = l
                .api_listener
                .as_ref()
                .and_then(|a| a.api_listener.as_ref())
            {
                routes.extend(rds_name_of_any(api));
            }
            routes.sort();
            routes.dedup();
            (l.name, Kind::Listener { routes })
        }
        XdsType::Route => {
            let rc = RouteConfiguration::decode(bytes).map_err(bad)?;
            let mut markers = Vec::new();
            collect_markers(&rc.request_headers_to_add, &mut markers);
            for vh in &rc.virtual_hosts {
                collect_markers(&vh.request_headers_to_add, &mut markers);
                for route in &vh.routes {
                    collect_markers(&route.request_headers_to_add, &mut markers);
                    if let Some(Action::Route(action)) = &route.action
                        && let Some(ClusterSpecifier::WeightedClusters(wc)) =
                            &action.cluster_specifier
                    {
                        for c in &wc.clusters {
                            collect_markers(&c.request_headers_to_add, &mut markers);
                        }
                    }
                }
            }
            markers.sort();
            markers.dedup();
            (rc.name, Kind::Routes { markers })
        }
    };
    Ok(Facts {
        name: name.into(),
        kind,
    })
}

fn rds_name_of_filter(filter: &Filter) -> Option<String> {
    match &filter.config_type {
        Some(filter::ConfigType::TypedConfig(any)) => rds_name_of_any(any),
        _ => None,
    }
}

fn rds_name_of_any(any: &Any) -> Option<String> {
    if any.type_url != HCM_TYPE_URL {
        return None;
    }
    let hcm = HttpConnectionManager::decode(any.value.as_slice()).ok()?;
    match hcm.route_specifier {
        Some(RouteSpecifier::Rds(rds)) => Some(rds.route_config_name),
        _ => None,
    }
}

fn collect_markers(headers: &[HeaderValueOption], out: &mut Vec<String>) {
    for h in headers.iter().filter_map(|o| o.header.as_ref()) {
        if h.key.eq_ignore_ascii_case(MARKER_HEADER) {
            let value = if h.value.is_empty() {
                String::from_utf8_lossy(&h.raw_value).into_owned()
            } else {
                h.value.clone()
            };
            out.push(value);
        }
    }
}

/// Facts by content, shared by every proxy of a run.
#[derive(Debug, Default)]
pub struct FactCache {
    entries: Mutex<HashMap<(XdsType, u64, usize), Arc<Facts>>>,
}

impl FactCache {
    /// The facts of `any`, decoding it only if these bytes were not seen before.
    pub fn get(&self, ty: XdsType, any: &Any) -> Result<Arc<Facts>, Error> {
        let key = (ty, content_hash(&any.value), any.value.len());
        if let Some(found) = self.lock().get(&key) {
            return Ok(found.clone());
        }
        let facts = Arc::new(decode(ty, any)?);
        Ok(self.lock().entry(key).or_insert(facts).clone())
    }

    /// Distinct resources decoded so far.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(XdsType, u64, usize), Arc<Facts>>> {
        // A panic while holding the lock leaves the map itself intact.
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A fast 64-bit hash of bytes (a multiply-xorshift over 8-byte words). It
/// identifies content within one run, alongside the type and length; it is
/// not a checksum and is never sent anywhere.
pub fn content_hash(bytes: &[u8]) -> u64 {
    const K: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut h: u64 = 0x243F_6A88_85A3_08D3 ^ (bytes.len() as u64).wrapping_mul(K);
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        h = (h ^ w).wrapping_mul(K);
        h ^= h >> 29;
    }
    let mut tail = [0u8; 8];
    let rest = chunks.remainder();
    tail[..rest.len()].copy_from_slice(rest);
    h = (h ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    h ^= h >> 32;
    h.wrapping_mul(K) ^ (h >> 29)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use envoy_types::pb::envoy::config::cluster::v3::cluster::EdsClusterConfig;
    use envoy_types::pb::envoy::config::core::v3::{Address, HeaderValue, SocketAddress};
    use envoy_types::pb::envoy::config::endpoint::v3::{Endpoint, LbEndpoint, LocalityLbEndpoints};
    use envoy_types::pb::envoy::config::listener::v3::FilterChain;
    use envoy_types::pb::envoy::config::route::v3::weighted_cluster::ClusterWeight;
    use envoy_types::pb::envoy::config::route::v3::{
        Route, RouteAction, VirtualHost, WeightedCluster,
    };
    use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::Rds;

    pub(crate) fn any<M: Message>(ty: XdsType, m: &M) -> Any {
        Any {
            type_url: ty.type_url().to_string(),
            value: m.encode_to_vec(),
        }
    }

    pub(crate) fn eds_cluster(name: &str) -> Cluster {
        Cluster {
            name: name.into(),
            cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
            eds_cluster_config: Some(EdsClusterConfig {
                service_name: name.into(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    pub(crate) fn cla(name: &str, addresses: &[&str]) -> ClusterLoadAssignment {
        ClusterLoadAssignment {
            cluster_name: name.into(),
            endpoints: vec![LocalityLbEndpoints {
                lb_endpoints: addresses
                    .iter()
                    .map(|a| LbEndpoint {
                        host_identifier: Some(HostIdentifier::Endpoint(Endpoint {
                            address: Some(Address {
                                address: Some(AddressKind::SocketAddress(SocketAddress {
                                    address: a.to_string(),
                                    port_specifier: Some(socket_address::PortSpecifier::PortValue(
                                        8080,
                                    )),
                                    ..Default::default()
                                })),
                            }),
                            ..Default::default()
                        })),
                        ..Default::default()
                    })
                    .collect(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    pub(crate) fn listener(name: &str, rds: &str) -> Listener {
        let hcm = HttpConnectionManager {
            route_specifier: Some(RouteSpecifier::Rds(Rds {
                route_config_name: rds.into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        Listener {
            name: name.into(),
            filter_chains: vec![FilterChain {
                filters: vec![Filter {
                    name: "envoy.filters.network.http_connection_manager".into(),
                    config_type: Some(filter::ConfigType::TypedConfig(Any {
                        type_url: HCM_TYPE_URL.into(),
                        value: hcm.encode_to_vec(),
                    })),
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    pub(crate) fn routes(name: &str, marker: &str) -> RouteConfiguration {
        let header = |v: &str| HeaderValueOption {
            header: Some(HeaderValue {
                key: MARKER_HEADER.into(),
                value: v.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
        RouteConfiguration {
            name: name.into(),
            virtual_hosts: vec![VirtualHost {
                name: "svc0".into(),
                routes: vec![Route {
                    request_headers_to_add: vec![header(marker)],
                    action: Some(Action::Route(RouteAction {
                        cluster_specifier: Some(ClusterSpecifier::WeightedClusters(
                            WeightedCluster {
                                clusters: vec![ClusterWeight {
                                    name: "a".into(),
                                    request_headers_to_add: vec![header("in-weighted")],
                                    ..Default::default()
                                }],
                                ..Default::default()
                            },
                        )),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn decodes_each_type() {
        let c = decode(
            XdsType::Cluster,
            &any(XdsType::Cluster, &eds_cluster("outbound|8080||a")),
        )
        .unwrap();
        assert_eq!(
            c.kind,
            Kind::Cluster {
                eds: Some("outbound|8080||a".into())
            }
        );
        let plain = Cluster {
            name: "static".into(),
            ..Default::default()
        };
        let s = decode(XdsType::Cluster, &any(XdsType::Cluster, &plain)).unwrap();
        assert_eq!(s.kind, Kind::Cluster { eds: None });

        let e = decode(
            XdsType::Endpoint,
            &any(XdsType::Endpoint, &cla("x", &["127.0.0.3", "127.0.0.2"])),
        )
        .unwrap();
        assert_eq!(&*e.name, "x");
        assert_eq!(
            e.kind,
            Kind::Endpoints {
                addresses: vec!["127.0.0.2".into(), "127.0.0.3".into()]
            }
        );
        let l = decode(
            XdsType::Listener,
            &any(XdsType::Listener, &listener("l", "outbound")),
        )
        .unwrap();
        assert_eq!(
            l.kind,
            Kind::Listener {
                routes: vec!["outbound".into()]
            }
        );
        let r = decode(
            XdsType::Route,
            &any(XdsType::Route, &routes("outbound", "svc0-r3")),
        )
        .unwrap();
        assert_eq!(
            r.kind,
            Kind::Routes {
                markers: vec!["in-weighted".into(), "svc0-r3".into()]
            }
        );
    }

    #[test]
    fn refuses_a_resource_of_another_type() {
        let err = decode(XdsType::Endpoint, &any(XdsType::Cluster, &eds_cluster("a"))).unwrap_err();
        assert!(matches!(
            err,
            Error::WrongType {
                expected: "eds",
                ..
            }
        ));
        let garbage = Any {
            type_url: XdsType::Cluster.type_url().into(),
            value: vec![0xff, 0xff, 0xff],
        };
        assert!(matches!(
            decode(XdsType::Cluster, &garbage),
            Err(Error::Decode { .. })
        ));
    }

    #[test]
    fn cache_decodes_equal_bytes_once() {
        let cache = FactCache::default();
        let a = cache
            .get(
                XdsType::Endpoint,
                &any(XdsType::Endpoint, &cla("x", &["1.1.1.1"])),
            )
            .unwrap();
        let b = cache
            .get(
                XdsType::Endpoint,
                &any(XdsType::Endpoint, &cla("x", &["1.1.1.1"])),
            )
            .unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let c = cache
            .get(
                XdsType::Endpoint,
                &any(XdsType::Endpoint, &cla("x", &["1.1.1.2"])),
            )
            .unwrap();
        assert!(!Arc::ptr_eq(&a, &c));
        assert_eq!(cache.len(), 2);
    }

    #[test]
    fn hash_separates_near_inputs() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..10_000u32 {
            assert!(seen.insert(content_hash(
                format!("127.64.{}.{}", i >> 8, i & 255).as_bytes()
            )));
        }
        assert_ne!(content_hash(b""), content_hash(&[0]));
    }
}
