//! Listeners: the outbound HTTP listener on `ADDRESS:15001`, and an inbound
//! listener on `ADDRESS:PORT` for every port at which a service reaches this
//! workload.

use std::net::SocketAddr;

use discovery::Protocol;
use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager::RouteSpecifier, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier,
};

use super::names;
use super::proto;
use crate::proxy::Proxy;

/// An inbound port of this workload: where it listens, what it speaks and
/// where the application is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InboundPort {
    pub(crate) port: u16,
    pub(crate) protocol: Protocol,
    pub(crate) app: SocketAddr,
}

pub(crate) fn outbound(proxy: &Proxy) -> Listener {
    let hcm = http_connection_manager(
        names::OUTBOUND,
        RouteSpecifier::Rds(Rds {
            config_source: Some(proto::ads()),
            route_config_name: names::OUTBOUND.to_string(),
        }),
    );
    Listener {
        name: names::OUTBOUND.to_string(),
        address: Some(proto::socket_address(
            &proxy.address.to_string(),
            proxy.outbound_port,
        )),
        filter_chains: vec![chain(hcm)],
        traffic_direction: TrafficDirection::Outbound as i32,
        ..Default::default()
    }
}

pub(crate) fn inbound(proxy: &Proxy, port: &InboundPort) -> Listener {
    let address = proxy.address.to_string();
    let name = names::inbound_listener(&address, port.port);
    let cluster = names::inbound_cluster(port.port);
    let filter = if port.protocol.is_http() || port.protocol == Protocol::Unknown {
        let routes: RouteConfiguration = super::route::to_cluster(&name, cluster);
        http_connection_manager(&name, RouteSpecifier::RouteConfig(routes))
    } else {
        tcp_proxy(&name, cluster)
    };
    Listener {
        name,
        address: Some(proto::socket_address(&address, port.port)),
        filter_chains: vec![chain(filter)],
        traffic_direction: TrafficDirection::Inbound as i32,
        ..Default::default()
    }
}

fn chain(filter: Filter) -> FilterChain {
    FilterChain {
        filters: vec![filter],
        ..Default::default()
    }
}

fn http_connection_manager(stat_prefix: &str, routes: RouteSpecifier) -> Filter {
    let hcm = HttpConnectionManager {
        stat_prefix: stat_prefix.to_string(),
        route_specifier: Some(routes),
        http_filters: vec![HttpFilter {
            name: "envoy.filters.http.router".to_string(),
            config_type: Some(http_filter::ConfigType::TypedConfig(proto::any(
                Router::default(),
            ))),
            ..Default::default()
        }],
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.http_connection_manager".to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(proto::any(hcm))),
    }
}

fn tcp_proxy(stat_prefix: &str, cluster: String) -> Filter {
    let proxy = TcpProxy {
        stat_prefix: stat_prefix.to_string(),
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster)),
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.tcp_proxy".to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(proto::any(proxy))),
    }
}
