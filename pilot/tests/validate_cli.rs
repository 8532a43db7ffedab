//! `bowline validate` as a user runs it: the real binary on temporary files.

use std::path::Path;
use std::process::{Command, Output};

const SERVICE: &str = "apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
";

const GOOD_RULES: &str = "apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: reviews, namespace: shop}
spec:
  host: reviews
  trafficPolicy:
    outlierDetection: {consecutive5xxErrors: 3, interval: 10s, baseEjectionTime: 30s}
  subsets:
  - {name: v1, labels: {version: v1}}
  - {name: v2, labels: {version: v2}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{headers: {end-user: {exact: jason}}}]
    fault: {abort: {httpStatus: 503, percentage: {value: 10}}}
    route: [{destination: {host: reviews, subset: v2}}]
  - timeout: 2s
    retries: {attempts: 3, perTryTimeout: 500ms, retryOn: 5xx}
    route:
    - {destination: {host: reviews, subset: v1}, weight: 80}
    - {destination: {host: reviews, subset: v2}, weight: 20}
";

const BAD_RULES: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: bad, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - match: [{uri: {regex: '/a(?=b)'}}]
    fault: {abort: {httpStatus: 700}}
    route:
    - {destination: {host: reviews}, weight: 60}
    - {destination: {host: reviews}, weight: 30}
";

fn validate(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bowline"))
        .arg("validate")
        .arg("-f")
        .args(args)
        .env("BOWLINE_LOG", "warn")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn a_valid_directory_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("rules")).unwrap();
    std::fs::write(dir.path().join("service.yaml"), SERVICE).unwrap();
    std::fs::write(dir.path().join("rules/reviews.yml"), GOOD_RULES).unwrap();
    let output = validate(&[dir.path()]);
    let out = stdout(&output);
    assert!(
        output.status.success(),
        "{out}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with("3 objects valid, 0 errors, "),
        "{out}"
    );
}

#[test]
fn errors_exit_non_zero_naming_file_document_and_path() {
    let dir = tempfile::tempdir().unwrap();
    let service = dir.path().join("service.yaml");
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&service, SERVICE).unwrap();
    std::fs::write(&bad, format!("{GOOD_RULES}---\n{BAD_RULES}")).unwrap();
    let output = validate(&[&service, &bad]);
    let out = stdout(&output);
    assert!(!output.status.success(), "{out}");
    let prefix = format!("{}: document 2: VirtualService shop/bad: ", bad.display());
    for expected in [
        "spec.http[0].match[0].uri.regex: RE2 (Envoy) does not support look-around/backreferences: found \"(?=\" at byte 2",
        "spec.http[0].fault.abort.httpStatus: httpStatus must be 200-599, got 700",
        "spec.http[0].route: weights must sum to 100, got 90",
    ] {
        assert!(
            out.lines().any(|l| l == format!("{prefix}{expected}")),
            "missing {expected:?} in:\n{out}"
        );
    }
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with("3 objects valid, 3 errors, "),
        "{out}"
    );
}

#[test]
fn a_missing_file_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let output = validate(&[&missing]);
    assert!(!output.status.success());
    let out = stdout(&output);
    assert!(
        out.lines()
            .next()
            .unwrap()
            .starts_with(&format!("{}: cannot read: ", missing.display())),
        "{out}"
    );
}

/// A Sidecar with a selector in `mesh-root`: fine in an ordinary namespace,
/// an error in the root namespace.
const SELECTOR_SIDECAR: &str = "apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: scoped, namespace: mesh-root}
spec:
  workloadSelector: {labels: {app: reviews}}
  egress:
  - hosts: [./*]
";

fn validate_in_mesh(mesh: &Path, args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bowline"))
        .arg("validate")
        .arg("--mesh-config")
        .arg(mesh)
        .arg("-f")
        .args(args)
        .env("BOWLINE_LOG", "warn")
        .output()
        .unwrap()
}

#[test]
fn the_mesh_config_sets_the_root_namespace() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("sidecar.yaml");
    std::fs::write(&config, SELECTOR_SIDECAR).unwrap();
    // By default the root namespace is istio-system: nothing is wrong.
    let output = validate(&[&config]);
    assert!(output.status.success(), "{}", stdout(&output));

    let mesh = dir.path().join("mesh.yaml");
    std::fs::write(&mesh, "rootNamespace: mesh-root\n").unwrap();
    let output = validate_in_mesh(&mesh, &[&config]);
    let out = stdout(&output);
    assert!(!output.status.success(), "{out}");
    assert!(
        out.contains(&format!(
            "{}: document 0: Sidecar mesh-root/scoped: spec.workloadSelector: a Sidecar in the root namespace mesh-root is the mesh-wide default and cannot have a workload selector; this Sidecar is ignored",
            config.display()
        )),
        "{out}"
    );
}

#[test]
fn mesh_config_errors_name_the_file_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("service.yaml");
    std::fs::write(&config, SERVICE).unwrap();
    let mesh = dir.path().join("mesh.yaml");
    std::fs::write(
        &mesh,
        "rootNamespace: mesh-root\ndefaultConfig:\n  concurrency: 2\nrootNamespce: x\n",
    )
    .unwrap();
    let output = validate_in_mesh(&mesh, &[&config]);
    let out = stdout(&output);
    assert!(!output.status.success(), "{out}");
    let mesh = mesh.display();
    assert!(
        out.contains(&format!(
            "{mesh}: defaultConfig: field is not supported yet"
        )),
        "{out}"
    );
    assert!(
        out.contains(&format!("warning: {mesh}: the mesh config is not used: running with the defaults (rootNamespace istio-system)")),
        "{out}"
    );
    assert!(
        out.contains("1 objects valid, 1 errors, 1 warnings"),
        "{out}"
    );
}
