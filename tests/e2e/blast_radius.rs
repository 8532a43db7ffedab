//! One object Envoy would reject must not take down config that does not
//! depend on it: it is rejected before it reaches any proxy, the rest of the
//! edit is pushed, and no proxy NACKs.

use serde_json::Value;

use crate::harness::{BOWLINE, count_versions, wait_for_version};
use crate::{reviews_mesh, reviews_split};

/// A VirtualService on `host` answering every request with `body`.
fn direct_response(host: &str, body: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {host}}}\nspec:\n  hosts: [{host}]\n  http:\n  - directResponse:\n      status: 200\n      body: {{string: \"{body}\"}}\n"
    )
}

fn service(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: {name}}}\nspec:\n  selector: {{app: reviews}}\n  ports:\n  - {{name: http, port: 9080}}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_direct_response_is_rejected_and_everything_else_is_pushed() {
    let mesh = reviews_mesh(60, (100, 0), ["sotw", "delta", "sotw"]).await;
    let client = mesh.client(1);

    // In one edit: an 8 KiB body (over Envoy's 4 KiB default, within the
    // 1 MiB the route configuration allows), a 1.5 MiB body (over that),
    // and a new split of reviews.
    let medium = "m".repeat(8 * 1024);
    let oversized = "o".repeat(1536 * 1024);
    mesh.write(
        "services-more.yaml",
        &format!("{}---\n{}", service("ratings"), service("details")),
    );
    mesh.write("ratings-vs.yaml", &direct_response("ratings", &medium));
    mesh.write("details-vs.yaml", &direct_response("details", &oversized));
    mesh.write("reviews-vs.yaml", &reviews_split(0, 100));

    wait_for_version(&client, "http://reviews:9080/", "v2").await;
    mesh.wait_converged(&["client", "reviews-v1", "reviews-v2"])
        .await;

    // Every proxy ACKed everything; none NACKed anything.
    for proxy in mesh.proxies().await {
        for (type_url, state) in proxy["xds"].as_object().unwrap() {
            assert!(
                state["nack"].is_null(),
                "{} NACKed {type_url}: {}",
                proxy["workload"],
                state["nack"]
            );
        }
    }
    let after = count_versions(&client, "http://reviews:9080/", 50).await;
    assert_eq!(after.get("v2"), Some(&50), "{after:?}");

    // The 8 KiB body is served whole.
    let response = client.get("http://ratings:9080/").send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    assert_eq!(response.text().await.unwrap(), medium);

    // The oversized one never reached Envoy: details has no VirtualService
    // in force, so it gets the default route to its endpoints (the reviews
    // workloads).
    let details = count_versions(&client, "http://details:9080/", 10).await;
    assert!(
        details.keys().all(|k| k == "v1" || k == "v2"),
        "every request answered by a details endpoint: {details:?}"
    );

    // It is reported with its file and field path...
    let diagnostics = mesh.admin_json("/api/v1/diagnostics").await;
    let found: Vec<&Value> = diagnostics
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["severity"] == "error")
        .collect();
    assert_eq!(found.len(), 1, "one error: {found:?}");
    let error = found[0];
    assert!(
        error["file"].as_str().unwrap().ends_with("details-vs.yaml"),
        "{error}"
    );
    assert_eq!(error["name"], "details");
    assert!(
        error["path"]
            .as_str()
            .unwrap()
            .starts_with("spec.http[0].directResponse.body"),
        "{error}"
    );
    println!("reported: {}", error["text"]);

    // ...and by `bowline validate`, offline.
    let out = std::process::Command::new(BOWLINE)
        .args(["validate", "-f"])
        .arg(mesh.config_dir())
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "validate accepted it:\n{text}");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("details-vs.yaml"))
        .collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(
        lines[0].contains("VirtualService default/details")
            && lines[0].contains("spec.http[0].directResponse.body"),
        "{text}"
    );
    assert!(
        !text.contains("ratings-vs.yaml"),
        "the 8 KiB body is valid:\n{text}"
    );
}
