//! Status conditions on the custom resources Bowline refuses: the leader
//! writes an `Accepted` condition (status `False`, reason `Invalid`, the
//! field paths and messages) on each invalid object, and `True` again once
//! it is fixed, so `kubectl get vs reviews -o yaml` says why it is not in
//! force. Only the leader writes, so replicas never fight over it.
//!
//! ```text
//! snapshot diagnostics ──► invalid_objects (pure): API path ──► "PATH: MESSAGE; ..."
//! leading? ──► on taking the lead: list each kind, note those carrying our False condition
//!          ──► per change: False where newly invalid or the message changed, True where fixed
//!              (GET, then a merge patch of `status.conditions` keeping other types' conditions)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::jiff::Timestamp;
use kube::api::{ApiResource, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use policy::Diagnostic;
use serde_json::{Value, json};
use tokio::sync::watch;
use tracing::{debug, warn};

use crate::config::{object_path, resources};

/// The condition type Bowline writes.
pub const CONDITION: &str = "Accepted";

/// The custom resources the diagnostics refuse, by API path, each with
/// its errors as `PATH: MESSAGE`, joined by `; `.
pub fn invalid_objects(diagnostics: &[Diagnostic]) -> BTreeMap<PathBuf, String> {
    let mut invalid: BTreeMap<PathBuf, Vec<String>> = BTreeMap::new();
    for d in diagnostics.iter().filter(|d| d.is_error()) {
        if d.file.starts_with("/apis/") {
            let path = d.path.to_string();
            let line = if path.is_empty() {
                d.message.clone()
            } else {
                format!("{path}: {}", d.message)
            };
            invalid
                .entry(PathBuf::from(&d.file))
                .or_default()
                .push(line);
        }
    }
    invalid
        .into_iter()
        .map(|(path, lines)| (path, lines.join("; ")))
        .collect()
}

/// The condition to write: refused with `message`, or accepted (`None`).
pub fn condition(message: Option<&str>, now: &str) -> Value {
    match message {
        Some(message) => json!({
            "type": CONDITION, "status": "False", "reason": "Invalid",
            "message": message, "lastTransitionTime": now,
        }),
        None => json!({
            "type": CONDITION, "status": "True", "reason": "Accepted",
            "message": "", "lastTransitionTime": now,
        }),
    }
}

/// `conditions` with ours in place of any earlier one of its type.
pub fn with_condition(conditions: Option<&Value>, ours: Value) -> Value {
    let mut list: Vec<Value> = conditions
        .and_then(Value::as_array)
        .map(|c| {
            c.iter()
                .filter(|c| c["type"] != CONDITION)
                .cloned()
                .collect()
        })
        .unwrap_or_default();
    list.push(ours);
    Value::Array(list)
}

/// Where an API path points: the resource, namespace and name.
fn locate(path: &Path) -> Option<(ApiResource, String, String)> {
    let text = path.to_str()?;
    let rest = text.strip_prefix("/apis/")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [group, version, "namespaces", namespace, plural, name] = parts[..] else {
        return None;
    };
    let (_, resource) = resources()
        .into_iter()
        .find(|(_, r)| r.group == group && r.version == version && r.plural == plural)?;
    Some((resource, namespace.to_string(), name.to_string()))
}

/// Writes the conditions while this replica leads: `invalid` is the
/// newest map of refused objects (see [`invalid_objects`]).
pub async fn run(
    client: Client,
    mut leading: watch::Receiver<bool>,
    mut invalid: watch::Receiver<BTreeMap<PathBuf, String>>,
) {
    loop {
        if leading.wait_for(|l| *l).await.is_err() {
            return;
        }
        // What the objects carry now: ours, False, from an earlier leader.
        let mut written: BTreeMap<PathBuf, Option<String>> = marked(&client).await;
        loop {
            let desired = invalid.borrow_and_update().clone();
            let fixed: Vec<PathBuf> = written
                .iter()
                .filter(|(path, message)| message.is_some() && !desired.contains_key(*path))
                .map(|(path, _)| path.clone())
                .collect();
            for path in fixed {
                if write(&client, &path, None).await {
                    written.insert(path, None);
                }
            }
            for (path, message) in &desired {
                if written.get(path) != Some(&Some(message.clone()))
                    && write(&client, path, Some(message)).await
                {
                    written.insert(path.clone(), Some(message.clone()));
                }
            }
            tokio::select! {
                changed = invalid.changed() => if changed.is_err() { return },
                changed = leading.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if !*leading.borrow() {
                        break;
                    }
                }
            }
        }
    }
}

/// The objects whose status carries Bowline's `False` condition.
async fn marked(client: &Client) -> BTreeMap<PathBuf, Option<String>> {
    let mut marked = BTreeMap::new();
    for (_, resource) in resources() {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let Ok(list) = api.list(&ListParams::default()).await else {
            // Not installed, or not allowed: nothing of ours to clear there.
            continue;
        };
        for object in list {
            let refused = object.data["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == CONDITION && c["status"] == "False");
            if let (Some(c), Some(name)) = (refused, object.metadata.name.as_deref()) {
                let namespace = object.metadata.namespace.as_deref().unwrap_or("default");
                let message = c["message"].as_str().unwrap_or_default().to_string();
                marked.insert(object_path(&resource, namespace, name), Some(message));
            }
        }
    }
    marked
}

/// Writes one object's condition; whether it was written (a gone object
/// counts: nothing is left to write).
async fn write(client: &Client, path: &Path, message: Option<&str>) -> bool {
    let Some((resource, namespace, name)) = locate(path) else {
        return true;
    };
    let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), &namespace, &resource);
    let current = match api.get_opt(&name).await {
        Ok(Some(current)) => current,
        Ok(None) => return true,
        Err(error) => {
            warn!(%error, path = %path.display(), "reading the object for its status failed");
            return false;
        }
    };
    let now = Timestamp::now().to_string();
    let conditions = with_condition(
        current.data["status"].get("conditions"),
        condition(message, &now),
    );
    let patch = json!({"status": {"conditions": conditions}});
    match api
        .patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => {
            debug!(path = %path.display(), accepted = message.is_none(), "status condition written");
            true
        }
        Err(error) => {
            warn!(%error, path = %path.display(), "writing the status condition failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use policy::{FieldPath, Kind, ObjectKey};

    use super::*;

    const VS: &str = "/apis/networking.istio.io/v1/namespaces/shop/virtualservices/reviews";

    #[test]
    fn the_errors_of_custom_resources_only_by_api_path() {
        let key = ObjectKey {
            kind: Kind::VirtualService,
            namespace: "shop".into(),
            name: "reviews".into(),
        };
        let at = |path: &str| {
            FieldPath::root()
                .field("spec")
                .field("http")
                .index(0)
                .field(path)
        };
        let diagnostics = vec![
            Diagnostic::error(at("route"), "weights must add up to 100")
                .in_file(VS, 0)
                .on(key.clone()),
            Diagnostic::error(at("timeout"), "not a duration")
                .in_file(VS, 0)
                .on(key.clone()),
            Diagnostic::warning(at("retries"), "a warning").in_file(VS, 0),
            Diagnostic::error(at("route"), "a file's").in_file("/etc/mesh/vs.yaml", 0),
        ];
        let invalid = invalid_objects(&diagnostics);
        assert_eq!(invalid.len(), 1);
        assert_eq!(
            invalid[Path::new(VS)],
            "spec.http[0].route: weights must add up to 100; spec.http[0].timeout: not a duration"
        );
    }

    #[test]
    fn our_condition_replaces_its_earlier_self_and_keeps_the_others() {
        let existing = json!([
            {"type": "Reconciled", "status": "True"},
            {"type": CONDITION, "status": "False", "message": "old"},
        ]);
        let now = "2026-12-03T00:00:00Z";
        let merged = with_condition(Some(&existing), condition(None, now));
        assert_eq!(merged.as_array().unwrap().len(), 2);
        assert_eq!(merged[0]["type"], "Reconciled");
        assert_eq!(merged[1]["status"], "True");
        let refused = condition(Some("spec.hosts: required"), now);
        assert_eq!(refused["reason"], "Invalid");
        assert_eq!(with_condition(None, refused.clone()), json!([refused]));
    }

    #[test]
    fn api_paths_name_their_resource() {
        let (resource, namespace, name) = locate(Path::new(VS)).unwrap();
        assert_eq!(
            (resource.kind.as_str(), namespace.as_str(), name.as_str()),
            ("VirtualService", "shop", "reviews")
        );
        assert!(locate(Path::new("/etc/mesh/vs.yaml")).is_none());
    }
}
