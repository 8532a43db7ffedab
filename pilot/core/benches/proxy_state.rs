//! What each connected proxy costs the server, in process and without
//! sockets: the compiled set it holds and its xDS connection's state, after
//! the initial sync and after one VirtualService edit, and the CPU time per
//! proxy for each step. The sync follows Envoy's state-of-the-world request
//! flow (wildcard CDS, EDS for the clusters' names, ACKs; wildcard LDS, RDS
//! for the listeners' route names, ACKs), driving `xds::Connection` as the
//! stream task does, with sets compiled through one push context per
//! snapshot as the push queue compiles them.
//!
//! The memory figure is the heap still allocated per proxy once the
//! responses are dropped (the proxies' shared part, compiled for the first
//! proxy, is not counted): what the stream's own buffers and tonic add comes
//! on top, and `bowline bench xds` measures the whole server. Prints figures;
//! asserts only that every proxy took the edit.
//!
//! Run: `cargo bench -p pilot-core --bench proxy_state` (release build).
//! `BOWLINE_BENCH_SERVICES`, `BOWLINE_BENCH_ENDPOINTS` and
//! `BOWLINE_BENCH_PROXIES` set the size (1,000 services of 10 endpoints,
//! unscoped, and 200 proxies by default).

mod mesh;

use std::alloc::System;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use discovery::file::FileStore;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use pilot_core::compile::PushContext;
use pilot_core::proxy::Proxy;
use pilot_core::resources::{ProxyResources, ResourceType};
use pilot_core::snapshot::Snapshot;
use pilot_core::xds::{Connection, Response};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

use mesh::{mesh_yaml, proxy};

#[global_allocator]
static ALLOC: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn request(ty: ResourceType, names: Vec<String>, answering: Option<&Response>) -> DiscoveryRequest {
    DiscoveryRequest {
        type_url: ty.type_url().to_string(),
        resource_names: names,
        version_info: answering
            .map(|r| r.version().to_string())
            .unwrap_or_default(),
        response_nonce: answering.map(|r| r.nonce().to_string()).unwrap_or_default(),
        ..DiscoveryRequest::default()
    }
}

/// The names the resources of `responses` of type `ty` point at.
fn referenced(responses: &[Response], ty: ResourceType) -> Vec<String> {
    let mut names: Vec<String> = responses
        .iter()
        .filter_map(|r| match r {
            Response::Sotw(r) if r.ty == ty => Some(r),
            _ => None,
        })
        .flat_map(|r| r.resources.iter().flat_map(|x| x.references().to_vec()))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn of(responses: &[Response], ty: ResourceType) -> Option<&Response> {
    responses.iter().find(|r| r.type_url() == ty.type_url())
}

/// ACKs every response in `responses`; returns what the connection sends next.
fn ack_all(
    conn: &mut Connection,
    responses: Vec<Response>,
    names: &[(ResourceType, Vec<String>)],
) -> Vec<Response> {
    let mut next = Vec::new();
    for r in &responses {
        let ty = ResourceType::from_type_url(r.type_url()).expect("a served type");
        let subscribed = names
            .iter()
            .find(|(t, _)| *t == ty)
            .map(|(_, n)| n.clone())
            .unwrap_or_default();
        next.extend(conn.on_sotw_request(request(ty, subscribed, Some(r))));
    }
    next
}

/// Envoy's initial state-of-the-world sync, every response ACKed.
fn sync(conn: &mut Connection) {
    let cds = conn.on_sotw_request(request(ResourceType::Cluster, Vec::new(), None));
    let eds_names = referenced(&cds, ResourceType::Cluster);
    let eds = conn.on_sotw_request(request(ResourceType::Endpoint, eds_names.clone(), None));
    let mut names = vec![
        (ResourceType::Cluster, Vec::new()),
        (ResourceType::Endpoint, eds_names),
    ];
    let mut pending = ack_all(conn, cds, &names);
    pending.extend(ack_all(conn, eds, &names));
    let lds = conn.on_sotw_request(request(ResourceType::Listener, Vec::new(), None));
    let rds_names = current_names(conn, ResourceType::Route);
    let rds = conn.on_sotw_request(request(ResourceType::Route, rds_names.clone(), None));
    names.push((ResourceType::Listener, Vec::new()));
    names.push((ResourceType::Route, rds_names));
    pending.extend(ack_all(conn, lds, &names));
    pending.extend(ack_all(conn, rds, &names));
    while !pending.is_empty() {
        pending = ack_all(conn, pending, &names);
    }
}

fn snapshot(generation: u64, yaml: &str) -> Arc<Snapshot> {
    let mut store = FileStore::default();
    store.apply(Path::new("mesh.yaml"), yaml);
    let config = store.config();
    assert!(
        config.diagnostics.iter().all(|d| !d.is_error()),
        "the generated mesh is valid: {:?}",
        config.diagnostics.first()
    );
    Arc::new(Snapshot::build(generation, &config))
}

fn compile(context: &PushContext, proxy: &Proxy) -> Arc<ProxyResources> {
    let resources = context
        .compile_consistent(proxy)
        .expect("the generated mesh compiles consistently");
    Arc::new(resources.with_generation(context.generation()))
}

fn main() {
    let services = env_or("BOWLINE_BENCH_SERVICES", 1000);
    let endpoints = env_or("BOWLINE_BENCH_ENDPOINTS", 10);
    let count = env_or("BOWLINE_BENCH_PROXIES", 200);
    println!("mesh: {services} services x {endpoints} endpoints, unscoped; {count} SotW proxies");
    let proxies: Vec<Proxy> = (0..count)
        .map(|i| proxy(i % services, (i / services) % endpoints, endpoints))
        .collect();

    let yaml = mesh_yaml(services, endpoints);
    let first = PushContext::new(snapshot(1, &yaml));
    // The shared parts, compiled once per namespace for all its proxies,
    // are not counted.
    let warm = |context: &PushContext| {
        for proxy in proxies.iter().take(10) {
            drop(compile(context, proxy));
        }
    };
    warm(&first);

    let region = Region::new(ALLOC);
    let sets: Vec<Arc<ProxyResources>> = proxies.iter().map(|p| compile(&first, p)).collect();
    let held = region.change();
    println!(
        "compiled sets alone: {:.1} KiB per proxy",
        (held.bytes_allocated as isize - held.bytes_deallocated as isize) as f64
            / count as f64
            / 1024.0
    );
    drop(sets);

    let region = Region::new(ALLOC);
    let mut compile_time = Duration::ZERO;
    let mut sync_time = Duration::ZERO;
    let mut connections = Vec::with_capacity(count);
    for proxy in &proxies {
        let t = Instant::now();
        let resources = compile(&first, proxy);
        compile_time += t.elapsed();
        let t = Instant::now();
        let mut conn = Connection::sotw();
        let early = conn.on_resources(resources);
        assert!(early.is_empty(), "nothing is sent before a request");
        sync(&mut conn);
        sync_time += t.elapsed();
        connections.push(conn);
    }
    let synced = region.change();
    let per_proxy = |bytes: isize| bytes as f64 / count as f64 / 1024.0;
    let synced_kib = per_proxy(synced.bytes_allocated as isize - synced.bytes_deallocated as isize);
    println!(
        "initial sync: {:.1} KiB per proxy held; per proxy {:.2} ms compiling, {:.2} ms in the connection",
        synced_kib,
        compile_time.as_secs_f64() * 1e3 / count as f64,
        sync_time.as_secs_f64() * 1e3 / count as f64,
    );

    // One VirtualService edit: svc-0's split changes.
    let edited =
        yaml.replacen("weight: 90", "weight: 80", 1)
            .replacen("weight: 10\n", "weight: 20\n", 1);
    assert_ne!(edited, yaml, "the mesh has a split to edit");
    let second = PushContext::new(snapshot(2, &edited));
    warm(&second);
    drop(first);
    let region = Region::new(ALLOC);
    let (mut compile_time, mut push_time) = (Duration::ZERO, Duration::ZERO);
    let mut pushed = 0usize;
    for (proxy, conn) in proxies.iter().zip(&mut connections) {
        let t = Instant::now();
        let resources = compile(&second, proxy);
        compile_time += t.elapsed();
        let t = Instant::now();
        let mut responses = conn.on_resources(resources);
        pushed += responses.len();
        let rds = of(&responses, ResourceType::Route).is_some();
        assert!(rds, "the edit reaches every unscoped proxy's routes");
        while !responses.is_empty() {
            // Each ACK carries the names the type is subscribed to now.
            let mut next = Vec::new();
            for r in &responses {
                let ty = ResourceType::from_type_url(r.type_url()).expect("a served type");
                let names = current_names(conn, ty);
                next.extend(conn.on_sotw_request(request(ty, names, Some(r))));
            }
            responses = next;
        }
        push_time += t.elapsed();
    }
    let edited_stats = region.change();
    println!(
        "after one VirtualService edit: {pushed} responses; {:+.1} KiB per proxy held; per proxy {:.3} ms compiling, {:.3} ms in the connection",
        per_proxy(edited_stats.bytes_allocated as isize - edited_stats.bytes_deallocated as isize),
        compile_time.as_secs_f64() * 1e3 / count as f64,
        push_time.as_secs_f64() * 1e3 / count as f64,
    );
    drop(connections);
}

/// The names a type is subscribed to, as the proxy would send them again.
fn current_names(conn: &Connection, ty: ResourceType) -> Vec<String> {
    match ty {
        ResourceType::Cluster | ResourceType::Listener => Vec::new(),
        ResourceType::Endpoint => referenced_by(conn, ResourceType::Cluster),
        // The route configurations the listeners name over RDS: the
        // consistency check holds the set to exactly those.
        ResourceType::Route | ResourceType::Secret => {
            conn.resources().get(ty).keys().cloned().collect()
        }
    }
}

fn referenced_by(conn: &Connection, ty: ResourceType) -> Vec<String> {
    let mut names: Vec<String> = conn
        .resources()
        .get(ty)
        .values()
        .flat_map(|r| r.references().to_vec())
        .collect();
    names.sort();
    names.dedup();
    names
}
