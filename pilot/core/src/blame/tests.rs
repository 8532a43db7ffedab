//! NACK texts as Envoy 1.40 writes them, traced back to the objects.

use super::*;
use crate::compile::compile;

const CONFIG: &str = "\
apiVersion: v1
kind: Service
metadata: {name: reviews, namespace: shop}
spec:
  selector: {app: reviews}
  ports: [{name: http, port: 9080}]
---
apiVersion: v1
kind: Service
metadata: {name: ratings, namespace: shop}
spec:
  selector: {app: ratings}
  ports: [{name: http, port: 9080}]
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: reviews-1, namespace: shop}
spec: {address: 10.0.0.1, labels: {app: reviews, version: v1}}
---
apiVersion: networking.istio.io/v1
kind: WorkloadEntry
metadata: {name: ratings-1, namespace: shop}
spec: {address: 10.0.0.2, labels: {app: ratings}}
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: ratings-route, namespace: shop}
spec:
  hosts: [ratings]
  http:
  - route:
    - destination: {host: ratings, subset: v1}
---
apiVersion: networking.istio.io/v1
kind: DestinationRule
metadata: {name: ratings-subsets, namespace: shop}
spec:
  host: ratings
  subsets: [{name: v1, labels: {version: v1}}]
";

fn setup() -> (Snapshot, Proxy, ProxyResources) {
    let snapshot = crate::testing::snapshot_of(1, CONFIG);
    let mut proxy = Proxy::client("shop", "10.0.0.1".parse().unwrap(), &[("app", "reviews")]);
    proxy.metadata.app_address = Some("127.0.0.1:19080".parse().unwrap());
    let resources = compile(&snapshot, &proxy);
    (snapshot, proxy, resources)
}

fn blamed(list: &[Blamed]) -> Vec<String> {
    list.iter()
        .map(|b| {
            format!(
                "{} {}/{} ({}#{}): {}",
                b.kind,
                b.namespace,
                b.name,
                b.file.as_deref().unwrap_or("-"),
                b.document.map_or("-".to_string(), |d| d.to_string()),
                b.resource
            )
        })
        .collect()
}

#[test]
fn a_listener_that_cannot_bind_names_the_service_and_the_workload() {
    let (snapshot, proxy, resources) = setup();
    let message = "Error adding/updating listener(s) inbound|10.0.0.1|9080: cannot bind '10.0.0.1:9080': Address already in use\n";
    assert_eq!(
        blamed(&nack_sources(
            &snapshot,
            &proxy,
            &resources,
            ResourceType::Listener,
            message
        )),
        [
            "Service shop/reviews (mesh.yaml#0): listener inbound|10.0.0.1|9080",
            "WorkloadEntry shop/reviews-1 (mesh.yaml#2): listener inbound|10.0.0.1|9080",
        ]
    );
}

#[test]
fn a_rejected_virtual_host_names_its_virtual_service_and_not_the_others() {
    let (snapshot, proxy, resources) = setup();
    let routes = RouteConfiguration::decode(
        resources
            .get(ResourceType::Route)
            .get("outbound")
            .unwrap()
            .value(),
    )
    .unwrap();
    let index = routes
        .virtual_hosts
        .iter()
        .position(|h| h.name == "ratings.shop.svc.cluster.local:9080")
        .unwrap();
    // A validation error, which names the place by index only.
    let message = format!(
        "Proto constraint validation failed (RouteConfigurationValidationError.VirtualHosts[{index}]: embedded message failed validation | caused by VirtualHostValidationError.Routes[0]: embedded message failed validation)"
    );
    assert_eq!(
        blamed(&nack_sources(
            &snapshot,
            &proxy,
            &resources,
            ResourceType::Route,
            &message
        )),
        [
            format!(
                "VirtualService shop/ratings-route (mesh.yaml#4): route outbound virtual_hosts[{index}] (ratings.shop.svc.cluster.local:9080)"
            ),
            format!(
                "Service shop/ratings (mesh.yaml#1): route outbound virtual_hosts[{index}] (ratings.shop.svc.cluster.local:9080)"
            ),
        ]
    );
}

#[test]
fn a_rejected_cluster_names_its_service_and_destination_rule() {
    let (snapshot, proxy, resources) = setup();
    let message = "Error adding/updating cluster(s) outbound|9080|v1|ratings.shop.svc.cluster.local: something Envoy did not like";
    assert_eq!(
        blamed(&nack_sources(
            &snapshot,
            &proxy,
            &resources,
            ResourceType::Cluster,
            message
        )),
        [
            "Service shop/ratings (mesh.yaml#1): cluster outbound|9080|v1|ratings.shop.svc.cluster.local",
            "DestinationRule shop/ratings-subsets (mesh.yaml#5): cluster outbound|9080|v1|ratings.shop.svc.cluster.local",
        ]
    );
}

#[test]
fn a_text_that_names_nothing_of_ours_blames_nothing() {
    let (snapshot, proxy, resources) = setup();
    assert!(
        nack_sources(
            &snapshot,
            &proxy,
            &resources,
            ResourceType::Cluster,
            "gRPC config stream closed"
        )
        .is_empty()
    );
}
