//! The response codec writes exactly the bytes prost writes for the message
//! the responses used to be built as, for every golden config and for random
//! inputs (empty and long strings, empty messages, bodies long enough for
//! multi-byte lengths).

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use http_body::Body as _;
use tokio_stream::wrappers::ReceiverStream;

use envoy_types::pb::envoy::config::cluster::v3::Cluster;
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse, Resource as DeltaResource,
};
use envoy_types::pb::google::protobuf::Any;
use prost::Message;

use crate::xds::codec::{Requests, ResponseBody, WireMessage};
use pilot_core::proxy::{DEFAULT_OUTBOUND_PORT, NodeMetadata, Proxy};
use pilot_core::resources::{ProxyResources, Resource, ResourceType};
use pilot_core::snapshot::Snapshot;
use pilot_core::xds::connection::{DeltaResponse, Payload, SotwResponse};

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
    assert_streamed(sotw.clone(), &old.encode_to_vec(), &shared(sotw), context);

    let old = old_delta(delta);
    let new = wire(delta);
    assert_eq!(new, old.encode_to_vec(), "{context}: Delta bytes");
    assert_eq!(DeltaDiscoveryResponse::decode(new.as_slice()).unwrap(), old);
    assert_eq!(delta.to_proto(), old, "{context}: Delta to_proto");
    let encoded: Vec<Bytes> = delta
        .resources
        .iter()
        .map(|r| r.encoded().clone())
        .collect();
    assert_streamed(delta.clone(), &old.encode_to_vec(), &encoded, context);
}

/// The bytes a SotW response must send by reference when they are large:
/// each listed resource, or a whole set's pre-encoded pieces.
fn shared(sotw: &SotwResponse) -> Vec<Bytes> {
    match &sotw.resources {
        Payload::Listed(list) => list.iter().map(|r| r.encoded().clone()).collect(),
        Payload::Whole(whole) => whole.pieces().cloned().collect(),
    }
}

/// What a stream's body sends for `message` and then the stream's end: the
/// message framed as gRPC frames it (`expected` after the flag and length),
/// every large piece of `shared` as those bytes, not a copy, and the
/// trailers of an OK status.
/// Returns how many chunks the message went out in.
fn assert_streamed<T>(message: T, expected: &[u8], shared: &[Bytes], context: &str) -> usize
where
    T: WireMessage + Unpin + Send + 'static,
{
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.try_send(Ok(message)).expect("room for one");
    drop(tx);
    let mut body = ResponseBody::new(ReceiverStream::new(rx));
    let mut cx = Context::from_waker(Waker::noop());
    let (mut data, mut chunks, mut trailers) = (Vec::new(), Vec::new(), None);
    loop {
        let Poll::Ready(frame) = Pin::new(&mut body).poll_frame(&mut cx) else {
            panic!("{context}: a body whose responses are all there never waits");
        };
        let Some(frame) = frame else { break };
        let frame = frame.expect("no error");
        match frame.into_data() {
            Ok(chunk) => {
                assert!(trailers.is_none(), "{context}: data after the trailers");
                data.extend_from_slice(&chunk);
                chunks.push(chunk);
            }
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    let mut framed = vec![0];
    framed.extend_from_slice(&(expected.len() as u32).to_be_bytes());
    framed.extend_from_slice(expected);
    assert_eq!(data, framed, "{context}: streamed bytes");
    let trailers = trailers.expect("trailers end the stream");
    assert_eq!(
        trailers.get("grpc-status").map(|v| v.as_bytes()),
        Some(&b"0"[..])
    );
    for (i, piece) in shared.iter().enumerate().filter(|(_, p)| p.len() >= 512) {
        assert!(
            chunks.iter().any(|c| c.as_ptr() == piece.as_ptr()),
            "{context}: piece {i} of {} bytes went out copied",
            piece.len()
        );
    }
    chunks.len()
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
        resources: Payload::Listed(resources.clone()),
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
                generator: Default::default(),
                sds: false,
                capture: false,
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
                let context = format!("{} {} {ty:?}", input.display(), proxy.id);
                assert_same(&sotw, &delta, &context);
                // The same response holding the set: its pre-encoded
                // entries are the same bytes.
                let whole = SotwResponse {
                    resources: Payload::of(compiled.get(ty)),
                    ..sotw.clone()
                };
                assert_eq!(wire(&whole), wire(&sotw), "{context}: whole set");
                assert_streamed(
                    whole.clone(),
                    &wire(&sotw),
                    &shared(&whole),
                    &format!("{context} whole"),
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
        let ty = ResourceType::ALL[rng.usize(..ResourceType::ALL.len())];
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

#[test]
fn a_large_response_streams_in_chunks_sharing_its_large_resources() {
    let resource = |name: String, size: usize| {
        let any = Any {
            type_url: "t".into(),
            value: vec![7; size],
        };
        Arc::new(Resource::new(ResourceType::Cluster, name, &any))
    };
    // Enough small resources for several chunks, and large ones among them.
    let resources: Vec<Arc<Resource>> = (0..400)
        .map(|i| resource(format!("c{i:03}"), if i % 50 == 0 { 4096 } else { 100 }))
        .collect();
    let (sotw, delta) = responses(
        ResourceType::Cluster,
        resources,
        "v",
        "1",
        vec!["gone".into()],
    );
    assert_same(&sotw, &delta, "large response");
    // 8 shared resources, and the small ones between them copied together
    // into chunks of their own: no chunk holds the whole response.
    let expected = old_sotw(&sotw).encode_to_vec();
    let chunks = assert_streamed(sotw.clone(), &expected, &shared(&sotw), "chunks");
    assert!(chunks >= 16, "{chunks} chunks");
}

/// A request body that hands out the given chunks, then ends.
struct Chunked(std::collections::VecDeque<bytes::Bytes>);

impl http_body::Body for Chunked {
    type Data = bytes::Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<bytes::Bytes>, tonic::Status>>> {
        Poll::Ready(self.0.pop_front().map(|c| Ok(http_body::Frame::data(c))))
    }
}

fn framed(request: &DiscoveryRequest) -> Vec<u8> {
    let body = request.encode_to_vec();
    let mut out = vec![0];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// Every item the request stream yields, and what its buffer holds at the end.
fn read_requests(chunks: Vec<Vec<u8>>) -> (Vec<Result<DiscoveryRequest, tonic::Status>>, usize) {
    use tokio_stream::Stream as _;
    let body = Chunked(chunks.into_iter().map(bytes::Bytes::from).collect());
    let mut requests = Requests::<DiscoveryRequest>::new(tonic::body::Body::new(body));
    let mut cx = Context::from_waker(Waker::noop());
    let mut out = Vec::new();
    while let Poll::Ready(Some(item)) = Pin::new(&mut requests).poll_next(&mut cx) {
        out.push(item);
    }
    (out, requests.buffered())
}

#[test]
fn requests_decode_across_any_frame_boundaries_and_let_large_buffers_go() {
    let small = DiscoveryRequest {
        type_url: ResourceType::Cluster.type_url().to_string(),
        ..Default::default()
    };
    // Envoy's first EDS request in a large mesh: thousands of names.
    let large = DiscoveryRequest {
        type_url: ResourceType::Endpoint.type_url().to_string(),
        resource_names: (0..3000)
            .map(|i| format!("outbound|8080||svc-{i}.ns-{}.svc.cluster.local", i % 10))
            .collect(),
        ..Default::default()
    };
    let mut wire = framed(&small);
    wire.extend(framed(&large));
    wire.extend(framed(&small));
    assert!(wire.len() > 100_000);
    // Split at every kind of place: inside a header, inside a message.
    for cut in [1, 3, 7, 4096, 65_536] {
        let chunks: Vec<Vec<u8>> = wire.chunks(cut).map(<[u8]>::to_vec).collect();
        let (items, buffered) = read_requests(chunks);
        let items: Vec<DiscoveryRequest> = items.into_iter().map(|r| r.expect("decodes")).collect();
        assert_eq!(
            items,
            [small.clone(), large.clone(), small.clone()],
            "cut {cut}"
        );
        assert!(
            buffered <= 16 * 1024,
            "cut {cut}: {buffered} bytes kept after the stream"
        );
    }
}

#[test]
fn compressed_oversized_and_truncated_requests_are_errors() {
    let request = DiscoveryRequest {
        type_url: "t".into(),
        ..Default::default()
    };
    let mut compressed = framed(&request);
    compressed[0] = 1;
    let mut oversized = vec![0];
    oversized.extend_from_slice(&(5u32 << 20).to_be_bytes());
    let truncated = framed(&request)[..6].to_vec();
    for (wire, code) in [
        (compressed, tonic::Code::Unimplemented),
        (oversized, tonic::Code::OutOfRange),
        (truncated, tonic::Code::Internal),
    ] {
        let (items, _) = read_requests(vec![wire]);
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].as_ref().expect_err("an error").code(), code);
    }
}
