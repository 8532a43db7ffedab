//! The signing authority: its key and certificate, the chain up to the root,
//! the trust bundle, and issuing.
//!
//! ```text
//! <cacerts>/ca-cert.pem present? ── yes ─► plug-in CA: ca-cert.pem + ca-key.pem sign,
//!     │                                     chain = cert-chain.pem (else ca-cert.pem), bundle = root-cert.pem
//!     no
//!     ▼
//! <state-dir>/root-key.pem, root-cert.pem ─► self-signed root (generated on first start, P-256, 10 years)
//! ```
//!
//! A workload certificate holds exactly the caller's SPIFFE id as its URI
//! SAN (critical, the subject being empty), the serverAuth and clientAuth
//! extended key usages, `CA:FALSE`, the CSR's public key and nothing else
//! of the CSR.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber, SubjectPublicKeyInfo,
};
use ring::rand::SecureRandom;
use rustls_pki_types::CertificateDer;
use time::OffsetDateTime;

use crate::csr::{self, VerifiedCsr};
use crate::rotation::{self, CaStatus, RootStatus, Rotation, Step};
use crate::state::{self, KEY_MODE, PUBLIC_MODE, StateDir};
use crate::{Refusal, SpiffeId, pem};

/// Istio's default workload certificate lifetime.
pub const DEFAULT_WORKLOAD_CERT_TTL: Duration = Duration::from_secs(24 * 3600);
/// Istio's default maximum (`MAX_WORKLOAD_CERT_TTL`, 90 days).
pub const DEFAULT_MAX_WORKLOAD_CERT_TTL: Duration = Duration::from_secs(90 * 24 * 3600);
/// A generated root's lifetime (Istio's self-signed root: 10 years).
const ROOT_TTL: Duration = Duration::from_secs(10 * 365 * 24 * 3600);
/// The CA's own serving certificate's lifetime; a restart issues a new one.
const SERVING_TTL: Duration = Duration::from_secs(365 * 24 * 3600);
/// Certificates start this long before they are issued, for clock skew.
const BACKDATE: Duration = Duration::from_secs(60);

pub const ROOT_CERT: &str = "root-cert.pem";
pub const ROOT_KEY: &str = "root-key.pem";
/// The plug-in CA's folder in the state directory, unless one is given.
pub const CACERTS_DIR: &str = "cacerts";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    State(#[from] state::Error),
    #[error(transparent)]
    Pem(#[from] pem::Error),
    #[error(transparent)]
    Csr(#[from] csr::Error),
    #[error("{path}: cannot read")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}: missing")]
    Missing(PathBuf),
    #[error("{0}: holds a PKCS#1 or SEC1 key; convert it with `openssl pkcs8 -topk8 -nocrypt`")]
    KeyFormat(PathBuf),
    #[error("{0}: not a PKCS#8 private key of a supported algorithm (ECDSA P-256/P-384, RSA)")]
    BadKey(PathBuf),
    #[error("{cert}: its public key is not the key in {key}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("{0}: not a CA certificate (basicConstraints CA:TRUE)")]
    NotCa(PathBuf),
    #[error("{0}: cannot parse the certificate")]
    BadCertificate(PathBuf),
    #[error("{chain}: does not start with {cert}")]
    ChainStart { chain: PathBuf, cert: PathBuf },
    #[error("root: cannot generate")]
    Generate,
    #[error("workload certificate for {id}: cannot sign")]
    Sign { id: String },
    #[error("validity {asked}s is over the maximum workload certificate TTL {max}s")]
    TtlOverMax { asked: u64, max: u64 },
    #[error("the CA certificate has expired")]
    CaExpired,
    #[error("{0}: cannot parse")]
    BadRotation(PathBuf),
    #[error("{0}: cannot write")]
    BadIssued(PathBuf),
    #[error("root rotation: the step is {step:?}, not {want:?}")]
    RotationStep { want: Step, step: Step },
    #[error("root rotation: a plug-in CA ({0}) rotates by replacing its cacerts files")]
    PlugInRotation(PathBuf),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn refusal(&self) -> Refusal {
        match self {
            Error::Csr(csr::Error::OtherIdentity { .. } | csr::Error::OtherNames(_)) => {
                Refusal::PermissionDenied
            }
            Error::Csr(_) | Error::TtlOverMax { .. } => Refusal::InvalidArgument,
            _ => Refusal::Internal,
        }
    }
}

/// How the CA is set up.
#[derive(Clone, Debug)]
pub struct CaConfig {
    pub trust_domain: String,
    pub state_dir: PathBuf,
    /// A plug-in CA in Istio's `cacerts` layout; `None`: `<state-dir>/cacerts`
    /// when it holds `ca-cert.pem`, else the self-signed root.
    pub cacerts: Option<PathBuf>,
    /// Lifetime of a workload certificate when the caller asks for none.
    pub workload_cert_ttl: Duration,
    /// The longest lifetime a caller may ask for.
    pub max_workload_cert_ttl: Duration,
}

impl CaConfig {
    pub fn new(state_dir: impl Into<PathBuf>, trust_domain: impl Into<String>) -> Self {
        CaConfig {
            trust_domain: trust_domain.into(),
            state_dir: state_dir.into(),
            cacerts: None,
            workload_cert_ttl: DEFAULT_WORKLOAD_CERT_TTL,
            max_workload_cert_ttl: DEFAULT_MAX_WORKLOAD_CERT_TTL,
        }
    }
}

/// Where the signing key came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Origin {
    /// Generated by Bowline, kept in the state directory.
    SelfSigned,
    /// Istio's `cacerts` files in this directory.
    PlugIn(PathBuf),
}

/// A certificate signing request from an authenticated caller.
#[derive(Clone, Copy, Debug)]
pub struct IssueRequest<'a> {
    /// Who the caller proved to be: the identity the certificate gets.
    pub caller: &'a SpiffeId,
    pub csr_pem: &'a str,
    /// The lifetime asked for; `None` for the default.
    pub ttl: Option<Duration>,
}

/// The trust an agent follows: see [`Ca::trust`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Trust {
    /// Every root, PEM.
    pub bundle_pem: Arc<str>,
    /// The root workload chains end at now, PEM, as in the chains.
    pub signing_root_pem: String,
    /// A forced rotation's new key signs: a workload whose chain ends at
    /// another root renews now.
    pub reissue: bool,
}

/// A certificate and its key for a TLS server, PEM (the chain ends with the root).
#[derive(Clone)]
pub struct ServingCert {
    pub chain_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ServingCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServingCert")
            .field("chain_pem", &self.chain_pem)
            .field("key_pem", &"<redacted>")
            .finish()
    }
}

/// The certificate authority.
///
/// What signs can change while it serves (root rotation, see
/// [`crate::rotation`]): the keys sit behind a lock that issuing holds only
/// to clone an `Arc`, and [`Ca::reload`] swaps them whole.
pub struct Ca {
    trust_domain: String,
    workload_cert_ttl: Duration,
    max_workload_cert_ttl: Duration,
    origin: Origin,
    state: StateDir,
    keys: RwLock<Arc<Keys>>,
    issued: Mutex<Issued>,
    /// Signing requests received (any outcome), and certificates issued,
    /// since start: `/api/v1/ca` and `/metrics`.
    requested: AtomicU64,
    issued_count: AtomicU64,
}

/// The signing key and what goes with it, as one state of the rotation.
struct Keys {
    /// The root (by id) whose key signs; `None` for a plug-in CA.
    signing: Option<String>,
    issuer: Issuer<'static, KeyPair>,
    issuer_not_after: OffsetDateTime,
    /// PEM of every certificate after a workload's leaf: intermediates (a
    /// cross-signature while a rotation is under way), the root last.
    chain: Vec<String>,
    /// The same after the CA's own serving certificate: the cross-signature
    /// of the signing root stays in it, so an agent whose `--ca-root` still
    /// holds only an older root keeps reaching the CA.
    serving_chain: Vec<String>,
    roots: Vec<CertificateDer<'static>>,
    /// The roots' ids, in the bundle's order (empty for a plug-in CA).
    root_ids: Vec<String>,
    bundle_pem: Arc<str>,
    rotation: Rotation,
    /// A hash of a plug-in CA's files as read, to tell when they change.
    plug_in_files: Option<Vec<u8>>,
}

/// What the CA has signed, for the rotation and its status.
#[derive(Debug, Default)]
struct Issued {
    /// Per identity: the root whose key signed its newest certificate, and
    /// when that certificate expires. Kept in [`ISSUED_FILE`] by
    /// [`Ca::save_issued`], so the counts survive a restart.
    latest: HashMap<String, (String, SystemTime)>,
    /// `latest` changed since it was last saved.
    unsaved: bool,
    /// Per root: a time no certificate its key signed is valid past, as
    /// written to `<id>-signed-until` (and so kept across restarts).
    signed_until: HashMap<String, u64>,
}

impl std::fmt::Debug for Ca {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ca")
            .field("trust_domain", &self.trust_domain)
            .field("origin", &self.origin)
            .field("roots", &self.keys().roots.len())
            .finish_non_exhaustive()
    }
}

impl Ca {
    /// The plug-in CA if there is one, else the state directory's root,
    /// generated if it does not exist yet, in the step of a root rotation
    /// that `rotation.json` records.
    pub fn open(config: &CaConfig) -> Result<Ca> {
        let state = StateDir::open(&config.state_dir)?;
        let cacerts = config
            .cacerts
            .clone()
            .unwrap_or_else(|| state.file(CACERTS_DIR));
        let explicit = config.cacerts.is_some();
        let (keys, origin) = if explicit || cacerts.join("ca-cert.pem").exists() {
            (Keys::plug_in(&cacerts)?, Origin::PlugIn(cacerts))
        } else {
            self_signed_root(&state, &config.trust_domain)?;
            let rotation = rotation::read(&state)?;
            (Keys::load(&state, rotation)?, Origin::SelfSigned)
        };
        // The counts are for the status only: a file that does not parse
        // (cut short by a crash) counts afresh, and the next save replaces it.
        let mut issued = Issued {
            latest: read_issued(&state).unwrap_or_default(),
            ..Issued::default()
        };
        for id in &keys.root_ids {
            if let Some(until) = rotation::read_signed_until(&state, id)? {
                issued.signed_until.insert(id.clone(), until);
            }
        }
        Ok(Ca {
            trust_domain: config.trust_domain.clone(),
            workload_cert_ttl: config.workload_cert_ttl,
            max_workload_cert_ttl: config.max_workload_cert_ttl,
            origin,
            state,
            keys: RwLock::new(Arc::new(keys)),
            issued: Mutex::new(issued),
            requested: AtomicU64::new(0),
            issued_count: AtomicU64::new(0),
        })
    }

    fn keys(&self) -> Arc<Keys> {
        match self.keys.read() {
            Ok(keys) => keys.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn issued(&self) -> std::sync::MutexGuard<'_, Issued> {
        match self.issued.lock() {
            Ok(issued) => issued,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Reads `rotation.json` again (`bowline ca rotate-root` writes it from
    /// another process) and, when it records another step, signs as that
    /// step says from now on. For a plug-in CA, reads its `cacerts` files
    /// again and, when they changed, signs with what they hold now (as
    /// istiod reloads plug-in certificates); files that do not make a CA
    /// (a half-replaced set) are an error, and the CA keeps signing as it
    /// did. Returns whether anything changed.
    pub fn reload(&self) -> Result<bool> {
        if let Origin::PlugIn(dir) = &self.origin {
            let files = PlugIn::files(dir);
            if self.keys().plug_in_files.as_deref() == Some(files.as_slice()) {
                return Ok(false);
            }
            let keys = Arc::new(Keys::plug_in(dir)?);
            match self.keys.write() {
                Ok(mut current) => *current = keys,
                Err(poisoned) => *poisoned.into_inner() = keys,
            }
            return Ok(true);
        }
        let rotation = rotation::read(&self.state)?;
        if rotation == self.keys().rotation {
            return Ok(false);
        }
        self.install(rotation)?;
        Ok(true)
    }

    fn install(&self, rotation: Rotation) -> Result<()> {
        let keys = Arc::new(Keys::load(&self.state, rotation)?);
        {
            let mut issued = self.issued();
            for id in &keys.root_ids {
                if !issued.signed_until.contains_key(id)
                    && let Some(until) = rotation::read_signed_until(&self.state, id)?
                {
                    issued.signed_until.insert(id.clone(), until);
                }
            }
        }
        match self.keys.write() {
            Ok(mut current) => *current = keys,
            Err(poisoned) => *poisoned.into_inner() = keys,
        }
        Ok(())
    }

    /// Counts a signing request, whatever becomes of it.
    pub fn count_request(&self) {
        self.requested.fetch_add(1, Ordering::Relaxed);
    }

    /// The rotation's state: which root signs, which are in the bundle.
    pub fn rotation(&self) -> Rotation {
        self.keys().rotation.clone()
    }

    /// Step (2) of a rotation: the new root's key signs from now on, with
    /// the old root's cross-signature of it in every chain. Records until
    /// when the old key's certificates stay valid: the old root leaves the
    /// bundle only after that ([`Ca::retire_old_root`]).
    pub fn sign_with_new_root(&self) -> Result<Rotation> {
        let current = self.rotation();
        let (Step::Distributing, Some(new)) = (current.step, current.bundle.last()) else {
            return Err(Error::RotationStep {
                want: Step::Distributing,
                step: current.step,
            });
        };
        let old = current.signing.clone();
        // The lock is held while the step is written, so no certificate of
        // the old key is issued after its mark was read.
        let next = {
            let issued = self.issued();
            // The mark on file too: with replicas, it holds the latest of
            // every replica's certificates (they share the state directory's
            // files through the cluster).
            let on_file = rotation::read_signed_until(&self.state, &old)?.unwrap_or(0);
            let until = issued
                .signed_until
                .get(&old)
                .copied()
                .unwrap_or(0)
                .max(on_file);
            let next = Rotation {
                step: Step::Reissuing,
                signing: new.clone(),
                bundle: current.bundle.clone(),
                retiring: Some(old),
                old_signed_until: Some(until),
                force: current.force,
            };
            let keys = Arc::new(Keys::load(&self.state, next.clone())?);
            rotation::write(&self.state, &next)?;
            match self.keys.write() {
                Ok(mut k) => *k = keys,
                Err(poisoned) => *poisoned.into_inner() = keys,
            }
            next
        };
        Ok(next)
    }

    /// Step (4): once no certificate the old root's key signed is valid any
    /// more (`now` past `old_signed_until`), the old root leaves the bundle
    /// and its key is deleted. `Ok(None)` while that time has not come.
    pub fn retire_old_root(&self, now: SystemTime) -> Result<Option<Rotation>> {
        let current = self.rotation();
        let (Step::Reissuing, Some(old), Some(until)) = (
            current.step,
            current.retiring.clone(),
            current.old_signed_until,
        ) else {
            return Err(Error::RotationStep {
                want: Step::Reissuing,
                step: current.step,
            });
        };
        if unix(now) < until {
            return Ok(None);
        }
        let next = Rotation {
            step: Step::Idle,
            signing: current.signing.clone(),
            bundle: current.bundle.into_iter().filter(|id| *id != old).collect(),
            retiring: None,
            old_signed_until: None,
            force: false,
        };
        rotation::write(&self.state, &next)?;
        self.install(next.clone())?;
        self.state.remove(&rotation::key_file(&old))?;
        rotation::remove_force(&self.state, &next.signing)?;
        Ok(Some(next))
    }

    /// The roots, what they signed, and the rotation's step, at `now`.
    pub fn status(&self, now: SystemTime) -> CaStatus {
        let keys = self.keys();
        let issued = self.issued();
        let roots = keys
            .roots
            .iter()
            .enumerate()
            .map(|(i, der)| {
                let id = keys.root_ids.get(i).cloned();
                let workloads = id.as_ref().map_or(0, |id| {
                    issued
                        .latest
                        .values()
                        .filter(|(root, expiry)| root == id && *expiry > now)
                        .count()
                });
                RootStatus::of(
                    der,
                    id.clone(),
                    id.is_some() && id == keys.signing,
                    workloads,
                )
            })
            .collect();
        CaStatus {
            trust_domain: self.trust_domain.clone(),
            origin: match &self.origin {
                Origin::SelfSigned => "self-signed".to_string(),
                Origin::PlugIn(dir) => format!("plug-in {}", dir.display()),
            },
            roots,
            rotation: keys.rotation.clone(),
            certificates: rotation::CertificateCounts {
                requested: self.requested.load(Ordering::Relaxed),
                issued: self.issued_count.load(Ordering::Relaxed),
            },
        }
    }

    pub fn trust_domain(&self) -> &str {
        &self.trust_domain
    }

    pub fn origin(&self) -> &Origin {
        &self.origin
    }

    pub fn workload_cert_ttl(&self) -> Duration {
        self.workload_cert_ttl
    }

    pub fn max_workload_cert_ttl(&self) -> Duration {
        self.max_workload_cert_ttl
    }

    /// The roots workloads trust, DER.
    pub fn roots(&self) -> Vec<CertificateDer<'static>> {
        self.keys().roots.clone()
    }

    /// The trust bundle: every root, PEM, one after another.
    pub fn trust_bundle_pem(&self) -> Arc<str> {
        self.keys().bundle_pem.clone()
    }

    /// What agents follow (`bowline.ca.v1.Trust/Watch`): the bundle, the
    /// root that signs now, and whether every certificate another root
    /// signed is to be renewed at once.
    pub fn trust(&self) -> Trust {
        let keys = self.keys();
        Trust {
            bundle_pem: keys.bundle_pem.clone(),
            signing_root_pem: keys.chain.last().cloned().unwrap_or_default(),
            reissue: keys.rotation.reissue_now(),
        }
    }

    /// Signs a verified CSR for its caller: the chain, leaf first, root last.
    pub fn issue(&self, request: &IssueRequest<'_>, now: SystemTime) -> Result<Vec<String>> {
        let ttl = self.ttl(request.ttl)?;
        let csr = csr::verify(request.csr_pem)?;
        csr.check_identity(request.caller)?;
        let chain = self.sign(&csr, request.caller, ttl, now)?;
        self.issued_count.fetch_add(1, Ordering::Relaxed);
        Ok(chain)
    }

    /// The lifetime a request gets: the default for none, refused over the maximum.
    pub fn ttl(&self, asked: Option<Duration>) -> Result<Duration> {
        match asked {
            None => Ok(self.workload_cert_ttl),
            Some(d) if d.is_zero() => Ok(self.workload_cert_ttl),
            Some(d) if d > self.max_workload_cert_ttl => Err(Error::TtlOverMax {
                asked: d.as_secs(),
                max: self.max_workload_cert_ttl.as_secs(),
            }),
            Some(d) => Ok(d),
        }
    }

    fn sign(
        &self,
        csr: &VerifiedCsr,
        id: &SpiffeId,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<Vec<String>> {
        let sign_error = || Error::Sign { id: id.to_string() };
        let public_key = SubjectPublicKeyInfo::from_der(&csr.public_key)
            .map_err(|_| csr::Error::UnsupportedKey)?;
        let uri: rcgen::string::Ia5String = id.to_string().try_into().map_err(|_| sign_error())?;
        // Signed again if a rotation switched keys meanwhile: the old key's
        // mark was then read without this certificate (see `record`).
        loop {
            let keys = self.keys();
            let mut params = leaf_params(&keys, now, ttl)?;
            let not_after = SystemTime::from(params.not_after);
            params.subject_alt_names = vec![SanType::URI(uri.clone())];
            params.key_usages = vec![
                KeyUsagePurpose::DigitalSignature,
                KeyUsagePurpose::KeyEncipherment,
            ];
            params.extended_key_usages = vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ];
            let leaf = params
                .signed_by(&public_key, &keys.issuer)
                .map_err(|_| sign_error())?;
            if let Some(root) = &keys.signing
                && !self.record(id, root, not_after, ttl)?
            {
                continue;
            }
            let mut chain = Vec::with_capacity(1 + keys.chain.len());
            chain.push(leaf.pem());
            chain.extend(keys.chain.iter().cloned());
            return Ok(chain);
        }
    }

    /// Notes that `root`'s key signed a certificate for `id` valid until
    /// `not_after`; `false` (nothing noted) when `root` no longer signs, so
    /// the certificate must not go out. The root's mark on disk is moved on
    /// before the certificate is handed out, with a margin (a quarter of
    /// the lifetime, at most five minutes) so that under steady issuing it
    /// is written about once per margin, not per certificate.
    fn record(
        &self,
        id: &SpiffeId,
        root: &str,
        not_after: SystemTime,
        ttl: Duration,
    ) -> Result<bool> {
        let mut issued = self.issued();
        // Under the same lock as `sign_with_new_root` switches keys.
        if self.keys().signing.as_deref() != Some(root) {
            return Ok(false);
        }
        let expiry = unix(not_after);
        let mark = issued.signed_until.get(root).copied().unwrap_or(0);
        if expiry > mark {
            let margin = (ttl.as_secs() / 4).clamp(1, 300);
            let next = expiry + margin;
            rotation::write_signed_until(&self.state, root, next)?;
            issued.signed_until.insert(root.to_string(), next);
        }
        issued
            .latest
            .insert(id.to_string(), (root.to_string(), not_after));
        issued.unsaved = true;
        Ok(true)
    }

    /// Writes which root signed each identity's newest certificate still
    /// valid at `now` to [`ISSUED_FILE`], if that changed since the last
    /// save; the control plane calls it once a second, so issuing never
    /// waits for the disk. Returns whether it wrote.
    pub fn save_issued(&self, now: SystemTime) -> Result<bool> {
        let entries: std::collections::BTreeMap<String, IssuedEntry> = {
            let mut issued = self.issued();
            if !issued.unsaved {
                return Ok(false);
            }
            issued.unsaved = false;
            issued.latest.retain(|_, (_, expiry)| *expiry > now);
            issued
                .latest
                .iter()
                .map(|(id, (root, expiry))| {
                    let entry = IssuedEntry {
                        root: root.clone(),
                        not_after: unix(*expiry),
                    };
                    (id.clone(), entry)
                })
                .collect()
        };
        let mut text = serde_json::to_string_pretty(&entries)
            .map_err(|_| Error::BadIssued(self.state.file(ISSUED_FILE)))?;
        text.push('\n');
        self.state.replace(ISSUED_FILE, &text, PUBLIC_MODE)?;
        Ok(true)
    }

    /// A certificate and a fresh key for the CA's own TLS server, with the
    /// listening IPs and DNS names as SANs.
    pub fn serving_cert(
        &self,
        ips: &[IpAddr],
        dns_names: &[String],
        now: SystemTime,
    ) -> Result<ServingCert> {
        let sign_error = || Error::Sign {
            id: "the CA's serving certificate".to_string(),
        };
        let key = KeyPair::generate().map_err(|_| Error::Generate)?;
        let keys = self.keys();
        let mut params = leaf_params(&keys, now, SERVING_TTL)?;
        params.distinguished_name.push(
            DnType::CommonName,
            dns_names.first().map_or("bowline", String::as_str),
        );
        let mut sans: Vec<SanType> = ips.iter().map(|ip| SanType::IpAddress(*ip)).collect();
        for name in dns_names {
            sans.push(SanType::DnsName(
                name.clone().try_into().map_err(|_| sign_error())?,
            ));
        }
        params.subject_alt_names = sans;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &keys.issuer)
            .map_err(|_| sign_error())?;
        let mut chain_pem = cert.pem();
        for c in &keys.serving_chain {
            chain_pem.push_str(c);
        }
        Ok(ServingCert {
            chain_pem,
            key_pem: key.serialize_pem(),
        })
    }
}

/// Common fields of what the CA issues: no subject, validity from a
/// minute ago for `ttl` (never past the CA's own), a random serial.
fn leaf_params(keys: &Keys, now: SystemTime, ttl: Duration) -> Result<CertificateParams> {
    let now = OffsetDateTime::from(now);
    if now >= keys.issuer_not_after {
        return Err(Error::CaExpired);
    }
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.not_before = now - BACKDATE;
    params.not_after = (now + ttl).min(keys.issuer_not_after);
    params.serial_number = Some(serial()?);
    params.is_ca = IsCa::ExplicitNoCa;
    params.use_authority_key_identifier_extension = true;
    Ok(params)
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn bundle_pem(roots: &[CertificateDer<'_>]) -> Arc<str> {
    let pem: String = roots
        .iter()
        .map(|r| pem::encode("CERTIFICATE", r.as_ref()))
        .collect();
    Arc::from(pem)
}

impl Keys {
    /// The self-signed roots of the state directory, in `rotation`'s step.
    fn load(state: &StateDir, rotation: Rotation) -> Result<Keys> {
        let signing = &rotation.signing;
        let cert_path = state.file(&rotation::cert_file(signing));
        let key_path = state.file(&rotation::key_file(signing));
        let cert = read_cert(state, &rotation::cert_file(signing))?;
        let key_text = state
            .read(&rotation::key_file(signing), KEY_MODE)?
            .ok_or_else(|| Error::Missing(key_path.clone()))?;
        let key = read_key(&key_path, &key_text)?;
        let not_after = check_ca(&cert_path, &cert, &key_path, &key)?;
        let issuer = Issuer::from_ca_cert_der(&cert, key)
            .map_err(|_| Error::BadCertificate(cert_path.clone()))?;
        let mut roots = Vec::with_capacity(rotation.bundle.len());
        for id in &rotation.bundle {
            roots.push(read_cert(state, &rotation::cert_file(id))?);
        }
        let root_pem = pem::encode("CERTIFICATE", cert.as_ref());
        let cross = state.read(&rotation::cross_file(signing), PUBLIC_MODE)?;
        let chain = match (&cross, rotation.step) {
            (Some(cross), Step::Reissuing) => vec![cross.clone(), root_pem.clone()],
            _ => vec![root_pem.clone()],
        };
        let serving_chain = match &cross {
            Some(cross) => vec![cross.clone(), root_pem],
            None => vec![root_pem],
        };
        Ok(Keys {
            signing: Some(signing.clone()),
            issuer,
            issuer_not_after: not_after,
            chain,
            serving_chain,
            bundle_pem: bundle_pem(&roots),
            roots,
            root_ids: rotation.bundle.clone(),
            rotation,
            plug_in_files: None,
        })
    }

    /// A plug-in CA's files in `dir`.
    fn plug_in(dir: &Path) -> Result<Keys> {
        let files = PlugIn::files(dir);
        let plug_in = PlugIn::read(dir)?;
        let bundle_pem = bundle_pem(&plug_in.roots);
        Ok(Keys {
            signing: None,
            issuer: plug_in.issuer,
            issuer_not_after: plug_in.not_after,
            serving_chain: plug_in.chain.clone(),
            chain: plug_in.chain,
            roots: plug_in.roots,
            root_ids: Vec::new(),
            bundle_pem,
            rotation: Rotation::initial(),
            plug_in_files: Some(files),
        })
    }
}

/// The first certificate of the state directory's file `name`.
pub(crate) fn read_cert(state: &StateDir, name: &str) -> Result<CertificateDer<'static>> {
    let path = state.file(name);
    let text = state
        .read(name, PUBLIC_MODE)?
        .ok_or_else(|| Error::Missing(path.clone()))?;
    pem::certificates(&path.display().to_string(), &text)?
        .into_iter()
        .next()
        .ok_or(Error::Missing(path))
}

/// Which root signed each identity's newest certificate, in the state
/// directory (identities and expiry times only: nothing secret).
pub const ISSUED_FILE: &str = "issued.json";

#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IssuedEntry {
    root: String,
    /// Unix seconds.
    not_after: u64,
}

fn read_issued(state: &StateDir) -> Result<HashMap<String, (String, SystemTime)>> {
    let Some(text) = state.read(ISSUED_FILE, PUBLIC_MODE)? else {
        return Ok(HashMap::new());
    };
    let entries: std::collections::BTreeMap<String, IssuedEntry> =
        serde_json::from_str(&text).map_err(|_| Error::BadIssued(state.file(ISSUED_FILE)))?;
    Ok(entries
        .into_iter()
        .map(|(id, e)| {
            let expiry = SystemTime::UNIX_EPOCH + Duration::from_secs(e.not_after);
            (id, (e.root, expiry))
        })
        .collect())
}

/// A random positive 128-bit serial number.
pub(crate) fn serial() -> Result<SerialNumber> {
    let mut bytes = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| Error::Generate)?;
    bytes[0] &= 0x7f;
    bytes[0] |= 0x01;
    Ok(SerialNumber::from_slice(&bytes))
}

/// The state directory's first root, generated on first start (unless a
/// rotation already replaced it).
fn self_signed_root(state: &StateDir, trust_domain: &str) -> Result<()> {
    if state.read(rotation::ROTATION_FILE, PUBLIC_MODE)?.is_some() {
        return Ok(());
    }
    if state.read(ROOT_KEY, KEY_MODE)?.is_none() {
        let key = KeyPair::generate().map_err(|_| Error::Generate)?;
        state.create(ROOT_KEY, &key.serialize_pem(), KEY_MODE)?;
    }
    if state.read(ROOT_CERT, PUBLIC_MODE)?.is_none() {
        let key_path = state.file(ROOT_KEY);
        let key_text = state
            .read(ROOT_KEY, KEY_MODE)?
            .ok_or_else(|| Error::Missing(key_path.clone()))?;
        let key = read_key(&key_path, &key_text)?;
        let params = root_params(trust_domain, "Bowline root CA", SystemTime::now())?;
        let cert = params.self_signed(&key).map_err(|_| Error::Generate)?;
        state.create(ROOT_CERT, &cert.pem(), PUBLIC_MODE)?;
    }
    Ok(())
}

/// A root's fields: the trust domain as organisation, `common_name`, ten
/// years from a minute ago, CA without a path length limit.
pub(crate) fn root_params(
    trust_domain: &str,
    common_name: &str,
    now: SystemTime,
) -> Result<CertificateParams> {
    let now = OffsetDateTime::from(now);
    let mut params = CertificateParams::default();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::OrganizationName, trust_domain);
    dn.push(DnType::CommonName, common_name);
    params.distinguished_name = dn;
    params.not_before = now - BACKDATE;
    params.not_after = now + ROOT_TTL;
    params.serial_number = Some(serial()?);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

/// Istio's `cacerts` files.
struct PlugIn {
    issuer: Issuer<'static, KeyPair>,
    not_after: OffsetDateTime,
    chain: Vec<String>,
    roots: Vec<CertificateDer<'static>>,
}

impl PlugIn {
    /// A SHA-256 of the files' contents (a missing one counts as empty):
    /// what tells a change, without keeping the key's text around.
    fn files(dir: &Path) -> Vec<u8> {
        let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
        for name in [
            "ca-cert.pem",
            "ca-key.pem",
            "root-cert.pem",
            "cert-chain.pem",
        ] {
            let contents = std::fs::read(dir.join(name)).unwrap_or_default();
            hash.update(&(contents.len() as u64).to_le_bytes());
            hash.update(&contents);
        }
        hash.finish().as_ref().to_vec()
    }

    fn read(dir: &Path) -> Result<PlugIn> {
        let read = |name: &str| -> Result<(PathBuf, String)> {
            let path = dir.join(name);
            match std::fs::read_to_string(&path) {
                Ok(text) => Ok((path, text)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(Error::Missing(path)),
                Err(source) => Err(Error::Read { path, source }),
            }
        };
        let (cert_path, cert_text) = read("ca-cert.pem")?;
        let (key_path, key_text) = read("ca-key.pem")?;
        let (root_path, root_text) = read("root-cert.pem")?;
        let chain_file = match read("cert-chain.pem") {
            Ok(found) => Some(found),
            Err(Error::Missing(_)) => None,
            Err(e) => Err(e)?,
        };

        let cert = pem::certificates(&cert_path.display().to_string(), &cert_text)?
            .into_iter()
            .next()
            .ok_or_else(|| Error::Missing(cert_path.clone()))?;
        let key = read_key(&key_path, &key_text)?;
        let not_after = check_ca(&cert_path, &cert, &key_path, &key)?;
        let roots = pem::certificates(&root_path.display().to_string(), &root_text)?;

        let mut chain = match &chain_file {
            Some((path, text)) => {
                let certs = pem::certificates(&path.display().to_string(), text)?;
                if certs.first() != Some(&cert) {
                    return Err(Error::ChainStart {
                        chain: path.clone(),
                        cert: cert_path,
                    });
                }
                certs
            }
            None => vec![cert.clone()],
        };
        // The root goes last, once: cert-chain.pem often ends with it already.
        if chain.last().is_none_or(|last| !roots.contains(last)) {
            chain.push(roots[0].clone());
        }
        let chain = chain
            .iter()
            .map(|c| pem::encode("CERTIFICATE", c.as_ref()))
            .collect();
        let issuer = Issuer::from_ca_cert_der(&cert, key)
            .map_err(|_| Error::BadCertificate(cert_path.clone()))?;
        Ok(PlugIn {
            issuer,
            not_after,
            chain,
            roots,
        })
    }
}

pub(crate) fn read_key(path: &Path, text: &str) -> Result<KeyPair> {
    if text.contains("-----BEGIN RSA PRIVATE KEY-----")
        || text.contains("-----BEGIN EC PRIVATE KEY-----")
    {
        return Err(Error::KeyFormat(path.to_path_buf()));
    }
    KeyPair::from_pem(text).map_err(|_| Error::BadKey(path.to_path_buf()))
}

/// Checks that `cert` is a CA whose public key is `key`'s; its expiry.
pub(crate) fn check_ca(
    cert_path: &Path,
    cert: &CertificateDer<'_>,
    key_path: &Path,
    key: &KeyPair,
) -> Result<OffsetDateTime> {
    let bad = || Error::BadCertificate(cert_path.to_path_buf());
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).map_err(|_| bad())?;
    if parsed.public_key().subject_public_key.data.as_ref() != key.public_key_raw() {
        return Err(Error::KeyMismatch {
            cert: cert_path.to_path_buf(),
            key: key_path.to_path_buf(),
        });
    }
    let is_ca = parsed
        .basic_constraints()
        .map_err(|_| bad())?
        .is_some_and(|bc| bc.value.ca);
    if !is_ca {
        return Err(Error::NotCa(cert_path.to_path_buf()));
    }
    Ok(parsed.validity().not_after.to_datetime())
}
