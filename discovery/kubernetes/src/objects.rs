//! `bowline apply`, `get` and `delete` in Kubernetes mode: the mesh config
//! as the cluster's own objects (Istio's custom resources, and `Service`),
//! written with the user's kubeconfig, so under the user's RBAC, as kubectl
//! does. The control plane itself writes no custom resources.
//!
//! Applying is server-side apply (field manager `bowline`), first of every
//! object as a dry run, then for real, so that an object the API server
//! refuses (RBAC, admission) keeps the others from being applied too.

use kube::api::{ApiResource, DeleteParams, DynamicObject, ListParams, Patch, PatchParams};
use kube::{Api, Client};
use policy::Kind;
use serde_json::Value;

/// The field manager Bowline's writes carry.
pub const FIELD_MANAGER: &str = "bowline";

/// The API resource of `kind` at `version` (the kind's preferred version
/// when `None` or not served).
pub fn resource(kind: Kind, version: Option<&str>) -> ApiResource {
    let (plural, _) = policy::crd::names(kind);
    let (group, version) = match kind.served() {
        Some((group, versions)) => {
            let version = version
                .filter(|v| versions.contains(v))
                .unwrap_or(versions[0]);
            (group, version)
        }
        None => ("", "v1"),
    };
    ApiResource {
        group: group.to_string(),
        version: version.to_string(),
        api_version: if group.is_empty() {
            version.to_string()
        } else {
            format!("{group}/{version}")
        },
        kind: kind.as_str().to_string(),
        plural: plural.to_string(),
    }
}

/// One object to apply: its kind, namespace, name, and the document as
/// written (`apiVersion` picks the version it is sent to).
#[derive(Clone, Debug)]
pub struct Applied {
    pub kind: Kind,
    pub namespace: String,
    pub name: String,
    pub document: Value,
}

fn api(client: &Client, kind: Kind, namespace: &str, version: Option<&str>) -> Api<DynamicObject> {
    Api::namespaced_with(client.clone(), namespace, &resource(kind, version))
}

fn version_of(document: &Value) -> Option<&str> {
    document["apiVersion"]
        .as_str()
        .map(|v| v.rsplit('/').next().unwrap_or(v))
}

/// Applies every object, or none when the API server refuses one in the
/// dry run: `Err` names it. With `dry_run`, only the dry run.
pub async fn apply(
    client: &Client,
    objects: &[Applied],
    dry_run: bool,
) -> Result<(), (Applied, kube::Error)> {
    for pass_dry in [true, false] {
        if !pass_dry && dry_run {
            break;
        }
        for object in objects {
            let mut params = PatchParams::apply(FIELD_MANAGER);
            if pass_dry {
                params = params.dry_run();
            }
            let mut document = object.document.clone();
            document["metadata"]["namespace"] = Value::String(object.namespace.clone());
            api(
                client,
                object.kind,
                &object.namespace,
                version_of(&document),
            )
            .patch(&object.name, &params, &Patch::Apply(&document))
            .await
            .map_err(|e| (object.clone(), e))?;
        }
    }
    Ok(())
}

/// The objects of `kind` in `namespace` (every namespace when `None`), or
/// the one named `name`.
pub async fn get(
    client: &Client,
    kind: Kind,
    namespace: Option<&str>,
    name: Option<&str>,
) -> Result<Vec<DynamicObject>, kube::Error> {
    let resource = resource(kind, None);
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    match name {
        Some(name) => Ok(vec![api.get(name).await?]),
        None => Ok(api.list(&ListParams::default()).await?.items),
    }
}

/// Deletes one object.
pub async fn delete(
    client: &Client,
    kind: Kind,
    namespace: &str,
    name: &str,
) -> Result<(), kube::Error> {
    api(client, kind, namespace, None)
        .delete(name, &DeleteParams::default())
        .await
        .map(|_| ())
}
