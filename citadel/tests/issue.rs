//! The CA from a request to a verified chain: who gets what, what is
//! refused and why, and what survives a restart.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use citadel::authority::{Origin, ROOT_KEY};
use citadel::signing::{Credential, Error as SignError, Signer};
use citadel::token::KEY_FILE;
use citadel::{Ca, CaConfig, IssueRequest, RateLimiter, Refusal, SpiffeId, Tokens, verify};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use x509_parser::extensions::{GeneralName, ParsedExtension};

const HOUR: Duration = Duration::from_secs(3600);

fn csr(uris: &[&str]) -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = uris
        .iter()
        .map(|u| SanType::URI((*u).try_into().unwrap()))
        .collect();
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn signer(dir: &Path, limiter: Option<RateLimiter>) -> Signer {
    let config = CaConfig::new(dir, "cluster.local");
    Signer {
        ca: Ca::open(&config).unwrap(),
        tokens: Tokens::open(
            &citadel::state::StateDir::open(dir).unwrap(),
            "cluster.local",
        )
        .unwrap(),
        limiter,
    }
}

fn der(pem_text: &str) -> Vec<u8> {
    citadel::pem::certificates("test", pem_text).unwrap()[0]
        .as_ref()
        .to_vec()
}

#[test]
fn a_token_is_signed_for_exactly_its_identity() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer(dir.path(), None);
    let now = SystemTime::now();
    let token = s.tokens.mint("shop", "web", HOUR, now).unwrap();
    let id = "spiffe://cluster.local/ns/shop/sa/web";

    for asked in [&[id][..], &[]] {
        let signed = s
            .create_certificate(
                Credential::Bearer(&token),
                &csr(asked),
                0,
                now,
                Instant::now(),
            )
            .unwrap();
        assert_eq!(signed.caller, SpiffeId::new("shop", "web"));
        // Leaf first, root last: the self-signed root is the whole chain above the leaf.
        assert_eq!(signed.chain.len(), 2);
        assert_eq!(signed.chain[1], *s.ca.trust_bundle_pem());
        let verified = verify::workload_chain(&signed.chain, &s.ca.roots(), now).unwrap();
        assert_eq!(verified.to_string(), id);

        let leaf = der(&signed.chain[0]);
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
        // Exactly one SAN, the URI, critical as the subject is empty.
        let san = cert.subject_alternative_name().unwrap().unwrap();
        assert!(san.critical);
        assert_eq!(san.value.general_names, [GeneralName::URI(id)]);
        assert!(cert.subject().iter().next().is_none());
        let eku = cert.extended_key_usage().unwrap().unwrap().value;
        assert!(eku.server_auth && eku.client_auth);
        assert!(!cert.is_ca());
        // The default lifetime, 24 h, from a minute before now.
        let lifetime = cert.validity().time_to_expiration().unwrap();
        assert!(
            lifetime <= time::Duration::hours(24) && lifetime > time::Duration::hours(23),
            "{lifetime:?}"
        );
        assert!(cert.extensions().iter().any(|e| matches!(
            e.parsed_extension(),
            ParsedExtension::AuthorityKeyIdentifier(_)
        )));
    }
}

#[test]
fn another_identity_is_permission_denied() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer(dir.path(), None);
    let now = SystemTime::now();
    let token = s.tokens.mint("shop", "web", HOUR, now).unwrap();
    for asked in [
        vec!["spiffe://cluster.local/ns/shop/sa/admin"],
        vec![
            "spiffe://cluster.local/ns/shop/sa/web",
            "spiffe://cluster.local/ns/kube-system/sa/default",
        ],
        vec!["spiffe://other.domain/ns/shop/sa/web"],
    ] {
        let err = s
            .create_certificate(
                Credential::Bearer(&token),
                &csr(&asked),
                0,
                now,
                Instant::now(),
            )
            .unwrap_err();
        assert_eq!(err.refusal(), Refusal::PermissionDenied, "{asked:?}: {err}");
    }
    // A DNS name is an identity too, and not the caller's to ask for.
    let key = KeyPair::generate().unwrap();
    let dns = CertificateParams::new(vec!["istiod.istio-system.svc".to_string()])
        .unwrap()
        .serialize_request(&key)
        .unwrap()
        .pem()
        .unwrap();
    let err = s
        .create_certificate(Credential::Bearer(&token), &dns, 0, now, Instant::now())
        .unwrap_err();
    assert_eq!(err.refusal(), Refusal::PermissionDenied, "{err}");
}

#[test]
fn bad_credentials_are_unauthenticated() {
    let dir = tempfile::tempdir().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let s = signer(dir.path(), None);
    let now = SystemTime::now();
    let expired = s.tokens.mint("a", "b", HOUR, now - 2 * HOUR).unwrap();
    let forged = signer(elsewhere.path(), None)
        .tokens
        .mint("a", "b", HOUR, now)
        .unwrap();
    let audience = s.tokens.mint_for("a", "b", "istio-ca", HOUR, now).unwrap();
    let request = csr(&[]);
    for credential in [
        Credential::Bearer(&expired),
        Credential::Bearer(&forged),
        Credential::Bearer(&audience),
        Credential::Bearer("not a token"),
        Credential::None,
    ] {
        let err = s
            .create_certificate(credential, &request, 0, now, Instant::now())
            .unwrap_err();
        assert_eq!(
            err.refusal(),
            Refusal::Unauthenticated,
            "{credential:?}: {err}"
        );
    }
}

#[test]
fn a_ttl_over_the_maximum_is_invalid() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = CaConfig::new(dir.path(), "cluster.local");
    config.workload_cert_ttl = HOUR;
    config.max_workload_cert_ttl = 2 * HOUR;
    let ca = Ca::open(&config).unwrap();
    let caller = SpiffeId::new("a", "b");
    let request = csr(&[]);
    let issue = |ttl| {
        ca.issue(
            &IssueRequest {
                caller: &caller,
                csr_pem: &request,
                ttl,
            },
            SystemTime::now(),
        )
    };
    let err = issue(Some(2 * HOUR + Duration::from_secs(1))).unwrap_err();
    assert_eq!(err.refusal(), Refusal::InvalidArgument);
    assert_eq!(
        err.to_string(),
        "validity 7201s is over the maximum workload certificate TTL 7200s"
    );
    let chain = issue(Some(2 * HOUR)).unwrap();
    let leaf = der(&chain[0]);
    let (_, cert) = x509_parser::parse_x509_certificate(&leaf).unwrap();
    let v = cert.validity();
    assert_eq!(
        v.not_after.timestamp() - v.not_before.timestamp(),
        2 * 3600 + 60
    );
    // A bad CSR is invalid too, and a negative validity.
    let bad = ca.issue(
        &IssueRequest {
            caller: &caller,
            csr_pem: "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
            ttl: None,
        },
        SystemTime::now(),
    );
    assert_eq!(bad.unwrap_err().refusal(), Refusal::InvalidArgument);
    let s = signer(dir.path(), None);
    let token = s.tokens.mint("a", "b", HOUR, SystemTime::now()).unwrap();
    let err = s
        .create_certificate(
            Credential::Bearer(&token),
            &request,
            -5,
            SystemTime::now(),
            Instant::now(),
        )
        .unwrap_err();
    assert_eq!(err.refusal(), Refusal::InvalidArgument);
}

#[test]
fn a_restart_keeps_the_root_and_old_certificates_verify() {
    let dir = tempfile::tempdir().unwrap();
    let now = SystemTime::now();
    let first = signer(dir.path(), None);
    let token = first.tokens.mint("a", "b", HOUR, now).unwrap();
    let old = first
        .create_certificate(
            Credential::Bearer(&token),
            &csr(&[]),
            0,
            now,
            Instant::now(),
        )
        .unwrap();
    let bundle = first.ca.trust_bundle_pem().to_string();
    drop(first);

    let second = signer(dir.path(), None);
    assert_eq!(second.ca.origin(), &Origin::SelfSigned);
    assert_eq!(*second.ca.trust_bundle_pem(), *bundle);
    assert!(verify::workload_chain(&old.chain, &second.ca.roots(), now).is_ok());
    // The token key survived too.
    let new = second
        .create_certificate(
            Credential::Bearer(&token),
            &csr(&[]),
            0,
            now,
            Instant::now(),
        )
        .unwrap();
    assert!(verify::workload_chain(&new.chain, &second.ca.roots(), now).is_ok());

    for file in [ROOT_KEY, KEY_FILE] {
        let mode = std::fs::metadata(dir.path().join(file))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{file}");
    }
    // Another state directory is another root, which the first one's
    // certificates do not verify against.
    let other = tempfile::tempdir().unwrap();
    let stranger = signer(other.path(), None);
    assert!(verify::workload_chain(&old.chain, &stranger.ca.roots(), now).is_err());
}

#[test]
fn renewal_with_the_workload_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer(dir.path(), None);
    let now = SystemTime::now();
    let token = s.tokens.mint("shop", "web", HOUR, now).unwrap();
    let first = s
        .create_certificate(
            Credential::Bearer(&token),
            &csr(&[]),
            0,
            now,
            Instant::now(),
        )
        .unwrap();
    let leaf = der(&first.chain[0]);
    let renewed = s
        .create_certificate(
            Credential::Certificate(&leaf),
            &csr(&["spiffe://cluster.local/ns/shop/sa/web"]),
            0,
            now,
            Instant::now(),
        )
        .unwrap();
    assert_eq!(renewed.caller, SpiffeId::new("shop", "web"));
    let err = s
        .create_certificate(
            Credential::Certificate(&leaf),
            &csr(&["spiffe://cluster.local/ns/shop/sa/admin"]),
            0,
            now,
            Instant::now(),
        )
        .unwrap_err();
    assert_eq!(err.refusal(), Refusal::PermissionDenied);
}

#[test]
fn the_rate_limit_is_per_identity() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer(dir.path(), Some(RateLimiter::new(1.0, 2)));
    let now = SystemTime::now();
    let at = Instant::now();
    let a = s.tokens.mint("ns", "a", HOUR, now).unwrap();
    let b = s.tokens.mint("ns", "b", HOUR, now).unwrap();
    let request = csr(&[]);
    let sign = |token: &str| s.create_certificate(Credential::Bearer(token), &request, 0, now, at);
    assert!(sign(&a).is_ok());
    assert!(sign(&a).is_ok());
    let err = sign(&a).unwrap_err();
    assert_eq!(err.refusal(), Refusal::ResourceExhausted);
    assert!(matches!(err, SignError::RateLimited { .. }));
    assert!(sign(&b).is_ok());
}

/// Istio's `cacerts` layout: a root, an intermediate that signs, and the
/// chain file ending with the root.
fn write_cacerts(dir: &Path, with_root_in_chain: bool) -> (String, String) {
    let root_key = KeyPair::generate().unwrap();
    let mut root_params = CertificateParams::default();
    root_params
        .distinguished_name
        .push(DnType::CommonName, "test root");
    root_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    root_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let root = root_params.self_signed(&root_key).unwrap();

    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::default();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test intermediate");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca_params.use_authority_key_identifier_extension = true;
    let ca = ca_params
        .signed_by(&ca_key, &Issuer::from_params(&root_params, &root_key))
        .unwrap();

    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("root-cert.pem"), root.pem()).unwrap();
    std::fs::write(dir.join("ca-cert.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("ca-key.pem"), ca_key.serialize_pem()).unwrap();
    let chain = if with_root_in_chain {
        format!("{}{}", ca.pem(), root.pem())
    } else {
        ca.pem()
    };
    std::fs::write(dir.join("cert-chain.pem"), chain).unwrap();
    (root.pem(), ca.pem())
}

#[test]
fn a_plug_in_ca_signs_with_its_chain_and_the_root_last() {
    for with_root_in_chain in [true, false] {
        let state = tempfile::tempdir().unwrap();
        let cacerts = state.path().join("cacerts");
        let (root, intermediate) = write_cacerts(&cacerts, with_root_in_chain);
        let s = signer(state.path(), None);
        assert_eq!(s.ca.origin(), &Origin::PlugIn(cacerts.clone()));
        assert_eq!(*s.ca.trust_bundle_pem(), *root);
        let now = SystemTime::now();
        let token = s.tokens.mint("a", "b", HOUR, now).unwrap();
        let signed = s
            .create_certificate(
                Credential::Bearer(&token),
                &csr(&[]),
                0,
                now,
                Instant::now(),
            )
            .unwrap();
        assert_eq!(signed.chain.len(), 3, "{with_root_in_chain}");
        assert_eq!(signed.chain[1], intermediate);
        assert_eq!(signed.chain[2], root);
        let id = verify::workload_chain(&signed.chain, &s.ca.roots(), now).unwrap();
        assert_eq!(id, SpiffeId::new("a", "b"));
        // No self-signed root was made beside it.
        assert!(!state.path().join(ROOT_KEY).exists());
    }
}

#[test]
fn a_plug_in_ca_with_a_foreign_key_or_format_is_refused() {
    let state = tempfile::tempdir().unwrap();
    let cacerts = state.path().join("cacerts");
    write_cacerts(&cacerts, true);
    std::fs::write(
        cacerts.join("ca-key.pem"),
        KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    let err = Ca::open(&CaConfig::new(state.path(), "cluster.local")).unwrap_err();
    assert!(err.to_string().contains("is not the key in"), "{err}");

    std::fs::write(
        cacerts.join("ca-key.pem"),
        "-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n",
    )
    .unwrap();
    let err = Ca::open(&CaConfig::new(state.path(), "cluster.local")).unwrap_err();
    assert!(err.to_string().contains("openssl pkcs8 -topk8"), "{err}");

    std::fs::remove_file(cacerts.join("ca-key.pem")).unwrap();
    let err = Ca::open(&CaConfig::new(state.path(), "cluster.local")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("{}: missing", cacerts.join("ca-key.pem").display())
    );
}

#[test]
fn the_serving_certificate_names_the_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let s = signer(dir.path(), None);
    let serving =
        s.ca.serving_cert(
            &["127.0.0.1".parse().unwrap()],
            &[
                "localhost".to_string(),
                "istiod.istio-system.svc".to_string(),
            ],
            SystemTime::now(),
        )
        .unwrap();
    let certs = citadel::pem::certificates("serving", &serving.chain_pem).unwrap();
    assert_eq!(certs.len(), 2);
    let (_, cert) = x509_parser::parse_x509_certificate(certs[0].as_ref()).unwrap();
    let names = &cert
        .subject_alternative_name()
        .unwrap()
        .unwrap()
        .value
        .general_names;
    assert_eq!(names.len(), 3);
    assert!(names.contains(&GeneralName::DNSName("istiod.istio-system.svc")));
    assert!(!format!("{serving:?}").contains("PRIVATE KEY"));
}

#[test]
fn a_plug_in_ca_follows_its_files_and_keeps_signing_through_a_broken_set() {
    let state = tempfile::tempdir().unwrap();
    let cacerts = state.path().join("cacerts");
    let (first_root, _) = write_cacerts(&cacerts, true);
    let s = signer(state.path(), None);
    assert!(!s.ca.reload().unwrap(), "nothing changed yet");
    let now = SystemTime::now();
    let token = s.tokens.mint("a", "b", HOUR, now).unwrap();
    let sign = || {
        s.create_certificate(
            Credential::Bearer(&token),
            &csr(&[]),
            0,
            now,
            Instant::now(),
        )
        .unwrap()
    };

    // Half a replacement (a new key beside the old certificate) does not
    // make a CA: an error, and the CA signs as before.
    let other = tempfile::tempdir().unwrap();
    let (new_root, new_intermediate) = write_cacerts(other.path(), true);
    std::fs::copy(other.path().join("ca-key.pem"), cacerts.join("ca-key.pem")).unwrap();
    assert!(s.ca.reload().is_err());
    let signed = sign();
    assert!(verify::workload_chain(&signed.chain, &s.ca.roots(), now).is_ok());
    assert_eq!(*s.ca.trust_bundle_pem(), *first_root);

    // The whole new set: the CA signs with it from the next certificate on.
    for name in ["ca-cert.pem", "root-cert.pem", "cert-chain.pem"] {
        std::fs::copy(other.path().join(name), cacerts.join(name)).unwrap();
    }
    assert!(s.ca.reload().unwrap());
    assert!(!s.ca.reload().unwrap());
    assert_eq!(*s.ca.trust_bundle_pem(), *new_root);
    let signed = sign();
    assert_eq!(signed.chain[1], new_intermediate);
    assert!(verify::workload_chain(&signed.chain, &s.ca.roots(), now).is_ok());
}
