//! The CA's roots in every namespace, as the ConfigMap `istio-ca-root-cert`
//! (key `root-cert.pem`) that injected sidecars mount to trust the CA, the
//! name Istio's agents read. The leader writes them: on taking the lead,
//! whenever the trust bundle changes (a root rotation), and into each
//! namespace as it appears (each namespace is written once per bundle and
//! lead, not at every event).
//!
//! ```text
//! leading ∧ bundle ──► every namespace: GET ConfigMap ── absent ──► CREATE
//!                                                     └─ differs ─► REPLACE (its resourceVersion)
//! then wait: the bundle changes · a namespace is added · the lead is lost
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use futures_util::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::PostParams;
use kube::runtime::WatchStreamExt;
use kube::runtime::watcher::{self, Event};
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{debug, warn};

/// The ConfigMap's name and key, Istio's.
pub const CONFIG_MAP: &str = "istio-ca-root-cert";
pub const KEY: &str = "root-cert.pem";

/// The ConfigMap for `namespace` holding `bundle`.
pub fn config_map(namespace: &str, bundle: &str) -> ConfigMap {
    ConfigMap {
        metadata: ObjectMeta {
            name: Some(CONFIG_MAP.to_string()),
            namespace: Some(namespace.to_string()),
            labels: Some(BTreeMap::from([(
                "istio.io/config".to_string(),
                "true".to_string(),
            )])),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(KEY.to_string(), bundle.to_string())])),
        ..ConfigMap::default()
    }
}

/// Whether `current` already holds `bundle`.
pub fn holds(current: &ConfigMap, bundle: &str) -> bool {
    current
        .data
        .as_ref()
        .and_then(|d| d.get(KEY))
        .is_some_and(|pem| pem == bundle)
}

/// Keeps every namespace's ConfigMap current while this replica leads.
pub async fn run(
    client: Client,
    mut leading: watch::Receiver<bool>,
    mut bundle: watch::Receiver<Option<Arc<str>>>,
) {
    let namespaces: Api<Namespace> = Api::all(client.clone());
    let events = watcher::watcher(namespaces, watcher::Config::default()).default_backoff();
    let mut events = std::pin::pin!(events);
    let mut known: Vec<String> = Vec::new();
    let mut listing: Vec<String> = Vec::new();
    // What this replica wrote (or found) in each namespace, while leading.
    let mut written: BTreeMap<String, Arc<str>> = BTreeMap::new();
    loop {
        let pem = bundle.borrow_and_update().clone();
        let leads = *leading.borrow_and_update();
        if !leads {
            written.clear();
        }
        if leads && let Some(pem) = &pem {
            for namespace in &known {
                if written.get(namespace) != Some(pem) && ensure(&client, namespace, pem).await {
                    written.insert(namespace.clone(), pem.clone());
                }
            }
        }
        tokio::select! {
            changed = leading.changed() => if changed.is_err() { return },
            changed = bundle.changed() => if changed.is_err() { return },
            event = events.next() => match event {
                Some(Ok(Event::Init)) => listing.clear(),
                Some(Ok(Event::InitApply(ns))) => listing.extend(ns.metadata.name),
                Some(Ok(Event::InitDone)) => known = std::mem::take(&mut listing),
                Some(Ok(Event::Apply(ns))) => {
                    if let Some(name) = ns.metadata.name
                        && !known.contains(&name)
                    {
                        known.push(name);
                    }
                }
                Some(Ok(Event::Delete(ns))) => known.retain(|n| Some(n) != ns.metadata.name.as_ref()),
                Some(Err(error)) => warn!(%error, "watching namespaces for the root ConfigMaps failed"),
                None => return,
            },
        }
    }
}

/// Creates or updates one namespace's ConfigMap; whether it holds the bundle now.
async fn ensure(client: &Client, namespace: &str, bundle: &str) -> bool {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), namespace);
    let wanted = config_map(namespace, bundle);
    let result = match api.get_opt(CONFIG_MAP).await {
        Ok(Some(current)) if holds(&current, bundle) => return true,
        Ok(Some(current)) => {
            let mut next = wanted;
            next.metadata.resource_version = current.metadata.resource_version;
            api.replace(CONFIG_MAP, &PostParams::default(), &next).await
        }
        Ok(None) => api.create(&PostParams::default(), &wanted).await,
        Err(error) => Err(error),
    };
    match result {
        Ok(_) => {
            debug!(namespace, "root ConfigMap written");
            true
        }
        // A namespace being deleted, or a concurrent write: the next change
        // writes it again.
        Err(error) => {
            warn!(namespace, %error, "writing the root ConfigMap failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_map_is_istios_and_holding_is_by_content() {
        let cm = config_map("shop", "PEM");
        assert_eq!(cm.metadata.name.as_deref(), Some("istio-ca-root-cert"));
        assert!(holds(&cm, "PEM"));
        assert!(!holds(&cm, "OTHER"));
        assert!(!holds(&ConfigMap::default(), "PEM"));
    }
}
