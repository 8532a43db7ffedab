//! Make-before-break across types: a cluster outlives the routes naming it.

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::listener::v3::{Filter, FilterChain, Listener, filter};
use envoy_types::pb::envoy::config::route::v3::{
    Route, RouteAction, RouteConfiguration, VirtualHost, route::Action,
    route_action::ClusterSpecifier,
};
use envoy_types::pb::envoy::extensions::filters::network::tcp_proxy::v3::{
    TcpProxy, tcp_proxy::ClusterSpecifier as TcpCluster,
};
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::google::protobuf::Any;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prost::{Message, Name};

use super::{CDS, EDS, LDS, RDS, endpoint, listener, resources};
use crate::resources::{ProxyResources, Resource, ResourceType};
use crate::xds::connection::{Connection, Response};

/// An EDS cluster (as the compiler makes them): its load assignment has its name.
fn eds_cluster(name: &str) -> Arc<Resource> {
    use envoy_types::pb::envoy::config::cluster::v3::cluster::{
        ClusterDiscoveryType, DiscoveryType, EdsClusterConfig,
    };
    let c = Cluster {
        name: name.to_string(),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32)),
        eds_cluster_config: Some(EdsClusterConfig {
            service_name: name.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    };
    Arc::new(Resource::new(ResourceType::Cluster, name, &c))
}

/// A route configuration with one virtual host per cluster.
fn routes_to(name: &str, clusters: &[&str]) -> Arc<Resource> {
    let r = RouteConfiguration {
        name: name.to_string(),
        virtual_hosts: clusters
            .iter()
            .map(|c| VirtualHost {
                name: c.to_string(),
                domains: vec![c.to_string()],
                routes: vec![Route {
                    action: Some(Action::Route(RouteAction {
                        cluster_specifier: Some(ClusterSpecifier::Cluster(c.to_string())),
                        ..Default::default()
                    })),
                    ..Default::default()
                }],
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    };
    Arc::new(Resource::new(ResourceType::Route, name, &r))
}

/// A listener whose TCP proxy sends to `cluster`.
fn tcp_listener(name: &str, cluster: &str) -> Arc<Resource> {
    let tcp = TcpProxy {
        stat_prefix: name.to_string(),
        cluster_specifier: Some(TcpCluster::Cluster(cluster.to_string())),
        ..Default::default()
    };
    let l = Listener {
        name: name.to_string(),
        filter_chains: vec![FilterChain {
            filters: vec![Filter {
                name: "envoy.filters.network.tcp_proxy".to_string(),
                config_type: Some(filter::ConfigType::TypedConfig(Any {
                    type_url: TcpProxy::type_url(),
                    value: tcp.encode_to_vec(),
                })),
            }],
            ..Default::default()
        }],
        ..Default::default()
    };
    Arc::new(Resource::new(ResourceType::Listener, name, &l))
}

/// Clusters a and b, routed to by `r`; after: b is gone everywhere.
fn before() -> Arc<ProxyResources> {
    resources(
        &[eds_cluster("a"), eds_cluster("b")],
        &[endpoint("a", 1), endpoint("b", 1)],
        &[listener("l", 1)],
        &[routes_to("r", &["a", "b"])],
    )
}

fn after() -> Arc<ProxyResources> {
    resources(
        &[eds_cluster("a")],
        &[endpoint("a", 1)],
        &[listener("l", 1)],
        &[routes_to("r", &["a"])],
    )
}

fn request(type_url: &str, names: &[&str], nonce: &str) -> DiscoveryRequest {
    DiscoveryRequest {
        resource_names: names.iter().map(|n| n.to_string()).collect(),
        type_url: type_url.to_string(),
        response_nonce: nonce.to_string(),
        ..Default::default()
    }
}

fn sotw(responses: Vec<Response>) -> Vec<DiscoveryResponse> {
    responses
        .into_iter()
        .map(|r| r.into_sotw().unwrap())
        .collect()
}

fn types<T>(responses: &[T], url: impl Fn(&T) -> &str) -> Vec<String> {
    responses.iter().map(|r| url(r).to_string()).collect()
}

fn cluster_names(r: &DiscoveryResponse) -> Vec<String> {
    r.resources
        .iter()
        .map(|any| Cluster::decode(any.value.as_slice()).unwrap().name)
        .collect()
}

fn synced_sotw(res: Arc<ProxyResources>, eds: &[&str]) -> Connection {
    let mut conn = Connection::sotw();
    conn.on_resources(res);
    for (type_url, names) in [(CDS, eds), (EDS, eds), (LDS, &[][..]), (RDS, &["r"][..])] {
        let names: &[&str] = if type_url == CDS { &[] } else { names };
        let r = sotw(conn.on_sotw_request(request(type_url, names, "")));
        assert_eq!(r.len(), 1);
        assert!(
            conn.on_sotw_request(request(type_url, names, &r[0].nonce))
                .is_empty()
        );
    }
    conn
}

#[test]
fn sotw_drops_a_cluster_only_after_the_routes_stop_naming_it() {
    let mut conn = synced_sotw(before(), &["a", "b"]);

    // b goes. The routes go first; CDS and EDS keep b, so they change nothing.
    let first = sotw(conn.on_resources(after()));
    assert_eq!(types(&first, |r| &r.type_url), [RDS]);

    // Until the routes are ACKed, nothing else changes, whatever comes.
    assert!(conn.on_resources(after()).is_empty());

    // The ACK of the routes that no longer name b lets the CDS without b go.
    let next = sotw(conn.on_sotw_request(request(RDS, &["r"], &first[0].nonce)));
    assert_eq!(types(&next, |r| &r.type_url), [CDS]);
    assert_eq!(cluster_names(&next[0]), ["a"]);
    // Envoy then drops b's assignment from its EDS names.
    assert!(
        conn.on_sotw_request(request(CDS, &[], &next[0].nonce))
            .is_empty()
    );
}

#[test]
fn a_nacked_route_change_keeps_the_cluster() {
    let mut conn = synced_sotw(before(), &["a", "b"]);
    let first = sotw(conn.on_resources(after()));
    assert_eq!(types(&first, |r| &r.type_url), [RDS]);
    let mut nack = request(RDS, &["r"], &first[0].nonce);
    nack.error_detail = Some(RpcStatus {
        code: 3,
        message: "bad route".to_string(),
        details: Vec::new(),
    });
    // The proxy still routes to b: b stays.
    assert!(conn.on_sotw_request(nack).is_empty());
    let versions = conn.status();
    assert_eq!(
        versions[CDS].sent_version, versions[CDS].acked_version,
        "no CDS without b was sent"
    );
}

#[test]
fn a_cluster_named_by_a_listener_waits_for_the_lds_ack() {
    let with = resources(
        &[eds_cluster("inbound|80"), eds_cluster("a")],
        &[endpoint("inbound|80", 1), endpoint("a", 1)],
        &[tcp_listener("in80", "inbound|80")],
        &[routes_to("r", &["a"])],
    );
    let without = resources(
        &[eds_cluster("a")],
        &[endpoint("a", 1)],
        &[],
        &[routes_to("r", &["a"])],
    );
    let mut conn = synced_sotw(with, &["inbound|80", "a"]);
    let first = sotw(conn.on_resources(without));
    assert_eq!(types(&first, |r| &r.type_url), [LDS]);
    assert!(first[0].resources.is_empty());
    let next = sotw(conn.on_sotw_request(request(LDS, &[], &first[0].nonce)));
    assert_eq!(types(&next, |r| &r.type_url), [CDS]);
    assert_eq!(cluster_names(&next[0]), ["a"]);
}

#[test]
fn a_cluster_nothing_routes_to_goes_at_once() {
    let mut conn = synced_sotw(
        resources(
            &[eds_cluster("a"), eds_cluster("b")],
            &[endpoint("a", 1), endpoint("b", 1)],
            &[listener("l", 1)],
            &[routes_to("r", &["a"])],
        ),
        &["a", "b"],
    );
    let out = sotw(conn.on_resources(after()));
    assert_eq!(types(&out, |r| &r.type_url), [CDS]);
    assert_eq!(cluster_names(&out[0]), ["a"]);
}

fn delta_request(type_url: &str, subscribe: &[&str], nonce: &str) -> DeltaDiscoveryRequest {
    DeltaDiscoveryRequest {
        type_url: type_url.to_string(),
        resource_names_subscribe: subscribe.iter().map(|n| n.to_string()).collect(),
        response_nonce: nonce.to_string(),
        ..Default::default()
    }
}

fn delta(responses: Vec<Response>) -> Vec<DeltaDiscoveryResponse> {
    responses
        .into_iter()
        .map(|r| r.into_delta().unwrap())
        .collect()
}

#[test]
fn delta_removes_a_cluster_only_after_the_routes_stop_naming_it() {
    let mut conn = Connection::delta();
    conn.on_resources(before());
    for (type_url, names) in [
        (CDS, &[][..]),
        (EDS, &["a", "b"][..]),
        (LDS, &[]),
        (RDS, &["r"]),
    ] {
        let r = delta(conn.on_delta_request(delta_request(type_url, names, "")));
        assert_eq!(r.len(), 1);
        assert!(
            conn.on_delta_request(delta_request(type_url, &[], &r[0].nonce))
                .is_empty()
        );
    }

    let first = delta(conn.on_resources(after()));
    assert_eq!(types(&first, |r| &r.type_url), [RDS]);
    assert!(first[0].removed_resources.is_empty());

    // After the routes' ACK: CDS removes b, then EDS removes its assignment.
    let next = delta(conn.on_delta_request(delta_request(RDS, &[], &first[0].nonce)));
    assert_eq!(types(&next, |r| &r.type_url), [CDS, EDS]);
    assert_eq!(next[0].removed_resources, ["b"]);
    assert!(next[0].resources.is_empty());
    assert_eq!(next[1].removed_resources, ["b"]);
}
