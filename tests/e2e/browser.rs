//! A headless Chromium for the dashboard's tests, driven over the DevTools
//! protocol (a WebSocket on loopback): navigate, evaluate, screenshot.
//!
//! ```text
//! chromium --headless --remote-debugging-port=0 ──► DevToolsActivePort (port)
//!   GET /json/list ──► the page's webSocketDebuggerUrl ──► {id, method, params} ⇄ {id, result}
//! ```
//!
//! Debian's `chromium` (installed by `scripts/setup` as root). Where there
//! is none, [`Browser::start`] says so and the test is skipped.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::harness::wait_for;

/// Only a guard against a hang.
const LIMIT: Duration = Duration::from_secs(30);

pub struct Browser {
    _child: Child,
    _profile: tempfile::TempDir,
    page: WebSocketStream<MaybeTlsStream<TcpStream>>,
    next_id: u64,
}

/// The Chromium to run: `BOWLINE_CHROMIUM`, else the first of Debian's
/// names on PATH or in /usr/bin.
pub fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("BOWLINE_CHROMIUM") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]);
    for dir in dirs {
        for name in ["chromium", "chromium-browser", "google-chrome"] {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

impl Browser {
    /// A browser with one blank page, `None` (after saying so) where no
    /// Chromium is installed.
    pub async fn start(what: &str) -> Option<Browser> {
        let Some(binary) = chromium() else {
            eprintln!(
                "SKIPPED: {what}: no Chromium (install Debian's chromium: ./scripts/setup does as root, or set BOWLINE_CHROMIUM)"
            );
            return None;
        };
        let profile = tempfile::tempdir().unwrap();
        let child = Command::new(&binary)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--no-default-browser-check",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--disable-extensions",
                "--hide-scrollbars",
                "--remote-debugging-address=127.0.0.1",
                "--remote-debugging-port=0",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg("about:blank")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", binary.display()));
        let port_file = profile.path().join("DevToolsActivePort");
        wait_for("Chromium's DevTools port", LIMIT, || {
            let ready = std::fs::read_to_string(&port_file).is_ok_and(|s| s.lines().count() >= 2);
            async move { ready }
        })
        .await;
        let port: u16 = std::fs::read_to_string(&port_file)
            .unwrap()
            .lines()
            .next()
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let http = reqwest::Client::builder().no_proxy().build().unwrap();
        let list_url = format!("http://127.0.0.1:{port}/json/list");
        let page_url = Arc::new(Mutex::new(None::<String>));
        wait_for("Chromium's blank page", LIMIT, || {
            let (http, list_url, found) = (http.clone(), list_url.clone(), page_url.clone());
            async move {
                let Ok(response) = http.get(&list_url).send().await else {
                    return false;
                };
                let targets: Value = response.json().await.unwrap_or_default();
                let url = targets.as_array().and_then(|t| {
                    t.iter()
                        .find(|t| t["type"] == "page")
                        .and_then(|t| t["webSocketDebuggerUrl"].as_str())
                        .map(str::to_string)
                });
                let ready = url.is_some();
                *found.lock().unwrap() = url;
                ready
            }
        })
        .await;
        let page_url = page_url.lock().unwrap().take().unwrap();
        let (page, _) = tokio_tungstenite::connect_async(page_url)
            .await
            .expect("the page's DevTools socket");
        Some(Browser {
            _child: child,
            _profile: profile,
            page,
            next_id: 0,
        })
    }

    /// Sends one command and returns its result (events in between are
    /// dropped); panics on a protocol error.
    pub async fn call(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let message = json!({"id": id, "method": method, "params": params}).to_string();
        self.page.send(Message::Text(message.into())).await.unwrap();
        loop {
            let frame = tokio::time::timeout(LIMIT * 2, self.page.next())
                .await
                .unwrap_or_else(|_| panic!("no answer to {method} within the limit"))
                .expect("the DevTools socket closed")
                .unwrap();
            let Message::Text(text) = frame else { continue };
            let value: Value = serde_json::from_str(&text).unwrap();
            if value["id"] != id {
                continue;
            }
            if let Some(error) = value.get("error") {
                panic!("{method}: {error}");
            }
            return value["result"].clone();
        }
    }

    /// The page's size (CSS pixels).
    pub async fn resize(&mut self, width: u32, height: u32) {
        self.call(
            "Emulation.setDeviceMetricsOverride",
            json!({"width": width, "height": height, "deviceScaleFactor": 1, "mobile": false}),
        )
        .await;
    }

    pub async fn navigate(&mut self, url: &str) {
        self.call("Page.navigate", json!({"url": url})).await;
    }

    /// The value of a JavaScript expression (awaited if a promise); panics
    /// with the page's exception.
    pub async fn eval(&mut self, expression: &str) -> Value {
        let result = self
            .call(
                "Runtime.evaluate",
                json!({"expression": expression, "awaitPromise": true, "returnByValue": true}),
            )
            .await;
        if let Some(exception) = result.get("exceptionDetails") {
            panic!("{expression}: {exception}");
        }
        result["result"]["value"].clone()
    }

    /// Waits in the page until `condition` (a JavaScript expression) is
    /// true, polling there; panics with `what` after the limit, with
    /// `explain` (another expression) evaluated for the message.
    pub async fn wait_until(&mut self, what: &str, condition: &str, explain: &str) {
        let script = format!(
            r#"new Promise((resolve) => {{
                const deadline = Date.now() + {limit};
                const check = () => {{
                    let ok = false;
                    try {{ ok = Boolean({condition}); }} catch (e) {{ ok = false; }}
                    if (ok) resolve(true);
                    else if (Date.now() > deadline) resolve(false);
                    else setTimeout(check, 50);
                }};
                check();
            }})"#,
            limit = LIMIT.as_millis() * 2,
        );
        if self.eval(&script).await != Value::Bool(true) {
            let seen = self.eval(explain).await;
            panic!("the dashboard never showed {what}; it shows: {seen}");
        }
    }

    /// A PNG of the page as it is, written to `path`.
    pub async fn screenshot(&mut self, path: &Path) {
        use base64::Engine;
        let result = self
            .call(
                "Page.captureScreenshot",
                json!({"format": "png", "captureBeyondViewport": false}),
            )
            .await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(result["data"].as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
        eprintln!("screenshot: {}", path.display());
    }
}
