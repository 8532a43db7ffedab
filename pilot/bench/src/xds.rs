//! `bowline bench xds`: a fleet of simulated sidecars against an ADS server,
//! through one scenario, with figures at the end.
//!
//! ```text
//!                ┌─ proxy task × N: own Channel (own TCP, source 127.3.x.y) ─┐
//! coordinator ──►│   Flow (pure) ◄── responses ── ADS stream ── requests ──►  │──► server
//!   │ edits      │   Tracker: has it converged on the change?                 │
//!   ▼            └──────────── counters, per-proxy records ───────────────────┘
//! config dir (mesh::bump_virtual_service, mesh::move_endpoint) ──► server
//! ```
//!
//! Each proxy takes the identity of one generated workload (name, namespace,
//! labels, address), so that Sidecar scopes and per-namespace config apply to
//! it as to a real sidecar. A change is published to the proxies before the
//! edit is written; each proxy decides from its own config whether the change
//! concerns it (it holds a cluster of the changed service) and, if so, when it
//! holds the new state by content (the revision marker in its routes, the
//! moved address in its endpoints) and has ACKed it. A proxy the change does
//! not concern should receive nothing; every response it gets is counted.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use envoy_types::pb::envoy::config::core::v3::BuildVersion;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::config::core::v3::node::UserAgentVersionType;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::r#type::v3::SemanticVersion;
use pilot_node::NodeMetadata;
use prost::Message;
use serde::Serialize;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Streaming;
use tonic::transport::{Channel, Endpoint};

use crate::facts::{FactCache, Kind, XdsType};
use crate::flow::{Flow, Incoming, Item, Mode, Outgoing};
use crate::mesh::{self, Edit, MeshSpec};
use crate::procstat::{self, Sample};
use crate::report::{ChangeReport, Distribution, Errors, ProcessReport, Report, TypeCounts};

/// Node metadata keys Bowline's agent writes and its xDS server reads.
pub use pilot_node::meta;

/// The scenarios of `bowline bench xds`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum Scenario {
    /// All proxies connect at once; reports the time until all are synced.
    Connect,
    /// One VirtualService edit (`--service`).
    VsEdit,
    /// One endpoint moves (`--service`, `--endpoint`).
    EndpointMove,
    /// `--rate` endpoint moves per second for `--seconds`; every proxy must
    /// converge on the final state.
    Churn,
    /// The harness kills the server it started (`--server-cmd`) and starts it again.
    Restart,
}

impl Scenario {
    fn name(self) -> &'static str {
        match self {
            Scenario::Connect => "connect",
            Scenario::VsEdit => "vs-edit",
            Scenario::EndpointMove => "endpoint-move",
            Scenario::Churn => "churn",
            Scenario::Restart => "restart",
        }
    }
}

/// Flags of `bowline bench xds`.
#[derive(clap::Args, Debug, Clone)]
pub struct XdsArgs {
    /// The ADS server, HOST:PORT (plaintext HTTP/2).
    #[arg(long)]
    pub target: String,
    /// The config directory the server serves, written by `bowline bench mesh`.
    #[arg(long)]
    pub config_dir: PathBuf,
    /// Simulated sidecars.
    #[arg(long, default_value_t = 1)]
    pub proxies: usize,
    #[arg(long, value_enum, default_value_t = Mode::Sotw)]
    pub mode: Mode,
    #[arg(long, value_enum)]
    pub scenario: Scenario,
    /// Churn: endpoint moves per second.
    #[arg(long, default_value_t = 50.0)]
    pub rate: f64,
    /// Churn: how long to keep moving endpoints.
    #[arg(long, default_value_t = 30.0)]
    pub seconds: f64,
    /// The service the vs-edit and endpoint-move scenarios change.
    #[arg(long, default_value_t = 0)]
    pub service: usize,
    /// The endpoint (of `--service`) the endpoint-move scenario moves.
    #[arg(long, default_value_t = 0)]
    pub endpoint: usize,
    /// Sample this server process's CPU time and memory.
    #[arg(long, conflicts_with = "server_cmd")]
    pub server_pid: Option<u32>,
    /// Start the server with this shell command (needed by `restart`). It is
    /// run as `sh -c "exec CMD"`, so that the harness samples and signals the
    /// server itself: set variables with `env`, and pin it apart from the
    /// harness with `taskset -c 0` (`taskset -c 0 env BOWLINE_LOG=warn bowline serve ...`).
    #[arg(long)]
    pub server_cmd: Option<String>,
    /// Write the report as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Tokio worker threads of the harness.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// New connections per second (default: all at once).
    #[arg(long)]
    pub connect_rate: Option<f64>,
    /// Source address of the first proxy (then one more per proxy), used when
    /// the target is on loopback.
    #[arg(long, default_value = "127.3.0.1")]
    pub address_base: Ipv4Addr,
    /// Leave the source address to the kernel.
    #[arg(long)]
    pub no_bind: bool,
    /// After convergence, wait until no response arrived for this long.
    #[arg(long, default_value_t = 2.0)]
    pub quiet_seconds: f64,
    /// Longest wait for convergence and quiet after the change.
    #[arg(long, default_value_t = 60.0)]
    pub settle_seconds: f64,
    /// Longest wait for the initial sync.
    #[arg(long, default_value_t = 300.0)]
    pub sync_timeout_seconds: f64,
    /// No progress lines on stderr.
    #[arg(long)]
    pub quiet: bool,
}

impl XdsArgs {
    /// The defaults of every flag, for `target`, `config_dir` and `scenario`.
    pub fn new(
        target: impl Into<String>,
        config_dir: impl Into<PathBuf>,
        scenario: Scenario,
    ) -> Self {
        XdsArgs {
            target: target.into(),
            config_dir: config_dir.into(),
            proxies: 1,
            mode: Mode::Sotw,
            scenario,
            rate: 50.0,
            seconds: 30.0,
            service: 0,
            endpoint: 0,
            server_pid: None,
            server_cmd: None,
            json: None,
            threads: 1,
            connect_rate: None,
            address_base: Ipv4Addr::new(127, 3, 0, 1),
            no_bind: false,
            quiet_seconds: 2.0,
            settle_seconds: 60.0,
            sync_timeout_seconds: 300.0,
            quiet: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Mesh(#[from] mesh::Error),
    #[error("--{flag}: {reason}")]
    Usage { flag: &'static str, reason: String },
    #[error("target {target}: {reason}")]
    Target { target: String, reason: String },
    #[error("server command {cmd:?}: {reason}")]
    Server { cmd: String, reason: String },
    #[error("{path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(#[source] std::io::Error),
    #[error("not every proxy synced and converged (see the report)")]
    Incomplete,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `bowline bench xds`: runs the scenario on a runtime of `--threads`
/// workers, prints the table, writes the JSON.
pub fn run(args: XdsArgs) -> Result<()> {
    if args.threads == 0 {
        return Err(Error::Usage {
            flag: "threads",
            reason: "must be at least 1".into(),
        });
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.threads)
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    let report = runtime.block_on(run_scenario(&args))?;
    println!("{}", report.table());
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report).expect("the report serializes");
        std::fs::write(path, text + "\n").map_err(|source| Error::Write {
            path: path.clone(),
            source,
        })?;
    }
    // Let the proxies' connections close without waiting for them.
    runtime.shutdown_background();
    if report.complete() {
        Ok(())
    } else {
        Err(Error::Incomplete)
    }
}

/// Runs one scenario on the current runtime and returns its report.
pub async fn run_scenario(args: &XdsArgs) -> Result<Report> {
    validate(args)?;
    let spec = MeshSpec::load(&args.config_dir)?;
    raise_open_files_limit();
    let started = Instant::now();
    let at = move || started.elapsed().as_secs_f64();

    let mut server = match &args.server_cmd {
        Some(cmd) => {
            let mut s = ServerProcess::start(cmd)?;
            wait_ready(&args.target, &mut s.child, READY_LIMIT).await?;
            Some(s)
        }
        None => None,
    };
    let target = resolve(&args.target).await?;
    let server_pid =
        |server: &Option<ServerProcess>| server.as_ref().map(|s| s.pid).or(args.server_pid);
    let mut samples = Sampler {
        started,
        server: Vec::new(),
        client: Vec::new(),
    };
    samples.take("before", server_pid(&server));

    let (change_tx, change_rx) = watch::channel(None::<Arc<Change>>);
    let (stop_tx, stop_rx) = watch::channel(false);
    let bind = !args.no_bind && target.ip().is_loopback();
    let shared = Arc::new(Shared {
        mode: args.mode,
        target,
        spec,
        bind,
        address_base: args.address_base,
        started,
        cache: FactCache::default(),
        counters: Counters::default(),
        change_phase: std::sync::atomic::AtomicBool::new(false),
        last_response_us: AtomicU64::new(0),
        synced: AtomicUsize::new(0),
        notified: AtomicUsize::new(0),
        affected: AtomicUsize::new(0),
        converged: AtomicUsize::new(0),
        connect_failures: AtomicU64::new(0),
        stream_resets: AtomicU64::new(0),
        open_failures: AtomicU64::new(0),
        nacks: AtomicU64::new(0),
        last_error: Mutex::new(None),
        records: (0..args.proxies)
            .map(|_| Mutex::new(Record::default()))
            .collect(),
        progress: Notify::new(),
        change: change_rx,
        stop: stop_rx,
    });

    // Start the fleet.
    let mut tasks: Vec<JoinHandle<()>> = Vec::with_capacity(args.proxies);
    for i in 0..args.proxies {
        if let Some(rate) = args.connect_rate {
            tokio::time::sleep_until((started + Duration::from_secs_f64(i as f64 / rate)).into())
                .await;
        }
        tasks.push(tokio::spawn(run_proxy(shared.clone(), i)));
    }
    let sync_limit = Duration::from_secs_f64(args.sync_timeout_seconds)
        + args.connect_rate.map_or(Duration::ZERO, |r| {
            Duration::from_secs_f64(args.proxies as f64 / r)
        });
    let all_synced = wait_for(&shared, started + sync_limit, args.quiet, "sync", |s| {
        s.synced.load(Ordering::Acquire) >= args.proxies
    })
    .await;
    let all_synced_s = all_synced.then(|| {
        shared
            .records
            .iter()
            .filter_map(|r| lock(r).synced_at_s)
            .fold(0.0, f64::max)
    });
    samples.take("after_sync", server_pid(&server));

    // The change.
    let mut change_report = None;
    if args.scenario != Scenario::Connect {
        shared.change_phase.store(true, Ordering::Release);
        let mut edits = 0;
        let mut last_edit = None;
        let mut server_exit_s = None;
        let mut server_ready_s = None;
        let edit_started;
        match args.scenario {
            Scenario::VsEdit | Scenario::EndpointMove => {
                edit_started = Instant::now();
                let (check, edit) = match args.scenario {
                    Scenario::VsEdit => {
                        let edit = mesh::bump_virtual_service(
                            &args.config_dir,
                            &shared.spec,
                            args.service,
                        )?;
                        (Check::from_edit(&edit), edit)
                    }
                    _ => {
                        let w = args.service * shared.spec.endpoints + args.endpoint;
                        let edit = mesh::move_endpoint(&args.config_dir, &shared.spec, w)?;
                        (Check::from_edit(&edit), edit)
                    }
                };
                // Published right after the write: the server debounces
                // changes, so no push can overtake it, and a proxy looks for
                // a new change before it handles each response.
                change_tx.send_replace(Some(Arc::new(Change {
                    started: edit_started,
                    checks: vec![check],
                    resync: false,
                })));
                edits = 1;
                last_edit = Some(edit);
            }
            Scenario::Churn => {
                let total = (args.rate * args.seconds).round() as usize;
                let churn_start = Instant::now();
                let mut finals: std::collections::BTreeMap<usize, Edit> = Default::default();
                let mut last_started = churn_start;
                let mut next_sample = churn_start + Duration::from_secs(1);
                // Responses count as the change's from the first move on; who
                // is affected is decided by the final state below.
                change_tx.send_replace(Some(Arc::new(Change {
                    started: churn_start,
                    checks: Vec::new(),
                    resync: false,
                })));
                for k in 0..total {
                    let due = churn_start + Duration::from_secs_f64(k as f64 / args.rate);
                    tokio::time::sleep_until(due.into()).await;
                    let w = churn_endpoint(&shared.spec, k);
                    last_started = Instant::now();
                    let edit = mesh::move_endpoint(&args.config_dir, &shared.spec, w)?;
                    finals.insert(w, edit.clone());
                    last_edit = Some(edit);
                    edits += 1;
                    if Instant::now() >= next_sample {
                        samples.take("churn", server_pid(&server));
                        next_sample += Duration::from_secs(1);
                    }
                }
                edit_started = last_started;
                // The wait below counts the proxies that have taken this
                // final change, not the first one: without the reset it
                // could end before any proxy had looked at the final state.
                shared.notified.store(0, Ordering::Release);
                change_tx.send_replace(Some(Arc::new(Change {
                    started: last_started,
                    checks: finals.values().map(Check::from_edit).collect(),
                    resync: false,
                })));
            }
            Scenario::Restart => {
                let Some(s) = server.as_mut() else {
                    return Err(Error::Usage {
                        flag: "server-cmd",
                        reason: "the restart scenario starts the server itself".into(),
                    });
                };
                edit_started = Instant::now();
                change_tx.send_replace(Some(Arc::new(Change {
                    started: edit_started,
                    checks: Vec::new(),
                    resync: true,
                })));
                s.stop().await;
                server_exit_s = Some(edit_started.elapsed().as_secs_f64());
                samples.take("after_exit", None);
                *s = ServerProcess::start(&s.cmd)?;
                wait_ready(&args.target, &mut s.child, READY_LIMIT).await?;
                server_ready_s = Some(edit_started.elapsed().as_secs_f64());
                samples.take("restarted", Some(s.pid));
            }
            Scenario::Connect => unreachable!("handled above"),
        }
        let settle = edit_started + Duration::from_secs_f64(args.settle_seconds);
        let proxies = args.proxies;
        wait_for(&shared, settle, args.quiet, "convergence", |s| {
            s.notified.load(Ordering::Acquire) >= proxies
                && s.converged.load(Ordering::Acquire) >= s.affected.load(Ordering::Acquire)
        })
        .await;
        let quiet = Duration::from_secs_f64(args.quiet_seconds);
        wait_quiet(&shared, quiet, settle).await;
        let waited_s = edit_started.elapsed().as_secs_f64();

        let records: Vec<Record> = shared.records.iter().map(|r| lock(r).clone()).collect();
        let affected: Vec<&Record> = records
            .iter()
            .filter(|r| r.notified && r.affected)
            .collect();
        let unaffected: Vec<&Record> = records
            .iter()
            .filter(|r| r.notified && !r.affected)
            .collect();
        change_report = Some(ChangeReport {
            edits,
            last_edit,
            affected: affected.len(),
            converged: Distribution::of(affected.iter().map(|r| r.converged_ms)),
            never_converged: affected.iter().filter(|r| r.converged_ms.is_none()).count()
                + records.iter().filter(|r| !r.notified).count(),
            unaffected: unaffected.len(),
            unaffected_with_responses: unaffected
                .iter()
                .filter(|r| r.responses_after_change > 0)
                .count(),
            unaffected_responses: unaffected.iter().map(|r| r.responses_after_change).sum(),
            waited_s,
            server_exit_s,
            server_ready_s,
        });
    }
    samples.take("after_convergence", server_pid(&server));

    // Stop the fleet, then the server if it is ours.
    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let pid = server_pid(&server);
    if let Some(mut s) = server.take() {
        s.stop().await;
    }

    let records: Vec<Record> = shared.records.iter().map(|r| lock(r).clone()).collect();
    let error = lock(&shared.last_error).clone();
    Ok(Report {
        tool: "bowline bench xds",
        target: args.target.clone(),
        scenario: args.scenario.name().to_string(),
        mode: format!("{:?}", args.mode).to_lowercase(),
        proxies: args.proxies,
        mesh: shared.spec,
        wall_s: at(),
        connect: Distribution::of(records.iter().map(|r| r.connect_ms)),
        initial_sync: Distribution::of(records.iter().map(|r| r.sync_ms)),
        all_synced_s,
        change: change_report,
        types: shared.counters.report(),
        errors: Errors {
            connect_failures: shared.connect_failures.load(Ordering::Relaxed),
            stream_resets: shared.stream_resets.load(Ordering::Relaxed),
            stream_open_failures: shared.open_failures.load(Ordering::Relaxed),
            nacks: shared.nacks.load(Ordering::Relaxed),
            last_error: error,
        },
        server: pid.map(|pid| ProcessReport::new(pid, samples.server, args.proxies)),
        client: ProcessReport::new(std::process::id(), samples.client, args.proxies),
        distinct_resources: shared.cache.len(),
    })
}

/// Longest wait for a server the harness started to listen.
const READY_LIMIT: Duration = Duration::from_secs(120);

/// Samples of the server (when known) and of the harness itself.
#[derive(Debug)]
struct Sampler {
    started: Instant,
    server: Vec<Sample>,
    client: Vec<Sample>,
}

impl Sampler {
    fn take(&mut self, phase: &str, server: Option<u32>) {
        let at = self.started.elapsed().as_secs_f64();
        if let Some(pid) = server
            && let Ok(s) = procstat::sample(pid, phase, at)
        {
            self.server.push(s);
        }
        if let Ok(s) = procstat::sample(std::process::id(), phase, at) {
            self.client.push(s);
        }
    }
}

fn validate(args: &XdsArgs) -> Result<()> {
    let usage = |flag, reason: &str| {
        Err(Error::Usage {
            flag,
            reason: reason.to_string(),
        })
    };
    if args.proxies == 0 {
        return usage("proxies", "must be at least 1");
    }
    if args.scenario == Scenario::Churn && !(args.rate > 0.0 && args.seconds > 0.0) {
        return usage("rate", "churn needs --rate and --seconds above 0");
    }
    if args.scenario == Scenario::Restart && args.server_cmd.is_none() {
        return usage(
            "server-cmd",
            "the restart scenario starts (and restarts) the server itself",
        );
    }
    if args.connect_rate.is_some_and(|r| r <= 0.0 || r.is_nan()) {
        return usage("connect-rate", "must be above 0");
    }
    let last = u32::from(args.address_base) as u64 + args.proxies as u64;
    if last > u64::from(u32::from(Ipv4Addr::new(127, 255, 255, 254)))
        || !args.address_base.is_loopback()
    {
        return usage(
            "address-base",
            "the proxies' source addresses must stay inside 127.0.0.0/8",
        );
    }
    for (flag, v) in [
        ("quiet-seconds", args.quiet_seconds),
        ("settle-seconds", args.settle_seconds),
        ("sync-timeout-seconds", args.sync_timeout_seconds),
    ] {
        if !(v >= 0.0 && v.is_finite()) {
            return usage(flag, "must be a number of seconds, at least 0");
        }
    }
    Ok(())
}

/// The endpoint the k-th churn move touches: around the services first, so
/// that successive moves hit different services.
fn churn_endpoint(spec: &MeshSpec, k: usize) -> usize {
    let s = k % spec.services;
    let e = (k / spec.services) % spec.endpoints;
    s * spec.endpoints + e
}

/// What the proxies wait for after a change.
#[derive(Debug)]
struct Change {
    /// When the (last) edit started, or the kill for a restart.
    started: Instant,
    checks: Vec<Check>,
    /// Restart: converged once synced again on a stream opened after `started`.
    resync: bool,
}

/// One thing a converged proxy's config shows.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Check {
    /// Some route configuration carries `marker`.
    Marker { service: String, marker: String },
    /// Some endpoint is at `present`, none at `absent`.
    Endpoint {
        service: String,
        present: String,
        absent: String,
    },
}

impl Check {
    fn from_edit(edit: &Edit) -> Check {
        match edit {
            Edit::Routes { service, marker } => Check::Marker {
                service: service.clone(),
                marker: marker.clone(),
            },
            Edit::Endpoint { service, from, to } => Check::Endpoint {
                service: service.clone(),
                present: to.to_string(),
                absent: from.to_string(),
            },
        }
    }

    fn service(&self) -> &str {
        match self {
            Check::Marker { service, .. } | Check::Endpoint { service, .. } => service,
        }
    }
}

/// Whether `flow` shows every check.
fn satisfied(flow: &Flow, checks: &[&Check]) -> bool {
    use std::collections::HashSet;
    let mut markers: Option<HashSet<&str>> = None;
    let mut addresses: Option<HashSet<&str>> = None;
    for check in checks {
        match check {
            Check::Marker { marker, .. } => {
                let set = markers.get_or_insert_with(|| {
                    flow.held(XdsType::Route)
                        .flat_map(|f| match &f.kind {
                            Kind::Routes { markers } => markers.as_slice(),
                            _ => &[],
                        })
                        .map(String::as_str)
                        .collect()
                });
                if !set.contains(marker.as_str()) {
                    return false;
                }
            }
            Check::Endpoint {
                present, absent, ..
            } => {
                let set = addresses.get_or_insert_with(|| {
                    flow.held(XdsType::Endpoint)
                        .flat_map(|f| match &f.kind {
                            Kind::Endpoints { addresses } => addresses.as_slice(),
                            _ => &[],
                        })
                        .map(String::as_str)
                        .collect()
                });
                if !set.contains(present.as_str()) || set.contains(absent.as_str()) {
                    return false;
                }
            }
        }
    }
    true
}

/// One proxy's figures.
#[derive(Clone, Debug, Default)]
struct Record {
    connect_ms: Option<f64>,
    sync_ms: Option<f64>,
    synced_at_s: Option<f64>,
    notified: bool,
    affected: bool,
    converged_ms: Option<f64>,
    responses_after_change: u64,
}

/// Responses, resources, removals and bytes per phase and type.
#[derive(Debug, Default)]
struct Counters {
    cells: [[[AtomicU64; 4]; 4]; 2],
}

impl Counters {
    fn add(&self, change: bool, ty: XdsType, resources: u64, removed: u64, bytes: u64) {
        let c = &self.cells[usize::from(change)][ty.index()];
        c[0].fetch_add(1, Ordering::Relaxed);
        c[1].fetch_add(resources, Ordering::Relaxed);
        c[2].fetch_add(removed, Ordering::Relaxed);
        c[3].fetch_add(bytes, Ordering::Relaxed);
    }

    fn report(&self) -> Vec<TypeCounts> {
        let mut out = Vec::new();
        for (p, phase) in ["sync", "change"].into_iter().enumerate() {
            for ty in XdsType::ALL {
                let c = &self.cells[p][ty.index()];
                let get = |i: usize| c[i].load(Ordering::Relaxed);
                if get(0) == 0 {
                    continue;
                }
                out.push(TypeCounts {
                    ty: ty.short(),
                    phase,
                    responses: get(0),
                    resources: get(1),
                    removed: get(2),
                    bytes: get(3),
                });
            }
        }
        out
    }
}

/// State every proxy task shares with the coordinator.
#[derive(Debug)]
struct Shared {
    mode: Mode,
    target: SocketAddr,
    spec: MeshSpec,
    bind: bool,
    address_base: Ipv4Addr,
    started: Instant,
    cache: FactCache,
    counters: Counters,
    change_phase: std::sync::atomic::AtomicBool,
    /// Microseconds since `started` of the last response any proxy received.
    last_response_us: AtomicU64,
    synced: AtomicUsize,
    notified: AtomicUsize,
    affected: AtomicUsize,
    converged: AtomicUsize,
    connect_failures: AtomicU64,
    stream_resets: AtomicU64,
    open_failures: AtomicU64,
    nacks: AtomicU64,
    last_error: Mutex<Option<String>>,
    records: Vec<Mutex<Record>>,
    progress: Notify,
    change: watch::Receiver<Option<Arc<Change>>>,
    stop: watch::Receiver<bool>,
}

impl Shared {
    fn error(&self, e: impl std::fmt::Display) {
        *lock(&self.last_error) = Some(e.to_string());
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Waits until `done` holds or `deadline` passes; prints progress each second.
async fn wait_for(
    shared: &Shared,
    deadline: Instant,
    quiet: bool,
    what: &str,
    done: impl Fn(&Shared) -> bool,
) -> bool {
    let mut next_line = Instant::now() + Duration::from_secs(1);
    loop {
        let notified = shared.progress.notified();
        if done(shared) {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        if now >= next_line {
            next_line = now + Duration::from_secs(1);
            if !quiet {
                eprintln!(
                    "[{:>7.1} s] {what}: synced {}/{}, converged {}/{} affected, resets {}",
                    shared.started.elapsed().as_secs_f64(),
                    shared.synced.load(Ordering::Relaxed),
                    shared.records.len(),
                    shared.converged.load(Ordering::Relaxed),
                    shared.affected.load(Ordering::Relaxed),
                    shared.stream_resets.load(Ordering::Relaxed),
                );
            }
        }
        let wake = deadline.min(next_line);
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep_until(wake.into()) => {}
        }
    }
}

/// Waits until no response arrived for `quiet`, or until `deadline`.
async fn wait_quiet(shared: &Shared, quiet: Duration, deadline: Instant) {
    loop {
        let last =
            shared.started + Duration::from_micros(shared.last_response_us.load(Ordering::Acquire));
        let until = (last + quiet).min(deadline);
        if Instant::now() >= until {
            return;
        }
        tokio::time::sleep_until(until.into()).await;
    }
}

/// The node of proxy `i`: the identity of workload `i mod W`; beyond the
/// first W proxies, replicas `-r1`, `-r2`, ... of the same workloads.
pub fn node_for(spec: &MeshSpec, i: usize) -> Node {
    let workloads = spec.workloads().max(1);
    let (w, replica) = (i % workloads, i / workloads);
    let wl = spec.workload(w);
    let name = if replica == 0 {
        wl.name.clone()
    } else {
        format!("{}-r{replica}", wl.name)
    };
    let mut metadata = NodeMetadata::new(wl.namespace.clone(), name, IpAddr::V4(wl.address));
    metadata.labels = wl.labels.iter().cloned().collect();
    metadata.service_account = Some(wl.service_account.clone());
    Node {
        user_agent_name: "envoy".into(),
        user_agent_version_type: Some(UserAgentVersionType::UserAgentBuildVersion(BuildVersion {
            version: Some(SemanticVersion {
                major_number: 1,
                minor_number: 40,
                patch: 0,
            }),
            metadata: None,
        })),
        ..metadata.to_node()
    }
}

/// Envoy's retry backoff for the ADS stream: jittered, from 500 ms doubling up to 30 s.
#[derive(Debug)]
struct Backoff {
    ceiling: Duration,
}

impl Backoff {
    const BASE: Duration = Duration::from_millis(500);
    const MAX: Duration = Duration::from_secs(30);

    fn new() -> Self {
        Backoff {
            ceiling: Self::BASE,
        }
    }

    fn next(&mut self) -> Duration {
        let ms = self.ceiling.as_millis() as u64;
        self.ceiling = (self.ceiling * 2).min(Self::MAX);
        Duration::from_millis(fastrand::u64(0..ms.max(1)))
    }

    fn reset(&mut self) {
        self.ceiling = Self::BASE;
    }
}

/// The request side of a stream.
enum Sender {
    Sotw(mpsc::UnboundedSender<DiscoveryRequest>),
    Delta(mpsc::UnboundedSender<DeltaDiscoveryRequest>),
}

impl Sender {
    fn send(&self, o: Outgoing) {
        // A closed channel means the stream is gone; the read side sees it.
        match (self, o) {
            (Sender::Sotw(tx), Outgoing::Sotw(r)) => {
                let _ = tx.send(r);
            }
            (Sender::Delta(tx), Outgoing::Delta(r)) => {
                let _ = tx.send(r);
            }
            _ => {}
        }
    }
}

/// The response side of a stream.
enum Inbound {
    Sotw(Streaming<DiscoveryResponse>),
    Delta(Streaming<DeltaDiscoveryResponse>),
}

enum Message2 {
    Sotw(DiscoveryResponse),
    Delta(DeltaDiscoveryResponse),
}

impl Inbound {
    async fn next(&mut self) -> Result<Option<Message2>, tonic::Status> {
        match self {
            Inbound::Sotw(s) => Ok(s.message().await?.map(Message2::Sotw)),
            Inbound::Delta(s) => Ok(s.message().await?.map(Message2::Delta)),
        }
    }
}

async fn open(
    client: &mut AggregatedDiscoveryServiceClient<Channel>,
    mode: Mode,
) -> (Sender, Result<Inbound, tonic::Status>) {
    match mode {
        Mode::Sotw => {
            let (tx, rx) = mpsc::unbounded_channel();
            let stream = UnboundedReceiverStream::new(rx);
            let r = client.stream_aggregated_resources(stream).await;
            (Sender::Sotw(tx), r.map(|r| Inbound::Sotw(r.into_inner())))
        }
        Mode::Delta => {
            let (tx, rx) = mpsc::unbounded_channel();
            let stream = UnboundedReceiverStream::new(rx);
            let r = client.delta_aggregated_resources(stream).await;
            (Sender::Delta(tx), r.map(|r| Inbound::Delta(r.into_inner())))
        }
    }
}

/// Per-proxy view of the current change.
#[derive(Debug, Default)]
struct Tracker {
    change: Option<Arc<Change>>,
    relevant: Vec<usize>,
    affected: bool,
    converged: bool,
}

impl Tracker {
    fn on_change(
        &mut self,
        change: Arc<Change>,
        flow: &Flow,
        shared: &Shared,
        record: &mut Record,
    ) {
        let services = flow.held_services();
        let relevant: Vec<usize> = change
            .checks
            .iter()
            .enumerate()
            .filter(|(_, c)| services.contains(c.service()))
            .map(|(i, _)| i)
            .collect();
        let affected = change.resync || !relevant.is_empty();
        if self.affected && !self.converged {
            // Superseded before it converged: no longer counted as affected.
            shared.affected.fetch_sub(1, Ordering::AcqRel);
        } else if self.affected && self.converged {
            shared.affected.fetch_sub(1, Ordering::AcqRel);
            shared.converged.fetch_sub(1, Ordering::AcqRel);
        }
        if affected {
            shared.affected.fetch_add(1, Ordering::AcqRel);
        }
        // Counted per change: a proxy takes each change once (the watch
        // hands it only the newest).
        shared.notified.fetch_add(1, Ordering::AcqRel);
        record.notified = true;
        record.affected = affected;
        record.converged_ms = None;
        self.change = Some(change);
        self.relevant = relevant;
        self.affected = affected;
        self.converged = false;
        shared.progress.notify_waiters();
    }

    /// Records convergence if the proxy now shows the change.
    fn evaluate(
        &mut self,
        flow: &Flow,
        stream_opened: Instant,
        shared: &Shared,
        record: &mut Record,
    ) {
        let Some(change) = &self.change else { return };
        if !self.affected || self.converged || !flow.synced() {
            return;
        }
        let done = if change.resync {
            stream_opened > change.started
        } else {
            let checks: Vec<&Check> = self.relevant.iter().map(|&i| &change.checks[i]).collect();
            satisfied(flow, &checks)
        };
        if done {
            self.converged = true;
            record.converged_ms = Some(change.started.elapsed().as_secs_f64() * 1e3);
            shared.converged.fetch_add(1, Ordering::AcqRel);
            shared.progress.notify_waiters();
        }
    }
}

/// Decodes a response into what the flow takes; counts it.
fn incoming(shared: &Shared, msg: Message2) -> Incoming {
    let bytes = match &msg {
        Message2::Sotw(m) => m.encoded_len(),
        Message2::Delta(m) => m.encoded_len(),
    } as u64;
    let change = shared.change_phase.load(Ordering::Acquire);
    match msg {
        Message2::Sotw(m) => {
            let ty = XdsType::from_type_url(&m.type_url);
            let mut out = Incoming {
                ty,
                version: m.version_info,
                nonce: m.nonce,
                ..Default::default()
            };
            let Some(ty) = ty else {
                return out;
            };
            shared
                .counters
                .add(change, ty, m.resources.len() as u64, 0, bytes);
            for any in &m.resources {
                match shared.cache.get(ty, any) {
                    Ok(facts) => out.resources.push(Item {
                        facts,
                        version: String::new(),
                    }),
                    Err(e) => {
                        shared.error(&e);
                        out.error = Some(e.to_string());
                        out.resources.clear();
                        break;
                    }
                }
            }
            out
        }
        Message2::Delta(m) => {
            let ty = XdsType::from_type_url(&m.type_url);
            let mut out = Incoming {
                ty,
                version: m.system_version_info,
                nonce: m.nonce,
                removed: m.removed_resources,
                ..Default::default()
            };
            let Some(ty) = ty else {
                return out;
            };
            shared.counters.add(
                change,
                ty,
                m.resources.len() as u64,
                out.removed.len() as u64,
                bytes,
            );
            for r in &m.resources {
                // A resource without a body is a TTL heartbeat: nothing to apply.
                let Some(any) = &r.resource else { continue };
                match shared.cache.get(ty, any) {
                    Ok(facts) => out.resources.push(Item {
                        facts,
                        version: r.version.clone(),
                    }),
                    Err(e) => {
                        shared.error(&e);
                        out.error = Some(e.to_string());
                        out.resources.clear();
                        break;
                    }
                }
            }
            out
        }
    }
}

/// One simulated sidecar, until the coordinator stops it.
async fn run_proxy(shared: Arc<Shared>, index: usize) {
    let mut stop = shared.stop.clone();
    let mut changes = shared.change.clone();
    let mut flow = Flow::new(shared.mode, node_for(&shared.spec, index));
    let record = &shared.records[index];
    let mut tracker = Tracker::default();
    let started = Instant::now();

    let endpoint = match Endpoint::from_shared(format!("http://{}", shared.target)) {
        Ok(e) => e,
        Err(e) => {
            shared.error(e);
            return;
        }
    };
    let source = shared.bind.then(|| {
        IpAddr::V4(Ipv4Addr::from(
            u32::from(shared.address_base) + index as u32,
        ))
    });
    let endpoint = endpoint
        .tcp_nodelay(true)
        .local_address(source)
        .connect_timeout(Duration::from_secs(10));
    let mut backoff = Backoff::new();
    let channel = loop {
        match endpoint.connect().await {
            Ok(c) => break c,
            Err(e) => {
                shared.connect_failures.fetch_add(1, Ordering::Relaxed);
                shared.error(format!("connect: {e}"));
                let wait = backoff.next();
                tokio::select! {
                    _ = stop.wait_for(|s| *s) => return,
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    };
    backoff.reset();
    lock(record).connect_ms = Some(started.elapsed().as_secs_f64() * 1e3);
    let mut client = AggregatedDiscoveryServiceClient::new(channel)
        .max_decoding_message_size(usize::MAX)
        .max_encoding_message_size(usize::MAX);

    let mut first_open: Option<Instant> = None;
    let mut synced_once = false;
    loop {
        let stream_opened = Instant::now();
        first_open.get_or_insert(stream_opened);
        let (tx, inbound) = open(&mut client, shared.mode).await;
        for req in flow.open_stream() {
            tx.send(req);
        }
        let mut answered = false;
        let inbound = match inbound {
            Ok(i) => Some(i),
            Err(e) => {
                shared.open_failures.fetch_add(1, Ordering::Relaxed);
                shared.error(format!("stream: {e}"));
                None
            }
        };
        let opened = inbound.is_some();
        if let Some(mut inbound) = inbound {
            loop {
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|s| *s) => return,
                    msg = inbound.next() => {
                        let msg = match msg {
                            Ok(Some(m)) => m,
                            Ok(None) => { shared.error("stream closed by the server"); break }
                            Err(e) => { shared.error(format!("stream: {e}")); break }
                        };
                        answered = true;
                        shared.last_response_us.store(
                            shared.started.elapsed().as_micros() as u64,
                            Ordering::Release,
                        );
                        let mut rec = lock(record);
                        if changes.has_changed().unwrap_or(false)
                            && let Some(change) = changes.borrow_and_update().clone()
                        {
                            tracker.on_change(change, &flow, &shared, &mut rec);
                        }
                        if tracker.change.is_some() {
                            rec.responses_after_change += 1;
                        }
                        let incoming = incoming(&shared, msg);
                        for req in flow.on_response(incoming) {
                            if req.is_nack() {
                                shared.nacks.fetch_add(1, Ordering::Relaxed);
                            }
                            tx.send(req);
                        }
                        if !synced_once && flow.synced() {
                            synced_once = true;
                            let first = first_open.unwrap_or(stream_opened);
                            rec.sync_ms = Some(first.elapsed().as_secs_f64() * 1e3);
                            rec.synced_at_s = Some(shared.started.elapsed().as_secs_f64());
                            shared.synced.fetch_add(1, Ordering::AcqRel);
                            shared.progress.notify_waiters();
                        }
                        tracker.evaluate(&flow, stream_opened, &shared, &mut rec);
                    }
                    changed = changes.changed() => {
                        if changed.is_err() { return }
                        if let Some(change) = changes.borrow_and_update().clone() {
                            let mut rec = lock(record);
                            tracker.on_change(change, &flow, &shared, &mut rec);
                            tracker.evaluate(&flow, stream_opened, &shared, &mut rec);
                        }
                    }
                }
            }
        }
        if opened {
            shared.stream_resets.fetch_add(1, Ordering::Relaxed);
        }
        if answered {
            backoff.reset();
        }
        let wait = backoff.next();
        tokio::select! {
            _ = stop.wait_for(|s| *s) => return,
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// A server process the harness started.
#[derive(Debug)]
struct ServerProcess {
    cmd: String,
    pid: u32,
    child: tokio::process::Child,
}

impl ServerProcess {
    fn start(cmd: &str) -> Result<Self> {
        let child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!("exec {cmd}"))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| Error::Server {
                cmd: cmd.to_string(),
                reason: e.to_string(),
            })?;
        let pid = child.id().ok_or_else(|| Error::Server {
            cmd: cmd.to_string(),
            reason: "exited at once".into(),
        })?;
        Ok(ServerProcess {
            cmd: cmd.to_string(),
            pid,
            child,
        })
    }

    /// SIGTERM, as a control plane is stopped; SIGKILL if it has not exited in 10 s.
    async fn stop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        if let Ok(pid) = i32::try_from(self.pid) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

/// Waits until `target` accepts TCP connections (the server is up).
async fn wait_ready(
    target: &str,
    child: &mut tokio::process::Child,
    limit: Duration,
) -> Result<()> {
    let deadline = Instant::now() + limit;
    loop {
        if tokio::net::TcpStream::connect(target).await.is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Target {
                target: target.to_string(),
                reason: format!("the server exited before it listened ({status})"),
            });
        }
        if Instant::now() >= deadline {
            return Err(Error::Target {
                target: target.to_string(),
                reason: format!("no server listening after {} s", limit.as_secs()),
            });
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn resolve(target: &str) -> Result<SocketAddr> {
    let bad = |reason: String| Error::Target {
        target: target.to_string(),
        reason,
    };
    let mut addrs = tokio::net::lookup_host(target)
        .await
        .map_err(|e| bad(format!("not HOST:PORT or not resolvable: {e}")))?;
    addrs
        .next()
        .ok_or_else(|| bad("resolves to no address".into()))
}

/// Raises the soft open-files limit to the hard one: every proxy is a socket.
fn raise_open_files_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::google::protobuf::value::Kind as ValueKind;

    use super::*;

    #[test]
    fn nodes_carry_a_workload_identity() {
        let spec = MeshSpec::new(3, 2, 2, None).unwrap();
        let n = node_for(&spec, 3);
        assert_eq!(
            n.id,
            format!(
                "sidecar~{}~svc1-1.ns1~ns1.svc.cluster.local",
                spec.home_address(3)
            )
        );
        let f = &n.metadata.as_ref().unwrap().fields;
        let s = |k: &str| match &f[k].kind {
            Some(ValueKind::StringValue(s)) => s.clone(),
            other => panic!("{k}: {other:?}"),
        };
        assert_eq!(s(meta::NAMESPACE), "ns1");
        assert_eq!(s(meta::WORKLOAD), "svc1-1");
        assert_eq!(s(meta::ADDRESS), spec.home_address(3).to_string());
        let Some(ValueKind::StructValue(labels)) = &f[meta::LABELS].kind else {
            panic!("labels are a struct")
        };
        assert_eq!(labels.fields.len(), 2);
        // Past the workloads, replicas with their own ids.
        let r = node_for(&spec, 6 + 3);
        assert_eq!(
            r.id,
            format!(
                "sidecar~{}~svc1-1-r1.ns1~ns1.svc.cluster.local",
                spec.home_address(3)
            )
        );
    }

    #[test]
    fn churn_goes_around_the_services() {
        let spec = MeshSpec::new(3, 2, 1, None).unwrap();
        let order: Vec<usize> = (0..7).map(|k| churn_endpoint(&spec, k)).collect();
        assert_eq!(order, [0, 2, 4, 1, 3, 5, 0]);
    }

    #[test]
    fn backoff_is_jittered_below_a_doubling_ceiling() {
        let mut b = Backoff::new();
        for ceiling in [500, 1000, 2000, 4000] {
            assert!(b.next() < Duration::from_millis(ceiling));
        }
        for _ in 0..20 {
            assert!(b.next() < Backoff::MAX);
        }
        b.reset();
        assert!(b.next() < Backoff::BASE);
    }

    #[test]
    fn checks_read_the_held_config() {
        use crate::facts::decode;
        use crate::facts::tests::{any, cla, eds_cluster, listener, routes};
        use crate::flow::Item;
        let item = |ty, a| Item {
            facts: Arc::new(decode(ty, &a).unwrap()),
            version: String::new(),
        };
        let mut f = Flow::new(Mode::Sotw, Node::default());
        f.open_stream();
        let resp = |ty, r| Incoming {
            ty: Some(ty),
            version: "1".into(),
            nonce: "n".into(),
            resources: vec![r],
            ..Default::default()
        };
        f.on_response(resp(
            XdsType::Cluster,
            item(XdsType::Cluster, any(XdsType::Cluster, &eds_cluster("c"))),
        ));
        f.on_response(resp(
            XdsType::Endpoint,
            item(
                XdsType::Endpoint,
                any(XdsType::Endpoint, &cla("c", &["127.64.0.9"])),
            ),
        ));
        f.on_response(resp(
            XdsType::Listener,
            item(
                XdsType::Listener,
                any(XdsType::Listener, &listener("l", "r")),
            ),
        ));
        f.on_response(resp(
            XdsType::Route,
            item(XdsType::Route, any(XdsType::Route, &routes("r", "svc0-r1"))),
        ));
        let marker = Check::Marker {
            service: "s".into(),
            marker: "svc0-r1".into(),
        };
        let old = Check::Marker {
            service: "s".into(),
            marker: "svc0-r2".into(),
        };
        let moved = Check::Endpoint {
            service: "s".into(),
            present: "127.64.0.9".into(),
            absent: "127.64.0.1".into(),
        };
        let not_moved = Check::Endpoint {
            service: "s".into(),
            present: "127.64.0.1".into(),
            absent: "127.64.0.9".into(),
        };
        assert!(satisfied(&f, &[&marker, &moved]));
        assert!(!satisfied(&f, &[&marker, &old]));
        assert!(!satisfied(&f, &[&not_moved]));
    }

    #[test]
    fn refuses_bad_flags_by_name() {
        let mut a = XdsArgs::new("127.0.0.1:1", "/nonexistent", Scenario::Restart);
        let err = validate(&a).unwrap_err().to_string();
        assert!(err.starts_with("--server-cmd"), "{err}");
        a.scenario = Scenario::Churn;
        a.rate = 0.0;
        assert!(validate(&a).unwrap_err().to_string().starts_with("--rate"));
        a.scenario = Scenario::Connect;
        a.address_base = Ipv4Addr::new(10, 0, 0, 1);
        assert!(
            validate(&a)
                .unwrap_err()
                .to_string()
                .starts_with("--address-base")
        );
        a.address_base = Ipv4Addr::new(127, 3, 0, 1);
        a.proxies = 0;
        assert!(
            validate(&a)
                .unwrap_err()
                .to_string()
                .starts_with("--proxies")
        );
    }
}
