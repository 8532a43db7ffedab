//! The agent's status port: the application's HTTP probes, made by the
//! agent from inside the pod, for the kubelet whose own probes the
//! injector rewrote here (Istio's `/app-health/CONTAINER/{readyz,livez,startupz}`
//! on 15020). The kubelet gets the application's status code, or 503 when
//! the application cannot be reached.
//!
//! ```text
//! kubelet ─GET /app-health/reviews/readyz─► :15020 ─► probers[path] ─GET http://ADDRESS:PORT/PATH─► app
//! ```

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::Context;
use axum::http::{StatusCode, Uri};
use serde::Deserialize;

/// One original probe, as the injector recorded it (Kubernetes' `HTTPGetAction`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Prober {
    pub(crate) http_get: HttpGet,
    #[serde(default)]
    pub(crate) timeout_seconds: Option<u64>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct HttpGet {
    #[serde(default)]
    pub(crate) path: Option<String>,
    pub(crate) port: u16,
    #[serde(default)]
    pub(crate) host: Option<String>,
    #[serde(default)]
    pub(crate) scheme: Option<String>,
    #[serde(default)]
    pub(crate) http_headers: Vec<Header>,
}

#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) name: String,
    pub(crate) value: String,
}

/// `--app-probers`: the probes by the path they are served at.
pub(crate) fn parse(text: &str) -> Result<BTreeMap<String, Prober>, String> {
    let probers: BTreeMap<String, Prober> =
        serde_json::from_str(text).map_err(|e| format!("not the probes' JSON: {e}"))?;
    for (path, prober) in &probers {
        let scheme = prober.http_get.scheme.as_deref().unwrap_or("HTTP");
        if !scheme.eq_ignore_ascii_case("HTTP") {
            return Err(format!("{path}: scheme {scheme} is not supported yet"));
        }
    }
    Ok(probers)
}

/// The URL the agent probes for `prober`: the pod's own address (where the
/// kubelet would have probed) unless the probe names a host.
pub(crate) fn target(prober: &Prober, address: IpAddr) -> String {
    let get = &prober.http_get;
    let host = get.host.clone().unwrap_or_else(|| match address {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    });
    let path = get.path.as_deref().unwrap_or("/");
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    };
    format!("http://{host}:{}{path}", get.port)
}

/// Serves the probes at `listen` until the task is dropped.
pub(crate) async fn serve(
    listen: SocketAddr,
    address: IpAddr,
    probers: BTreeMap<String, Prober>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("the status port {listen}"))?;
    let http = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let probers = std::sync::Arc::new(probers);
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let (http, probers) = (http.clone(), probers.clone());
        async move {
            let Some(prober) = probers.get(uri.path()) else {
                return StatusCode::NOT_FOUND;
            };
            let mut request = http
                .get(target(prober, address))
                .timeout(Duration::from_secs(
                    prober.timeout_seconds.unwrap_or(1).max(1),
                ));
            for header in &prober.http_get.http_headers {
                request = request.header(&header.name, &header.value);
            }
            match request.send().await {
                Ok(response) => StatusCode::from_u16(response.status().as_u16())
                    .unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
                Err(_) => StatusCode::SERVICE_UNAVAILABLE,
            }
        }
    });
    Ok(tokio::spawn(async move {
        if let Err(error) = axum::serve(listener, app).await {
            tracing::warn!(%error, "status port stopped");
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_injectors_probers_are_read_and_aimed_at_the_pod() {
        let probers = parse(
            r#"{"/app-health/web/readyz": {"httpGet": {"path": "health", "port": 8080,
                 "httpHeaders": [{"name": "x-probe", "value": "1"}]}, "timeoutSeconds": 3}}"#,
        )
        .unwrap();
        let prober = &probers["/app-health/web/readyz"];
        assert_eq!(prober.timeout_seconds, Some(3));
        assert_eq!(
            target(prober, "10.0.0.7".parse().unwrap()),
            "http://10.0.0.7:8080/health"
        );
        assert!(parse(r#"{"/p": {"httpGet": {"port": 1, "scheme": "HTTPS"}}}"#).is_err());
        assert!(parse("[]").is_err());
    }
}
