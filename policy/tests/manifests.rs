//! `manifests/` installs the control plane as `kubectl apply -k manifests/`
//! would: `kubectl kustomize` renders it, and the rendered objects are
//! checked for what the cluster needs of them. Every CRD of `manifests/crds/`
//! is in; the RBAC grants exactly what the control plane uses, with no
//! wildcard; the Deployment is hardened and runs `serve --registry
//! kubernetes` on the ports the Service and the webhook point at. Without
//! kubectl those checks are skipped, and say so on stderr. The names the
//! control plane uses (the Lease, the Secret, the root-cert ConfigMap) are
//! `discovery_kubernetes`'s; this crate does not depend on it, so they are
//! written out here.
//!
//! The example application of `manifests/examples/kubernetes/` is checked
//! too (without kubectl): its mesh config is what Bowline accepts.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use policy::{Kind, Object, ParsedDocument, parse_documents};
use serde::Deserialize;
use serde_yaml::Value;

/// The control plane's namespace: the mesh's default root namespace.
const NAMESPACE: &str = "istio-system";
const ADMIN_PORT: i64 = 15014;
const CA_PORT: i64 = 15012;
const XDS_PORT: i64 = 15010;

fn manifests() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests")
}

/// The documents `kubectl kustomize manifests/` prints, or `None` when
/// kubectl is not installed.
fn rendered() -> Option<&'static [Value]> {
    static RENDERED: OnceLock<Option<Vec<Value>>> = OnceLock::new();
    RENDERED.get_or_init(render).as_deref()
}

fn render() -> Option<Vec<Value>> {
    let output = match Command::new("kubectl")
        .arg("kustomize")
        .arg(manifests())
        .output()
    {
        Ok(output) => output,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Past the test harness's capture, so that the skip shows.
            let _ = writeln!(
                std::io::stderr(),
                "kubectl not found: the checks of `kubectl kustomize manifests/` are SKIPPED"
            );
            return None;
        }
        Err(e) => panic!("kubectl kustomize manifests/: {e}"),
    };
    assert!(
        output.status.success(),
        "kubectl kustomize manifests/: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Some(documents(&String::from_utf8(output.stdout).unwrap()))
}

fn documents(text: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn kind(doc: &Value) -> &str {
    doc["kind"].as_str().unwrap_or_default()
}

fn name(doc: &Value) -> &str {
    doc["metadata"]["name"].as_str().unwrap_or_default()
}

fn of_kind<'a>(docs: &'a [Value], wanted: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| kind(d) == wanted).collect()
}

/// The one object of `wanted` kind.
fn one<'a>(docs: &'a [Value], wanted: &str) -> &'a Value {
    let found = of_kind(docs, wanted);
    assert_eq!(
        found.len(),
        1,
        "expected one {wanted}, found {}",
        found.len()
    );
    found[0]
}

/// A sequence of strings; absent is empty.
fn strings(value: &Value) -> Vec<&str> {
    match value {
        Value::Null => Vec::new(),
        Value::Sequence(items) => items
            .iter()
            .map(|v| v.as_str().unwrap_or_else(|| panic!("not a string: {v:?}")))
            .collect(),
        other => panic!("not a list of strings: {other:?}"),
    }
}

/// A mapping of strings to strings (labels, selectors); absent is empty.
fn labels(value: &Value) -> BTreeMap<&str, &str> {
    match value {
        Value::Null => BTreeMap::new(),
        Value::Mapping(map) => map
            .iter()
            .map(|(k, v)| (k.as_str().unwrap(), v.as_str().unwrap()))
            .collect(),
        other => panic!("not a map of labels: {other:?}"),
    }
}

fn selects(selector: &BTreeMap<&str, &str>, pod: &BTreeMap<&str, &str>) -> bool {
    !selector.is_empty() && selector.iter().all(|(k, v)| pod.get(k) == Some(v))
}

/// The Deployment's pod template spec.
fn pod_spec(deployment: &Value) -> &Value {
    &deployment["spec"]["template"]["spec"]
}

fn containers(pod: &Value) -> Vec<&Value> {
    let mut all = Vec::new();
    for field in ["initContainers", "containers"] {
        if let Some(list) = pod[field].as_sequence() {
            all.extend(list);
        }
    }
    all
}

/// A port as a probe or a Service names it (a number, or a container
/// port's name), as the number the container listens on.
fn container_port(pod: &Value, port: &Value) -> Option<i64> {
    if let Some(number) = port.as_i64() {
        return Some(number);
    }
    let wanted = port.as_str()?;
    containers(pod)
        .into_iter()
        .filter_map(|c| c["ports"].as_sequence())
        .flatten()
        .find(|p| p["name"].as_str() == Some(wanted))
        .and_then(|p| p["containerPort"].as_i64())
}

/// `--name value` or `--name=value`.
fn flag<'a>(args: &[&'a str], name: &str) -> Option<&'a str> {
    let long = format!("--{name}");
    args.iter().enumerate().find_map(|(i, arg)| {
        if *arg == long {
            args.get(i + 1).copied()
        } else {
            arg.strip_prefix(&format!("{long}="))
        }
    })
}

/// (group, plural, served versions) of every rendered CRD.
fn crd_resources(docs: &[Value]) -> Vec<(String, String, Vec<String>)> {
    of_kind(docs, "CustomResourceDefinition")
        .into_iter()
        .map(|crd| {
            let spec = &crd["spec"];
            let versions = spec["versions"]
                .as_sequence()
                .unwrap()
                .iter()
                .filter(|v| v["served"].as_bool() == Some(true))
                .map(|v| v["name"].as_str().unwrap().to_string())
                .collect();
            (
                spec["group"].as_str().unwrap().to_string(),
                spec["names"]["plural"].as_str().unwrap().to_string(),
                versions,
            )
        })
        .collect()
}

#[test]
fn every_kind_and_every_committed_crd_is_rendered_in_the_namespace() {
    let Some(docs) = rendered() else { return };
    let crd_dir = manifests().join("crds");
    let mut crd_files: Vec<PathBuf> = std::fs::read_dir(&crd_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    crd_files.sort();
    assert!(!crd_files.is_empty(), "no CRDs in {}", crd_dir.display());

    let mut expected: BTreeMap<&str, usize> = [
        "Namespace",
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ]
    .into_iter()
    .map(|k| (k, 1))
    .collect();
    expected.insert("CustomResourceDefinition", crd_files.len());
    let mut found: BTreeMap<&str, usize> = BTreeMap::new();
    for doc in docs {
        *found.entry(kind(doc)).or_default() += 1;
    }
    assert_eq!(
        found, expected,
        "the kinds `kubectl kustomize manifests/` renders (the examples are not part of it)"
    );

    for file in &crd_files {
        let text = std::fs::read_to_string(file).unwrap();
        let committed = &documents(&text)[0];
        let rendered = of_kind(docs, "CustomResourceDefinition")
            .into_iter()
            .find(|d| name(d) == name(committed))
            .unwrap_or_else(|| {
                panic!(
                    "{} is not in manifests/kustomization.yaml's resources",
                    file.display()
                )
            });
        assert_eq!(rendered, committed, "{}: rendered changed", file.display());
    }

    assert_eq!(name(one(docs, "Namespace")), NAMESPACE);
    let cluster_scoped = [
        "Namespace",
        "CustomResourceDefinition",
        "ClusterRole",
        "ClusterRoleBinding",
        "ValidatingWebhookConfiguration",
        "MutatingWebhookConfiguration",
    ];
    for doc in docs.iter().filter(|d| !cluster_scoped.contains(&kind(d))) {
        assert_eq!(
            doc["metadata"]["namespace"].as_str(),
            Some(NAMESPACE),
            "{} {}",
            kind(doc),
            name(doc)
        );
    }
}

/// (apiGroup, resource, verb, resourceName) for every grant of the rules,
/// after checking that none has a wildcard.
fn grants(role: &Value) -> BTreeSet<(String, String, String, Option<String>)> {
    let mut out = BTreeSet::new();
    for rule in role["rules"].as_sequence().expect("rules") {
        assert!(
            rule["nonResourceURLs"].is_null(),
            "{}: nonResourceURLs: {rule:?}",
            name(role)
        );
        let groups = strings(&rule["apiGroups"]);
        let resources = strings(&rule["resources"]);
        let verbs = strings(&rule["verbs"]);
        let names = strings(&rule["resourceNames"]);
        for field in [&groups, &resources, &verbs, &names] {
            assert!(
                field.iter().all(|s| !s.contains('*')),
                "{} {}: a wildcard in {rule:?}",
                kind(role),
                name(role)
            );
        }
        assert!(
            !groups.is_empty() && !resources.is_empty() && !verbs.is_empty(),
            "{}: an empty rule: {rule:?}",
            name(role)
        );
        let names: Vec<Option<String>> = if names.is_empty() {
            vec![None]
        } else {
            names.iter().map(|n| Some(n.to_string())).collect()
        };
        for g in &groups {
            for r in &resources {
                for v in &verbs {
                    for n in &names {
                        out.insert((g.to_string(), r.to_string(), v.to_string(), n.clone()));
                    }
                }
            }
        }
    }
    out
}

type Grants = BTreeSet<(String, String, String, Option<String>)>;

fn grant(out: &mut Grants, group: &str, resources: &[&str], verbs: &[&str], name: Option<&str>) {
    for r in resources {
        for v in verbs {
            out.insert((
                group.to_string(),
                r.to_string(),
                v.to_string(),
                name.map(str::to_string),
            ));
        }
    }
}

fn assert_grants(role: &Value, expected: &Grants) {
    let actual = grants(role);
    let extra: Vec<_> = actual.difference(expected).collect();
    let missing: Vec<_> = expected.difference(&actual).collect();
    assert!(
        extra.is_empty() && missing.is_empty(),
        "{} {}: grants more than the control plane uses: {extra:?}; lacks: {missing:?}",
        kind(role),
        name(role)
    );
}

fn assert_binds(binding: &Value, role: &Value, account: &Value) {
    assert_eq!(
        binding["roleRef"]["kind"].as_str(),
        Some(kind(role)),
        "{}",
        name(binding)
    );
    assert_eq!(binding["roleRef"]["name"].as_str(), Some(name(role)));
    let subjects = binding["subjects"].as_sequence().expect("subjects");
    assert_eq!(
        subjects.len(),
        1,
        "{}: one subject, the service account",
        kind(binding)
    );
    assert_eq!(subjects[0]["kind"].as_str(), Some("ServiceAccount"));
    assert_eq!(subjects[0]["name"].as_str(), Some(name(account)));
    assert_eq!(subjects[0]["namespace"].as_str(), Some(NAMESPACE));
}

#[test]
fn rbac_grants_only_what_the_control_plane_uses_without_wildcards() {
    let Some(docs) = rendered() else { return };
    const READ: &[&str] = &["get", "list", "watch"];
    const STATUS: &[&str] = &["update", "patch"];

    let mut cluster = Grants::new();
    grant(
        &mut cluster,
        "",
        &["services", "pods", "nodes", "namespaces"],
        READ,
        None,
    );
    grant(
        &mut cluster,
        "discovery.k8s.io",
        &["endpointslices"],
        READ,
        None,
    );
    // Every Istio kind Bowline has a CRD for: read, and its status written.
    for (group, plural, _) in crd_resources(docs) {
        grant(&mut cluster, &group, &[&plural], READ, None);
        grant(
            &mut cluster,
            &group,
            &[&format!("{plural}/status")],
            STATUS,
            None,
        );
    }
    grant(
        &mut cluster,
        "authentication.k8s.io",
        &["tokenreviews"],
        &["create"],
        None,
    );
    grant(&mut cluster, "", &["configmaps"], &["create"], None);
    grant(
        &mut cluster,
        "",
        &["configmaps"],
        &["get", "update"],
        Some("istio-ca-root-cert"),
    );
    // The leader lists the webhook configurations by label, then writes
    // their caBundle by name.
    grant(
        &mut cluster,
        "admissionregistration.k8s.io",
        &[
            "validatingwebhookconfigurations",
            "mutatingwebhookconfigurations",
        ],
        &["list"],
        None,
    );
    let validator = name(one(docs, "ValidatingWebhookConfiguration"));
    grant(
        &mut cluster,
        "admissionregistration.k8s.io",
        &["validatingwebhookconfigurations"],
        &["get", "update", "patch"],
        Some(validator),
    );
    grant(
        &mut cluster,
        "admissionregistration.k8s.io",
        &["mutatingwebhookconfigurations"],
        &["get", "update", "patch"],
        Some(name(one(docs, "MutatingWebhookConfiguration"))),
    );
    let cluster_role = one(docs, "ClusterRole");
    assert_grants(cluster_role, &cluster);

    // The leader's Lease and the CA's shared state, in its own namespace.
    let mut own = Grants::new();
    for (group, resource, name) in [
        ("coordination.k8s.io", "leases", "bowline-leader"),
        ("", "secrets", "bowline-ca"),
    ] {
        grant(&mut own, group, &[resource], &["create"], None);
        grant(&mut own, group, &[resource], &["get", "update"], Some(name));
    }
    // The Secret followed by a watch of it by name; the replicas' reports
    // of a rotation's reach.
    grant(
        &mut own,
        "",
        &["secrets"],
        &["list", "watch"],
        Some("bowline-ca"),
    );
    grant(&mut own, "", &["configmaps"], &["create"], None);
    grant(
        &mut own,
        "",
        &["configmaps"],
        &["get", "patch"],
        Some("bowline-ca-distribution"),
    );
    let role = one(docs, "Role");
    assert_eq!(role["metadata"]["namespace"].as_str(), Some(NAMESPACE));
    assert_grants(role, &own);

    let account = one(docs, "ServiceAccount");
    assert_binds(one(docs, "ClusterRoleBinding"), cluster_role, account);
    let binding = one(docs, "RoleBinding");
    assert_eq!(binding["metadata"]["namespace"].as_str(), Some(NAMESPACE));
    assert_binds(binding, role, account);
    assert_eq!(
        pod_spec(one(docs, "Deployment"))["serviceAccountName"].as_str(),
        Some(name(account))
    );
}

/// A container's security setting, else the pod's.
fn security<'a>(pod: &'a Value, container: &'a Value, field: &str) -> &'a Value {
    match &container["securityContext"][field] {
        Value::Null => &pod["securityContext"][field],
        value => value,
    }
}

#[test]
fn the_deployment_is_hardened_and_serves_the_cluster_on_every_port() {
    let Some(docs) = rendered() else { return };
    let deployment = one(docs, "Deployment");
    let spec = &deployment["spec"];
    // Two, sharing the CA's state through a Secret (see deployment.yaml).
    assert_eq!(spec["replicas"].as_i64(), Some(2), "replicas");
    assert!(selects(
        &labels(&spec["selector"]["matchLabels"]),
        &labels(&spec["template"]["metadata"]["labels"])
    ));
    let pod = pod_spec(deployment);
    let all = containers(pod);
    assert!(!all.is_empty());
    for c in &all {
        let cname = c["name"].as_str().unwrap_or_default();
        assert_eq!(
            security(pod, c, "runAsNonRoot").as_bool(),
            Some(true),
            "{cname}: runAsNonRoot"
        );
        let uid = security(pod, c, "runAsUser").as_i64();
        assert!(
            uid.is_some_and(|u| u > 0),
            "{cname}: a fixed non-root runAsUser, got {uid:?}"
        );
        assert_eq!(
            security(pod, c, "seccompProfile")["type"].as_str(),
            Some("RuntimeDefault"),
            "{cname}: seccompProfile"
        );
        let sc = &c["securityContext"];
        assert_eq!(
            sc["readOnlyRootFilesystem"].as_bool(),
            Some(true),
            "{cname}: readOnlyRootFilesystem"
        );
        assert_eq!(
            sc["allowPrivilegeEscalation"].as_bool(),
            Some(false),
            "{cname}: allowPrivilegeEscalation"
        );
        assert_ne!(
            sc["privileged"].as_bool(),
            Some(true),
            "{cname}: privileged"
        );
        assert!(
            strings(&sc["capabilities"]["drop"]).contains(&"ALL"),
            "{cname}: capabilities.drop ALL"
        );
        assert!(
            strings(&sc["capabilities"]["add"]).is_empty(),
            "{cname}: capabilities.add"
        );
        for bound in ["requests", "limits"] {
            for resource in ["cpu", "memory"] {
                assert!(
                    !c["resources"][bound][resource].is_null(),
                    "{cname}: resources.{bound}.{resource}"
                );
            }
        }
        for probe in ["readinessProbe", "livenessProbe"] {
            let get = &c[probe]["httpGet"];
            assert_eq!(get["path"].as_str(), Some("/healthz"), "{cname}: {probe}");
            assert_eq!(
                container_port(pod, &get["port"]),
                Some(ADMIN_PORT),
                "{cname}: {probe} on the admin port"
            );
        }
    }

    let bowline = all
        .iter()
        .find(|c| c["image"].as_str().is_some_and(|i| i.contains("bowline")))
        .expect("a bowline container");
    let args = strings(&bowline["args"]);
    assert_eq!(args.first(), Some(&"serve"), "args: {args:?}");
    assert_eq!(
        flag(&args, "registry"),
        Some("kubernetes"),
        "args: {args:?}"
    );
    for (name, port) in [
        ("admin-addr", ADMIN_PORT),
        ("ca-addr", CA_PORT),
        ("xds-addr", XDS_PORT),
    ] {
        assert_eq!(
            flag(&args, name),
            Some(format!("0.0.0.0:{port}").as_str()),
            "--{name}: {args:?}"
        );
    }
    // The Lease's holder and the namespace of the Lease and the Secret.
    for (variable, field) in [
        ("POD_NAME", "metadata.name"),
        ("POD_NAMESPACE", "metadata.namespace"),
    ] {
        let from = bowline["env"]
            .as_sequence()
            .into_iter()
            .flatten()
            .find(|e| e["name"].as_str() == Some(variable))
            .unwrap_or_else(|| panic!("no {variable} in the environment"));
        assert_eq!(
            from["valueFrom"]["fieldRef"]["fieldPath"].as_str(),
            Some(field),
            "{variable}"
        );
    }
    // The only writable place beside the read-only root: an emptyDir.
    let state_dir = flag(&args, "state-dir").expect("--state-dir");
    let mount = bowline["volumeMounts"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|m| m["mountPath"].as_str() == Some(state_dir))
        .unwrap_or_else(|| panic!("no volume mounted at --state-dir {state_dir}"));
    let volume = pod["volumes"]
        .as_sequence()
        .into_iter()
        .flatten()
        .find(|v| v["name"] == mount["name"])
        .expect("the state dir's volume");
    assert!(
        volume["emptyDir"].is_mapping(),
        "the state dir is an emptyDir: {volume:?}"
    );

    let budget = one(docs, "PodDisruptionBudget");
    assert!(selects(
        &labels(&budget["spec"]["selector"]["matchLabels"]),
        &labels(&spec["template"]["metadata"]["labels"])
    ));
    // A drain must still go through with one replica.
    let budget_spec = &budget["spec"];
    match (
        budget_spec["minAvailable"].as_i64(),
        budget_spec["maxUnavailable"].as_i64(),
    ) {
        (None, Some(max)) => assert!(max >= 1, "maxUnavailable {max}"),
        (Some(min), None) => assert!(min < spec["replicas"].as_i64().unwrap()),
        other => panic!("PodDisruptionBudget: minAvailable or maxUnavailable, got {other:?}"),
    }
}

/// The Service's ports, each as the container port it reaches.
fn service_ports(service: &Value, pod: &Value) -> BTreeMap<i64, i64> {
    service["spec"]["ports"]
        .as_sequence()
        .expect("ports")
        .iter()
        .map(|p| {
            let port = p["port"].as_i64().unwrap();
            let target = match &p["targetPort"] {
                Value::Null => Some(port),
                target => container_port(pod, target),
            };
            (
                port,
                target.unwrap_or_else(|| panic!("port {port}: no such container port")),
            )
        })
        .collect()
}

#[test]
fn the_service_and_the_webhook_reach_the_control_plane() {
    let Some(docs) = rendered() else { return };
    let deployment = one(docs, "Deployment");
    let pod = pod_spec(deployment);
    let service = one(docs, "Service");
    // The names the serving certificate holds: istiod.istio-system.svc and
    // bowline.NAMESPACE.svc.
    assert!(
        ["istiod", "bowline"].contains(&name(service)),
        "Service {}",
        name(service)
    );
    assert!(selects(
        &labels(&service["spec"]["selector"]),
        &labels(&deployment["spec"]["template"]["metadata"]["labels"])
    ));
    let ports = service_ports(service, pod);
    let expected: BTreeMap<i64, i64> = [
        (XDS_PORT, XDS_PORT),
        (CA_PORT, CA_PORT),
        (ADMIN_PORT, ADMIN_PORT),
        (443, CA_PORT),
    ]
    .into_iter()
    .collect();
    assert_eq!(ports, expected, "Service ports (port → container port)");

    let configuration = one(docs, "ValidatingWebhookConfiguration");
    // How the leader finds the configurations whose caBundle it keeps.
    assert_eq!(
        labels(&configuration["metadata"]["labels"]).get("app.kubernetes.io/part-of"),
        Some(&"bowline"),
        "the webhook configuration's labels"
    );
    let webhooks = configuration["webhooks"].as_sequence().expect("webhooks");
    assert!(!webhooks.is_empty());
    let mut wanted = BTreeSet::new();
    for (group, plural, versions) in crd_resources(docs) {
        for version in versions {
            for operation in ["CREATE", "UPDATE"] {
                wanted.insert((
                    group.clone(),
                    version.clone(),
                    plural.clone(),
                    operation.to_string(),
                ));
            }
        }
    }
    for webhook in webhooks {
        let hook = webhook["name"].as_str().unwrap_or_default();
        let client = &webhook["clientConfig"];
        assert!(client["url"].is_null(), "{hook}: a url, not the Service");
        let target = &client["service"];
        assert_eq!(target["name"].as_str(), Some(name(service)), "{hook}");
        assert_eq!(target["namespace"].as_str(), Some(NAMESPACE), "{hook}");
        assert_eq!(target["path"].as_str(), Some("/validate"), "{hook}");
        let port = target["port"].as_i64().unwrap_or(443);
        assert_eq!(
            ports.get(&port),
            Some(&CA_PORT),
            "{hook}: port {port} reaches the CA's TLS port"
        );
        // Filled in by the leader, not committed.
        assert!(
            client["caBundle"].as_str().unwrap_or_default().is_empty(),
            "{hook}: caBundle"
        );
        assert_eq!(
            webhook["failurePolicy"].as_str(),
            Some("Ignore"),
            "{hook}: as Istio's validator starts"
        );
        assert_eq!(webhook["sideEffects"].as_str(), Some("None"), "{hook}");
        assert!(strings(&webhook["admissionReviewVersions"]).contains(&"v1"));

        let mut covered = BTreeSet::new();
        for rule in webhook["rules"].as_sequence().expect("rules") {
            let fields = ["apiGroups", "apiVersions", "resources", "operations"];
            for field in fields {
                assert!(
                    !strings(&rule[field]).iter().any(|s| s.contains('*')),
                    "{hook}: only the kinds Bowline decodes, no wildcard: {rule:?}"
                );
            }
            for g in strings(&rule["apiGroups"]) {
                for v in strings(&rule["apiVersions"]) {
                    for r in strings(&rule["resources"]) {
                        for o in strings(&rule["operations"]) {
                            covered.insert((
                                g.to_string(),
                                v.to_string(),
                                r.to_string(),
                                o.to_string(),
                            ));
                        }
                    }
                }
            }
        }
        assert_eq!(
            covered, wanted,
            "{hook}: every served version of every CRD, created or updated"
        );
    }
}

/// The injection webhook: pods created in either injection label's
/// namespaces, never the control plane's, through the Service to `/inject`
/// on the CA's TLS port; opted-out pods are not sent at all.
#[test]
fn the_injection_webhook_selects_labelled_namespaces_but_the_control_planes() {
    let Some(docs) = rendered() else { return };
    let pod = pod_spec(one(docs, "Deployment"));
    let service = one(docs, "Service");
    let ports = service_ports(service, pod);
    let configuration = one(docs, "MutatingWebhookConfiguration");
    assert_eq!(
        labels(&configuration["metadata"]["labels"]).get("app.kubernetes.io/part-of"),
        Some(&"bowline"),
        "how the leader finds it to write its caBundle"
    );
    let webhooks = configuration["webhooks"].as_sequence().expect("webhooks");
    let mut labels_selected = BTreeSet::new();
    for webhook in webhooks {
        let hook = webhook["name"].as_str().unwrap_or_default();
        let client = &webhook["clientConfig"];
        let target = &client["service"];
        assert_eq!(target["name"].as_str(), Some(name(service)), "{hook}");
        assert_eq!(target["namespace"].as_str(), Some(NAMESPACE), "{hook}");
        assert_eq!(target["path"].as_str(), Some("/inject"), "{hook}");
        let port = target["port"].as_i64().unwrap_or(443);
        assert_eq!(ports.get(&port), Some(&CA_PORT), "{hook}: port {port}");
        assert!(
            client["caBundle"].as_str().unwrap_or_default().is_empty(),
            "{hook}: caBundle is the leader's to write"
        );
        assert_eq!(webhook["failurePolicy"].as_str(), Some("Fail"), "{hook}");
        assert_eq!(webhook["sideEffects"].as_str(), Some("None"), "{hook}");
        let rules = webhook["rules"].as_sequence().expect("rules");
        assert_eq!(rules.len(), 1, "{hook}");
        assert_eq!(strings(&rules[0]["operations"]), ["CREATE"], "{hook}");
        assert_eq!(strings(&rules[0]["apiGroups"]), [""], "{hook}");
        assert_eq!(strings(&rules[0]["resources"]), ["pods"], "{hook}");

        let expressions = webhook["namespaceSelector"]["matchExpressions"]
            .as_sequence()
            .expect("namespaceSelector.matchExpressions");
        let expression = |key: &str| {
            expressions
                .iter()
                .find(|e| e["key"].as_str() == Some(key))
                .map(|e| {
                    (
                        e["operator"].as_str().unwrap_or_default(),
                        strings(&e["values"]),
                    )
                })
        };
        assert_eq!(
            expression("kubernetes.io/metadata.name"),
            Some(("NotIn", vec![NAMESPACE])),
            "{hook}: never the control plane's own namespace"
        );
        for label in ["istio-injection", "bowline-injection"] {
            if expression(label) == Some(("In", vec!["enabled"])) {
                labels_selected.insert(label);
            }
        }
        let opt_out = &webhook["objectSelector"]["matchExpressions"][0];
        assert_eq!(opt_out["key"].as_str(), Some("sidecar.istio.io/inject"));
        assert_eq!(opt_out["operator"].as_str(), Some("NotIn"));
        assert_eq!(strings(&opt_out["values"]), ["false"]);
    }
    assert_eq!(
        labels_selected,
        BTreeSet::from(["istio-injection", "bowline-injection"]),
        "both injection labels"
    );
}

/// The example of `manifests/examples/kubernetes/`: what is mesh config is
/// accepted by Bowline without a warning, the rest is what an application
/// needs (Deployments, ServiceAccounts, its Namespace), and the Services and
/// subsets select its pods by `app` and `version`.
#[test]
fn the_kubernetes_example_is_mesh_config_bowline_accepts() {
    let dir = manifests().join("examples/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no YAML in {}", dir.display());

    let mut objects = Vec::new();
    let mut raw = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let shown = file
            .strip_prefix(manifests())
            .unwrap()
            .display()
            .to_string();
        let docs = documents(&text);
        for parsed in parse_documents(&shown, &text) {
            let doc = &docs[parsed.document()];
            match parsed {
                ParsedDocument::Object {
                    object, warnings, ..
                } => {
                    let shown: Vec<String> = warnings.iter().map(|d| d.to_string()).collect();
                    assert!(shown.is_empty(), "{}", shown.join("\n"));
                    objects.push(object);
                }
                ParsedDocument::Skipped { .. } => assert!(
                    ["Deployment", "ServiceAccount", "Namespace"].contains(&kind(doc)),
                    "{shown}: {} is neither mesh config nor part of the application",
                    kind(doc)
                ),
                ParsedDocument::Rejected { diagnostics, .. } => panic!(
                    "{}",
                    diagnostics
                        .iter()
                        .map(|d| d.to_string())
                        .collect::<Vec<_>>()
                        .join("\n")
                ),
            }
        }
        raw.extend(docs);
    }
    for wanted in [Kind::Service, Kind::VirtualService, Kind::DestinationRule] {
        assert!(
            objects.iter().any(|o| o.key().kind == wanted),
            "no {}",
            wanted.as_str()
        );
    }

    let pods: Vec<BTreeMap<&str, &str>> = of_kind(&raw, "Deployment")
        .into_iter()
        .map(|d| labels(&d["spec"]["template"]["metadata"]["labels"]))
        .collect();
    for pod in &pods {
        assert!(
            pod.contains_key("app") && pod.contains_key("version"),
            "app and version labels: {pod:?}"
        );
    }
    for service in of_kind(&raw, "Service") {
        let selector = labels(&service["spec"]["selector"]);
        assert!(
            pods.iter().any(|p| selects(&selector, p)),
            "Service {} selects no pod",
            name(service)
        );
    }
    for object in &objects {
        if let Object::DestinationRule(rule) = object {
            for subset in &rule.spec.subsets {
                let mut selector: BTreeMap<&str, &str> = subset
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                selector.insert("app", rule.spec.host.as_str());
                assert!(
                    pods.iter().any(|p| selects(&selector, p)),
                    "subset {} of {} selects no pod",
                    subset.name,
                    rule.spec.host
                );
            }
        }
    }
}
