//! `bowline proxy`: the command-line face of the agent.
//!
//! ```text
//! ProxyArgs ──► BootstrapConfig ──► --bootstrap-only: print JSON
//!                      └──► envoy::locate ──► Sidecar::start ──► Ctrl-C / SIGTERM ──► Sidecar::stop
//! --ca-addr: CertificateAgent (CA, --token-file, --ca-root) ──► SdsServer (WORK_DIR/sds.sock) ──► bootstrap's sds-grpc
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use anyhow::Context;

use clap::builder::{PossibleValuesParser, TypedValueParser};
use pilot_agent::bootstrap::{self, BootstrapConfig, XdsAddress};
use pilot_agent::envoy;
use pilot_agent::rotation::DEFAULT_ROTATION_FRACTION;
use pilot_agent::sidecar::{RestartPolicy, Sidecar, SidecarConfig};
use pilot_agent::{Mode, NodeMetadata};
use pilot_node::{DEFAULT_ADMIN_PORT, DEFAULT_OUTBOUND_PORT};
use pilot_sds::{CertificateAgent, CertificateConfig, SdsServer};

/// Run a workload's sidecar Envoy, configured by the control plane over ADS.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct ProxyArgs {
    /// Namespace of the workload.
    #[arg(long, default_value = "default")]
    pub(crate) namespace: String,
    /// Name of the workload.
    #[arg(long)]
    pub(crate) workload: String,
    /// The workload's own IP address; Envoy's admin and listeners bind to it.
    #[arg(long)]
    pub(crate) address: IpAddr,
    /// A workload label, `KEY=VALUE` (repeatable).
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub(crate) labels: Vec<(String, String)>,
    /// The workload's service account.
    #[arg(long)]
    pub(crate) service_account: Option<String>,
    /// Where the application listens (`HOST:PORT`), for inbound ports not named by --app-port.
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) app: Option<SocketAddr>,
    /// Where the application listens for one inbound port, `PORT=HOST:PORT` (repeatable).
    #[arg(long = "app-port", value_name = "PORT=HOST:PORT", value_parser = parse_app_port)]
    pub(crate) app_ports: Vec<(u16, SocketAddr)>,
    /// The control plane's xDS address, `HOST:PORT` [default: --ca-addr,
    /// over mutual TLS, when the agent has a certificate; else
    /// 127.0.0.1:15010, plaintext]
    #[arg(long, value_name = "HOST:PORT")]
    pub(crate) xds_addr: Option<XdsAddress>,
    /// Speak plaintext xDS even with a workload certificate (the control
    /// plane's `--xds-addr`; local development only).
    #[arg(long)]
    pub(crate) xds_plaintext: bool,
    /// ADS flavour: state of the world or incremental.
    #[arg(long, value_parser = xds_mode(), default_value_t = Mode::Sotw)]
    pub(crate) xds_mode: Mode,
    /// Port of Envoy's admin interface on --address.
    #[arg(long, default_value_t = DEFAULT_ADMIN_PORT)]
    pub(crate) admin_port: u16,
    /// Port of the outbound listener on --address.
    #[arg(long, default_value_t = DEFAULT_OUTBOUND_PORT)]
    pub(crate) outbound_port: u16,
    /// How the application's traffic reaches the sidecar: NONE, it dials
    /// the explicit listeners; REDIRECT, the pod's traffic is captured
    /// (`bowline capture`) into the virtual listeners on 15002 and 15006.
    /// Istio's `sidecar.istio.io/interceptionMode` values.
    #[arg(long, value_name = "MODE", default_value = "NONE", value_parser = ["NONE", "REDIRECT"])]
    pub(crate) interception_mode: String,
    /// The Envoy binary (default: $BOWLINE_ENVOY, `envoy` on $PATH, or ./.venv).
    #[arg(long, value_name = "PATH")]
    pub(crate) envoy: Option<PathBuf>,
    /// Print the bootstrap JSON to stdout and exit.
    #[arg(long)]
    pub(crate) bootstrap_only: bool,
    /// Where to write the bootstrap (default: a fresh temporary directory, removed on exit).
    #[arg(long, value_name = "DIR")]
    pub(crate) work_dir: Option<PathBuf>,
    /// Envoy's log level.
    #[arg(
        long,
        default_value = "warning",
        value_parser = ["trace", "debug", "info", "warning", "warn", "error", "critical", "off"]
    )]
    pub(crate) log_level: String,
    /// Envoy's log file (default: Envoy logs to this process's stderr).
    #[arg(long, value_name = "FILE")]
    pub(crate) envoy_log: Option<PathBuf>,
    /// The application's HTTP probes the agent makes for the kubelet, as
    /// the injector rewrites them (Istio's ISTIO_KUBE_APP_PROBERS JSON:
    /// `{"/app-health/C/readyz": {"httpGet": {...}}, ...}`).
    #[arg(long, value_name = "JSON", value_parser = crate::probes::parse)]
    pub(crate) app_probers: Option<std::collections::BTreeMap<String, crate::probes::Prober>>,
    /// The port on --address where the agent serves those probes.
    #[arg(long, default_value_t = 15020)]
    pub(crate) status_port: u16,
    #[command(flatten)]
    pub(crate) identity: IdentityArgs,
}

/// The workload certificate: where from, and how it is renewed.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct IdentityArgs {
    /// The CA's signing API (`HOST:PORT`: an IP, or a name such as
    /// `istiod.istio-system.svc`, resolved when the agent starts); with it
    /// the agent gets the workload certificate and serves it to Envoy over
    /// SDS as the secret `default`.
    #[arg(long, value_name = "HOST:PORT", requires_all = ["ca_root", "token_file"])]
    pub(crate) ca_addr: Option<XdsAddress>,
    /// The CA's root certificates (PEM) to trust.
    #[arg(long, value_name = "PATH")]
    pub(crate) ca_root: Option<PathBuf>,
    /// The token to authenticate to the CA with, read again before each request.
    #[arg(long, value_name = "PATH")]
    pub(crate) token_file: Option<PathBuf>,
    /// The name the CA's serving certificate must hold [default: the host of --ca-addr]
    #[arg(long, value_name = "NAME")]
    pub(crate) ca_server_name: Option<String>,
    /// SPIFFE trust domain of the workload's identity.
    #[arg(long, default_value = citadel::DEFAULT_TRUST_DOMAIN)]
    pub(crate) trust_domain: String,
    /// The certificate lifetime to ask for [default: the CA's]
    #[arg(long, value_parser = crate::ca::parse_duration)]
    pub(crate) workload_cert_ttl: Option<std::time::Duration>,
    /// How far into its lifetime the certificate is renewed (0 to 1).
    #[arg(long, default_value_t = DEFAULT_ROTATION_FRACTION, value_parser = parse_fraction)]
    pub(crate) cert_rotation_fraction: f64,
}

impl IdentityArgs {
    /// What the certificate agent needs, when --ca-addr is given; the
    /// identity is `spiffe://TRUST_DOMAIN/ns/NAMESPACE/sa/SERVICE_ACCOUNT`
    /// (service account `default` when the workload names none, as in Kubernetes).
    pub(crate) fn certificate_config(
        &self,
        node: &pilot_agent::NodeMetadata,
    ) -> anyhow::Result<Option<CertificateConfig>> {
        let (Some(ca), Some(ca_root), Some(token_file)) =
            (&self.ca_addr, &self.ca_root, &self.token_file)
        else {
            return Ok(None);
        };
        let ca_addr = resolve(ca).with_context(|| format!("--ca-addr {}:{}", ca.host, ca.port))?;
        let service_account = node.service_account.as_deref().unwrap_or("default");
        let identity =
            citadel::SpiffeId::in_domain(&self.trust_domain, &node.namespace, service_account)
                .context("the workload's identity")?;
        let mut cfg =
            CertificateConfig::new(ca_addr, ca_root.clone(), token_file.clone(), identity);
        if let Some(name) = &self.ca_server_name {
            cfg.ca_server_name = name.clone();
        } else if !ca.is_ip() {
            cfg.ca_server_name = ca.host.clone();
        }
        cfg.ttl = self.workload_cert_ttl;
        cfg.rotation_fraction = self.cert_rotation_fraction;
        Ok(Some(cfg))
    }
}

fn parse_fraction(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(f) if f > 0.0 && f < 1.0 => Ok(f),
        _ => Err(format!("expected a number between 0 and 1, got {text:?}")),
    }
}

/// The SDS socket's file name in the agent's work dir.
pub(crate) const SDS_SOCKET: &str = "sds.sock";

/// The certificate agent and the SDS server Envoy reads it from.
#[derive(Debug)]
pub(crate) struct Identity {
    certs: CertificateAgent,
    sds: SdsServer,
}

impl Identity {
    /// Starts getting certificates and serving them on `dir/file` (or a
    /// short directory if that path is too long for a Unix socket); Envoy
    /// need not wait for the first: it waits for the secret itself.
    pub(crate) async fn start(
        cfg: CertificateConfig,
        dir: &std::path::Path,
        file: &str,
    ) -> anyhow::Result<Identity> {
        let certs = CertificateAgent::start(cfg);
        let sds = match SdsServer::start(dir, file, certs.secrets()).await {
            Ok(sds) => sds,
            Err(error) => {
                certs.stop().await;
                return Err(error.into());
            }
        };
        Ok(Identity { certs, sds })
    }

    pub(crate) fn socket(&self) -> PathBuf {
        self.sds.path().to_path_buf()
    }

    pub(crate) async fn stop(self) {
        self.sds.stop().await;
        self.certs.stop().await;
    }
}

impl ProxyArgs {
    /// The bootstrap inputs these flags describe.
    pub(crate) fn bootstrap_config(&self) -> BootstrapConfig {
        BootstrapConfig {
            node: NodeMetadata {
                namespace: self.namespace.clone(),
                workload: self.workload.clone(),
                address: self.address,
                labels: self.labels.iter().cloned().collect::<BTreeMap<_, _>>(),
                service_account: self.service_account.clone(),
                app_address: self.app,
                app_ports: self.app_ports.iter().copied().collect(),
                outbound_port: self.outbound_port,
                generator: Default::default(),
                sds: false,
                capture: self.interception_mode == "REDIRECT",
            },
            xds_address: self.xds_address(),
            xds_mode: self.xds_mode,
            admin_port: self.admin_port,
            sds_socket: None,
            xds_tls_roots: None,
        }
    }

    /// Whether xDS goes over mutual TLS: with a workload certificate,
    /// unless --xds-plaintext.
    fn xds_tls(&self) -> bool {
        self.identity.ca_addr.is_some() && !self.xds_plaintext
    }

    fn xds_address(&self) -> XdsAddress {
        match (&self.xds_addr, &self.identity.ca_addr) {
            (Some(addr), _) => addr.clone(),
            (None, Some(ca)) if self.xds_tls() => ca.clone(),
            (None, _) => XdsAddress::from(SocketAddr::from(([127, 0, 0, 1], 15010))),
        }
    }
}

/// The first address `addr` resolves to (the system resolver; an IP as is).
fn resolve(addr: &XdsAddress) -> anyhow::Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    (addr.host.as_str(), addr.port)
        .to_socket_addrs()
        .context("cannot resolve it")?
        .next()
        .context("it resolves to no address")
}

/// `--xds-mode`: the node contract's [`Mode`], by the names it reads.
pub(crate) fn xds_mode() -> impl TypedValueParser<Value = Mode> {
    PossibleValuesParser::new(Mode::NAMES).try_map(|name| name.parse::<Mode>())
}

/// Runs `bowline proxy` until Ctrl-C or SIGTERM, or until Envoy keeps failing.
pub(crate) async fn run(args: ProxyArgs) -> anyhow::Result<()> {
    let mut bootstrap = args.bootstrap_config();
    let certificates = args.identity.certificate_config(&bootstrap.node)?;
    // The default work dir is short (/tmp/bowline-proxy-PID), so the SDS
    // socket fits sun_path there; a deep --work-dir gets a short one in /tmp.
    let (work_dir, temporary) = match &args.work_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("bowline-proxy-{}", std::process::id())),
            true,
        ),
    };
    if args.xds_tls()
        && let Some(roots) = &args.identity.ca_root
    {
        // Envoy reads the file from its own working directory.
        let roots =
            std::path::absolute(roots).with_context(|| format!("--ca-root {}", roots.display()))?;
        bootstrap.xds_tls_roots = Some(roots);
    }
    if args.bootstrap_only {
        if certificates.is_some() {
            bootstrap.sds_socket = Some(work_dir.join(SDS_SOCKET));
        }
        let text = serde_json::to_string_pretty(&bootstrap::build(&bootstrap))?;
        println!("{text}");
        return Ok(());
    }
    let envoy = envoy::locate(args.envoy.as_deref())?;
    let status = match args.app_probers.clone().filter(|p| !p.is_empty()) {
        Some(probers) => {
            let listen = SocketAddr::new(args.address, args.status_port);
            Some(crate::probes::serve(listen, args.address, probers).await?)
        }
        None => None,
    };
    let identity = match certificates {
        Some(cfg) => Some(Identity::start(cfg, &work_dir, SDS_SOCKET).await?),
        None => None,
    };
    bootstrap.sds_socket = identity.as_ref().map(Identity::socket);
    let cfg = SidecarConfig {
        bootstrap,
        envoy,
        work_dir: work_dir.clone(),
        log_level: args.log_level,
        log_file: args.envoy_log,
        restart: RestartPolicy::default(),
    };
    let outcome = supervise(cfg).await;
    if let Some(status) = status {
        status.abort();
    }
    if let Some(identity) = identity {
        identity.stop().await;
    }
    if temporary && let Err(err) = tokio::fs::remove_dir_all(&work_dir).await {
        tracing::warn!(dir = %work_dir.display(), %err, "cannot remove work dir");
    }
    outcome
}

async fn supervise(cfg: SidecarConfig) -> anyhow::Result<()> {
    let mut sidecar = Sidecar::start(cfg).await?;
    tracing::info!(node = sidecar.node_id(), admin = %sidecar.admin_addr(), "sidecar running");
    let stopped_early = tokio::select! {
        outcome = sidecar.wait() => Some(outcome),
        () = crate::signal::shutdown() => None,
    };
    match stopped_early {
        Some(outcome) => outcome.context("sidecar stopped"),
        None => {
            tracing::info!("shutting down");
            sidecar.stop().await.context("sidecar stopped")
        }
    }
}

fn parse_label(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

fn parse_app_port(s: &str) -> Result<(u16, SocketAddr), String> {
    let (port, addr) = s
        .split_once('=')
        .ok_or_else(|| format!("expected PORT=HOST:PORT, got {s:?}"))?;
    let port = port
        .parse::<u16>()
        .map_err(|_| format!("{s:?}: invalid port {port:?}"))?;
    let addr = addr
        .parse::<SocketAddr>()
        .map_err(|_| format!("{s:?}: invalid address {addr:?}, expected IP:PORT"))?;
    Ok((port, addr))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser, Debug)]
    struct Cli {
        #[command(flatten)]
        proxy: ProxyArgs,
    }

    #[test]
    fn flags_become_bootstrap_config() {
        let cli = Cli::try_parse_from([
            "proxy",
            "--workload",
            "ratings",
            "--namespace",
            "shop",
            "--address",
            "127.0.1.4",
            "--label",
            "app=ratings",
            "--label",
            "version=v2",
            "--app",
            "127.0.0.1:19000",
            "--app-port",
            "9080=127.0.0.1:19001",
            "--xds-mode",
            "delta",
            "--xds-addr",
            "pilot:15012",
        ])
        .unwrap();
        let cfg = cli.proxy.bootstrap_config();
        assert_eq!(cfg.node.workload, "ratings");
        assert_eq!(cfg.node.namespace, "shop");
        assert_eq!(cfg.node.address, "127.0.1.4".parse::<IpAddr>().unwrap());
        assert_eq!(cfg.node.labels["app"], "ratings");
        assert_eq!(cfg.node.labels["version"], "v2");
        assert_eq!(
            cfg.node.app_address,
            Some("127.0.0.1:19000".parse().unwrap())
        );
        assert_eq!(
            cfg.node.app_ports[&9080],
            "127.0.0.1:19001".parse().unwrap()
        );
        assert_eq!(cfg.xds_mode, Mode::Delta);
        assert_eq!(cfg.xds_address.host, "pilot");
        assert_eq!(cfg.xds_address.port, 15012);
        assert_eq!(cfg.admin_port, 15000);
        assert_eq!(cfg.node.outbound_port, 15001);
        assert_eq!(cli.proxy.log_level, "warning");
    }

    #[test]
    fn defaults() {
        let cli =
            Cli::try_parse_from(["proxy", "--workload", "w", "--address", "127.0.1.1"]).unwrap();
        let cfg = cli.proxy.bootstrap_config();
        assert_eq!(cfg.node.namespace, "default");
        assert_eq!(cfg.xds_mode, Mode::Sotw);
        assert_eq!(cfg.xds_address.to_string(), "127.0.0.1:15010");
        assert!(cfg.node.labels.is_empty() && cfg.node.app_ports.is_empty());
    }

    #[test]
    fn a_ca_by_name_is_resolved_and_its_name_is_what_the_certificate_must_hold() {
        let cli = Cli::try_parse_from([
            "proxy",
            "--workload",
            "w",
            "--address",
            "127.0.1.1",
            "--ca-addr",
            "localhost:15012",
            "--ca-root",
            "/r.pem",
            "--token-file",
            "/t",
        ])
        .unwrap();
        let node = cli.proxy.bootstrap_config().node;
        let cfg = cli
            .proxy
            .identity
            .certificate_config(&node)
            .unwrap()
            .unwrap();
        assert!(cfg.ca_addr.ip().is_loopback(), "{}", cfg.ca_addr);
        assert_eq!(cfg.ca_addr.port(), 15012);
        assert_eq!(cfg.ca_server_name, "localhost");
        // xDS over mutual TLS goes to the CA's name too, for Envoy to resolve.
        assert_eq!(
            cli.proxy.bootstrap_config().xds_address.to_string(),
            "localhost:15012"
        );

        let cli = Cli::try_parse_from([
            "proxy",
            "--workload",
            "w",
            "--address",
            "127.0.1.1",
            "--ca-addr",
            "no-such-host.invalid:15012",
            "--ca-root",
            "/r.pem",
            "--token-file",
            "/t",
        ])
        .unwrap();
        let node = cli.proxy.bootstrap_config().node;
        let error = cli.proxy.identity.certificate_config(&node).unwrap_err();
        assert!(
            format!("{error:#}").contains("--ca-addr no-such-host.invalid:15012"),
            "{error:#}"
        );
    }

    #[test]
    fn ca_flags_name_the_workload_identity() {
        let cli = Cli::try_parse_from([
            "proxy",
            "--workload",
            "w",
            "--namespace",
            "shop",
            "--service-account",
            "web",
            "--address",
            "127.0.1.1",
            "--ca-addr",
            "127.0.0.1:15012",
            "--ca-root",
            "/r.pem",
            "--token-file",
            "/t",
            "--trust-domain",
            "example.org",
            "--cert-rotation-fraction",
            "0.8",
        ])
        .unwrap();
        let node = cli.proxy.bootstrap_config().node;
        let cfg = cli
            .proxy
            .identity
            .certificate_config(&node)
            .unwrap()
            .unwrap();
        assert_eq!(
            cfg.identity.to_string(),
            "spiffe://example.org/ns/shop/sa/web"
        );
        assert_eq!(cfg.ca_server_name, "127.0.0.1");
        assert_eq!(cfg.rotation_fraction, 0.8);
        assert_eq!(cfg.ttl, None);
        assert_eq!(cfg.token_file, PathBuf::from("/t"));

        let cli =
            Cli::try_parse_from(["proxy", "--workload", "w", "--address", "127.0.1.1"]).unwrap();
        let node = cli.proxy.bootstrap_config().node;
        assert!(
            cli.proxy
                .identity
                .certificate_config(&node)
                .unwrap()
                .is_none()
        );

        // No service account: Kubernetes' `default`.
        let cli = Cli::try_parse_from([
            "proxy",
            "--workload",
            "w",
            "--address",
            "127.0.1.1",
            "--ca-addr",
            "127.0.0.1:15012",
            "--ca-root",
            "/r",
            "--token-file",
            "/t",
        ])
        .unwrap();
        let node = cli.proxy.bootstrap_config().node;
        let cfg = cli
            .proxy
            .identity
            .certificate_config(&node)
            .unwrap()
            .unwrap();
        assert_eq!(
            cfg.identity.to_string(),
            "spiffe://cluster.local/ns/default/sa/default"
        );
    }

    #[test]
    fn rejects_malformed_flags() {
        let base = ["proxy", "--workload", "w", "--address", "127.0.1.1"];
        for extra in [
            ["--label", "novalue"],
            ["--label", "=v"],
            ["--app-port", "9080"],
            ["--app-port", "x=127.0.0.1:1"],
            ["--app-port", "9080=localhost:1"],
            ["--xds-addr", "nope"],
            ["--xds-mode", "incremental"],
            ["--log-level", "loud"],
            ["--ca-addr", "127.0.0.1:15012"],
            ["--cert-rotation-fraction", "1.5"],
        ] {
            let argv: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
            assert!(Cli::try_parse_from(&argv).is_err(), "{argv:?}");
        }
        assert!(Cli::try_parse_from(["proxy", "--workload", "w"]).is_err());
    }
}
