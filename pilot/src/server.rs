//! `bowline serve`: the control plane, until the process is asked to stop.

use std::net::SocketAddr;
use std::path::PathBuf;

use pilot_server::serve::{ControlPlane, ServeConfig};
use tracing::info;

/// Flags of `bowline serve`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ServeArgs {
    /// Directory of YAML manifests, read recursively and followed for changes.
    #[arg(long)]
    pub(crate) config_dir: PathBuf,
    /// Address of the xDS (ADS) gRPC server.
    #[arg(long, default_value = "127.0.0.1:15010")]
    pub(crate) xds_addr: SocketAddr,
    /// Address of the admin HTTP API.
    #[arg(long, default_value = "127.0.0.1:15014")]
    pub(crate) admin_addr: SocketAddr,
    /// Istio MeshConfig YAML (for now `rootNamespace`). A file with errors
    /// is reported in the diagnostics and the defaults are used.
    #[arg(long)]
    pub(crate) mesh_config: Option<PathBuf>,
}

impl ServeArgs {
    fn config(self) -> ServeConfig {
        let ServeArgs {
            config_dir,
            xds_addr,
            admin_addr,
            mesh_config,
        } = self;
        ServeConfig {
            config_dir,
            xds_addr,
            admin_addr,
            mesh_config,
        }
    }
}

/// Runs `bowline serve` until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let control_plane = ControlPlane::start(&args.config()).await?;
    crate::signal::shutdown().await;
    info!("shutting down");
    control_plane.stop().await;
    Ok(())
}
