//! The CA in Kubernetes mode: a workload's projected service-account
//! token, reviewed by the API server (the loopback kube-fixture, through
//! Bowline's real kube-rs client), gets a certificate for exactly that
//! service account; a token bound to another audience, one the API server
//! does not know, and a CSR for someone else are refused with istiod's codes.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use kube_fixture::{ApiServer, Verb};
use tokio::process::Command;

const BOWLINE: &str = env!("CARGO_BIN_EXE_bowline");
/// A loopback address of this test's own.
const HOST: &str = "127.0.94.250";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reviewed_service_account_token_gets_exactly_its_identity() {
    let api = ApiServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.kubeconfig(&kubeconfig, "control-plane").unwrap();
    api.add_service_account_token("reviews-token", "shop", "reviews", &["istio-ca"]);
    api.add_service_account_token("vault-token", "shop", "reviews", &["vault"]);
    let namespace = |name: &str| serde_json::json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
    api.apply(namespace("shop")).unwrap();
    api.apply(serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingWebhookConfiguration",
        "metadata": {"name": "bowline-validator", "labels": {"app.kubernetes.io/part-of": "bowline"}},
        "webhooks": [{"name": "validation.bowline.dev", "admissionReviewVersions": ["v1"],
            "sideEffects": "None",
            "clientConfig": {"service": {"name": "istiod", "namespace": "istio-system", "path": "/validate"}}}],
    }))
    .unwrap();

    let _server = Command::new(BOWLINE)
        .args(["serve", "--registry", "kubernetes", "--kubeconfig"])
        .arg(&kubeconfig)
        .args(["--admin-addr", &format!("{HOST}:15014")])
        .args(["--ca-addr", &format!("{HOST}:15012")])
        .arg("--state-dir")
        .arg(dir.path().join("state"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.path().join("serve.log")).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let bundle = common::trust_bundle(HOST, None).await;

    // The leader puts the roots in every namespace, for sidecars to mount;
    // a namespace created later gets them too.
    let root_config_map = |ns: &str| {
        api.get("v1", "ConfigMap", ns, "istio-ca-root-cert")
            .and_then(|cm| cm["data"]["root-cert.pem"].as_str().map(str::to_string))
    };
    let wait_roots = |ns: &'static str| {
        let bundle = bundle.clone();
        let root_config_map = &root_config_map;
        async move {
            let start = Instant::now();
            while root_config_map(ns).as_deref() != Some(bundle.as_str()) {
                assert!(
                    start.elapsed() < Duration::from_secs(30),
                    "gave up waiting for {ns}'s root ConfigMap"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    wait_roots("shop").await;
    api.apply(namespace("late")).unwrap();
    wait_roots("late").await;

    // The leader gives the webhooks the roots the API server must trust.
    let start = Instant::now();
    loop {
        let config = api
            .get(
                "admissionregistration.k8s.io/v1",
                "ValidatingWebhookConfiguration",
                "",
                "bowline-validator",
            )
            .unwrap();
        let ca_bundle = config["webhooks"][0]["clientConfig"]["caBundle"]
            .as_str()
            .map(|b| base64::engine::general_purpose::STANDARD.decode(b).unwrap());
        if ca_bundle.as_deref() == Some(bundle.as_bytes()) {
            // Checkable now: what the webhook cannot check is refused.
            assert_eq!(config["webhooks"][0]["failurePolicy"], "Fail", "{config}");
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "gave up waiting for the caBundle"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let chain = common::sign(HOST, &bundle, "reviews-token", None)
        .await
        .unwrap();
    let roots = citadel::pem::certificates("bundle", &bundle).unwrap();
    let id = citadel::verify::workload_chain(&chain, &roots, SystemTime::now()).unwrap();
    assert_eq!(id.to_string(), "spiffe://cluster.local/ns/shop/sa/reviews");
    let review = api
        .requests()
        .into_iter()
        .find(|r| r.verb == Verb::TokenReview)
        .expect("the CA asked the API server");
    assert!((200..300).contains(&review.status), "{review:?}");

    let other = "spiffe://cluster.local/ns/shop/sa/ratings";
    let code = |r: Result<Vec<String>, tonic::Status>| r.unwrap_err().code();
    assert_eq!(
        code(common::sign(HOST, &bundle, "reviews-token", Some(other)).await),
        tonic::Code::PermissionDenied
    );
    assert_eq!(
        code(common::sign(HOST, &bundle, "vault-token", None).await),
        tonic::Code::Unauthenticated
    );
    assert_eq!(
        code(common::sign(HOST, &bundle, "nobody-knows-this", None).await),
        tonic::Code::Unauthenticated
    );

    // The injection webhook, over HTTPS as the API server calls it.
    let https = reqwest::Client::builder()
        .no_proxy()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(bundle.as_bytes()).unwrap())
        .resolve(
            "istiod.istio-system.svc",
            format!("{HOST}:15012").parse().unwrap(),
        )
        .build()
        .unwrap();
    let inject = |namespace: &str| {
        let review = serde_json::json!({
            "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
            "request": {"uid": "u1", "operation": "CREATE", "namespace": namespace,
                "kind": {"group": "", "version": "v1", "kind": "Pod"},
                "object": {"apiVersion": "v1", "kind": "Pod",
                    "metadata": {"generateName": "web-", "labels": {"app": "web"}},
                    "spec": {"containers": [{"name": "web", "image": "web:1"}]}}},
        });
        let request = https
            .post("https://istiod.istio-system.svc:15012/inject")
            .json(&review);
        async move {
            let answer: serde_json::Value = request.send().await.unwrap().json().await.unwrap();
            answer["response"].clone()
        }
    };
    let injected = inject("shop").await;
    assert_eq!(injected["allowed"], true, "{injected}");
    assert_eq!(injected["patchType"], "JSONPatch", "{injected}");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(injected["patch"].as_str().unwrap())
        .unwrap();
    let patch = String::from_utf8(patch).unwrap();
    assert!(
        patch.contains("bowline-proxy") && patch.contains("istiod.istio-system.svc:15012"),
        "{patch}"
    );
    // The control plane's own namespace (the mesh's root here) never is.
    let own = inject("istio-system").await;
    assert_eq!(own["allowed"], true);
    assert!(own.get("patch").is_none(), "{own}");
}
