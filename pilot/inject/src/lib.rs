//! Sidecar injection: Kubernetes' mutating admission of a Pod, answered
//! with the JSON patch that adds Bowline's sidecar, as Istio's injector
//! adds istio-proxy. Pure: the HTTPS endpoint the API server calls
//! (`/inject`, beside `/validate`) is the server's.
//!
//! ```text
//! AdmissionReview{request: {uid, operation, namespace, object: Pod}}
//!   not a Pod CREATE · the control plane's namespace · sidecar.istio.io/inject: "false"
//!   · hostNetwork · already injected                          ──► allowed, no patch
//!   otherwise ──► allowed, JSONPatch:
//!     initContainers += bowline-init (capture; NET_ADMIN, NET_RAW, as root; left
//!                       out with sidecar.istio.io/interceptionMode: NONE)
//!                     + bowline-proxy (native sidecar: restartPolicy Always, so it
//!                       starts before the application and stops after it)
//!     volumes += the projected token (audience istio-ca), the root certificate
//!                ConfigMap (istio-ca-root-cert), the agent's work directory
//!     labels += security.istio.io/tlsMode: istio
//!     annotations += sidecar.istio.io/status, prometheus.io/{scrape,port,path}
//! ```
//!
//! Which namespaces are injected is the webhook configuration's
//! `namespaceSelector` (`istio-injection=enabled` or
//! `bowline-injection=enabled`): the API server sends only their pods. The
//! control plane's own namespace is refused here too, so that a webhook
//! selecting it by mistake cannot deadlock the control plane's restart.
//!
//! **Probes.** Under STRICT mutual TLS the kubelet's plaintext probes
//! would be refused by the sidecar, so, as Istio's injector does, every
//! `httpGet` probe of the application's containers is rewritten to the
//! agent's status port (`15020`, path `/app-health/CONTAINER/readyz`,
//! `livez` or `startupz`), and the original probes go to the agent
//! (`--app-probers`, Istio's `ISTIO_KUBE_APP_PROBERS` JSON), which makes
//! them itself, from inside the pod. The annotation
//! `sidecar.istio.io/rewriteAppHTTPProbers: "false"` keeps them as they are.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// The sidecar container's name.
pub const PROXY_CONTAINER: &str = "bowline-proxy";
/// The capture init container's name.
pub const INIT_CONTAINER: &str = "bowline-init";
/// The annotation and label that opt a pod out (`"false"`), as Istio's.
pub const INJECT: &str = "sidecar.istio.io/inject";
/// The annotation that records what was injected, as Istio's.
pub const STATUS: &str = "sidecar.istio.io/status";
/// The agent's status port, where rewritten probes go (Istio's).
pub const STATUS_PORT: u16 = 15020;
/// The annotation that keeps the probes as written (`"false"`).
pub const REWRITE_PROBES: &str = "sidecar.istio.io/rewriteAppHTTPProbers";
/// The annotation that picks how the pod's traffic reaches the sidecar
/// (Istio's): `REDIRECT` (the default: captured by the init container's
/// iptables rules) or `NONE` (no capture; the application dials the
/// sidecar's explicit listeners, as in the file registry).
pub const INTERCEPTION_MODE: &str = "sidecar.istio.io/interceptionMode";
/// Istio's capture exclusions, passed to `bowline capture` as written.
pub const EXCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeInboundPorts";
pub const EXCLUDE_OUTBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeOutboundPorts";
pub const EXCLUDE_OUTBOUND_IP_RANGES: &str = "traffic.sidecar.istio.io/excludeOutboundIPRanges";
/// Where the agent reads its token and the CA's root.
pub const TOKEN_FILE: &str = "/var/run/secrets/tokens/istio-token";
pub const ROOT_FILE: &str = "/var/run/secrets/istio/root-cert.pem";

/// What the injected sidecar is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Injection {
    /// The image holding `bowline` and Envoy.
    pub image: String,
    /// Where sidecars reach the CA (and xDS over mutual TLS): the control
    /// plane's Service, `HOST:PORT`.
    pub ca_addr: String,
    /// The control plane's namespace: never injected.
    pub control_plane_namespace: String,
    /// The sidecar's user: the capture rules let its traffic out uncaptured.
    pub proxy_uid: i64,
}

impl Injection {
    pub fn new(image: impl Into<String>, control_plane_namespace: impl Into<String>) -> Self {
        let namespace = control_plane_namespace.into();
        Injection {
            image: image.into(),
            ca_addr: format!("istiod.{namespace}.svc:15012"),
            control_plane_namespace: namespace,
            proxy_uid: 1337,
        }
    }
}

/// The answer to one AdmissionReview (its JSON body). A body that is not
/// one is allowed unpatched, saying why in a warning: injection must never
/// keep a pod from being created.
pub fn review(body: &[u8], injection: &Injection) -> Value {
    let review: Value = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(e) => return answer("", None, &[format!("not an AdmissionReview: {e}")]),
    };
    let request = &review["request"];
    let uid = request["uid"].as_str().unwrap_or_default();
    let is_pod_create = request["kind"]["kind"] == "Pod" && request["operation"] == "CREATE";
    if !is_pod_create {
        return answer(uid, None, &[]);
    }
    let namespace = request["namespace"]
        .as_str()
        .or_else(|| request["object"]["metadata"]["namespace"].as_str())
        .unwrap_or("default");
    answer(uid, patch(&request["object"], namespace, injection), &[])
}

fn answer(uid: &str, patch: Option<Vec<Value>>, warnings: &[String]) -> Value {
    let mut response = json!({"uid": uid, "allowed": true});
    if let Some(patch) = patch {
        response["patchType"] = json!("JSONPatch");
        response["patch"] = json!(STANDARD.encode(Value::Array(patch).to_string()));
    }
    if !warnings.is_empty() {
        response["warnings"] = json!(warnings);
    }
    json!({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response})
}

/// Why a pod gets no sidecar, if it gets none.
pub fn skipped(pod: &Value, namespace: &str, injection: &Injection) -> Option<&'static str> {
    let meta = &pod["metadata"];
    let opted_out = [&meta["annotations"][INJECT], &meta["labels"][INJECT]]
        .iter()
        .any(|v| v.as_str().is_some_and(|v| v.eq_ignore_ascii_case("false")));
    let named = |list: &Value, name: &str| {
        list.as_array()
            .is_some_and(|l| l.iter().any(|c| c["name"] == name))
    };
    let spec = &pod["spec"];
    if namespace == injection.control_plane_namespace {
        Some("the control plane's namespace")
    } else if opted_out {
        Some("sidecar.istio.io/inject is false")
    } else if spec["hostNetwork"] == true {
        Some("a host-network pod")
    } else if ["istio-proxy", PROXY_CONTAINER]
        .iter()
        .any(|n| named(&spec["containers"], n) || named(&spec["initContainers"], n))
    {
        Some("already has a sidecar")
    } else {
        None
    }
}

/// The JSON patch that adds the sidecar to `pod` (in `namespace`); `None`
/// when it gets none (see [`skipped`]).
pub fn patch(pod: &Value, namespace: &str, injection: &Injection) -> Option<Vec<Value>> {
    if skipped(pod, namespace, injection).is_some() {
        return None;
    }
    let spec = &pod["spec"];
    let mut ops = Vec::new();
    // Prepended: the capture rules, then the proxy, before any init
    // container of the application's (which may itself need the network).
    let keep_probes = pod["metadata"]["annotations"][REWRITE_PROBES]
        .as_str()
        .is_some_and(|v| v.eq_ignore_ascii_case("false"));
    let probers = if keep_probes {
        serde_json::Map::new()
    } else {
        let (containers, probers) = rewrite_probes(&spec["containers"]);
        if !probers.is_empty() {
            ops.push(json!({"op": "add", "path": "/spec/containers", "value": containers}));
        }
        probers
    };
    let existing_init = spec["initContainers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let annotations = &pod["metadata"]["annotations"];
    let capture = !annotations[INTERCEPTION_MODE]
        .as_str()
        .is_some_and(|v| v.eq_ignore_ascii_case("NONE"));
    let mut init = Vec::new();
    if capture {
        init.push(init_container(annotations, injection));
    }
    init.push(proxy_container(pod, injection, &probers, capture));
    init.extend(existing_init);
    ops.push(json!({"op": "add", "path": "/spec/initContainers", "value": init}));
    let mut volumes = spec["volumes"].as_array().cloned().unwrap_or_default();
    volumes.extend(sidecar_volumes());
    ops.push(json!({"op": "add", "path": "/spec/volumes", "value": volumes}));
    let meta = &pod["metadata"];
    let mut labels = object(&meta["labels"]);
    labels.insert("security.istio.io/tlsMode".into(), json!("istio"));
    ops.push(json!({"op": "add", "path": "/metadata/labels", "value": labels}));
    let mut annotations = object(&meta["annotations"]);
    annotations.insert(
        STATUS.into(),
        json!(
            json!({
                "initContainers": if capture {
                    vec![INIT_CONTAINER, PROXY_CONTAINER]
                } else {
                    vec![PROXY_CONTAINER]
                },
                "containers": [],
                "volumes": ["istio-token", "istiod-ca-cert", "bowline-proxy"],
            })
            .to_string()
        ),
    );
    // Envoy's own statistics, until the agent merges them on 15020.
    for (key, value) in [
        ("prometheus.io/scrape", "true"),
        ("prometheus.io/port", "15090"),
        ("prometheus.io/path", "/stats/prometheus"),
    ] {
        annotations
            .entry(key.to_string())
            .or_insert_with(|| json!(value));
    }
    ops.push(json!({"op": "add", "path": "/metadata/annotations", "value": annotations}));
    Some(ops)
}

/// A JSON object's entries (none for anything else).
fn object(value: &Value) -> BTreeMap<String, Value> {
    value
        .as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default()
}

/// The capture init container: `bowline capture`, with the sidecar's
/// own ports and the pod's exclusion annotations left alone.
fn init_container(annotations: &Value, injection: &Injection) -> Value {
    let uid = injection.proxy_uid.to_string();
    let mut inbound_excluded = "15000,15020,15090".to_string();
    if let Some(ports) = annotations[EXCLUDE_INBOUND_PORTS]
        .as_str()
        .filter(|p| !p.is_empty())
    {
        inbound_excluded = format!("{inbound_excluded},{}", ports.replace(' ', ""));
    }
    let mut args = vec![
        "capture".to_string(),
        "--proxy-uid".into(),
        uid.clone(),
        "--proxy-gid".into(),
        uid,
        "--inbound-ports".into(),
        "*".into(),
        "--exclude-inbound-ports".into(),
        inbound_excluded,
    ];
    for (annotation, flag) in [
        (EXCLUDE_OUTBOUND_PORTS, "--exclude-outbound-ports"),
        (EXCLUDE_OUTBOUND_IP_RANGES, "--exclude-outbound-ranges"),
    ] {
        if let Some(value) = annotations[annotation].as_str().filter(|v| !v.is_empty()) {
            args.push(flag.into());
            args.push(value.replace(' ', ""));
        }
    }
    json!({
        "name": INIT_CONTAINER,
        "image": injection.image,
        "args": args,
        "resources": resources(),
        "securityContext": {
            "runAsUser": 0, "runAsGroup": 0, "runAsNonRoot": false,
            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
            "privileged": false,
            "capabilities": {"add": ["NET_ADMIN", "NET_RAW"], "drop": ["ALL"]},
        },
    })
}

/// The containers with their `httpGet` probes pointed at the agent, and
/// the original probes by their new path (Istio's `ISTIO_KUBE_APP_PROBERS`).
pub fn rewrite_probes(containers: &Value) -> (Value, serde_json::Map<String, Value>) {
    let mut containers = containers.clone();
    let mut probers = serde_json::Map::new();
    for container in containers.as_array_mut().into_iter().flatten() {
        let name = container["name"].as_str().unwrap_or_default().to_string();
        let ports = container["ports"].clone();
        for (field, kind) in [
            ("readinessProbe", "readyz"),
            ("livenessProbe", "livez"),
            ("startupProbe", "startupz"),
        ] {
            let probe = &mut container[field];
            if !probe["httpGet"].is_object() {
                continue;
            }
            let mut original = probe["httpGet"].clone();
            // A named port is the container's port of that name.
            if let Some(port_name) = original["port"].as_str() {
                let number = ports
                    .as_array()
                    .into_iter()
                    .flatten()
                    .find_map(|p| (p["name"] == port_name).then(|| p["containerPort"].clone()));
                if let Some(number) = number {
                    original["port"] = number;
                }
            }
            let path = format!("/app-health/{name}/{kind}");
            let mut prober = json!({"httpGet": original});
            if let Some(timeout) = probe.get("timeoutSeconds") {
                prober["timeoutSeconds"] = timeout.clone();
            }
            probers.insert(path.clone(), prober);
            probe["httpGet"] = json!({"path": path, "port": STATUS_PORT, "scheme": "HTTP"});
        }
    }
    (containers, probers)
}

fn proxy_container(
    pod: &Value,
    injection: &Injection,
    probers: &serde_json::Map<String, Value>,
    capture: bool,
) -> Value {
    let mut args: Vec<String> = [
        "proxy",
        "--workload",
        "$(POD_NAME)",
        "--namespace",
        "$(POD_NAMESPACE)",
        "--address",
        "$(INSTANCE_IP)",
        "--service-account",
        "$(SERVICE_ACCOUNT)",
        "--ca-addr",
        &injection.ca_addr,
        "--ca-root",
        ROOT_FILE,
        "--token-file",
        TOKEN_FILE,
        "--work-dir",
        "/var/lib/bowline-proxy",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    // The pod's labels as the node's; the API server has set them all by
    // the time a pod is created (a Deployment's pod-template-hash included).
    for (key, value) in object(&pod["metadata"]["labels"]) {
        if let Some(value) = value.as_str() {
            args.push("--label".into());
            args.push(format!("{key}={value}"));
        }
    }
    args.push("--interception-mode".into());
    args.push(if capture { "REDIRECT" } else { "NONE" }.into());
    if !probers.is_empty() {
        args.push("--app-probers".into());
        args.push(Value::Object(probers.clone()).to_string());
    }
    let field = |path: &str| json!({"valueFrom": {"fieldRef": {"fieldPath": path}}});
    let env = |name: &str, path: &str| {
        let mut e = field(path);
        e["name"] = json!(name);
        e
    };
    let uid = injection.proxy_uid;
    json!({
        "name": PROXY_CONTAINER,
        "image": injection.image,
        "restartPolicy": "Always",
        "args": args,
        "env": [
            env("POD_NAME", "metadata.name"),
            env("POD_NAMESPACE", "metadata.namespace"),
            env("INSTANCE_IP", "status.podIP"),
            env("SERVICE_ACCOUNT", "spec.serviceAccountName"),
        ],
        "ports": [
            {"name": "http-envoy-prom", "containerPort": 15090, "protocol": "TCP"},
            {"name": "status-port", "containerPort": STATUS_PORT, "protocol": "TCP"},
        ],
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 15000},
                           "periodSeconds": 2, "failureThreshold": 30},
        "resources": resources(),
        "securityContext": {
            "runAsUser": uid, "runAsGroup": uid, "runAsNonRoot": true,
            "allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
            "privileged": false, "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [
            {"name": "istio-token", "mountPath": "/var/run/secrets/tokens", "readOnly": true},
            {"name": "istiod-ca-cert", "mountPath": "/var/run/secrets/istio", "readOnly": true},
            {"name": "bowline-proxy", "mountPath": "/var/lib/bowline-proxy"},
        ],
    })
}

/// Istio's sidecar defaults.
fn resources() -> Value {
    json!({"requests": {"cpu": "100m", "memory": "128Mi"},
           "limits": {"cpu": "2", "memory": "1Gi"}})
}

fn sidecar_volumes() -> [Value; 3] {
    [
        json!({"name": "istio-token", "projected": {"sources": [{"serviceAccountToken": {
            "audience": "istio-ca", "expirationSeconds": 43200, "path": "istio-token"}}]}}),
        json!({"name": "istiod-ca-cert", "configMap": {"name": "istio-ca-root-cert"}}),
        json!({"name": "bowline-proxy", "emptyDir": {}}),
    ]
}

#[cfg(test)]
mod tests;
