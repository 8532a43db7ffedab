//! Mutual TLS between sidecars, and TLS toward external services.
//!
//! ```text
//! client sidecar                                       server sidecar
//! cluster ─ transport_socket_matches ─► mTLS ───────► inbound listener ─ tls_inspector
//!   endpoint metadata tlsMode=disabled ─► plaintext      ├─ chain "tls" (ALPN istio): mTLS, XFCC set
//!   DestinationRule tls: DISABLE | ISTIO_MUTUAL |        └─ chain "plaintext" (PERMISSIVE, DISABLE)
//!                        SIMPLE | MUTUAL (files)
//! ```
//!
//! Auto-mTLS uses Istio's signal, the endpoint label
//! `security.istio.io/tlsMode`, but with the default turned round: in
//! Bowline's model every WorkloadEntry has a sidecar, so an endpoint gets
//! mutual TLS unless it says otherwise, and only the endpoints that take
//! plaintext carry `tlsMode: disabled` in their metadata (a label other than
//! `istio`, an endpoint that is no WorkloadEntry, or a workload whose
//! PeerAuthentication is DISABLE at that port). The common case costs no
//! bytes per endpoint.
//!
//! The workload's certificate is the SDS secret `default` on the agent's
//! `sds-grpc` cluster; its key never leaves the agent and Envoy. The roots
//! are `ROOTCA`, which the control plane serves over ADS ([`root_secret`]
//! from the snapshot's trust bundle): it carries no secret, and its ACK
//! tells the control plane that a proxy trusts a new root before signing
//! moves to it (root rotation). Both are waited for
//! (`initial_fetch_timeout: 0s`), as istio-agent's sidecars wait. Only a sidecar whose agent serves
//! `default` (node metadata `sds`) gets any of this; one without keeps
//! plaintext, as a workload outside the mesh would.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use discovery::{Endpoint, ServiceModel};
use envoy_types::pb::envoy::config::cluster::v3::cluster::TransportSocketMatch;
use envoy_types::pb::envoy::config::core::v3::{
    AggregatedConfigSource, ApiConfigSource, ApiVersion, ConfigSource, DataSource, GrpcService,
    Metadata, TransportSocket, api_config_source::ApiType, config_source::ConfigSourceSpecifier,
    data_source::Specifier, grpc_service::EnvoyGrpc, grpc_service::TargetSpecifier,
    transport_socket,
};
use envoy_types::pb::envoy::extensions::transport_sockets::raw_buffer::v3::RawBuffer;
use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::{
    CertificateProviderPluginInstance, CertificateValidationContext, CommonTlsContext,
    DownstreamTlsContext, SdsSecretConfig, Secret, SubjectAltNameMatcher, TlsCertificate,
    UpstreamTlsContext,
    common_tls_context::{CombinedCertificateValidationContext, ValidationContextType},
    secret,
    subject_alt_name_matcher::SanType,
};
use envoy_types::pb::envoy::r#type::matcher::v3::{StringMatcher, string_matcher::MatchPattern};
use envoy_types::pb::google::protobuf::{BoolValue, Struct, Value, value::Kind};
use policy::networking::{ClientTls, TlsMode};
use policy::security::MtlsMode;

use crate::snapshot::Security;

/// Istio's label on an endpoint that says whether it takes mutual TLS.
pub(crate) const TLS_MODE_LABEL: &str = "security.istio.io/tlsMode";
/// The metadata namespace Envoy matches `transport_socket_matches` against.
const SOCKET_MATCH: &str = "envoy.transport_socket_match";
const TLS_MODE: &str = "tlsMode";
const DISABLED: &str = "disabled";
/// The ALPN value a sidecar offers with its mesh certificate, and the one
/// a PERMISSIVE inbound listener tells mesh traffic by (Istio's).
const MESH_ALPN: &str = "istio";
/// Where SIMPLE TLS finds the roots when `caCertificates` is not given, as
/// Istio does: the system's bundle.
const SYSTEM_ROOTS: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What auto-mTLS and ISTIO_MUTUAL need from the snapshot: the security
/// policies (an endpoint whose workload is DISABLE takes plaintext) and the
/// trust domain of the SPIFFE identities.
#[derive(Debug)]
pub(crate) struct MeshTls {
    pub(crate) security: Arc<Security>,
    pub(crate) trust_domain: String,
}

impl MeshTls {
    /// Whether a client's sidecar must reach `endpoint` (a service's
    /// endpoint at `target`, the workload's port) in plaintext.
    pub(crate) fn plaintext(&self, endpoint: &Endpoint, target: u16) -> bool {
        let Some((namespace, _)) = &endpoint.workload else {
            // Not a WorkloadEntry: a sidecar only where the label says so.
            return endpoint.labels.get(TLS_MODE_LABEL).map(String::as_str) != Some(MESH_ALPN);
        };
        if endpoint
            .labels
            .get(TLS_MODE_LABEL)
            .is_some_and(|mode| mode != MESH_ALPN)
        {
            return true;
        }
        self.security
            .peer_authentication_for(namespace, &endpoint.labels)
            .mode_at(target)
            == MtlsMode::Disable
    }

    /// The SPIFFE identities behind `service`: one per namespace and
    /// service account of its workloads (`default` where none is set, as
    /// the agent asks for it), sorted.
    pub(crate) fn identities(&self, service: &ServiceModel) -> Vec<String> {
        let ids: BTreeSet<String> = service
            .endpoints
            .iter()
            .filter_map(|ep| {
                let (namespace, _) = ep.workload.as_ref()?;
                let account = ep.service_account.as_deref().unwrap_or("default");
                Some(format!(
                    "spiffe://{}/ns/{namespace}/sa/{account}",
                    self.trust_domain
                ))
            })
            .collect();
        ids.into_iter().collect()
    }
}

/// Endpoint metadata that selects the plaintext transport socket.
pub(crate) fn plaintext_metadata() -> Metadata {
    Metadata {
        filter_metadata: [(
            SOCKET_MATCH.to_string(),
            Struct {
                fields: [(
                    TLS_MODE.to_string(),
                    Value {
                        kind: Some(Kind::StringValue(DISABLED.to_string())),
                    },
                )]
                .into(),
            },
        )]
        .into(),
        ..Default::default()
    }
}

/// How a client cluster secures its connections.
#[derive(Debug)]
pub(crate) enum Upstream {
    /// Plaintext to every endpoint.
    Plaintext,
    /// Mutual TLS with the mesh certificate, except to endpoints marked
    /// plaintext (auto-mTLS).
    Auto(TransportSocket),
    /// One transport socket for every endpoint.
    All(TransportSocket),
}

/// What a cluster's client sends: the rule's `tls`, else auto-mTLS toward
/// EDS endpoints when the client has a mesh certificate.
/// `identities` (the server's SPIFFE ids) is called only when mesh TLS is
/// in play, since most clusters of a client without a certificate need none.
pub(crate) fn upstream(
    tls: Option<&ClientTls>,
    client_has_certificate: bool,
    eds: bool,
    sni: String,
    identities: impl FnOnce() -> Vec<String>,
) -> Upstream {
    match tls {
        None if client_has_certificate && eds => {
            Upstream::Auto(mesh_upstream(sni, identities(), true))
        }
        None => Upstream::Plaintext,
        Some(tls) => match tls.mode {
            TlsMode::Disable => Upstream::Plaintext,
            TlsMode::IstioMutual => {
                let sans = if tls.subject_alt_names.is_empty() {
                    identities()
                } else {
                    tls.subject_alt_names.clone()
                };
                let sni = tls.sni.clone().unwrap_or(sni);
                Upstream::All(mesh_upstream(sni, sans, client_has_certificate))
            }
            TlsMode::Simple | TlsMode::Mutual => Upstream::All(file_upstream(tls)),
        },
    }
}

/// The certificate provider instance a proxyless gRPC client's bootstrap
/// defines (gRFC A29), as the bootstrap Istio's agent writes: the workload
/// certificate and the roots, from files.
pub(crate) const GRPC_CERTIFICATE_PROVIDER: &str = "default";

/// A proxyless gRPC client's TLS toward a cluster, as Istio's gRPC
/// generator compiles it: only a DestinationRule's ISTIO_MUTUAL turns it
/// on (gRPC has no transport socket matches, so no auto-mTLS), with the
/// certificate and roots from the bootstrap's certificate provider and the
/// server's SPIFFE ids checked. SIMPLE and MUTUAL name files on the client,
/// which gRPC cannot load: the cluster names a provider no bootstrap
/// defines, so the client NACKs it (the NACK says why) and its calls fail
/// rather than go out in plaintext.
pub(crate) fn grpc_upstream(
    tls: Option<&ClientTls>,
    identities: impl FnOnce() -> Vec<String>,
) -> Option<TransportSocket> {
    let tls = tls?;
    let provider = |instance: &str, certificate: &str| CertificateProviderPluginInstance {
        instance_name: instance.to_string(),
        certificate_name: certificate.to_string(),
    };
    let (instance, sans) = match tls.mode {
        TlsMode::Disable => return None,
        TlsMode::IstioMutual if tls.subject_alt_names.is_empty() => {
            (GRPC_CERTIFICATE_PROVIDER, identities())
        }
        TlsMode::IstioMutual => (GRPC_CERTIFICATE_PROVIDER, tls.subject_alt_names.clone()),
        TlsMode::Simple | TlsMode::Mutual => (
            "SIMPLE and MUTUAL TLS from files are not supported for proxyless gRPC; use ISTIO_MUTUAL",
            tls.subject_alt_names.clone(),
        ),
    };
    let context = UpstreamTlsContext {
        common_tls_context: Some(CommonTlsContext {
            tls_certificate_provider_instance: Some(provider(instance, pilot_node::DEFAULT_SECRET)),
            validation_context_type: Some(ValidationContextType::ValidationContext(
                CertificateValidationContext {
                    ca_certificate_provider_instance: Some(provider(
                        instance,
                        pilot_node::ROOT_SECRET,
                    )),
                    // gRPC reads the untyped matchers, against every SAN.
                    #[allow(deprecated)]
                    match_subject_alt_names: sans.into_iter().map(exact).collect(),
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
        ..Default::default()
    };
    Some(tls_socket(super::proto::any(context)))
}

fn exact(value: String) -> StringMatcher {
    StringMatcher {
        match_pattern: Some(MatchPattern::Exact(value)),
        ..Default::default()
    }
}

/// Sets `upstream` on a cluster.
pub(crate) fn apply(
    cluster: &mut envoy_types::pb::envoy::config::cluster::v3::Cluster,
    upstream: Upstream,
) {
    match upstream {
        Upstream::Plaintext => {}
        Upstream::All(socket) => cluster.transport_socket = Some(socket),
        Upstream::Auto(socket) => {
            cluster.transport_socket_matches = vec![
                TransportSocketMatch {
                    name: "tlsMode-disabled".to_string(),
                    r#match: Some(Struct {
                        fields: [(
                            TLS_MODE.to_string(),
                            Value {
                                kind: Some(Kind::StringValue(DISABLED.to_string())),
                            },
                        )]
                        .into(),
                    }),
                    transport_socket: Some(raw_buffer()),
                },
                TransportSocketMatch {
                    name: "tlsMode-istio".to_string(),
                    r#match: Some(Struct::default()),
                    transport_socket: Some(socket),
                },
            ];
        }
    }
}

/// Istio's SNI for a cluster: `outbound_.PORT_.SUBSET_.HOST`.
pub(crate) fn sni(port: u16, subset: Option<&str>, host: &str) -> String {
    format!("outbound_.{port}_.{}_.{host}", subset.unwrap_or(""))
}

fn raw_buffer() -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.raw_buffer".to_string(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(
            super::proto::any(RawBuffer::default()),
        )),
    }
}

fn tls_socket(config: envoy_types::pb::google::protobuf::Any) -> TransportSocket {
    TransportSocket {
        name: "envoy.transport_sockets.tls".to_string(),
        config_type: Some(transport_socket::ConfigType::TypedConfig(config)),
    }
}

/// The secret `name` from the agent's SDS socket.
fn from_agent(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_string(),
        sds_config: Some(ConfigSource {
            resource_api_version: ApiVersion::V3 as i32,
            initial_fetch_timeout: Some(super::proto::duration(Duration::ZERO)),
            config_source_specifier: Some(ConfigSourceSpecifier::ApiConfigSource(
                ApiConfigSource {
                    api_type: ApiType::Grpc as i32,
                    transport_api_version: ApiVersion::V3 as i32,
                    set_node_on_first_message_only: true,
                    grpc_services: vec![GrpcService {
                        target_specifier: Some(TargetSpecifier::EnvoyGrpc(EnvoyGrpc {
                            cluster_name: pilot_node::SDS_CLUSTER.to_string(),
                            ..Default::default()
                        })),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            )),
            ..Default::default()
        }),
    }
}

/// The secret `name` from the control plane, over the ADS stream.
fn from_control_plane(name: &str) -> SdsSecretConfig {
    SdsSecretConfig {
        name: name.to_string(),
        sds_config: Some(ConfigSource {
            resource_api_version: ApiVersion::V3 as i32,
            initial_fetch_timeout: Some(super::proto::duration(Duration::ZERO)),
            config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
            ..Default::default()
        }),
    }
}

/// `ROOTCA`: the bundle's roots (PEM), which peers' certificates are
/// verified against.
pub(crate) fn root_secret(bundle: &str) -> Secret {
    Secret {
        name: pilot_node::ROOT_SECRET.to_string(),
        r#type: Some(secret::Type::ValidationContext(
            CertificateValidationContext {
                trusted_ca: Some(DataSource {
                    specifier: Some(Specifier::InlineString(bundle.to_string())),
                    ..Default::default()
                }),
                ..Default::default()
            },
        )),
    }
}

/// The mesh's common context: the workload certificate (when the sidecar
/// has one), the bundle's roots, and the identities the peer may have.
fn mesh_context(
    certificate: bool,
    peer_identities: Vec<String>,
    alpn: Vec<String>,
) -> CommonTlsContext {
    CommonTlsContext {
        tls_certificate_sds_secret_configs: if certificate {
            vec![from_agent(pilot_node::DEFAULT_SECRET)]
        } else {
            Vec::new()
        },
        alpn_protocols: alpn,
        validation_context_type: Some(ValidationContextType::CombinedValidationContext(
            CombinedCertificateValidationContext {
                default_validation_context: Some(CertificateValidationContext {
                    match_typed_subject_alt_names: peer_identities
                        .into_iter()
                        .map(|id| san(SanType::Uri, id))
                        .collect(),
                    ..Default::default()
                }),
                validation_context_sds_secret_config: Some(from_control_plane(
                    pilot_node::ROOT_SECRET,
                )),
                ..Default::default()
            },
        )),
        ..Default::default()
    }
}

fn san(san_type: SanType, value: String) -> SubjectAltNameMatcher {
    SubjectAltNameMatcher {
        san_type: san_type as i32,
        matcher: Some(StringMatcher {
            match_pattern: Some(MatchPattern::Exact(value)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn mesh_upstream(sni: String, identities: Vec<String>, certificate: bool) -> TransportSocket {
    tls_socket(super::proto::any(UpstreamTlsContext {
        common_tls_context: Some(mesh_context(
            certificate,
            identities,
            vec![MESH_ALPN.to_string()],
        )),
        sni,
        ..Default::default()
    }))
}

fn file(path: &str) -> DataSource {
    DataSource {
        specifier: Some(Specifier::Filename(path.to_string())),
        ..Default::default()
    }
}

/// SIMPLE or MUTUAL TLS from files on the client's machine; the server's
/// names are matched as DNS names or URIs, whichever they look like.
fn file_upstream(tls: &ClientTls) -> TransportSocket {
    let certificates = match (&tls.client_certificate, &tls.private_key) {
        (Some(chain), Some(key)) => vec![TlsCertificate {
            certificate_chain: Some(file(chain)),
            private_key: Some(file(key)),
            ..Default::default()
        }],
        _ => Vec::new(),
    };
    let sans = tls
        .subject_alt_names
        .iter()
        .map(|name| {
            let kind = if name.contains("://") {
                SanType::Uri
            } else {
                SanType::Dns
            };
            san(kind, name.clone())
        })
        .collect();
    let context = CommonTlsContext {
        tls_certificates: certificates,
        validation_context_type: Some(ValidationContextType::ValidationContext(
            CertificateValidationContext {
                trusted_ca: Some(file(tls.ca_certificates.as_deref().unwrap_or(SYSTEM_ROOTS))),
                match_typed_subject_alt_names: sans,
                ..Default::default()
            },
        )),
        ..Default::default()
    };
    tls_socket(super::proto::any(UpstreamTlsContext {
        common_tls_context: Some(context),
        sni: tls.sni.clone().unwrap_or_default(),
        ..Default::default()
    }))
}

/// The inbound side of mutual TLS: the workload certificate, a client
/// certificate required and verified against the bundle (any identity of
/// the trust domain's roots; authorization decides who may call).
pub(crate) fn downstream() -> TransportSocket {
    tls_socket(super::proto::any(DownstreamTlsContext {
        common_tls_context: Some(mesh_context(true, Vec::new(), Vec::new())),
        require_client_certificate: Some(BoolValue { value: true }),
        ..Default::default()
    }))
}

/// The ALPN values a PERMISSIVE listener takes for mesh TLS.
pub(crate) fn mesh_alpn() -> Vec<String> {
    vec![MESH_ALPN.to_string()]
}
