//! What a change of config files would change in each sidecar's Envoy
//! config: the summary `POST /api/v1/apply` answers with (and `bowline
//! apply` prints), and the unified diffs `bowline diff` and a dry run show.
//!
//! ```text
//! files in force ──► before ─┐
//! the same + the files to write ──► after ─┴─► pilot_core::diff::changes(sidecar of every WorkloadEntry)
//!   ──► per proxy: each resource added, removed or changed, with its diff as Envoy's config-dump JSON
//! ```
//!
//! Both sides are built alike from the files alone (the mesh config, no
//! trust bundle, no fetched keys), so what differs is what the files change.

use std::path::PathBuf;
use std::sync::Arc;

use discovery::file::FileStore;
use pilot_core::diff::{Change, ProxyChanges, ResourceChange, workload_proxies};
use pilot_core::mesh::Mesh;
use pilot_core::resources::Resource;
use serde::Serialize;

/// A resource as JSON text in the form of Envoy's config dump, keys redacted.
pub fn json_text(resource: Option<&Arc<Resource>>) -> String {
    let Some(resource) = resource else {
        return String::new();
    };
    match pilot_envoy_json::to_json(resource.resource_type().type_url(), resource.value()) {
        Ok(mut json) => {
            pilot_envoy_json::redact(&mut json);
            serde_json::to_string_pretty(&json).unwrap_or_default() + "\n"
        }
        Err(error) => format!("({error})\n"),
    }
}

/// `+`, `-` or `~`.
pub fn sign(change: Change) -> char {
    match change {
        Change::Added => '+',
        Change::Removed => '-',
        Change::Changed => '~',
    }
}

/// `TYPE NAME`, as the reports name a resource.
pub fn describe(change: &ResourceChange) -> String {
    format!("{} {}", crate::admin::type_name(change.ty), change.name)
}

/// The unified diff of one resource, in force against with the changes.
pub fn unified(change: &ResourceChange) -> String {
    let what = describe(change);
    let (before, after) = (
        json_text(change.before.as_ref()),
        json_text(change.after.as_ref()),
    );
    similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header(
            &format!("{what} (in force)"),
            &format!("{what} (with the changes)"),
        )
        .to_string()
}

/// The summary of one proxy's changes, as the admin API answers it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ProxyPreview {
    /// The node id its sidecar would have.
    pub proxy: String,
    /// `WORKLOAD.NAMESPACE`.
    pub workload: String,
    pub changes: Vec<ChangePreview>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChangePreview {
    /// `listener`, `route`, `cluster`, `endpoint`, `secret`.
    #[serde(rename = "type")]
    pub ty: &'static str,
    pub name: String,
    /// `added`, `removed`, `changed`.
    pub change: &'static str,
    /// The unified diff (dry runs only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

/// The whole summary: how many sidecars were compiled, and those that
/// would change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Preview {
    pub sidecars: usize,
    pub changed: Vec<ProxyPreview>,
}

pub fn summarise(changes: &[ProxyChanges], sidecars: usize, with_diffs: bool) -> Preview {
    Preview {
        sidecars,
        changed: changes
            .iter()
            .map(|p| ProxyPreview {
                proxy: p.proxy.id.clone(),
                workload: format!(
                    "{}.{}",
                    p.proxy.metadata.workload, p.proxy.metadata.namespace
                ),
                changes: p
                    .changes
                    .iter()
                    .map(|c| ChangePreview {
                        ty: crate::admin::type_name(c.ty),
                        name: c.name.clone(),
                        change: c.change.as_str(),
                        diff: with_diffs.then(|| unified(c)),
                    })
                    .collect(),
            })
            .collect(),
    }
}

/// The changes `writes` (files and their new text) would make, against
/// `files` (every config file in force and its text).
pub fn preview(
    mesh: &Mesh,
    files: &[(PathBuf, String)],
    writes: &[(PathBuf, String)],
    with_diffs: bool,
) -> Preview {
    let (mut before, mut after) = (FileStore::new(), FileStore::new());
    for (path, text) in files {
        before.apply(path, text);
        after.apply(path, text);
    }
    for (path, text) in writes {
        after.apply(path, text);
    }
    let (before, after) = (
        mesh.build(1, &before.config()),
        mesh.build(2, &after.config()),
    );
    let proxies = workload_proxies(&before, &after);
    let changes = pilot_core::diff::changes(&before, &after, &proxies);
    summarise(&changes, proxies.len(), with_diffs)
}

/// Every config file under `dir` with its text; files that cannot be read
/// are left out, as the file source leaves them.
pub fn read_dir(dir: &std::path::Path) -> Vec<(PathBuf, String)> {
    let Ok(walk) = discovery_file::walk(dir) else {
        return Vec::new();
    };
    walk.files
        .into_iter()
        .filter_map(|(path, _)| {
            let text = std::fs::read_to_string(&path).ok()?;
            Some((path, text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const MESH: &str = r#"apiVersion: v1
kind: Service
metadata: {name: reviews}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-v1}
spec: {address: 127.0.9.2, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: client}
spec: {address: 127.0.9.1, labels: {app: client}}
"#;

    #[test]
    fn a_new_virtual_service_changes_the_routes_of_every_sidecar() {
        let files = vec![(PathBuf::from("/config/mesh.yaml"), MESH.to_string())];
        let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews}\nspec:\n  hosts: [reviews]\n  http:\n  - timeout: 3s\n    route: [{destination: {host: reviews}}]\n";
        let writes = vec![(
            PathBuf::from("/config/bowline-api/virtualservice.default.reviews.yaml"),
            vs.to_string(),
        )];
        let preview = preview(&Mesh::default(), &files, &writes, true);
        assert_eq!(preview.sidecars, 2);
        let workloads: Vec<&str> = preview
            .changed
            .iter()
            .map(|p| p.workload.as_str())
            .collect();
        assert_eq!(workloads, ["client.default", "reviews-v1.default"]);
        for proxy in &preview.changed {
            let routes: Vec<(&str, &str)> =
                proxy.changes.iter().map(|c| (c.ty, c.change)).collect();
            assert_eq!(routes, [("route", "changed")], "{proxy:?}");
            let diff = proxy.changes[0].diff.as_deref().unwrap();
            assert!(diff.contains("+") && diff.contains("\"3s\""), "{diff}");
        }
        // Without diffs, and with nothing that changes anything.
        let same = super::preview(&Mesh::default(), &files, &files, false);
        assert_eq!(same.changed, []);
        let summary = summarise(&[], 0, false);
        assert_eq!(serde_json::to_value(&summary).unwrap()["sidecars"], 0);
    }
}
