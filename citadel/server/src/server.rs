//! The signing API's TLS server: a serving certificate issued by the same CA
//! for the listening IP and the control plane's DNS names, client
//! certificates asked for (optional; a renewal presents one, as does an xDS
//! stream served beside the CA) and checked against the trust bundle. The
//! TLS is rustls through tokio-rustls, not tonic's, so that both follow the
//! bundle through a root rotation; tonic still reads the peer's
//! certificates from the session for the services.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use citadel::signing::Signer;
use rustls_pki_types::PrivateKeyDer;
use rustls_pki_types::pem::PemObject;
use tokio::io::AsyncWrite;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_rustls::server::TlsStream;
use tokio_rustls::{TlsAcceptor, rustls};
use tokio_stream::wrappers::ReceiverStream;
use tonic::service::Routes;
use tonic::transport::server::Connected;
use tracing::{debug, info, warn};

use crate::io::Coalesced;
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
    #[error("the CA's TLS config: {0}")]
    Tls(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Clone, Debug)]
pub struct CaServerConfig {
    pub addr: SocketAddr,
    /// DNS names of the serving certificate.
    pub dns_names: Vec<String>,
    /// How long a connection lives before the server sends GOAWAY (xDS
    /// over mutual TLS is served here: a fleet then spreads over the
    /// replicas); the grace after it. `None`: forever.
    pub max_connection_age: Option<(std::time::Duration, std::time::Duration)>,
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
            max_connection_age: None,
        }
    }
}

/// A running signing API (and whatever else was served beside it).
#[derive(Debug)]
pub struct CaServer {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    task: JoinHandle<()>,
}

impl CaServer {
    /// The signing API alone on `config.addr`.
    pub async fn start(signer: Arc<Signer>, config: &CaServerConfig) -> Result<CaServer> {
        let routes = Routes::new(CertificateService::new(signer.clone()));
        Self::serve(signer, config, routes, "CA").await
    }

    /// Any routes over the CA's TLS: the signing API with xDS over mutual
    /// TLS beside it (as istiod serves both on 15012) and the admission
    /// webhook, or xDS alone on an address of its own.
    pub async fn start_routes(
        signer: Arc<Signer>,
        config: &CaServerConfig,
        routes: Routes,
    ) -> Result<CaServer> {
        Self::serve(signer, config, routes, "CA").await
    }

    async fn serve(
        signer: Arc<Signer>,
        config: &CaServerConfig,
        routes: Routes,
        what: &'static str,
    ) -> Result<CaServer> {
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
        let tls = Arc::new(TlsConfigs::new(
            signer.clone(),
            ips,
            config.dns_names.clone(),
        )?);
        // HTTP/1.1 too, for plain HTTPS routes (the admission webhook);
        // gRPC clients negotiate h2.
        let mut builder = tonic::transport::Server::builder().accept_http1(true);
        if let Some((age, grace)) = config.max_connection_age {
            builder = builder
                .max_connection_age(age)
                .max_connection_age_grace(grace);
        }
        let router = builder.add_routes(routes);
        let (shutdown, mut stop) = watch::channel(false);
        let (connections, incoming) =
            mpsc::channel::<std::io::Result<Coalesced<TlsStream<TcpStream>>>>(64);
        let mut accept_stop = stop.clone();
        let accepting = tokio::spawn(async move {
            loop {
                let (tcp, peer) = tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok(accepted) => accepted,
                        Err(error) => {
                            debug!(%error, "accept failed");
                            continue;
                        }
                    },
                    _ = accept_stop.wait_for(|s| *s) => return,
                };
                // Small responses go out at once, not after Nagle's wait for an ACK.
                let _ = tcp.set_nodelay(true);
                let acceptor = match tls.current() {
                    Ok(acceptor) => acceptor,
                    Err(error) => {
                        warn!(%error, "TLS config");
                        continue;
                    }
                };
                let connections = connections.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = connections.send(Ok(Coalesced::new(stream))).await;
                        }
                        Ok(Err(error)) => debug!(%peer, %error, "TLS handshake failed"),
                        Err(_) => debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        let task = tokio::spawn(async move {
            let served = router
                .serve_with_incoming_shutdown(ReceiverStream::new(incoming), async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await;
            accepting.abort();
            if let Err(error) = served {
                warn!(%error, what, "TLS server stopped");
            }
        });
        info!(
            %addr,
            what,
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

/// The session's peer certificates, as tonic reads them from a TLS stream.
impl<T: Connected + AsyncWrite> Connected for Coalesced<T> {
    type ConnectInfo = T::ConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.get_ref().connect_info()
    }
}

/// How long a client has to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The server's TLS config for the CA's current bundle: when the bundle
/// changes (a root rotation), the next connection gets a new serving
/// certificate from the key that signs now and client certificates are
/// checked against the new bundle; connections already open keep theirs.
struct TlsConfigs {
    signer: Arc<Signer>,
    ips: Vec<IpAddr>,
    dns_names: Vec<String>,
    current: Mutex<(Arc<str>, TlsAcceptor)>,
}

impl TlsConfigs {
    fn new(signer: Arc<Signer>, ips: Vec<IpAddr>, dns_names: Vec<String>) -> Result<Self> {
        let bundle = signer.ca.trust_bundle_pem();
        let acceptor = build(&signer, &ips, &dns_names)?;
        Ok(TlsConfigs {
            signer,
            ips,
            dns_names,
            current: Mutex::new((bundle, acceptor)),
        })
    }

    fn current(&self) -> Result<TlsAcceptor> {
        let bundle = self.signer.ca.trust_bundle_pem();
        let mut current = match self.current.lock() {
            Ok(current) => current,
            Err(poisoned) => poisoned.into_inner(),
        };
        if *current.0 != *bundle {
            let acceptor = build(&self.signer, &self.ips, &self.dns_names)?;
            *current = (bundle, acceptor);
            info!("TLS: new serving certificate and client roots for the new trust bundle");
        }
        Ok(current.1.clone())
    }
}

fn build(signer: &Signer, ips: &[IpAddr], dns_names: &[String]) -> Result<TlsAcceptor> {
    let serving = signer
        .ca
        .serving_cert(ips, dns_names, SystemTime::now())
        .map_err(Error::ServingCert)?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    for root in signer.ca.roots() {
        roots.add(root).map_err(|e| Error::Tls(e.to_string()))?;
    }
    // Optional: a signing request authenticates with a token; renewals and
    // xDS streams present their workload certificate.
    let verifier = rustls::server::WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .allow_unauthenticated()
    .build()
    .map_err(|e| Error::Tls(e.to_string()))?;
    let chain = citadel::pem::certificates("serving certificate", &serving.chain_pem)
        .map_err(|e| Error::Tls(e.to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(serving.key_pem.as_bytes())
        .map_err(|_| Error::Tls("the serving key does not parse".to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
