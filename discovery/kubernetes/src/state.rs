//! The CA's state shared by every replica through one Secret, so that all
//! of them sign under the same root, mint and accept the same tokens, and
//! answer to the same admin token (the root filesystem of a pod is
//! read-only and its state directory an emptyDir, gone with the pod).
//!
//! ```text
//! GET Secret ── found ──► its files written into the state directory (0600): Adopted
//!            └─ 404 ───► make() (the CA opens the state directory, generating what is missing)
//!                        ──► CREATE Secret from those files ── 201: Created
//!                                                          └─ 409: another replica won the race:
//!                                                                  GET theirs, write its files: Adopted
//! ```
//!
//! Create-if-absent decides the race: whoever creates first, every other
//! replica adopts. The caller opens its CA only after [`share`] returned,
//! so it reads the files that won.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::Path;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::{Api, Client};
use tracing::info;

/// The Secret's name, in the control plane's namespace.
pub const SECRET_NAME: &str = "bowline-ca";

/// How the state directory came to hold the shared files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shared {
    /// This replica made them and created the Secret.
    Created,
    /// Another replica's, from the Secret.
    Adopted,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the Secret {namespace}/{name}: {source}")]
    Api {
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("{path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("making the CA's state: {0}")]
    Make(String),
}

/// Makes `dir` hold the shared copies of `files`: the Secret's when there
/// is one, else the ones `make` generates there, then published.
pub async fn share(
    client: Client,
    namespace: &str,
    dir: &Path,
    files: &[&str],
    make: impl FnOnce() -> Result<(), String>,
) -> Result<Shared, Error> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let failed = |source| Error::Api {
        namespace: namespace.to_string(),
        name: SECRET_NAME.to_string(),
        source,
    };
    if let Some(secret) = api.get_opt(SECRET_NAME).await.map_err(failed)? {
        write_files(dir, &secret)?;
        info!(
            secret = SECRET_NAME,
            namespace, "the CA's state adopted from the Secret"
        );
        return Ok(Shared::Adopted);
    }
    make().map_err(Error::Make)?;
    let mut data = BTreeMap::new();
    for file in files {
        let path = dir.join(file);
        match std::fs::read(&path) {
            Ok(bytes) => {
                data.insert(file.to_string(), ByteString(bytes));
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(Error::File {
                    path: path.display().to_string(),
                    source,
                });
            }
        }
    }
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(SECRET_NAME.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some([("app.kubernetes.io/part-of".into(), "bowline".into())].into()),
            ..ObjectMeta::default()
        },
        data: Some(data),
        type_: Some("Opaque".into()),
        ..Secret::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            info!(
                secret = SECRET_NAME,
                namespace, "the CA's state published in a new Secret"
            );
            Ok(Shared::Created)
        }
        Err(kube::Error::Api(status)) if status.code == 409 => {
            let theirs = api.get(SECRET_NAME).await.map_err(failed)?;
            write_files(dir, &theirs)?;
            info!(
                secret = SECRET_NAME,
                namespace, "another replica published first: its state adopted"
            );
            Ok(Shared::Adopted)
        }
        Err(source) => Err(failed(source)),
    }
}

/// Writes every key of `secret` as a file of `dir`, mode 0600.
fn write_files(dir: &Path, secret: &Secret) -> Result<(), Error> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| Error::File { path, source }
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(dir))?;
    for (name, bytes) in secret.data.iter().flatten() {
        // A key is a file name of the directory, never a path out of it.
        if name.contains('/') || name.starts_with('.') {
            continue;
        }
        let path = dir.join(name);
        let tmp = dir.join(format!(".{name}.tmp"));
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io(&tmp))?;
        file.write_all(&bytes.0).map_err(io(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io(&path))?;
    }
    Ok(())
}
