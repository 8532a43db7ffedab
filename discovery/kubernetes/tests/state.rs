//! The CA's state shared through a Secret on an API server (the loopback
//! kube-fixture, through the real kube-rs client): of replicas starting at
//! once, one creates it and every other adopts its files.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use discovery_kubernetes::state::{Shared, share};
use kube_fixture::ApiServer;

const FILES: [&str; 2] = ["root-key.pem", "admin-token"];

fn make(dir: &Path, who: &str) -> impl FnOnce() -> Result<(), String> {
    let dir = dir.to_path_buf();
    let who = who.to_string();
    move || {
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        for file in FILES {
            std::fs::write(dir.join(file), format!("{who}'s {file}")).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_starting_at_once_end_with_one_state() {
    let api = ApiServer::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    api.kubeconfig(&kubeconfig, "t").unwrap();
    let client = || discovery_kubernetes::client(Some(&kubeconfig));
    let (a, b, c) = (
        dir.path().join("a"),
        dir.path().join("b"),
        dir.path().join("c"),
    );
    let (ca, cb) = (client().await.unwrap(), client().await.unwrap());
    let (ra, rb) = tokio::join!(
        share(ca, "istio-system", &a, &FILES, make(&a, "a")),
        share(cb, "istio-system", &b, &FILES, make(&b, "b")),
    );
    let mut outcomes = [ra.unwrap(), rb.unwrap()];
    outcomes.sort_by_key(|s| *s == Shared::Adopted);
    assert_eq!(outcomes, [Shared::Created, Shared::Adopted]);
    for file in FILES {
        assert_eq!(
            std::fs::read_to_string(a.join(file)).unwrap(),
            std::fs::read_to_string(b.join(file)).unwrap(),
            "{file}"
        );
    }

    // A replica started later adopts without making anything.
    let later = share(client().await.unwrap(), "istio-system", &c, &FILES, || {
        Err("nothing to make: the Secret exists".to_string())
    })
    .await
    .unwrap();
    assert_eq!(later, Shared::Adopted);
    let key = c.join("root-key.pem");
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        std::fs::read_to_string(a.join("root-key.pem")).unwrap()
    );
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let secret = api
        .get("v1", "Secret", "istio-system", "bowline-ca")
        .unwrap();
    assert!(secret["data"]["root-key.pem"].is_string(), "{secret}");
}
