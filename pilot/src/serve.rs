//! `bowline serve`: the control plane process.
//!
//! ```text
//! FileSource ──changes──► build loop (debounce, FileStore, Snapshot::build_after) ──watch──► ADS streams
//!                                     ▲                                      └──────► admin API
//! --mesh-config FILE ──► Mesh ────────┘ (read once at start)
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use discovery::file::{FileChange, FileSource, FileStore};
use policy::Diagnostic;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::admin;
use crate::debounce::{Burst, Debounce};
use crate::mesh::Mesh;
use crate::snapshot::Snapshot;
use crate::xds::{AdsServer, StatusRegistry};

/// Flags of `bowline serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeArgs {
    /// Directory of YAML manifests, read recursively and followed for changes.
    #[arg(long)]
    pub config_dir: PathBuf,
    /// Address of the xDS (ADS) gRPC server.
    #[arg(long, default_value = "127.0.0.1:15010")]
    pub xds_addr: SocketAddr,
    /// Address of the admin HTTP API.
    #[arg(long, default_value = "127.0.0.1:15014")]
    pub admin_addr: SocketAddr,
    /// Istio MeshConfig YAML (for now `rootNamespace`). A file with errors
    /// is reported in the diagnostics and the defaults are used.
    #[arg(long)]
    pub mesh_config: Option<PathBuf>,
}

/// A running control plane: the file source, the build loop, the ADS server and the admin API.
#[derive(Debug)]
pub struct ControlPlane {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    status: Arc<StatusRegistry>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    pub xds_addr: SocketAddr,
    pub admin_addr: SocketAddr,
}

impl ControlPlane {
    /// Reads the config directory, builds the first snapshot, then starts
    /// serving. Returns once both servers listen.
    pub async fn start(args: &ServeArgs) -> anyhow::Result<ControlPlane> {
        let (changes_tx, changes_rx) = mpsc::channel(64);
        let source = FileSource::new(args.config_dir.clone());
        let config_dir = args.config_dir.display().to_string();
        let source_task = tokio::spawn(async move {
            if let Err(error) = source.run(changes_tx).await {
                warn!(%error, dir = %config_dir, "config source stopped");
            }
        });

        let mesh = Mesh::load(args.mesh_config.as_deref());
        for d in &mesh.diagnostics {
            warn!("mesh config: {d}");
        }
        info!(root_namespace = %mesh.config.root_namespace, "mesh config");
        let (snapshot_tx, snapshots) = watch::channel(Arc::new(Snapshot::default()));
        let build_task = tokio::spawn(build_loop(
            changes_rx,
            snapshot_tx,
            Debounce::default(),
            mesh,
        ));
        // Serve nothing before the first full listing is compiled, so that no
        // proxy ever sees an empty mesh at startup.
        let mut first = snapshots.clone();
        first
            .wait_for(|s| s.generation > 0)
            .await
            .context("the config source stopped before the first snapshot")?;

        let status = Arc::new(StatusRegistry::default());
        let (shutdown, shutdown_rx) = watch::channel(false);

        let xds_listener = tokio::net::TcpListener::bind(args.xds_addr)
            .await
            .with_context(|| format!("cannot listen for xDS on {}", args.xds_addr))?;
        let xds_addr = xds_listener.local_addr()?;
        let ads = AdsServer::new(snapshots.clone(), status.clone()).into_service();
        let mut stop = shutdown_rx.clone();
        let xds_task = tokio::spawn(async move {
            let incoming = tokio_stream::wrappers::TcpListenerStream::new(xds_listener);
            let served = tonic::transport::Server::builder()
                .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)))
                .add_service(ads)
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(error) = served {
                warn!(%error, "xDS server stopped");
            }
        });

        let admin_listener = tokio::net::TcpListener::bind(args.admin_addr)
            .await
            .with_context(|| format!("cannot listen for the admin API on {}", args.admin_addr))?;
        let admin_addr = admin_listener.local_addr()?;
        let router = admin::router(admin::AdminState {
            snapshots: snapshots.clone(),
            status: status.clone(),
        });
        let mut stop = shutdown_rx.clone();
        let admin_task = tokio::spawn(async move {
            let served = axum::serve(admin_listener, router)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(error) = served {
                warn!(%error, "admin API stopped");
            }
        });

        info!(%xds_addr, %admin_addr, config_dir = %args.config_dir.display(), "control plane ready");
        Ok(ControlPlane {
            snapshots,
            status,
            shutdown,
            tasks: vec![source_task, build_task, xds_task, admin_task],
            xds_addr,
            admin_addr,
        })
    }

    /// Follows the snapshots as they are built.
    pub fn snapshots(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshots.clone()
    }

    pub fn status(&self) -> Arc<StatusRegistry> {
        self.status.clone()
    }

    /// Stops serving; proxies keep their last config and reconnect later.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        for task in &self.tasks {
            task.abort();
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Runs `bowline serve` until Ctrl-C or SIGTERM.
pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let control_plane = ControlPlane::start(&args).await?;
    crate::signal::shutdown().await;
    info!("shutting down");
    control_plane.stop().await;
    Ok(())
}

/// Applies file changes to the store and publishes a new snapshot per burst.
async fn build_loop(
    mut changes: mpsc::Receiver<Vec<FileChange>>,
    snapshots: watch::Sender<Arc<Snapshot>>,
    debounce: Debounce,
    mesh: Mesh,
) {
    let mut store = FileStore::default();
    let mut burst = Burst::default();
    let mut generation = 0;
    loop {
        let due = burst.due(debounce);
        tokio::select! {
            batch = changes.recv() => {
                let Some(batch) = batch else { return };
                apply(&mut store, batch);
                burst.change(Instant::now());
                // The very first listing is built at once.
                if generation == 0 {
                    burst.reset();
                    generation += 1;
                    publish(&mut store, &mesh, generation, &snapshots);
                }
            }
            () = sleep_until(due), if due.is_some() => {
                burst.reset();
                generation += 1;
                publish(&mut store, &mesh, generation, &snapshots);
            }
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    if let Some(due) = due {
        tokio::time::sleep_until(due.into()).await;
    }
}

fn apply(store: &mut FileStore, batch: Vec<FileChange>) {
    for change in batch {
        match change {
            FileChange::Upsert { path, text } => store.apply(&path, &text),
            FileChange::Remove { path } => store.remove(&path),
        }
    }
}

/// Builds the next snapshot from the last one published and the objects
/// changed since, and publishes it.
fn publish(
    store: &mut FileStore,
    mesh: &Mesh,
    generation: u64,
    snapshots: &watch::Sender<Arc<Snapshot>>,
) {
    let changed = store.take_changed();
    let config = store.config();
    let previous = snapshots.borrow().clone();
    let snapshot = mesh.build_after(&previous, generation, &config, &changed);
    log_new_diagnostics(&previous.diagnostics, &snapshot.diagnostics);
    info!(
        generation,
        objects = config.objects.len(),
        changed = changed.len(),
        services = snapshot.registry.services.len(),
        errors = snapshot.diagnostics.iter().filter(|d| d.is_error()).count(),
        "snapshot built"
    );
    snapshots.send_replace(Arc::new(snapshot));
}

/// Logs each diagnostic once, when it first appears.
fn log_new_diagnostics(previous: &[Diagnostic], current: &[Diagnostic]) {
    for d in current.iter().filter(|d| !previous.contains(d)) {
        if d.is_error() {
            warn!("config error: {d}");
        } else {
            info!("config warning: {d}");
        }
    }
}
