//! The mesh config: Istio's `MeshConfig` YAML, the settings that apply to the
//! whole mesh rather than to one object.
//!
//! ```text
//! --mesh-config FILE ──► parse_mesh_config ──► MeshConfig (defaults for what is unset)
//!                                         └──► Err(diagnostics naming the file and field)
//! ```
//!
//! Bowline reads the fields it honours (`rootNamespace`, `trustDomain`,
//! `pathNormalization`, and the access log's `accessLogFile`,
//! `accessLogEncoding`, `accessLogFormat`); Istio's
//! other MeshConfig fields are "not supported yet" and anything else is an
//! unknown field, each reported at its path, with the same decoding machinery
//! as the objects. A file with any error is not used: the caller runs with
//! the defaults and reports why.

use serde::Deserialize;
use serde_yaml::Value;

use crate::decode::{Fields, Shape, ShapeId, describe, keyword, string};
use crate::diag::{Diagnostic, FieldPath};
use crate::validate::names;

/// Istio's default root namespace.
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";

/// Istio's default trust domain.
pub const DEFAULT_TRUST_DOMAIN: &str = "cluster.local";

/// How sidecars normalise a request's path before routing and authorization
/// (`pathNormalization.normalization`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum PathNormalization {
    /// No normalisation: the path as the client sent it.
    None,
    /// RFC 3986 normalisation (`/a/../b` is `/b`), Istio's default.
    #[default]
    Base,
    /// `BASE`, then repeated slashes merged (`//a` is `/a`).
    MergeSlashes,
    /// `MERGE_SLASHES`, after escaped slashes (`%2F`, `%5C`) are decoded.
    DecodeAndMergeSlashes,
}

/// The mesh-wide settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshConfig {
    /// Where mesh-wide config lives: a Sidecar without a workload selector
    /// here is the default of every namespace that has none of its own.
    pub root_namespace: String,
    /// The trust domain of the mesh's SPIFFE identities.
    pub trust_domain: String,
    pub path_normalization: PathNormalization,
    /// Every sidecar's access log (`accessLogFile` and its format), as
    /// most Istio users turn logs on; `None` (the default, or an empty
    /// path): no access log.
    pub access_log: Option<AccessLog>,
    /// `accessLogEncoding` and `accessLogFormat`, file or none: what Istio's
    /// built-in `envoy` provider writes.
    pub access_log_format: AccessLogFormat,
    /// `extensionProviders`: the providers Telemetry names (for now the
    /// Envoy file access log).
    pub extension_providers: Vec<ExtensionProvider>,
    /// `defaultProviders.accessLogging`: the providers a workload logs to
    /// where no Telemetry names any.
    pub default_access_logging: Vec<String>,
    /// `defaultProviders.tracing`: the tracer where no Telemetry names one.
    pub default_tracing: Vec<String>,
}

/// One of `extensionProviders`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExtensionProvider {
    pub name: String,
    pub kind: ProviderKind,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ProviderKind {
    /// `envoyFileAccessLog`: `path` (default `/dev/stdout`) and
    /// `logFormat` (`text`, or `labels` for JSON; default Istio's line).
    EnvoyFileAccessLog {
        path: String,
        format: AccessLogFormat,
    },
    /// `zipkin`: spans to a Zipkin collector (B3 propagation).
    Zipkin(Collector),
    /// `opentelemetry`: spans over OTLP/gRPC (W3C trace context).
    OpenTelemetry(Collector),
}

/// Where a tracer sends spans: a service of the mesh (`NAMESPACE/HOST` or
/// `HOST`) and port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collector {
    pub service: String,
    pub port: u16,
    /// `maxTagLength`: the longest path tag (Envoy's default 256).
    pub max_tag_length: Option<u32>,
    /// Zipkin's `path` (default `/api/v2/spans`).
    pub path: String,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            root_namespace: DEFAULT_ROOT_NAMESPACE.to_string(),
            trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
            path_normalization: PathNormalization::default(),
            access_log: None,
            access_log_format: AccessLogFormat::Text(None),
            extension_providers: Vec::new(),
            default_access_logging: Vec::new(),
            default_tracing: Vec::new(),
        }
    }
}

/// The mesh-wide access log: `accessLogFile`, `accessLogEncoding` and
/// `accessLogFormat`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccessLog {
    /// Where each sidecar writes it (`/dev/stdout`, as Istio's docs have
    /// it, or a file path).
    pub path: String,
    pub format: AccessLogFormat,
}

/// An access log's format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// `accessLogEncoding: TEXT` (the default): Envoy's command operators
    /// in a line; `None` is Istio's default line.
    Text(Option<String>),
    /// `accessLogEncoding: JSON`: one JSON object per line; `None` is
    /// Istio's default fields, else the object `accessLogFormat` gives
    /// (its values strings of command operators, or nested objects).
    Json(Option<serde_json::Map<String, serde_json::Value>>),
}

pub(crate) const MESH_CONFIG: Shape = Shape {
    name: "MeshConfig",
    known: &[
        "rootNamespace",
        "trustDomain",
        "pathNormalization",
        "accessLogFile",
        "accessLogFormat",
        "accessLogEncoding",
        "extensionProviders",
        "defaultProviders",
    ],
    unsupported: &[
        "proxyListenPort",
        "proxyInboundListenPort",
        "proxyHttpPort",
        "connectTimeout",
        "protocolDetectionTimeout",
        "tcpKeepalive",
        "ingressClass",
        "ingressService",
        "ingressControllerMode",
        "ingressSelector",
        "enableTracing",
        "enableEnvoyAccessLogService",
        "disableEnvoyListenerLog",
        "defaultConfig",
        "outboundTrafficPolicy",
        "inboundTrafficPolicy",
        "configSources",
        "enableAutoMtls",
        "trustDomainAliases",
        "caCertificates",
        "defaultServiceExportTo",
        "defaultVirtualServiceExportTo",
        "defaultDestinationRuleExportTo",
        "localityLbSetting",
        "zoneAwareLbSetting",
        "dnsRefreshRate",
        "h2UpgradePolicy",
        "inboundClusterStatName",
        "outboundClusterStatName",
        "certificates",
        "serviceSettings",
        "serviceScopeConfigs",
        "enablePrometheusMerge",
        "verifyCertificateAtClient",
        "ca",
        "discoverySelectors",
        "defaultHttpRetryPolicy",
        "defaultInboundHttpRetryPolicy",
        "defaultTrafficPolicy",
        "meshMTLS",
        "tlsDefaults",
    ],
    ignored: &[],
    proto_names: true,
};

pub(crate) const EXTENSION_PROVIDER: Shape = Shape {
    name: "MeshConfig.extensionProviders[]",
    known: &["name", "envoyFileAccessLog", "zipkin", "opentelemetry"],
    unsupported: &[
        "envoyExtAuthzHttp",
        "envoyExtAuthzGrpc",
        "lightstep",
        "datadog",
        "stackdriver",
        "opencensus",
        "skywalking",
        "prometheus",
        "envoyHttpAls",
        "envoyTcpAls",
        "envoyOtelAls",
        "sds",
    ],
    ignored: &[],
    proto_names: true,
};

pub(crate) const FILE_ACCESS_LOG_PROVIDER: Shape = Shape {
    name: "MeshConfig.extensionProviders[].envoyFileAccessLog",
    known: &["path", "logFormat"],
    unsupported: &["omitEmptyValues"],
    ignored: &[],
    proto_names: true,
};

pub(crate) const LOG_FORMAT: Shape = Shape {
    name: "MeshConfig.extensionProviders[].envoyFileAccessLog.logFormat",
    known: &["text", "labels"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(crate) const ZIPKIN: Shape = Shape {
    name: "MeshConfig.extensionProviders[].zipkin",
    known: &["service", "port", "maxTagLength", "path"],
    unsupported: &[
        "enable64bitTraceId",
        "traceContextOption",
        "timeout",
        "headers",
    ],
    ignored: &[],
    proto_names: true,
};

pub(crate) const OPENTELEMETRY: Shape = Shape {
    name: "MeshConfig.extensionProviders[].opentelemetry",
    known: &["service", "port", "maxTagLength"],
    unsupported: &[
        "http",
        "resourceDetectors",
        "dynatraceSampler",
        "timeout",
        "headers",
    ],
    ignored: &[],
    proto_names: true,
};

pub(crate) const DEFAULT_PROVIDERS: Shape = Shape {
    name: "MeshConfig.defaultProviders",
    known: &["accessLogging", "tracing"],
    unsupported: &["metrics"],
    ignored: &[],
    proto_names: true,
};

pub(crate) const PATH_NORMALIZATION: Shape = Shape {
    name: "MeshConfig.pathNormalization",
    known: &["normalization"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

/// Reads a mesh config file. `file` names it in diagnostics. An empty file
/// is all defaults; any error rejects the whole file.
pub fn parse_mesh_config(file: &str, text: &str) -> Result<MeshConfig, Vec<Diagnostic>> {
    let locate = |d: Diagnostic| Diagnostic {
        file: file.to_string(),
        ..d
    };
    let mut documents = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        match Value::deserialize(document) {
            Ok(value) if value.is_null() => {}
            Ok(value) => documents.push(value),
            Err(e) => {
                let message = format!("invalid YAML: {e}");
                return Err(vec![locate(Diagnostic::error(FieldPath::root(), message))]);
            }
        }
    }
    let value = match documents.as_slice() {
        [] => return Ok(MeshConfig::default()),
        [value] => value,
        _ => {
            let message = format!("expected one MeshConfig document, got {}", documents.len());
            return Err(vec![locate(Diagnostic::error(FieldPath::root(), message))]);
        }
    };
    decode(value).map_err(|found| found.into_iter().map(locate).collect())
}

fn decode(value: &Value) -> Result<MeshConfig, Vec<Diagnostic>> {
    let root = FieldPath::root();
    if !value.is_mapping() {
        let message = format!("expected a MeshConfig mapping, got {}", describe(value));
        return Err(vec![Diagnostic::error(root, message)]);
    }
    let fields =
        Fields::new(value, &root, ShapeId::MeshConfig).map_err(|e| vec![e.into_diagnostic()])?;
    let mut config = MeshConfig::default();
    if let Some((path, v)) = fields.get("rootNamespace") {
        let namespace = string(v, &path).map_err(|e| vec![e.into_diagnostic()])?;
        // Empty is proto3's "unset": the default stays.
        if !namespace.is_empty() {
            if let Err(e) = names::dns1123_label(&namespace) {
                return Err(vec![Diagnostic::error(path, e)]);
            }
            config.root_namespace = namespace;
        }
    }
    let one = |e: crate::decode::DecodeError| vec![e.into_diagnostic()];
    if let Some((path, v)) = fields.get("trustDomain") {
        let domain = string(v, &path).map_err(one)?;
        if !domain.is_empty() {
            if let Err(e) = trust_domain(&domain) {
                return Err(vec![Diagnostic::error(path, e)]);
            }
            config.trust_domain = domain;
        }
    }
    if let Some((path, v)) = fields.get("pathNormalization") {
        let fields = Fields::new(v, &path, ShapeId::PathNormalization).map_err(one)?;
        if let Some((path, v)) = fields.get("normalization") {
            config.path_normalization = keyword(
                v,
                &path,
                &[
                    ("DEFAULT", PathNormalization::Base),
                    ("NONE", PathNormalization::None),
                    ("BASE", PathNormalization::Base),
                    ("MERGE_SLASHES", PathNormalization::MergeSlashes),
                    (
                        "DECODE_AND_MERGE_SLASHES",
                        PathNormalization::DecodeAndMergeSlashes,
                    ),
                ],
            )
            .map_err(one)?;
        }
    }
    (config.access_log, config.access_log_format) = access_log(&fields)?;
    if let Some((path, v)) = fields.get("extensionProviders") {
        for (path, v) in crate::decode::list(v, &path).map_err(one)? {
            config
                .extension_providers
                .push(extension_provider(v, &path)?);
        }
        let mut names: Vec<&str> = config
            .extension_providers
            .iter()
            .map(|p| p.name.as_str())
            .collect();
        names.sort();
        if let Some(twice) = names.windows(2).find(|w| w[0] == w[1]) {
            return Err(vec![Diagnostic::error(
                path,
                format!("provider {:?} is defined twice", twice[0]),
            )]);
        }
    }
    if let Some((path, v)) = fields.get("defaultProviders") {
        let defaults = Fields::new(v, &path, ShapeId::DefaultProviders).map_err(one)?;
        if let Some((path, v)) = defaults.get("accessLogging") {
            config.default_access_logging = crate::decode::string_list(v, &path).map_err(one)?;
        }
        if let Some((path, v)) = defaults.get("tracing") {
            config.default_tracing = crate::decode::string_list(v, &path).map_err(one)?;
        }
    }
    Ok(config)
}

/// A tracer's collector: `service` and `port` are required.
fn collector(
    value: &Value,
    path: &FieldPath,
    shape: ShapeId,
    zipkin: bool,
) -> Result<Collector, Vec<Diagnostic>> {
    let one = |e: crate::decode::DecodeError| vec![e.into_diagnostic()];
    let fields = Fields::new(value, path, shape).map_err(one)?;
    let service = match fields.get("service") {
        Some((p, v)) => string(v, &p).map_err(one)?,
        None => String::new(),
    };
    if service.is_empty() {
        return Err(vec![Diagnostic::error(
            path.field("service"),
            "the collector's service is required".to_string(),
        )]);
    }
    let port = match fields.get("port") {
        Some((p, v)) => crate::decode::port(v, &p).map_err(one)?,
        None => {
            return Err(vec![Diagnostic::error(
                path.field("port"),
                "the collector's port is required".to_string(),
            )]);
        }
    };
    let max_tag_length = match fields.get("maxTagLength") {
        Some((p, v)) => Some(crate::decode::uint32(v, &p).map_err(one)?).filter(|n| *n > 0),
        None => None,
    };
    let path_field = if zipkin { fields.get("path") } else { None };
    let collector_path = match path_field {
        Some((p, v)) => string(v, &p).map_err(one)?,
        None => String::new(),
    };
    Ok(Collector {
        service,
        port,
        max_tag_length,
        path: if collector_path.is_empty() {
            "/api/v2/spans".to_string()
        } else {
            collector_path
        },
    })
}

/// One of `extensionProviders`: its name and what it is.
fn extension_provider(
    value: &Value,
    path: &FieldPath,
) -> Result<ExtensionProvider, Vec<Diagnostic>> {
    let one = |e: crate::decode::DecodeError| vec![e.into_diagnostic()];
    let fields = Fields::new(value, path, ShapeId::ExtensionProvider).map_err(one)?;
    let name = match fields.get("name") {
        Some((p, v)) => string(v, &p).map_err(one)?,
        None => String::new(),
    };
    if name.is_empty() {
        return Err(vec![Diagnostic::error(
            path.field("name"),
            "an extension provider needs a name".to_string(),
        )]);
    }
    let kinds: Vec<&str> = ["envoyFileAccessLog", "zipkin", "opentelemetry"]
        .into_iter()
        .filter(|k| fields.get(k).is_some())
        .collect();
    if kinds.len() > 1 {
        return Err(vec![Diagnostic::error(
            path.clone(),
            format!(
                "provider {name:?} is one kind of provider; it names {}",
                kinds.join(" and ")
            ),
        )]);
    }
    for (field, shape) in [
        ("zipkin", ShapeId::Zipkin),
        ("opentelemetry", ShapeId::OpenTelemetry),
    ] {
        if let Some((path, v)) = fields.get(field) {
            let collector = collector(v, &path, shape, field == "zipkin")?;
            let kind = if field == "zipkin" {
                ProviderKind::Zipkin(collector)
            } else {
                ProviderKind::OpenTelemetry(collector)
            };
            return Ok(ExtensionProvider { name, kind });
        }
    }
    let Some((path, v)) = fields.get("envoyFileAccessLog") else {
        return Err(vec![Diagnostic::error(
            path.clone(),
            format!(
                "provider {name:?} names no provider type Bowline supports (envoyFileAccessLog, zipkin, opentelemetry)"
            ),
        )]);
    };
    let file = Fields::new(v, &path, ShapeId::FileAccessLogProvider).map_err(one)?;
    let log_path = match file.get("path") {
        Some((p, v)) => string(v, &p).map_err(one)?,
        None => String::new(),
    };
    let format = match file.get("logFormat") {
        None => AccessLogFormat::Text(None),
        Some((p, v)) => {
            let format = Fields::new(v, &p, ShapeId::LogFormat).map_err(one)?;
            match (format.get("text"), format.get("labels")) {
                (Some(_), Some(_)) => {
                    return Err(vec![Diagnostic::error(
                        p,
                        "logFormat takes text or labels, not both".to_string(),
                    )]);
                }
                (Some((p, v)), None) => {
                    let text = string(v, &p).map_err(one)?;
                    AccessLogFormat::Text((!text.is_empty()).then(|| {
                        if text.ends_with('\n') {
                            text
                        } else {
                            text + "\n"
                        }
                    }))
                }
                (None, Some((p, v))) => {
                    let json = serde_json::to_value(v)
                        .map_err(|e| vec![Diagnostic::error(p.clone(), format!("labels: {e}"))])?;
                    let serde_json::Value::Object(object) = json else {
                        return Err(vec![Diagnostic::error(
                            p,
                            "labels must be a mapping".to_string(),
                        )]);
                    };
                    if let Some(bad) = bad_json_value(&object, "") {
                        return Err(vec![Diagnostic::error(
                            p,
                            format!(
                                "{bad}: a JSON log format's values are strings of command operators or objects of them"
                            ),
                        )]);
                    }
                    AccessLogFormat::Json((!object.is_empty()).then_some(object))
                }
                (None, None) => AccessLogFormat::Text(None),
            }
        }
    };
    Ok(ExtensionProvider {
        name,
        kind: ProviderKind::EnvoyFileAccessLog {
            path: if log_path.is_empty() {
                "/dev/stdout".to_string()
            } else {
                log_path
            },
            format,
        },
    })
}

/// `accessLogFile`, `accessLogEncoding` and `accessLogFormat`. A JSON
/// format must be a JSON object whose values are strings or such objects
/// (Envoy's `json_format`); a text format gets the line end Istio adds.
fn access_log(
    fields: &Fields<'_>,
) -> Result<(Option<AccessLog>, AccessLogFormat), Vec<Diagnostic>> {
    let one = |e: crate::decode::DecodeError| vec![e.into_diagnostic()];
    let path = match fields.get("accessLogFile") {
        Some((at, v)) => string(v, &at).map_err(one)?,
        None => String::new(),
    };
    let json = match fields.get("accessLogEncoding") {
        Some((at, v)) => keyword(v, &at, &[("TEXT", false), ("JSON", true)]).map_err(one)?,
        None => false,
    };
    let text = match fields.get("accessLogFormat") {
        Some((at, v)) => Some((string(v, &at).map_err(one)?, at)),
        None => None,
    };
    let text = text.filter(|(t, _)| !t.is_empty());
    let format = match (json, text) {
        (false, None) => AccessLogFormat::Text(None),
        (false, Some((text, _))) => AccessLogFormat::Text(Some(if text.ends_with('\n') {
            text
        } else {
            text + "\n"
        })),
        (true, None) => AccessLogFormat::Json(None),
        (true, Some((text, at))) => {
            let parsed: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
                vec![Diagnostic::error(
                    at.clone(),
                    format!("with accessLogEncoding JSON, the format must be a JSON object: {e}"),
                )]
            })?;
            let serde_json::Value::Object(object) = parsed else {
                return Err(vec![Diagnostic::error(
                    at,
                    "with accessLogEncoding JSON, the format must be a JSON object".to_string(),
                )]);
            };
            if let Some(bad) = bad_json_value(&object, "") {
                return Err(vec![Diagnostic::error(
                    at,
                    format!(
                        "{bad}: a JSON log format's values are strings of command operators or objects of them"
                    ),
                )]);
            }
            AccessLogFormat::Json(Some(object))
        }
    };
    let log = (!path.is_empty()).then(|| AccessLog {
        path,
        format: format.clone(),
    });
    Ok((log, format))
}

/// The first key whose value is neither a string nor an object of such.
fn bad_json_value(object: &serde_json::Map<String, serde_json::Value>, at: &str) -> Option<String> {
    for (key, value) in object {
        let here = if at.is_empty() {
            key.clone()
        } else {
            format!("{at}.{key}")
        };
        match value {
            serde_json::Value::String(_) => {}
            serde_json::Value::Object(inner) => {
                if let Some(bad) = bad_json_value(inner, &here) {
                    return Some(bad);
                }
            }
            _ => return Some(here),
        }
    }
    None
}

/// A trust domain, as Istio checks it: dot-separated labels of letters,
/// digits, `-` and `_`.
fn trust_domain(domain: &str) -> Result<(), String> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    };
    if domain.len() <= 255 && domain.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "trust domain {domain:?} must be dot-separated labels of letters, digits, '-' and '_'"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(text: &str) -> Vec<String> {
        parse_mesh_config("mesh.yaml", text)
            .unwrap_err()
            .iter()
            .map(|d| d.to_string())
            .collect()
    }

    #[test]
    fn defaults_to_istio_system() {
        assert_eq!(MeshConfig::default().root_namespace, "istio-system");
        for empty in ["", "# nothing\n", "---\n", "rootNamespace: ''\n"] {
            assert_eq!(
                parse_mesh_config("mesh.yaml", empty),
                Ok(MeshConfig::default()),
                "{empty:?}"
            );
        }
    }

    #[test]
    fn reads_root_namespace_in_either_spelling() {
        for text in ["rootNamespace: mesh-root\n", "root_namespace: mesh-root\n"] {
            let config = parse_mesh_config("mesh.yaml", text).unwrap();
            assert_eq!(config.root_namespace, "mesh-root");
        }
    }

    #[test]
    fn unknown_and_unsupported_fields_are_named_by_path() {
        assert_eq!(
            errors("rootNamespace: a\nrootNamespce: b\n"),
            ["mesh.yaml: rootNamespce: unknown field"]
        );
        assert_eq!(
            errors("trustDomainAliases: [example.org]\n"),
            ["mesh.yaml: trustDomainAliases: field is not supported yet"]
        );
        // Unset (empty) Istio fields are accepted, as for objects.
        assert!(parse_mesh_config("mesh.yaml", "extensionProviders: []\n").is_ok());
    }

    #[test]
    fn reads_trust_domain_and_path_normalization() {
        let config = MeshConfig::default();
        assert_eq!(config.trust_domain, "cluster.local");
        assert_eq!(config.path_normalization, PathNormalization::Base);
        let config = parse_mesh_config(
            "mesh.yaml",
            "trustDomain: example.org\npathNormalization: {normalization: MERGE_SLASHES}\n",
        )
        .unwrap();
        assert_eq!(config.trust_domain, "example.org");
        assert_eq!(config.path_normalization, PathNormalization::MergeSlashes);
        for (text, mode) in [
            ("NONE", PathNormalization::None),
            ("DEFAULT", PathNormalization::Base),
            (
                "decode_and_merge_slashes",
                PathNormalization::DecodeAndMergeSlashes,
            ),
        ] {
            let yaml = format!("path_normalization: {{normalization: {text}}}\n");
            let config = parse_mesh_config("mesh.yaml", &yaml).unwrap();
            assert_eq!(config.path_normalization, mode, "{text}");
        }
        assert_eq!(
            errors("pathNormalization: {normalization: SOME}\n"),
            [
                "mesh.yaml: pathNormalization.normalization: unknown value \"SOME\"; expected one of DEFAULT, NONE, BASE, MERGE_SLASHES, DECODE_AND_MERGE_SLASHES"
            ]
        );
        assert_eq!(
            errors("pathNormalization: {mode: BASE}\n"),
            ["mesh.yaml: pathNormalization.mode: unknown field"]
        );
        assert_eq!(
            errors("trustDomain: 'a..b'\n"),
            [
                "mesh.yaml: trustDomain: trust domain \"a..b\" must be dot-separated labels of letters, digits, '-' and '_'"
            ]
        );
    }

    #[test]
    fn reads_the_access_log_as_istio_does() {
        assert_eq!(MeshConfig::default().access_log, None);
        let config = parse_mesh_config("mesh.yaml", "accessLogFile: /dev/stdout\n").unwrap();
        assert_eq!(
            config.access_log,
            Some(AccessLog {
                path: "/dev/stdout".to_string(),
                format: AccessLogFormat::Text(None),
            })
        );
        let config = parse_mesh_config(
            "mesh.yaml",
            "accessLogFile: /tmp/a.log\naccessLogFormat: '%RESPONSE_CODE% %UPSTREAM_HOST%'\n",
        )
        .unwrap();
        assert_eq!(
            config.access_log.unwrap().format,
            AccessLogFormat::Text(Some("%RESPONSE_CODE% %UPSTREAM_HOST%\n".to_string())),
            "Istio ends the line"
        );
        let config = parse_mesh_config(
            "mesh.yaml",
            "accessLogFile: /dev/stdout\naccessLogEncoding: JSON\naccessLogFormat: '{\"code\": \"%RESPONSE_CODE%\", \"up\": {\"host\": \"%UPSTREAM_HOST%\"}}'\n",
        )
        .unwrap();
        let AccessLogFormat::Json(Some(object)) = config.access_log.unwrap().format else {
            panic!("not JSON");
        };
        assert_eq!(object["code"], "%RESPONSE_CODE%");
        // No file, no log, whatever the format.
        let config = parse_mesh_config("mesh.yaml", "accessLogEncoding: JSON\n").unwrap();
        assert_eq!(config.access_log, None);
        assert_eq!(
            errors("accessLogFile: /dev/stdout\naccessLogEncoding: XML\n"),
            ["mesh.yaml: accessLogEncoding: unknown value \"XML\"; expected one of TEXT, JSON"]
        );
        assert_eq!(
            errors("accessLogFile: x\naccessLogEncoding: JSON\naccessLogFormat: '{\"n\": 1}'\n"),
            [
                "mesh.yaml: accessLogFormat: n: a JSON log format's values are strings of command operators or objects of them"
            ]
        );
        assert!(
            errors("accessLogFile: x\naccessLogEncoding: JSON\naccessLogFormat: 'not json'\n")[0]
                .starts_with("mesh.yaml: accessLogFormat: with accessLogEncoding JSON, the format must be a JSON object")
        );
    }

    #[test]
    fn reads_file_access_log_providers_and_the_default() {
        let config = parse_mesh_config(
            "mesh.yaml",
            r#"
extensionProviders:
- name: plain
  envoyFileAccessLog: {}
- name: lines
  envoyFileAccessLog: {path: /tmp/a.log, logFormat: {text: "%RESPONSE_CODE%"}}
- name: json
  envoyFileAccessLog: {logFormat: {labels: {code: "%RESPONSE_CODE%"}}}
defaultProviders: {accessLogging: [json]}
"#,
        )
        .unwrap();
        let kinds: Vec<(&str, &ProviderKind)> = config
            .extension_providers
            .iter()
            .map(|p| (p.name.as_str(), &p.kind))
            .collect();
        assert_eq!(
            kinds[0],
            (
                "plain",
                &ProviderKind::EnvoyFileAccessLog {
                    path: "/dev/stdout".to_string(),
                    format: AccessLogFormat::Text(None)
                }
            )
        );
        assert_eq!(
            kinds[1].1,
            &ProviderKind::EnvoyFileAccessLog {
                path: "/tmp/a.log".to_string(),
                format: AccessLogFormat::Text(Some("%RESPONSE_CODE%\n".to_string()))
            }
        );
        let ProviderKind::EnvoyFileAccessLog {
            format: AccessLogFormat::Json(Some(labels)),
            ..
        } = kinds[2].1
        else {
            panic!("{kinds:?}");
        };
        assert_eq!(labels["code"], "%RESPONSE_CODE%");
        assert_eq!(config.default_access_logging, ["json"]);
        assert_eq!(
            errors("extensionProviders:\n- name: d\n  datadog: {service: d, port: 8126}\n"),
            ["mesh.yaml: extensionProviders[0].datadog: field is not supported yet"]
        );
        assert_eq!(
            errors("extensionProviders:\n- envoyFileAccessLog: {}\n"),
            ["mesh.yaml: extensionProviders[0].name: an extension provider needs a name"]
        );
        assert_eq!(
            errors(
                "extensionProviders:\n- {name: a, envoyFileAccessLog: {}}\n- {name: a, envoyFileAccessLog: {}}\n"
            ),
            ["mesh.yaml: extensionProviders: provider \"a\" is defined twice"]
        );
        assert_eq!(
            errors("defaultProviders: {metrics: [prometheus]}\n"),
            ["mesh.yaml: defaultProviders.metrics: field is not supported yet"]
        );
    }

    #[test]
    fn reads_tracing_providers() {
        let config = parse_mesh_config(
            "mesh.yaml",
            "extensionProviders:\n- {name: zipkin, zipkin: {service: zipkin.istio-system.svc.cluster.local, port: 9411, maxTagLength: 100}}\n- {name: otel, opentelemetry: {service: observability/otel-collector, port: 4317}}\ndefaultProviders: {tracing: [zipkin]}\n",
        )
        .unwrap();
        assert_eq!(
            config.extension_providers[0].kind,
            ProviderKind::Zipkin(Collector {
                service: "zipkin.istio-system.svc.cluster.local".to_string(),
                port: 9411,
                max_tag_length: Some(100),
                path: "/api/v2/spans".to_string(),
            })
        );
        assert!(matches!(
            &config.extension_providers[1].kind,
            ProviderKind::OpenTelemetry(c) if c.port == 4317 && c.service == "observability/otel-collector"
        ));
        assert_eq!(config.default_tracing, ["zipkin"]);
        assert_eq!(
            errors(
                "extensionProviders:\n- {name: both, envoyFileAccessLog: {}, zipkin: {service: z, port: 1}}\n"
            ),
            [
                "mesh.yaml: extensionProviders[0]: provider \"both\" is one kind of provider; it names envoyFileAccessLog and zipkin"
            ]
        );
        assert_eq!(
            errors("extensionProviders:\n- {name: z, zipkin: {port: 9411}}\n"),
            [
                "mesh.yaml: extensionProviders[0].zipkin.service: the collector's service is required"
            ]
        );
        assert_eq!(
            errors(
                "extensionProviders:\n- {name: o, opentelemetry: {service: o, port: 4317, http: {path: /v1/traces}}}\n"
            ),
            ["mesh.yaml: extensionProviders[0].opentelemetry.http: field is not supported yet"]
        );
    }

    #[test]
    fn bad_values_and_shapes_are_errors() {
        assert_eq!(
            errors("rootNamespace: Mesh_Root\n"),
            [
                "mesh.yaml: rootNamespace: \"Mesh_Root\" is not a valid DNS-1123 label: at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit"
            ]
        );
        assert_eq!(
            errors("rootNamespace: [a]\n"),
            ["mesh.yaml: rootNamespace: expected a string, got a list"]
        );
        assert_eq!(
            errors("- rootNamespace: a\n"),
            ["mesh.yaml: expected a MeshConfig mapping, got a list"]
        );
        assert_eq!(
            errors("rootNamespace: a\n---\nrootNamespace: b\n"),
            ["mesh.yaml: expected one MeshConfig document, got 2"]
        );
        assert!(errors("rootNamespace: [\n")[0].starts_with("mesh.yaml: invalid YAML: "));
    }
}
