//! The `caBundle` of Bowline's admission webhooks, kept current by the
//! leader: the API server trusts the control plane's serving certificate
//! (issued by its own CA) through it, so a root rotation must reach it.
//! The webhook configurations are Bowline's by label
//! (`app.kubernetes.io/part-of: bowline`), validating and mutating alike.
//!
//! Once the bundle is in, the validating webhooks' `failurePolicy` becomes
//! `Fail`, as istiod's validation controller does: installed as `Ignore`
//! (nothing could call the webhook before its caBundle was filled), they
//! then refuse what they cannot check rather than let it through. An
//! object that reaches the store anyway (a write while every replica is
//! down) still gets its status condition and is not applied.
//!
//! ```text
//! leading ∧ bundle ──► LIST {Validating,Mutating}WebhookConfiguration by label
//!                     ──► each webhook's clientConfig.caBundle != bundle? ──► REPLACE
//! again when the bundle changes or the lead is taken
//! ```

use std::sync::Arc;

use k8s_openapi::ByteString;
use k8s_openapi::api::admissionregistration::v1::{
    MutatingWebhookConfiguration, ValidatingWebhookConfiguration,
};
use kube::api::{ListParams, PostParams};
use kube::{Api, Client};
use tokio::sync::watch;
use tracing::{debug, warn};

/// The label that marks a webhook configuration as Bowline's.
pub const SELECTOR: &str = "app.kubernetes.io/part-of=bowline";

/// Sets every `caBundle` of `bundles` to `pem`; whether one changed.
pub fn set_bundles<'a>(
    bundles: impl IntoIterator<Item = &'a mut Option<ByteString>>,
    pem: &str,
) -> bool {
    let mut changed = false;
    for bundle in bundles {
        if bundle.as_ref().map(|b| b.0.as_slice()) != Some(pem.as_bytes()) {
            *bundle = Some(ByteString(pem.as_bytes().to_vec()));
            changed = true;
        }
    }
    changed
}

/// Keeps the webhooks' `caBundle`s current while this replica leads.
pub async fn run(
    client: Client,
    mut leading: watch::Receiver<bool>,
    mut bundle: watch::Receiver<Option<Arc<str>>>,
) {
    loop {
        let pem = bundle.borrow_and_update().clone();
        if *leading.borrow_and_update()
            && let Some(pem) = &pem
        {
            update(&client, pem).await;
        }
        tokio::select! {
            changed = leading.changed() => if changed.is_err() { return },
            changed = bundle.changed() => if changed.is_err() { return },
        }
    }
}

async fn update(client: &Client, pem: &str) {
    let listed = ListParams::default().labels(SELECTOR);
    let validating: Api<ValidatingWebhookConfiguration> = Api::all(client.clone());
    match validating.list(&listed).await {
        Ok(list) => {
            for mut config in list {
                let hooks = config.webhooks.iter_mut().flatten();
                let mut changed = set_bundles(hooks.map(|h| &mut h.client_config.ca_bundle), pem);
                for hook in config.webhooks.iter_mut().flatten() {
                    if hook.failure_policy.as_deref() != Some("Fail") {
                        hook.failure_policy = Some("Fail".to_string());
                        changed = true;
                    }
                }
                if changed {
                    write(&validating, config).await;
                }
            }
        }
        Err(error) => warn!(%error, "listing the validating webhooks failed"),
    }
    let mutating: Api<MutatingWebhookConfiguration> = Api::all(client.clone());
    match mutating.list(&listed).await {
        Ok(list) => {
            for mut config in list {
                let hooks = config.webhooks.iter_mut().flatten();
                if set_bundles(hooks.map(|h| &mut h.client_config.ca_bundle), pem) {
                    write(&mutating, config).await;
                }
            }
        }
        Err(error) => warn!(%error, "listing the mutating webhooks failed"),
    }
}

async fn write<K>(api: &Api<K>, config: K)
where
    K: kube::Resource + Clone + serde::Serialize + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let name = config.meta().name.clone().unwrap_or_default();
    // The resourceVersion read is in the object: a concurrent edit is 409,
    // and the next change writes again.
    match api.replace(&name, &PostParams::default(), &config).await {
        Ok(_) => debug!(name, "webhook caBundle written"),
        Err(error) => warn!(name, %error, "writing the webhook caBundle failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_stale_bundle_is_a_change() {
        let mut bundles = [None, Some(ByteString(b"old".to_vec()))];
        assert!(set_bundles(bundles.iter_mut(), "new"));
        assert!(bundles.iter().all(|b| b.as_ref().unwrap().0 == b"new"));
        assert!(!set_bundles(bundles.iter_mut(), "new"));
    }
}
