//! Root rotation without an outage, in steps that never leave a peer
//! unable to verify another.
//!
//! ```text
//! bowline ca rotate-root ──► root-N-{key,cert,cross}.pem, rotation.json {step: distributing}
//!                                                      │ (the running control plane reloads it)
//! (1) distributing: bundle [old, new], the old key signs ──► every proxy ACKs ROOTCA with both
//! (2) reissuing:    the new key signs, chains carry the old root's cross-signature of the new
//! (3)               workloads renew on their schedule: all within one leaf lifetime,
//!                   or at once with `--force` (the trust watch tells each agent)
//! (4) idle:         once the old key's last certificate has expired, bundle [new]; old key deleted
//! ```
//!
//! The state lives in the state directory: each root `ID` as `ID-cert.pem`
//! and `ID-key.pem` (0600; the first root is `root`, so its files keep
//! their names), a rotated-in root's cross-signature by the root it
//! replaces as `ID-cross.pem`, and the step in `rotation.json`, replaced
//! atomically, so that a restart resumes where the rotation was. The step's
//! conditions (every proxy's ACK, the clock) are checked by the control
//! plane, which moves the CA on with [`crate::Ca::sign_with_new_root`] and
//! [`crate::Ca::retire_old_root`].
//!
//! `--force` is a file of its own, `ID-force` for the rotated-in root `ID`,
//! so that the command never rewrites `rotation.json` while the control
//! plane moves the steps on.
//!
//! `ID-signed-until` holds a time past which no certificate `ID`'s key
//! signed is valid, moved on before each certificate that would outlive it
//! is handed out: the old root leaves the bundle only after that time, even
//! across restarts.

use std::time::SystemTime;

use rcgen::{Issuer, KeyPair};
use rustls_pki_types::CertificateDer;
use serde::{Deserialize, Serialize};

use crate::authority::{
    self, CACERTS_DIR, CaConfig, Error, Result, check_ca, read_cert, read_key, root_params,
};
use crate::state::{KEY_MODE, PUBLIC_MODE, StateDir};

/// The rotation's step, in the state directory.
pub const ROTATION_FILE: &str = "rotation.json";
/// The first root's id (`root-cert.pem`, `root-key.pem`).
pub const FIRST_ROOT: &str = "root";

pub fn cert_file(id: &str) -> String {
    format!("{id}-cert.pem")
}

pub fn key_file(id: &str) -> String {
    format!("{id}-key.pem")
}

pub fn cross_file(id: &str) -> String {
    format!("{id}-cross.pem")
}

fn force_file(id: &str) -> String {
    format!("{id}-force")
}

fn signed_until_file(id: &str) -> String {
    format!("{id}-signed-until")
}

/// Where a rotation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// No rotation under way.
    Idle,
    /// (1) The new root is in the bundle; the old key still signs until
    /// every proxy has ACKed the bundle.
    Distributing,
    /// (2, 3) The new key signs, with the old root's cross-signature of the
    /// new one in each chain; the old root stays in the bundle until the
    /// last certificate its key signed has expired.
    Reissuing,
}

/// The state of the roots: `rotation.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rotation {
    pub step: Step,
    /// The root whose key signs.
    pub signing: String,
    /// The roots workloads trust, oldest first.
    pub bundle: Vec<String>,
    /// While reissuing: the root that leaves the bundle at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retiring: Option<String>,
    /// While reissuing: no certificate the retiring root's key signed is
    /// valid past this (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub old_signed_until: Option<u64>,
    /// `--force`: once the new key signs, every workload renews at once
    /// instead of on its schedule. Read from the `ID-force` file of the
    /// rotated-in root, never written to `rotation.json`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

impl Rotation {
    /// Before any rotation: the first root alone.
    pub fn initial() -> Self {
        Rotation {
            step: Step::Idle,
            signing: FIRST_ROOT.to_string(),
            bundle: vec![FIRST_ROOT.to_string()],
            retiring: None,
            old_signed_until: None,
            force: false,
        }
    }

    /// Whether workloads must renew now: a forced rotation whose new key
    /// signs.
    pub fn reissue_now(&self) -> bool {
        self.force && self.step == Step::Reissuing
    }
}

/// `rotation.json`, or the initial state when there is none, with `force`
/// from the rotated-in root's `ID-force` file.
pub(crate) fn read(state: &StateDir) -> Result<Rotation> {
    let mut rotation: Rotation = match state.read(ROTATION_FILE, PUBLIC_MODE)? {
        None => return Ok(Rotation::initial()),
        Some(text) => serde_json::from_str(&text)
            .map_err(|_| Error::BadRotation(state.file(ROTATION_FILE)))?,
    };
    rotation.force = match (rotation.step, rotation.bundle.last()) {
        (Step::Idle, _) | (_, None) => false,
        (_, Some(new)) => state.read(&force_file(new), PUBLIC_MODE)?.is_some(),
    };
    Ok(rotation)
}

pub(crate) fn write(state: &StateDir, rotation: &Rotation) -> Result<()> {
    let stored = Rotation {
        force: false,
        ..rotation.clone()
    };
    let mut text = serde_json::to_string_pretty(&stored)
        .map_err(|_| Error::BadRotation(state.file(ROTATION_FILE)))?;
    text.push('\n');
    Ok(state.replace(ROTATION_FILE, &text, PUBLIC_MODE)?)
}

pub(crate) fn read_signed_until(state: &StateDir, id: &str) -> Result<Option<u64>> {
    let name = signed_until_file(id);
    match state.read(&name, PUBLIC_MODE)? {
        None => Ok(None),
        Some(text) => text
            .trim()
            .parse()
            .map(Some)
            .map_err(|_| Error::BadRotation(state.file(&name))),
    }
}

pub(crate) fn write_signed_until(state: &StateDir, id: &str, until: u64) -> Result<()> {
    Ok(state.replace(&signed_until_file(id), &format!("{until}\n"), PUBLIC_MODE)?)
}

/// What `bowline ca rotate-root` did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Begun {
    /// The root that will sign.
    pub new_root: String,
    /// The root it replaces.
    pub old_root: String,
}

/// `bowline ca rotate-root`: a new self-signed root beside the signing
/// one, its cross-signature by the signing root, and step (1); with
/// `force`, every workload renews as soon as the new key signs. Refused for
/// a plug-in CA and while a rotation is under way (see [`force`]).
pub fn begin(config: &CaConfig, now: SystemTime, force: bool) -> Result<Begun> {
    let state = StateDir::open(&config.state_dir)?;
    let cacerts = config
        .cacerts
        .clone()
        .unwrap_or_else(|| state.file(CACERTS_DIR));
    if config.cacerts.is_some() || cacerts.join("ca-cert.pem").exists() {
        return Err(Error::PlugInRotation(cacerts));
    }
    // A state directory no CA has opened yet gets its first root now.
    crate::Ca::open(config)?;
    let current = read(&state)?;
    if current.step != Step::Idle {
        return Err(Error::RotationStep {
            want: Step::Idle,
            step: current.step,
        });
    }
    let old = current.signing.clone();
    let old_cert_path = state.file(&cert_file(&old));
    let old_key_path = state.file(&key_file(&old));
    let old_cert = read_cert(&state, &cert_file(&old))?;
    let old_key_text = state
        .read(&key_file(&old), KEY_MODE)?
        .ok_or_else(|| Error::Missing(old_key_path.clone()))?;
    let old_key = read_key(&old_key_path, &old_key_text)?;
    let old_not_after = check_ca(&old_cert_path, &old_cert, &old_key_path, &old_key)?;
    let old_issuer = Issuer::from_ca_cert_der(&old_cert, old_key)
        .map_err(|_| Error::BadCertificate(old_cert_path.clone()))?;

    let number = 1 + current
        .bundle
        .iter()
        .chain([&current.signing])
        .filter_map(|id| match id.as_str() {
            FIRST_ROOT => Some(1),
            other => other.strip_prefix("root-")?.parse::<u32>().ok(),
        })
        .max()
        .unwrap_or(1);
    let new = format!("root-{number}");
    let key = KeyPair::generate().map_err(|_| Error::Generate)?;
    let params = root_params(
        &config.trust_domain,
        &format!("Bowline root CA {number}"),
        now,
    )?;
    let cert = params.self_signed(&key).map_err(|_| Error::Generate)?;
    // The cross-signature: the new root's name and key, issued by the old
    // root, valid no longer than the old root itself.
    let mut cross_params = params;
    cross_params.serial_number = Some(authority::serial()?);
    cross_params.not_after = cross_params.not_after.min(old_not_after);
    cross_params.use_authority_key_identifier_extension = true;
    let cross = cross_params
        .signed_by(&key, &old_issuer)
        .map_err(|_| Error::Generate)?;

    state.replace(&key_file(&new), &key.serialize_pem(), KEY_MODE)?;
    state.replace(&cert_file(&new), &cert.pem(), PUBLIC_MODE)?;
    state.replace(&cross_file(&new), &cross.pem(), PUBLIC_MODE)?;
    if force {
        // Before the step, so that the control plane never sees the
        // rotation without it.
        write_force(&state, &new)?;
    }
    let mut bundle = current.bundle.clone();
    bundle.push(new.clone());
    write(
        &state,
        &Rotation {
            step: Step::Distributing,
            signing: old.clone(),
            bundle,
            retiring: None,
            old_signed_until: None,
            force,
        },
    )?;
    Ok(Begun {
        new_root: new,
        old_root: old,
    })
}

/// `bowline ca rotate-root --force` while a rotation is under way: every
/// workload renews as soon as the new key signs (at once if it already
/// does). Refused when no rotation is under way.
pub fn force(config: &CaConfig) -> Result<Rotation> {
    let state = StateDir::open(&config.state_dir)?;
    let mut current = read(&state)?;
    let (Step::Distributing | Step::Reissuing, Some(new)) = (current.step, current.bundle.last())
    else {
        return Err(Error::RotationStep {
            want: Step::Distributing,
            step: current.step,
        });
    };
    write_force(&state, new)?;
    current.force = true;
    Ok(current)
}

fn write_force(state: &StateDir, id: &str) -> Result<()> {
    let text =
        "workloads renew as soon as this root's key signs (bowline ca rotate-root --force)\n";
    Ok(state.replace(&force_file(id), text, PUBLIC_MODE)?)
}

/// Removes a finished rotation's `ID-force` file.
pub(crate) fn remove_force(state: &StateDir, id: &str) -> Result<()> {
    Ok(state.remove(&force_file(id))?)
}

/// `GET /api/v1/ca`: the roots and the rotation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CaStatus {
    pub trust_domain: String,
    /// `self-signed`, or `plug-in DIR`.
    pub origin: String,
    /// The bundle's roots, oldest first.
    pub roots: Vec<RootStatus>,
    pub rotation: Rotation,
    /// Since the CA started.
    pub certificates: CertificateCounts,
}

/// Signing requests and what came of them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct CertificateCounts {
    /// Requests received, refused ones included.
    pub requested: u64,
    /// Certificates issued.
    pub issued: u64,
}

/// One root of the bundle.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RootStatus {
    /// The root's id in the state directory (none for a plug-in CA's roots).
    pub id: Option<String>,
    pub subject: String,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// Its key signs workload certificates now.
    pub signing: bool,
    /// Identities whose newest certificate this root's key signed and
    /// which has not expired (kept across restarts in `issued.json`).
    pub workloads: usize,
}

impl RootStatus {
    pub(crate) fn of(
        der: &CertificateDer<'_>,
        id: Option<String>,
        signing: bool,
        workloads: usize,
    ) -> RootStatus {
        let parsed = x509_parser::parse_x509_certificate(der.as_ref()).ok();
        let (subject, not_before, not_after) = parsed.map_or((String::new(), 0, 0), |(_, c)| {
            (
                c.subject().to_string(),
                c.validity().not_before.timestamp(),
                c.validity().not_after.timestamp(),
            )
        });
        RootStatus {
            id,
            subject,
            not_before,
            not_after,
            signing,
            workloads,
        }
    }
}
