//! The mutation against Pods as the API server sends them to a webhook,
//! the patch applied and read back as a Kubernetes Pod.

use k8s_openapi::api::core::v1::Pod;

use super::*;

fn injection() -> Injection {
    Injection::new("bowline:dev", "istio-system")
}

/// A Deployment's pod as admission sees it: no name yet, the template's
/// labels and the pod-template-hash, one container with a probe.
fn pod() -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {
            "generateName": "reviews-v1-5d9c6b7f4-",
            "namespace": "shop",
            "labels": {"app": "reviews", "version": "v1", "pod-template-hash": "5d9c6b7f4"},
            "annotations": {"kubectl.kubernetes.io/restartedAt": "2026-12-01T00:00:00Z"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet",
                                 "name": "reviews-v1-5d9c6b7f4", "uid": "1", "controller": true}],
        },
        "spec": {
            "serviceAccountName": "reviews",
            "initContainers": [{"name": "migrate", "image": "reviews:1", "args": ["migrate"]}],
            "containers": [{
                "name": "reviews", "image": "reviews:1",
                "ports": [{"containerPort": 9080}],
                "readinessProbe": {"httpGet": {"path": "/health", "port": 9080}},
            }],
            "volumes": [{"name": "data", "emptyDir": {}}],
        },
    })
}

fn review_of(pod: Value, operation: &str, namespace: &str) -> Vec<u8> {
    json!({
        "apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
        "request": {
            "uid": "b2b1c3c4", "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "operation": operation, "namespace": namespace, "object": pod,
        },
    })
    .to_string()
    .into_bytes()
}

/// Applies the `add` operations of a JSON patch (all the injector writes).
fn apply(mut doc: Value, patch: &[Value]) -> Value {
    for op in patch {
        assert_eq!(op["op"], "add", "{op}");
        let path = op["path"].as_str().unwrap();
        let (parent, key) = path.rsplit_once('/').unwrap();
        let key = key.replace("~1", "/").replace("~0", "~");
        let target = doc
            .pointer_mut(parent)
            .unwrap_or_else(|| panic!("{parent}"));
        target[key] = op["value"].clone();
    }
    doc
}

fn patch_of(answer: &Value) -> Option<Vec<Value>> {
    let response = &answer["response"];
    assert_eq!(response["allowed"], true, "{answer}");
    let patch = response["patch"].as_str()?;
    assert_eq!(response["patchType"], "JSONPatch");
    let bytes = STANDARD.decode(patch).unwrap();
    Some(serde_json::from_slice(&bytes).unwrap())
}

#[test]
fn a_pod_gets_the_capture_init_container_and_the_proxy_as_a_native_sidecar() {
    let answer = review(&review_of(pod(), "CREATE", "shop"), &injection());
    assert_eq!(answer["response"]["uid"], "b2b1c3c4");
    let patched = apply(pod(), &patch_of(&answer).expect("a patch"));
    // Still a Pod the API server accepts, with everything the injector adds.
    let typed: Pod = serde_json::from_value(patched.clone()).unwrap();
    let spec = typed.spec.unwrap();
    let init: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(init, [INIT_CONTAINER, PROXY_CONTAINER, "migrate"]);
    let proxy = &spec.init_containers.as_ref().unwrap()[1];
    assert_eq!(proxy.restart_policy.as_deref(), Some("Always"));
    let args = proxy.args.clone().unwrap();
    let after = |flag: &str| {
        let at = args.iter().position(|a| a == flag).unwrap();
        args[at + 1].as_str()
    };
    assert_eq!(after("--ca-addr"), "istiod.istio-system.svc:15012");
    assert_eq!(after("--token-file"), TOKEN_FILE);
    assert_eq!(after("--address"), "$(INSTANCE_IP)");
    assert!(args.contains(&"version=v1".to_string()), "{args:?}");
    let security = proxy.security_context.clone().unwrap();
    assert_eq!(security.run_as_user, Some(1337));
    assert_eq!(security.read_only_root_filesystem, Some(true));
    assert!(proxy.resources.as_ref().unwrap().limits.is_some());
    let capture = &spec.init_containers.as_ref().unwrap()[0];
    let caps = capture
        .security_context
        .clone()
        .unwrap()
        .capabilities
        .unwrap();
    assert_eq!(caps.add.unwrap(), ["NET_ADMIN", "NET_RAW"]);
    // The application's probe goes to the agent, which makes the original.
    assert_eq!(spec.containers.len(), 1);
    let probe = serde_json::to_value(&spec.containers[0]).unwrap()["readinessProbe"].clone();
    assert_eq!(
        probe["httpGet"],
        json!({"path": "/app-health/reviews/readyz", "port": 15020, "scheme": "HTTP"})
    );
    let probers: Value = serde_json::from_str(after("--app-probers")).unwrap();
    assert_eq!(
        probers["/app-health/reviews/readyz"]["httpGet"],
        json!({"path": "/health", "port": 9080})
    );

    let volumes = spec.volumes.unwrap();
    let names: Vec<&str> = volumes.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        ["data", "istio-token", "istiod-ca-cert", "bowline-proxy"]
    );
    let token = volumes[1]
        .projected
        .as_ref()
        .unwrap()
        .sources
        .as_ref()
        .unwrap()[0]
        .service_account_token
        .clone()
        .unwrap();
    assert_eq!(token.audience.as_deref(), Some("istio-ca"));
    assert_eq!(
        volumes[2].config_map.as_ref().unwrap().name,
        "istio-ca-root-cert"
    );

    let meta = &patched["metadata"];
    assert_eq!(meta["labels"]["security.istio.io/tlsMode"], "istio");
    assert_eq!(meta["labels"]["app"], "reviews");
    assert_eq!(
        meta["annotations"]["kubectl.kubernetes.io/restartedAt"],
        "2026-12-01T00:00:00Z"
    );
    assert_eq!(meta["annotations"]["prometheus.io/scrape"], "true");
    let status: Value =
        serde_json::from_str(meta["annotations"][STATUS].as_str().unwrap()).unwrap();
    assert_eq!(
        status["initContainers"],
        json!([INIT_CONTAINER, PROXY_CONTAINER])
    );
}

#[test]
fn a_pod_without_init_containers_volumes_or_annotations_is_patched_too() {
    let mut bare = pod();
    for field in ["initContainers", "volumes"] {
        bare["spec"].as_object_mut().unwrap().remove(field);
    }
    bare["metadata"]
        .as_object_mut()
        .unwrap()
        .remove("annotations");
    let patch = patch(&bare, "shop", &injection()).unwrap();
    let typed: Pod = serde_json::from_value(apply(bare, &patch)).unwrap();
    assert_eq!(typed.spec.unwrap().init_containers.unwrap().len(), 2);
}

#[test]
fn opted_out_host_network_injected_and_control_plane_pods_get_nothing() {
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut p = pod();
        edit(&mut p);
        p
    };
    let cases = [
        (
            with(&|p| p["metadata"]["annotations"][INJECT] = json!("false")),
            "shop",
            "sidecar.istio.io/inject is false",
        ),
        (
            with(&|p| p["metadata"]["labels"][INJECT] = json!("false")),
            "shop",
            "sidecar.istio.io/inject is false",
        ),
        (
            with(&|p| p["spec"]["hostNetwork"] = json!(true)),
            "shop",
            "a host-network pod",
        ),
        (
            with(&|p| p["spec"]["containers"][0]["name"] = json!("istio-proxy")),
            "shop",
            "already has a sidecar",
        ),
        (pod(), "istio-system", "the control plane's namespace"),
    ];
    for (pod, namespace, why) in cases {
        assert_eq!(skipped(&pod, namespace, &injection()), Some(why));
        let answer = review(&review_of(pod, "CREATE", namespace), &injection());
        assert_eq!(patch_of(&answer), None, "{why}");
    }
}

#[test]
fn updates_other_kinds_and_garbage_are_allowed_unpatched() {
    let update = review(&review_of(pod(), "UPDATE", "shop"), &injection());
    assert_eq!(patch_of(&update), None);
    let garbage = review(b"{not json", &injection());
    assert_eq!(patch_of(&garbage), None);
    assert!(
        garbage["response"]["warnings"][0]
            .as_str()
            .unwrap()
            .starts_with("not an AdmissionReview")
    );
}

#[test]
fn named_ports_resolve_and_the_annotation_keeps_probes_as_written() {
    let mut p = pod();
    p["spec"]["containers"][0]["ports"] = json!([{"name": "http", "containerPort": 9080}]);
    p["spec"]["containers"][0]["livenessProbe"] =
        json!({"httpGet": {"path": "/live", "port": "http"}, "timeoutSeconds": 3});
    p["spec"]["containers"][0]["startupProbe"] = json!({"tcpSocket": {"port": 9080}});
    let (containers, probers) = rewrite_probes(&p["spec"]["containers"]);
    assert_eq!(
        probers["/app-health/reviews/livez"],
        json!({"httpGet": {"path": "/live", "port": 9080}, "timeoutSeconds": 3})
    );
    assert_eq!(probers.len(), 2, "{probers:?}");
    // Only HTTP probes are rewritten.
    assert_eq!(
        containers[0]["startupProbe"],
        p["spec"]["containers"][0]["startupProbe"]
    );

    p["metadata"]["annotations"][REWRITE_PROBES] = json!("false");
    let ops = patch(&p, "shop", &injection()).unwrap();
    assert!(
        !ops.iter().any(|op| op["path"] == "/spec/containers"),
        "{ops:?}"
    );
}

/// The args of the patched pod's init container `name`.
fn init_args(patched: &Value, name: &str) -> Vec<String> {
    patched["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .map(|c| serde_json::from_value(c["args"].clone()).unwrap())
        .unwrap_or_default()
}

#[test]
fn capture_follows_istios_interception_annotations() {
    // By default the pod is captured, and the sidecar told so.
    let mut annotated = pod();
    annotated["metadata"]["annotations"] = json!({
        EXCLUDE_INBOUND_PORTS: "8080, 8081",
        EXCLUDE_OUTBOUND_PORTS: "5432",
        EXCLUDE_OUTBOUND_IP_RANGES: "10.0.0.0/8,192.168.0.0/16",
    });
    let patched = apply(
        annotated.clone(),
        &patch(&annotated, "shop", &injection()).unwrap(),
    );
    let capture = init_args(&patched, INIT_CONTAINER);
    let after = |args: &[String], flag: &str| {
        let at = args.iter().position(|a| a == flag).unwrap();
        args[at + 1].clone()
    };
    assert_eq!(after(&capture, "--proxy-uid"), "1337");
    assert_eq!(after(&capture, "--proxy-gid"), "1337");
    assert_eq!(
        after(&capture, "--exclude-inbound-ports"),
        "15000,15020,15090,8080,8081"
    );
    assert_eq!(after(&capture, "--exclude-outbound-ports"), "5432");
    assert_eq!(
        after(&capture, "--exclude-outbound-ranges"),
        "10.0.0.0/8,192.168.0.0/16"
    );
    let proxy = init_args(&patched, PROXY_CONTAINER);
    assert_eq!(after(&proxy, "--interception-mode"), "REDIRECT");

    // NONE: no capture, and a sidecar with explicit listeners only.
    let mut explicit = pod();
    explicit["metadata"]["annotations"] = json!({INTERCEPTION_MODE: "NONE"});
    let patched = apply(
        explicit.clone(),
        &patch(&explicit, "shop", &injection()).unwrap(),
    );
    let names: Vec<&str> = patched["spec"]["initContainers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, [PROXY_CONTAINER, "migrate"]);
    let proxy = init_args(&patched, PROXY_CONTAINER);
    assert_eq!(after(&proxy, "--interception-mode"), "NONE");
    let status: Value =
        serde_json::from_str(patched["metadata"]["annotations"][STATUS].as_str().unwrap()).unwrap();
    assert_eq!(status["initContainers"], json!([PROXY_CONTAINER]));
}
