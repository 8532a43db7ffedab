//! Tracing with the Telemetry API and a Zipkin provider: real Envoys at the
//! client and at the server start and continue one trace (B3 headers reach
//! the application), and both report their spans to the collector, a
//! service of the mesh (here a small HTTP receiver of the test's own that
//! keeps what Envoy posts).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::harness::{Mesh, wait_for};
use crate::{workload_entry, write_reviews_config};

const SUBNET: u8 = 139;
/// Only a guard against a hang (Envoy's Zipkin tracer flushes every 5 s).
const LIMIT: Duration = Duration::from_secs(60);

/// Every span posted to `addr` (Zipkin's JSON v2: a list of spans per POST).
async fn collector(addr: std::net::SocketAddr) -> Arc<Mutex<Vec<Value>>> {
    let listener = tokio::net::TcpListener::bind(addr).await.unwrap();
    let spans = Arc::new(Mutex::new(Vec::new()));
    let kept = spans.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut buffer = Vec::new();
                let mut chunk = [0u8; 8192];
                loop {
                    let Ok(n) = stream.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buffer.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buffer).to_string();
                    let Some(end) = text.find("\r\n\r\n") else {
                        continue;
                    };
                    let header = |name: &str| {
                        text[..end].lines().find_map(|l| {
                            let (k, v) = l.split_once(':')?;
                            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
                        })
                    };
                    let rest = &buffer[end + 4..];
                    // Envoy streams the body chunked, or gives its length.
                    let (body, used) = if header("transfer-encoding")
                        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
                    {
                        match dechunk(rest) {
                            Some(done) => done,
                            None => continue,
                        }
                    } else {
                        let length: usize = header("content-length")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0);
                        if rest.len() < length {
                            continue;
                        }
                        (rest[..length].to_vec(), length)
                    };
                    if let Ok(Value::Array(list)) = serde_json::from_slice::<Value>(&body) {
                        kept.lock().unwrap().extend(list);
                    }
                    let _ = stream
                        .write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 0\r\n\r\n")
                        .await;
                    buffer.drain(..end + 4 + used);
                }
            });
        }
    });
    spans
}

/// A chunked body and how many bytes it took, once it is all there.
fn dechunk(bytes: &[u8]) -> Option<(Vec<u8>, usize)> {
    let mut body = Vec::new();
    let mut at = 0;
    loop {
        let line_end = at + bytes[at..].windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&bytes[at..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        let data = line_end + 2;
        if size == 0 {
            // The last chunk, then the (empty) trailer section.
            return (bytes.len() >= data + 2).then_some((body, data + 2));
        }
        if bytes.len() < data + size + 2 {
            return None;
        }
        body.extend_from_slice(&bytes[data..data + size]);
        at = data + size + 2;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_traced_across_both_sidecars_to_zipkin() {
    let mut mesh = Mesh::new(SUBNET);
    write_reviews_config(&mesh, (100, 0));
    let zipkin_at = mesh.address(200);
    let spans = collector(std::net::SocketAddr::new(zipkin_at, 9411)).await;
    mesh.write(
        "zipkin.yaml",
        &format!(
            "apiVersion: v1\nkind: Service\nmetadata: {{name: zipkin, namespace: istio-system}}\nspec:\n  selector: {{app: zipkin}}\n  ports: [{{name: http-zipkin, port: 9411}}]\n---\n{}",
            workload_entry("zipkin", zipkin_at, &[("app", "zipkin")])
                .replace("metadata: {name: zipkin}", "metadata: {name: zipkin, namespace: istio-system}")
        ),
    );
    mesh.write(
        "telemetry.yaml",
        "apiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {name: mesh-default, namespace: istio-system}\nspec:\n  tracing:\n  - providers: [{name: zipkin}]\n    randomSamplingPercentage: 100\n    customTags: {suite: {literal: {value: e2e}}}\n",
    );
    let mesh_config = mesh.work_dir("mesh.yaml");
    std::fs::write(
        &mesh_config,
        "extensionProviders:\n- name: zipkin\n  zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411}\n",
    )
    .unwrap();
    mesh.set_control_plane_args(&["--mesh-config", mesh_config.to_str().unwrap()]);
    crate::start_reviews(&mut mesh, ["sotw"; 3]).await;

    // The application sees the trace the client's sidecar started.
    let client = mesh.client(1);
    let answer: Value = client
        .get("http://reviews:9080/traced")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let trace_id = answer["headers"]["x-b3-traceid"]
        .as_str()
        .unwrap_or_else(|| panic!("no B3 trace id reached the application: {answer:#}"))
        .to_string();
    assert_eq!(answer["headers"]["x-b3-sampled"], "1", "{answer:#}");
    // Both sidecars report a span of it, tagged as the Telemetry says.
    let of_trace = |spans: &[Value]| -> Vec<Value> {
        spans
            .iter()
            .filter(|s| s["traceId"] == trace_id.as_str())
            .cloned()
            .collect()
    };
    wait_for("both sidecars' spans at the collector", LIMIT, || {
        let found = of_trace(&spans.lock().unwrap());
        let kinds: Vec<String> = found
            .iter()
            .map(|s| s["kind"].as_str().unwrap_or_default().to_string())
            .collect();
        async move { kinds.iter().any(|k| k == "CLIENT") && kinds.iter().any(|k| k == "SERVER") }
    })
    .await;
    let found = of_trace(&spans.lock().unwrap());
    for span in &found {
        assert_eq!(span["tags"]["suite"], "e2e", "{span:#}");
    }
    let server = found.iter().find(|s| s["kind"] == "SERVER").unwrap();
    let client_span = found.iter().find(|s| s["kind"] == "CLIENT").unwrap();
    assert_eq!(
        server["parentId"], client_span["id"],
        "the server's span continues the client's: {found:#?}"
    );
}
