//! xDS connections have a maximum age: past it the server ends the
//! connection (GOAWAY, then the grace), so that proxies reconnect and
//! spread over the replicas, as istiod's `MaxServerConnectionAge` does.

use std::time::Duration;

use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::envoy::service::discovery::v3::aggregated_discovery_service_client::AggregatedDiscoveryServiceClient;
use pilot_server::serve::{ControlPlane, Registry, ServeConfig};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
/// Only guards against a hang.
const LIMIT: Duration = Duration::from_secs(30);

async fn serve(dir: &std::path::Path, age: Option<(Duration, Duration)>) -> ControlPlane {
    std::fs::write(
        dir.join("mesh.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: reviews, namespace: shop}\nspec:\n  ports: [{name: http, port: 9080}]\n",
    )
    .unwrap();
    ControlPlane::start(&ServeConfig {
        config_dir: Some(dir.to_path_buf()),
        registry: Registry::Files,
        xds_addr: Some("127.0.0.1:0".parse().unwrap()),
        admin_addr: "127.0.0.1:0".parse().unwrap(),
        mesh_config: None,
        admin_token: None,
        admin_read_auth: false,
        xds_max_connection_age: age,
        replicas: Default::default(),
    })
    .await
    .unwrap()
}

/// Opens an ADS stream and reads its first answer; then whether the stream
/// ended before `wait`.
async fn ends_within(control_plane: &ControlPlane, wait: Duration) -> bool {
    let addr = control_plane.xds_addr.unwrap();
    let mut client = AggregatedDiscoveryServiceClient::connect(format!("http://{addr}"))
        .await
        .unwrap();
    let (tx, rx) = mpsc::channel(4);
    tx.send(DiscoveryRequest {
        node: Some(
            pilot_core::proxy::NodeMetadata::new("store", "shop", "10.0.0.7".parse().unwrap())
                .to_node(),
        ),
        type_url: CDS.to_string(),
        ..Default::default()
    })
    .await
    .unwrap();
    let mut responses = client
        .stream_aggregated_resources(ReceiverStream::new(rx))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(responses.message().await.unwrap().unwrap().type_url, CDS);
    let ended = tokio::time::timeout(wait, async {
        loop {
            match responses.message().await {
                Ok(Some(_)) => continue,
                Ok(None) | Err(_) => return,
            }
        }
    })
    .await
    .is_ok();
    drop(tx);
    ended
}

#[tokio::test]
async fn a_connection_past_its_age_is_ended_so_the_proxy_reconnects() {
    let dir = tempfile::tempdir().unwrap();
    let second = Duration::from_secs(1);
    let control_plane = serve(dir.path(), Some((second, second))).await;
    assert!(
        ends_within(&control_plane, LIMIT).await,
        "the stream outlived its connection's age"
    );
    control_plane.stop().await;
}
