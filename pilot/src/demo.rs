//! `bowline demo`: a whole mesh on one machine.
//!
//! ```text
//! CA (--ca-addr) ──► WORK_DIR/ca-root.pem (the agents' --ca-root)
//! config dir ──► ControlPlane ──snapshots──► reconcile: for each WorkloadEntry
//!                                               ├─ echo application on ADDRESS:15080
//!                                               ├─ a token (WORK_DIR/token-NAME.NS) ──► certificate agent ──► SDS socket
//!                                               └─ sidecar Envoy on ADDRESS (admin :15000, outbound :15001)
//! ```
//!
//! It follows the directory as the control plane does: a WorkloadEntry added
//! later gets its application and sidecar, one deleted has them stopped, one
//! changed is restarted.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use citadel::signing::Signer;

use anyhow::Context;
use policy::networking::WorkloadEntry;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tracing::{info, warn};

use pilot_agent::{
    self as agent, BootstrapConfig, Mode, NodeMetadata, Sidecar, SidecarConfig, XdsAddress,
};
use pilot_core::snapshot::Snapshot;
use pilot_server::serve::{ControlPlane, Registry, ServeConfig};

use crate::agent::{Identity, IdentityArgs};
use crate::echo::{self, EchoInfo};

/// How long the tokens the demo mints for its workloads live: they are
/// read again at each renewal, so they must outlive a long demo.
const DEMO_TOKEN_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Where each demo application listens on its workload's address. Inside the
/// sidecar's reserved range (15000-15090), so no service port collides with it.
pub(crate) const APP_PORT: u16 = 15080;

/// The example mesh run when no directory is given.
pub(crate) const DEFAULT_CONFIG_DIR: &str = "manifests/examples/demo";

/// Flags of `bowline demo`.
#[derive(clap::Args, Debug)]
pub(crate) struct DemoArgs {
    /// Directory of YAML manifests [default: manifests/examples/demo]
    #[arg(long)]
    pub(crate) config_dir: Option<PathBuf>,
    /// The Envoy binary; otherwise $BOWLINE_ENVOY, `envoy` on PATH, or ./.venv.
    #[arg(long)]
    pub(crate) envoy: Option<PathBuf>,
    /// Also serve plaintext xDS here, as `bowline serve --xds-addr` (the
    /// demo's sidecars speak xDS over mutual TLS, beside the CA).
    #[arg(long, value_name = "ADDR")]
    pub(crate) xds_addr: Option<SocketAddr>,
    #[arg(long, default_value = "127.0.0.1:15014")]
    pub(crate) admin_addr: SocketAddr,
    /// ADS variant the sidecars use.
    #[arg(long, value_parser = crate::agent::xds_mode(), default_value_t = Mode::Sotw)]
    pub(crate) xds_mode: Mode,
    /// Istio MeshConfig YAML, as for `bowline serve`.
    #[arg(long)]
    pub(crate) mesh_config: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) ca: crate::ca::CaArgs,
}

/// One workload of the demo: its application and its sidecar.
#[derive(Debug)]
struct Running {
    entry: Arc<WorkloadEntry>,
    echo_stop: oneshot::Sender<()>,
    echo_task: JoinHandle<()>,
    sidecar: Sidecar,
    identity: Identity,
}

pub(crate) async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let envoy = agent::envoy::locate(args.envoy.as_deref())?;
    let config_dir = args
        .config_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONFIG_DIR));
    anyhow::ensure!(
        config_dir.is_dir(),
        "config directory {} does not exist (run from the repository root, or pass --config-dir)",
        config_dir.display()
    );
    let work_dir = std::env::temp_dir().join(format!("bowline-demo-{}", std::process::id()));
    std::fs::create_dir_all(&work_dir)
        .with_context(|| format!("cannot create {}", work_dir.display()))?;

    let control_plane = ControlPlane::start(&ServeConfig {
        config_dir: Some(config_dir.clone()),
        registry: Registry::Files,
        xds_addr: args.xds_addr,
        admin_addr: args.admin_addr,
        mesh_config: args.mesh_config.clone(),
        admin_token: Some(crate::ca::admin_token(&args.ca.state_dir)?),
        admin_read_auth: false,
        xds_max_connection_age: None,
        replicas: Default::default(),
    })
    .await?;
    let (ca, signer) = args
        .ca
        .start(
            args.mesh_config.as_deref(),
            control_plane.authenticated_ads(),
            None,
            None,
            None,
        )
        .await?;
    control_plane.set_trust_bundle(&signer.ca.trust_bundle_pem());
    let ca_root = work_dir.join("ca-root.pem");
    std::fs::write(&ca_root, signer.ca.trust_bundle_pem().as_bytes())
        .with_context(|| format!("cannot write {}", ca_root.display()))?;
    // The serving certificate names 127.0.0.1 when the CA listens on every address.
    let mut ca_dial = ca.ca.addr;
    if ca_dial.ip().is_unspecified() {
        ca_dial.set_ip(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    let demo = Demo {
        envoy,
        work_dir: work_dir.clone(),
        xds: XdsAddress::from(ca_dial),
        xds_mode: args.xds_mode,
        ca: DemoCa {
            addr: ca_dial,
            root: ca_root.clone(),
            signer: signer.clone(),
        },
    };

    let mut snapshots = control_plane.snapshots();
    let mut running = BTreeMap::new();
    let snapshot = snapshots.borrow_and_update().clone();
    demo.reconcile(&snapshot, &mut running).await;
    let ca_line = format!(
        "  CA: signing API on {} (trust domain {}), root in {}",
        ca.ca.addr,
        signer.ca.trust_domain(),
        ca_root.display()
    );
    print_summary(
        &snapshot,
        &running,
        &control_plane,
        &config_dir,
        &work_dir,
        &ca_line,
        ca_dial,
    );

    let stop = crate::signal::shutdown();
    tokio::pin!(stop);
    let mut rotation = Box::pin(crate::rotation::drive(
        &control_plane,
        signer.clone(),
        &ca.trust,
        None,
    ));
    loop {
        tokio::select! {
            () = &mut stop => break,
            () = &mut rotation => break,
            changed = snapshots.changed() => {
                if changed.is_err() {
                    break;
                }
                let snapshot = snapshots.borrow_and_update().clone();
                demo.reconcile(&snapshot, &mut running).await;
            }
        }
    }

    drop(rotation);
    println!("stopping the demo");
    for (_, workload) in std::mem::take(&mut running) {
        stop_workload(workload).await;
    }
    ca.stop().await;
    control_plane.stop().await;
    let _ = std::fs::remove_dir_all(&work_dir);
    Ok(())
}

#[derive(Debug)]
struct Demo {
    envoy: PathBuf,
    work_dir: PathBuf,
    xds: XdsAddress,
    xds_mode: Mode,
    ca: DemoCa,
}

/// What each agent of the demo gets its certificate from.
#[derive(Debug)]
struct DemoCa {
    addr: SocketAddr,
    root: PathBuf,
    signer: Arc<Signer>,
}

type WorkloadKey = (String, String);

impl Demo {
    /// Starts, stops and restarts workloads so that exactly the snapshot's
    /// WorkloadEntries run, each as its entry says.
    async fn reconcile(&self, snapshot: &Snapshot, running: &mut BTreeMap<WorkloadKey, Running>) {
        let wanted: BTreeMap<WorkloadKey, Arc<WorkloadEntry>> = snapshot
            .workload_entries
            .iter()
            .map(|we| {
                (
                    (we.meta.namespace.clone(), we.meta.name.clone()),
                    we.clone(),
                )
            })
            .collect();
        let stale: Vec<WorkloadKey> = running
            .iter()
            .filter(|(key, r)| wanted.get(*key).is_none_or(|we| we != &r.entry))
            .map(|(key, _)| key.clone())
            .collect();
        for key in stale {
            if let Some(workload) = running.remove(&key) {
                info!(namespace = %key.0, workload = %key.1, "stopping workload");
                stop_workload(workload).await;
            }
        }
        for (key, entry) in wanted {
            if running.contains_key(&key) {
                continue;
            }
            match self.start_workload(entry.clone()).await {
                Ok(workload) => {
                    info!(namespace = %key.0, workload = %key.1, address = %entry.spec.address, "started workload");
                    running.insert(key, workload);
                }
                Err(error) => {
                    warn!(namespace = %key.0, workload = %key.1, "cannot start workload: {error:#}")
                }
            }
        }
    }

    async fn start_workload(&self, entry: Arc<WorkloadEntry>) -> anyhow::Result<Running> {
        let address: IpAddr =
            entry.spec.address.parse().with_context(|| {
                format!("address {:?} is not an IP address", entry.spec.address)
            })?;
        let app = SocketAddr::new(address, APP_PORT);
        let listener = tokio::net::TcpListener::bind(app)
            .await
            .with_context(|| format!("cannot listen on {app}"))?;
        let info = EchoInfo {
            workload: entry.meta.name.clone(),
            namespace: entry.meta.namespace.clone(),
            version: entry
                .spec
                .labels
                .get("version")
                .cloned()
                .unwrap_or_else(|| "v1".to_string()),
        };
        let (echo_stop, stopped) = oneshot::channel();
        let echo_task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            if let Err(error) = echo::serve(listener, info, shutdown).await {
                warn!(%error, %app, "echo application stopped");
            }
        });

        let mut node = NodeMetadata::new(
            entry.meta.namespace.clone(),
            entry.meta.name.clone(),
            address,
        );
        node.labels = entry.spec.labels.clone();
        node.service_account = entry.spec.service_account.clone();
        node.app_address = Some(app);
        let identity = match self.start_identity(&node).await {
            Ok(identity) => identity,
            Err(error) => {
                let _ = echo_stop.send(());
                let _ = echo_task.await;
                return Err(error);
            }
        };
        let mut bootstrap = BootstrapConfig::new(node, self.xds.clone());
        bootstrap.xds_mode = self.xds_mode;
        bootstrap.sds_socket = Some(identity.socket());
        bootstrap.xds_tls_roots = Some(std::path::absolute(&self.ca.root)?);
        let mut cfg = SidecarConfig::new(bootstrap, self.envoy.clone(), self.work_dir.clone());
        cfg.log_file = Some(self.work_dir.join(format!(
            "envoy-{}.{}.log",
            entry.meta.name, entry.meta.namespace
        )));
        let sidecar = match Sidecar::start(cfg).await {
            Ok(sidecar) => sidecar,
            Err(error) => {
                identity.stop().await;
                let _ = echo_stop.send(());
                let _ = echo_task.await;
                return Err(error.into());
            }
        };
        Ok(Running {
            entry,
            echo_stop,
            echo_task,
            sidecar,
            identity,
        })
    }

    /// A token for the workload's service account in the work dir, and the
    /// agent that gets its certificate with it, as `bowline proxy --ca-addr
    /// --ca-root --token-file` would.
    async fn start_identity(&self, node: &NodeMetadata) -> anyhow::Result<Identity> {
        let service_account = node.service_account.as_deref().unwrap_or("default");
        let token = self
            .ca
            .signer
            .tokens
            .mint(
                &node.namespace,
                service_account,
                DEMO_TOKEN_TTL,
                SystemTime::now(),
            )
            .context("the workload's token")?;
        let token_file = self
            .work_dir
            .join(format!("token-{}.{}", node.workload, node.namespace));
        std::fs::write(&token_file, token)
            .with_context(|| format!("cannot write {}", token_file.display()))?;
        let args = IdentityArgs {
            ca_addr: Some(self.ca.addr.into()),
            ca_root: Some(self.ca.root.clone()),
            token_file: Some(token_file),
            ca_server_name: None,
            trust_domain: self.ca.signer.ca.trust_domain().to_string(),
            workload_cert_ttl: None,
            cert_rotation_fraction: pilot_agent::rotation::DEFAULT_ROTATION_FRACTION,
        };
        let cfg = args
            .certificate_config(node)?
            .context("the workload's certificate config")?;
        let socket = format!("sds-{}.{}.sock", node.workload, node.namespace);
        Identity::start(cfg, &self.work_dir, &socket).await
    }
}

async fn stop_workload(workload: Running) {
    if let Err(error) = workload.sidecar.stop().await {
        warn!(%error, "sidecar did not stop cleanly");
    }
    workload.identity.stop().await;
    let _ = workload.echo_stop.send(());
    let _ = workload.echo_task.await;
}

fn print_summary(
    snapshot: &Snapshot,
    running: &BTreeMap<WorkloadKey, Running>,
    control_plane: &ControlPlane,
    config_dir: &std::path::Path,
    work_dir: &std::path::Path,
    ca_line: &str,
    xds: std::net::SocketAddr,
) {
    println!();
    println!("Bowline demo mesh from {}", config_dir.display());
    let plaintext = control_plane
        .xds_addr
        .map(|a| format!(", plaintext xDS on {a}"))
        .unwrap_or_default();
    println!(
        "  control plane: xDS over mutual TLS on {xds}{plaintext}, admin API on http://{}/api/v1/proxies",
        control_plane.admin_addr
    );
    println!("{ca_line}");
    println!("  Envoy logs and bootstraps: {}", work_dir.display());
    println!();
    println!(
        "  {:<28} {:<8} {:<22} {:<22} ENVOY ADMIN",
        "WORKLOAD", "VERSION", "APPLICATION", "SIDECAR OUTBOUND"
    );
    for ((ns, name), r) in running {
        let address = &r.entry.spec.address;
        println!(
            "  {:<28} {:<8} {:<22} {:<22} http://{}",
            format!("{ns}/{name}"),
            r.entry
                .spec
                .labels
                .get("version")
                .map_or("-", String::as_str),
            format!("{address}:{APP_PORT}"),
            format!("{address}:{}", pilot_node::DEFAULT_OUTBOUND_PORT),
            r.sidecar.admin_addr()
        );
    }
    println!();
    for service in snapshot.registry.services.values() {
        let ports: Vec<String> = service.ports.iter().map(|p| p.number.to_string()).collect();
        println!(
            "  service {} ports {} endpoints {}",
            service.hostname,
            ports.join(","),
            service.endpoints.len()
        );
    }
    if let (Some((_, client)), Some(target)) = (
        running.iter().next(),
        snapshot
            .virtual_services
            .keys()
            .next()
            .or_else(|| snapshot.registry.services.keys().next())
            .and_then(|h| snapshot.registry.services.get(h)),
    ) {
        let port = target.ports.first().map_or(80, |p| p.number);
        let host = match &target.name {
            Some(name) => format!("{name}.{}", target.namespace),
            None => target.hostname.clone(),
        };
        println!();
        println!(
            "Try it (a request through {}'s sidecar):",
            client.entry.meta.name
        );
        println!(
            "  curl -s -x http://{}:{} http://{host}:{port}/",
            client.entry.spec.address,
            pilot_node::DEFAULT_OUTBOUND_PORT
        );
        println!(
            "  for i in $(seq 50); do curl -s -x http://{}:{} http://{host}:{port}/ | grep -o '\"version\":\"[^\"]*\"'; done | sort | uniq -c",
            client.entry.spec.address,
            pilot_node::DEFAULT_OUTBOUND_PORT
        );
    }
    println!();
    println!(
        "Edit the files in {} and the mesh follows. Ctrl-C stops everything.",
        config_dir.display()
    );
}
