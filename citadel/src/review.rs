//! Kubernetes service-account tokens, checked by the API server's
//! TokenReview: what to ask, and what its answer proves. Pure; the call
//! itself is the caller's (the control plane holds the Kubernetes client).
//!
//! ```text
//! bearer token ─► issuer_of (unverified peek) == "bowline"? ─► Tokens::verify (ours)
//!                                            otherwise      ─► TokenReview{token, audiences} ─► API server
//!   status{authenticated, user.username = system:serviceaccount:NS:SA, audiences} ─► reviewed ─► (NS, SA)
//! ```
//!
//! As istiod does, the review asks for the audiences the CA accepts
//! (`istio-ca`, which Istio's agents request for their projected token,
//! and Bowline's own `bowline-ca`), and the answer must name one of them:
//! a token bound to any other audience (a token for some other service)
//! is refused. Only service accounts get certificates: a user or a node
//! that authenticates is refused as permission denied.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::Refusal;
use crate::token::{TOKEN_AUDIENCE, TOKEN_ISSUER};

/// The audiences a reviewed token may be bound to.
pub const AUDIENCES: [&str; 2] = ["istio-ca", TOKEN_AUDIENCE];

/// Why a reviewed token proves nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("token review: {0}")]
    NotAuthenticated(String),
    #[error("token review: the token is bound to {0:?}, none of {AUDIENCES:?}")]
    Audience(Vec<String>),
    #[error("token review: {0:?} is not a service account")]
    NotServiceAccount(String),
    #[error("token review: an answer that is not a TokenReview: {0}")]
    Malformed(String),
    #[error("token review: the API server could not be asked: {0}")]
    Unavailable(String),
}

impl Error {
    pub fn refusal(&self) -> Refusal {
        match self {
            Error::NotAuthenticated(_) | Error::Audience(_) => Refusal::Unauthenticated,
            Error::NotServiceAccount(_) => Refusal::PermissionDenied,
            Error::Malformed(_) | Error::Unavailable(_) => Refusal::Internal,
        }
    }
}

/// The issuer a JWT claims, read without verifying anything: only to
/// choose who verifies it.
pub fn issuer_of(token: &str) -> Option<String> {
    let claims = token.split('.').nth(1)?;
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(claims).ok()?).ok()?;
    claims.get("iss")?.as_str().map(str::to_string)
}

/// Whether a bearer token is for the API server to review rather than
/// one this CA minted.
pub fn is_for_review(token: &str) -> bool {
    issuer_of(token).as_deref() != Some(TOKEN_ISSUER)
}

/// The TokenReview to create for `token`.
pub fn request(token: &str) -> Value {
    json!({
        "apiVersion": "authentication.k8s.io/v1",
        "kind": "TokenReview",
        "spec": {"token": token, "audiences": AUDIENCES},
    })
}

/// The service account (namespace, name) the API server's answer proves.
pub fn reviewed(answer: &Value) -> Result<(String, String), Error> {
    let status = answer
        .get("status")
        .ok_or_else(|| Error::Malformed("no status".into()))?;
    if status.get("authenticated").and_then(Value::as_bool) != Some(true) {
        let why = status
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("the token is not authenticated");
        return Err(Error::NotAuthenticated(why.to_string()));
    }
    // An API server answers with the audiences the token is bound to among
    // those asked; one that ignores audiences answers none, and is refused.
    let audiences: Vec<String> = status
        .get("audiences")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    if !audiences.iter().any(|a| AUDIENCES.contains(&a.as_str())) {
        return Err(Error::Audience(audiences));
    }
    let username = status
        .pointer("/user/username")
        .and_then(Value::as_str)
        .ok_or_else(|| Error::Malformed("no user.username".into()))?;
    match username
        .strip_prefix("system:serviceaccount:")
        .and_then(|rest| rest.split_once(':'))
    {
        Some((namespace, name))
            if !namespace.is_empty() && !name.is_empty() && !name.contains(':') =>
        {
            Ok((namespace.to_string(), name.to_string()))
        }
        _ => Err(Error::NotServiceAccount(username.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(authenticated: bool, username: &str, audiences: &[&str]) -> Value {
        json!({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
               "status": {"authenticated": authenticated,
                          "user": {"username": username, "groups": ["system:serviceaccounts"]},
                          "audiences": audiences}})
    }

    fn jwt(claims: Value) -> String {
        let part = |v: Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.sig", part(json!({"alg": "RS256"})), part(claims))
    }

    #[test]
    fn a_service_account_bound_to_istio_ca_is_its_namespace_and_name() {
        let ok = answer(true, "system:serviceaccount:shop:reviews", &["istio-ca"]);
        assert_eq!(reviewed(&ok), Ok(("shop".into(), "reviews".into())));
        let ours = answer(true, "system:serviceaccount:shop:reviews", &["bowline-ca"]);
        assert!(reviewed(&ours).is_ok());
    }

    #[test]
    fn other_audiences_users_and_failures_are_refused() {
        let vault = answer(true, "system:serviceaccount:shop:reviews", &["vault"]);
        assert_eq!(
            reviewed(&vault).unwrap_err().refusal(),
            Refusal::Unauthenticated
        );
        let none = answer(true, "system:serviceaccount:shop:reviews", &[]);
        assert!(matches!(reviewed(&none), Err(Error::Audience(_))));
        let user = answer(true, "alice", &["istio-ca"]);
        assert_eq!(
            reviewed(&user).unwrap_err().refusal(),
            Refusal::PermissionDenied
        );
        let odd = answer(true, "system:serviceaccount:shop", &["istio-ca"]);
        assert!(matches!(reviewed(&odd), Err(Error::NotServiceAccount(_))));
        let failed = json!({"status": {"authenticated": false, "error": "token expired"}});
        assert_eq!(
            reviewed(&failed),
            Err(Error::NotAuthenticated("token expired".into()))
        );
        assert!(matches!(reviewed(&json!({})), Err(Error::Malformed(_))));
    }

    #[test]
    fn only_tokens_another_issuer_claims_go_to_review() {
        let kubernetes = jwt(json!({"iss": "https://kubernetes.default.svc.cluster.local"}));
        assert!(is_for_review(&kubernetes));
        assert!(!is_for_review(&jwt(json!({"iss": "bowline"}))));
        // Not a JWT at all: the API server may still know it (a legacy token).
        assert!(is_for_review("opaque"));
    }

    #[test]
    fn the_review_asks_for_both_audiences() {
        let r = request("t");
        assert_eq!(r["spec"]["token"], "t");
        assert_eq!(r["spec"]["audiences"], json!(["istio-ca", "bowline-ca"]));
    }
}
