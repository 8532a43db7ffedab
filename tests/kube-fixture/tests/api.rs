//! kube-rs `Api` calls against the fixture: objects, conflicts, patches,
//! custom resources, pagination, TokenReview, Lease, authentication.

mod common;

use common::{env, status};
use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PostParams,
};
use serde_json::json;

fn pod(name: &str, app: &str) -> Pod {
    serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": app}},
        "spec": {"containers": [{"name": "app", "image": "example/app:1"}]},
    }))
    .unwrap()
}

#[tokio::test]
async fn pod_create_list_get_update_patch_delete() -> anyhow::Result<()> {
    let env = env().await?;
    let pods: Api<Pod> = Api::namespaced(env.client.clone(), "default");
    let created = pods
        .create(&PostParams::default(), &pod("web-1", "web"))
        .await?;
    let meta = &created.metadata;
    assert!(meta.uid.is_some() && meta.creation_timestamp.is_some());
    assert_eq!(meta.generation, Some(1));
    assert_eq!(meta.namespace.as_deref(), Some("default"));
    pods.create(&PostParams::default(), &pod("db-1", "db"))
        .await?;

    let again = status(
        pods.create(&PostParams::default(), &pod("web-1", "web"))
            .await,
    );
    assert_eq!((again.code, again.reason.as_str()), (409, "AlreadyExists"));

    let all = pods.list(&ListParams::default()).await?;
    assert_eq!(all.items.len(), 2);
    assert!(all.metadata.resource_version.is_some());
    let web = pods.list(&ListParams::default().labels("app=web")).await?;
    assert_eq!(
        web.items
            .iter()
            .map(|p| p.metadata.name.clone().unwrap())
            .collect::<Vec<_>>(),
        ["web-1"]
    );
    let not_web = pods
        .list(&ListParams::default().labels("app notin (web),!missing"))
        .await?;
    assert_eq!(not_web.items.len(), 1);
    let by_name = pods
        .list(&ListParams::default().fields("metadata.name=db-1"))
        .await?;
    assert_eq!(by_name.items.len(), 1);

    let mut got = pods.get("web-1").await?;
    assert_eq!(
        got.metadata.resource_version,
        created.metadata.resource_version
    );
    got.metadata
        .labels
        .get_or_insert_default()
        .insert("tier".into(), "front".into());
    let updated = pods.replace("web-1", &PostParams::default(), &got).await?;
    assert_ne!(
        updated.metadata.resource_version,
        created.metadata.resource_version
    );
    // The same write again carries a stale resourceVersion.
    let stale = status(pods.replace("web-1", &PostParams::default(), &got).await);
    assert_eq!((stale.code, stale.reason.as_str()), (409, "Conflict"));

    let merged = pods
        .patch(
            "web-1",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"tier": null, "v": "2"}}})),
        )
        .await?;
    let labels = merged.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        (labels.get("tier"), labels.get("v").map(String::as_str)),
        (None, Some("2"))
    );

    let apply = PatchParams::apply("kube-fixture-test");
    let applied = pods.patch("web-1", &apply, &Patch::Apply(json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web-1", "annotations": {"a": "b"}}}))).await?;
    assert_eq!(
        applied
            .metadata
            .annotations
            .unwrap_or_default()
            .get("a")
            .map(String::as_str),
        Some("b")
    );
    let managers: Vec<_> = applied
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|f| f.manager)
        .collect();
    assert_eq!(managers, ["kube-fixture-test"]);
    // Apply creates what does not exist.
    pods.patch("web-2", &apply, &Patch::Apply(pod("web-2", "web")))
        .await?;

    let deleted = pods.delete("web-1", &DeleteParams::default()).await?;
    assert_eq!(
        deleted.left().and_then(|p| p.metadata.name).as_deref(),
        Some("web-1")
    );
    let gone = status(pods.get("web-1").await);
    assert_eq!((gone.code, gone.reason.as_str()), (404, "NotFound"));
    assert_eq!(pods.list(&ListParams::default()).await?.items.len(), 2);
    Ok(())
}

#[tokio::test]
async fn service_and_status_subresource() -> anyhow::Result<()> {
    let env = env().await?;
    let services: Api<Service> = Api::namespaced(env.client.clone(), "shop");
    let svc: Service = serde_json::from_value(json!({
        "metadata": {"name": "reviews"},
        "spec": {"ports": [{"name": "http", "port": 9080}], "selector": {"app": "reviews"}},
    }))?;
    services.create(&PostParams::default(), &svc).await?;
    assert_eq!(
        Api::<Service>::all(env.client.clone())
            .list(&ListParams::default())
            .await?
            .items
            .len(),
        1
    );

    let status_patch = json!({"status": {"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}]}}, "spec": {"selector": {"app": "other"}}});
    let after = services
        .patch_status(
            "reviews",
            &PatchParams::default(),
            &Patch::Merge(&status_patch),
        )
        .await?;
    let ip = after
        .status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|l| l.ingress.as_ref())
        .and_then(|i| i[0].ip.clone());
    assert_eq!(ip.as_deref(), Some("10.0.0.1"));
    // The status subresource changes only status; the main resource leaves status alone.
    assert_eq!(
        after
            .spec
            .as_ref()
            .and_then(|s| s.selector.as_ref())
            .and_then(|s| s.get("app"))
            .map(String::as_str),
        Some("reviews")
    );
    let main = services
        .patch(
            "reviews",
            &PatchParams::default(),
            &Patch::Merge(json!({"status": null, "spec": {"selector": {"app": "v2"}}})),
        )
        .await?;
    assert!(
        main.status
            .as_ref()
            .and_then(|s| s.load_balancer.as_ref())
            .is_some()
    );
    assert_eq!(main.metadata.generation, Some(2));

    services.delete("reviews", &DeleteParams::default()).await?;
    assert!(
        services
            .list(&ListParams::default())
            .await?
            .items
            .is_empty()
    );
    Ok(())
}

#[tokio::test]
async fn virtual_service_as_a_dynamic_object() -> anyhow::Result<()> {
    let env = env().await?;
    let gvk = GroupVersionKind::gvk("networking.istio.io", "v1", "VirtualService");
    let resource = ApiResource::from_gvk_with_plural(&gvk, "virtualservices");
    let api: Api<DynamicObject> = Api::namespaced_with(env.client.clone(), "default", &resource);
    let mut vs = DynamicObject::new("reviews", &resource);
    vs.data = json!({"spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews", "subset": "v1"}}]}]}});
    api.create(&PostParams::default(), &vs).await?;
    let listed = api.list(&ListParams::default()).await?;
    assert_eq!(listed.items.len(), 1);
    assert_eq!(listed.items[0].data["spec"]["hosts"], json!(["reviews"]));
    // Every served version reads the same object.
    let beta = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("networking.istio.io", "v1beta1", "VirtualService"),
        "virtualservices",
    );
    let old = Api::<DynamicObject>::all_with(env.client.clone(), &beta)
        .list(&ListParams::default())
        .await?;
    assert_eq!(
        old.items[0].types.as_ref().map(|t| t.api_version.as_str()),
        Some("networking.istio.io/v1beta1")
    );
    Ok(())
}

#[tokio::test]
async fn pages_and_an_expired_continue_token() -> anyhow::Result<()> {
    let env = env().await?;
    for i in 0..5 {
        env.fixture.apply(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": format!("cm-{i}"), "namespace": "default"}}))?;
    }
    let maps: Api<ConfigMap> = Api::namespaced(env.client.clone(), "default");
    let first = maps.list(&ListParams::default().limit(2)).await?;
    assert_eq!(first.items.len(), 2);
    let token = first.metadata.continue_.clone().expect("a continue token");
    // Changes after the first page do not show on later pages: one consistent list.
    env.fixture.delete("v1", "ConfigMap", "default", "cm-4")?;
    let mut names: Vec<String> = first
        .items
        .iter()
        .filter_map(|m| m.metadata.name.clone())
        .collect();
    let mut next = Some(token);
    while let Some(token) = next {
        let page = maps
            .list(&ListParams::default().limit(2).continue_token(&token))
            .await?;
        assert_eq!(
            page.metadata.resource_version,
            first.metadata.resource_version
        );
        names.extend(page.items.iter().filter_map(|m| m.metadata.name.clone()));
        next = page.metadata.continue_.filter(|c| !c.is_empty());
    }
    assert_eq!(names, ["cm-0", "cm-1", "cm-2", "cm-3", "cm-4"]);

    env.fixture.compact();
    let token = first.metadata.continue_.unwrap();
    let expired = status(
        maps.list(&ListParams::default().limit(2).continue_token(&token))
            .await,
    );
    assert_eq!((expired.code, expired.reason.as_str()), (410, "Expired"));
    Ok(())
}

#[tokio::test]
async fn token_review_answers() -> anyhow::Result<()> {
    let env = env().await?;
    env.fixture
        .add_service_account_token("tok-a", "shop", "reviews", &["istio-ca", "bowline"]);
    let reviews: Api<TokenReview> = Api::all(env.client.clone());
    let review = |token: &str, audiences: &[&str]| TokenReview {
        spec: TokenReviewSpec {
            token: token.into(),
            audiences: Some(audiences.iter().map(|a| a.to_string()).collect()),
        },
        ..Default::default()
    };
    let ok = reviews
        .create(
            &PostParams::default(),
            &review("tok-a", &["istio-ca", "other"]),
        )
        .await?;
    let status = ok.status.unwrap();
    assert_eq!(status.authenticated, Some(true));
    assert_eq!(
        status.user.and_then(|u| u.username).as_deref(),
        Some("system:serviceaccount:shop:reviews")
    );
    assert_eq!(status.audiences, Some(vec!["istio-ca".to_string()]));

    let wrong_audience = reviews
        .create(&PostParams::default(), &review("tok-a", &["other"]))
        .await?;
    assert_eq!(wrong_audience.status.unwrap().authenticated, Some(false));
    let unknown = reviews
        .create(&PostParams::default(), &review("tok-b", &["istio-ca"]))
        .await?;
    assert_eq!(unknown.status.unwrap().authenticated, Some(false));
    Ok(())
}

#[tokio::test]
async fn lease_update_conflicts() -> anyhow::Result<()> {
    let env = env().await?;
    let leases: Api<Lease> = Api::namespaced(env.client.clone(), "bowline-system");
    let lease: Lease = serde_json::from_value(json!({
        "metadata": {"name": "bowline-leader"},
        "spec": {"holderIdentity": "replica-a", "leaseDurationSeconds": 15},
    }))?;
    leases.create(&PostParams::default(), &lease).await?;
    let seen = leases.get("bowline-leader").await?;
    // Two replicas read the same version; the first write wins, the second conflicts.
    let mut a = seen.clone();
    a.spec.as_mut().unwrap().lease_transitions = Some(1);
    let mut b = seen.clone();
    b.spec.as_mut().unwrap().holder_identity = Some("replica-b".into());
    leases
        .replace("bowline-leader", &PostParams::default(), &a)
        .await?;
    let lost = status(
        leases
            .replace("bowline-leader", &PostParams::default(), &b)
            .await,
    );
    assert_eq!((lost.code, lost.reason.as_str()), (409, "Conflict"));
    assert_eq!(
        leases
            .get("bowline-leader")
            .await?
            .spec
            .unwrap()
            .holder_identity
            .as_deref(),
        Some("replica-a")
    );
    Ok(())
}

#[tokio::test]
async fn a_request_without_the_token_is_unauthorized() -> anyhow::Result<()> {
    let env = env().await?;
    let good = env.dir.path().join("kubeconfig");
    let bad = env.dir.path().join("kubeconfig-bad");
    std::fs::write(
        &bad,
        std::fs::read_to_string(&good)?.replace(common::TOKEN, "not-the-token"),
    )?;
    let stranger = common::client_from(&bad).await?;
    let refused = status(Api::<Pod>::all(stranger).list(&ListParams::default()).await);
    assert_eq!(
        (refused.code, refused.reason.as_str()),
        (401, "Unauthorized")
    );
    assert_eq!(
        env.fixture
            .count(|r| r.verb == kube_fixture::Verb::Unauthorized),
        1
    );
    Ok(())
}
