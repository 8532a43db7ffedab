//! Tokens workloads authenticate to the CA with, when there is no
//! Kubernetes to ask: compact JWTs signed ES256 with a key kept in the state
//! directory (`token-key.pem`, mode 0600), audience `bowline-ca`, subject
//! `system:serviceaccount:NAMESPACE:SERVICE-ACCOUNT` as Kubernetes writes
//! service-account tokens.
//!
//! ```text
//! mint:   {"alg":"ES256","typ":"JWT"} . {iss, sub, aud, iat, exp} . ES256(signing input)
//! verify: header alg == ES256 ─► signature ─► iss ─► aud ∋ bowline-ca ─► iat ≤ now < exp ─► SpiffeId
//! ```
//!
//! Every refusal is [`Refusal::Unauthenticated`]. Tokens that verified are
//! remembered (by their SHA-256, never the text) until they expire, so a
//! caller that renews often costs one signature check per token.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, KeyPair, UnparsedPublicKey};
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

use crate::state::{self, KEY_MODE, StateDir};
use crate::{Refusal, SpiffeId, pem};

/// The audience of the CA's tokens.
pub const TOKEN_AUDIENCE: &str = "bowline-ca";
/// The issuer the CA writes and expects.
pub const TOKEN_ISSUER: &str = "bowline";
/// The signing key's file in the state directory.
pub const KEY_FILE: &str = "token-key.pem";
/// How many verified tokens are remembered; past it the memory starts over.
const REMEMBERED: usize = 16_384;
/// Clock skew allowed on `iat`.
const SKEW: u64 = 60;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    State(#[from] state::Error),
    #[error("{0}: not a PKCS#8 P-256 key")]
    BadKey(String),
    #[error("token key: cannot generate")]
    Generate,
    #[error("token: cannot sign")]
    Sign,
    #[error("token: not a JWT")]
    Malformed,
    #[error("token: algorithm {0:?} is not ES256")]
    Algorithm(String),
    #[error("token: the signature does not verify")]
    Forged,
    #[error("token: issuer {0:?} is not {TOKEN_ISSUER:?}")]
    Issuer(String),
    #[error("token: audience is not {TOKEN_AUDIENCE:?}")]
    Audience,
    #[error("token: expired")]
    Expired,
    #[error("token: issued in the future")]
    NotYetValid,
    #[error("token: subject {0:?} is not system:serviceaccount:NAMESPACE:SERVICE-ACCOUNT")]
    Subject(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn refusal(&self) -> Refusal {
        match self {
            Error::State(_) | Error::BadKey(_) | Error::Generate | Error::Sign => Refusal::Internal,
            _ => Refusal::Unauthenticated,
        }
    }
}

#[derive(Serialize)]
struct Header<'a> {
    alg: &'a str,
    typ: &'a str,
}

#[derive(Deserialize)]
struct HeaderIn {
    alg: String,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    iss: String,
    sub: String,
    /// A string or a list of strings, as RFC 7519 allows.
    aud: serde_json::Value,
    iat: u64,
    exp: u64,
}

/// The token signing key: mints tokens and verifies them.
pub struct Tokens {
    key: EcdsaKeyPair,
    public: UnparsedPublicKey<Vec<u8>>,
    trust_domain: String,
    rng: SystemRandom,
    /// SHA-256 of a verified token → its identity and expiry (seconds).
    verified: Mutex<HashMap<[u8; 32], (SpiffeId, u64)>>,
}

impl std::fmt::Debug for Tokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tokens")
            .field("trust_domain", &self.trust_domain)
            .finish_non_exhaustive()
    }
}

impl Tokens {
    /// The state directory's token key, generated on first use.
    pub fn open(state: &StateDir, trust_domain: &str) -> Result<Self> {
        if state.read(KEY_FILE, KEY_MODE)?.is_none() {
            let rng = SystemRandom::new();
            let pkcs8 =
                EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .map_err(|_| Error::Generate)?;
            state.create(
                KEY_FILE,
                &pem::encode("PRIVATE KEY", pkcs8.as_ref()),
                KEY_MODE,
            )?;
        }
        let text = state
            .read(KEY_FILE, KEY_MODE)?
            .ok_or_else(|| Error::BadKey(state.file(KEY_FILE).display().to_string()))?;
        let what = state.file(KEY_FILE).display().to_string();
        let der = rustls_pki_types::PrivatePkcs8KeyDer::from_pem_slice(text.as_bytes())
            .map_err(|_| Error::BadKey(what.clone()))?;
        Tokens::from_pkcs8(&what, der.secret_pkcs8_der(), trust_domain)
    }

    /// A key from PKCS#8 DER; `what` names it in errors.
    pub fn from_pkcs8(what: &str, der: &[u8], trust_domain: &str) -> Result<Self> {
        let rng = SystemRandom::new();
        let key = EcdsaKeyPair::from_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|_| Error::BadKey(what.to_string()))?;
        let public = UnparsedPublicKey::new(
            &signature::ECDSA_P256_SHA256_FIXED,
            key.public_key().as_ref().to_vec(),
        );
        Ok(Tokens {
            key,
            public,
            trust_domain: trust_domain.to_string(),
            rng,
            verified: Mutex::new(HashMap::new()),
        })
    }

    /// A token for `namespace/service_account`, valid for `ttl` from `now`.
    pub fn mint(
        &self,
        namespace: &str,
        service_account: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<String> {
        self.mint_for(namespace, service_account, TOKEN_AUDIENCE, ttl, now)
    }

    /// [`Tokens::mint`] with another audience (tokens meant for something else).
    pub fn mint_for(
        &self,
        namespace: &str,
        service_account: &str,
        audience: &str,
        ttl: Duration,
        now: SystemTime,
    ) -> Result<String> {
        let iat = seconds(now);
        let claims = Claims {
            iss: TOKEN_ISSUER.to_string(),
            sub: format!("system:serviceaccount:{namespace}:{service_account}"),
            aud: serde_json::Value::String(audience.to_string()),
            iat,
            exp: iat.saturating_add(ttl.as_secs()),
        };
        let header = Header {
            alg: "ES256",
            typ: "JWT",
        };
        let mut input = encode_json(&header)?;
        input.push('.');
        input.push_str(&encode_json(&claims)?);
        let sig = self
            .key
            .sign(&self.rng, input.as_bytes())
            .map_err(|_| Error::Sign)?;
        input.push('.');
        input.push_str(&URL_SAFE_NO_PAD.encode(sig.as_ref()));
        Ok(input)
    }

    /// The identity a token proves at `now`.
    pub fn verify(&self, token: &str, now: SystemTime) -> Result<SpiffeId> {
        let now = seconds(now);
        let digest: [u8; 32] = ring::digest::digest(&ring::digest::SHA256, token.as_bytes())
            .as_ref()
            .try_into()
            .map_err(|_| Error::Malformed)?;
        if let Some((id, exp)) = self.remembered(&digest) {
            return if now < exp {
                Ok(id)
            } else {
                Err(Error::Expired)
            };
        }
        let (id, exp) = self.verify_uncached(token, now)?;
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= REMEMBERED {
            verified.retain(|_, (_, exp)| now < *exp);
            if verified.len() >= REMEMBERED {
                verified.clear();
            }
        }
        verified.insert(digest, (id.clone(), exp));
        Ok(id)
    }

    fn remembered(&self, digest: &[u8; 32]) -> Option<(SpiffeId, u64)> {
        let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        verified.get(digest).cloned()
    }

    fn verify_uncached(&self, token: &str, now: u64) -> Result<(SpiffeId, u64)> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(claims_b64), Some(sig), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::Malformed);
        };
        let header: HeaderIn = decode_json(header_b64)?;
        if header.alg != "ES256" {
            return Err(Error::Algorithm(header.alg));
        }
        let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| Error::Malformed)?;
        let input = &token[..header_b64.len() + 1 + claims_b64.len()];
        self.public
            .verify(input.as_bytes(), &sig)
            .map_err(|_| Error::Forged)?;
        let claims: Claims = decode_json(claims_b64)?;
        if claims.iss != TOKEN_ISSUER {
            return Err(Error::Issuer(claims.iss));
        }
        let audience_ok = match &claims.aud {
            serde_json::Value::String(a) => a == TOKEN_AUDIENCE,
            serde_json::Value::Array(list) => list.iter().any(|a| a == TOKEN_AUDIENCE),
            _ => false,
        };
        if !audience_ok {
            return Err(Error::Audience);
        }
        if now >= claims.exp {
            return Err(Error::Expired);
        }
        if claims.iat > now.saturating_add(SKEW) {
            return Err(Error::NotYetValid);
        }
        let subject = || Error::Subject(claims.sub.clone());
        let rest = claims
            .sub
            .strip_prefix("system:serviceaccount:")
            .ok_or_else(subject)?;
        let (namespace, service_account) = rest.split_once(':').ok_or_else(subject)?;
        let id = SpiffeId::in_domain(&self.trust_domain, namespace, service_account)
            .map_err(|_| subject())?;
        Ok((id, claims.exp))
    }
}

fn seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn encode_json(value: &impl Serialize) -> Result<String> {
    let json = serde_json::to_vec(value).map_err(|_| Error::Sign)?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T> {
    let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| Error::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| Error::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(dir: &std::path::Path) -> Tokens {
        Tokens::open(&StateDir::open(dir).unwrap(), "cluster.local").unwrap()
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn a_token_proves_its_service_account() {
        let dir = tempfile::tempdir().unwrap();
        let t = tokens(dir.path());
        let now = SystemTime::now();
        let token = t.mint("shop", "web", HOUR, now).unwrap();
        assert_eq!(t.verify(&token, now).unwrap(), SpiffeId::new("shop", "web"));
        // Again, from memory.
        assert_eq!(t.verify(&token, now).unwrap(), SpiffeId::new("shop", "web"));
    }

    #[test]
    fn the_key_survives_a_restart_and_is_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let now = SystemTime::now();
        let token = tokens(dir.path()).mint("a", "b", HOUR, now).unwrap();
        assert!(tokens(dir.path()).verify(&token, now).is_ok());
        let mode = std::fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn refuses_expired_forged_and_foreign_tokens() {
        let dir = tempfile::tempdir().unwrap();
        let other = tempfile::tempdir().unwrap();
        let t = tokens(dir.path());
        let now = SystemTime::now();

        let expired = t.mint("a", "b", HOUR, now - 2 * HOUR).unwrap();
        assert!(matches!(t.verify(&expired, now), Err(Error::Expired)));

        // A token remembered as valid expires all the same.
        let short = t.mint("a", "b", Duration::from_secs(10), now).unwrap();
        assert!(t.verify(&short, now).is_ok());
        assert!(matches!(
            t.verify(&short, now + Duration::from_secs(11)),
            Err(Error::Expired)
        ));

        let forged = tokens(other.path()).mint("a", "b", HOUR, now).unwrap();
        assert!(matches!(t.verify(&forged, now), Err(Error::Forged)));

        let audience = t.mint_for("a", "b", "kubernetes", HOUR, now).unwrap();
        assert!(matches!(t.verify(&audience, now), Err(Error::Audience)));

        // Claims edited after signing.
        let good = t.mint("a", "b", HOUR, now).unwrap();
        let parts: Vec<&str> = good.split('.').collect();
        let claims = format!(
            r#"{{"iss":"bowline","sub":"system:serviceaccount:kube-system:admin","aud":"bowline-ca","iat":0,"exp":{}}}"#,
            seconds(now) + 3600
        );
        let edited = format!(
            "{}.{}.{}",
            parts[0],
            URL_SAFE_NO_PAD.encode(claims),
            parts[2]
        );
        assert!(matches!(t.verify(&edited, now), Err(Error::Forged)));

        // alg "none" and friends.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#),
            parts[1]
        );
        assert!(matches!(t.verify(&none, now), Err(Error::Algorithm(_))));
        for bad in ["", "a.b", "a.b.c.d", "!!.??.**"] {
            assert!(matches!(t.verify(bad, now), Err(Error::Malformed)), "{bad}");
        }
        for e in [
            Error::Expired,
            Error::Forged,
            Error::Audience,
            Error::Malformed,
        ] {
            assert_eq!(e.refusal(), Refusal::Unauthenticated);
        }
    }
}
