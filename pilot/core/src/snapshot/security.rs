//! The security policies, indexed once per snapshot, and which of them apply
//! to a workload (Istio's `GetPeerAuthenticationsForWorkload`,
//! `ComposePeerAuthentication` and `ListAuthorizationPolicies`).
//!
//! ```text
//! PeerAuthentication:    root namespace (no selector) ─► namespace (no selector) ─► workload (selector)
//!                        each level that sets a mode overrides the wider one; UNSET inherits;
//!                        PERMISSIVE where none sets one; ports of the workload's policy last
//! AuthorizationPolicy:   root namespace (selector matched in every namespace)
//!                        + the workload's namespace (selector matched, or none)
//! RequestAuthentication: the same reach as AuthorizationPolicy
//! ```
//!
//! Of several policies at one level, Istio takes the oldest; files have no
//! age, so here the first by name applies and the others are reported.

use std::collections::BTreeMap;
use std::sync::Arc;

use policy::security::{
    AuthorizationPolicy, MatchLabels, MtlsMode, PeerAuthentication, RequestAuthentication, selects,
};
use policy::{Diagnostic, FieldPath, Kind, ObjectKey};

use policy::networking::WorkloadEntry;

/// Every security policy of a snapshot, each list sorted by namespace and name.
#[derive(Debug, Default, PartialEq)]
pub struct Security {
    root_namespace: String,
    peer_authentications: Vec<Arc<PeerAuthentication>>,
    authorization_policies: Vec<Arc<AuthorizationPolicy>>,
    request_authentications: Vec<Arc<RequestAuthentication>>,
}

/// The mutual TLS a workload's inbound side is configured with, after
/// inheritance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EffectivePeerAuthentication {
    /// Never `Unset`: PERMISSIVE where no level sets a mode.
    pub mode: MtlsMode,
    /// By target port; an UNSET port takes `mode`.
    pub port_level: BTreeMap<u16, MtlsMode>,
    /// The policies it was composed from, widest first.
    pub sources: Vec<ObjectKey>,
}

impl EffectivePeerAuthentication {
    /// The mode at one target port of the workload.
    pub fn mode_at(&self, port: u16) -> MtlsMode {
        self.port_level.get(&port).copied().unwrap_or(self.mode)
    }
}

fn key_of(kind: Kind, meta: &policy::ObjectMeta) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
    }
}

/// The first field of a policy that names the caller's peer identity:
/// principals or namespaces, in a source or a `when` condition.
fn identity_field(ap: &AuthorizationPolicy) -> Option<FieldPath> {
    let rules = FieldPath::new("spec.rules");
    for (i, rule) in ap.spec.rules.iter().enumerate() {
        for (j, from) in rule.from.iter().enumerate() {
            let source = rules.index(i).field("from").index(j).field("source");
            let fields = [
                ("principals", &from.principals),
                ("notPrincipals", &from.not_principals),
                ("namespaces", &from.namespaces),
                ("notNamespaces", &from.not_namespaces),
            ];
            if let Some((name, _)) = fields.iter().find(|(_, v)| !v.is_empty()) {
                return Some(source.field(name));
            }
        }
        for (j, condition) in rule.when.iter().enumerate() {
            if matches!(
                condition.key.as_str(),
                "source.principal" | "source.namespace"
            ) {
                return Some(rules.index(i).field("when").index(j).field("key"));
            }
        }
    }
    None
}

fn wide(selector: Option<&MatchLabels>) -> bool {
    selector.is_none_or(|s| s.is_empty())
}

impl Security {
    /// Indexes the policies (each list sorted by namespace and name) and
    /// reports what Istio would silently ignore: a root-namespace
    /// PeerAuthentication with a selector, and several policies competing
    /// at one level (judged against `workloads`).
    pub(crate) fn build(
        root_namespace: &str,
        peer_authentications: Vec<Arc<PeerAuthentication>>,
        authorization_policies: Vec<Arc<AuthorizationPolicy>>,
        request_authentications: Vec<Arc<RequestAuthentication>>,
        workloads: &[Arc<WorkloadEntry>],
        diagnostics: &mut Vec<Diagnostic>,
    ) -> Security {
        let security = Security {
            root_namespace: root_namespace.to_string(),
            peer_authentications,
            authorization_policies,
            request_authentications,
        };
        security.report(workloads, diagnostics);
        security
    }

    pub fn is_empty(&self) -> bool {
        self.peer_authentications.is_empty()
            && self.authorization_policies.is_empty()
            && self.request_authentications.is_empty()
    }

    fn report(&self, workloads: &[Arc<WorkloadEntry>], out: &mut Vec<Diagnostic>) {
        self.report_levels(workloads, out);
        self.report_identity_on_plaintext(workloads, out);
    }

    /// Istio#34355: a rule on the caller's identity (principals,
    /// namespaces) never matches a plaintext caller, so on a workload that
    /// accepts plaintext a DENY on an identity lets plaintext through, and
    /// an ALLOW on one refuses it. Reported per policy, for the first
    /// workload where it applies and plaintext is accepted.
    fn report_identity_on_plaintext(
        &self,
        workloads: &[Arc<WorkloadEntry>],
        out: &mut Vec<Diagnostic>,
    ) {
        for ap in &self.authorization_policies {
            let Some(path) = identity_field(ap) else {
                continue;
            };
            // A STRICT workload takes no plaintext; any other does.
            let exposed = workloads.iter().find_map(|we| {
                let reached = self.reaches(
                    &ap.meta.namespace,
                    ap.spec.selector.as_ref(),
                    &we.meta.namespace,
                    &we.spec.labels,
                );
                let mode = self
                    .peer_authentication_for(&we.meta.namespace, &we.spec.labels)
                    .mode;
                (reached && mode != MtlsMode::Strict).then_some((we, mode))
            });
            let Some((we, mode)) = exposed else { continue };
            let why = format!("its mTLS mode is {}", mode.as_str());
            out.push(
                Diagnostic::warning(
                    path,
                    format!(
                        "this rule relies on the caller's identity, but workload {}/{} accepts plaintext ({why}): a plaintext caller has no identity, so a DENY on it lets plaintext through and an ALLOW on it refuses plaintext (istio#34355)",
                        we.meta.namespace, we.meta.name
                    ),
                )
                .on(key_of(Kind::AuthorizationPolicy, &ap.meta)),
            );
        }
    }

    fn report_levels(&self, workloads: &[Arc<WorkloadEntry>], out: &mut Vec<Diagnostic>) {
        let root = self.root_namespace.as_str();
        // Namespace- and mesh-level PeerAuthentications: one per namespace.
        let mut first_wide: BTreeMap<&str, &PeerAuthentication> = BTreeMap::new();
        for pa in &self.peer_authentications {
            let key = key_of(Kind::PeerAuthentication, &pa.meta);
            let namespace = pa.meta.namespace.as_str();
            if !wide(pa.spec.selector.as_ref()) {
                if namespace == root {
                    out.push(
                        Diagnostic::error(
                            FieldPath::new("spec.selector"),
                            format!(
                                "a PeerAuthentication with a selector in the root namespace {root} applies to no workload (Istio ignores it); move it to the workloads' namespace"
                            ),
                        )
                        .on(key),
                    );
                }
                continue;
            }
            match first_wide.get(namespace) {
                Some(first) => out.push(
                    Diagnostic::warning(
                        FieldPath::root(),
                        format!(
                            "namespace {namespace} has more than one PeerAuthentication without a selector; {}/{} applies (the first by name: Istio takes the oldest) and this one is ignored",
                            first.meta.namespace, first.meta.name
                        ),
                    )
                    .on(key),
                ),
                None => {
                    first_wide.insert(namespace, pa);
                }
            }
        }
        // Workload-level PeerAuthentications: one per workload.
        let mut reported = std::collections::BTreeSet::new();
        for we in workloads {
            let labels = &we.spec.labels;
            let mut matching = self.peer_authentications.iter().filter(|pa| {
                pa.meta.namespace == we.meta.namespace
                    && pa.meta.namespace != root
                    && pa
                        .spec
                        .selector
                        .as_ref()
                        .is_some_and(|s| !s.is_empty() && selects(s, labels))
            });
            let Some(first) = matching.next() else {
                continue;
            };
            for other in matching {
                let key = key_of(Kind::PeerAuthentication, &other.meta);
                if !reported.insert(key.clone()) {
                    continue;
                }
                out.push(
                    Diagnostic::warning(
                        FieldPath::new("spec.selector"),
                        format!(
                            "workload {}/{} is also selected by PeerAuthentication {}/{}, which applies to it (the first by name: Istio takes the oldest); this one is ignored there",
                            we.meta.namespace, we.meta.name, first.meta.namespace, first.meta.name
                        ),
                    )
                    .on(key),
                );
            }
        }
    }

    /// The PeerAuthentication in force for a workload of `namespace` with `labels`.
    pub fn peer_authentication_for(
        &self,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> EffectivePeerAuthentication {
        let root = self.root_namespace.as_str();
        let first_wide_in = |ns: &str| {
            self.peer_authentications
                .iter()
                .find(|pa| pa.meta.namespace == ns && wide(pa.spec.selector.as_ref()))
        };
        let mesh = first_wide_in(root);
        let namespace_wide = (namespace != root)
            .then(|| first_wide_in(namespace))
            .flatten();
        let workload = (namespace != root)
            .then(|| {
                self.peer_authentications.iter().find(|pa| {
                    pa.meta.namespace == namespace
                        && pa
                            .spec
                            .selector
                            .as_ref()
                            .is_some_and(|s| !s.is_empty() && selects(s, labels))
                })
            })
            .flatten();
        let mut effective = EffectivePeerAuthentication {
            mode: MtlsMode::Permissive,
            port_level: BTreeMap::new(),
            sources: Vec::new(),
        };
        for pa in [mesh, namespace_wide, workload].into_iter().flatten() {
            effective
                .sources
                .push(key_of(Kind::PeerAuthentication, &pa.meta));
            if pa.spec.mtls != MtlsMode::Unset {
                effective.mode = pa.spec.mtls;
            }
        }
        if let Some(pa) = workload {
            for (&port, &mode) in &pa.spec.port_level_mtls {
                let mode = if mode == MtlsMode::Unset {
                    effective.mode
                } else {
                    mode
                };
                effective.port_level.insert(port, mode);
            }
        }
        effective
    }

    /// Whether a policy of `policy_namespace` with `selector` reaches a
    /// workload of `namespace` with `labels`: one in the root namespace
    /// selects in every namespace, any other only in its own.
    fn reaches(
        &self,
        policy_namespace: &str,
        selector: Option<&MatchLabels>,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> bool {
        (policy_namespace == namespace || policy_namespace == self.root_namespace)
            && selector.is_none_or(|s| selects(s, labels))
    }

    /// The AuthorizationPolicies that apply to a workload, in namespace and
    /// name order.
    pub fn authorization_policies_for<'a>(
        &'a self,
        namespace: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a Arc<AuthorizationPolicy>> + 'a {
        self.authorization_policies.iter().filter(move |ap| {
            self.reaches(
                &ap.meta.namespace,
                ap.spec.selector.as_ref(),
                namespace,
                labels,
            )
        })
    }

    /// The RequestAuthentications that apply to a workload, in namespace
    /// and name order.
    pub fn request_authentications_for<'a>(
        &'a self,
        namespace: &'a str,
        labels: &'a BTreeMap<String, String>,
    ) -> impl Iterator<Item = &'a Arc<RequestAuthentication>> + 'a {
        self.request_authentications.iter().filter(move |ra| {
            self.reaches(
                &ra.meta.namespace,
                ra.spec.selector.as_ref(),
                namespace,
                labels,
            )
        })
    }

    pub fn authorization_policies(&self) -> &[Arc<AuthorizationPolicy>] {
        &self.authorization_policies
    }

    pub fn peer_authentications(&self) -> &[Arc<PeerAuthentication>] {
        &self.peer_authentications
    }

    pub fn request_authentications(&self) -> &[Arc<RequestAuthentication>] {
        &self.request_authentications
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use discovery::file::FileStore;

    use super::*;
    use crate::snapshot::Snapshot;

    fn pa(namespace: &str, name: &str, spec: &str) -> String {
        format!(
            "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}---\n"
        )
    }

    fn ap(namespace: &str, name: &str, spec: &str) -> String {
        format!(
            "apiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n{spec}---\n"
        )
    }

    fn workload(namespace: &str, name: &str, labels: &str) -> String {
        format!(
            "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  address: 127.0.3.1\n  labels: {labels}\n---\n"
        )
    }

    fn snapshot(text: &str) -> Snapshot {
        let mut store = FileStore::default();
        store.apply(Path::new("mesh.yaml"), text);
        Snapshot::build(1, &store.config())
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn messages(s: &Snapshot) -> Vec<String> {
        s.diagnostics.iter().map(|d| d.to_string()).collect()
    }

    #[test]
    fn permissive_where_no_policy_applies() {
        let s = snapshot("");
        let effective = s.security.peer_authentication_for("prod", &labels(&[]));
        assert_eq!(effective.mode, MtlsMode::Permissive);
        assert!(effective.sources.is_empty());
    }

    #[test]
    fn the_narrowest_level_wins_and_unset_inherits() {
        let config = pa("istio-system", "mesh", "  mtls: {mode: STRICT}\n")
            + &pa("prod", "default", "  mtls: {mode: DISABLE}\n")
            + &pa(
                "prod",
                "web",
                "  selector: {matchLabels: {app: web}}\n  mtls: {mode: UNSET}\n  portLevelMtls:\n    8080: {mode: STRICT}\n    9090: {mode: UNSET}\n",
            )
            + &pa("dev", "default", "  {}\n");
        let s = snapshot(&config);
        assert_eq!(messages(&s), Vec::<String>::new());
        let web = s
            .security
            .peer_authentication_for("prod", &labels(&[("app", "web")]));
        // The workload's UNSET inherits the namespace's DISABLE.
        assert_eq!(web.mode, MtlsMode::Disable);
        assert_eq!(web.mode_at(8080), MtlsMode::Strict);
        assert_eq!(web.mode_at(9090), MtlsMode::Disable);
        assert_eq!(web.mode_at(80), MtlsMode::Disable);
        assert_eq!(web.sources.len(), 3);
        let other = s
            .security
            .peer_authentication_for("prod", &labels(&[("app", "db")]));
        assert_eq!(other.mode, MtlsMode::Disable);
        assert!(other.port_level.is_empty());
        // dev's default sets no mode: the mesh's STRICT holds.
        let dev = s.security.peer_authentication_for("dev", &labels(&[]));
        assert_eq!(dev.mode, MtlsMode::Strict);
        // The root namespace's own workloads take the mesh-wide policy.
        let root = s
            .security
            .peer_authentication_for("istio-system", &labels(&[("app", "web")]));
        assert_eq!(root.mode, MtlsMode::Strict);
    }

    #[test]
    fn several_at_one_level_the_first_by_name_applies_with_a_warning() {
        let config = pa("prod", "a-default", "  mtls: {mode: STRICT}\n")
            + &pa("prod", "b-default", "  mtls: {mode: DISABLE}\n")
            + &pa(
                "prod",
                "a-web",
                "  selector: {matchLabels: {app: web}}\n  mtls: {mode: PERMISSIVE}\n",
            )
            + &pa(
                "prod",
                "b-web",
                "  selector: {matchLabels: {tier: front}}\n  mtls: {mode: DISABLE}\n",
            )
            + &workload("prod", "web-1", "{app: web, tier: front}");
        let s = snapshot(&config);
        let found = messages(&s);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].contains("PeerAuthentication prod/b-default: namespace prod has more than one PeerAuthentication without a selector; prod/a-default applies"), "{found:#?}");
        assert!(found[1].contains("PeerAuthentication prod/b-web: spec.selector: workload prod/web-1 is also selected by PeerAuthentication prod/a-web, which applies to it"), "{found:#?}");
        let web = s
            .security
            .peer_authentication_for("prod", &labels(&[("app", "web"), ("tier", "front")]));
        assert_eq!(web.mode, MtlsMode::Permissive);
        let db = s.security.peer_authentication_for("prod", &labels(&[]));
        assert_eq!(db.mode, MtlsMode::Strict);
    }

    #[test]
    fn a_selector_in_the_root_namespace_is_an_error_and_ignored() {
        let s = snapshot(&pa(
            "istio-system",
            "web",
            "  selector: {matchLabels: {app: web}}\n  mtls: {mode: STRICT}\n",
        ));
        let found = messages(&s);
        assert_eq!(found.len(), 1, "{found:#?}");
        assert!(found[0].contains("spec.selector: a PeerAuthentication with a selector in the root namespace istio-system applies to no workload"));
        for ns in ["istio-system", "prod"] {
            let web = s
                .security
                .peer_authentication_for(ns, &labels(&[("app", "web")]));
            assert_eq!(web.mode, MtlsMode::Permissive);
        }
    }

    #[test]
    fn authorization_policies_apply_by_selector_namespace_and_root() {
        let config = ap("istio-system", "mesh", "  {}\n")
            + &ap(
                "istio-system",
                "mesh-web",
                "  selector: {matchLabels: {app: web}}\n",
            )
            + &ap("prod", "all", "  action: DENY\n  rules: [{}]\n")
            + &ap("prod", "web", "  selector: {matchLabels: {app: web}}\n")
            + &ap("prod", "db", "  selector: {matchLabels: {app: db}}\n")
            + &ap("dev", "all", "  {}\n");
        let s = snapshot(&config);
        let names = |ns: &str, l: &[(&str, &str)]| -> Vec<String> {
            let l = labels(l);
            s.security
                .authorization_policies_for(ns, &l)
                .map(|p| format!("{}/{}", p.meta.namespace, p.meta.name))
                .collect()
        };
        assert_eq!(
            names("prod", &[("app", "web")]),
            [
                "istio-system/mesh",
                "istio-system/mesh-web",
                "prod/all",
                "prod/web"
            ]
        );
        assert_eq!(names("prod", &[]), ["istio-system/mesh", "prod/all"]);
        assert_eq!(
            names("other", &[("app", "web")]),
            ["istio-system/mesh", "istio-system/mesh-web"]
        );
    }

    #[test]
    fn identity_rules_on_plaintext_workloads_are_warned_about() {
        let config = ap(
            "prod",
            "deny-ns",
            "  action: DENY\n  rules:\n  - from:\n    - source: {notNamespaces: [prod]}\n",
        ) + &ap(
            "prod",
            "by-ip",
            "  rules:\n  - from:\n    - source: {ipBlocks: [10.0.0.0/8]}\n",
        ) + &ap(
            "prod",
            "when-principal",
            "  rules:\n  - when:\n    - {key: source.principal, values: [a]}\n",
        ) + &ap(
            "dev",
            "nobody-here",
            "  rules:\n  - from:\n    - source: {principals: [a]}\n",
        ) + &workload("prod", "web-1", "{app: web}");
        let s = snapshot(&config);
        let found = messages(&s);
        assert_eq!(found.len(), 2, "{found:#?}");
        assert!(found[0].contains("AuthorizationPolicy prod/deny-ns: spec.rules[0].from[0].source.notNamespaces: this rule relies on the caller's identity, but workload prod/web-1 accepts plaintext (its mTLS mode is PERMISSIVE)"), "{found:#?}");
        assert!(found[1].contains("AuthorizationPolicy prod/when-principal: spec.rules[0].when[0].key: this rule relies"), "{found:#?}");
        // A STRICT workload takes no plaintext caller: nothing to warn about.
        let strict = config
            + &pa(
                "prod",
                "default",
                "  mtls: {mode: STRICT}
",
            );
        let found = messages(&snapshot(&strict));
        assert!(found.is_empty(), "{found:#?}");
    }

    #[test]
    fn keys_to_fetch_and_strict_are_quiet() {
        let config = pa("prod", "default", "  mtls: {mode: PERMISSIVE}\n")
            + &pa(
                "prod",
                "web",
                "  selector: {matchLabels: {app: web}}\n  mtls: {mode: STRICT}\n  portLevelMtls: {8080: {mode: STRICT}, 9090: {mode: DISABLE}}\n",
            )
            + "apiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {name: jwt, namespace: prod}\nspec:\n  jwtRules: [{issuer: a}, {issuer: b, jwksUri: 'https://b/k'}, {issuer: c, jwks: '{\"kty\": \"EC\", \"crv\": \"P-256\", \"x\": \"a\", \"y\": \"b\"}'}]\n";
        let s = snapshot(&config);
        let found = messages(&s);
        // STRICT is enforced by the sidecars, and keys from jwksUri or the
        // issuer's discovery document are fetched: nothing to say.
        assert!(found.is_empty(), "{found:#?}");
        assert!(s.diagnostics.iter().all(|d| !d.is_error()));
    }
}
