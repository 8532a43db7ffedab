//! The CA's flags, shared by `bowline serve` and `bowline demo`, and
//! `bowline token create`.
//!
//! ```text
//! CaArgs ──► citadel::Ca::open (state dir: root, or the plug-in cacerts) ─┐
//!        └─► citadel::Tokens::open (state dir: token key) ────────────────┼─► Signer ──► CaServer (TLS, --ca-addr)
//!            RateLimiter (--ca-rate-limit, 0: none) ──────────────────────┘
//!   beside it: Trust/Watch, fed by the rotation driver (CaServers::trust)
//! --registry kubernetes: tokens another issuer claims ──► KubeReviewer (TokenReview on the API server)
//! ```

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use citadel::signing::Signer;
use citadel::state::StateDir;
use citadel::{Ca, CaConfig, DEFAULT_TRUST_DOMAIN, RateLimiter, Tokens, Trust};
use citadel_server::{CaServer, CaServerConfig, CertificateService, TokenReviewer, TrustService};
use pilot_server::xds::AdsService;
use policy::mesh::MeshConfig;
use tokio::sync::watch;
use tonic::service::Routes;

/// Flags of the CA, on `serve` and `demo`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct CaArgs {
    /// Where the CA keeps its root and token signing key (created mode 0700;
    /// key files 0600).
    #[arg(long, default_value = citadel::state::DEFAULT_STATE_DIR)]
    pub(crate) state_dir: PathBuf,
    /// Address of the CA's signing API (gRPC over TLS, Istio's IstioCertificateService).
    #[arg(long, default_value = citadel_server::server::DEFAULT_CA_ADDR)]
    pub(crate) ca_addr: SocketAddr,
    /// SPIFFE trust domain of workload identities [default: cluster.local]
    #[arg(long)]
    pub(crate) trust_domain: Option<String>,
    /// Lifetime of a workload certificate when the request asks for none.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub(crate) workload_cert_ttl: Duration,
    /// The longest lifetime a request may ask for; longer is refused (INVALID_ARGUMENT).
    #[arg(long, default_value = "90d", value_parser = parse_duration)]
    pub(crate) max_workload_cert_ttl: Duration,
    /// A plug-in CA in Istio's cacerts layout (ca-cert.pem, ca-key.pem,
    /// root-cert.pem, cert-chain.pem) [default: STATE_DIR/cacerts if it
    /// holds ca-cert.pem, else a self-signed root in STATE_DIR]
    #[arg(long, value_name = "DIR")]
    pub(crate) cacerts: Option<PathBuf>,
    /// Certificates one identity may have signed per second (bursts of 5 x
    /// this); 0 turns the limit off.
    #[arg(long, default_value_t = 10.0)]
    pub(crate) ca_rate_limit: f64,
    /// How long an xDS connection lives before the proxy is asked to
    /// reconnect (Istio's 30 minutes), so that proxies spread over the
    /// replicas after a scale-up or a restart; 0s: forever.
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub(crate) xds_max_connection_age: Option<Duration>,
}

pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    citadel::duration::parse(text).map_err(|e| e.to_string())
}

impl CaArgs {
    /// `--trust-domain`, else the mesh config's `trustDomain` (itself
    /// `cluster.local` by default), as the compiler reads it for the
    /// principals of authorization policies.
    fn trust_domain<'a>(&'a self, mesh: &'a MeshConfig) -> &'a str {
        self.trust_domain.as_deref().unwrap_or(&mesh.trust_domain)
    }

    /// The signer of this configuration: the CA (generated on first start),
    /// its tokens and rate limit.
    pub(crate) fn signer(&self, mesh: &MeshConfig) -> anyhow::Result<Signer> {
        anyhow::ensure!(
            self.workload_cert_ttl <= self.max_workload_cert_ttl,
            "--workload-cert-ttl {} is over --max-workload-cert-ttl {}",
            citadel::duration::format(self.workload_cert_ttl),
            citadel::duration::format(self.max_workload_cert_ttl)
        );
        let trust_domain = self.trust_domain(mesh);
        let mut config = CaConfig::new(&self.state_dir, trust_domain);
        config.cacerts = self.cacerts.clone();
        config.workload_cert_ttl = self.workload_cert_ttl;
        config.max_workload_cert_ttl = self.max_workload_cert_ttl;
        let ca = Ca::open(&config).context("the CA")?;
        let tokens = Tokens::open(&StateDir::open(&self.state_dir)?, trust_domain)
            .context("the CA's token key")?;
        let limiter = (self.ca_rate_limit > 0.0).then(|| {
            // At least one in a burst, however low the rate.
            let burst = (self.ca_rate_limit * 5.0)
                .ceil()
                .clamp(1.0, f64::from(u32::MAX));
            RateLimiter::new(self.ca_rate_limit, burst as u32)
        });
        Ok(Signer {
            ca,
            tokens,
            limiter,
        })
    }

    /// Opens the CA and serves its signing API. From the mesh config (a
    /// file with errors gives the defaults, and the control plane reports
    /// them): the trust domain, and the namespace the control plane's
    /// service lives in, for the serving certificate
    /// (`bowline.NAMESPACE.svc`): the mesh's root namespace, `istio-system`
    /// by default, where istiod lives too.
    pub(crate) async fn start(
        &self,
        mesh_config: Option<&Path>,
        ads: AdsService,
        xds_tls_addr: Option<SocketAddr>,
        reviewer: Option<Arc<dyn TokenReviewer>>,
        injection: Option<pilot_inject::Injection>,
    ) -> anyhow::Result<(CaServers, Arc<Signer>)> {
        let mesh = pilot_server::mesh::load(mesh_config).config;
        let signer = Arc::new(self.signer(&mesh)?);
        let mut config = CaServerConfig::new(self.ca_addr, &mesh.root_namespace);
        config.max_connection_age = self
            .xds_max_connection_age
            .filter(|age| !age.is_zero())
            .map(|age| (age, pilot_server::serve::XDS_MAX_CONNECTION_AGE_GRACE));
        let (trust, watched) = watch::channel(signer.ca.trust());
        let certificates = match reviewer {
            Some(reviewer) => CertificateService::new(signer.clone()).with_reviewer(reviewer),
            None => CertificateService::new(signer.clone()),
        };
        let ca_routes = || {
            Routes::from(pilot_server::admin::webhook(injection.clone()))
                .add_service(certificates.clone())
                .add_service(TrustService::new(watched.clone()))
        };
        let servers = match xds_tls_addr.filter(|addr| *addr != self.ca_addr) {
            // xDS beside the CA, as istiod serves both on 15012, and the
            // validating webhook (HTTPS, as Kubernetes calls it).
            None => {
                let routes = ca_routes().add_service(ads);
                CaServers {
                    trust,
                    xds_addr: None,
                    ca: CaServer::start_routes(signer.clone(), &config, routes).await?,
                    xds: None,
                }
            }
            Some(addr) => {
                let xds_config = CaServerConfig {
                    addr,
                    ..config.clone()
                };
                let xds =
                    CaServer::start_routes(signer.clone(), &xds_config, Routes::new(ads)).await?;
                let routes = ca_routes();
                CaServers {
                    trust,
                    xds_addr: Some(xds.addr),
                    ca: CaServer::start_routes(signer.clone(), &config, routes).await?,
                    xds: Some(xds),
                }
            }
        };
        Ok((servers, signer))
    }
}

/// The CA's signing API and xDS over mutual TLS, on one address or two.
#[derive(Debug)]
pub(crate) struct CaServers {
    pub(crate) ca: CaServer,
    /// What `Trust/Watch` streams to agents; the rotation driver keeps it.
    pub(crate) trust: watch::Sender<Trust>,
    xds: Option<CaServer>,
    xds_addr: Option<SocketAddr>,
}

impl CaServers {
    /// Where xDS over mutual TLS is served.
    pub(crate) fn xds_addr(&self) -> SocketAddr {
        self.xds_addr.unwrap_or(self.ca.addr)
    }

    pub(crate) async fn stop(self) {
        // Ends every Trust/Watch stream, so that the server's graceful
        // shutdown does not wait for the agents to hang up.
        drop(self.trust);
        if let Some(xds) = self.xds {
            xds.stop().await;
        }
        self.ca.stop().await;
    }
}

/// `bowline ca`.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum CaCommand {
    /// Put a new root beside the current one; the running control plane
    /// distributes it, signs with it once every proxy has ACKed it, and
    /// drops the old root once the last certificate it signed has expired
    /// (see GET /api/v1/ca). With --force, every workload renews as soon as
    /// the new root signs, instead of within one certificate lifetime.
    RotateRoot(RotateRootArgs),
}

#[derive(clap::Args, Debug)]
pub(crate) struct RotateRootArgs {
    /// The CA's state directory, as given to `bowline serve`.
    #[arg(long, default_value = citadel::state::DEFAULT_STATE_DIR)]
    pub(crate) state_dir: PathBuf,
    /// SPIFFE trust domain: the new root's organisation, as the first
    /// root's [default: cluster.local]
    #[arg(long, default_value = DEFAULT_TRUST_DOMAIN)]
    pub(crate) trust_domain: String,
    /// Every workload renews its certificate as soon as the new root signs
    /// (the agents follow the CA's trust watch); on a rotation already
    /// under way, marks it so.
    #[arg(long)]
    pub(crate) force: bool,
}

pub(crate) fn ca(command: CaCommand) -> anyhow::Result<()> {
    match command {
        CaCommand::RotateRoot(args) => {
            let config = CaConfig::new(&args.state_dir, &args.trust_domain);
            let context = || format!("root rotation in {}", args.state_dir.display());
            let begun = match citadel::rotation::begin(&config, SystemTime::now(), args.force) {
                // A rotation is under way: --force marks it.
                Err(citadel::authority::Error::RotationStep { .. }) if args.force => {
                    let forced = citadel::rotation::force(&config).with_context(context)?;
                    println!(
                        "the rotation under way (signing {}, bundle {}) is forced: every workload \
                         renews as soon as {} signs",
                        forced.signing,
                        forced.bundle.join(", "),
                        forced.bundle.last().map_or("the new root", String::as_str)
                    );
                    return Ok(());
                }
                begun => begun.with_context(context)?,
            };
            let renewal = if args.force {
                "every workload renews at once"
            } else {
                "workloads renew on their schedule"
            };
            println!(
                "{} joins the trust bundle beside {} in {}; the running control plane \
                 distributes it, signs with it once every proxy has ACKed it ({renewal}), and \
                 drops {} once the last certificate it signed has expired (GET /api/v1/ca shows \
                 the step)",
                begun.new_root,
                begun.old_root,
                args.state_dir.display(),
                begun.old_root
            );
            Ok(())
        }
    }
}

/// The admin API's token file in `state_dir`, made at the first start; a
/// new token is shown once, here.
pub(crate) fn admin_token(state_dir: &Path) -> anyhow::Result<PathBuf> {
    let state = StateDir::open(state_dir)?;
    if let Some(token) = citadel::admin_token::ensure(&state)
        .with_context(|| format!("the admin token in {}", state_dir.display()))?
    {
        eprintln!(
            "admin token (shown once; kept in {}): {token}",
            state.file(citadel::admin_token::FILE).display()
        );
    }
    Ok(state.file(citadel::admin_token::FILE))
}

/// `bowline admin-token`.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum AdminTokenCommand {
    /// Replace the admin API's token; the running control plane refuses the
    /// old one from the next request on. Prints the new one.
    Rotate {
        /// The state directory, as given to `bowline serve`.
        #[arg(long, default_value = citadel::state::DEFAULT_STATE_DIR)]
        state_dir: PathBuf,
    },
}

pub(crate) fn admin_token_command(command: AdminTokenCommand) -> anyhow::Result<()> {
    match command {
        AdminTokenCommand::Rotate { state_dir } => {
            let state = StateDir::open(&state_dir)?;
            let token = citadel::admin_token::rotate(&state)
                .with_context(|| format!("the admin token in {}", state_dir.display()))?;
            println!("{token}");
            Ok(())
        }
    }
}

/// `bowline token`.
#[derive(clap::Subcommand, Debug)]
pub(crate) enum TokenCommand {
    /// Print a token a workload authenticates to the CA with (audience bowline-ca).
    Create(TokenCreateArgs),
}

#[derive(clap::Args, Debug)]
pub(crate) struct TokenCreateArgs {
    /// The CA's state directory, which holds the token signing key (created if missing).
    #[arg(long, default_value = citadel::state::DEFAULT_STATE_DIR)]
    pub(crate) state_dir: PathBuf,
    /// Namespace of the workload.
    #[arg(long)]
    pub(crate) namespace: String,
    /// Service account of the workload.
    #[arg(long)]
    pub(crate) service_account: String,
    /// How long the token is valid.
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub(crate) ttl: Duration,
}

pub(crate) fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => {
            println!(
                "{}",
                mint(
                    &args.state_dir,
                    &args.namespace,
                    &args.service_account,
                    args.ttl
                )?
            );
            Ok(())
        }
    }
}

/// A token for `namespace/service_account` signed with `state_dir`'s key.
pub(crate) fn mint(
    state_dir: &Path,
    namespace: &str,
    service_account: &str,
    ttl: Duration,
) -> anyhow::Result<String> {
    // The names are checked here as the CA will check them.
    citadel::SpiffeId::in_domain(DEFAULT_TRUST_DOMAIN, namespace, service_account)?;
    let tokens = Tokens::open(&StateDir::open(state_dir)?, DEFAULT_TRUST_DOMAIN)
        .context("the CA's token key")?;
    Ok(tokens.mint(namespace, service_account, ttl, SystemTime::now())?)
}

/// Service-account tokens reviewed by the cluster's API server, for
/// `--registry kubernetes`.
pub(crate) struct KubeReviewer(pub(crate) discovery_kubernetes::TokenReviews);

impl TokenReviewer for KubeReviewer {
    fn review(
        &self,
        token: String,
    ) -> tonic::codegen::BoxFuture<(String, String), citadel::review::Error> {
        let reviews = self.0.clone();
        Box::pin(async move {
            let answer = reviews
                .create(citadel::review::request(&token))
                .await
                .map_err(citadel::review::Error::Unavailable)?;
            citadel::review::reviewed(&answer)
        })
    }
}
