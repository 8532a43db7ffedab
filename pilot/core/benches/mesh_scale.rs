//! Scale benchmark: a mesh of 1,000 services with 10 endpoints each, and the
//! compiled config of 1,000 proxies, as the server compiles it (through one
//! push context per snapshot, with the consistency check); then one endpoint
//! moves, and the same proxies are brought up to date the way the push queue
//! does it. Prints figures; asserts nothing about speed.
//!
//! Run: `cargo bench -p pilot --bench mesh_scale` (release build). Set
//! `BOWLINE_BENCH_SERVICES`, `BOWLINE_BENCH_ENDPOINTS` and
//! `BOWLINE_BENCH_PROXIES` to change the size.

mod mesh;

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use discovery::file::FileStore;
use pilot_core::compile::PushContext;
use pilot_core::proxy::Proxy;
use pilot_core::resources::{ProxyResources, ResourceType};
use pilot_core::snapshot::{ChangeSet, Snapshot};

use mesh::{address, mesh_yaml, proxy};

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Peak resident memory of this process so far, from the kernel.
fn peak_rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn main() {
    let services = env_or("BOWLINE_BENCH_SERVICES", 1000);
    let endpoints = env_or("BOWLINE_BENCH_ENDPOINTS", 10);
    let proxies = env_or("BOWLINE_BENCH_PROXIES", 1000);
    println!("mesh: {services} services x {endpoints} endpoints, {proxies} proxies");

    let yaml = mesh_yaml(services, endpoints);
    let rss_before = peak_rss_mib();

    let t = Instant::now();
    let mut store = FileStore::default();
    store.apply(Path::new("mesh.yaml"), &yaml);
    let config = store.config();
    let parse = t.elapsed();
    assert!(
        config.diagnostics.iter().all(|d| !d.is_error()),
        "the generated mesh is valid: {:?}",
        config.diagnostics.first()
    );

    let t = Instant::now();
    let snapshot = Arc::new(Snapshot::build(1, &config));
    let build = t.elapsed();

    let context = PushContext::new(snapshot.clone());
    let t = Instant::now();
    let fleet: Vec<Proxy> = (0..proxies)
        .map(|p| proxy(p % services, p / services % endpoints, endpoints))
        .collect();
    // What the server runs before each push: compile, then the consistency check.
    let compiled: Vec<ProxyResources> = fleet
        .iter()
        .map(|proxy| context.compile_consistent(proxy).expect("a consistent set"))
        .collect();
    let compile_all = t.elapsed();

    // One endpoint moves (a proxy's own address is left alone).
    let moved_from = address(services * endpoints - 1).to_string();
    let moved = yaml.replace(
        &format!("address: {moved_from}\n"),
        "address: 127.250.0.1\n",
    );
    let t = Instant::now();
    let mut store = FileStore::default();
    store.apply(Path::new("mesh.yaml"), &moved);
    let next_config = store.config();
    let reparse = t.elapsed();
    let t = Instant::now();
    let next = Arc::new(Snapshot::build(2, &next_config));
    let rebuild = t.elapsed();
    let t = Instant::now();
    let changes = ChangeSet::between(&snapshot, &next);
    let endpoint_changes = changes
        .endpoints_only()
        .expect("moving one endpoint is an endpoint-only change");
    let next_context = PushContext::after_endpoint_change(&context, next, endpoint_changes);
    let diff = t.elapsed();
    let t = Instant::now();
    let mut updated = 0;
    for (proxy, last) in fleet.iter().zip(&compiled) {
        if !changes.reaches(proxy, &snapshot, next_context.snapshot()) {
            continue;
        }
        let _ = match next_context.endpoints_update(proxy, last, 1) {
            Some(resources) => resources,
            None => next_context
                .compile_consistent(proxy)
                .expect("a consistent set"),
        };
        updated += 1;
    }
    let update_all = t.elapsed();

    let first = &compiled[0];
    let counts: Vec<String> = ResourceType::ALL
        .iter()
        .map(|&ty| format!("{:?}: {}", ty, first.get(ty).len()))
        .collect();
    let bytes: usize = ResourceType::ALL
        .iter()
        .flat_map(|&ty| first.get(ty).values())
        .map(|r| r.value().len())
        .sum();
    println!(
        "per proxy: {} ({} KiB encoded)",
        counts.join(", "),
        bytes / 1024
    );
    println!(
        "parse + validate YAML ({} KiB):  {:>8.1} ms",
        yaml.len() / 1024,
        parse.as_secs_f64() * 1e3
    );
    println!(
        "build snapshot:                  {:>8.1} ms",
        build.as_secs_f64() * 1e3
    );
    println!(
        "compile {proxies} proxies:            {:>8.1} ms ({:.2} ms per proxy)",
        compile_all.as_secs_f64() * 1e3,
        compile_all.as_secs_f64() * 1e3 / proxies as f64
    );
    println!(
        "total:                           {:>8.1} ms",
        (parse + build + compile_all).as_secs_f64() * 1e3
    );
    println!("after one endpoint moves:");
    println!(
        "  parse + validate YAML again:   {:>8.1} ms",
        reparse.as_secs_f64() * 1e3
    );
    println!(
        "  build snapshot:                {:>8.1} ms",
        rebuild.as_secs_f64() * 1e3
    );
    println!(
        "  change set + push context:     {:>8.1} ms",
        diff.as_secs_f64() * 1e3
    );
    println!(
        "  update {updated} proxies (endpoints only): {:>8.1} ms",
        update_all.as_secs_f64() * 1e3
    );
    println!(
        "peak RSS: {:.0} MiB (input text alone: {:.0} MiB)",
        peak_rss_mib(),
        rss_before
    );
    drop(compiled);
}
