//! Clusters: one per service port (`outbound|PORT||HOST`), one per subset of a
//! DestinationRule (`outbound|PORT|SUBSET|HOST`), and one per inbound port
//! that leads to the local application (`inbound|PORT||`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use discovery::model::Resolution;
use discovery::{Port, ServiceModel};
use envoy_types::pb::envoy::config::cluster::v3::{
    Cluster,
    cluster::{ClusterDiscoveryType, DiscoveryType, DnsLookupFamily, EdsClusterConfig, LbPolicy},
};
use envoy_types::pb::envoy::config::endpoint::v3::ClusterLoadAssignment;
use policy::networking::DestinationRule;

use super::endpoint;
use super::names;
use super::proto;

/// Istio's default connect timeout.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What an outbound cluster needs: its service port and, for a subset, the
/// labels its endpoints must carry.
#[derive(Debug)]
pub(crate) struct OutboundCluster<'a> {
    pub(crate) name: String,
    pub(crate) service: &'a ServiceModel,
    pub(crate) port: &'a Port,
    pub(crate) subset_labels: Option<&'a BTreeMap<String, String>>,
}

/// Every outbound cluster of a service: the whole service per port, then each
/// subset of its DestinationRule per port. Passthrough services get none.
pub(crate) fn outbound_clusters<'a>(
    service: &'a ServiceModel,
    rule: Option<&'a DestinationRule>,
) -> Vec<OutboundCluster<'a>> {
    if service.resolution == Resolution::Passthrough {
        return Vec::new();
    }
    let mut clusters = Vec::new();
    for port in &service.ports {
        clusters.push(OutboundCluster {
            name: names::outbound_cluster(port.number, None, &service.hostname),
            service,
            port,
            subset_labels: None,
        });
        for subset in rule.map(|r| r.spec.subsets.as_slice()).unwrap_or_default() {
            clusters.push(OutboundCluster {
                name: names::outbound_cluster(port.number, Some(&subset.name), &service.hostname),
                service,
                port,
                subset_labels: Some(&subset.labels),
            });
        }
    }
    clusters
}

impl OutboundCluster<'_> {
    /// Whether the cluster's endpoints come over EDS (otherwise they are inline).
    pub(crate) fn uses_eds(&self) -> bool {
        self.service.resolution == Resolution::Static
    }

    pub(crate) fn load_assignment(&self) -> ClusterLoadAssignment {
        endpoint::load_assignment(&self.name, self.service, self.port, self.subset_labels)
    }

    pub(crate) fn to_proto(&self) -> Cluster {
        let mut cluster = Cluster {
            name: self.name.clone(),
            connect_timeout: Some(proto::duration(CONNECT_TIMEOUT)),
            lb_policy: LbPolicy::LeastRequest as i32,
            ..Default::default()
        };
        if self.uses_eds() {
            cluster.cluster_discovery_type =
                Some(ClusterDiscoveryType::Type(DiscoveryType::Eds as i32));
            cluster.eds_cluster_config = Some(EdsClusterConfig {
                eds_config: Some(proto::ads()),
                service_name: self.name.clone(),
            });
        } else {
            cluster.cluster_discovery_type =
                Some(ClusterDiscoveryType::Type(DiscoveryType::StrictDns as i32));
            cluster.dns_lookup_family = DnsLookupFamily::V4Preferred as i32;
            cluster.load_assignment = Some(self.load_assignment());
        }
        if matches!(
            self.port.protocol,
            discovery::Protocol::Http2 | discovery::Protocol::Grpc
        ) {
            cluster.typed_extension_protocol_options = [proto::http2_upstream()].into();
        }
        cluster
    }
}

/// The cluster behind an inbound listener: the application's own address.
pub(crate) fn inbound(port: u16, app: SocketAddr, http2: bool) -> Cluster {
    let name = names::inbound_cluster(port);
    let mut cluster = Cluster {
        name: name.clone(),
        connect_timeout: Some(proto::duration(CONNECT_TIMEOUT)),
        cluster_discovery_type: Some(ClusterDiscoveryType::Type(DiscoveryType::Static as i32)),
        load_assignment: Some(endpoint::single(&name, app)),
        ..Default::default()
    };
    if http2 {
        cluster.typed_extension_protocol_options = [proto::http2_upstream()].into();
    }
    cluster
}
