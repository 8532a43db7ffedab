//! Builders for the tests of this crate and of `pilot-server` (feature
//! `testing`): hand-made resources and compiled sets, the node a sidecar
//! sends, and a small two-namespace mesh.

use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::config::listener::v3::Listener;
use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;

use crate::resources::{ProxyResources, Resource, ResourceMap, ResourceType};

pub const CDS: &str = ResourceType::Cluster.type_url();
pub const EDS: &str = ResourceType::Endpoint.type_url();
pub const LDS: &str = ResourceType::Listener.type_url();
pub const RDS: &str = ResourceType::Route.type_url();
pub const SDS: &str = ResourceType::Secret.type_url();

/// A cluster whose content (and so version) depends on `tag`.
pub fn cluster(name: &str, tag: u32) -> Arc<Resource> {
    let c = Cluster {
        name: name.to_string(),
        alt_stat_name: format!("v{tag}"),
        ..Default::default()
    };
    Arc::new(Resource::new(ResourceType::Cluster, name, &c))
}

pub fn endpoint(name: &str, tag: u32) -> Arc<Resource> {
    let e = ClusterLoadAssignment {
        cluster_name: format!("{name}#{tag}"),
        ..Default::default()
    };
    Arc::new(Resource::new(ResourceType::Endpoint, name, &e))
}

pub fn listener(name: &str, tag: u32) -> Arc<Resource> {
    let l = Listener {
        name: name.to_string(),
        stat_prefix: format!("v{tag}"),
        ..Default::default()
    };
    Arc::new(Resource::new(ResourceType::Listener, name, &l))
}

pub fn route(name: &str, tag: u32) -> Arc<Resource> {
    let r = RouteConfiguration {
        name: name.to_string(),
        internal_only_headers: vec![format!("v{tag}")],
        ..Default::default()
    };
    Arc::new(Resource::new(ResourceType::Route, name, &r))
}

/// A `ROOTCA`-like validation secret whose roots depend on `tag`.
pub fn secret(name: &str, tag: u32) -> Arc<Resource> {
    use envoy_types::pb::envoy::config::core::v3::{DataSource, data_source::Specifier};
    use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
        CertificateValidationContext, Secret, secret,
    };
    let s = Secret {
        name: name.to_string(),
        r#type: Some(secret::Type::ValidationContext(
            CertificateValidationContext {
                trusted_ca: Some(DataSource {
                    specifier: Some(Specifier::InlineString(format!("root {tag}"))),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )),
    };
    Arc::new(Resource::new(ResourceType::Secret, name, &s))
}

fn map(items: &[Arc<Resource>]) -> ResourceMap {
    items.iter().map(|r| (r.name.clone(), r.clone())).collect()
}

/// A compiled set, built by hand.
pub fn resources(
    clusters: &[Arc<Resource>],
    endpoints: &[Arc<Resource>],
    listeners: &[Arc<Resource>],
    routes: &[Arc<Resource>],
) -> Arc<ProxyResources> {
    Arc::new(ProxyResources::new(
        map(clusters),
        map(endpoints),
        map(listeners),
        map(routes),
    ))
}

/// The node a sidecar of `workload` in `namespace` at `address` sends,
/// with the required keys only. Written by hand, not by
/// `NodeMetadata::to_node`, so a test can send an address that is not one.
pub fn node(
    address: &str,
    workload: &str,
    namespace: &str,
) -> envoy_types::pb::envoy::config::core::v3::Node {
    use envoy_types::pb::google::protobuf::value::Kind;
    use envoy_types::pb::google::protobuf::{Struct, Value};

    use crate::proxy::meta;

    let string = |s: &str| Value {
        kind: Some(Kind::StringValue(s.to_string())),
    };
    envoy_types::pb::envoy::config::core::v3::Node {
        id: format!("sidecar~{address}~{workload}.{namespace}~{namespace}.svc.cluster.local"),
        metadata: Some(Struct {
            fields: [
                (meta::NAMESPACE, string(namespace)),
                (meta::WORKLOAD, string(workload)),
                (meta::ADDRESS, string(address)),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        }),
        ..Default::default()
    }
}

pub use crate::snapshot::test_mesh;

/// The snapshot of `yaml`, read as the one file `mesh.yaml` (documents
/// counted from 0, as the file source counts them).
pub fn snapshot_of(generation: u64, yaml: &str) -> crate::snapshot::Snapshot {
    let mut store = discovery::file::FileStore::default();
    store.apply(std::path::Path::new("mesh.yaml"), yaml);
    crate::snapshot::Snapshot::build(generation, &store.config())
}
