//! `bowline`: the control plane, the sidecar agent, a demo application and a
//! whole demo mesh, in one binary.

mod agent;
mod ca;
mod capture;
mod config_cli;
mod crds;
mod demo;
mod diff;
mod echo;
mod explain;
mod probes;
mod proxy_config;
mod proxy_status;
mod rotation;
mod server;
mod signal;
mod validate;

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[derive(Parser, Debug)]
#[command(
    name = "bowline",
    version,
    about = "A service-mesh control plane for Envoy"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the control plane: watch a config directory and serve xDS.
    Serve(server::ServeArgs),
    /// Run a sidecar: write an Envoy bootstrap, start Envoy and supervise it.
    Proxy(agent::ProxyArgs),
    /// Run a small HTTP application that answers with what it received.
    Echo(echo::EchoArgs),
    /// Install a pod's traffic capture (iptables), as the injected init container does.
    Capture(capture::CaptureArgs),
    /// Run a whole mesh on this machine: control plane, applications and sidecars.
    Demo(demo::DemoArgs),
    /// Tokens workloads authenticate to the CA with.
    #[command(subcommand)]
    Token(ca::TokenCommand),
    /// The CA's roots: rotate them without an outage.
    #[command(subcommand)]
    Ca(ca::CaCommand),
    /// The admin API's bearer token.
    #[command(subcommand)]
    AdminToken(ca::AdminTokenCommand),
    /// Check configuration files offline; exits non-zero on errors.
    Validate(validate::ValidateArgs),
    /// Print (or write with --out) the CustomResourceDefinitions of the kinds Bowline reads.
    Crds(crds::CrdsArgs),
    /// Size a control plane: generate a mesh, or load an ADS server with simulated sidecars.
    Bench(bench::BenchArgs),
    /// Every connected proxy's sync state per xDS type (SYNCED, STALE, NACK), as istioctl shows it.
    ProxyStatus(proxy_status::ProxyStatusArgs),
    /// What the control plane last sent a proxy, beside what its Envoy runs.
    ProxyConfig(proxy_config::ProxyConfigArgs),
    /// What changed files would change in each sidecar's config, without applying them.
    Diff(diff::DiffArgs),
    /// What a workload's sidecar would do with one request (no traffic sent).
    Explain(explain::ExplainArgs),
    /// Apply mesh config through a running control plane's admin API (all or nothing).
    Apply(config_cli::ApplyArgs),
    /// Show the mesh config in force.
    Get(config_cli::GetArgs),
    /// Delete objects applied through the admin API.
    Delete(config_cli::DeleteArgs),
    /// The mesh as a graph: routes between services, endpoints with their mTLS mode.
    Topology(config_cli::TopologyArgs),
}

fn main() -> std::process::ExitCode {
    match run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            // 1 a request failed, 2 bad usage, 3 validation errors.
            match error.downcast_ref::<config_cli::Failure>() {
                Some(failure) => std::process::ExitCode::from(failure.code),
                None => std::process::ExitCode::FAILURE,
            }
        }
    }
}

fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("BOWLINE_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve(args) => on_runtime(server::run(args)),
        Command::Proxy(args) => on_runtime(agent::run(args)),
        Command::Echo(args) => on_runtime(echo::run(args)),
        Command::Capture(args) => capture::run(args),
        Command::Demo(args) => on_runtime(demo::run(args)),
        Command::Validate(args) => validate::run(args),
        Command::Crds(args) => crds::run(args),
        Command::Token(command) => ca::token(command),
        Command::Ca(command) => ca::ca(command),
        Command::AdminToken(command) => ca::admin_token_command(command),
        Command::ProxyStatus(args) => on_runtime(proxy_status::run(args)),
        Command::ProxyConfig(args) => on_runtime(proxy_config::run(args)),
        Command::Diff(args) => diff::run(args),
        Command::Explain(args) => on_runtime(explain::run(args)),
        Command::Apply(args) => on_runtime(config_cli::apply(args)),
        Command::Get(args) => on_runtime(config_cli::get(args)),
        Command::Delete(args) => on_runtime(config_cli::delete(args)),
        Command::Topology(args) => on_runtime(config_cli::topology(args)),
        // The harness sizes its own runtime (`--threads`), to be pinned apart
        // from the server it measures.
        Command::Bench(args) => Ok(bench::run(args)?),
    }
}

fn on_runtime(task: impl std::future::Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(task)
}
