//! `bowline serve`: the control plane and its CA, until the process is asked to stop.

use std::net::SocketAddr;
use std::path::PathBuf;

use discovery_kubernetes::LeaseConfig;
use pilot_server::serve::{ControlPlane, Registry, ServeConfig};

use std::sync::Arc;

use anyhow::Context;

use citadel_server::TokenReviewer;

use crate::ca::{CaArgs, KubeReviewer};
use tracing::info;

/// Flags of `bowline serve`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ServeArgs {
    /// Directory of YAML manifests, read recursively and followed for
    /// changes. Needed with `--registry files`; with `kubernetes`, its
    /// objects add to the cluster's.
    #[arg(long)]
    pub(crate) config_dir: Option<PathBuf>,
    /// Where services and their endpoints come from: the config
    /// directory's files, or a Kubernetes cluster (its Services,
    /// EndpointSlices, Pods, Nodes and Namespaces, and the Istio custom
    /// resources).
    #[arg(long, value_enum, default_value = "files")]
    pub(crate) registry: RegistryArg,
    /// The kubeconfig for `--registry kubernetes` [default: KUBECONFIG,
    /// ~/.kube/config, or the pod's service account]
    #[arg(long, value_name = "PATH")]
    pub(crate) kubeconfig: Option<PathBuf>,
    /// With `--registry kubernetes`: how long the leader's Lease lasts
    /// without a renewal before another replica takes over.
    #[arg(long, default_value = "15s", value_parser = crate::ca::parse_duration)]
    pub(crate) lease_duration: std::time::Duration,
    /// With `--registry kubernetes`: the image injected sidecars run
    /// (`bowline` and Envoy), at `POST /inject` on --ca-addr.
    #[arg(long, default_value = "bowline:dev", value_name = "IMAGE")]
    pub(crate) proxy_image: String,
    /// Where injected sidecars reach the CA and xDS [default:
    /// istiod.NAMESPACE.svc:15012, NAMESPACE the control plane's]
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) injected_ca_addr: Option<String>,
    /// How often a replica looks at the Lease, and the leader renews it.
    #[arg(long, default_value = "2s", value_parser = crate::ca::parse_duration)]
    pub(crate) lease_retry: std::time::Duration,
    /// Also serve plaintext xDS here (local development, proxies without a
    /// certificate; Istio's 15010): any local process can connect and
    /// claim any node. Without it, xDS is served only over mutual TLS.
    #[arg(long, value_name = "ADDR")]
    pub(crate) xds_addr: Option<SocketAddr>,
    /// Where to serve xDS over mutual TLS [default: beside the CA, on --ca-addr]
    #[arg(long, value_name = "ADDR")]
    pub(crate) xds_tls_addr: Option<SocketAddr>,
    /// Address of the admin HTTP API.
    #[arg(long, default_value = "127.0.0.1:15014")]
    pub(crate) admin_addr: SocketAddr,
    /// Istio MeshConfig YAML (for now `rootNamespace`). A file with errors
    /// is reported in the diagnostics and the defaults are used.
    #[arg(long)]
    pub(crate) mesh_config: Option<PathBuf>,
    /// Reads of the admin API need the admin token too (mutating requests
    /// always do), except /healthz and /metrics.
    #[arg(long)]
    pub(crate) admin_read_auth: bool,
    /// Another replica's admin API, for `/api/v1/replicas/proxies` and the
    /// dashboard (once per replica) [default: with `--registry kubernetes`,
    /// the ready endpoints of the Service istiod in the control plane's
    /// namespace, port http-admin; else none]
    #[arg(long = "peer", value_name = "URL")]
    pub(crate) peers: Vec<String>,
    #[command(flatten)]
    pub(crate) ca: CaArgs,
}

/// `--registry`.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RegistryArg {
    Files,
    Kubernetes,
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<ServeConfig> {
        let ServeArgs {
            config_dir,
            registry,
            kubeconfig,
            lease_duration,
            lease_retry,
            proxy_image: _,
            injected_ca_addr: _,
            xds_addr,
            admin_addr,
            mesh_config,
            admin_read_auth,
            xds_tls_addr: _,
            peers,
            ca,
        } = self.clone();
        let registry = match registry {
            // Before anything is written to the state directory.
            RegistryArg::Files if config_dir.is_none() => {
                anyhow::bail!("--config-dir DIR is needed, unless --registry kubernetes")
            }
            RegistryArg::Files => Registry::Files,
            RegistryArg::Kubernetes => {
                let mesh = pilot_server::mesh::load(mesh_config.as_deref()).config;
                Registry::Kubernetes {
                    kubeconfig,
                    lease: Some(LeaseConfig {
                        duration: lease_duration,
                        retry: lease_retry,
                        ..LeaseConfig::from_env(&mesh.root_namespace)
                    }),
                }
            }
        };
        Ok(ServeConfig {
            config_dir,
            registry,
            xds_addr,
            admin_addr,
            mesh_config,
            admin_token: Some(crate::ca::admin_token(&ca.state_dir)?),
            admin_read_auth,
            xds_max_connection_age: ca
                .xds_max_connection_age
                .filter(|age| !age.is_zero())
                .map(|age| (age, pilot_server::serve::XDS_MAX_CONNECTION_AGE_GRACE)),
            replicas: if peers.is_empty() {
                pilot_server::serve::ReplicaSource::Service
            } else {
                pilot_server::serve::ReplicaSource::Peers(peers)
            },
        })
    }
}

/// The files of the state directory every replica shares in Kubernetes:
/// the root, the token-signing key and the admin token. (A plug-in CA's
/// `cacerts` is mounted, not shared this way.)
const SHARED_STATE: [&str; 4] = [
    citadel::authority::ROOT_CERT,
    citadel::authority::ROOT_KEY,
    citadel::token::KEY_FILE,
    citadel::admin_token::FILE,
];

/// Runs `bowline serve` until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: ServeArgs) -> anyhow::Result<()> {
    let kube = match args.registry {
        RegistryArg::Kubernetes => {
            let client = discovery_kubernetes::client(args.kubeconfig.as_deref()).await;
            Some(client.context("cannot reach the Kubernetes API server")?)
        }
        _ => None,
    };
    if let Some(client) = &kube {
        // Every replica signs under one root: the state comes from the
        // Secret, or this replica makes and publishes it.
        let mesh = pilot_server::mesh::load(args.mesh_config.as_deref()).config;
        let namespace = discovery_kubernetes::leader::namespace(&mesh.root_namespace);
        let make = || {
            args.ca.signer(&mesh).map_err(|e| format!("{e:#}"))?;
            // Never in the log (a pod's log is read by more people than
            // its Secrets): the operator reads it from the Secret.
            let state =
                citadel::state::StateDir::open(&args.ca.state_dir).map_err(|e| format!("{e:#}"))?;
            if citadel::admin_token::ensure(&state)
                .map_err(|e| format!("the admin token: {e:#}"))?
                .is_some()
            {
                info!(
                    "admin token made; read it with: kubectl -n {namespace} get secret {} -o jsonpath='{{.data.admin-token}}' | base64 -d",
                    discovery_kubernetes::state::SECRET_NAME
                );
            }
            Ok(())
        };
        discovery_kubernetes::state::share(
            client.clone(),
            &namespace,
            &args.ca.state_dir,
            &SHARED_STATE,
            make,
        )
        .await?;
    }
    let control_plane = ControlPlane::start(&args.config()?).await?;
    // In a cluster, workloads authenticate to the CA with their projected
    // service-account tokens, which the API server reviews.
    // Pods in a cluster get their sidecar from the injection webhook.
    let injection = kube.as_ref().map(|_| {
        let mesh = pilot_server::mesh::load(args.mesh_config.as_deref()).config;
        let namespace = discovery_kubernetes::leader::namespace(&mesh.root_namespace);
        let mut injection = pilot_inject::Injection::new(&args.proxy_image, namespace);
        if let Some(addr) = &args.injected_ca_addr {
            injection.ca_addr = addr.clone();
        }
        injection
    });
    let reviewer: Option<Arc<dyn TokenReviewer>> = kube.map(|client| {
        Arc::new(KubeReviewer(discovery_kubernetes::TokenReviews::new(
            client,
        ))) as Arc<dyn TokenReviewer>
    });
    let (ca, signer) = args
        .ca
        .start(
            args.mesh_config.as_deref(),
            control_plane.authenticated_ads(),
            args.xds_tls_addr,
            reviewer,
            injection,
        )
        .await?;
    info!(xds_tls_addr = %ca.xds_addr(), "xDS over mutual TLS");
    control_plane.set_trust_bundle(&signer.ca.trust_bundle_pem());
    tokio::select! {
        () = crate::signal::shutdown() => {}
        () = crate::rotation::drive(&control_plane, signer.clone(), &ca.trust, Some(&args.ca.state_dir)) => {}
    }
    info!("shutting down");
    ca.stop().await;
    control_plane.stop().await;
    Ok(())
}
