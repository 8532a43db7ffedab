//! A client of the signing API: what an agent (and the tests and the
//! benchmark) calls.

use std::net::SocketAddr;

use proto::bowline::{TrustUpdate, WATCH_TRUST_PATH, WatchTrustRequest};
use proto::istio::{CREATE_CERTIFICATE_PATH, IstioCertificateRequest, IstioCertificateResponse};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::metadata::MetadataValue;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};
use tonic::{Request, Status};
use tonic_prost::ProstCodec;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("CA at {addr}: cannot connect")]
    Connect {
        addr: SocketAddr,
        #[source]
        source: tonic::transport::Error,
    },
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

#[derive(Clone, Debug)]
pub struct CaClient {
    grpc: tonic::client::Grpc<Channel>,
}

impl CaClient {
    pub async fn connect(addr: SocketAddr, config: &ClientConfig) -> Result<CaClient, Error> {
        let connect = |source| Error::Connect { addr, source };
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&config.roots_pem))
            .domain_name(config.server_name.clone());
        if let Some((chain, key)) = &config.identity {
            tls = tls.identity(Identity::from_pem(chain, key));
        }
        let channel = Endpoint::from_shared(format!("https://{addr}"))
            .map_err(connect)?
            .tls_config(tls)
            .map_err(connect)?
            .connect()
            .await
            .map_err(connect)?;
        Ok(CaClient {
            grpc: tonic::client::Grpc::new(channel),
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
            let value: MetadataValue<_> = format!("Bearer {token}")
                .parse()
                .map_err(|_| Status::invalid_argument("token: not valid in a header"))?;
            request.metadata_mut().insert("authorization", value);
        }
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
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

    /// `bowline.ca.v1.Trust/Watch`: the current trust, then each change.
    pub async fn watch_trust(&mut self) -> Result<tonic::Streaming<TrustUpdate>, Status> {
        self.grpc
            .ready()
            .await
            .map_err(|e| Status::unavailable(e.to_string()))?;
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
