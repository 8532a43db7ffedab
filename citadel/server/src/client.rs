//! A client of the signing API: what an agent (and the tests and the
//! benchmark) calls.
//!
//! ```text
//! create_certificate ─► tonic::client::Grpc ─► hyper HTTP/2 (one connection)
//!                         ─► Coalesced ─► rustls (the CA's roots, the identity) ─► TCP
//! ```
//!
//! One HTTP/2 connection, its requests handed straight to hyper (no
//! buffering task between the caller and the connection, as tonic's
//! `Channel` has); a call on a connection that has closed connects again.

use std::net::SocketAddr;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper::client::conn::http2::SendRequest;
use hyper_util::rt::{TokioExecutor, TokioIo};
use proto::bowline::{TrustUpdate, WATCH_TRUST_PATH, WatchTrustRequest};
use proto::istio::{CREATE_CERTIFICATE_PATH, IstioCertificateRequest, IstioCertificateResponse};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{PrivateKeyDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::{TlsConnector, rustls};
use tonic::body::Body;
use tonic::codegen::http::uri::{Authority, PathAndQuery, Scheme};
use tonic::codegen::{BoxFuture, Service, http};
use tonic::metadata::MetadataValue;
use tonic::{Request, Status};
use tonic_prost::ProstCodec;
use tracing::debug;

use crate::io::Coalesced;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("CA at {addr}: cannot connect")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("CA at {addr}: TLS handshake failed")]
    Handshake {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("CA at {addr}: HTTP/2 handshake failed")]
    Http2 {
        addr: SocketAddr,
        #[source]
        source: hyper::Error,
    },
    #[error("CA client TLS config: {0}")]
    Tls(String),
}

/// What the client trusts and shows.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// The CA's roots, PEM (the agent's `--ca-root` file).
    pub roots_pem: String,
    /// The name the serving certificate must hold (`localhost`, `istiod.istio-system.svc`).
    pub server_name: String,
    /// A workload certificate chain and its key (PEM), for renewals over mTLS.
    pub identity: Option<(String, String)>,
}

/// A connection to the CA; clones share it.
#[derive(Clone, Debug)]
pub struct CaClient {
    target: Arc<Target>,
    grpc: tonic::client::Grpc<Connection>,
}

/// Where to connect and with what TLS, kept for connecting again.
struct Target {
    addr: SocketAddr,
    authority: Authority,
    server_name: ServerName<'static>,
    tls: TlsConnector,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("addr", &self.addr)
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

impl CaClient {
    pub async fn connect(addr: SocketAddr, config: &ClientConfig) -> Result<CaClient, Error> {
        let target = Arc::new(Target::new(addr, config)?);
        let connection = target.connect().await?;
        Ok(CaClient {
            grpc: tonic::client::Grpc::with_origin(connection, target.origin()),
            target,
        })
    }

    /// `CreateCertificate`: the chain, leaf first, root last.
    pub async fn create_certificate(
        &mut self,
        token: Option<&str>,
        csr_pem: String,
        validity_seconds: i64,
    ) -> Result<Vec<String>, Status> {
        let mut request = Request::new(IstioCertificateRequest {
            csr: csr_pem,
            validity_duration: validity_seconds,
            metadata: None,
        });
        if let Some(token) = token {
            let mut value: MetadataValue<_> = format!("Bearer {token}")
                .parse()
                .map_err(|_| Status::invalid_argument("token: not valid in a header"))?;
            // A credential: HPACK sends it as never indexed (RFC 7541 §7.1.3),
            // so neither side keeps it in its header table.
            value.set_sensitive(true);
            request.metadata_mut().insert("authorization", value);
        }
        self.ready().await?;
        let response = self
            .grpc
            .unary(
                request,
                PathAndQuery::from_static(CREATE_CERTIFICATE_PATH),
                ProstCodec::<IstioCertificateRequest, IstioCertificateResponse>::default(),
            )
            .await?;
        Ok(response.into_inner().cert_chain)
    }

    /// The connection, ready for a call; one that closed (the CA
    /// restarted, an idle timeout) is opened once more.
    async fn ready(&mut self) -> Result<(), Status> {
        if self.grpc.ready().await.is_ok() {
            return Ok(());
        }
        debug!(addr = %self.target.addr, "CA connection closed; connecting again");
        let connection = self
            .target
            .connect()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
        self.grpc = tonic::client::Grpc::with_origin(connection, self.target.origin());
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))
    }

    /// `bowline.ca.v1.Trust/Watch`: the current trust, then each change.
    pub async fn watch_trust(&mut self) -> Result<tonic::Streaming<TrustUpdate>, Status> {
        self.ready().await?;
        let response = self
            .grpc
            .server_streaming(
                Request::new(WatchTrustRequest {}),
                PathAndQuery::from_static(WATCH_TRUST_PATH),
                ProstCodec::<WatchTrustRequest, TrustUpdate>::default(),
            )
            .await?;
        Ok(response.into_inner())
    }
}

impl Target {
    fn new(addr: SocketAddr, config: &ClientConfig) -> Result<Target, Error> {
        let tls = |e: &dyn std::fmt::Display| Error::Tls(e.to_string());
        let mut roots = rustls::RootCertStore::empty();
        let certs =
            citadel::pem::certificates("the CA's roots", &config.roots_pem).map_err(|e| tls(&e))?;
        for root in certs {
            roots.add(root).map_err(|e| tls(&e))?;
        }
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| tls(&e))?
        .with_root_certificates(roots);
        let mut client = match &config.identity {
            Some((chain, key)) => {
                let chain =
                    citadel::pem::certificates("client certificate", chain).map_err(|e| tls(&e))?;
                let key = PrivateKeyDer::from_pem_slice(key.as_bytes())
                    .map_err(|_| Error::Tls("client key: not a PEM private key".to_string()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| tls(&e))?
            }
            None => builder.with_no_client_auth(),
        };
        client.alpn_protocols = vec![b"h2".to_vec()];
        let server_name = ServerName::try_from(config.server_name.clone())
            .map_err(|_| Error::Tls(format!("server name {:?}: not valid", config.server_name)))?;
        let authority = Authority::try_from(format!("{}:{}", config.server_name, addr.port()))
            .map_err(|_| Error::Tls(format!("server name {:?}: not valid", config.server_name)))?;
        Ok(Target {
            addr,
            authority,
            server_name,
            tls: TlsConnector::from(Arc::new(client)),
        })
    }

    /// `https://NAME:PORT`, the requests' scheme and authority.
    fn origin(&self) -> http::Uri {
        http::Uri::builder()
            .scheme(Scheme::HTTPS)
            .authority(self.authority.clone())
            .path_and_query("/")
            .build()
            .unwrap_or_default()
    }

    async fn connect(&self) -> Result<Connection, Error> {
        let addr = self.addr;
        let tcp = TcpStream::connect(addr)
            .await
            .map_err(|source| Error::Connect { addr, source })?;
        // Small requests go out at once, not after Nagle's wait for an ACK.
        tcp.set_nodelay(true)
            .map_err(|source| Error::Connect { addr, source })?;
        let stream = self
            .tls
            .connect(self.server_name.clone(), tcp)
            .await
            .map_err(|source| Error::Handshake { addr, source })?;
        let (send, connection) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
            .handshake::<_, Body>(TokioIo::new(Coalesced::new(stream)))
            .await
            .map_err(|source| Error::Http2 { addr, source })?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                debug!(%addr, %error, "CA connection closed");
            }
        });
        Ok(Connection { send })
    }
}

/// One HTTP/2 connection as the service tonic's client calls.
#[derive(Clone, Debug)]
struct Connection {
    send: SendRequest<Body>,
}

impl Service<http::Request<Body>> for Connection {
    type Response = http::Response<hyper::body::Incoming>;
    type Error = hyper::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.send.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let response = self.send.send_request(request);
        Box::pin(response)
    }
}
