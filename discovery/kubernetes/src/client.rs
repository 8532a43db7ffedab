//! The API server client, from a kubeconfig or the pod's own credentials.
//!
//! An explicit kubeconfig path wins. Without one, kube's inference runs:
//! the file `KUBECONFIG` names (or `~/.kube/config`), else the in-cluster
//! configuration a pod gets (its service account token and the
//! `KUBERNETES_SERVICE_HOST` address), as `kubectl` and istiod find them.

use std::path::{Path, PathBuf};

use kube::Client;
use kube::config::{Config, InferConfigError, KubeConfigOptions, Kubeconfig, KubeconfigError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("kubeconfig {}: cannot be used", path.display())]
    Kubeconfig {
        path: PathBuf,
        #[source]
        source: KubeconfigError,
    },
    #[error("no cluster configuration: no usable kubeconfig and not in a pod")]
    Infer(#[source] InferConfigError),
    #[error("cannot make the kubernetes client")]
    Client(#[source] kube::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A client for the cluster `kubeconfig` names, or the one inferred from
/// the environment. Nothing is sent until the client is used. Must be
/// called within a tokio runtime.
pub async fn client(kubeconfig: Option<&Path>) -> Result<Client> {
    let config = match kubeconfig {
        Some(path) => {
            let error = |source| Error::Kubeconfig {
                path: path.to_path_buf(),
                source,
            };
            let file = Kubeconfig::read_from(path).map_err(error)?;
            Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(error)?
        }
        None => Config::infer().await.map_err(Error::Infer)?,
    };
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Another thread may have installed one in between: either serves.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    Client::try_from(config).map_err(Error::Client)
}

#[cfg(test)]
mod tests {
    use super::*;

    const KUBECONFIG: &str = "apiVersion: v1
kind: Config
clusters:
- name: test
  cluster: {server: 'https://127.0.0.1:6443', insecure-skip-tls-verify: true}
users:
- name: test
  user: {token: secret}
contexts:
- name: test
  context: {cluster: test, user: test, namespace: shop}
current-context: test
";

    #[tokio::test]
    async fn an_explicit_kubeconfig_makes_a_client_without_connecting() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("kubeconfig");
        std::fs::write(&path, KUBECONFIG).unwrap();
        let client = client(Some(&path)).await.unwrap();
        assert_eq!(client.default_namespace(), "shop");
    }

    #[tokio::test]
    async fn a_missing_kubeconfig_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent");
        let Err(error) = client(Some(&path)).await else {
            panic!("a client from a missing file");
        };
        assert_eq!(
            error.to_string(),
            format!("kubeconfig {}: cannot be used", path.display())
        );
    }
}
