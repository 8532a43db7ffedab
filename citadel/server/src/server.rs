//! The signing API's TLS server: a serving certificate issued by the same CA
//! for the listening IP and the control plane's DNS names, client
//! certificates asked for (optional; a renewal presents one) and checked
//! against the trust bundle.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::SystemTime;

use citadel::signing::Signer;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::{Certificate, Identity, ServerTlsConfig};
use tracing::{info, warn};

use crate::service::CertificateService;

/// Istio's port for the CA (and xDS over TLS).
pub const DEFAULT_CA_ADDR: &str = "127.0.0.1:15012";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot listen for the CA on {addr}")]
    Listen {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the CA's serving certificate")]
    ServingCert(#[source] citadel::authority::Error),
    #[error("the CA's TLS config")]
    Tls(#[source] tonic::transport::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Clone, Debug)]
pub struct CaServerConfig {
    pub addr: SocketAddr,
    /// DNS names of the serving certificate.
    pub dns_names: Vec<String>,
}

impl CaServerConfig {
    /// `localhost`, `bowline.NAMESPACE.svc` and `istiod.istio-system.svc`
    /// (the name Istio's agents dial).
    pub fn new(addr: SocketAddr, namespace: &str) -> Self {
        CaServerConfig {
            addr,
            dns_names: vec![
                "localhost".to_string(),
                format!("bowline.{namespace}.svc"),
                "istiod.istio-system.svc".to_string(),
            ],
        }
    }
}

/// A running signing API.
#[derive(Debug)]
pub struct CaServer {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl CaServer {
    pub async fn start(signer: Arc<Signer>, config: &CaServerConfig) -> Result<CaServer> {
        let listen = |source| Error::Listen {
            addr: config.addr,
            source,
        };
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(listen)?;
        let addr = listener.local_addr().map_err(listen)?;
        let mut ips = vec![addr.ip()];
        if addr.ip().is_unspecified() {
            ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        }
        let serving = signer
            .ca
            .serving_cert(&ips, &config.dns_names, SystemTime::now())
            .map_err(Error::ServingCert)?;
        let tls = ServerTlsConfig::new()
            .identity(Identity::from_pem(&serving.chain_pem, &serving.key_pem))
            .client_ca_root(Certificate::from_pem(
                signer.ca.trust_bundle_pem().as_bytes(),
            ))
            .client_auth_optional(true);
        let router = tonic::transport::Server::builder()
            .tls_config(tls)
            .map_err(Error::Tls)?
            .add_service(CertificateService::new(signer.clone()));
        let (shutdown, mut stop) = watch::channel(false);
        let task = tokio::spawn(async move {
            // Small responses go out at once, not after Nagle's wait for an ACK.
            let incoming =
                tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
            let served = router
                .serve_with_incoming_shutdown(incoming, async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            if let Err(error) = served {
                warn!(%error, "CA server stopped");
            }
        });
        info!(
            %addr,
            trust_domain = signer.ca.trust_domain(),
            origin = ?signer.ca.origin(),
            "CA ready"
        );
        Ok(CaServer {
            addr,
            shutdown,
            task,
        })
    }

    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}
