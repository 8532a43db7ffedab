//! The mesh config: Istio's `MeshConfig` YAML, the settings that apply to the
//! whole mesh rather than to one object.
//!
//! ```text
//! --mesh-config FILE ──► parse_mesh_config ──► MeshConfig (defaults for what is unset)
//!                                         └──► Err(diagnostics naming the file and field)
//! ```
//!
//! Bowline reads the fields it honours (`rootNamespace`, `trustDomain`,
//! `pathNormalization`); Istio's
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
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            root_namespace: DEFAULT_ROOT_NAMESPACE.to_string(),
            trust_domain: DEFAULT_TRUST_DOMAIN.to_string(),
            path_normalization: PathNormalization::default(),
        }
    }
}

pub(crate) const MESH_CONFIG: Shape = Shape {
    name: "MeshConfig",
    known: &["rootNamespace", "trustDomain", "pathNormalization"],
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
        "accessLogFile",
        "accessLogFormat",
        "accessLogEncoding",
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
        "extensionProviders",
        "defaultProviders",
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
    Ok(config)
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
