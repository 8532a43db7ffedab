//! `bowline`: the control plane, the sidecar agent, a demo application and a
//! whole demo mesh, in one binary.

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
    Serve(pilot::serve::ServeArgs),
    /// Run a sidecar: write an Envoy bootstrap, start Envoy and supervise it.
    Proxy(pilot::agent::ProxyArgs),
    /// Run a small HTTP application that answers with what it received.
    Echo(pilot::echo::EchoArgs),
    /// Run a whole mesh on this machine: control plane, applications and sidecars.
    Demo(pilot::demo::DemoArgs),
    /// Check configuration files offline; exits non-zero on errors.
    Validate(pilot::validate::ValidateArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<()> {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_env("BOWLINE_LOG").unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    match cli.command {
        Command::Serve(args) => pilot::serve::run(args).await,
        Command::Proxy(args) => pilot::agent::run(args).await,
        Command::Echo(args) => pilot::echo::run(args).await,
        Command::Demo(args) => pilot::demo::run(args).await,
        Command::Validate(args) => pilot::validate::run(args),
    }
}
