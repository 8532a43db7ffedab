//! Root rotation, step by step, against the CA's own files: at every step
//! each certificate issued so far verifies against what every peer may
//! trust at that moment, and a restart resumes the step it was in.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use citadel::authority::Error;
use citadel::rotation::{self, Step};
use citadel::{Ca, CaConfig, IssueRequest, SpiffeId, verify};
use rcgen::{CertificateParams, KeyPair, SanType};
use rustls_pki_types::CertificateDer;

const TTL: Duration = Duration::from_secs(600);

fn csr(uri: &str) -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(uri.try_into().unwrap())];
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn issue(ca: &Ca, sa: &str, now: SystemTime) -> Vec<String> {
    let caller = SpiffeId::new("shop", sa);
    ca.issue(
        &IssueRequest {
            caller: &caller,
            csr_pem: &csr(&caller.to_string()),
            ttl: Some(TTL),
        },
        now,
    )
    .unwrap()
}

fn config(dir: &Path) -> CaConfig {
    CaConfig::new(dir, "cluster.local")
}

/// The roots of the bundle, one by one.
fn each_root(ca: &Ca) -> Vec<CertificateDer<'static>> {
    ca.roots()
}

fn verifies(chain: &[String], roots: &[CertificateDer<'_>], now: SystemTime) -> bool {
    verify::workload_chain(chain, roots, now).is_ok()
}

#[test]
fn a_rotation_never_leaves_a_certificate_its_peers_cannot_verify() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let ca = Ca::open(&config(dir.path())).unwrap();
    let old_root = each_root(&ca);
    assert_eq!(old_root.len(), 1);
    let before = issue(&ca, "web", now);
    assert_eq!(ca.rotation().step, Step::Idle);

    // `bowline ca rotate-root`, from another process: the running CA sees
    // it on reload. (1) Both roots in the bundle; the old key still signs.
    let begun = rotation::begin(&config(dir.path()), now, false).unwrap();
    assert_eq!(
        (begun.old_root.as_str(), begun.new_root.as_str()),
        ("root", "root-2")
    );
    assert!(ca.reload().unwrap());
    assert!(!ca.reload().unwrap(), "a second reload changes nothing");
    let rotation = ca.rotation();
    assert_eq!(rotation.step, Step::Distributing);
    assert_eq!(rotation.bundle, ["root", "root-2"]);
    let both = ca.roots();
    assert_eq!(both.len(), 2);
    assert_eq!(both[0], old_root[0]);
    let new_root = vec![both[1].clone()];
    let distributing = issue(&ca, "web", now);
    assert!(verifies(&distributing, &old_root, now));
    assert!(ca.trust_bundle_pem().matches("BEGIN CERTIFICATE").count() == 2);
    let mode = std::fs::metadata(dir.path().join("root-2-key.pem"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    // A second rotation while one is under way is refused.
    assert!(matches!(
        rotation::begin(&config(dir.path()), now, false),
        Err(Error::RotationStep {
            step: Step::Distributing,
            ..
        })
    ));

    // (2) The new key signs; its chains carry the old root's signature of
    // the new root, so a peer that trusts only the old root verifies them,
    // as does one that trusts only the new root.
    let reissuing = ca.sign_with_new_root().unwrap();
    assert_eq!(reissuing.step, Step::Reissuing);
    assert_eq!(reissuing.signing, "root-2");
    assert_eq!(reissuing.retiring.as_deref(), Some("root"));
    let until = reissuing.old_signed_until.unwrap();
    let latest_old = now + TTL;
    let latest_old = latest_old
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(until >= latest_old, "{until} < {latest_old}");
    let after = issue(&ca, "web", now);
    assert_eq!(after.len(), 3, "leaf, cross-signature, new root");
    assert!(
        verifies(&after, &old_root, now),
        "through the cross-signature"
    );
    assert!(verifies(&after, &new_root, now));
    assert!(verifies(&before, &ca.roots(), now));
    assert!(!verifies(&before, &new_root, now));

    // A restart resumes the step.
    let reopened = Ca::open(&config(dir.path())).unwrap();
    assert_eq!(reopened.rotation(), reissuing);
    assert!(verifies(&issue(&reopened, "api", now), &old_root, now));

    // The status counts, per root, the identities whose newest
    // certificate its key signed.
    issue(&ca, "api", now);
    let status = ca.status(now);
    let workloads: Vec<_> = status
        .roots
        .iter()
        .map(|r| (r.id.clone().unwrap(), r.signing, r.workloads))
        .collect();
    assert_eq!(
        workloads,
        [
            ("root".to_string(), false, 0),
            ("root-2".to_string(), true, 2)
        ]
    );

    // (4) The old root stays until its key's last certificate has expired.
    assert_eq!(ca.retire_old_root(now).unwrap(), None);
    let later = SystemTime::UNIX_EPOCH + Duration::from_secs(until);
    let idle = ca.retire_old_root(later).unwrap().unwrap();
    assert_eq!(idle.step, Step::Idle);
    assert_eq!(idle.bundle, ["root-2"]);
    assert_eq!(ca.roots(), new_root);
    assert!(
        !dir.path().join("root-key.pem").exists(),
        "the old key is deleted"
    );
    let last = issue(&ca, "web", later);
    assert_eq!(last.len(), 2, "leaf and new root, no cross-signature");
    assert!(verifies(&last, &new_root, later));
    assert!(!verifies(&last, &old_root, later));
    // And across a restart, with the next rotation numbered on.
    let reopened = Ca::open(&config(dir.path())).unwrap();
    assert_eq!(reopened.rotation(), idle);
    let next = rotation::begin(&config(dir.path()), later, false).unwrap();
    assert_eq!(next.new_root, "root-3");
}

#[test]
fn the_old_keys_mark_covers_certificates_issued_before_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let first = Ca::open(&config(dir.path())).unwrap();
    issue(&first, "web", now);
    drop(first);
    // A new process knows nothing of what the first issued but its mark.
    let ca = Ca::open(&config(dir.path())).unwrap();
    rotation::begin(&config(dir.path()), now, false).unwrap();
    ca.reload().unwrap();
    let until = ca.sign_with_new_root().unwrap().old_signed_until.unwrap();
    let expiry = (now + TTL)
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(until >= expiry, "{until} < {expiry}");
}

#[test]
fn steps_out_of_order_and_plug_in_cas_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::open(&config(dir.path())).unwrap();
    assert!(matches!(
        ca.sign_with_new_root(),
        Err(Error::RotationStep {
            want: Step::Distributing,
            step: Step::Idle
        })
    ));
    assert!(matches!(
        ca.retire_old_root(SystemTime::now()),
        Err(Error::RotationStep {
            want: Step::Reissuing,
            step: Step::Idle
        })
    ));
    let mut plug_in = config(dir.path());
    plug_in.cacerts = Some(dir.path().join("cacerts"));
    assert!(matches!(
        rotation::begin(&plug_in, SystemTime::now(), false),
        Err(Error::PlugInRotation(_))
    ));
}

/// `--force`: agents learn from [`Ca::trust`] to renew a chain that ends at
/// another root, once the new key signs and only until the rotation ends;
/// the mark is a file of its own, kept across a restart, set on a rotation
/// under way without touching `rotation.json`, and removed at the end.
#[test]
fn a_forced_rotation_asks_every_workload_to_renew_once_the_new_key_signs() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let ca = Ca::open(&config(dir.path())).unwrap();
    let before = issue(&ca, "web", now);
    let idle = ca.trust();
    assert!(!idle.reissue);
    assert_eq!(idle.signing_root_pem, *before.last().unwrap());
    assert!(matches!(
        rotation::force(&config(dir.path())),
        Err(Error::RotationStep {
            step: Step::Idle,
            ..
        })
    ));

    rotation::begin(&config(dir.path()), now, true).unwrap();
    assert!(dir.path().join("root-2-force").exists());
    let stored = std::fs::read_to_string(dir.path().join("rotation.json")).unwrap();
    assert!(!stored.contains("force"), "{stored}");
    assert!(ca.reload().unwrap());
    assert!(ca.rotation().force);
    // (1) The old key still signs: nothing to renew yet.
    let distributing = ca.trust();
    assert!(!distributing.reissue);
    assert_eq!(
        distributing.bundle_pem.matches("BEGIN CERTIFICATE").count(),
        2
    );
    assert_eq!(distributing.signing_root_pem, *before.last().unwrap());

    // (2) The new key signs: renew every chain that ends elsewhere.
    let reissuing = ca.sign_with_new_root().unwrap();
    assert!(reissuing.force);
    let trust = ca.trust();
    assert!(trust.reissue);
    let after = issue(&ca, "web", now);
    assert_eq!(trust.signing_root_pem, *after.last().unwrap());
    assert_ne!(trust.signing_root_pem, *before.last().unwrap());
    assert_eq!(Ca::open(&config(dir.path())).unwrap().trust(), trust);

    // (4) The end of the rotation ends it, and removes the mark.
    let until = reissuing.old_signed_until.unwrap();
    let later = SystemTime::UNIX_EPOCH + Duration::from_secs(until);
    let done = ca.retire_old_root(later).unwrap().unwrap();
    assert!(!done.force);
    assert!(!ca.trust().reissue);
    assert!(!dir.path().join("root-2-force").exists());
}

#[test]
fn force_marks_a_rotation_already_under_way() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let ca = Ca::open(&config(dir.path())).unwrap();
    rotation::begin(&config(dir.path()), now, false).unwrap();
    ca.reload().unwrap();
    ca.sign_with_new_root().unwrap();
    assert!(
        !ca.trust().reissue,
        "not forced: workloads renew on schedule"
    );
    let stored = std::fs::read_to_string(dir.path().join("rotation.json")).unwrap();

    let forced = rotation::force(&config(dir.path())).unwrap();
    assert!(forced.force);
    assert_eq!(forced.step, Step::Reissuing);
    assert_eq!(
        std::fs::read_to_string(dir.path().join("rotation.json")).unwrap(),
        stored,
        "the step's file is left to the control plane"
    );
    assert!(ca.reload().unwrap(), "the running CA sees the mark");
    assert!(ca.trust().reissue);
    assert!(!ca.reload().unwrap());
}

/// The per-root workload counts of `/api/v1/ca` survive a restart: the
/// control plane saves them (once a second, never per certificate).
#[test]
fn the_workload_counts_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let ca = Ca::open(&config(dir.path())).unwrap();
    issue(&ca, "web", now);
    issue(&ca, "api", now);
    issue(&ca, "web", now);
    assert!(ca.save_issued(now).unwrap());
    assert!(!ca.save_issued(now).unwrap(), "nothing new to save");
    let counts =
        |ca: &Ca| -> Vec<usize> { ca.status(now).roots.iter().map(|r| r.workloads).collect() };
    assert_eq!(counts(&ca), [2]);
    drop(ca);
    let reopened = Ca::open(&config(dir.path())).unwrap();
    assert_eq!(counts(&reopened), [2]);
    // Expired certificates leave the file at the next save.
    issue(&reopened, "db", now);
    let later = now + TTL + Duration::from_secs(1);
    assert!(reopened.save_issued(later).unwrap());
    let text = std::fs::read_to_string(dir.path().join("issued.json")).unwrap();
    assert_eq!(text.trim(), "{}");
    // A file cut short counts afresh instead of stopping the CA.
    std::fs::write(dir.path().join("issued.json"), "{\"spiffe").unwrap();
    let fresh = Ca::open(&config(dir.path())).unwrap();
    assert_eq!(counts(&fresh), [0]);
}
