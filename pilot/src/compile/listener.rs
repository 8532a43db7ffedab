//! Listeners: the outbound HTTP listener on `ADDRESS:15001`, and an inbound
//! listener on `ADDRESS:PORT` for every port at which a service reaches this
//! workload.

use std::net::SocketAddr;

use discovery::Protocol;
use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds, http_connection_manager::RouteSpecifier, http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier,
};

use envoy_types::pb::google::protobuf::Any;

use super::names;
use super::proto::{self, filters};
use crate::proxy::Proxy;

/// An inbound port of this workload: where it listens, what it speaks and
/// where the application is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InboundPort {
    pub(crate) port: u16,
    pub(crate) protocol: Protocol,
    pub(crate) app: SocketAddr,
}

/// The outbound listener. Its HTTP filters include fault injection and CORS,
/// empty, so that the per-route configs of VirtualServices take effect (as
/// Istio installs them in every sidecar).
pub(crate) fn outbound(proxy: &Proxy) -> Listener {
    let hcm = http_connection_manager(
        names::OUTBOUND,
        RouteSpecifier::Rds(Rds {
            config_source: Some(proto::ads()),
            route_config_name: names::OUTBOUND.to_string(),
        }),
        vec![
            http_filter(filters::FAULT, proto::any(HttpFault::default())),
            http_filter(filters::CORS, proto::any(Cors::default())),
        ],
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
        let routes: RouteConfiguration = super::route::to_cluster(&name, cluster, port.protocol);
        http_connection_manager(&name, RouteSpecifier::RouteConfig(routes), Vec::new())
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

/// An HTTP connection manager running `http_filters`, then the router.
fn http_connection_manager(
    stat_prefix: &str,
    routes: RouteSpecifier,
    mut http_filters: Vec<HttpFilter>,
) -> Filter {
    http_filters.push(http_filter(filters::ROUTER, proto::any(Router::default())));
    let hcm = HttpConnectionManager {
        stat_prefix: stat_prefix.to_string(),
        route_specifier: Some(routes),
        http_filters,
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.http_connection_manager".to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(proto::any(hcm))),
    }
}

fn http_filter(name: &str, config: Any) -> HttpFilter {
    HttpFilter {
        name: name.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
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
