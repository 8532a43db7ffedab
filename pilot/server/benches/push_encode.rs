//! What it costs to put one proxy's full config on the wire, both ways:
//!
//! - prost: a `DiscoveryResponse` (or `DeltaDiscoveryResponse`) built for the
//!   proxy, each resource's `Any` copied into it, then encoded by prost into
//!   the frame buffer, as tonic's prost codec does;
//! - shared: the response holds the snapshot's `Arc<Resource>`s and
//!   `xds::codec` writes the wire format around their encoded bytes, straight
//!   into the frame buffer (what the server runs).
//!
//! For each it prints the time, the allocations and the bytes allocated per
//! push of all four types (CDS, EDS, LDS, RDS), the frame buffer included.
//! The only assertion is that both ways give the same bytes; speed is never
//! asserted. The allocator counts every allocation, which slows both ways
//! alike.
//!
//! Run: `cargo bench -p pilot-server --bench push_encode` (release build).
//! `BOWLINE_BENCH_SERVICES` and `BOWLINE_BENCH_ENDPOINTS` set the mesh (1,000
//! services of 10 endpoints by default, unscoped: about 1 MiB per proxy),
//! `BOWLINE_BENCH_ITERATIONS` the pushes measured (20).

// The generated mesh is the one the core bench measures.
#[path = "../../core/benches/mesh/mod.rs"]
mod mesh;

use std::alloc::System;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, BytesMut};
use discovery::file::FileStore;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryResponse, DiscoveryResponse, Resource as DeltaResource,
};
use pilot_core::compile::compile_consistent;
use pilot_core::resources::{ProxyResources, Resource, ResourceType};
use pilot_core::snapshot::Snapshot;
use pilot_server::xds::codec::WireMessage;
use pilot_server::xds::{DeltaResponse, Payload, SotwResponse};
use prost::Message;
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

use mesh::{mesh_yaml, proxy};

#[global_allocator]
static ALLOC: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// The buffer tonic starts a stream's frames in.
const FRAME_BUFFER: usize = 8 * 1024;
/// gRPC's frame header: a compression flag and a 4-byte length.
const FRAME_HEADER: usize = 5;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One push, averaged.
#[derive(Debug)]
struct Figures {
    time: Duration,
    allocations: usize,
    bytes: usize,
}

/// Runs `push` once to warm up, then `iterations` times, counting.
fn measure(iterations: usize, mut push: impl FnMut() -> usize) -> Figures {
    push();
    let region = Region::new(ALLOC);
    let t = Instant::now();
    for _ in 0..iterations {
        black_box(push());
    }
    let time = t.elapsed() / iterations as u32;
    let stats = region.change();
    Figures {
        time,
        allocations: (stats.allocations + stats.reallocations) / iterations,
        // Growth by `realloc` is counted here too, as the bytes added.
        bytes: stats.bytes_allocated / iterations,
    }
}

/// Where a push's frames go: counted, or also kept to compare the two ways.
fn sink(buf: BytesMut, wire: &mut Option<&mut Vec<u8>>) -> usize {
    if let Some(wire) = wire {
        wire.extend_from_slice(&buf[FRAME_HEADER..]);
    }
    buf.len()
}

/// A frame as tonic writes it: header, then the encoder's bytes.
fn frame(encode: impl FnOnce(&mut BytesMut)) -> BytesMut {
    let mut buf = BytesMut::with_capacity(FRAME_BUFFER);
    buf.put_slice(&[0; FRAME_HEADER]);
    encode(&mut buf);
    buf
}

/// The old way: a prost message per proxy, then prost's encoding.
fn prost_sotw(resources: &ProxyResources, mut wire: Option<&mut Vec<u8>>) -> usize {
    let mut sent = 0;
    for ty in ResourceType::ALL {
        let map = resources.get(ty);
        let message = DiscoveryResponse {
            version_info: ProxyResources::version_of(map.values().map(|r| r.as_ref())),
            resources: map.values().map(|r| r.any()).collect(),
            type_url: ty.type_url().to_string(),
            nonce: "1".to_string(),
            ..DiscoveryResponse::default()
        };
        let buf = frame(|buf| message.encode(buf).expect("a growable buffer"));
        sent += sink(buf, &mut wire);
    }
    sent
}

/// What the server does: the shared resources, written by `xds::codec`.
fn shared_sotw(resources: &ProxyResources, mut wire: Option<&mut Vec<u8>>) -> usize {
    let mut sent = 0;
    for ty in ResourceType::ALL {
        let map = resources.get(ty);
        let response = SotwResponse {
            version_info: ProxyResources::version_of(map.values().map(|r| r.as_ref())),
            resources: Payload::of(map),
            ty,
            nonce: "1".to_string(),
        };
        let buf = frame(|buf| {
            buf.reserve(response.encoded_len());
            response.encode(buf);
        });
        sent += sink(buf, &mut wire);
    }
    sent
}

fn prost_delta(resources: &ProxyResources, mut wire: Option<&mut Vec<u8>>) -> usize {
    let mut sent = 0;
    for ty in ResourceType::ALL {
        let map = resources.get(ty);
        let message = DeltaDiscoveryResponse {
            system_version_info: ProxyResources::version_of(map.values().map(|r| r.as_ref())),
            resources: map
                .values()
                .map(|r| DeltaResource {
                    name: r.name.clone(),
                    version: r.version.clone(),
                    resource: Some(r.any()),
                    ..DeltaResource::default()
                })
                .collect(),
            type_url: ty.type_url().to_string(),
            nonce: "1".to_string(),
            ..DeltaDiscoveryResponse::default()
        };
        let buf = frame(|buf| message.encode(buf).expect("a growable buffer"));
        sent += sink(buf, &mut wire);
    }
    sent
}

fn shared_delta(resources: &ProxyResources, mut wire: Option<&mut Vec<u8>>) -> usize {
    let mut sent = 0;
    for ty in ResourceType::ALL {
        let map = resources.get(ty);
        let response = DeltaResponse {
            system_version_info: ProxyResources::version_of(map.values().map(|r| r.as_ref())),
            resources: map.values().cloned().collect::<Vec<Arc<Resource>>>(),
            ty,
            removed_resources: Vec::new(),
            nonce: "1".to_string(),
        };
        let buf = frame(|buf| {
            buf.reserve(response.encoded_len());
            response.encode(buf);
        });
        sent += sink(buf, &mut wire);
    }
    sent
}

fn report(variant: &str, iterations: usize, resources: &ProxyResources) -> [Figures; 2] {
    type Push = fn(&ProxyResources, Option<&mut Vec<u8>>) -> usize;
    let (old, new): (Push, Push) = match variant {
        "SotW" => (prost_sotw, shared_sotw),
        _ => (prost_delta, shared_delta),
    };
    let (mut old_wire, mut new_wire) = (Vec::new(), Vec::new());
    old(resources, Some(&mut old_wire));
    new(resources, Some(&mut new_wire));
    assert!(
        old_wire == new_wire,
        "{variant}: the codec's bytes differ from prost's"
    );
    let old_figures = measure(iterations, || old(resources, None));
    let new_figures = measure(iterations, || new(resources, None));
    println!(
        "{variant} full push (4 responses, {} KiB on the wire):",
        new_wire.len() / 1024
    );
    for (way, f) in [
        ("prost message per proxy", &old_figures),
        ("shared encoded resources", &new_figures),
    ] {
        println!(
            "  {way:<26} {:>8.3} ms  {:>6} allocations  {:>7} KiB allocated",
            f.time.as_secs_f64() * 1e3,
            f.allocations,
            f.bytes / 1024
        );
    }
    println!(
        "  ratio (prost / shared)     {:>8.2} x     {:>6.1} x            {:>7.2} x",
        old_figures.time.as_secs_f64() / new_figures.time.as_secs_f64(),
        old_figures.allocations as f64 / new_figures.allocations.max(1) as f64,
        old_figures.bytes as f64 / new_figures.bytes.max(1) as f64
    );
    [old_figures, new_figures]
}

fn main() {
    let services = env_or("BOWLINE_BENCH_SERVICES", 1000);
    let endpoints = env_or("BOWLINE_BENCH_ENDPOINTS", 10);
    let iterations = env_or("BOWLINE_BENCH_ITERATIONS", 20).max(1);

    let mut store = FileStore::default();
    store.apply(Path::new("mesh.yaml"), &mesh_yaml(services, endpoints));
    let snapshot = Snapshot::build(1, &store.config());
    let resources = compile_consistent(&snapshot, &proxy(0, 0, endpoints)).expect("consistent");

    let counts: Vec<String> = ResourceType::ALL
        .iter()
        .map(|&ty| format!("{:?}: {}", ty, resources.get(ty).len()))
        .collect();
    let encoded: usize = ResourceType::ALL
        .iter()
        .flat_map(|&ty| resources.get(ty).values())
        .map(|r| r.encoded().len())
        .sum();
    println!(
        "mesh: {services} services x {endpoints} endpoints; one proxy: {} ({} KiB encoded); {iterations} pushes each",
        counts.join(", "),
        encoded / 1024
    );
    for variant in ["SotW", "Delta"] {
        let [old, new] = report(variant, iterations, &resources);
        let per_10k = |f: &Figures| f.bytes as f64 * 10_000.0 / (1u64 << 30) as f64;
        println!(
            "  pushing 10,000 such proxies allocates {:.1} GiB the prost way, {:.1} GiB shared",
            per_10k(&old),
            per_10k(&new)
        );
    }
}
