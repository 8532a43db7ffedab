//! The control plane's JWT key fetcher against an issuer on loopback: keys
//! found through the issuer's OpenID discovery document, a key set that
//! does not parse never published, and keys dropped when no rule needs
//! them any more.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use discovery::file::FileStore;
use pilot_core::snapshot::Snapshot;
use pilot_server::jwks::{self, KeySets};
use policy::security::KeySource;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

const KEYS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"ojY_8Spyf0izJ5BGCN7oe-SHDx-2C-44a0jjCC35Mek","y":"t4y0SGPY_VT93paKoKceK6ckf_tZnuMhogLW73FAm90"}]}"#;

/// An issuer: its discovery document names `/keys`, which serves `KEYS`,
/// or a broken key set while `broken` is set (counted in `served_broken`).
async fn issuer(broken: Arc<AtomicBool>, served_broken: Arc<AtomicU64>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let jwks_uri = format!("{base}/keys");
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let (broken, jwks_uri) = (broken.clone(), jwks_uri.clone());
            let served_broken = served_broken.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let n = stream.read(&mut buf).await.unwrap_or(0);
                let request = String::from_utf8_lossy(&buf[..n]);
                let body = if request.starts_with("GET /.well-known/openid-configuration") {
                    serde_json::json!({ "jwks_uri": jwks_uri }).to_string()
                } else if broken.load(Ordering::Relaxed) {
                    served_broken.fetch_add(1, Ordering::Relaxed);
                    r#"{"keys":[]}"#.to_string()
                } else {
                    KEYS.to_string()
                };
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    base
}

fn snapshot(generation: u64, issuer: Option<&str>) -> Arc<Snapshot> {
    let mut store = FileStore::default();
    if let Some(issuer) = issuer {
        store.apply(
            Path::new("ra.yaml"),
            &format!(
                "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: ra, namespace: shop}}\nspec:\n  jwtRules:\n  - issuer: {issuer}\n"
            ),
        );
    }
    Arc::new(Snapshot::build(generation, &store.config()))
}

async fn next(keys: &mut watch::Receiver<KeySets>) -> KeySets {
    tokio::time::timeout(Duration::from_secs(30), keys.changed())
        .await
        .expect("keys within the limit")
        .unwrap();
    keys.borrow_and_update().clone()
}

#[tokio::test]
async fn keys_come_through_the_issuers_discovery_document() {
    let broken = Arc::new(AtomicBool::new(true));
    let served_broken = Arc::new(AtomicU64::new(0));
    let base = issuer(broken.clone(), served_broken.clone()).await;
    let (snapshots, snapshots_rx) = watch::channel(snapshot(1, Some(&base)));
    let (keys_tx, mut keys) = watch::channel(KeySets::default());
    let (failures_tx, mut failures) = watch::channel(jwks::Failures::default());
    tokio::spawn(jwks::run(snapshots_rx, keys_tx, failures_tx));

    // A key set with no keys would make Envoy refuse the listener: it is
    // never published (the first key set published is the good one), and
    // the fetch is retried until one parses.
    let served = async {
        while served_broken.load(Ordering::Relaxed) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), served)
        .await
        .expect("the broken key set was fetched within the limit");
    // The failure is reported on the rule, for /api/v1/diagnostics.
    tokio::time::timeout(
        Duration::from_secs(30),
        failures.wait_for(|f| !f.is_empty()),
    )
    .await
    .expect("the failure reported within the limit")
    .unwrap();
    let views =
        pilot_server::admin::key_failure_views(&snapshots.borrow(), &failures.borrow().clone());
    assert_eq!(views.len(), 1);
    assert_eq!(views[0].path, "spec.jwtRules[0].issuer");
    // It names the file and document the rule was read from.
    assert_eq!(
        (views[0].file.as_str(), views[0].document),
        ("ra.yaml", Some(0))
    );
    assert!(
        views[0].text.starts_with("RequestAuthentication shop/ra: "),
        "{}",
        views[0].text
    );
    assert!(views[0].message.contains("no keys"), "{}", views[0].message);
    assert!(
        views[0].message.contains("refused with 401"),
        "{}",
        views[0].message
    );
    broken.store(false, Ordering::Relaxed);
    let fetched = next(&mut keys).await;
    let source = KeySource::Discovery(format!("{base}/.well-known/openid-configuration"));
    assert_eq!(fetched.get(&source).map(|k| &**k), Some(KEYS));
    tokio::time::timeout(Duration::from_secs(30), failures.wait_for(|f| f.is_empty()))
        .await
        .expect("the failure cleared within the limit")
        .unwrap();

    // No rule needs them any more: dropped.
    snapshots.send_replace(snapshot(2, None));
    assert!(next(&mut keys).await.is_empty());
}
