//! The mesh config's access log (`accessLogFile`, `accessLogEncoding`,
//! `accessLogFormat`) on every sidecar listener, as Istio installs it:
//!
//! ```text
//! MeshConfig.access_log ──► envoy.access_loggers.file { path, format } ──► the access_log of
//!     every HTTP connection manager and TCP proxy of the sidecar's listeners (outbound,
//!     inbound, and the capture listeners), not of proxyless gRPC clients
//! TEXT: the format, or Istio's default line   JSON: the object, or Istio's default fields
//! ```
//!
//! The listener builders take each side's logs and tracing
//! (`listener::Observe`) and set them as they build each connection manager
//! and TCP proxy: nothing is decoded and encoded again.

use envoy_types::pb::envoy::config::accesslog::v3::{
    AccessLog, AccessLogFilter, ExtensionFilter, access_log, access_log_filter, extension_filter,
};
use envoy_types::pb::envoy::config::core::v3::{GrpcService, grpc_service};
use envoy_types::pb::envoy::config::trace::v3::tracing::{Http, http};
use envoy_types::pb::envoy::config::trace::v3::{
    OpenTelemetryConfig, ZipkinConfig, zipkin_config::CollectorEndpointVersion,
};
use envoy_types::pb::envoy::extensions::access_loggers::filters::cel::v3::ExpressionFilter;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::http_connection_manager::Tracing;
use envoy_types::pb::envoy::r#type::tracing::v3::CustomTag as EnvoyCustomTag;
use envoy_types::pb::envoy::r#type::v3::Percent;
use envoy_types::pb::google::protobuf::{BoolValue, UInt32Value};
use policy::mesh::ProviderKind;
use policy::telemetry::WorkloadMode;

use crate::snapshot::telemetry::BUILTIN_ENVOY;
use envoy_types::pb::envoy::config::core::v3::{
    DataSource, SubstitutionFormatString, data_source, substitution_format_string,
};
use envoy_types::pb::envoy::extensions::access_loggers::file::v3::{
    FileAccessLog, file_access_log,
};
use envoy_types::pb::google::protobuf::Any;
use policy::mesh::{AccessLog as MeshAccessLog, AccessLogFormat};
use prost::Message;

use super::proto;

/// Istio's default access log line (its `EnvoyTextLogFormat`).
pub(crate) const ISTIO_TEXT_FORMAT: &str = concat!(
    "[%START_TIME%] \"%REQ(:METHOD)% %REQ(X-ENVOY-ORIGINAL-PATH?:PATH)% %PROTOCOL%\" ",
    "%RESPONSE_CODE% %RESPONSE_FLAGS% %RESPONSE_CODE_DETAILS% %CONNECTION_TERMINATION_DETAILS% ",
    "\"%UPSTREAM_TRANSPORT_FAILURE_REASON%\" %BYTES_RECEIVED% %BYTES_SENT% %DURATION% ",
    "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)% \"%REQ(X-FORWARDED-FOR)%\" \"%REQ(USER-AGENT)%\" ",
    "\"%REQ(X-REQUEST-ID)%\" \"%REQ(:AUTHORITY)%\" \"%UPSTREAM_HOST%\" %UPSTREAM_CLUSTER_RAW% ",
    "%UPSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_LOCAL_ADDRESS% %DOWNSTREAM_REMOTE_ADDRESS% ",
    "%REQUESTED_SERVER_NAME% %ROUTE_NAME%\n",
);

/// Istio's default JSON fields (its `EnvoyJSONLogFormatIstio`).
pub(crate) const ISTIO_JSON_FIELDS: [(&str, &str); 24] = [
    ("authority", "%REQ(:AUTHORITY)%"),
    ("bytes_received", "%BYTES_RECEIVED%"),
    ("bytes_sent", "%BYTES_SENT%"),
    (
        "connection_termination_details",
        "%CONNECTION_TERMINATION_DETAILS%",
    ),
    ("downstream_local_address", "%DOWNSTREAM_LOCAL_ADDRESS%"),
    ("downstream_remote_address", "%DOWNSTREAM_REMOTE_ADDRESS%"),
    ("duration", "%DURATION%"),
    ("method", "%REQ(:METHOD)%"),
    ("path", "%REQ(X-ENVOY-ORIGINAL-PATH?:PATH)%"),
    ("protocol", "%PROTOCOL%"),
    ("request_id", "%REQ(X-REQUEST-ID)%"),
    ("requested_server_name", "%REQUESTED_SERVER_NAME%"),
    ("response_code", "%RESPONSE_CODE%"),
    ("response_code_details", "%RESPONSE_CODE_DETAILS%"),
    ("response_flags", "%RESPONSE_FLAGS%"),
    ("route_name", "%ROUTE_NAME%"),
    ("start_time", "%START_TIME%"),
    ("upstream_cluster", "%UPSTREAM_CLUSTER_RAW%"),
    ("upstream_host", "%UPSTREAM_HOST%"),
    ("upstream_local_address", "%UPSTREAM_LOCAL_ADDRESS%"),
    (
        "upstream_service_time",
        "%RESP(X-ENVOY-UPSTREAM-SERVICE-TIME)%",
    ),
    (
        "upstream_transport_failure_reason",
        "%UPSTREAM_TRANSPORT_FAILURE_REASON%",
    ),
    ("user_agent", "%REQ(USER-AGENT)%"),
    ("x_forwarded_for", "%REQ(X-FORWARDED-FOR)%"),
];

const FILE_ACCESS_LOG: &str = "envoy.access_loggers.file";
const CEL_FILTER: &str = "envoy.access_loggers.extension_filters.cel";

/// The file access log the mesh config asks for.
pub(crate) fn file(log: &MeshAccessLog) -> AccessLog {
    let typed_config = match &log.format {
        AccessLogFormat::Text(text) => {
            let format = substitution_format_string::Format::TextFormatSource(DataSource {
                specifier: Some(data_source::Specifier::InlineString(
                    text.clone()
                        .unwrap_or_else(|| ISTIO_TEXT_FORMAT.to_string()),
                )),
                ..Default::default()
            });
            proto::any(FileAccessLog {
                path: log.path.clone(),
                access_log_format: Some(file_access_log::AccessLogFormat::LogFormat(
                    SubstitutionFormatString {
                        format: Some(format),
                        ..Default::default()
                    },
                )),
            })
        }
        AccessLogFormat::Json(object) => {
            let fields: Vec<(String, Field)> = match object {
                Some(object) => fields_of(object),
                None => ISTIO_JSON_FIELDS
                    .iter()
                    .map(|(k, v)| (k.to_string(), Field::Text(v.to_string())))
                    .collect(),
            };
            json_file_access_log(&log.path, &fields)
        }
    };
    AccessLog {
        name: FILE_ACCESS_LOG.to_string(),
        filter: None,
        config_type: Some(access_log::ConfigType::TypedConfig(typed_config)),
    }
}

/// A value of a JSON log format: a string of command operators, or an
/// object of them.
enum Field {
    Text(String),
    Object(Vec<(String, Field)>),
}

/// The fields of a JSON object, sorted by key (the mesh config checked the
/// values are strings or objects; anything else is written as its text).
fn fields_of(object: &serde_json::Map<String, serde_json::Value>) -> Vec<(String, Field)> {
    let mut fields: Vec<(String, Field)> = object
        .iter()
        .map(|(k, v)| {
            let field = match v {
                serde_json::Value::Object(inner) => Field::Object(fields_of(inner)),
                serde_json::Value::String(s) => Field::Text(s.clone()),
                other => Field::Text(other.to_string()),
            };
            (k.clone(), field)
        })
        .collect();
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    fields
}

/// A `FileAccessLog` with a JSON format, encoded by hand: the generated
/// `google.protobuf.Struct` keeps its fields in a `HashMap`, whose order
/// changes from run to run, and the version of a resource is a hash of its
/// bytes. The fields go in key order (protobuf reads a map in any order).
fn json_file_access_log(path: &str, fields: &[(String, Field)]) -> Any {
    // FileAccessLog { path: 1, log_format: 5 { json_format: 2 { Struct } } }
    let mut value = FileAccessLog {
        path: path.to_string(),
        access_log_format: None,
    }
    .encode_to_vec();
    let format = length_delimited(2, &encode_struct(fields));
    value.extend(length_delimited(5, &format));
    Any {
        type_url: format!(
            "type.googleapis.com/{}",
            <FileAccessLog as prost::Name>::full_name()
        ),
        value,
    }
}

/// `google.protobuf.Struct`: one map entry (tag 1) per field, each
/// `{key: 1, value: 2}`; a `Value` is `string_value` (3) or `struct_value` (5).
fn encode_struct(fields: &[(String, Field)]) -> Vec<u8> {
    let mut out = Vec::new();
    for (key, field) in fields {
        let value = match field {
            Field::Text(text) => length_delimited(3, text.as_bytes()),
            Field::Object(inner) => length_delimited(5, &encode_struct(inner)),
        };
        let mut entry = length_delimited(1, key.as_bytes());
        entry.extend(length_delimited(2, &value));
        out.extend(length_delimited(1, &entry));
    }
    out
}

fn length_delimited(tag: u32, bytes: &[u8]) -> Vec<u8> {
    use prost::encoding::{WireType, encode_key, encode_varint};
    let mut out = Vec::with_capacity(bytes.len() + 6);
    encode_key(tag, WireType::LengthDelimited, &mut out);
    encode_varint(bytes.len() as u64, &mut out);
    out.extend_from_slice(bytes);
    out
}

/// What a proxy's `side` (`Client`: outbound listeners, `Server`: inbound)
/// logs: the providers its Telemetry resolves to, each with its CEL filter,
/// or, where no Telemetry or default provider says anything, the mesh
/// config's `accessLogFile`. A provider the mesh config does not define
/// (the build warned of it) logs nothing; `envoy`, unless defined, is
/// Istio's built-in: `/dev/stdout` in the mesh config's format.
pub(crate) fn for_side(
    snapshot: &crate::snapshot::Snapshot,
    proxy: &crate::proxy::Proxy,
    side: WorkloadMode,
) -> Vec<AccessLog> {
    let mesh = &snapshot.mesh;
    let Some(providers) = snapshot.telemetry.access_logs(
        mesh,
        &proxy.metadata.namespace,
        &proxy.metadata.labels,
        side,
    ) else {
        return mesh.access_log.iter().map(file).collect();
    };
    providers
        .iter()
        .filter_map(|(name, filter)| {
            let log = match mesh.extension_providers.iter().find(|p| &p.name == name) {
                Some(provider) => match &provider.kind {
                    ProviderKind::EnvoyFileAccessLog { path, format } => MeshAccessLog {
                        path: path.clone(),
                        format: format.clone(),
                    },
                    // A tracer logs nothing (the build warned of it).
                    ProviderKind::Zipkin(_) | ProviderKind::OpenTelemetry(_) => return None,
                },
                None if name == BUILTIN_ENVOY => MeshAccessLog {
                    path: "/dev/stdout".to_string(),
                    format: mesh.access_log_format.clone(),
                },
                None => return None,
            };
            let mut log = file(&log);
            if let Some(expression) = filter {
                log.filter = Some(cel(expression));
            }
            Some(log)
        })
        .collect()
}

/// Envoy's CEL access log filter: only requests `expression` holds for.
fn cel(expression: &str) -> AccessLogFilter {
    AccessLogFilter {
        filter_specifier: Some(access_log_filter::FilterSpecifier::ExtensionFilter(
            ExtensionFilter {
                name: CEL_FILTER.to_string(),
                config_type: Some(extension_filter::ConfigType::TypedConfig(proto::any(
                    ExpressionFilter {
                        expression: expression.to_string(),
                        cel_config: None,
                    },
                ))),
            },
        )),
    }
}

/// How a proxy's `side` traces (its Telemetry, else `defaultProviders.tracing`),
/// as Envoy's HTTP connection manager takes it: the tracer with its
/// collector cluster (`outbound|PORT||HOST`, as Istio names it), the
/// sampling, the path tag's length and the custom tags. `None` where
/// nothing traces, or the provider or its service is unknown (the build
/// warned of a provider; a service it cannot find is left out as Istio
/// leaves it). With span reporting disabled, sampling and tags stay and
/// no tracer is set.
pub(crate) fn tracing_for_side(
    snapshot: &crate::snapshot::Snapshot,
    proxy: &crate::proxy::Proxy,
    side: WorkloadMode,
) -> Option<Tracing> {
    let mesh = &snapshot.mesh;
    let spec = snapshot.telemetry.tracing(
        mesh,
        &proxy.metadata.namespace,
        &proxy.metadata.labels,
        side,
    )?;
    let provider = mesh
        .extension_providers
        .iter()
        .find(|p| p.name == spec.provider)?;
    let (collector, zipkin) = match &provider.kind {
        ProviderKind::Zipkin(c) => (c, true),
        ProviderKind::OpenTelemetry(c) => (c, false),
        ProviderKind::EnvoyFileAccessLog { .. } => return None,
    };
    let host = collector_host(snapshot, &collector.service)?;
    let cluster = super::names::outbound_cluster(collector.port, None, &host);
    let tracer = if zipkin {
        Http {
            name: "envoy.tracers.zipkin".to_string(),
            config_type: Some(http::ConfigType::TypedConfig(proto::any(ZipkinConfig {
                collector_cluster: cluster,
                collector_endpoint: collector.path.clone(),
                trace_id_128bit: true,
                shared_span_context: Some(BoolValue { value: false }),
                collector_endpoint_version: CollectorEndpointVersion::HttpJson as i32,
                collector_hostname: host.clone(),
                ..Default::default()
            }))),
        }
    } else {
        let labels = &proxy.metadata.labels;
        let service = labels
            .get("service.istio.io/canonical-name")
            .or_else(|| labels.get("app"))
            .cloned()
            .unwrap_or_else(|| proxy.metadata.workload.clone());
        Http {
            name: "envoy.tracers.opentelemetry".to_string(),
            config_type: Some(http::ConfigType::TypedConfig(proto::any(
                OpenTelemetryConfig {
                    grpc_service: Some(GrpcService {
                        target_specifier: Some(grpc_service::TargetSpecifier::EnvoyGrpc(
                            grpc_service::EnvoyGrpc {
                                cluster_name: cluster,
                                authority: host.clone(),
                                ..Default::default()
                            },
                        )),
                        ..Default::default()
                    }),
                    service_name: format!("{service}.{}", proxy.metadata.namespace),
                    ..Default::default()
                },
            ))),
        }
    };
    Some(Tracing {
        random_sampling: Some(Percent {
            value: spec.random_sampling_percentage,
        }),
        max_path_tag_length: collector.max_tag_length.map(|value| UInt32Value { value }),
        custom_tags: spec
            .custom_tags
            .iter()
            .map(|(name, tag)| custom_tag(name, tag))
            .collect(),
        provider: (!spec.disable_span_reporting).then_some(tracer),
        ..Default::default()
    })
}

/// The service a collector names: `NAMESPACE/HOST` or `HOST`, a host of the
/// registry (short names resolved in the namespace given).
fn collector_host(snapshot: &crate::snapshot::Snapshot, service: &str) -> Option<String> {
    let (namespace, host) = match service.split_once('/') {
        Some((ns, host)) => (ns, host),
        None => ("default", service),
    };
    let host = crate::hosts::resolve(&snapshot.registry, host, namespace);
    snapshot
        .registry
        .services
        .contains_key(&host)
        .then_some(host)
}

fn custom_tag(name: &str, tag: &policy::telemetry::CustomTag) -> EnvoyCustomTag {
    use envoy_types::pb::envoy::r#type::tracing::v3::custom_tag::{self, Type};
    use policy::telemetry::CustomTag as Tag;
    let r#type = match tag {
        Tag::Literal(value) => Type::Literal(custom_tag::Literal {
            value: value.clone(),
        }),
        Tag::Environment { name, default } => Type::Environment(custom_tag::Environment {
            name: name.clone(),
            default_value: default.clone(),
        }),
        Tag::Header { name, default } => Type::RequestHeader(custom_tag::Header {
            name: name.clone(),
            default_value: default.clone(),
        }),
    };
    EnvoyCustomTag {
        tag: name.to_string(),
        r#type: Some(r#type),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_format_encodes_the_same_every_time_and_decodes_as_written() {
        use envoy_types::pb::google::protobuf::value::Kind;
        let object: serde_json::Map<String, serde_json::Value> = serde_json::from_str(
            r#"{"code": "%RESPONSE_CODE%", "peer": {"principal": "%DOWNSTREAM_PEER_URI_SAN%", "address": "%DOWNSTREAM_REMOTE_ADDRESS%"}}"#,
        )
        .unwrap();
        let log = MeshAccessLog {
            path: "/dev/stdout".to_string(),
            format: AccessLogFormat::Json(Some(object)),
        };
        let Some(access_log::ConfigType::TypedConfig(any)) = file(&log).config_type else {
            panic!("no config");
        };
        for _ in 0..20 {
            let Some(access_log::ConfigType::TypedConfig(again)) = file(&log).config_type else {
                panic!("no config");
            };
            assert_eq!(again, any);
        }
        let decoded = FileAccessLog::decode(any.value.as_slice()).unwrap();
        assert_eq!(decoded.path, "/dev/stdout");
        let Some(file_access_log::AccessLogFormat::LogFormat(format)) = decoded.access_log_format
        else {
            panic!("{decoded:?}");
        };
        let Some(substitution_format_string::Format::JsonFormat(json)) = format.format else {
            panic!("{format:?}");
        };
        assert_eq!(
            json.fields["code"].kind,
            Some(Kind::StringValue("%RESPONSE_CODE%".to_string()))
        );
        let Some(Kind::StructValue(peer)) = &json.fields["peer"].kind else {
            panic!("{json:?}");
        };
        assert_eq!(peer.fields.len(), 2);
        // Istio's default fields when the mesh config gives none.
        let default = MeshAccessLog {
            path: "/dev/stdout".to_string(),
            format: AccessLogFormat::Json(None),
        };
        let Some(access_log::ConfigType::TypedConfig(any)) = file(&default).config_type else {
            panic!("no config");
        };
        let decoded = FileAccessLog::decode(any.value.as_slice()).unwrap();
        let Some(file_access_log::AccessLogFormat::LogFormat(format)) = decoded.access_log_format
        else {
            panic!("{decoded:?}");
        };
        let Some(substitution_format_string::Format::JsonFormat(json)) = format.format else {
            panic!("{format:?}");
        };
        assert_eq!(json.fields.len(), ISTIO_JSON_FIELDS.len());
    }

    #[test]
    fn istios_default_line_and_fields() {
        // The line ends in a newline, as Envoy needs; the fields are
        // Istio's, sorted.
        assert!(ISTIO_TEXT_FORMAT.ends_with("%ROUTE_NAME%\n"));
        assert_eq!(ISTIO_TEXT_FORMAT.matches('%').count() % 2, 0);
        let keys: Vec<&str> = ISTIO_JSON_FIELDS.iter().map(|(k, _)| *k).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
    }
}
