//! Getting and renewing the workload certificate from the CA.
//!
//! ```text
//! P-256 key (memory only) + CSR for spiffe://TD/ns/NS/sa/SA ─┐
//! token file (re-read each time: tokens rotate) ─────────────┼─► CaClient::create_certificate (TLS, --ca-root)
//!                                                            ▼
//!                          WorkloadSecret ──watch──► SdsServer ──► Envoy
//!   renew at rotation::renewal_time; on failure retry with backoff, the old secret still served
//!
//! CA Trust/Watch (its own TLS stream) ──► latest TrustUpdate ──► rotation::reissue_due ──► renew now
//!   (a forced root rotation; the stream is re-opened with backoff when it drops)
//! ```
//!
//! Neither the key nor the token is ever logged or put in an error.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use citadel::SpiffeId;
use citadel_server::CaClient;
use citadel_server::client::ClientConfig;
use proto::bowline::TrustUpdate;
use rcgen::{CertificateParams, DistinguishedName, KeyPair, SanType};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use pilot_agent::rotation::{self, DEFAULT_ROTATION_FRACTION};
use pilot_agent::secret::{self, WorkloadSecret};

use crate::server::SecretWatch;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("token file {}: cannot read it", path.display())]
    Token {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("token file {}: empty", path.display())]
    EmptyToken { path: PathBuf },
    #[error("CA root {}: cannot read it", path.display())]
    Root {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot build the certificate request")]
    Csr(#[source] rcgen::Error),
    #[error("cannot reach the CA")]
    Connect(#[source] citadel_server::client::Error),
    #[error("the CA refused: {code:?}: {message}")]
    Refused { code: tonic::Code, message: String },
    #[error("the CA's answer")]
    Answer(#[source] secret::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the certificate comes from and for whom.
#[derive(Clone, Debug)]
pub struct CertificateConfig {
    pub ca_addr: SocketAddr,
    /// The name the CA's serving certificate must hold (its IP by default).
    pub ca_server_name: String,
    /// The CA's roots (PEM file) the agent trusts.
    pub ca_root: PathBuf,
    /// The bearer token, read again before each request.
    pub token_file: PathBuf,
    pub identity: SpiffeId,
    /// The lifetime to ask for; `None` takes the CA's default.
    pub ttl: Option<Duration>,
    /// How far into a certificate's lifetime it is renewed (0..=1).
    pub rotation_fraction: f64,
}

impl CertificateConfig {
    pub fn new(
        ca_addr: SocketAddr,
        ca_root: PathBuf,
        token_file: PathBuf,
        identity: SpiffeId,
    ) -> Self {
        CertificateConfig {
            ca_addr,
            ca_server_name: ca_addr.ip().to_string(),
            ca_root,
            token_file,
            identity,
            ttl: None,
            rotation_fraction: DEFAULT_ROTATION_FRACTION,
        }
    }
}

/// A client of the CA, trusting the roots of `--ca-root`.
async fn connect(cfg: &CertificateConfig) -> Result<CaClient> {
    let roots_pem = std::fs::read_to_string(&cfg.ca_root).map_err(|source| Error::Root {
        path: cfg.ca_root.clone(),
        source,
    })?;
    CaClient::connect(
        cfg.ca_addr,
        &ClientConfig {
            roots_pem,
            server_name: cfg.ca_server_name.clone(),
            identity: None,
        },
    )
    .await
    .map_err(Error::Connect)
}

/// A fresh key and a certificate for it: one round trip to the CA.
pub async fn issue(cfg: &CertificateConfig) -> Result<WorkloadSecret> {
    let token = read_token(&cfg.token_file)?;
    let (csr_pem, key_pem) = csr(&cfg.identity)?;
    let mut client = connect(cfg).await?;
    let seconds = cfg
        .ttl
        .map_or(0, |ttl| i64::try_from(ttl.as_secs()).unwrap_or(i64::MAX));
    let chain = client
        .create_certificate(Some(&token), csr_pem, seconds)
        .await
        .map_err(refused)?;
    WorkloadSecret::from_chain(&chain, key_pem).map_err(Error::Answer)
}

/// A CSR for `identity` (its URI SAN only) and its new P-256 key, PEM.
pub fn csr(identity: &SpiffeId) -> Result<(String, String)> {
    let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).map_err(Error::Csr)?;
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    let uri = identity.to_string().try_into().map_err(Error::Csr)?;
    params.subject_alt_names = vec![SanType::URI(uri)];
    let request = params.serialize_request(&key).map_err(Error::Csr)?;
    let pem = request.pem().map_err(Error::Csr)?;
    Ok((pem, key.serialize_pem()))
}

fn read_token(path: &Path) -> Result<String> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Token {
        path: path.to_path_buf(),
        source,
    })?;
    let token = text.trim();
    if token.is_empty() {
        return Err(Error::EmptyToken {
            path: path.to_path_buf(),
        });
    }
    Ok(token.to_string())
}

/// Keeps a workload certificate: gets one, renews it on schedule, publishes
/// each to the SDS server.
#[derive(Debug)]
pub struct CertificateAgent {
    secrets: SecretWatch,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl CertificateAgent {
    /// Starts getting certificates at once; [`CertificateAgent::secrets`]
    /// holds `None` until the first arrives.
    pub fn start(cfg: CertificateConfig) -> CertificateAgent {
        let (tx, secrets) = watch::channel(None);
        let (shutdown, stop) = watch::channel(false);
        let (trust_tx, trust) = watch::channel(None);
        let follow = tokio::spawn(follow_trust(cfg.clone(), trust_tx, stop.clone()));
        let task = tokio::spawn(async move {
            keep(cfg, tx, trust, stop).await;
            follow.abort();
        });
        CertificateAgent {
            secrets,
            shutdown,
            task,
        }
    }

    pub fn secrets(&self) -> SecretWatch {
        self.secrets.clone()
    }

    /// Waits for the first certificate (or the agent's end).
    pub async fn first(&self) -> Option<Arc<WorkloadSecret>> {
        let mut secrets = self.secrets.clone();
        let got = secrets.wait_for(Option::is_some).await.ok()?;
        got.clone()
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

async fn keep(
    cfg: CertificateConfig,
    tx: watch::Sender<Option<Arc<WorkloadSecret>>>,
    mut trust: watch::Receiver<Option<TrustUpdate>>,
    mut stop: watch::Receiver<bool>,
) {
    let identity = cfg.identity.to_string();
    let mut failures = 0u32;
    loop {
        let wait = match issue(&cfg).await {
            Ok(secret) => {
                failures = 0;
                // The CA backdates not_before for clock skew; the lifetime
                // counts from when the certificate arrived, or a short TTL
                // would be due for renewal on arrival.
                let now = SystemTime::now();
                let mut delay = rotation::renewal_delay(
                    secret.not_before.max(now),
                    secret.not_after,
                    cfg.rotation_fraction,
                    now,
                );
                // Signed while the CA switched roots: again, shortly.
                if reissue_due(&trust.borrow_and_update(), &secret) {
                    delay = delay.min(rotation::FIRST_RETRY);
                }
                info!(
                    %identity,
                    version = %secret.version,
                    valid_for_s = secret.not_after.duration_since(SystemTime::now()).unwrap_or_default().as_secs(),
                    renew_in_s = delay.as_secs(),
                    "workload certificate issued"
                );
                tx.send_replace(Some(Arc::new(secret)));
                delay
            }
            Err(error) => {
                failures += 1;
                let delay = rotation::retry_delay(failures);
                let held = tx.borrow().as_ref().map(|s| s.not_after);
                let expired = held.is_some_and(|t| t <= SystemTime::now());
                warn!(
                    %identity,
                    error = %error_chain(&error),
                    failures,
                    retry_in_ms = delay.as_millis() as u64,
                    serving_previous = held.is_some(),
                    expired,
                    "cannot get the workload certificate"
                );
                delay
            }
        };
        let deadline = Instant::now() + wait;
        loop {
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                _ = stop.wait_for(|s| *s) => return,
                changed = trust.changed() => {
                    // The watch's sender lives until the agent stops.
                    if changed.is_err() {
                        return;
                    }
                    let held = tx.borrow().clone();
                    if held.is_some_and(|held| reissue_due(&trust.borrow_and_update(), &held)) {
                        info!(%identity, "the CA's new root signs and asks every workload to renew (forced root rotation)");
                        break;
                    }
                }
            }
        }
    }
}

/// Whether `held` must be renewed now for the latest trust update.
fn reissue_due(trust: &Option<TrustUpdate>, held: &WorkloadSecret) -> bool {
    trust
        .as_ref()
        .is_some_and(|t| rotation::reissue_due(t.reissue, &t.signing_root_pem, &held.root_pem))
}

/// Follows the CA's `Trust/Watch` into `latest`, re-opening the stream with
/// backoff when it drops. A CA that does not serve it (an older one) is
/// left alone: renewals keep their schedule. `latest` lives until `stop`.
async fn follow_trust(
    cfg: CertificateConfig,
    latest: watch::Sender<Option<TrustUpdate>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    loop {
        let outcome = async {
            let mut client = connect(&cfg).await?;
            let mut updates = client.watch_trust().await.map_err(refused)?;
            while let Some(update) = updates.message().await.map_err(refused)? {
                failures = 0;
                latest.send_if_modified(|held| {
                    let changed = held.as_ref() != Some(&update);
                    *held = Some(update);
                    changed
                });
            }
            Ok::<(), Error>(())
        };
        let outcome = tokio::select! {
            outcome = outcome => outcome,
            _ = stop.wait_for(|s| *s) => return,
        };
        if let Err(Error::Refused {
            code: tonic::Code::Unimplemented,
            ..
        }) = outcome
        {
            info!("the CA serves no trust watch; certificates renew on schedule only");
            let _ = stop.wait_for(|s| *s).await;
            return;
        }
        failures += 1;
        let delay = rotation::retry_delay(failures);
        match &outcome {
            Err(error) => {
                debug!(error = %error_chain(error), retry_in_ms = delay.as_millis() as u64, "the CA's trust watch dropped")
            }
            Ok(()) => debug!(
                retry_in_ms = delay.as_millis() as u64,
                "the CA ended its trust watch"
            ),
        }
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            _ = stop.wait_for(|s| *s) => return,
        }
    }
}

fn refused(status: tonic::Status) -> Error {
    Error::Refused {
        code: status.code(),
        message: status.message().to_string(),
    }
}

fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csr_asks_for_the_workload_identity_only() {
        let id = SpiffeId::new("shop", "web");
        let (csr_pem, key_pem) = csr(&id).unwrap();
        let verified = citadel::csr::verify(&csr_pem).unwrap();
        assert_eq!(verified.uris, ["spiffe://cluster.local/ns/shop/sa/web"]);
        assert_eq!(verified.other_names, 0);
        assert!(key_pem.contains("PRIVATE KEY"));
        let (_, other_key) = csr(&id).unwrap();
        assert_ne!(key_pem, other_key, "a fresh key each time");
    }

    #[test]
    fn the_token_is_read_trimmed_and_an_empty_one_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "abc.def.ghi\n").unwrap();
        assert_eq!(read_token(&path).unwrap(), "abc.def.ghi");
        std::fs::write(&path, " \n").unwrap();
        assert!(matches!(read_token(&path), Err(Error::EmptyToken { .. })));
        assert!(matches!(
            read_token(&dir.path().join("missing")),
            Err(Error::Token { .. })
        ));
    }
}
