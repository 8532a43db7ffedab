//! PEM in and out: certificates as text, one block each.

use base64::Engine;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// Why PEM text could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("{what}: not PEM certificates")]
    NotCertificates { what: String },
    #[error("{what}: holds no certificate")]
    Empty { what: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// DER as a PEM block with `label` (`CERTIFICATE`, `PRIVATE KEY`), lines of 64.
pub fn encode(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = String::with_capacity(body.len() + body.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    for line in body.as_bytes().chunks(64) {
        // base64 output is ASCII.
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// Every certificate in `text`, in order; `what` names the source in errors.
pub fn certificates(what: &str, text: &str) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| Error::NotCertificates {
            what: what.to_string(),
        })?;
    if certs.is_empty() {
        return Err(Error::Empty {
            what: what.to_string(),
        });
    }
    Ok(certs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_reads_back() {
        let der: Vec<u8> = (0..=255).collect();
        let text = encode("CERTIFICATE", &der);
        assert!(text.lines().all(|l| l.len() <= 64));
        let twice = format!("{text}{text}");
        let certs = certificates("test", &twice).unwrap();
        assert_eq!(certs.len(), 2);
        assert_eq!(certs[0].as_ref(), der.as_slice());
    }

    #[test]
    fn refuses_what_holds_no_certificate() {
        assert_eq!(
            certificates("root-cert.pem", "hello\n"),
            Err(Error::Empty {
                what: "root-cert.pem".into()
            })
        );
    }
}
