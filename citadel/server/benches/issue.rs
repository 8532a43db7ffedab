//! Certificates issued per second over the real gRPC API (TLS on loopback,
//! tokens, CSR verification, signing, the client included), beside a floor
//! measured in the same run: the raw cost of the cryptography alone, a P-256
//! CSR parsed and its signature verified (x509-parser on ring) and a
//! certificate signed (rcgen on ring), on as many threads as there are cores,
//! with no RPC.
//!
//! The client sends CSRs made before the clock starts (a workload makes its
//! key once per certificate; that cost is the agent's, not the CA's), with
//! one token per simulated identity, and the rate limit off (`limiter: None`,
//! what `--ca-rate-limit 0` does). Every loop stops after a fixed time.
//!
//! Run: `cargo bench -p citadel-server --bench issue` (release build).
//! `BOWLINE_BENCH_SECONDS` (per figure and round, 3), `BOWLINE_BENCH_ROUNDS`
//! (3), `BOWLINE_BENCH_CONNECTIONS` (4) and `BOWLINE_BENCH_IN_FLIGHT`
//! (requests in flight per connection, 16) set the load. The figures are
//! measured in alternating rounds and their medians printed, with the cores
//! each kept busy (from /proc), so that a busy neighbour shows.

use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use citadel::signing::Signer;
use citadel::state::StateDir;
use citadel::{Ca, CaConfig, Tokens, verify};
use citadel_server::client::ClientConfig;
use citadel_server::{CaClient, CaServer, CaServerConfig};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, ExtendedKeyUsagePurpose, IsCa, Issuer,
    KeyPair, SanType, SubjectPublicKeyInfo,
};
use x509_parser::certification_request::X509CertificationRequest;
use x509_parser::prelude::FromDer;

const CSRS: usize = 512;
const IDENTITIES: usize = 64;

/// CPU seconds this process has used (user + system), from /proc.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // The fields after the command name, which is in parentheses.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map_or("", |(_, rest)| rest)
        .split_whitespace()
        .collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat(5), 11 and 12 here; 100 ticks a second.
    (ticks(11) + ticks(12)) / 100.0
}

/// CPU seconds used so far by this process's threads whose name starts
/// with `prefix` (tokio names its workers after the runtime).
fn thread_cpu_seconds(prefix: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return f64::NAN;
    };
    let mut total = 0.0;
    for task in tasks.flatten() {
        let stat = std::fs::read_to_string(task.path().join("stat")).unwrap_or_default();
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let ticks = |i: usize| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        total += (ticks(11) + ticks(12)) / 100.0;
    }
    total
}

/// Runs `f`, returning its result and the cores it kept busy on average.
fn measured<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let (cpu, wall) = (cpu_seconds(), Instant::now());
    let result = f();
    (result, (cpu_seconds() - cpu) / wall.elapsed().as_secs_f64())
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// `(pem, der)` of a CSR for a fresh P-256 key asking for `uri`.
fn csr(uri: &str) -> (String, Vec<u8>) {
    let key = KeyPair::generate().expect("a key");
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(uri.to_string().try_into().expect("a URI"))];
    let csr = params.serialize_request(&key).expect("a CSR");
    (csr.pem().expect("PEM"), csr.der().as_ref().to_vec())
}

fn identity(i: usize) -> (String, String) {
    ("bench".to_string(), format!("sa-{}", i % IDENTITIES))
}

/// The floor: verify and sign on every core, no RPC, no tokens.
fn floor(csrs: &[(String, Vec<u8>)], seconds: u64, threads: usize) -> f64 {
    let root_key = KeyPair::generate().expect("a key");
    let mut root = CertificateParams::default();
    root.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let issuer = Issuer::from_params(&root, &root_key);
    let stop = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (stop, count, issuer) = (&stop, &count, &issuer);
            s.spawn(move || {
                let mut i = t;
                let mut done = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (_, der) = &csrs[i % csrs.len()];
                    let (_, request) = X509CertificationRequest::from_der(der).expect("parses");
                    request.verify_signature().expect("verifies");
                    let key = SubjectPublicKeyInfo::from_der(
                        request.certification_request_info.subject_pki.raw,
                    )
                    .expect("a key");
                    let (ns, sa) = identity(i);
                    let mut params = CertificateParams::default();
                    params.distinguished_name = DistinguishedName::new();
                    params.subject_alt_names = vec![SanType::URI(
                        format!("spiffe://cluster.local/ns/{ns}/sa/{sa}")
                            .try_into()
                            .expect("a URI"),
                    )];
                    params.extended_key_usages = vec![
                        ExtendedKeyUsagePurpose::ServerAuth,
                        ExtendedKeyUsagePurpose::ClientAuth,
                    ];
                    black_box(params.signed_by(&key, issuer).expect("signs").pem());
                    done += 1;
                    i += threads;
                }
                count.fetch_add(done, Ordering::Relaxed);
            });
        }
        std::thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// The signer in process: tokens and the CA's checks, no RPC.
fn in_process(csrs: &[(String, Vec<u8>)], seconds: u64, threads: usize) -> f64 {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let signer = Signer {
        ca: Ca::open(&CaConfig::new(dir.path(), "cluster.local")).expect("a CA"),
        tokens: Tokens::open(&StateDir::open(dir.path()).expect("state"), "cluster.local")
            .expect("tokens"),
        limiter: None,
    };
    let now = SystemTime::now();
    let tokens: Vec<String> = (0..IDENTITIES)
        .map(|i| {
            let (ns, sa) = identity(i);
            signer
                .tokens
                .mint(&ns, &sa, Duration::from_secs(3600), now)
                .expect("a token")
        })
        .collect();
    let stop = AtomicBool::new(false);
    let count = AtomicU64::new(0);
    let started = Instant::now();
    std::thread::scope(|s| {
        for t in 0..threads {
            let (stop, count, signer, tokens) = (&stop, &count, &signer, &tokens);
            s.spawn(move || {
                let mut i = t;
                let mut done = 0;
                while !stop.load(Ordering::Relaxed) {
                    let (pem, _) = &csrs[i % csrs.len()];
                    let signed = signer
                        .create_certificate(
                            citadel::Credential::Bearer(&tokens[i % IDENTITIES]),
                            pem,
                            0,
                            SystemTime::now(),
                            Instant::now(),
                        )
                        .expect("signed");
                    black_box(signed);
                    done += 1;
                    i += threads;
                }
                count.fetch_add(done, Ordering::Relaxed);
            });
        }
        std::thread::sleep(Duration::from_secs(seconds));
        stop.store(true, Ordering::Relaxed);
    });
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

/// The API under load: one server, `connections` TLS connections with
/// `in_flight` requests outstanding on each, kept between rounds. The server
/// and the load generator each have a runtime of as many workers as cores
/// (threads `ca-server-*` and `ca-load-*`), so that the CPU of each shows.
struct Api {
    runtime: tokio::runtime::Runtime,
    server_runtime: tokio::runtime::Runtime,
    server: CaServer,
    clients: Vec<CaClient>,
    tokens: Arc<Vec<String>>,
    csrs: Arc<Vec<(String, Vec<u8>)>>,
    in_flight: u64,
    _dir: tempfile::TempDir,
}

impl Api {
    fn start(
        csrs: Arc<Vec<(String, Vec<u8>)>>,
        threads: usize,
        connections: u64,
        in_flight: u64,
    ) -> Api {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let runtime = |name: &str| {
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(threads)
                .thread_name(name)
                .enable_all()
                .build()
                .expect("a runtime")
        };
        let (server_runtime, runtime) = (runtime("ca-server"), runtime("ca-load"));
        let signer = Arc::new(Signer {
            ca: Ca::open(&CaConfig::new(dir.path(), "cluster.local")).expect("a CA"),
            tokens: Tokens::open(&StateDir::open(dir.path()).expect("state"), "cluster.local")
                .expect("tokens"),
            limiter: None,
        });
        let now = SystemTime::now();
        let tokens: Arc<Vec<String>> = Arc::new(
            (0..IDENTITIES)
                .map(|i| {
                    let (ns, sa) = identity(i);
                    signer
                        .tokens
                        .mint(&ns, &sa, Duration::from_secs(3600), now)
                        .expect("a token")
                })
                .collect(),
        );
        let server = server_runtime
            .block_on(CaServer::start(
                signer.clone(),
                &CaServerConfig::new("127.0.0.1:0".parse().expect("an address"), "bench"),
            ))
            .expect("the CA serves");
        let clients = runtime.block_on(async {
            let config = ClientConfig {
                roots_pem: signer.ca.trust_bundle_pem().to_string(),
                server_name: "localhost".to_string(),
                identity: None,
            };
            let mut clients = Vec::new();
            for _ in 0..connections {
                clients.push(
                    CaClient::connect(server.addr, &config)
                        .await
                        .expect("connects"),
                );
            }
            // One request outside the clock, its chain checked as a peer would.
            let chain = clients[0]
                .create_certificate(Some(&tokens[0]), csrs[0].0.clone(), 0)
                .await
                .expect("signed");
            verify::workload_chain(&chain, &signer.ca.roots(), SystemTime::now())
                .expect("verifies");
            clients
        });
        Api {
            runtime,
            server_runtime,
            server,
            clients,
            tokens,
            csrs,
            in_flight,
            _dir: dir,
        }
    }

    /// Certificates a second over `seconds`, and the CPU microseconds per
    /// certificate of the server and of the load generator; every request
    /// must succeed.
    fn round(&self, seconds: u64) -> (f64, f64, f64) {
        let (server_cpu, load_cpu) = (
            thread_cpu_seconds("ca-server"),
            thread_cpu_seconds("ca-load"),
        );
        let count = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let streams = self.clients.len() * self.in_flight as usize;
        let started = Instant::now();
        self.runtime.block_on(async {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(seconds);
            let mut tasks = Vec::new();
            for stream in 0..streams {
                let mut client = self.clients[stream % self.clients.len()].clone();
                let (csrs, tokens) = (self.csrs.clone(), self.tokens.clone());
                let (count, failed) = (count.clone(), failed.clone());
                tasks.push(tokio::spawn(async move {
                    let mut i = stream;
                    while tokio::time::Instant::now() < deadline {
                        // The CSR pool was made for identities by index.
                        let (pem, _) = &csrs[i % csrs.len()];
                        let token = &tokens[(i % csrs.len()) % IDENTITIES];
                        match client.create_certificate(Some(token), pem.clone(), 0).await {
                            Ok(_) => count.fetch_add(1, Ordering::Relaxed),
                            Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                        };
                        i += streams;
                    }
                }));
            }
            for task in tasks {
                task.await.expect("a load task");
            }
        });
        assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed");
        let count = count.load(Ordering::Relaxed) as f64;
        let micros = |cpu: f64| cpu * 1e6 / count;
        (
            count / started.elapsed().as_secs_f64(),
            micros(thread_cpu_seconds("ca-server") - server_cpu),
            micros(thread_cpu_seconds("ca-load") - load_cpu),
        )
    }

    fn stop(self) {
        let Api {
            server_runtime,
            server,
            ..
        } = self;
        server_runtime.block_on(server.stop());
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() {
    let seconds = env_or("BOWLINE_BENCH_SECONDS", 3);
    let connections = env_or("BOWLINE_BENCH_CONNECTIONS", 4);
    let in_flight = env_or("BOWLINE_BENCH_IN_FLIGHT", 16);
    let threads = std::thread::available_parallelism().map_or(2, |n| n.get());
    let csrs: Arc<Vec<_>> = Arc::new(
        (0..CSRS)
            .map(|i| {
                let (ns, sa) = identity(i);
                csr(&format!("spiffe://cluster.local/ns/{ns}/sa/{sa}"))
            })
            .collect(),
    );
    let rounds = env_or("BOWLINE_BENCH_ROUNDS", 3).max(1);
    let api = Api::start(csrs.clone(), threads, connections, in_flight);
    println!(
        "cores: {threads}; {rounds} rounds of {seconds} s per figure, interleaved; \
         {connections} connections x {in_flight} requests in flight"
    );
    // Rounds alternate, so that a neighbour's load falls on every figure alike.
    let (mut floors, mut signers, mut apis, mut ratios) = (vec![], vec![], vec![], vec![]);
    // Certificates per CPU-second: what a neighbour's load changes least.
    let mut per_core_ratios = vec![];
    let (mut floor_us, mut server_uss, mut load_uss) = (vec![], vec![], vec![]);
    for round in 1..=rounds {
        let (f, f_cores) = measured(|| floor(&csrs, seconds, threads));
        let (s, s_cores) = measured(|| in_process(&csrs, seconds, threads));
        let ((a, server_us, load_us), a_cores) = measured(|| api.round(seconds));
        println!(
            "round {round}: floor {f:>6.0}/s ({f_cores:.2} cores)  signer {s:>6.0}/s ({s_cores:.2} cores)  \
             gRPC {a:>6.0}/s ({a_cores:.2} cores)  ratio {:.2}",
            a / f
        );
        println!(
            "         CPU per certificate: floor {:.0} us, gRPC server {server_us:.0} us + load generator {load_us:.0} us",
            f_cores * 1e6 / f
        );
        floor_us.push(f_cores * 1e6 / f);
        server_uss.push(server_us);
        load_uss.push(load_us);
        floors.push(f);
        signers.push(s);
        apis.push(a);
        ratios.push(a / f);
        per_core_ratios.push((a / a_cores) / (f / f_cores));
    }
    api.stop();
    println!("median of {rounds} rounds:");
    println!(
        "  floor (P-256 CSR verify + sign, no RPC): {:>7.0} certificates/s",
        median(floors)
    );
    println!(
        "  signer in process (token, CA checks):     {:>7.0} certificates/s",
        median(signers)
    );
    println!(
        "  gRPC API (TLS, HTTP/2, client included):  {:>7.0} certificates/s",
        median(apis)
    );
    println!("  ratio gRPC / floor: {:.2}", median(ratios));
    println!(
        "  ratio per CPU-second (each figure over the cores it kept busy): {:.2}",
        median(per_core_ratios)
    );
    println!(
        "  CPU per certificate: floor {:.0} us; gRPC: server {:.0} us, load generator {:.0} us",
        median(floor_us),
        median(server_uss),
        median(load_uss)
    );
}
