//! The sidecar's workload identity: it gets the workload certificate from
//! the CA and serves it to Envoy over SDS, as istio-agent does.
//!
//! ```text
//! P-256 key (memory) + CSR ──► CaClient (citadel-server, TLS) ──► WorkloadSecret ──watch──► SdsServer ──unix socket──► Envoy (sds-grpc)
//!      └─ certificate::CertificateAgent: renew at rotation::renewal_time, retry with backoff
//! ```
//!
//! What is pure lives in `pilot-agent` (the secret as an Envoy `Secret`, the
//! SDS stream's state machine, the rotation schedule), which links no tonic;
//! this crate holds the I/O around it: the CA client and the tonic server.
//! It does not depend on the compiler or the server (`pilot-core`,
//! `pilot-server`), nor on clap or anyhow.

pub mod certificate;
pub mod server;

pub use certificate::{CertificateAgent, CertificateConfig};
pub use server::{SdsServer, SecretWatch};
