//! Telemetry resources, resolved per workload as Istio resolves their
//! `accessLogging` (its `mergeLogs`):
//!
//! ```text
//! levels: the root namespace's Telemetry without a selector ─► the namespace's without one
//!         ─► the namespace's that selects the workload (the first by name at each level)
//! providers in scope: those of the narrowest level that names any, else defaultProviders
//! each entry, in order: its providers (or the previous entry's), for its match.mode side:
//!         disabled ─► dropped · else ─► on, with the filter last set for the provider
//! ```
//!
//! Where no level configures access logging and the mesh config names no
//! default provider, the mesh config's `accessLogFile` applies, as in Istio.

use std::collections::BTreeMap;
use std::sync::Arc;

use policy::diag::{Diagnostic, FieldPath};
use policy::mesh::MeshConfig;
use policy::security::selects;
use policy::telemetry::{AccessLogging, CustomTag, Telemetry, Tracing, WorkloadMode};

/// Istio's built-in provider: a file log to `/dev/stdout` in the mesh
/// config's encoding and format, unless `extensionProviders` defines it.
pub const BUILTIN_ENVOY: &str = "envoy";

#[derive(Debug, Default, PartialEq)]
pub struct Telemetries {
    root_namespace: String,
    /// Sorted by namespace and name.
    telemetries: Vec<Arc<Telemetry>>,
}

/// What a workload's side logs to: provider name and the CEL filter (if any).
pub type AccessLogs = BTreeMap<String, Option<String>>;

/// Istio's default sampling when nothing sets `randomSamplingPercentage`
/// (the proxy config's `tracing.sampling`, 1%).
pub const DEFAULT_SAMPLING: f64 = 1.0;

/// How one side of a workload traces.
#[derive(Clone, Debug, PartialEq)]
pub struct TracingSpec {
    /// The tracer (a provider of the mesh config's).
    pub provider: String,
    pub random_sampling_percentage: f64,
    /// Spans are sampled and propagated but not sent.
    pub disable_span_reporting: bool,
    pub custom_tags: BTreeMap<String, CustomTag>,
}

impl Telemetries {
    pub fn build(
        mesh: &MeshConfig,
        telemetries: Vec<Arc<Telemetry>>,
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Telemetries {
        let known = |name: &str| {
            name == BUILTIN_ENVOY || mesh.extension_providers.iter().any(|p| p.name == name)
        };
        for t in &telemetries {
            for (i, entry) in t.spec.access_logging.iter().enumerate() {
                for (j, provider) in entry.providers.iter().enumerate() {
                    if !known(provider) {
                        diagnostics.push(
                            Diagnostic::warning(
                                FieldPath::new(format!(
                                    "spec.accessLogging[{i}].providers[{j}].name"
                                )),
                                format!(
                                    "provider {provider:?} is not in the mesh config's extensionProviders: nothing is logged to it"
                                ),
                            )
                            .on(t_key(t)),
                        );
                    }
                }
            }
        }
        for t in &telemetries {
            for (i, entry) in t.spec.tracing.iter().enumerate() {
                for (j, provider) in entry.providers.iter().enumerate() {
                    let tracer = mesh.extension_providers.iter().any(|p| {
                        p.name == *provider
                            && matches!(
                                p.kind,
                                policy::mesh::ProviderKind::Zipkin(_)
                                    | policy::mesh::ProviderKind::OpenTelemetry(_)
                            )
                    });
                    if !tracer {
                        diagnostics.push(
                            Diagnostic::warning(
                                FieldPath::new(format!("spec.tracing[{i}].providers[{j}].name")),
                                format!(
                                    "provider {provider:?} is no tracer of the mesh config's extensionProviders (zipkin, opentelemetry): nothing is traced with it"
                                ),
                            )
                            .on(t_key(t)),
                        );
                    }
                }
            }
        }
        for (i, d) in mesh.default_access_logging.iter().enumerate() {
            if !known(d) {
                diagnostics.push(Diagnostic::warning(
                    FieldPath::new(format!("defaultProviders.accessLogging[{i}]")),
                    format!("provider {d:?} is not in the mesh config's extensionProviders"),
                ));
            }
        }
        Telemetries {
            root_namespace: mesh.root_namespace.clone(),
            telemetries,
        }
    }

    /// The Telemetry resources that apply to a workload, widest first: the
    /// root namespace's without a selector, the namespace's without one,
    /// and the namespace's that selects it (the first by name of each).
    fn applying<'a>(
        &'a self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Vec<&'a Telemetry> {
        let wide_in = |ns: &str| {
            self.telemetries.iter().find(|t| {
                t.meta.namespace == ns && t.spec.selector.as_ref().is_none_or(|s| s.is_empty())
            })
        };
        let root = wide_in(&self.root_namespace);
        let namespace_wide = (namespace != self.root_namespace)
            .then(|| wide_in(namespace))
            .flatten();
        let workload = self.telemetries.iter().find(|t| {
            t.meta.namespace == namespace
                && t.spec
                    .selector
                    .as_ref()
                    .is_some_and(|s| !s.is_empty() && selects(s, labels))
        });
        [root, namespace_wide, workload]
            .into_iter()
            .flatten()
            .map(|t| t.as_ref())
            .collect()
    }

    /// The levels with access logging configured, widest first.
    fn levels<'a>(
        &'a self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> Vec<&'a [AccessLogging]> {
        self.applying(namespace, labels)
            .into_iter()
            .map(|t| t.spec.access_logging.as_slice())
            .filter(|entries| !entries.is_empty())
            .collect()
    }

    /// How a workload traces on `side`, as Istio's `mergeTracing`: the
    /// provider of the narrowest level that names one (its first), else
    /// `defaultProviders.tracing`'s first; `None` without either. Each entry
    /// for the side then sets what it sets, wider first: provider,
    /// sampling, span reporting, and custom tags by name.
    pub fn tracing(
        &self,
        mesh: &MeshConfig,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        side: WorkloadMode,
    ) -> Option<TracingSpec> {
        let entries: Vec<&Tracing> = self
            .applying(namespace, labels)
            .into_iter()
            .flat_map(|t| &t.spec.tracing)
            .collect();
        let mut provider = mesh.default_tracing.first().cloned();
        for e in &entries {
            if let Some(first) = e.providers.first() {
                provider = Some(first.clone());
            }
        }
        let mut spec = TracingSpec {
            provider: provider?,
            random_sampling_percentage: DEFAULT_SAMPLING,
            disable_span_reporting: false,
            custom_tags: BTreeMap::new(),
        };
        for e in entries.iter().filter(|e| e.mode.covers(side)) {
            if let Some(first) = e.providers.first() {
                spec.provider = first.clone();
            }
            if let Some(pct) = e.random_sampling_percentage {
                spec.random_sampling_percentage = pct;
            }
            if let Some(disabled) = e.disable_span_reporting {
                spec.disable_span_reporting = disabled;
            }
            for (k, v) in &e.custom_tags {
                spec.custom_tags.insert(k.clone(), v.clone());
            }
        }
        Some(spec)
    }

    /// The providers a workload logs to on `side` (`Client`: outbound,
    /// `Server`: inbound), with their filters; `None` where neither a
    /// Telemetry nor `defaultProviders` says anything (the mesh config's
    /// `accessLogFile` then applies).
    pub fn access_logs(
        &self,
        mesh: &MeshConfig,
        namespace: &str,
        labels: &BTreeMap<String, String>,
        side: WorkloadMode,
    ) -> Option<AccessLogs> {
        let levels = self.levels(namespace, labels);
        let defaults = &mesh.default_access_logging;
        if levels.is_empty() {
            if defaults.is_empty() {
                return None;
            }
            return Some(defaults.iter().map(|d| (d.clone(), None)).collect());
        }
        let mut in_scope: Vec<String> = defaults.clone();
        let mut filters: BTreeMap<&str, Option<&str>> = BTreeMap::new();
        for level in &levels {
            let mut named = Vec::new();
            for entry in level.iter() {
                for p in &entry.providers {
                    named.push(p.clone());
                    filters.insert(p, entry.filter.as_deref());
                }
            }
            if !named.is_empty() {
                in_scope = named;
            }
        }
        let mut parent: Vec<String> = defaults.clone();
        let mut out = AccessLogs::new();
        for level in &levels {
            for entry in level.iter() {
                let names = if entry.providers.is_empty() {
                    parent.clone()
                } else {
                    entry.providers.clone()
                };
                parent = names.clone();
                for provider in names {
                    if !in_scope.contains(&provider) || !entry.mode.covers(side) {
                        continue;
                    }
                    if entry.disabled == Some(true) {
                        out.remove(&provider);
                        continue;
                    }
                    let filter = filters.get(provider.as_str()).copied().flatten();
                    out.insert(provider, filter.map(str::to_string));
                }
            }
        }
        Some(out)
    }
}

fn t_key(t: &Telemetry) -> policy::ObjectKey {
    policy::ObjectKey {
        kind: policy::Kind::Telemetry,
        namespace: t.meta.namespace.clone(),
        name: t.meta.name.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mesh(defaults: &[&str]) -> MeshConfig {
        let mut text = String::from(
            "extensionProviders:\n- {name: a, envoyFileAccessLog: {}}\n- {name: b, envoyFileAccessLog: {}}\n",
        );
        if !defaults.is_empty() {
            text.push_str(&format!(
                "defaultProviders: {{accessLogging: [{}]}}\n",
                defaults.join(", ")
            ));
        }
        policy::mesh::parse_mesh_config("mesh.yaml", &text).unwrap()
    }

    fn telemetries(yaml: &str, mesh: &MeshConfig) -> (Telemetries, Vec<Diagnostic>) {
        let list: Vec<Arc<Telemetry>> = policy::parse_documents("t.yaml", yaml)
            .into_iter()
            .filter_map(|d| match d {
                policy::ParsedDocument::Object { object, .. } => match object {
                    policy::Object::Telemetry(t) => Some(Arc::new(t)),
                    _ => None,
                },
                other => panic!("{other:?}"),
            })
            .collect();
        let mut diagnostics = Vec::new();
        (
            Telemetries::build(mesh, list, &mut diagnostics),
            diagnostics,
        )
    }

    fn logs(
        t: &Telemetries,
        mesh: &MeshConfig,
        ns: &str,
        app: &str,
        side: WorkloadMode,
    ) -> Option<Vec<String>> {
        let labels = [("app".to_string(), app.to_string())].into_iter().collect();
        t.access_logs(mesh, ns, &labels, side).map(|m| {
            m.into_iter()
                .map(|(p, f)| match f {
                    Some(f) => format!("{p} if {f}"),
                    None => p,
                })
                .collect()
        })
    }

    const LEVELS: &str = r#"apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  accessLogging: [{providers: [{name: a}]}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: shop, namespace: shop}
spec:
  accessLogging:
  - filter: {expression: "response.code >= 400"}
---
apiVersion: telemetry.istio.io/v1alpha1
kind: Telemetry
metadata: {name: quiet-db, namespace: shop}
spec:
  selector: {matchLabels: {app: db}}
  accessLogging:
  - {match: {mode: SERVER}, disabled: true}
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: to-b, namespace: books}
spec:
  accessLogging: [{providers: [{name: b}], match: {mode: CLIENT}}]
"#;

    #[test]
    fn levels_merge_as_istio_merges_them() {
        let mesh = mesh(&[]);
        let (t, diagnostics) = telemetries(LEVELS, &mesh);
        assert_eq!(diagnostics, []);
        use WorkloadMode::{Client, Server};
        // Mesh-wide: provider a everywhere.
        assert_eq!(
            logs(&t, &mesh, "other", "x", Client),
            Some(vec!["a".to_string()])
        );
        // The namespace's entry names no provider: it inherits a; its filter
        // stays its own (Istio keeps a filter with the entry that names the
        // provider).
        assert_eq!(
            logs(&t, &mesh, "shop", "web", Server),
            Some(vec!["a".to_string()])
        );
        // The workload's entry turns the server side off, the client side stays.
        assert_eq!(logs(&t, &mesh, "shop", "db", Server), Some(vec![]));
        assert_eq!(
            logs(&t, &mesh, "shop", "db", Client),
            Some(vec!["a".to_string()])
        );
        // A namespace that names b for its clients: b only, and only there.
        assert_eq!(
            logs(&t, &mesh, "books", "x", Client),
            Some(vec!["b".to_string()])
        );
        assert_eq!(logs(&t, &mesh, "books", "x", Server), Some(vec![]));
    }

    #[test]
    fn defaults_apply_without_a_telemetry_and_unknown_providers_are_warned() {
        let mesh_with = mesh(&["b"]);
        let (none, _) = telemetries("", &mesh_with);
        assert_eq!(
            logs(&none, &mesh_with, "shop", "web", WorkloadMode::Server),
            Some(vec!["b".to_string()])
        );
        let plain = mesh(&[]);
        let (none, _) = telemetries("", &plain);
        assert_eq!(
            logs(&none, &plain, "shop", "web", WorkloadMode::Server),
            None
        );
        let filtered = r#"apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: errors, namespace: shop}
spec:
  accessLogging: [{providers: [{name: b}, {name: nowhere}], filter: {expression: "response.code >= 500"}}]
"#;
        let (t, diagnostics) = telemetries(filtered, &plain);
        assert_eq!(
            logs(&t, &plain, "shop", "web", WorkloadMode::Client),
            Some(vec![
                "b if response.code >= 500".to_string(),
                "nowhere if response.code >= 500".to_string()
            ])
        );
        assert_eq!(diagnostics.len(), 1, "{diagnostics:?}");
        assert_eq!(
            diagnostics[0].path.as_str(),
            "spec.accessLogging[0].providers[1].name"
        );
    }

    #[test]
    fn a_telemetry_change_is_not_a_route_only_change() {
        let mesh = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{name: http, port: 80}]\n";
        let with = format!(
            "{mesh}---\napiVersion: telemetry.istio.io/v1\nkind: Telemetry\nmetadata: {{name: t, namespace: istio-system}}\nspec:\n  accessLogging: [{{providers: [{{name: envoy}}]}}]\n"
        );
        let before = crate::testing::snapshot_of(1, mesh);
        let after = crate::testing::snapshot_of(2, &with);
        assert!(
            !before.same_apart_from_routes(&after),
            "listeners carry the access logs"
        );
        assert!(before.same_apart_from_routes(&crate::testing::snapshot_of(3, mesh)));
    }

    #[test]
    fn tracing_takes_the_narrowest_provider_and_each_sides_settings() {
        let mesh = policy::mesh::parse_mesh_config(
            "mesh.yaml",
            "extensionProviders:\n- {name: zipkin, zipkin: {service: z, port: 9411}}\n- {name: otel, opentelemetry: {service: o, port: 4317}}\ndefaultProviders: {tracing: [zipkin]}\n",
        )
        .unwrap();
        let yaml = r#"apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: mesh-default, namespace: istio-system}
spec:
  tracing: [{randomSamplingPercentage: 5, customTags: {a: {literal: {value: "1"}}}}]
---
apiVersion: telemetry.istio.io/v1
kind: Telemetry
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  tracing:
  - {providers: [{name: otel}], match: {mode: SERVER}, randomSamplingPercentage: 100}
  - {match: {mode: CLIENT}, disableSpanReporting: true, customTags: {b: {header: {name: x-b}}}}
"#;
        let (t, diagnostics) = telemetries(yaml, &mesh);
        assert_eq!(diagnostics, []);
        let labels = |app: &str| [("app".to_string(), app.to_string())].into_iter().collect();
        let other = t
            .tracing(&mesh, "shop", &labels("db"), WorkloadMode::Server)
            .unwrap();
        assert_eq!(
            (other.provider.as_str(), other.random_sampling_percentage),
            ("zipkin", 5.0)
        );
        let server = t
            .tracing(&mesh, "shop", &labels("web"), WorkloadMode::Server)
            .unwrap();
        assert_eq!(
            (
                server.provider.as_str(),
                server.random_sampling_percentage,
                server.disable_span_reporting
            ),
            ("otel", 100.0, false)
        );
        let client = t
            .tracing(&mesh, "shop", &labels("web"), WorkloadMode::Client)
            .unwrap();
        // The provider named at the narrowest level is the tracer on both
        // sides (as Istio's mergeTracing picks it); the client's own entry
        // stops span reporting and adds its tag to the mesh's.
        assert_eq!(client.provider, "otel");
        assert_eq!(client.random_sampling_percentage, 5.0);
        assert!(client.disable_span_reporting);
        assert_eq!(client.custom_tags.keys().collect::<Vec<_>>(), ["a", "b"]);
        let none = policy::mesh::MeshConfig::default();
        let (empty, _) = telemetries("", &none);
        assert_eq!(
            empty.tracing(&none, "shop", &labels("web"), WorkloadMode::Client),
            None
        );
    }
}
