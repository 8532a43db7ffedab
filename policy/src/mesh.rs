//! The mesh config: Istio's `MeshConfig` YAML, the settings that apply to the
//! whole mesh rather than to one object.
//!
//! ```text
//! --mesh-config FILE ──► parse_mesh_config ──► MeshConfig (defaults for what is unset)
//!                                         └──► Err(diagnostics naming the file and field)
//! ```
//!
//! Bowline reads the fields it honours (for now `rootNamespace`); Istio's
//! other MeshConfig fields are "not supported yet" and anything else is an
//! unknown field, each reported at its path, with the same decoding machinery
//! as the objects. A file with any error is not used: the caller runs with
//! the defaults and reports why.

use serde::Deserialize;
use serde_yaml::Value;

use crate::decode::{Fields, Shape, ShapeId, describe, string};
use crate::diag::{Diagnostic, FieldPath};
use crate::validate::names;

/// Istio's default root namespace.
pub const DEFAULT_ROOT_NAMESPACE: &str = "istio-system";

/// The mesh-wide settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshConfig {
    /// Where mesh-wide config lives: a Sidecar without a workload selector
    /// here is the default of every namespace that has none of its own.
    pub root_namespace: String,
}

impl Default for MeshConfig {
    fn default() -> Self {
        MeshConfig {
            root_namespace: DEFAULT_ROOT_NAMESPACE.to_string(),
        }
    }
}

pub(crate) const MESH_CONFIG: Shape = Shape {
    name: "MeshConfig",
    known: &["rootNamespace"],
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
        "trustDomain",
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
        "pathNormalization",
        "defaultHttpRetryPolicy",
        "defaultInboundHttpRetryPolicy",
        "defaultTrafficPolicy",
        "meshMTLS",
        "tlsDefaults",
    ],
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
    Ok(config)
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
            errors("trustDomain: example.org\n"),
            ["mesh.yaml: trustDomain: field is not supported yet"]
        );
        // Unset (empty) Istio fields are accepted, as for objects.
        assert!(parse_mesh_config("mesh.yaml", "extensionProviders: []\n").is_ok());
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
