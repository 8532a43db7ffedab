//! `bowline serve`: runs the control plane until the process is asked to stop.

use pilot_server::serve::{ControlPlane, ServeArgs};
use tracing::info;

/// Runs `bowline serve` until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let control_plane = ControlPlane::start(&args).await?;
    crate::signal::shutdown().await;
    info!("shutting down");
    control_plane.stop().await;
    Ok(())
}
