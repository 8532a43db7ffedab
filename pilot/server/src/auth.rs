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
//! nothing). Nor do the dashboard's page and files (`/`, `/ui/...`), which
//! hold no mesh data. A refusal never says what the token is, nor echoes
//! the one sent.
//!
//! The dashboard's session: a browser's `EventSource` cannot send an
//! `Authorization` header, so the page trades the token once for a cookie
//! (`POST /api/v1/session` with the bearer token; `DELETE` ends it). The
//! cookie is `HttpOnly` and `SameSite=Strict`, lasts 12 hours, ends when the
//! token is rotated, and is good for reads only: every write still needs
//! the bearer token, so a page elsewhere cannot make the browser change the
//! mesh with it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

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
    /// Dashboard sessions by cookie value.
    sessions: Mutex<HashMap<String, Session>>,
}

/// The path that opens (POST) and ends (DELETE) a dashboard session.
pub const SESSION_PATH: &str = "/api/v1/session";
/// The session cookie's name.
pub const SESSION_COOKIE: &str = "bowline_session";
const SESSION_LIFETIME: Duration = Duration::from_secs(12 * 3600);
/// Sessions kept at once; opening one more ends the oldest.
const MAX_SESSIONS: usize = 256;

#[derive(Debug)]
struct Session {
    expires: Instant,
    /// A hash of the token the session was opened with: a rotated token
    /// ends every session opened with the old one.
    token: u64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl AdminAuth {
    pub fn new(file: PathBuf, read_auth: bool) -> Self {
        AdminAuth {
            file,
            read_auth,
            cached: Mutex::new(None),
            sessions: Mutex::default(),
        }
    }

    /// The token now in the file; `None` when it cannot be read (then
    /// nothing that needs the token is allowed).
    fn token(&self) -> Option<String> {
        let meta = std::fs::metadata(&self.file).ok()?;
        let stamp = (meta.modified().ok()?, meta.len());
        let mut cached = lock(&self.cached);
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

impl AdminAuth {
    /// A new session for a caller that showed the token; its cookie value.
    /// `None` when no random value can be had.
    fn open_session(&self, now: Instant) -> Option<String> {
        use ring::rand::{SecureRandom, SystemRandom};
        let token = xxhash_rust::xxh3::xxh3_64(self.token()?.as_bytes());
        let mut bytes = [0u8; 32];
        SystemRandom::new().fill(&mut bytes).ok()?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        let mut sessions = lock(&self.sessions);
        sessions.retain(|_, s| s.expires > now);
        if sessions.len() >= MAX_SESSIONS
            && let Some(oldest) = sessions
                .iter()
                .min_by_key(|(_, s)| s.expires)
                .map(|(id, _)| id.clone())
        {
            sessions.remove(&oldest);
        }
        sessions.insert(
            id.clone(),
            Session {
                expires: now + SESSION_LIFETIME,
                token,
            },
        );
        Some(id)
    }

    /// Whether the `Cookie` header carries a live session opened with the
    /// token now in force.
    fn session_accepts(&self, cookies: Option<&str>, now: Instant) -> bool {
        let Some(id) = cookies.and_then(session_cookie) else {
            return false;
        };
        let Some(token) = self.token() else {
            return false;
        };
        let token = xxhash_rust::xxh3::xxh3_64(token.as_bytes());
        lock(&self.sessions)
            .get(id)
            .is_some_and(|s| s.expires > now && s.token == token)
    }

    fn close_session(&self, cookies: Option<&str>) {
        if let Some(id) = cookies.and_then(session_cookie) {
            lock(&self.sessions).remove(id);
        }
    }
}

/// The session cookie's value in a `Cookie` header.
fn session_cookie(header: &str) -> Option<&str> {
    header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == SESSION_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

/// Whether a request needs the token.
pub fn needs_token(method: &Method, path: &str, read_auth: bool) -> bool {
    if matches!(path, "/healthz" | "/metrics" | "/validate" | "/") || path.starts_with("/ui/") {
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
/// It also answers [`SESSION_PATH`] itself, as it keeps the sessions.
pub async fn check(State(auth): State<Arc<AdminAuth>>, request: Request, next: Next) -> Response {
    match decide(&auth, &request) {
        Some(answer) => answer,
        None => next.run(request).await,
    }
}

/// The answer the middleware gives itself, or `None` to pass the request on.
fn decide(auth: &AdminAuth, request: &Request) -> Option<Response> {
    let header_of = |name| {
        request
            .headers()
            .get(name)
            .and_then(|v: &header::HeaderValue| v.to_str().ok())
    };
    let authorization = header_of(header::AUTHORIZATION);
    let cookies = header_of(header::COOKIE);
    let now = Instant::now();
    let (method, path) = (request.method(), request.uri().path());
    if path == SESSION_PATH {
        return Some(session(auth, method, authorization, cookies, now));
    }
    if !needs_token(method, path, auth.read_auth) {
        return None;
    }
    let read = matches!(*method, Method::GET | Method::HEAD);
    if auth.accepts(authorization) || (read && auth.session_accepts(cookies, now)) {
        return None;
    }
    Some(unauthorized())
}

/// `POST /api/v1/session` (with the token): a session cookie for the
/// dashboard; `DELETE`: the session ends.
fn session(
    auth: &AdminAuth,
    method: &Method,
    authorization: Option<&str>,
    cookies: Option<&str>,
    now: Instant,
) -> Response {
    match *method {
        Method::POST => {
            if !auth.accepts(authorization) {
                return unauthorized();
            }
            let Some(id) = auth.open_session(now) else {
                return (
                    StatusCode::SERVICE_UNAVAILABLE,
                    axum::Json(serde_json::json!({"error": "no session can be opened now"})),
                )
                    .into_response();
            };
            let cookie = format!(
                "{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}",
                SESSION_LIFETIME.as_secs()
            );
            (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
        }
        Method::DELETE => {
            auth.close_session(cookies);
            let cookie = format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
            (StatusCode::NO_CONTENT, [(header::SET_COOKIE, cookie)]).into_response()
        }
        _ => (
            StatusCode::METHOD_NOT_ALLOWED,
            [(header::ALLOW, "POST, DELETE")],
        )
            .into_response(),
    }
}

fn unauthorized() -> Response {
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

    fn request(method: Method, path: &str, headers: &[(header::HeaderName, &str)]) -> Request {
        let mut builder = axum::http::Request::builder().method(method).uri(path);
        for (name, value) in headers {
            builder = builder.header(name, *value);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    /// The status `decide` answers with, 0 when it passes the request on.
    fn status(auth: &AdminAuth, request: &Request) -> u16 {
        decide(auth, request).map_or(0, |r| r.status().as_u16())
    }

    #[test]
    fn a_session_cookie_opens_reads_only_and_ends_with_the_token() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin-token");
        std::fs::write(&file, "secret\n").unwrap();
        let auth = AdminAuth::new(file.clone(), true);
        // The page and its files need nothing; the data does.
        assert_eq!(status(&auth, &request(Method::GET, "/", &[])), 0);
        assert_eq!(
            status(&auth, &request(Method::GET, "/ui/dashboard.js", &[])),
            0
        );
        assert_eq!(
            status(&auth, &request(Method::GET, "/api/v1/proxies", &[])),
            401
        );
        // No session without the token.
        let open = |token: &str| {
            decide(
                &auth,
                &request(
                    Method::POST,
                    SESSION_PATH,
                    &[(header::AUTHORIZATION, &format!("Bearer {token}"))],
                ),
            )
            .unwrap()
        };
        assert_eq!(open("guess").status(), 401);
        let opened = open("secret");
        assert_eq!(opened.status(), 204);
        let set = opened.headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_string();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        assert!(
            !set.contains("secret"),
            "the cookie is not the token: {set}"
        );
        let cookie = set.split(';').next().unwrap().to_string();
        let with_cookie = |method: Method, path: &str| {
            status(
                &auth,
                &request(
                    method,
                    path,
                    &[(header::COOKIE, &format!("theme=dark; {cookie}"))],
                ),
            )
        };
        assert_eq!(with_cookie(Method::GET, "/api/v1/proxies"), 0);
        assert_eq!(with_cookie(Method::GET, "/api/v1/events"), 0);
        // Writes still need the bearer token.
        assert_eq!(with_cookie(Method::POST, "/api/v1/apply"), 401);
        assert_eq!(with_cookie(Method::DELETE, "/api/v1/config/x/y/z/w"), 401);
        // A forged cookie opens nothing.
        let forged = request(
            Method::GET,
            "/api/v1/proxies",
            &[(header::COOKIE, "bowline_session=00ff")],
        );
        assert_eq!(status(&auth, &forged), 401);
        // A rotated token ends the session.
        std::fs::write(&file, "rotated-token\n").unwrap();
        assert_eq!(with_cookie(Method::GET, "/api/v1/proxies"), 401);
        // Logging out ends a session too.
        std::fs::write(&file, "secret\n").unwrap();
        let cookie = open("secret").headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let read = request(
            Method::GET,
            "/api/v1/proxies",
            &[(header::COOKIE, cookie.as_str())],
        );
        assert_eq!(status(&auth, &read), 0);
        let closed = status(
            &auth,
            &request(
                Method::DELETE,
                SESSION_PATH,
                &[(header::COOKIE, cookie.as_str())],
            ),
        );
        assert_eq!(closed, 204);
        assert_eq!(status(&auth, &read), 401);
    }

    #[test]
    fn sessions_expire_and_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("admin-token");
        std::fs::write(&file, "secret").unwrap();
        let auth = AdminAuth::new(file, true);
        let t0 = Instant::now();
        let first = auth.open_session(t0).unwrap();
        let cookie = format!("{SESSION_COOKIE}={first}");
        assert!(auth.session_accepts(Some(&cookie), t0 + Duration::from_secs(60)));
        assert!(!auth.session_accepts(Some(&cookie), t0 + SESSION_LIFETIME));
        for i in 0..MAX_SESSIONS as u64 + 10 {
            auth.open_session(t0 + Duration::from_millis(i)).unwrap();
        }
        assert_eq!(lock(&auth.sessions).len(), MAX_SESSIONS);
        assert!(
            !auth.session_accepts(Some(&cookie), t0 + Duration::from_secs(1)),
            "the oldest went first"
        );
    }
}
