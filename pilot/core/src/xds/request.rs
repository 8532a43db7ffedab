//! A state-of-the-world request as read off the wire.
//!
//! Envoy repeats two large things in every `DiscoveryRequest` of a stream:
//! its node (with all its metadata), and, for EDS, the names of every
//! cluster it holds (thousands in a large mesh), in each ACK as well as in
//! the request. Decoded as prost's `DiscoveryRequest`, each request costs a
//! `String` per name and a whole `Node`; a server with thousands of proxies
//! spends much of a sync doing that, only to find the names are the ones it
//! already knows. [`SotwRequest`] reads the same bytes keeping the node and
//! the names as slices of the request's buffer ([`Bytes`], no copy), and
//! [`RequestNames`] compares them with a subscription by count and an
//! order-independent hash, making `String`s only when they differ.

use std::collections::BTreeSet;
use std::sync::OnceLock;

use bytes::Bytes;
use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DiscoveryRequest;
use envoy_types::pb::google::rpc::Status as RpcStatus;
use prost::Message;
use tracing::warn;

use crate::resources::{ResourceSet, name_hash};

/// `envoy.service.discovery.v3.DiscoveryRequest`, with `node` kept encoded
/// and the names as byte slices; field numbers as in the proto.
/// `resource_locators` (7) is skipped as an unknown field: Bowline serves
/// no dynamic parameters.
#[derive(Clone, PartialEq, Message)]
pub struct SotwRequest {
    #[prost(string, tag = "1")]
    pub version_info: String,
    /// The encoded `Node`; empty when the request has none.
    #[prost(bytes = "bytes", tag = "2")]
    pub node: Bytes,
    /// `resource_names`: strings on the wire, checked as UTF-8 only when a
    /// name is made a `String`.
    #[prost(bytes = "bytes", repeated, tag = "3")]
    pub resource_names: Vec<Bytes>,
    #[prost(string, tag = "4")]
    pub type_url: String,
    #[prost(string, tag = "5")]
    pub response_nonce: String,
    #[prost(message, optional, tag = "6")]
    pub error_detail: Option<RpcStatus>,
}

impl SotwRequest {
    /// The request's node, decoded; `None` when it has none (or one that
    /// does not decode, which is as good as none).
    pub fn node(&self) -> Option<Node> {
        if self.node.is_empty() {
            return None;
        }
        Node::decode(self.node.clone()).ok()
    }
}

impl From<DiscoveryRequest> for SotwRequest {
    fn from(req: DiscoveryRequest) -> Self {
        let DiscoveryRequest {
            version_info,
            node,
            resource_names,
            resource_locators: _,
            type_url,
            response_nonce,
            error_detail,
        } = req;
        SotwRequest {
            version_info,
            node: node
                .map(|n| Bytes::from(n.encode_to_vec()))
                .unwrap_or_default(),
            resource_names: resource_names.into_iter().map(Bytes::from).collect(),
            type_url,
            response_nonce,
            error_detail,
        }
    }
}

/// The names of one request, as sent (in the client's order, repeats
/// included).
#[derive(Debug, Default)]
pub struct RequestNames {
    names: Vec<Bytes>,
    sum: OnceLock<u128>,
}

impl RequestNames {
    pub fn new(names: Vec<Bytes>) -> Self {
        RequestNames {
            names,
            sum: OnceLock::new(),
        }
    }

    /// How many names the request lists, repeats counted.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    pub fn contains(&self, name: &str) -> bool {
        self.names.iter().any(|n| n.as_ref() == name.as_bytes())
    }

    /// The list without `name`.
    pub fn without(self, name: &str) -> RequestNames {
        RequestNames::new(
            self.names
                .into_iter()
                .filter(|n| n.as_ref() != name.as_bytes())
                .collect(),
        )
    }

    /// [`crate::resources::sum_names`] of the list.
    fn sum(&self) -> u128 {
        *self.sum.get_or_init(|| {
            self.names
                .iter()
                .fold(0u128, |sum, n| sum.wrapping_add(name_hash(n)))
        })
    }

    /// Whether these are exactly the names of `set`: one per resource,
    /// in any order. Decided by the count and the hash of the names,
    /// without a `String` or a lookup per name.
    pub fn are_names_of(&self, set: &ResourceSet) -> bool {
        self.names.len() == set.len() && self.sum() == set.name_sum()
    }

    /// Whether the list names exactly `names` (a set of distinct names
    /// whose hash sum is `sum`).
    pub fn are(&self, names: &BTreeSet<String>, sum: u128) -> bool {
        match self.names.len().cmp(&names.len()) {
            // Fewer entries than names: something is missing.
            std::cmp::Ordering::Less => false,
            // As many: equal only if no name repeats, so the sums decide.
            std::cmp::Ordering::Equal => self.sum() == sum,
            // Repeats: compare as sets.
            std::cmp::Ordering::Greater => self.to_set() == *names,
        }
    }

    /// The distinct names, as `String`s. A name that is not UTF-8 (a
    /// protobuf `string` must be) is left out with a warning.
    pub fn to_set(&self) -> BTreeSet<String> {
        self.names
            .iter()
            .filter_map(|n| match std::str::from_utf8(n) {
                Ok(name) => Some(name.to_string()),
                Err(_) => {
                    warn!(name = ?n, "a resource name that is not UTF-8, ignored");
                    None
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::envoy::config::core::v3::Locality;

    use super::*;

    #[test]
    fn a_request_reads_the_bytes_prost_writes_for_a_discovery_request() {
        let prost = DiscoveryRequest {
            version_info: "v1".into(),
            node: Some(Node {
                id: "sidecar~127.0.1.1~a.ns~ns.svc.cluster.local".into(),
                locality: Some(Locality {
                    region: "r".into(),
                    ..Locality::default()
                }),
                ..Node::default()
            }),
            resource_names: vec!["b".into(), "a".into(), "b".into(), String::new()],
            type_url: "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment".into(),
            response_nonce: "7".into(),
            error_detail: Some(RpcStatus {
                code: 13,
                message: "rejected".into(),
                details: Vec::new(),
            }),
            ..DiscoveryRequest::default()
        };
        let wire = Bytes::from(prost.encode_to_vec());
        let read = SotwRequest::decode(wire.clone()).unwrap();
        assert_eq!(read, SotwRequest::from(prost.clone()));
        assert_eq!(read.node(), prost.node);
        // The names are the request's own bytes, not copies.
        let range = wire.as_ptr_range();
        assert!(
            read.resource_names[..3]
                .iter()
                .all(|n| range.contains(&n.as_ptr()))
        );
        let names = RequestNames::new(read.resource_names);
        assert_eq!(names.len(), 4, "repeats and the empty name counted");
        assert_eq!(
            names.to_set().into_iter().collect::<Vec<_>>(),
            ["", "a", "b"]
        );
        // No node: none, as prost's `None`.
        let bare =
            SotwRequest::decode(Bytes::from(DiscoveryRequest::default().encode_to_vec())).unwrap();
        assert_eq!(bare.node(), None);
    }

    #[test]
    fn a_name_that_is_not_utf8_is_left_out() {
        let names = RequestNames::new(vec![Bytes::from_static(b"a"), Bytes::from_static(b"\xff")]);
        assert_eq!(names.to_set().into_iter().collect::<Vec<_>>(), ["a"]);
    }
}
