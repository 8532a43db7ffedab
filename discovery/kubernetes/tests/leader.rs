//! Two replicas competing for the Lease on an API server (the loopback
//! kube-fixture, through the real kube-rs client): one leads; when it
//! stops, the other takes over, and the Lease records the transition.

use std::path::Path;
use std::time::Duration;

use discovery_kubernetes::{LeaderElector, LeaseConfig};
use kube_fixture::ApiServer;
use tokio::sync::watch;

/// Only guards against a hang.
const LIMIT: Duration = Duration::from_secs(30);

fn config(identity: &str) -> LeaseConfig {
    LeaseConfig {
        duration: Duration::from_millis(900),
        retry: Duration::from_millis(100),
        ..LeaseConfig::new("istio-system", identity)
    }
}

async fn until(rx: &mut watch::Receiver<bool>, leads: bool) {
    tokio::time::timeout(LIMIT, rx.wait_for(|l| *l == leads))
        .await
        .expect("before the limit")
        .expect("the elector runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_replica_leads_and_the_other_takes_over_when_it_stops() {
    let api = ApiServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.kubeconfig(&kubeconfig, "t").unwrap();
    let client = || discovery_kubernetes::client(Some(Path::new(&kubeconfig)));

    let a = LeaderElector::start(client().await.unwrap(), config("replica-a"));
    let mut a_leads = a.leading();
    until(&mut a_leads, true).await;
    let b = LeaderElector::start(client().await.unwrap(), config("replica-b"));
    let mut b_leads = b.leading();
    // B sees A renewing: it follows, for as many rounds as it takes to be
    // sure (A still leading after B has looked several times).
    let lease = || {
        api.get(
            "coordination.k8s.io/v1",
            "Lease",
            "istio-system",
            "bowline-leader",
        )
    };
    let renewed = |l: &serde_json::Value| l["spec"]["renewTime"].clone();
    let first = renewed(&lease().unwrap());
    tokio::time::timeout(LIMIT, async {
        while lease().map(|l| renewed(&l)) == Some(first.clone()) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("A renews");
    assert!(*a_leads.borrow() && !*b_leads.borrow());
    assert_eq!(lease().unwrap()["spec"]["holderIdentity"], "replica-a");

    drop(a);
    until(&mut b_leads, true).await;
    let lease = lease().unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "replica-b");
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
}
