//! A fixture and a kube-rs client that reaches it through a kubeconfig file.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};
use kube_fixture::ApiServer;

/// The limit that only guards against a hang.
pub const LIMIT: Duration = Duration::from_secs(20);

pub const TOKEN: &str = "kube-fixture-test-token";

pub struct Env {
    pub fixture: ApiServer,
    pub client: kube::Client,
    pub dir: tempfile::TempDir,
}

pub async fn client_from(path: &std::path::Path) -> anyhow::Result<kube::Client> {
    let kubeconfig = Kubeconfig::read_from(path)?;
    let config =
        kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default()).await?;
    Ok(kube::Client::try_from(config)?)
}

pub async fn env() -> anyhow::Result<Env> {
    let fixture = ApiServer::start().await?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("kubeconfig");
    fixture.kubeconfig(&path, TOKEN)?;
    let client = client_from(&path).await?;
    Ok(Env {
        fixture,
        client,
        dir,
    })
}

/// Waits for `future`, failing the test if it hangs.
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> anyhow::Result<T> {
    tokio::time::timeout(LIMIT, future)
        .await
        .map_err(|_| anyhow::anyhow!("{what}: no answer within {LIMIT:?}"))
}

/// The Status of an API error, or a panic naming what the result was instead.
pub fn status<T: std::fmt::Debug>(result: kube::Result<T>) -> kube::core::Status {
    match result {
        Err(kube::Error::Api(status)) => *status,
        other => panic!("expected an API error, got {other:?}"),
    }
}
