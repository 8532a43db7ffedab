//! The key sets of RequestAuthentications without inline `jwks`, fetched
//! by the control plane and inlined into the JWT filters, as istiod does,
//! so that sidecars need no route to the issuer.
//!
//! ```text
//! snapshot ──► every jwtRule's KeySource ──► GET jwksUri
//!                                        └─► GET ISSUER/.well-known/openid-configuration ──► GET its jwks_uri
//!        checked as a key set (what Envoy would refuse is never inlined) ──► watch ──► build loop ──► Snapshot::jwks
//! ```
//!
//! A source is fetched when a snapshot first names it, then again every
//! [`REFRESH`] (istiod's default interval); a failure keeps the last good
//! keys and is retried with a doubling delay up to [`REFRESH`]. Until a
//! source's first fetch succeeds its tokens are refused (see
//! `pilot_core::compile::jwt`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use pilot_core::snapshot::Snapshot;
use policy::security::KeySource;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{info, warn};

/// The fetched key sets, by source.
pub type KeySets = Arc<BTreeMap<KeySource, Arc<str>>>;

/// The sources whose last fetch failed, and why.
pub type Failures = Arc<BTreeMap<KeySource, String>>;

/// How often keys are fetched again.
pub const REFRESH: Duration = Duration::from_secs(20 * 60);
/// The first retry after a failure; it doubles up to [`REFRESH`].
const RETRY: Duration = Duration::from_secs(1);
/// A key set or discovery document larger than this is refused.
const MAX_BODY: usize = 1 << 20;
/// The system's roots, for `https` sources.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

#[derive(Debug)]
struct Source {
    due: Instant,
    failures: u32,
}

/// Follows `snapshots` and publishes the key sets their rules need, and
/// the sources that cannot be fetched (for `/api/v1/diagnostics`).
pub async fn run(
    mut snapshots: watch::Receiver<Arc<Snapshot>>,
    keys: watch::Sender<KeySets>,
    failures: watch::Sender<Failures>,
) {
    let client = client();
    let mut sources: BTreeMap<KeySource, Source> = BTreeMap::new();
    loop {
        let wanted = wanted(&snapshots.borrow_and_update());
        sources.retain(|s, _| wanted.contains(s));
        let now = Instant::now();
        for source in &wanted {
            sources.entry(source.clone()).or_insert(Source {
                due: now,
                failures: 0,
            });
        }
        let mut fetched = (*keys.borrow().clone()).clone();
        let before = fetched.clone();
        fetched.retain(|s, _| wanted.contains(s));
        let mut failed = (*failures.borrow().clone()).clone();
        failed.retain(|s, _| wanted.contains(s));
        for (source, state) in sources.iter_mut().filter(|(_, s)| s.due <= now) {
            match fetch(&client, source).await {
                Ok(text) => {
                    if fetched.get(source).is_none_or(|k| **k != *text) {
                        info!(source = ?source, "JWT keys fetched");
                    }
                    fetched.insert(source.clone(), Arc::from(text));
                    failed.remove(source);
                    state.failures = 0;
                    state.due = Instant::now() + REFRESH;
                }
                Err(error) => {
                    warn!(source = ?source, %error, "cannot fetch JWT keys; keeping the last ones");
                    failed.insert(source.clone(), error);
                    let delay = RETRY.saturating_mul(1 << state.failures.min(16));
                    state.failures += 1;
                    state.due = Instant::now() + delay.min(REFRESH);
                }
            }
        }
        if fetched != before {
            keys.send_replace(Arc::new(fetched));
        }
        failures.send_if_modified(|current| {
            let changed = **current != failed;
            if changed {
                *current = Arc::new(failed);
            }
            changed
        });
        let next = sources.values().map(|s| s.due).min();
        tokio::select! {
            changed = snapshots.changed() => if changed.is_err() { return },
            () = sleep_until(next) => {}
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// The key sets `snapshot`'s rules need, fetched once now, and the sources
/// that could not be fetched with why: what `bowline explain` verifies
/// tokens with, as the control plane would.
pub async fn fetch_once(snapshot: &Snapshot) -> (KeySets, Failures) {
    let client = client();
    let (mut keys, mut failed) = (BTreeMap::new(), BTreeMap::new());
    for source in wanted(snapshot) {
        match fetch(&client, &source).await {
            Ok(text) => {
                keys.insert(source, Arc::from(text));
            }
            Err(error) => {
                failed.insert(source, error);
            }
        }
    }
    (Arc::new(keys), Arc::new(failed))
}

/// Every source the snapshot's RequestAuthentications need.
fn wanted(snapshot: &Snapshot) -> Vec<KeySource> {
    let mut out: Vec<KeySource> = snapshot
        .security
        .request_authentications()
        .iter()
        .flat_map(|ra| &ra.spec.jwt_rules)
        .filter_map(|rule| rule.key_source())
        .collect();
    out.sort();
    out.dedup();
    out
}

fn client() -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .tls_built_in_root_certs(false);
    if let Ok(pem) = std::fs::read(SYSTEM_ROOTS) {
        for root in reqwest::Certificate::from_pem_bundle(&pem).unwrap_or_default() {
            builder = builder.add_root_certificate(root);
        }
    }
    builder.build().unwrap_or_default()
}

async fn fetch(client: &reqwest::Client, source: &KeySource) -> Result<String, String> {
    let uri = match source {
        KeySource::JwksUri(uri) => uri.clone(),
        KeySource::Discovery(document) => {
            let text = get(client, document).await?;
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| format!("{document}: {e}"))?;
            value["jwks_uri"]
                .as_str()
                .ok_or_else(|| format!("{document}: no jwks_uri"))?
                .to_string()
        }
    };
    let text = get(client, &uri).await?;
    policy::validate::security::key_set(&text).map_err(|e| format!("{uri}: {e}"))?;
    Ok(text)
}

async fn get(client: &reqwest::Client, uri: &str) -> Result<String, String> {
    let response = client
        .get(uri)
        .send()
        .await
        .map_err(|e| format!("{uri}: {e}"))?;
    if !response.status().is_success() {
        return Err(format!("{uri}: status {}", response.status()));
    }
    let body = response.bytes().await.map_err(|e| format!("{uri}: {e}"))?;
    if body.len() > MAX_BODY {
        return Err(format!("{uri}: over {MAX_BODY} bytes"));
    }
    String::from_utf8(body.to_vec()).map_err(|_| format!("{uri}: not UTF-8"))
}
