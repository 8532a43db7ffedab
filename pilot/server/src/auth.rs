//! Who may use the admin API: a bearer token for every mutating request
//! and, with `--admin-read-auth`, for reads too, except `/healthz` and
//! `/metrics`, which probes and scrapers need. The token is the state
//! directory's `admin-token` file, read again whenever the file changes
//! (`bowline admin-token rotate`), so a rotation needs no restart.
//!
//! ```text
//! request ──► needs_token(method, path, read_auth)? ──no──► handler
//!                    │ yes
//!                    ▼
//!   Authorization: Bearer T, T == the file's token (constant time) ──► handler, else 401
//! ```
//!
//! `POST /validate` needs none: the API server calls it (and it changes
//! nothing). A refusal never says what the token is, nor echoes the one sent.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The token's file and whether reads need it.
#[derive(Debug)]
pub struct AdminAuth {
    file: PathBuf,
    read_auth: bool,
    /// The file's modification time and length when read, and its token.
    cached: Mutex<Option<(SystemTime, u64, String)>>,
}

impl AdminAuth {
    pub fn new(file: PathBuf, read_auth: bool) -> Self {
        AdminAuth {
            file,
            read_auth,
            cached: Mutex::new(None),
        }
    }

    /// The token now in the file; `None` when it cannot be read (then
    /// nothing that needs the token is allowed).
    fn token(&self) -> Option<String> {
        let meta = std::fs::metadata(&self.file).ok()?;
        let stamp = (meta.modified().ok()?, meta.len());
        let mut cached = match self.cached.lock() {
            Ok(cached) => cached,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((modified, len, token)) = cached.as_ref()
            && (*modified, *len) == stamp
        {
            return Some(token.clone());
        }
        let token = std::fs::read_to_string(&self.file).ok()?.trim().to_string();
        if token.is_empty() {
            return None;
        }
        *cached = Some((stamp.0, stamp.1, token.clone()));
        Some(token)
    }

    /// Whether `authorization` (the header's value) carries the token.
    fn accepts(&self, authorization: Option<&str>) -> bool {
        let Some(sent) = authorization.and_then(bearer) else {
            return false;
        };
        self.token()
            .is_some_and(|token| same(token.as_bytes(), sent.as_bytes()))
    }
}

/// Whether a request needs the token.
pub fn needs_token(method: &Method, path: &str, read_auth: bool) -> bool {
    if matches!(path, "/healthz" | "/metrics" | "/validate") {
        return false;
    }
    if matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) {
        return read_auth;
    }
    true
}

/// The token of `Bearer TOKEN` (the scheme in any case, as RFC 6750 allows).
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

/// Equality that takes as long whatever bytes differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The middleware: `axum::middleware::from_fn_with_state(auth, check)`.
pub async fn check(State(auth): State<Arc<AdminAuth>>, request: Request, next: Next) -> Response {
    if !needs_token(request.method(), request.uri().path(), auth.read_auth) {
        return next.run(request).await;
    }
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    if auth.accepts(authorization) {
        return next.run(request).await;
    }
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        axum::Json(serde_json::json!({
            "error": "this request needs the admin token: Authorization: Bearer TOKEN, the token in the state directory's admin-token file"
        })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_need_the_token_reads_only_when_asked_probes_never() {
        assert!(needs_token(&Method::POST, "/api/v1/apply", false));
        assert!(needs_token(&Method::DELETE, "/api/v1/config/x", false));
        assert!(!needs_token(&Method::GET, "/api/v1/proxies", false));
        assert!(needs_token(&Method::GET, "/api/v1/proxies", true));
        for open in ["/healthz", "/metrics"] {
            assert!(!needs_token(&Method::GET, open, true), "{open}");
        }
        assert!(!needs_token(&Method::POST, "/validate", true));
    }

    #[test]
    fn the_token_is_read_again_when_the_file_changes() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin-token");
        std::fs::write(&file, "first\n").unwrap();
        let auth = AdminAuth::new(file.clone(), false);
        assert!(auth.accepts(Some("Bearer first")));
        assert!(auth.accepts(Some("bearer  first ")));
        assert!(!auth.accepts(Some("Bearer firsT")));
        assert!(!auth.accepts(Some("Basic first")));
        assert!(!auth.accepts(None));
        std::fs::write(&file, "second-token\n").unwrap();
        assert!(auth.accepts(Some("Bearer second-token")));
        assert!(!auth.accepts(Some("Bearer first")));
        std::fs::remove_file(&file).unwrap();
        assert!(
            !auth.accepts(Some("Bearer second-token")),
            "no file, no access"
        );
    }
}
