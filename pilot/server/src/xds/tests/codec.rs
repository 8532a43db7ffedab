//! The response codec writes exactly the bytes prost writes for the message
//! the responses used to be built as, for every golden config and for random
//! inputs (empty and long strings, empty messages, bodies long enough for
//! multi-byte lengths).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryResponse, DiscoveryResponse, Resource as DeltaResource,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use crate::xds::codec::WireMessage;
use pilot_core::proxy::{DEFAULT_OUTBOUND_PORT, NodeMetadata, Proxy};
use pilot_core::resources::{ProxyResources, Resource, ResourceType};
use pilot_core::snapshot::Snapshot;
use pilot_core::xds::connection::{DeltaResponse, SotwResponse};

fn wire(message: &impl WireMessage) -> Vec<u8> {
    let mut buf = Vec::new();
    message.encode(&mut buf);
    assert_eq!(buf.len(), message.encoded_len(), "encoded_len is exact");
    buf
}

/// The `DiscoveryResponse` the state machine used to build: each resource's
/// `Any` copied into the message.
fn old_sotw(r: &SotwResponse) -> DiscoveryResponse {
    DiscoveryResponse {
        version_info: r.version_info.clone(),
        resources: r
            .resources
            .iter()
            .map(|r| Any {
                type_url: r.resource_type().type_url().to_string(),
                value: r.value().to_vec(),
            })
            .collect(),
        type_url: r.ty.type_url().to_string(),
        nonce: r.nonce.clone(),
        ..DiscoveryResponse::default()
    }
}

fn old_delta(r: &DeltaResponse) -> DeltaDiscoveryResponse {
    DeltaDiscoveryResponse {
        system_version_info: r.system_version_info.clone(),
        resources: r
            .resources
            .iter()
            .map(|r| DeltaResource {
                name: r.name.clone(),
                version: r.version.clone(),
                resource: Some(Any {
                    type_url: r.resource_type().type_url().to_string(),
                    value: r.value().to_vec(),
                }),
                ..DeltaResource::default()
            })
            .collect(),
        type_url: r.ty.type_url().to_string(),
        removed_resources: r.removed_resources.clone(),
        nonce: r.nonce.clone(),
        ..DeltaDiscoveryResponse::default()
    }
}

fn assert_same(sotw: &SotwResponse, delta: &DeltaResponse, context: &str) {
    let old = old_sotw(sotw);
    let new = wire(sotw);
    assert_eq!(new, old.encode_to_vec(), "{context}: SotW bytes");
    assert_eq!(DiscoveryResponse::decode(new.as_slice()).unwrap(), old);
    assert_eq!(sotw.to_proto(), old, "{context}: SotW to_proto");

    let old = old_delta(delta);
    let new = wire(delta);
    assert_eq!(new, old.encode_to_vec(), "{context}: Delta bytes");
    assert_eq!(DeltaDiscoveryResponse::decode(new.as_slice()).unwrap(), old);
    assert_eq!(delta.to_proto(), old, "{context}: Delta to_proto");
}

fn responses(
    ty: ResourceType,
    resources: Vec<Arc<Resource>>,
    version: &str,
    nonce: &str,
    removed: Vec<String>,
) -> (SotwResponse, DeltaResponse) {
    let sotw = SotwResponse {
        version_info: version.to_string(),
        resources: resources.clone(),
        ty,
        nonce: nonce.to_string(),
    };
    let delta = DeltaResponse {
        system_version_info: version.to_string(),
        resources,
        ty,
        removed_resources: removed,
        nonce: nonce.to_string(),
    };
    (sotw, delta)
}

/// Every WorkloadEntry of `text` as a proxy, the way the golden test makes one.
fn proxies(objects: &[Arc<policy::Object>]) -> Vec<Proxy> {
    objects
        .iter()
        .filter_map(|o| match o.as_ref() {
            policy::Object::WorkloadEntry(we) => Some(we),
            _ => None,
        })
        .filter_map(|we| {
            let address: IpAddr = we.spec.address.parse().ok()?;
            Some(Proxy::new(NodeMetadata {
                namespace: we.meta.namespace.clone(),
                workload: we.meta.name.clone(),
                address,
                labels: we.spec.labels.clone(),
                service_account: we.spec.service_account.clone(),
                app_address: Some(SocketAddr::new(address, 15080)),
                app_ports: Default::default(),
                outbound_port: DEFAULT_OUTBOUND_PORT,
            }))
        })
        .collect()
}

#[test]
fn every_golden_config_encodes_as_prost_does() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/golden");
    let inputs: Vec<_> = glob::glob(&format!("{}/**/*.in.yaml", root.display()))
        .unwrap()
        .flatten()
        .collect();
    assert!(
        !inputs.is_empty(),
        "no golden inputs under {}",
        root.display()
    );
    let mut checked = 0;
    for input in inputs {
        let text = std::fs::read_to_string(&input).unwrap();
        let mut store = discovery::file::FileStore::default();
        store.apply(&input, &text);
        let config = store.config();
        let snapshot = Snapshot::build(1, &config);
        for proxy in proxies(&config.objects) {
            let compiled = pilot_core::compile::compile(&snapshot, &proxy);
            for ty in ResourceType::ALL {
                let all: Vec<Arc<Resource>> = compiled.get(ty).values().cloned().collect();
                let removed = vec!["gone".to_string(), String::new()];
                let version = ProxyResources::version_of(all.iter().map(|r| r.as_ref()));
                let (sotw, delta) = responses(ty, all, &version, "17", removed);
                assert_same(
                    &sotw,
                    &delta,
                    &format!("{} {} {ty:?}", input.display(), proxy.id),
                );
                checked += 1;
            }
        }
    }
    assert!(checked > 0, "no proxies in the golden inputs");
}

fn random_string(rng: &mut fastrand::Rng) -> String {
    let len = match rng.u8(..4) {
        0 => 0,
        1 => rng.usize(1..10),
        2 => rng.usize(100..300),
        _ => rng.usize(10..100),
    };
    (0..len).map(|_| rng.alphanumeric()).collect()
}

fn random_resource(rng: &mut fastrand::Rng, ty: ResourceType) -> Arc<Resource> {
    let name = random_string(rng);
    let mut resource = match rng.u8(..4) {
        // An empty message: the `Any` has no value field.
        0 => Resource::new(ty, name, &Cluster::default()),
        // Long enough for three-byte lengths at every level.
        1 => Resource::new(
            ty,
            name,
            &ClusterLoadAssignment {
                cluster_name: "x".repeat(rng.usize(16_384..40_000)),
                ..Default::default()
            },
        ),
        _ => Resource::new(
            ty,
            name.clone(),
            &Cluster {
                name,
                alt_stat_name: random_string(rng),
                ..Default::default()
            },
        ),
    };
    if rng.u8(..8) == 0 {
        // Versions are never empty in practice; the encoder must still agree.
        resource.version.clear();
    }
    Arc::new(resource)
}

#[test]
fn random_responses_encode_as_prost_does() {
    let mut rng = fastrand::Rng::with_seed(7);
    for case in 0..300 {
        let ty = ResourceType::ALL[rng.usize(..4)];
        let count = match rng.u8(..4) {
            0 => 0,
            1 => rng.usize(100..200),
            _ => rng.usize(1..10),
        };
        let resources = (0..count).map(|_| random_resource(&mut rng, ty)).collect();
        let removed = (0..rng.usize(..5))
            .map(|_| random_string(&mut rng))
            .collect();
        let version = random_string(&mut rng);
        let nonce = random_string(&mut rng);
        let (sotw, delta) = responses(ty, resources, &version, &nonce, removed);
        assert_same(&sotw, &delta, &format!("case {case}"));
    }
}

#[test]
fn a_resource_is_the_any_prost_would_encode() {
    let cluster = Cluster {
        name: "shop".into(),
        alt_stat_name: "v1".into(),
        ..Default::default()
    };
    for message in [cluster, Cluster::default()] {
        let r = Resource::new(ResourceType::Cluster, "shop", &message);
        let any = Any {
            type_url: ResourceType::Cluster.type_url().to_string(),
            value: message.encode_to_vec(),
        };
        assert_eq!(r.encoded().as_ref(), any.encode_to_vec().as_slice());
        assert_eq!(r.value(), any.value.as_slice());
        assert_eq!(r.any(), any);
        assert_eq!(Any::decode(r.encoded().clone()).unwrap(), any);
        assert_eq!(r.version, pilot_core::resources::content_hash(&any.value));
        assert_eq!(r.resource_type(), ResourceType::Cluster);
    }
}
