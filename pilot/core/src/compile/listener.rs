//! Listeners: the outbound HTTP listener on `ADDRESS:15001`, and an inbound
//! listener on `ADDRESS:PORT` for every port at which a service reaches this
//! workload, with the JWT and RBAC filters of the security policies that
//! apply to it. Every HTTP connection manager normalises paths as the mesh
//! config's `pathNormalization` says.

use std::net::SocketAddr;
use std::time::Duration;

use discovery::Protocol;
use envoy_types::pb::envoy::config::core::v3::TrafficDirection;
use envoy_types::pb::envoy::config::listener::v3::{
    Filter, FilterChain, FilterChainMatch, Listener, ListenerFilter, filter, listener_filter,
};
use envoy_types::pb::envoy::config::rbac::v3::{Rbac, rbac::Action as RbacAction};
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use envoy_types::pb::envoy::extensions::filters::http::cors::v3::Cors;
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::HttpFault;
use envoy_types::pb::envoy::extensions::filters::http::router::v3::Router;
use envoy_types::pb::envoy::extensions::filters::listener::tls_inspector::v3::TlsInspector;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::{
    HttpConnectionManager, HttpFilter, Rds,
    http_connection_manager::{
        ForwardClientCertDetails, PathWithEscapedSlashesAction, RouteSpecifier,
        SetCurrentClientCertDetails, UpgradeConfig,
    },
    http_filter,
};
use envoy_types::pb::envoy::extensions::filters::network::rbac::v3::Rbac as NetworkRbac;
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier,
};

use envoy_types::pb::envoy::config::accesslog::v3::AccessLog;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing;
use envoy_types::pb::google::protobuf::{Any, BoolValue};
use policy::mesh::PathNormalization;
use policy::security::MtlsMode;

use super::proto::{self, filters};
use super::{names, tls};
use crate::proxy::Proxy;

const HCM: &str = "envoy.filters.network.http_connection_manager";

/// An inbound port of this workload: where it listens, what it speaks and
/// where the application is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct InboundPort {
    pub(crate) port: u16,
    pub(crate) protocol: Protocol,
    pub(crate) app: SocketAddr,
}

/// What the telemetry config adds to one side's (outbound or inbound) HTTP
/// connection managers and TCP proxies: access logs, and for HTTP the
/// tracing (see `access_log`).
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Observe<'a> {
    pub(crate) logs: &'a [AccessLog],
    pub(crate) tracing: Option<&'a Tracing>,
}

impl Observe<'_> {
    fn http(&self, hcm: &mut HttpConnectionManager) {
        hcm.access_log.extend(self.logs.iter().cloned());
        if let Some(tracing) = self.tracing {
            hcm.tracing = Some(tracing.clone());
        }
    }
}

/// The outbound listener. Its HTTP filters include fault injection and CORS,
/// empty, so that the per-route configs of VirtualServices take effect (as
/// Istio installs them in every sidecar).
pub(crate) fn outbound(
    proxy: &Proxy,
    normalization: PathNormalization,
    observe: Observe<'_>,
) -> Listener {
    Listener {
        name: names::OUTBOUND.to_string(),
        address: Some(proto::socket_address(
            &proxy.metadata.address.to_string(),
            proxy.metadata.outbound_port,
        )),
        filter_chains: vec![chain(outbound_http(normalization, observe))],
        traffic_direction: TrafficDirection::Outbound as i32,
        ..Default::default()
    }
}

/// The outbound HTTP connection manager, on the outbound route
/// configuration: the explicit listener's, and the one of every HTTP
/// service port in the capture-mode virtual outbound listener.
pub(crate) fn outbound_http(normalization: PathNormalization, observe: Observe<'_>) -> Filter {
    let mut hcm = http_connection_manager(
        names::OUTBOUND,
        normalization,
        RouteSpecifier::Rds(Rds {
            config_source: Some(proto::ads()),
            route_config_name: names::OUTBOUND.to_string(),
        }),
        vec![
            http_filter(filters::FAULT, proto::any(HttpFault::default())),
            http_filter(filters::CORS, proto::any(Cors::default())),
        ],
    );
    observe.http(&mut hcm);
    hcm_filter(hcm)
}

/// The filters of the security policies that apply to a workload: `http`
/// (the JWT filter, then the RBAC filters) for its HTTP ports, run before
/// the router; `network(name)`, the RBAC network filters for a TCP port's
/// listener `name`, run before the TCP proxy.
pub(crate) struct Authz<'a> {
    pub(crate) http: Vec<HttpFilter>,
    pub(crate) network: &'a dyn Fn(&str) -> Vec<Filter>,
}

/// How an inbound port takes its callers, from the workload's
/// PeerAuthentication at that port and whether its sidecar has a
/// certificate to terminate mutual TLS with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InboundTls {
    /// Plaintext only: DISABLE, or PERMISSIVE on a sidecar without a
    /// certificate (it cannot terminate TLS, so it takes what it can).
    Plaintext,
    /// Mutual TLS from mesh clients (told by the TLS inspector and the
    /// mesh's ALPN), plaintext from the rest.
    Permissive,
    /// Mutual TLS only; plaintext finds no filter chain and is closed.
    Strict,
    /// STRICT on a sidecar without a certificate: it cannot take mutual
    /// TLS and must not take plaintext, so every connection is refused.
    Refuse,
}

impl InboundTls {
    pub(crate) fn new(mode: MtlsMode, certificate: bool) -> Self {
        match (mode, certificate) {
            (MtlsMode::Disable, _) | (MtlsMode::Permissive | MtlsMode::Unset, false) => {
                InboundTls::Plaintext
            }
            (MtlsMode::Permissive | MtlsMode::Unset, true) => InboundTls::Permissive,
            (MtlsMode::Strict, true) => InboundTls::Strict,
            (MtlsMode::Strict, false) => InboundTls::Refuse,
        }
    }
}

/// An inbound listener, with the workload's RBAC filters, and the filter
/// chains its mTLS mode asks for. Over mutual TLS the application is told
/// who called in `x-forwarded-client-cert` (set from the peer's
/// certificate, whatever the caller sent); over plaintext that header is
/// removed, so it can never be forged.
pub(crate) fn inbound(
    proxy: &Proxy,
    port: &InboundPort,
    normalization: PathNormalization,
    authz: &Authz<'_>,
    mtls: InboundTls,
    observe: Observe<'_>,
) -> Listener {
    let address = proxy.metadata.address.to_string();
    let name = names::inbound_listener(&address, port.port);
    let cluster = names::inbound_cluster(port.port);
    let filters = |peer_certificate: bool| {
        if port.protocol.is_http() || port.protocol == Protocol::Unknown {
            let routes: RouteConfiguration =
                super::route::to_cluster(&name, cluster.clone(), port.protocol);
            let mut hcm = http_connection_manager(
                &name,
                normalization,
                RouteSpecifier::RouteConfig(routes),
                authz.http.clone(),
            );
            observe.http(&mut hcm);
            if peer_certificate {
                hcm.forward_client_cert_details = ForwardClientCertDetails::SanitizeSet as i32;
                hcm.set_current_client_cert_details = Some(SetCurrentClientCertDetails {
                    subject: Some(BoolValue { value: true }),
                    uri: true,
                    dns: true,
                    ..Default::default()
                });
            }
            vec![hcm_filter(hcm)]
        } else {
            let mut filters = (authz.network)(&name);
            filters.push(tcp_proxy(&name, cluster.clone(), observe.logs));
            filters
        }
    };
    let mtls_chain = |alpn: Vec<String>| FilterChain {
        name: "mtls".to_string(),
        filter_chain_match: Some(FilterChainMatch {
            transport_protocol: "tls".to_string(),
            application_protocols: alpn,
            ..Default::default()
        }),
        transport_socket: Some(tls::downstream()),
        filters: filters(true),
        ..Default::default()
    };
    let plaintext_chain = |name: &str| FilterChain {
        name: name.to_string(),
        filters: filters(false),
        ..Default::default()
    };
    let (filter_chains, inspect) = match mtls {
        InboundTls::Plaintext => (vec![plaintext_chain("")], false),
        InboundTls::Permissive => (
            vec![mtls_chain(tls::mesh_alpn()), plaintext_chain("plaintext")],
            true,
        ),
        InboundTls::Strict => (vec![mtls_chain(Vec::new())], true),
        InboundTls::Refuse => (vec![refuse_chain(&name, observe.logs)], false),
    };
    Listener {
        name,
        address: Some(proto::socket_address(&address, port.port)),
        filter_chains,
        listener_filters: if inspect {
            vec![ListenerFilter {
                name: TLS_INSPECTOR.to_string(),
                config_type: Some(listener_filter::ConfigType::TypedConfig(proto::any(
                    TlsInspector::default(),
                ))),
                ..Default::default()
            }]
        } else {
            Vec::new()
        },
        traffic_direction: TrafficDirection::Inbound as i32,
        ..Default::default()
    }
}

/// The cluster a refusing chain names: none, nothing is ever sent there.
const BLACK_HOLE: &str = "BlackHoleCluster";

pub(crate) const TLS_INSPECTOR: &str = "envoy.filters.listener.tls_inspector";

/// A chain that closes every connection: an RBAC network filter that
/// allows nothing.
pub(crate) fn refuse_chain(stat_prefix: &str, logs: &[AccessLog]) -> FilterChain {
    let rbac = NetworkRbac {
        rules: Some(Rbac {
            action: RbacAction::Allow as i32,
            ..Default::default()
        }),
        stat_prefix: stat_prefix.to_string(),
        ..Default::default()
    };
    // Envoy wants a terminal filter last; the RBAC filter closes every
    // connection before it, so its cluster (Istio's name for nowhere) need
    // not exist.
    FilterChain {
        name: "refuse".to_string(),
        filters: vec![
            Filter {
                name: "envoy.filters.network.rbac".to_string(),
                config_type: Some(filter::ConfigType::TypedConfig(proto::any(rbac))),
            },
            tcp_proxy(stat_prefix, BLACK_HOLE.to_string(), logs),
        ],
        ..Default::default()
    }
}

fn chain(filter: Filter) -> FilterChain {
    FilterChain {
        filters: vec![filter],
        ..Default::default()
    }
}

/// An HTTP connection manager running `http_filters`, then the router (which
/// must be last), with the settings Istio gives every sidecar HTTP
/// connection manager: websocket upgrades allowed; no stream idle timeout
/// (Envoy's 5-minute default would cut long-lived streams); and path
/// normalisation as Istio sets it for each `pathNormalization` level (see
/// [`normalize`]).
fn http_connection_manager(
    stat_prefix: &str,
    normalization: PathNormalization,
    routes: RouteSpecifier,
    mut http_filters: Vec<HttpFilter>,
) -> HttpConnectionManager {
    http_filters.push(http_filter(filters::ROUTER, proto::any(Router::default())));
    let hcm = HttpConnectionManager {
        stat_prefix: stat_prefix.to_string(),
        route_specifier: Some(routes),
        http_filters,
        upgrade_configs: vec![UpgradeConfig {
            upgrade_type: "websocket".to_string(),
            ..Default::default()
        }],
        stream_idle_timeout: Some(proto::duration(Duration::ZERO)),
        ..Default::default()
    };
    normalize(hcm, normalization)
}

fn hcm_filter(hcm: HttpConnectionManager) -> Filter {
    Filter {
        name: HCM.to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(proto::any(hcm))),
    }
}

/// Path normalisation, before routing and authorization, as Istio maps each
/// level: `NONE` leaves the path as sent; `BASE` (the default) applies RFC
/// 3986 normalisation (`/a/../b` is `/b`); `MERGE_SLASHES` also merges
/// repeated slashes; `DECODE_AND_MERGE_SLASHES` first decodes escaped
/// slashes (`%2F`, `%5C`) and forwards the decoded path. Below that level
/// escaped slashes are kept unchanged.
fn normalize(hcm: HttpConnectionManager, level: PathNormalization) -> HttpConnectionManager {
    let (normalize_path, merge_slashes, escaped) = match level {
        PathNormalization::None => (false, false, PathWithEscapedSlashesAction::KeepUnchanged),
        PathNormalization::Base => (true, false, PathWithEscapedSlashesAction::KeepUnchanged),
        PathNormalization::MergeSlashes => {
            (true, true, PathWithEscapedSlashesAction::KeepUnchanged)
        }
        PathNormalization::DecodeAndMergeSlashes => {
            (true, true, PathWithEscapedSlashesAction::UnescapeAndForward)
        }
    };
    HttpConnectionManager {
        normalize_path: Some(BoolValue {
            value: normalize_path,
        }),
        merge_slashes,
        path_with_escaped_slashes_action: escaped as i32,
        ..hcm
    }
}

fn http_filter(name: &str, config: Any) -> HttpFilter {
    HttpFilter {
        name: name.to_string(),
        config_type: Some(http_filter::ConfigType::TypedConfig(config)),
        ..Default::default()
    }
}

pub(crate) fn tcp_proxy(stat_prefix: &str, cluster: String, logs: &[AccessLog]) -> Filter {
    let proxy = TcpProxy {
        stat_prefix: stat_prefix.to_string(),
        cluster_specifier: Some(ClusterSpecifier::Cluster(cluster)),
        access_log: logs.to_vec(),
        ..Default::default()
    };
    Filter {
        name: "envoy.filters.network.tcp_proxy".to_string(),
        config_type: Some(filter::ConfigType::TypedConfig(proto::any(proxy))),
    }
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::proxy::NodeMetadata;

    fn proxy() -> Proxy {
        let address = "127.0.4.1".parse().unwrap();
        Proxy::new(NodeMetadata {
            namespace: "ns".into(),
            workload: "app".into(),
            address,
            labels: Default::default(),
            service_account: None,
            app_address: None,
            app_ports: Default::default(),
            outbound_port: crate::proxy::DEFAULT_OUTBOUND_PORT,
            generator: Default::default(),
            sds: false,
            capture: false,
        })
    }

    fn hcm_of(listener: &Listener) -> HttpConnectionManager {
        let filter = &listener.filter_chains[0].filters[0];
        assert_eq!(filter.name, HCM);
        let Some(filter::ConfigType::TypedConfig(any)) = &filter.config_type else {
            panic!("no typed config: {filter:?}");
        };
        HttpConnectionManager::decode(any.value.as_slice()).unwrap()
    }

    /// Both the outbound and the inbound HTTP connection managers.
    fn managers() -> Vec<HttpConnectionManager> {
        let inbound = InboundPort {
            port: 9080,
            protocol: Protocol::Http,
            app: "127.0.0.1:19080".parse().unwrap(),
        };
        vec![
            hcm_of(&outbound(
                &proxy(),
                PathNormalization::Base,
                Observe::default(),
            )),
            hcm_of(&super::inbound(
                &proxy(),
                &inbound,
                PathNormalization::Base,
                &Authz {
                    http: Vec::new(),
                    network: &|_| Vec::new(),
                },
                InboundTls::Plaintext,
                Observe::default(),
            )),
        ]
    }

    #[test]
    fn http_connection_managers_take_istios_defaults() {
        for hcm in managers() {
            let upgrades: Vec<&str> = hcm
                .upgrade_configs
                .iter()
                .map(|u| u.upgrade_type.as_str())
                .collect();
            assert_eq!(upgrades, ["websocket"], "{}", hcm.stat_prefix);
            let idle = hcm.stream_idle_timeout.unwrap();
            assert_eq!((idle.seconds, idle.nanos), (0, 0), "{}", hcm.stat_prefix);
            assert_eq!(hcm.normalize_path, Some(BoolValue { value: true }));
            assert!(!hcm.merge_slashes);
            assert_eq!(
                hcm.path_with_escaped_slashes_action,
                PathWithEscapedSlashesAction::KeepUnchanged as i32
            );
        }
    }

    #[test]
    fn path_normalization_follows_istio_per_level() {
        let cases = [
            (
                PathNormalization::None,
                false,
                false,
                PathWithEscapedSlashesAction::KeepUnchanged,
            ),
            (
                PathNormalization::Base,
                true,
                false,
                PathWithEscapedSlashesAction::KeepUnchanged,
            ),
            (
                PathNormalization::MergeSlashes,
                true,
                true,
                PathWithEscapedSlashesAction::KeepUnchanged,
            ),
            (
                PathNormalization::DecodeAndMergeSlashes,
                true,
                true,
                PathWithEscapedSlashesAction::UnescapeAndForward,
            ),
        ];
        for (level, normalize_path, merge, escaped) in cases {
            let hcm = hcm_of(&outbound(&proxy(), level, Observe::default()));
            assert_eq!(
                hcm.normalize_path,
                Some(BoolValue {
                    value: normalize_path
                }),
                "{level:?}"
            );
            assert_eq!(hcm.merge_slashes, merge, "{level:?}");
            assert_eq!(
                hcm.path_with_escaped_slashes_action, escaped as i32,
                "{level:?}"
            );
        }
    }

    #[test]
    fn the_router_is_the_last_http_filter() {
        for hcm in managers() {
            let names: Vec<&str> = hcm.http_filters.iter().map(|f| f.name.as_str()).collect();
            assert_eq!(names.last(), Some(&filters::ROUTER), "{names:?}");
            assert_eq!(
                names.iter().filter(|n| **n == filters::ROUTER).count(),
                1,
                "{names:?}"
            );
        }
    }
}
