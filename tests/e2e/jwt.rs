//! JWT request authentication with real Envoys: a RequestAuthentication
//! whose keys are at a `jwksUri` the control plane fetches and inlines (the
//! sidecars never reach the issuer), and an AuthorizationPolicy requiring a
//! request principal on one path. A valid token passes, a bad signature is
//! 401, a request without a token passes where no principal is required
//! and is 403 where one is.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::fixture::{Workload, service, start_prepared};
use crate::harness::Mesh;

const SUBNET: u8 = 126;
const ISSUER: &str = "https://issuer.bowline.test";

/// An ES256 signing key and its key set, as an identity provider has them.
struct Issuer {
    key: EcdsaKeyPair,
    jwks: String,
}

impl Issuer {
    fn new() -> Issuer {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .unwrap();
        // An uncompressed point: 0x04, then x and y.
        let point = key.public_key().as_ref();
        let jwks = serde_json::json!({"keys": [{
            "kty": "EC", "crv": "P-256", "kid": "k1", "alg": "ES256", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }]})
        .to_string();
        Issuer { key, jwks }
    }

    fn token(&self, subject: &str) -> String {
        let exp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"ES256","typ":"JWT","kid":"k1"}"#);
        let claims = URL_SAFE_NO_PAD.encode(
            serde_json::json!({"iss": ISSUER, "sub": subject, "aud": "reviews", "exp": exp})
                .to_string(),
        );
        let signed = format!("{header}.{claims}");
        let signature = self
            .key
            .sign(&SystemRandom::new(), signed.as_bytes())
            .unwrap();
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref()))
    }
}

/// The status of `GET http://reviews:9080PATH` through `client`, with a
/// bearer token if given.
async fn call_with(client: &reqwest::Client, path: &str, token: Option<&str>) -> Option<u16> {
    let mut request = client.get(format!("http://reviews:9080{path}"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.map(|r| r.status().as_u16()).ok()
}

/// Serves `body` as JSON to every request, on `addr`, counting requests.
async fn serve_keys(addr: &str, body: String) -> Arc<std::sync::atomic::AtomicU64> {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let served = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let count = served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let body = body.clone();
            tokio::spawn(async move {
                let mut request = vec![0u8; 4096];
                let _ = stream.read(&mut request).await;
                let response = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = stream.write_all(response.as_bytes()).await;
            });
        }
    });
    served
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jwt_from_a_fetched_key_set_authenticates_requests() {
    let issuer = Issuer::new();
    let keys_at = format!("127.0.{SUBNET}.200:8088");
    let served = serve_keys(&keys_at, issuer.jwks.clone()).await;
    let workloads = [
        Workload::new("frontend", 1, &[("app", "frontend")]),
        Workload::new("reviews", 2, &[("app", "reviews")]),
    ];
    let policy = format!(
        "{}---\n{}---\n\
apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: reviews}}\nspec:\n  selector: {{matchLabels: {{app: reviews}}}}\n  jwtRules:\n  - issuer: {ISSUER}\n    audiences: [reviews]\n    jwksUri: http://{keys_at}/jwks\n---\n\
apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: reviews}}\nspec:\n  selector: {{matchLabels: {{app: reviews}}}}\n  action: ALLOW\n  rules:\n  - to: [{{operation: {{notPaths: [/secure]}}}}]\n  - from: [{{source: {{requestPrincipals: [\"{ISSUER}/alice\"]}}}}]\n    to: [{{operation: {{paths: [/secure]}}}}]\n",
        service("frontend", &[8000]),
        service("reviews", &[9080]),
    );
    let mesh = start_prepared(Mesh::new(SUBNET), &policy, &workloads).await;
    let client = mesh.client(1);
    let call = |path: &'static str, token: Option<String>| {
        let client = client.clone();
        async move {
            let mut request = client.get(format!("http://reviews:9080{path}"));
            if let Some(token) = token {
                request = request.bearer_auth(token);
            }
            request.send().await.map(|r| r.status().as_u16()).ok()
        }
    };

    // Until the control plane has fetched the keys nothing verifies; then
    // a valid token passes.
    let alice = issuer.token("alice");
    let limit = Instant::now() + Duration::from_secs(60);
    while call("/open", Some(alice.clone())).await != Some(200) {
        assert!(Instant::now() < limit, "a valid token never passed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(served.load(std::sync::atomic::Ordering::Relaxed) >= 1);
    assert_eq!(call("/secure", Some(alice.clone())).await, Some(200));

    // A bad signature is 401, wherever it goes.
    // (A character inside the signature: the last one carries padding
    // bits a decoder may ignore.)
    let at = alice.rfind('.').unwrap() + 5;
    let swapped = if alice.as_bytes()[at] == b'A' {
        "Q"
    } else {
        "A"
    };
    let mut forged = alice.clone();
    forged.replace_range(at..=at, swapped);
    assert_eq!(call("/open", Some(forged.clone())).await, Some(401));
    assert_eq!(call("/secure", Some(forged.clone())).await, Some(401));

    // No token: passes where no request principal is required, 403 where
    // one is; another subject's valid token is not alice's.
    assert_eq!(call("/open", None).await, Some(200));
    assert_eq!(call("/secure", None).await, Some(403));
    assert_eq!(call("/secure", Some(issuer.token("bob"))).await, Some(403));

    // The sidecar never fetched the keys itself: only the control plane did
    // (one fetch, refreshed every 20 minutes).
    assert_eq!(served.load(std::sync::atomic::Ordering::Relaxed), 1);

    // `bowline explain` decides each of those requests as the real Envoy
    // did: it fetches the keys from the jwksUri as the control plane does.
    let config_dir = mesh.config_dir();
    let explain = |path: &str, token: Option<&str>| {
        let mut command = tokio::process::Command::new(crate::harness::BOWLINE);
        command
            .args(["explain", "--from", "frontend"])
            .arg(format!("http://reviews:9080{path}"))
            .arg("--config-dir")
            .arg(&config_dir);
        if let Some(token) = token {
            command.args(["-H", &format!("authorization: Bearer {token}")]);
        }
        async move {
            let out = command.output().await.unwrap();
            assert!(out.status.success(), "{out:?}");
            let text = String::from_utf8(out.stdout).unwrap();
            text.lines().last().unwrap_or_default().to_string()
        }
    };
    let bob = issuer.token("bob");
    for (path, token, envoy, decided) in [
        ("/secure", Some(alice.as_str()), 200, "allowed"),
        ("/open", None, 200, "allowed"),
        ("/secure", None, 403, "denied (403)"),
        ("/secure", Some(bob.as_str()), 403, "denied (403)"),
        (
            "/secure",
            Some(forged.as_str()),
            401,
            "denied (401): Jwt verification fails",
        ),
    ] {
        assert_eq!(
            call_with(&client, path, token).await,
            Some(envoy),
            "{path} {token:?}"
        );
        let last = explain(path, token).await;
        assert!(
            last.contains(decided),
            "Envoy answered {envoy} to {path} with {token:?}; explain says: {last}"
        );
    }
}
