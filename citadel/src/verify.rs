//! Checking a workload's chain as its peers will: every signature up to a
//! root of the bundle, the validity periods, and both extended key usages
//! (a workload certificate serves and calls). What the agent does with a
//! chain it was given, and what the tests do with what the CA issued.

use std::time::{SystemTime, UNIX_EPOCH};

use rustls_pki_types::{CertificateDer, UnixTime};

use crate::{SpiffeId, identity, pem};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Pem(#[from] pem::Error),
    #[error("chain: empty")]
    Empty,
    #[error("trust bundle: root {index} is not a usable trust anchor")]
    Anchor { index: usize },
    #[error("chain: does not verify for {usage} ({reason})")]
    Untrusted { usage: &'static str, reason: String },
    #[error(transparent)]
    Identity(#[from] identity::Error),
}

/// Verifies `chain` (PEM blocks, the leaf first) against `roots` at `now`;
/// the leaf's SPIFFE id.
pub fn workload_chain(
    chain: &[String],
    roots: &[CertificateDer<'_>],
    now: SystemTime,
) -> Result<SpiffeId, Error> {
    let mut certs = Vec::with_capacity(chain.len());
    for (i, block) in chain.iter().enumerate() {
        certs.extend(pem::certificates(&format!("chain[{i}]"), block)?);
    }
    let (leaf, intermediates) = certs.split_first().ok_or(Error::Empty)?;
    let anchors = roots
        .iter()
        .enumerate()
        .map(|(index, r)| {
            webpki::anchor_from_trusted_cert(r)
                .map(|a| a.to_owned())
                .map_err(|_| Error::Anchor { index })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let end_entity = webpki::EndEntityCert::try_from(leaf).map_err(|e| Error::Untrusted {
        usage: "any use",
        reason: e.to_string(),
    })?;
    let time = UnixTime::since_unix_epoch(now.duration_since(UNIX_EPOCH).unwrap_or_default());
    for (usage, eku) in [
        ("serverAuth", webpki::KeyUsage::server_auth()),
        ("clientAuth", webpki::KeyUsage::client_auth()),
    ] {
        end_entity
            .verify_for_usage(
                webpki::ALL_VERIFICATION_ALGS,
                &anchors,
                intermediates,
                time,
                eku,
                None,
                None,
            )
            .map_err(|e| Error::Untrusted {
                usage,
                reason: e.to_string(),
            })?;
    }
    Ok(SpiffeId::of_certificate(leaf.as_ref())?)
}
