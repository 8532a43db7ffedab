//! The listeners and clusters of a sidecar whose pod's traffic is captured
//! (`INTERCEPTION_MODE: REDIRECT`; the rules are `bowline capture`'s), as
//! Istio's sidecars have them:
//!
//! ```text
//! app ─► ClusterIP:port ─(iptables)─► 0.0.0.0:15002 virtualOutbound
//!          original destination ─► chain for ClusterIP:port ─► HTTP: the outbound routes
//!                                                          └─► TCP: the service's cluster
//!                                 └─► no chain ─► PassthroughCluster (where it was going)
//! peer ─► POD_IP:port ─(iptables)─► 0.0.0.0:15006 virtualInbound
//!          original destination ─► chain for the port (mTLS, authorization, as explicit inbound)
//!                                 │   ─► inbound|port|| from 127.0.0.6 ─► the application
//!                                 └─► no chain ─► InboundPassthroughCluster from 127.0.0.6
//! ```
//!
//! The explicit outbound listener stays on its own port (15001); the
//! explicit inbound listeners go, since the application itself listens on
//! the inbound ports. Connections to the application leave from
//! [`INBOUND_PASSTHROUGH_SOURCE`], which the capture rules let pass, so that
//! they do not loop back into the capture.

use std::collections::BTreeSet;
use std::net::IpAddr;

use discovery::model::Resolution;
use envoy_types::pb::envoy::config::cluster::v3::{
    Cluster, cluster::ClusterDiscoveryType, cluster::DiscoveryType, cluster::LbPolicy,
};
use envoy_types::pb::envoy::config::core::v3::{
    BindConfig, CidrRange, SocketAddress, TrafficDirection, socket_address::PortSpecifier,
};
use envoy_types::pb::envoy::config::listener::v3::{
    FilterChain, FilterChainMatch, Listener, ListenerFilter, listener_filter,
};
use envoy_types::pb::envoy::extensions::filters::listener::original_dst::v3::OriginalDst;
use envoy_types::pb::google::protobuf::UInt32Value;
use pilot_node::{INBOUND_CAPTURE_PORT, INBOUND_PASSTHROUGH_SOURCE, OUTBOUND_CAPTURE_PORT};
use policy::mesh::PathNormalization;

use super::listener::{self, TLS_INSPECTOR};
use super::view::ScopeView;
use super::{names, proto, route};

/// The capture-mode listeners' and passthrough clusters' names, Istio's.
pub(crate) const VIRTUAL_OUTBOUND: &str = "virtualOutbound";
pub(crate) const VIRTUAL_INBOUND: &str = "virtualInbound";
pub(crate) const PASSTHROUGH: &str = "PassthroughCluster";
pub(crate) const INBOUND_PASSTHROUGH: &str = "InboundPassthroughCluster";

const ORIGINAL_DST: &str = "envoy.filters.listener.original_dst";

/// The virtual outbound listener: a chain per service address and port the
/// scope admits (the first service to claim one keeps it), and everything
/// else out to where it was going (Istio's default `ALLOW_ANY`).
pub(crate) fn virtual_outbound(
    view: &ScopeView,
    normalization: PathNormalization,
    observe: listener::Observe<'_>,
) -> Listener {
    let mut claimed = BTreeSet::new();
    let mut filter_chains = Vec::new();
    // A service without endpoints of its own (resolution NONE) is reached
    // where the caller was going: the fallback does that.
    let routed = view
        .services()
        .filter(|s| s.service.resolution != Resolution::Passthrough);
    for service_view in routed {
        let service = &service_view.service;
        for &address in &service.addresses {
            for port in service_view.ports() {
                if !claimed.insert((address, port.number)) {
                    continue;
                }
                let filter = if route::routable(port) {
                    listener::outbound_http(normalization, observe)
                } else {
                    let cluster = names::outbound_cluster(port.number, None, &service.hostname);
                    listener::tcp_proxy(&cluster, cluster.clone(), observe.logs)
                };
                filter_chains.push(FilterChain {
                    name: format!("{address}:{}", port.number),
                    filter_chain_match: Some(FilterChainMatch {
                        destination_port: Some(UInt32Value {
                            value: u32::from(port.number),
                        }),
                        prefix_ranges: vec![host_range(address)],
                        ..Default::default()
                    }),
                    filters: vec![filter],
                    ..Default::default()
                });
            }
        }
    }
    let passthrough = FilterChain {
        name: PASSTHROUGH.to_string(),
        filters: vec![listener::tcp_proxy(
            PASSTHROUGH,
            PASSTHROUGH.to_string(),
            observe.logs,
        )],
        ..Default::default()
    };
    let (filter_chains, default_filter_chain) = with_fallback(filter_chains, passthrough);
    Listener {
        name: VIRTUAL_OUTBOUND.to_string(),
        address: Some(proto::socket_address("0.0.0.0", OUTBOUND_CAPTURE_PORT)),
        filter_chains,
        default_filter_chain,
        listener_filters: vec![original_dst()],
        traffic_direction: TrafficDirection::Outbound as i32,
        ..Default::default()
    }
}

/// The chains, and the chain for connections none of them matches: Envoy
/// wants at least one chain, so without any the fallback is the only one.
fn with_fallback(
    mut chains: Vec<FilterChain>,
    fallback: FilterChain,
) -> (Vec<FilterChain>, Option<FilterChain>) {
    if chains.is_empty() {
        chains.push(fallback);
        (chains, None)
    } else {
        (chains, Some(fallback))
    }
}

/// The virtual inbound listener, from the explicit inbound listeners the
/// workload would have: their chains, each matched on its port. A port no
/// service reaches passes through to the application, unless `strict`
/// (the workload's PeerAuthentication is STRICT), where it is closed (as
/// Istio closes plaintext there; a mesh client only dials the service
/// ports).
pub(crate) fn virtual_inbound(
    ports: Vec<(u16, Listener)>,
    strict: bool,
    logs: &[envoy_types::pb::envoy::config::accesslog::v3::AccessLog],
) -> Listener {
    let mut inspect = false;
    let mut filter_chains = Vec::new();
    for (port, explicit) in ports {
        inspect |= explicit
            .listener_filters
            .iter()
            .any(|f| f.name == TLS_INSPECTOR);
        for mut chain in explicit.filter_chains {
            chain.name = if chain.name.is_empty() {
                port.to_string()
            } else {
                format!("{port}-{}", chain.name)
            };
            chain
                .filter_chain_match
                .get_or_insert_with(Default::default)
                .destination_port = Some(UInt32Value {
                value: u32::from(port),
            });
            filter_chains.push(chain);
        }
    }
    let mut listener_filters = vec![original_dst()];
    if inspect {
        listener_filters.push(ListenerFilter {
            name: TLS_INSPECTOR.to_string(),
            config_type: Some(listener_filter::ConfigType::TypedConfig(proto::any(
                envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector::default(),
            ))),
            ..Default::default()
        });
    }
    let fallback = if strict {
        listener::refuse_chain(VIRTUAL_INBOUND, logs)
    } else {
        FilterChain {
            name: INBOUND_PASSTHROUGH.to_string(),
            filters: vec![listener::tcp_proxy(
                INBOUND_PASSTHROUGH,
                INBOUND_PASSTHROUGH.to_string(),
                logs,
            )],
            ..Default::default()
        }
    };
    let (filter_chains, default_filter_chain) = with_fallback(filter_chains, fallback);
    Listener {
        name: VIRTUAL_INBOUND.to_string(),
        address: Some(proto::socket_address("0.0.0.0", INBOUND_CAPTURE_PORT)),
        filter_chains,
        default_filter_chain,
        listener_filters,
        traffic_direction: TrafficDirection::Inbound as i32,
        ..Default::default()
    }
}

/// The two passthrough clusters: to wherever a connection was going, and
/// the same from [`INBOUND_PASSTHROUGH_SOURCE`] for inbound connections.
pub(crate) fn passthrough_clusters() -> [Cluster; 2] {
    let original = |name: &str| Cluster {
        name: name.to_string(),
        connect_timeout: Some(proto::duration(super::cluster::CONNECT_TIMEOUT)),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(
            DiscoveryType::OriginalDst as i32,
        )),
        lb_policy: LbPolicy::ClusterProvided as i32,
        ..Default::default()
    };
    let mut inbound = original(INBOUND_PASSTHROUGH);
    bind_to_passthrough_source(&mut inbound);
    [original(PASSTHROUGH), inbound]
}

/// Makes `cluster`'s connections leave from [`INBOUND_PASSTHROUGH_SOURCE`].
pub(crate) fn bind_to_passthrough_source(cluster: &mut Cluster) {
    cluster.upstream_bind_config = Some(BindConfig {
        source_address: Some(SocketAddress {
            address: INBOUND_PASSTHROUGH_SOURCE.to_string(),
            port_specifier: Some(PortSpecifier::PortValue(0)),
            ..Default::default()
        }),
        ..Default::default()
    });
}

fn original_dst() -> ListenerFilter {
    ListenerFilter {
        name: ORIGINAL_DST.to_string(),
        config_type: Some(listener_filter::ConfigType::TypedConfig(proto::any(
            OriginalDst::default(),
        ))),
        ..Default::default()
    }
}

/// The range of exactly `address`.
fn host_range(address: IpAddr) -> CidrRange {
    CidrRange {
        address_prefix: address.to_string(),
        prefix_len: Some(UInt32Value {
            value: if address.is_ipv4() { 32 } else { 128 },
        }),
    }
}
