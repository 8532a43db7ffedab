//! `bowline echo`: a small HTTP application for demos and tests.
//!
//! Every request, whatever its method and path, is answered with a JSON
//! description of itself and of the workload that served it:
//!
//! ```text
//! GET /any/path?x=1 ──► 200 {"workload","namespace","version","method","path","query","host","headers"}
//! /status/{code}    ──► that status, same body
//! /delay/{ms}       ──► 200 after ms milliseconds (at most 60000)
//! /flaky/{percent}  ──► 503 for that share of requests at random, else 200
//! ```
//!
//! Invalid numbers answer 400 with `{"error": ...}`. Every response carries
//! `x-bowline-workload: NAME`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// Response header naming the workload that answered.
pub(crate) const WORKLOAD_HEADER: &str = "x-bowline-workload";
/// Longest delay `/delay/{ms}` accepts.
pub(crate) const MAX_DELAY_MS: u64 = 60_000;

/// Serve the echo application.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct EchoArgs {
    /// Address to listen on, `IP:PORT`.
    #[arg(long)]
    pub(crate) addr: SocketAddr,
    /// Workload name reported in responses.
    #[arg(long, default_value = "echo")]
    pub(crate) workload: String,
    /// Namespace reported in responses.
    #[arg(long, default_value = "default")]
    pub(crate) namespace: String,
    /// Version reported in responses.
    #[arg(long, default_value = "v1")]
    pub(crate) version: String,
}

/// Who is answering: reported in every response body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct EchoInfo {
    pub(crate) workload: String,
    pub(crate) namespace: String,
    pub(crate) version: String,
}

/// Runs `bowline echo` until Ctrl-C or SIGTERM.
pub(crate) async fn run(args: EchoArgs) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("cannot listen on {}", args.addr))?;
    let info = EchoInfo {
        workload: args.workload,
        namespace: args.namespace,
        version: args.version,
    };
    tracing::info!(addr = %args.addr, workload = %info.workload, version = %info.version, "echo listening");
    let shutdown = async {
        crate::signal::shutdown().await;
        tracing::info!("echo shutting down");
    };
    serve(listener, info, shutdown).await?;
    Ok(())
}

/// Serves the echo application on `listener` until `shutdown` resolves.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    info: EchoInfo,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(info))
        .with_graceful_shutdown(shutdown)
        .await
}

fn router(info: EchoInfo) -> Router {
    Router::new()
        .route("/status/{code}", any(status))
        .route("/delay/{ms}", any(delay))
        .route("/flaky/{percent}", any(flaky))
        .fallback(echo)
        .with_state(Arc::new(info))
}

type Info = State<Arc<EchoInfo>>;

async fn echo(State(info): Info, req: Request) -> Response {
    reply(&info, StatusCode::OK, &req)
}

async fn status(State(info): Info, Path(code): Path<String>, req: Request) -> Response {
    match code
        .parse::<u16>()
        .ok()
        .filter(|c| (200..=599).contains(c))
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        Some(code) => reply(&info, code, &req),
        None => bad_request(&info, format!("invalid status {code:?}: expected 200-599")),
    }
}

async fn delay(State(info): Info, Path(ms): Path<String>, req: Request) -> Response {
    match ms.parse::<u64>().ok().filter(|ms| *ms <= MAX_DELAY_MS) {
        Some(ms) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            reply(&info, StatusCode::OK, &req)
        }
        None => bad_request(
            &info,
            format!("invalid delay {ms:?}: expected 0-{MAX_DELAY_MS} milliseconds"),
        ),
    }
}

async fn flaky(State(info): Info, Path(percent): Path<String>, req: Request) -> Response {
    match percent.parse::<u8>().ok().filter(|p| *p <= 100) {
        Some(p) => {
            let code = if fastrand::u8(0..100) < p {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::OK
            };
            reply(&info, code, &req)
        }
        None => bad_request(
            &info,
            format!("invalid percentage {percent:?}: expected 0-100"),
        ),
    }
}

/// The body describing a request.
#[derive(Debug, Serialize)]
struct Echo<'a> {
    workload: &'a str,
    namespace: &'a str,
    version: &'a str,
    method: &'a str,
    path: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    query: Option<&'a str>,
    host: Option<String>,
    headers: Map<String, Value>,
}

fn reply(info: &EchoInfo, code: StatusCode, req: &Request) -> Response {
    let uri = req.uri();
    let host = req
        .headers()
        .get(axum::http::header::HOST)
        .map(|h| String::from_utf8_lossy(h.as_bytes()).into_owned())
        .or_else(|| uri.authority().map(|a| a.to_string()));
    let body = Echo {
        workload: &info.workload,
        namespace: &info.namespace,
        version: &info.version,
        method: req.method().as_str(),
        path: uri.path(),
        query: uri.query(),
        host,
        headers: headers_to_json(req.headers()),
    };
    tagged(info, (code, axum::Json(body)).into_response())
}

fn bad_request(info: &EchoInfo, error: String) -> Response {
    let body = axum::Json(json!({ "error": error }));
    tagged(info, (StatusCode::BAD_REQUEST, body).into_response())
}

fn tagged(info: &EchoInfo, mut response: Response) -> Response {
    if let Ok(value) = HeaderValue::from_str(&info.workload) {
        response
            .headers_mut()
            .insert(HeaderName::from_static(WORKLOAD_HEADER), value);
    }
    response
}

/// Header names are already lower case in `HeaderMap`; repeated headers are
/// joined with `,`.
fn headers_to_json(headers: &HeaderMap) -> Map<String, Value> {
    let mut out = Map::new();
    for name in headers.keys() {
        let joined = headers
            .get_all(name)
            .iter()
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .collect::<Vec<_>>()
            .join(",");
        out.insert(name.as_str().to_string(), Value::String(joined));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    struct Server {
        base: String,
        stop: Option<oneshot::Sender<()>>,
        task: tokio::task::JoinHandle<std::io::Result<()>>,
    }

    impl Server {
        async fn start() -> Server {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let info = EchoInfo {
                workload: "reviews-v2".into(),
                namespace: "shop".into(),
                version: "v2".into(),
            };
            let (stop, stopped) = oneshot::channel();
            let task = tokio::spawn(serve(listener, info, async {
                let _ = stopped.await;
            }));
            Server {
                base,
                stop: Some(stop),
                task,
            }
        }

        async fn get(&self, path: &str) -> reqwest::Response {
            reqwest::get(format!("{}{path}", self.base)).await.unwrap()
        }

        async fn shutdown(mut self) {
            let _ = self.stop.take().unwrap().send(());
            self.task.await.unwrap().unwrap();
        }
    }

    #[tokio::test]
    async fn echoes_request() {
        let server = Server::start().await;
        let response = reqwest::Client::new()
            .put(format!("{}/a/b?x=1&y=2", server.base))
            .header("X-Custom-Thing", "one")
            .header("host", "reviews.shop:9080")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()[WORKLOAD_HEADER], "reviews-v2");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["workload"], "reviews-v2");
        assert_eq!(body["namespace"], "shop");
        assert_eq!(body["version"], "v2");
        assert_eq!(body["method"], "PUT");
        assert_eq!(body["path"], "/a/b");
        assert_eq!(body["query"], "x=1&y=2");
        assert_eq!(body["host"], "reviews.shop:9080");
        assert_eq!(body["headers"]["x-custom-thing"], "one");
        assert_eq!(body["headers"]["host"], "reviews.shop:9080");
        assert!(body["headers"].get("X-Custom-Thing").is_none());
        server.shutdown().await;
    }

    #[tokio::test]
    async fn joins_repeated_headers_and_omits_empty_query() {
        let server = Server::start().await;
        let mut headers = HeaderMap::new();
        headers.append("x-multi", HeaderValue::from_static("a"));
        headers.append("x-multi", HeaderValue::from_static("b"));
        let body: Value = reqwest::Client::new()
            .get(format!("{}/", server.base))
            .headers(headers)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(body["headers"]["x-multi"], "a,b");
        assert_eq!(body["path"], "/");
        assert!(body.get("query").is_none());
        server.shutdown().await;
    }

    #[tokio::test]
    async fn status_code_is_returned() {
        let server = Server::start().await;
        let response = server.get("/status/418").await;
        assert_eq!(response.status(), 418);
        assert_eq!(response.headers()[WORKLOAD_HEADER], "reviews-v2");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["path"], "/status/418");
        assert_eq!(body["workload"], "reviews-v2");
        assert_eq!(server.get("/status/503").await.status(), 503);
        server.shutdown().await;
    }

    #[tokio::test]
    async fn delay_answers_ok() {
        let server = Server::start().await;
        let response = server.get("/delay/50").await;
        assert_eq!(response.status(), 200);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["path"], "/delay/50");
        server.shutdown().await;
    }

    #[tokio::test]
    async fn flaky_follows_percentage() {
        let server = Server::start().await;
        for _ in 0..10 {
            assert_eq!(server.get("/flaky/0").await.status(), 200);
            assert_eq!(server.get("/flaky/100").await.status(), 503);
        }
        server.shutdown().await;
    }

    #[tokio::test]
    async fn bad_numbers_are_rejected() {
        let server = Server::start().await;
        for path in [
            "/status/abc",
            "/status/99",
            "/status/600",
            "/status/1000",
            "/delay/-1",
            "/delay/soon",
            "/delay/60001",
            "/flaky/101",
            "/flaky/half",
        ] {
            let response = server.get(path).await;
            assert_eq!(response.status(), 400, "{path}");
            assert_eq!(response.headers()[WORKLOAD_HEADER], "reviews-v2");
            let body: Value = response.json().await.unwrap();
            assert!(
                body["error"].as_str().unwrap().starts_with("invalid"),
                "{path}: {body}"
            );
        }
        server.shutdown().await;
    }
}
