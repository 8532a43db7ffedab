//! Scale benchmark: a mesh of 1,000 services with 10 endpoints each, and the
//! compiled config of 1,000 proxies, as the server compiles it (through one
//! push context per snapshot, with the consistency check); then one endpoint
//! moves, and the same proxies are brought up to date the way the push queue
//! does it. Then the same mesh as `bowline serve` reads a directory, one
//! object per file, and one WorkloadEntry file changes: the snapshot and
//! push context built from scratch, and built from the previous snapshot
//! (`Snapshot::build_after`), side by side. Prints figures; asserts nothing
//! about speed.
//!
//! Run: `cargo bench -p pilot-core --bench mesh_scale` (release build). Set
//! `BOWLINE_BENCH_SERVICES`, `BOWLINE_BENCH_ENDPOINTS` and
//! `BOWLINE_BENCH_PROXIES` to change the size.

mod mesh;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

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

    one_file_changes(&yaml, &moved_from);
}

/// How many times the one-file change is timed; the median is reported.
const ROUNDS: usize = 21;

/// The mesh as a directory of one object per file, and one WorkloadEntry
/// file edited back and forth: the time from the edit to the snapshot and
/// push context the push queue works from, built from scratch and built
/// from the previous snapshot.
fn one_file_changes(yaml: &str, moved_from: &str) {
    let files: Vec<(PathBuf, String)> = yaml
        .split("---\n")
        .filter(|doc| !doc.trim().is_empty())
        .enumerate()
        .map(|(i, doc)| (PathBuf::from(format!("mesh/{i:05}.yaml")), doc.to_string()))
        .collect();
    let needle = format!("address: {moved_from}\n");
    let (path, original) = files
        .iter()
        .find(|(_, text)| text.contains(&needle))
        .cloned()
        .expect("the moved endpoint's file");
    let edits = [
        original.replace(&needle, "address: 127.250.0.1\n"),
        original,
    ];

    let mut store = FileStore::default();
    for (path, text) in &files {
        store.apply(path, text);
    }
    store.take_changed();
    let mut snapshot = Arc::new(Snapshot::build(1, &store.config()));
    let mut context = PushContext::new(snapshot.clone());

    let (mut full, mut incremental, mut split) = (Vec::new(), Vec::new(), Vec::new());
    for (round, generation) in (0..ROUNDS).zip(2..) {
        store.apply(&path, &edits[round % 2]);

        // From scratch: the whole config set, every part of the snapshot.
        let t = Instant::now();
        let config = store.config();
        let scratch = Arc::new(Snapshot::build(generation, &config));
        let _ = next_context(&context, scratch);
        full.push(t.elapsed());
        drop(config);

        // From the previous snapshot and the keys that changed.
        let t = Instant::now();
        let changed = store.take_changed();
        let config = store.config();
        let next = Arc::new(Snapshot::build_after(
            &snapshot, generation, &config, &changed,
        ));
        let built = t.elapsed();
        let next_context = next_context(&context, next.clone());
        incremental.push(t.elapsed());
        split.push((built, t.elapsed() - built));
        drop(config);
        (snapshot, context) = (next, next_context);
    }
    println!(
        "one WorkloadEntry file of {} changes, snapshot + push context (median of {ROUNDS}):",
        files.len()
    );
    println!(
        "  full build:                    {:>8.1} ms (max {:.1})",
        ms(median(&mut full)),
        ms(*full.iter().max().unwrap_or(&Duration::ZERO))
    );
    println!(
        "  incremental (build_after):     {:>8.1} ms (max {:.1})",
        ms(median(&mut incremental)),
        ms(*incremental.iter().max().unwrap_or(&Duration::ZERO))
    );
    let (mut built, mut rest): (Vec<Duration>, Vec<Duration>) = split.into_iter().unzip();
    println!(
        "    of which config + build_after {:.1} ms, change set + push context {:.1} ms",
        ms(median(&mut built)),
        ms(median(&mut rest))
    );
}

/// What the push queue does with a new snapshot: the change set, then a
/// context that starts from the previous one after an endpoint-only change.
fn next_context(previous: &PushContext, next: Arc<Snapshot>) -> PushContext {
    let changes = ChangeSet::between(previous.snapshot(), &next);
    let endpoints = changes
        .endpoints_only()
        .expect("moving one endpoint is an endpoint-only change");
    PushContext::after_endpoint_change(previous, next, endpoints)
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort();
    times.get(times.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}
