//! The mesh config's access log (`accessLogFile`, `accessLogEncoding`,
//! `accessLogFormat`), as most Istio users turn logs on: real Envoys write
//! a line for each request at the client's sidecar (outbound) and at the
//! server's (inbound).

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Mesh, wait_for};
use crate::write_reviews_config;

const SUBNET: u8 = 138;
/// Only a guard against a hang (Envoy flushes access log files every 10 s).
const LIMIT: Duration = Duration::from_secs(60);

/// The JSON lines of `path` so far.
fn lines(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sidecars_write_the_access_log_the_mesh_config_asks_for() {
    let mut mesh = Mesh::new(SUBNET);
    write_reviews_config(&mesh, (100, 0));
    let log = mesh.work_dir("logs").join("access.log");
    let errors = mesh.work_dir("logs").join("errors.log");
    std::fs::create_dir_all(log.parent().unwrap()).unwrap();
    let mesh_config = mesh.work_dir("logs").join("mesh.yaml");
    std::fs::write(
        &mesh_config,
        format!(
            "accessLogFile: {}\naccessLogEncoding: JSON\naccessLogFormat: '{{\"code\": \"%RESPONSE_CODE%\", \"authority\": \"%REQ(:AUTHORITY)%\", \"upstream\": {{\"cluster\": \"%UPSTREAM_CLUSTER%\", \"host\": \"%UPSTREAM_HOST%\"}}, \"id\": \"%REQ(X-REQUEST-ID)%\"}}'\n\
             extensionProviders:\n\
             - name: errors\n  envoyFileAccessLog:\n    path: {}\n    logFormat: {{labels: {{code: '%RESPONSE_CODE%', id: '%REQ(X-REQUEST-ID)%', cluster: '%UPSTREAM_CLUSTER%'}}}}\n",
            log.display(),
            errors.display()
        ),
    )
    .unwrap();
    mesh.set_control_plane_args(&["--mesh-config", mesh_config.to_str().unwrap()]);
    crate::start_reviews(&mut mesh, ["sotw"; 3]).await;

    let client = mesh.client(1);
    let response = client
        .get("http://reviews:9080/books")
        .header("x-request-id", "access-log-e2e")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // One request, two lines: the client's sidecar sent it to reviews-v1
    // (outbound), whose sidecar passed it to its application (inbound).
    let ours = |l: &Value| l["id"] == "access-log-e2e";
    wait_for("both sidecars' access log lines", LIMIT, || {
        let found = lines(&log).into_iter().filter(ours).count();
        async move { found >= 2 }
    })
    .await;
    let mut seen: Vec<Value> = lines(&log).into_iter().filter(ours).collect();
    seen.sort_by_key(|l| {
        l["upstream"]["cluster"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    assert_eq!(seen.len(), 2, "{seen:#?}");
    let reviews_v1 = mesh.address(2);
    assert_eq!(
        seen[0]["upstream"]["cluster"], "inbound|9080||",
        "{seen:#?}"
    );
    assert!(
        seen[0]["upstream"]["host"]
            .as_str()
            .is_some_and(|h| h.starts_with(&format!("{reviews_v1}:"))),
        "the application's address: {seen:#?}"
    );
    assert_eq!(
        seen[1]["upstream"]["cluster"], "outbound|9080|v1|reviews.default.svc.cluster.local",
        "{seen:#?}"
    );
    assert_eq!(
        seen[1]["upstream"]["host"],
        format!("{reviews_v1}:9080"),
        "{seen:#?}"
    );
    for line in &seen {
        assert_eq!(line["code"].to_string().trim_matches('"'), "200", "{line}");
        assert_eq!(line["authority"], "reviews:9080", "{line}");
    }

    // The Telemetry API: mesh-wide, failed requests only, to the provider
    // "errors" (a CEL filter Envoy evaluates); it replaces accessLogFile.
    mesh.write(
        "telemetry.yaml",
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh-default, namespace: istio-system}\nspec:\n  accessLogging:\n  - providers: [{name: errors}]\n    filter: {expression: 'response.code >= 400'}\n",
    );
    let mut attempt = 0;
    wait_for(
        "a failed request in the errors log, from both sides",
        LIMIT,
        || {
            attempt += 1;
            let id = format!("failing-{attempt}");
            let client = client.clone();
            let errors = errors.clone();
            async move {
                let _ = client
                    .get("http://reviews:9080/status/503")
                    .header("x-request-id", id.as_str())
                    .send()
                    .await;
                // Both sidecars have the Telemetry once some failing request
                // was logged to it at the client and at the server.
                let logged = lines(&errors);
                let mut sides: std::collections::BTreeMap<String, usize> = Default::default();
                for l in &logged {
                    if let Some(id) = l["id"].as_str().filter(|i| i.starts_with("failing-")) {
                        *sides.entry(id.to_string()).or_default() += 1;
                    }
                }
                sides.values().any(|n| *n >= 2)
            }
        },
    )
    .await;
    // A request that succeeds is logged nowhere now; the one after it,
    // failing, at both sidecars.
    let ok = client
        .get("http://reviews:9080/books")
        .header("x-request-id", "ok-after-telemetry")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let marker = client
        .get("http://reviews:9080/status/503")
        .header("x-request-id", "marker")
        .send()
        .await
        .unwrap();
    assert_eq!(marker.status(), 503);
    wait_for("both sidecars' lines of the marker", LIMIT, || {
        let found = lines(&errors)
            .iter()
            .filter(|l| l["id"] == "marker")
            .count();
        async move { found >= 2 }
    })
    .await;
    let clusters: Vec<String> = lines(&errors)
        .iter()
        .filter(|l| l["id"] == "marker")
        .map(|l| l["cluster"].as_str().unwrap_or_default().to_string())
        .collect();
    assert!(
        clusters.iter().any(|c| c == "inbound|9080||"),
        "{clusters:?}"
    );
    for file in [&errors, &log] {
        assert!(
            !lines(file).iter().any(|l| l["id"] == "ok-after-telemetry"),
            "a successful request was logged to {} after the Telemetry: {:#?}",
            file.display(),
            lines(file)
        );
    }
}
