//! One SDS stream (state of the world) as a state machine with no I/O:
//! Envoy's requests and new secrets in, responses out.
//!
//! ```text
//! DiscoveryRequest ──► on_request ─┐  stale nonce: ignored · NACK: logged, nothing sent
//! new WorkloadSecret ─► on_secret ─┴─► Option<DiscoveryResponse> (only what Envoy has not got)
//! ```
//!
//! The agent serves one secret: `default`, the workload's certificate and
//! key, which never leave the agent and Envoy. The roots peers are
//! verified against, `ROOTCA`, come from the control plane over ADS, where
//! their ACK can be seen (root rotation waits for it). A request for any
//! other name gets no resource of that name.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::extensions::transport_sockets::tls::v3::Secret;
use envoy_types::pb::envoy::service::discovery::v3::{DiscoveryRequest, DiscoveryResponse};
use prost::Name;

use crate::secret::{WORKLOAD_SECRET, WorkloadSecret};

/// What one stream has asked for and been sent.
#[derive(Debug, Default)]
pub struct SdsStream {
    names: BTreeSet<String>,
    /// The version and nonce of the last response.
    sent: Option<(String, String)>,
    nonces: u64,
}

impl SdsStream {
    pub fn new() -> Self {
        SdsStream::default()
    }

    /// The names this stream subscribes to.
    pub fn names(&self) -> &BTreeSet<String> {
        &self.names
    }

    /// Envoy's request; `current` is the secret held now, if any yet.
    pub fn on_request(
        &mut self,
        request: &DiscoveryRequest,
        current: Option<&WorkloadSecret>,
    ) -> Option<DiscoveryResponse> {
        let DiscoveryRequest {
            version_info: _,
            node: _,
            resource_names,
            resource_locators: _,
            type_url,
            response_nonce,
            error_detail,
        } = request;
        if !type_url.is_empty() && *type_url != Secret::type_url() {
            tracing::warn!(%type_url, "SDS request for another type ignored");
            return None;
        }
        let last_nonce = self.sent.as_ref().map(|(_, n)| n.as_str());
        if !response_nonce.is_empty() && Some(response_nonce.as_str()) != last_nonce {
            // A reply to an older response: a newer one is on its way.
            return None;
        }
        if let Some(status) = error_detail {
            tracing::warn!(nonce = %response_nonce, error = %status.message, "Envoy rejected the secret");
        }
        let names: BTreeSet<String> = resource_names.iter().cloned().collect();
        let changed = names != self.names;
        self.names = names;
        if changed {
            // A new subscription gets an answer even with what it was sent already.
            self.sent = self.sent.take().map(|(_, nonce)| (String::new(), nonce));
        }
        if error_detail.is_some() && !changed {
            return None;
        }
        self.respond(current?)
    }

    /// A new secret: pushed if the stream wants it and has not got it.
    pub fn on_secret(&mut self, current: &WorkloadSecret) -> Option<DiscoveryResponse> {
        self.respond(current)
    }

    fn respond(&mut self, current: &WorkloadSecret) -> Option<DiscoveryResponse> {
        let resources: Vec<_> = self
            .names
            .iter()
            .filter_map(|name| match name.as_str() {
                WORKLOAD_SECRET => Some(current.to_proto(WORKLOAD_SECRET)),
                _ => None,
            })
            .map(envoy_types::util::pack_any)
            .collect();
        if resources.is_empty() {
            return None;
        }
        if self
            .sent
            .as_ref()
            .is_some_and(|(version, _)| *version == current.version)
        {
            return None;
        }
        self.nonces += 1;
        let nonce = self.nonces.to_string();
        self.sent = Some((current.version.clone(), nonce.clone()));
        Some(DiscoveryResponse {
            version_info: current.version.clone(),
            resources,
            type_url: Secret::type_url(),
            nonce,
            ..Default::default()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secret::tests::issued;
    use envoy_types::pb::google::rpc::Status;
    use prost::Message;

    fn secret() -> WorkloadSecret {
        let (chain, key) = issued(1_700_000_000, 3600);
        WorkloadSecret::from_chain(&chain, key).unwrap()
    }

    fn request(names: &[&str], version: &str, nonce: &str) -> DiscoveryRequest {
        DiscoveryRequest {
            version_info: version.into(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            type_url: Secret::type_url(),
            response_nonce: nonce.into(),
            ..Default::default()
        }
    }

    fn decoded(response: &DiscoveryResponse) -> Vec<Secret> {
        response
            .resources
            .iter()
            .map(|any| {
                assert_eq!(any.type_url, Secret::type_url());
                Secret::decode(any.value.as_slice()).unwrap()
            })
            .collect()
    }

    #[test]
    fn first_request_gets_the_secret_and_the_ack_gets_nothing() {
        let s = secret();
        let mut stream = SdsStream::new();
        let r = stream
            .on_request(&request(&["default"], "", ""), Some(&s))
            .unwrap();
        assert_eq!(r.version_info, s.version);
        assert_eq!(r.type_url, Secret::type_url());
        assert_eq!(decoded(&r), [s.to_proto("default")]);
        let ack = request(&["default"], &s.version, &r.nonce);
        assert_eq!(stream.on_request(&ack, Some(&s)), None);
    }

    #[test]
    fn a_request_before_the_first_certificate_is_answered_when_it_comes() {
        let s = secret();
        let mut stream = SdsStream::new();
        assert_eq!(
            stream.on_request(&request(&["default"], "", ""), None),
            None
        );
        let r = stream.on_secret(&s).unwrap();
        assert_eq!(decoded(&r)[0].name, "default");
    }

    #[test]
    fn a_new_certificate_is_pushed_once() {
        let (a, b) = (secret(), secret());
        let mut stream = SdsStream::new();
        let first = stream
            .on_request(&request(&["default"], "", ""), Some(&a))
            .unwrap();
        assert_eq!(stream.on_secret(&a), None, "the same secret again");
        let second = stream.on_secret(&b).unwrap();
        assert_eq!(second.version_info, b.version);
        assert_ne!(second.nonce, first.nonce);
        assert_eq!(stream.on_secret(&b), None);
        // The ACK of the first response arrives late: stale, ignored.
        let late = request(&["default"], &a.version, &first.nonce);
        assert_eq!(stream.on_request(&late, Some(&b)), None);
        let ack = request(&["default"], &b.version, &second.nonce);
        assert_eq!(stream.on_request(&ack, Some(&b)), None);
    }

    #[test]
    fn other_names_get_nothing_from_the_agent() {
        let s = secret();
        let mut stream = SdsStream::new();
        assert_eq!(
            stream.on_request(&request(&["spiffe-bundle"], "", ""), Some(&s)),
            None
        );
        assert_eq!(stream.on_secret(&s), None);
        let r = stream
            .on_request(&request(&["spiffe-bundle", "default"], "", ""), Some(&s))
            .unwrap();
        assert_eq!(decoded(&r).len(), 1);
    }

    #[test]
    fn rootca_comes_from_the_control_plane_not_the_agent() {
        let s = secret();
        let mut stream = SdsStream::new();
        assert_eq!(
            stream.on_request(&request(&["ROOTCA"], "", ""), Some(&s)),
            None
        );
        // Both names on one stream: only the agent's own is answered.
        let r = stream
            .on_request(&request(&["ROOTCA", "default"], "", ""), Some(&s))
            .unwrap();
        let secrets = decoded(&r);
        assert_eq!(secrets, [s.to_proto("default")]);
    }

    #[test]
    fn a_nack_is_not_answered_with_the_same_secret() {
        let s = secret();
        let mut stream = SdsStream::new();
        let r = stream
            .on_request(&request(&["default"], "", ""), Some(&s))
            .unwrap();
        let mut nack = request(&["default"], "", &r.nonce);
        nack.error_detail = Some(Status {
            code: 3,
            message: "bad key".into(),
            details: vec![],
        });
        assert_eq!(stream.on_request(&nack, Some(&s)), None);
        // The next certificate is still pushed.
        assert!(stream.on_secret(&secret()).is_some());
    }

    #[test]
    fn a_resubscription_is_answered_again() {
        let s = secret();
        let mut stream = SdsStream::new();
        let r = stream
            .on_request(&request(&["default"], "", ""), Some(&s))
            .unwrap();
        assert_eq!(
            stream.on_request(&request(&[], &s.version, &r.nonce), Some(&s)),
            None
        );
        assert!(stream.names().is_empty());
        let again = stream
            .on_request(&request(&["default"], &s.version, &r.nonce), Some(&s))
            .unwrap();
        assert_eq!(again.version_info, s.version);
    }

    #[test]
    fn another_type_is_ignored() {
        let s = secret();
        let mut stream = SdsStream::new();
        let mut r = request(&["default"], "", "");
        r.type_url = "type.googleapis.com/envoy.config.cluster.v3.Cluster".into();
        assert_eq!(stream.on_request(&r, Some(&s)), None);
    }
}
