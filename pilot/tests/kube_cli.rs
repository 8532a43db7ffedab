//! `bowline apply`, `get` and `delete` in Kubernetes mode, against the
//! loopback kube-fixture through Bowline's real kube-rs client: the user's
//! kubeconfig, server-side apply (field manager `bowline`), validation
//! before anything is sent, all or nothing.

use std::path::Path;
use std::process::Command;

use kube_fixture::ApiServer;

const BOWLINE: &str = env!("CARGO_BIN_EXE_bowline");

const VS: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews, namespace: shop}
spec:
  hosts: [reviews]
  http:
  - timeout: 3s
    route:
    - destination: {host: reviews}
";

fn bowline(args: &[&str], kubeconfig: &Path) -> std::process::Output {
    Command::new(BOWLINE)
        .args(args)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_writes_the_clusters_objects_with_the_users_kubeconfig() {
    let api = ApiServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.kubeconfig(&kubeconfig, "mesh-admin").unwrap();
    let vs = dir.path().join("vs.yaml");
    std::fs::write(&vs, VS).unwrap();
    let stored = || {
        api.get(
            "networking.istio.io/v1",
            "VirtualService",
            "shop",
            "reviews",
        )
    };

    // A dry run sends it, and stores nothing.
    let out = bowline(
        &["apply", "-f", vs.to_str().unwrap(), "--dry-run"],
        &kubeconfig,
    );
    assert!(out.status.success(), "{out:?}");
    assert!(text(&out.stdout).contains("VirtualService shop/reviews applied (dry run)"));
    assert!(stored().is_none());

    let out = bowline(&["apply", "-f", vs.to_str().unwrap()], &kubeconfig);
    assert!(out.status.success(), "{out:?}");
    let object = stored().expect("applied");
    assert_eq!(object["spec"]["http"][0]["timeout"], "3s");
    assert!(
        object["metadata"]["managedFields"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["manager"] == "bowline" && f["operation"] == "Apply"),
        "{object}"
    );

    // One invalid document: nothing is sent, and the error names the file,
    // the document and the field.
    let both = dir.path().join("both.yaml");
    std::fs::write(
        &both,
        format!(
            "{}---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: bad, namespace: shop}}\nspec:\n  host: reviews\n  trafficPolicy: {{loadBalancer: {{simple: FASTEST}}}}\n",
            VS.replace("3s", "5s")
        ),
    )
    .unwrap();
    let out = bowline(&["apply", "-f", both.to_str().unwrap()], &kubeconfig);
    assert_eq!(out.status.code(), Some(3), "{out:?}");
    let errors = text(&out.stderr);
    assert!(
        errors.contains("both.yaml")
            && errors.contains("document 1")
            && errors.contains("spec.trafficPolicy.loadBalancer.simple"),
        "{errors}"
    );
    assert_eq!(
        stored().unwrap()["spec"]["http"][0]["timeout"],
        "3s",
        "nothing applied"
    );

    // get, as a table and as YAML; then delete.
    let out = bowline(&["get", "vs", "-n", "shop"], &kubeconfig);
    assert!(out.status.success(), "{out:?}");
    let table = text(&out.stdout);
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().take(2).eq(["shop", "reviews"])),
        "{table}"
    );
    let out = bowline(
        &["get", "vs", "reviews", "-n", "shop", "-o", "yaml"],
        &kubeconfig,
    );
    assert!(text(&out.stdout).contains("timeout: 3s"), "{out:?}");
    let out = bowline(&["delete", "vs", "reviews", "-n", "shop"], &kubeconfig);
    assert!(out.status.success(), "{out:?}");
    assert!(stored().is_none());
    let out = bowline(&["delete", "vs", "reviews", "-n", "shop"], &kubeconfig);
    assert_eq!(out.status.code(), Some(1), "a missing object: {out:?}");
}
