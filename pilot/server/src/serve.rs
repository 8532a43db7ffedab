//! The control plane behind `bowline serve` and `bowline demo`.
//!
//! ```text
//! FileSource ───────────changes──► build loop (debounce, FileStore, Snapshot::build_after) ──watch──► ADS streams
//! ConfigWatch (Istio CRs) ─changes─┤     ▲                                          └──────► admin API
//! KubeSource ─Translation──────────┘     │ Services and endpoints from the cluster
//! --mesh-config FILE ──► Mesh ───────────┘ (read once at start)
//! ```
//!
//! With `--registry kubernetes`, the Istio custom resources come in as
//! documents of the same `FileStore` (each at its API path), and the
//! cluster's Services with their endpoints are merged into every config
//! set. The first snapshot waits for every source's first listing.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use std::collections::BTreeSet;

use discovery::file::{ConfigSet, FileChange, FileStore};
use discovery_file::FileSource;
use discovery_kubernetes::{
    ConfigWatch, KubeSource, LeaderElector, LeaseConfig, Translation, status,
};
use policy::{Diagnostic, FieldPath, ObjectKey};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{info, warn};

use crate::admin;
use crate::debounce::{Burst, Debounce};
use crate::jwks;
use crate::mesh;
use crate::xds::StatusRegistry;
use crate::xds::{AdsServer, AdsService};
use pilot_core::mesh::Mesh;
use pilot_core::snapshot::Snapshot;

/// Where services and their endpoints come from.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Registry {
    /// The config directory's Services, WorkloadEntries and ServiceEntries.
    #[default]
    Files,
    /// A Kubernetes cluster: Services, EndpointSlices, Pods, Nodes and
    /// Namespaces, and the Istio custom resources. `kubeconfig`: the file
    /// to use, else `KUBECONFIG`, `~/.kube/config` or the pod's own
    /// service account, as kubectl finds them.
    /// `lease`: the leader election's (`None`: the Lease `bowline-leader`
    /// in `POD_NAMESPACE`, else the mesh's root namespace, held as
    /// `POD_NAME`, else the host name and process id).
    Kubernetes {
        kubeconfig: Option<PathBuf>,
        lease: Option<LeaseConfig>,
    },
}

/// What a control plane serves, and where.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Directory of YAML manifests, read recursively and followed for
    /// changes. Optional with the Kubernetes registry, where it adds to
    /// the cluster's config.
    pub config_dir: Option<PathBuf>,
    /// Where services and endpoints come from.
    pub registry: Registry,
    /// Address of a plaintext xDS (ADS) gRPC server, for local development
    /// and proxies without a certificate: any local process can open a
    /// stream there and claim any node id. `None`: xDS only over mutual
    /// TLS ([`ControlPlane::authenticated_ads`], served beside the CA).
    pub xds_addr: Option<SocketAddr>,
    /// Address of the admin HTTP API.
    pub admin_addr: SocketAddr,
    /// Istio MeshConfig YAML. A file with errors is reported in the
    /// diagnostics and the defaults are used.
    pub mesh_config: Option<PathBuf>,
    /// The admin token's file (see [`crate::auth`]): mutating requests need
    /// it. `None`: no token (tests and benches that run no CA).
    pub admin_token: Option<PathBuf>,
    /// Reads need the token too (`--admin-read-auth`), except `/healthz`
    /// and `/metrics`.
    pub admin_read_auth: bool,
    /// How long a plaintext xDS connection lives before the server asks
    /// the proxy to reconnect (HTTP/2 GOAWAY), so that a fleet spreads over
    /// the replicas after a scale-up or a restart, and the grace its
    /// streams get after that. `None`: forever.
    pub xds_max_connection_age: Option<(Duration, Duration)>,
    /// The other replicas, for `GET /api/v1/replicas/proxies`.
    pub replicas: ReplicaSource,
}

/// Where a control plane finds the other replicas of its mesh.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ReplicaSource {
    /// From the control plane's Service's endpoints (Kubernetes registry
    /// only; elsewhere, none).
    #[default]
    Service,
    /// These admin API URLs (`--peer`).
    Peers(Vec<String>),
}

/// Istio's `MaxServerConnectionAge`: a proxy reconnects every 30 minutes.
pub const DEFAULT_XDS_MAX_CONNECTION_AGE: Duration = Duration::from_secs(30 * 60);
/// How long streams get to finish after the GOAWAY (Istio's grace, 10 s);
/// a proxy reconnects at once, so this bounds an overlap, not an outage.
pub const XDS_MAX_CONNECTION_AGE_GRACE: Duration = Duration::from_secs(10);

/// The largest request body the admin API reads.
pub const ADMIN_BODY_LIMIT: usize = 8 << 20;

/// Why a control plane did not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the config source stopped before the first snapshot")]
    SourceStopped,
    #[error("the file registry needs a config directory")]
    NoConfigDir,
    #[error("cannot reach the Kubernetes API server")]
    Kubernetes(#[source] discovery_kubernetes::client::Error),
    #[error("cannot listen for xDS on {addr}")]
    ListenXds {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot listen for the admin API on {addr}")]
    ListenAdmin {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A running control plane: the file source, the build loop, the ADS server and the admin API.
#[derive(Debug)]
pub struct ControlPlane {
    snapshots: watch::Receiver<Arc<Snapshot>>,
    status: Arc<StatusRegistry>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    /// The CA's roots (PEM) for `/api/v1/trust-bundle`; `None` until a CA runs.
    trust_bundle: watch::Sender<Option<Arc<str>>>,
    /// What `/api/v1/ca` shows.
    ca: watch::Sender<Option<serde_json::Value>>,
    ads: AdsService,
    /// The plaintext xDS listener's address, when one was asked for.
    pub xds_addr: Option<SocketAddr>,
    pub admin_addr: SocketAddr,
    cluster: Option<Cluster>,
}

/// A replica's place in its cluster (Kubernetes mode).
#[derive(Clone)]
pub struct Cluster {
    pub client: discovery_kubernetes::KubeClient,
    /// The control plane's namespace.
    pub namespace: String,
    /// This replica's name in the Lease (`POD_NAME`).
    pub identity: String,
    /// Whether it holds the Lease now.
    pub leading: watch::Receiver<bool>,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("namespace", &self.namespace)
            .field("identity", &self.identity)
            .field("leading", &*self.leading.borrow())
            .finish_non_exhaustive()
    }
}

impl ControlPlane {
    /// Reads the config directory, builds the first snapshot, then starts
    /// serving. Returns once both servers listen.
    pub async fn start(args: &ServeConfig) -> Result<ControlPlane> {
        let mut sources = Sources::default();
        if let Some(dir) = &args.config_dir {
            let (changes_tx, changes_rx) = mpsc::channel(64);
            let source = FileSource::new(dir.clone());
            let config_dir = dir.display().to_string();
            sources.files = Some(changes_rx);
            sources.tasks.push(tokio::spawn(async move {
                if let Err(error) = source.run(changes_tx).await {
                    warn!(%error, dir = %config_dir, "config source stopped");
                }
            }));
        } else if args.registry == Registry::Files {
            return Err(Error::NoConfigDir);
        }
        let mesh = mesh::load(args.mesh_config.as_deref());
        for d in &mesh.diagnostics {
            warn!("mesh config: {d}");
        }
        info!(root_namespace = %mesh.config.root_namespace, "mesh config");
        let (snapshot_tx, snapshots) = watch::channel(Arc::new(Snapshot::default()));
        let (trust_bundle, trust_bundle_rx) = watch::channel(None);
        let mut tasks = Vec::new();
        let mut cluster = None;
        if let Registry::Kubernetes { kubeconfig, lease } = &args.registry {
            let client = discovery_kubernetes::client(kubeconfig.as_deref())
                .await
                .map_err(Error::Kubernetes)?;
            let (changes_tx, changes_rx) = mpsc::channel(64);
            sources.custom = Some(changes_rx);
            sources.kube = Some((
                KubeSource::start(client.clone()),
                ConfigWatch::start(client.clone(), changes_tx),
            ));
            let lease = lease
                .clone()
                .unwrap_or_else(|| LeaseConfig::from_env(&mesh.config.root_namespace));
            info!(lease = %lease.name, namespace = %lease.namespace, identity = %lease.identity, "competing for the lead");
            let (work, leads) = leader_work(
                client.clone(),
                lease.clone(),
                snapshots.clone(),
                trust_bundle_rx.clone(),
            );
            tasks.extend(work);
            cluster = Some(Cluster {
                client,
                namespace: lease.namespace,
                identity: lease.identity,
                leading: leads,
            });
        }

        let (keys_tx, keys_rx) = watch::channel(jwks::KeySets::default());
        let build_task = tokio::spawn(build_loop(
            sources,
            Inputs {
                bundles: trust_bundle_rx.clone(),
                keys: keys_rx,
            },
            snapshot_tx,
            Debounce::default(),
            mesh.clone(),
        ));
        let (failures_tx, key_failures) = watch::channel(jwks::Failures::default());
        let jwks_task = tokio::spawn(jwks::run(snapshots.clone(), keys_tx, failures_tx));
        // Serve nothing before the first full listing is compiled, so that no
        // proxy ever sees an empty mesh at startup.
        let mut first = snapshots.clone();
        first
            .wait_for(|s| s.generation > 0)
            .await
            .map_err(|_| Error::SourceStopped)?;

        let status = Arc::new(StatusRegistry::default());
        let (shutdown, shutdown_rx) = watch::channel(false);

        let ads = AdsServer::new(snapshots.clone(), status.clone()).into_service();
        tasks.extend([build_task, jwks_task]);
        let mut xds_addr = None;
        if let Some(addr) = args.xds_addr {
            let listen_xds = |source| Error::ListenXds { addr, source };
            let xds_listener = listen(addr).map_err(listen_xds)?;
            xds_addr = Some(xds_listener.local_addr().map_err(listen_xds)?);
            let ads = ads.clone();
            let max_age = args.xds_max_connection_age;
            let mut stop = shutdown_rx.clone();
            tasks.push(tokio::spawn(async move {
                let incoming = tokio_stream::wrappers::TcpListenerStream::new(xds_listener);
                let mut builder = tonic::transport::Server::builder()
                    .http2_keepalive_interval(Some(std::time::Duration::from_secs(30)));
                if let Some((age, grace)) = max_age {
                    builder = builder
                        .max_connection_age(age)
                        .max_connection_age_grace(grace);
                }
                let served = builder
                    .add_service(ads)
                    .serve_with_incoming_shutdown(incoming, async move {
                        let _ = stop.wait_for(|s| *s).await;
                    })
                    .await;
                if let Err(error) = served {
                    warn!(%error, "xDS server stopped");
                }
            }));
        }

        let listen_admin = |source| Error::ListenAdmin {
            addr: args.admin_addr,
            source,
        };
        let admin_listener = tokio::net::TcpListener::bind(args.admin_addr)
            .await
            .map_err(listen_admin)?;
        let admin_addr = admin_listener.local_addr().map_err(listen_admin)?;
        let (ca, ca_rx) = watch::channel(None);
        let router = admin::router(admin::AdminState {
            snapshots: snapshots.clone(),
            status: status.clone(),
            trust_bundle: trust_bundle_rx,
            ca: ca_rx,
            key_failures,
            // In Kubernetes mode the control plane writes no config: the
            // custom resources are the users' to apply, under their RBAC.
            config_dir: match args.registry {
                Registry::Files => args.config_dir.clone(),
                Registry::Kubernetes { .. } => None,
            },
            writes: Arc::default(),
            mesh: Arc::new(mesh.clone()),
            replicas: admin::Replicas {
                own: admin_addr,
                token: args.admin_token.clone(),
                peers: match (&args.replicas, &cluster) {
                    (ReplicaSource::Peers(urls), _) => admin::Peers::Urls(urls.clone()),
                    (ReplicaSource::Service, Some(cluster)) => admin::Peers::Service {
                        client: cluster.client.clone(),
                        service: discovery_kubernetes::replicas::ControlPlaneService {
                            namespace: cluster.namespace.clone(),
                            ..Default::default()
                        },
                    },
                    (ReplicaSource::Service, None) => admin::Peers::Urls(Vec::new()),
                },
            },
        })
        // Bodies (multi-document YAML) are bounded.
        .layer(axum::extract::DefaultBodyLimit::max(ADMIN_BODY_LIMIT));
        let router = match &args.admin_token {
            Some(file) => router.layer(axum::middleware::from_fn_with_state(
                Arc::new(crate::auth::AdminAuth::new(
                    file.clone(),
                    args.admin_read_auth,
                )),
                crate::auth::check,
            )),
            None => router,
        };
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

        tasks.push(admin_task);
        info!(
            plaintext_xds_addr = ?xds_addr,
            %admin_addr,
            config_dir = ?args.config_dir,
            registry = ?args.registry,
            "control plane ready"
        );
        Ok(ControlPlane {
            snapshots,
            status,
            shutdown,
            tasks,
            ads,
            trust_bundle,
            ca,
            xds_addr,
            admin_addr,
            cluster,
        })
    }

    /// In Kubernetes mode: the client, the control plane's namespace, this
    /// replica's identity and whether it leads.
    pub fn cluster(&self) -> Option<&Cluster> {
        self.cluster.as_ref()
    }

    /// Follows the snapshots as they are built.
    pub fn snapshots(&self) -> watch::Receiver<Arc<Snapshot>> {
        self.snapshots.clone()
    }

    pub fn status(&self) -> Arc<StatusRegistry> {
        self.status.clone()
    }

    /// Makes `pem` (the CA's roots) the trust bundle: served at
    /// `/api/v1/trust-bundle`, and to every sidecar as the secret `ROOTCA`
    /// in a snapshot of its own (only the secrets are compiled again).
    pub fn set_trust_bundle(&self, pem: &str) {
        self.trust_bundle.send_if_modified(|bundle| {
            let changed = bundle.as_deref() != Some(pem);
            if changed {
                *bundle = Some(Arc::from(pem));
            }
            changed
        });
    }

    /// The ADS service for a mutual-TLS listener (the CA's, or one of its
    /// own): the same push queue and status as the plaintext one, with
    /// every stream's node checked against its client certificate.
    pub fn authenticated_ads(&self) -> AdsService {
        self.ads.authenticated()
    }

    /// Serves `view` at `/api/v1/ca`.
    pub fn set_ca_status(&self, view: serde_json::Value) {
        self.ca.send_if_modified(|current| {
            let changed = current.as_ref() != Some(&view);
            if changed {
                *current = Some(view);
            }
            changed
        });
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

/// What the control plane adds to the config: the CA's trust bundle and
/// the fetched JWT keys.
struct Inputs {
    bundles: watch::Receiver<Option<Arc<str>>>,
    keys: watch::Receiver<jwks::KeySets>,
}

/// The election, and the work its leader does: status conditions on
/// invalid custom resources (from each snapshot's refused objects), the
/// CA's roots as a ConfigMap in every namespace, and the webhooks' `caBundle`s.
fn leader_work(
    client: discovery_kubernetes::KubeClient,
    lease: LeaseConfig,
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    bundle: watch::Receiver<Option<Arc<str>>>,
) -> ([JoinHandle<()>; 4], watch::Receiver<bool>) {
    let elector = LeaderElector::start(client.clone(), lease);
    let leading = elector.leading();
    let leads = leading.clone();
    let (invalid_tx, invalid) = watch::channel(Default::default());
    let refused = tokio::spawn(async move {
        while snapshots.changed().await.is_ok() {
            let now = status::invalid_objects(&snapshots.borrow_and_update().diagnostics);
            invalid_tx.send_if_modified(|current| {
                let changed = *current != now;
                *current = now;
                changed
            });
        }
    });
    let roots = tokio::spawn(discovery_kubernetes::roots::run(
        client.clone(),
        leading.clone(),
        bundle.clone(),
    ));
    let webhooks = tokio::spawn(discovery_kubernetes::webhooks::run(
        client.clone(),
        leading.clone(),
        bundle,
    ));
    let writer = tokio::spawn(async move {
        // The election runs as long as the writer does.
        let _elector = elector;
        status::run(client, leading, invalid).await;
    });
    ([refused, roots, webhooks, writer], leads)
}

/// Where the build loop's config comes from: the file source's changes,
/// the custom resources' (as documents of the same store), and the
/// cluster's translation. Dropping it stops them.
#[derive(Default)]
struct Sources {
    files: Option<mpsc::Receiver<Vec<FileChange>>>,
    custom: Option<mpsc::Receiver<Vec<FileChange>>>,
    kube: Option<(KubeSource, ConfigWatch)>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Sources {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// The next batch from `changes`; pending forever without one. `None`
/// once it closed: the source stopped.
async fn next_batch(
    changes: &mut Option<mpsc::Receiver<Vec<FileChange>>>,
) -> Option<Vec<FileChange>> {
    match changes {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// The next translation of the cluster; pending forever without one.
async fn next_translation(
    kube: &mut Option<(KubeSource, ConfigWatch)>,
) -> Option<Arc<Translation>> {
    match kube {
        Some((source, _)) => source.next().await,
        None => std::future::pending().await,
    }
}

/// What the first snapshot still waits for: each source's first listing.
#[derive(Debug)]
struct Awaiting {
    files: bool,
    custom: bool,
    cluster: bool,
}

impl Awaiting {
    fn nothing(&self) -> bool {
        !(self.files || self.custom || self.cluster)
    }
}

/// Applies config changes to the store and publishes a new snapshot per
/// burst, and one per change of the trust bundle or the fetched keys.
async fn build_loop(
    mut sources: Sources,
    mut inputs: Inputs,
    snapshots: watch::Sender<Arc<Snapshot>>,
    debounce: Debounce,
    mesh: Mesh,
) {
    let mut store = FileStore::default();
    let mut burst = Burst::default();
    let mut generation = 0;
    let mut current = Current {
        bundle: inputs.bundles.borrow_and_update().clone(),
        keys: inputs.keys.borrow_and_update().clone(),
        cluster: None,
    };
    let mut published_cluster: Option<Arc<Translation>> = None;
    let mut awaiting = Awaiting {
        files: sources.files.is_some(),
        custom: sources.custom.is_some(),
        cluster: sources.kube.is_some(),
    };
    loop {
        let due = burst.due(debounce);
        // What to publish now: after the burst's debounce, at once for the
        // very first listing of every source, and at once when an input of
        // the control plane's own changes (before the first listing, the
        // first snapshot takes it).
        let now = tokio::select! {
            batch = next_batch(&mut sources.files) => {
                let Some(batch) = batch else { return };
                apply(&mut store, batch);
                burst.change(Instant::now());
                awaiting.files = false;
                generation == 0 && awaiting.nothing()
            }
            batch = next_batch(&mut sources.custom) => {
                let Some(batch) = batch else { return };
                apply(&mut store, batch);
                burst.change(Instant::now());
                awaiting.custom = false;
                generation == 0 && awaiting.nothing()
            }
            translation = next_translation(&mut sources.kube) => {
                let Some(translation) = translation else { return };
                current.cluster = Some(translation);
                burst.change(Instant::now());
                awaiting.cluster = false;
                generation == 0 && awaiting.nothing()
            }
            () = sleep_until(due), if due.is_some() && awaiting.nothing() => true,
            changed = inputs.bundles.changed() => {
                if changed.is_err() {
                    // The control plane is gone.
                    return;
                }
                current.bundle = inputs.bundles.borrow_and_update().clone();
                generation > 0
            }
            changed = inputs.keys.changed() => {
                if changed.is_err() {
                    return;
                }
                current.keys = inputs.keys.borrow_and_update().clone();
                generation > 0
            }
        };
        if now {
            burst.reset();
            generation += 1;
            publish(
                &mut store,
                &mesh,
                generation,
                &current,
                published_cluster.as_deref(),
                &snapshots,
            );
            published_cluster = current.cluster.clone();
        }
    }
}

/// The control plane's inputs as of now.
struct Current {
    bundle: Option<Arc<str>>,
    keys: jwks::KeySets,
    /// The cluster's Services and endpoints, with the Kubernetes registry.
    cluster: Option<Arc<Translation>>,
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
/// changed since, and publishes it. `published_cluster`: the cluster's
/// translation the last snapshot was built from.
fn publish(
    store: &mut FileStore,
    mesh: &Mesh,
    generation: u64,
    current: &Current,
    published_cluster: Option<&Translation>,
    snapshots: &watch::Sender<Arc<Snapshot>>,
) {
    let mut changed = store.take_changed();
    let mut config = store.config();
    if let Some(cluster) = &current.cluster {
        merge_cluster(&mut config, cluster);
        match published_cluster {
            Some(before) => changed.extend(cluster.changed_since(before)),
            None => changed.extend(cluster.changed_since(&Translation::default())),
        }
    }
    let previous = snapshots.borrow().clone();
    let snapshot = mesh
        .build_after(&previous, generation, &config, &changed)
        .with_trust_bundle(current.bundle.clone())
        .with_jwks(current.keys.clone());
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

/// Adds the cluster's Services, their endpoints and the translation's
/// warnings to `config`. A Service that a file defines too is the
/// cluster's, and the file's definition is reported.
fn merge_cluster(config: &mut ConfigSet, cluster: &Translation) {
    let from_cluster = cluster.config_set();
    let in_cluster: BTreeSet<ObjectKey> = from_cluster.objects.iter().map(|o| o.key()).collect();
    let mut objects = Vec::with_capacity(config.objects.len() + from_cluster.objects.len());
    for object in config.objects.drain(..) {
        let key = object.key();
        if !in_cluster.contains(&key) {
            objects.push(object);
            continue;
        }
        let mut shadowed = Diagnostic::error(
            FieldPath::root(),
            "the cluster has this Service too: the cluster's is in force",
        )
        .on(key.clone());
        if let Some((file, document)) = config.origins.get(&key) {
            shadowed = shadowed.in_file(file.clone(), *document);
        }
        config.diagnostics.push(shadowed);
    }
    objects.extend(from_cluster.objects);
    objects.sort_by_key(|o| o.key());
    config.objects = objects;
    config.diagnostics.extend(from_cluster.diagnostics);
    config.diagnostics.sort();
    config.endpoints = from_cluster.endpoints;
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

/// How many connections the xDS listener lets wait to be accepted: a fleet
/// reconnecting after a restart arrives at once, and tokio's default of
/// 1,024 made the kernel reset the rest. The kernel caps it at
/// `net.core.somaxconn` (4,096 by default).
const XDS_BACKLOG: u32 = 8192;

/// The xDS listener at `addr`, with room for a fleet's connects.
fn listen(addr: std::net::SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(XDS_BACKLOG)
}
