//! The SDS server Envoy reads the workload's certificate from: tonic on a
//! Unix socket, one task per stream moving messages through [`SdsStream`].
//!
//! ```text
//! CertificateAgent ──watch──► SdsServer (UnixListener, StreamSecrets SotW, FetchSecrets)
//!                                  └─ per stream: Envoy's requests + new secrets ──► SdsStream ──► responses
//! ```
//!
//! The socket path must fit `sun_path` (108 bytes with its NUL); see
//! [`socket_path`] for how it is chosen.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use envoy_types::pb::envoy::service::discovery::v3::{
    DeltaDiscoveryRequest, DeltaDiscoveryResponse, DiscoveryRequest, DiscoveryResponse,
};
use envoy_types::pb::envoy::service::secret::v3::secret_discovery_service_server::{
    SecretDiscoveryService, SecretDiscoveryServiceServer,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_stream::Stream;
use tokio_stream::wrappers::{ReceiverStream, UnixListenerStream};
use tonic::{Request, Response, Status, Streaming};
use tracing::{Instrument, debug, info, info_span, warn};

use pilot_agent::sds::SdsStream;
use pilot_agent::secret::WorkloadSecret;

/// The longest socket path `sun_path` holds (108 bytes, one for the NUL).
pub const MAX_SOCKET_PATH: usize = 107;

/// The current workload secret: `None` until the first certificate.
pub type SecretWatch = watch::Receiver<Option<Arc<WorkloadSecret>>>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("SDS socket {}: cannot create its directory", path.display())]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("SDS socket {}: cannot listen", path.display())]
    Listen {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the socket named `file` goes: in `dir` if the path fits
/// `sun_path`, else in a fresh directory `/tmp/bowline-<pid>-<n>` (mode 0700),
/// returned second so the caller removes it.
pub fn socket_path(dir: &Path, file: &str) -> Result<(PathBuf, Option<PathBuf>)> {
    let preferred = dir.join(file);
    if preferred.as_os_str().len() <= MAX_SOCKET_PATH {
        std::fs::create_dir_all(dir).map_err(|source| Error::Dir {
            path: preferred.clone(),
            source,
        })?;
        return Ok((preferred, None));
    }
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let short = PathBuf::from(format!(
        "/tmp/bowline-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let created = {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new().mode(0o700).create(&short)
    };
    created.map_err(|source| Error::Dir {
        path: short.join(file),
        source,
    })?;
    Ok((short.join(file), Some(short)))
}

/// A running SDS server.
#[derive(Debug)]
pub struct SdsServer {
    path: PathBuf,
    own_dir: Option<PathBuf>,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl SdsServer {
    /// Listens on `dir/file` (or a short directory, see [`socket_path`]) and
    /// serves `secrets` as the secret `default`.
    pub async fn start(dir: &Path, file: &str, secrets: SecretWatch) -> Result<SdsServer> {
        let (path, own_dir) = socket_path(dir, file)?;
        // A socket left by an agent that did not stop cleanly.
        let _ = std::fs::remove_file(&path);
        let listener = tokio::net::UnixListener::bind(&path).map_err(|source| Error::Listen {
            path: path.clone(),
            source,
        })?;
        let service = SdsService {
            secrets,
            streams: AtomicU64::new(0),
        };
        let router = tonic::transport::Server::builder()
            .add_service(SecretDiscoveryServiceServer::new(service));
        let (shutdown, mut stop) = watch::channel(false);
        let shown = path.display().to_string();
        let task = tokio::spawn(async move {
            let served = router
                .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(error) = served {
                warn!(%error, socket = %shown, "SDS server stopped");
            }
        });
        info!(socket = %path.display(), "SDS server listening");
        Ok(SdsServer {
            path,
            own_dir,
            shutdown,
            task,
        })
    }

    /// The socket's path, for Envoy's `sds-grpc` cluster.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops serving and removes the socket (and its directory if it made one).
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        self.task.abort();
        let _ = self.task.await;
        let _ = std::fs::remove_file(&self.path);
        if let Some(dir) = &self.own_dir {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

#[derive(Debug)]
struct SdsService {
    secrets: SecretWatch,
    streams: AtomicU64,
}

type ResponseStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl SecretDiscoveryService for SdsService {
    type DeltaSecretsStream = ResponseStream<DeltaDiscoveryResponse>;
    type StreamSecretsStream = ResponseStream<DiscoveryResponse>;

    async fn delta_secrets(
        &self,
        _request: Request<Streaming<DeltaDiscoveryRequest>>,
    ) -> Result<Response<Self::DeltaSecretsStream>, Status> {
        Err(Status::unimplemented(
            "delta SDS: use StreamSecrets (sds_config api_type GRPC)",
        ))
    }

    async fn stream_secrets(
        &self,
        request: Request<Streaming<DiscoveryRequest>>,
    ) -> Result<Response<Self::StreamSecretsStream>, Status> {
        let mut inbound = request.into_inner();
        let mut secrets = self.secrets.clone();
        let id = self.streams.fetch_add(1, Ordering::Relaxed) + 1;
        let (tx, rx) = mpsc::channel(4);
        let span = info_span!("sds stream", stream = id);
        tokio::spawn(
            async move {
                debug!("SDS stream opened");
                let mut stream = SdsStream::new();
                loop {
                    let response = tokio::select! {
                        message = inbound.message() => match message {
                            Ok(Some(request)) => {
                                let current = secrets.borrow_and_update().clone();
                                stream.on_request(&request, current.as_deref())
                            }
                            Ok(None) => break,
                            Err(status) => {
                                debug!(error = %status.message(), "SDS stream failed");
                                break;
                            }
                        },
                        changed = secrets.changed() => {
                            if changed.is_err() {
                                break;
                            }
                            let current = secrets.borrow_and_update().clone();
                            current.and_then(|s| stream.on_secret(&s))
                        }
                    };
                    if let Some(response) = response {
                        debug!(version = %response.version_info, nonce = %response.nonce, "secret sent");
                        if tx.send(Ok(response)).await.is_err() {
                            break;
                        }
                    }
                }
                debug!("SDS stream closed");
            }
            .instrument(span),
        );
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn fetch_secrets(
        &self,
        request: Request<DiscoveryRequest>,
    ) -> Result<Response<DiscoveryResponse>, Status> {
        let current = self.secrets.borrow().clone();
        let current = current.ok_or_else(|| Status::unavailable("no workload certificate yet"))?;
        SdsStream::new()
            .on_request(request.get_ref(), Some(&current))
            .map(Response::new)
            .ok_or_else(|| Status::not_found("the agent serves only the secret \"default\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_directory_holds_the_socket() {
        let dir = tempfile::tempdir().unwrap();
        let (path, own) = socket_path(dir.path(), "sds.sock").unwrap();
        assert_eq!(path, dir.path().join("sds.sock"));
        assert_eq!(own, None);
    }

    #[test]
    fn a_deep_directory_gets_a_short_one_instead() {
        let dir = tempfile::tempdir().unwrap();
        let deep = dir.path().join("d".repeat(120));
        let (path, own) = socket_path(&deep, "sds.sock").unwrap();
        let own = own.unwrap();
        assert!(
            path.as_os_str().len() <= MAX_SOCKET_PATH,
            "{}",
            path.display()
        );
        assert_eq!(path, own.join("sds.sock"));
        assert!(own.starts_with("/tmp") && own.is_dir());
        let (second, other) = socket_path(&deep, "sds.sock").unwrap();
        assert_ne!(second, path, "each call gets its own directory");
        for d in [own, other.unwrap()] {
            std::fs::remove_dir_all(d).unwrap();
        }
    }
}
