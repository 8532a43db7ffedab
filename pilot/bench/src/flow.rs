//! The ADS request flow of one simulated Envoy sidecar, as a state machine
//! with no I/O: given a response, the requests to send.
//!
//! ```text
//! open_stream ──► CDS (wildcard)
//! CDS response ─► EDS for the EDS clusters' names (if they changed), then ACK CDS
//! EDS response ─► ACK; once every EDS name has arrived: LDS (wildcard), once
//! LDS response ─► RDS for the HCMs' route names (if they changed), then ACK LDS
//! RDS response ─► ACK
//! ```
//!
//! This is Envoy's order: the cluster manager initializes (CDS, then the
//! endpoints of every EDS cluster) before listeners are requested, and the
//! requests a response causes go out before its ACK. After initialization a
//! CDS update that adds EDS clusters is ACKed only once their endpoints
//! arrive, as Envoy holds CDS while new clusters warm. The node goes in the
//! first request of a stream only (`set_node_on_first_message_only`, which
//! Bowline's bootstrap sets).
//!
//! On a new stream after a failure every subscribed type is requested again:
//! in state of the world with the last accepted version and no nonce, in
//! Delta with the subscribed names and `initial_resource_versions` of what
//! the proxy holds. A response the harness cannot decode is NACKed with the
//! last accepted version and the error, and not applied.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::{DeltaDiscoveryRequest, DiscoveryRequest};
use envoy_types::pb::google::rpc::Status as RpcStatus;
use serde::Serialize;

use crate::facts::{Facts, Kind, XdsType};

/// The two variants of the xDS protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// State of the world (`StreamAggregatedResources`).
    Sotw,
    /// Incremental (`DeltaAggregatedResources`).
    Delta,
}

/// gRPC status code INTERNAL, which Envoy puts in a NACK's error detail.
const NACK_CODE: i32 = 13;

/// One resource of a response: its facts and, in Delta, its version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Item {
    pub facts: Arc<Facts>,
    pub version: String,
}

/// A response, decoded to what the flow needs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Incoming {
    pub ty: Option<XdsType>,
    /// `version_info` (SotW) or `system_version_info` (Delta).
    pub version: String,
    pub nonce: String,
    pub resources: Vec<Item>,
    /// Delta `removed_resources`.
    pub removed: Vec<String>,
    /// Why the response could not be used; it is NACKed with this text.
    pub error: Option<String>,
}

/// A request to send, of the stream's variant.
#[derive(Clone, Debug, PartialEq)]
pub enum Outgoing {
    Sotw(DiscoveryRequest),
    Delta(DeltaDiscoveryRequest),
}

impl Outgoing {
    pub fn type_url(&self) -> &str {
        match self {
            Outgoing::Sotw(r) => &r.type_url,
            Outgoing::Delta(r) => &r.type_url,
        }
    }

    pub fn nonce(&self) -> &str {
        match self {
            Outgoing::Sotw(r) => &r.response_nonce,
            Outgoing::Delta(r) => &r.response_nonce,
        }
    }

    pub fn is_nack(&self) -> bool {
        match self {
            Outgoing::Sotw(r) => r.error_detail.is_some(),
            Outgoing::Delta(r) => r.error_detail.is_some(),
        }
    }

    fn set_node(&mut self, node: Node) {
        match self {
            Outgoing::Sotw(r) => r.node = Some(node),
            Outgoing::Delta(r) => r.node = Some(node),
        }
    }
}

#[derive(Clone, Debug, Default)]
struct TypeState {
    /// Requested at least once (on any stream).
    subscribed: bool,
    /// The names asked for (EDS, RDS); empty for the wildcard types.
    names: BTreeSet<String>,
    /// What the proxy holds, by name.
    held: BTreeMap<Arc<str>, Item>,
    /// Subscribed names the server said it does not have (Delta removals).
    absent: BTreeSet<String>,
    /// The last accepted `version_info` (SotW).
    version: String,
    /// The last response nonce on the current stream.
    nonce: String,
    /// Whether a response arrived on the current stream.
    answered: bool,
}

impl TypeState {
    /// Every subscribed name has arrived (or is known to be absent).
    fn complete(&self) -> bool {
        self.names
            .iter()
            .all(|n| self.held.contains_key(n.as_str()) || self.absent.contains(n))
    }
}

/// One simulated sidecar's side of an ADS stream.
#[derive(Clone, Debug)]
pub struct Flow {
    mode: Mode,
    node: Node,
    node_sent: bool,
    types: [TypeState; 4],
    /// The cluster manager has initialized and LDS was requested.
    lds_started: bool,
    /// A CDS ACK waiting for new clusters' endpoints.
    held_cds_ack: Option<Outgoing>,
    streams: u64,
}

impl Flow {
    pub fn new(mode: Mode, node: Node) -> Self {
        Flow {
            mode,
            node,
            node_sent: false,
            types: Default::default(),
            lds_started: false,
            held_cds_ack: None,
            streams: 0,
        }
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Streams opened so far.
    pub fn streams(&self) -> u64 {
        self.streams
    }

    /// The requests that open a (new) stream.
    pub fn open_stream(&mut self) -> Vec<Outgoing> {
        self.streams += 1;
        self.node_sent = false;
        self.held_cds_ack = None;
        for t in &mut self.types {
            t.nonce.clear();
            t.answered = false;
        }
        if !self.types[XdsType::Cluster.index()].subscribed {
            let req = self.subscribe(XdsType::Cluster, BTreeSet::new());
            return vec![req];
        }
        let subscribed: Vec<XdsType> = XdsType::ALL
            .into_iter()
            .filter(|ty| self.types[ty.index()].subscribed)
            .collect();
        subscribed.into_iter().map(|ty| self.resume(ty)).collect()
    }

    /// Applies a response; returns the requests it causes, its ACK (or NACK) last.
    pub fn on_response(&mut self, r: Incoming) -> Vec<Outgoing> {
        let Some(ty) = r.ty else {
            // An unknown type: nothing subscribed to it, nothing to answer.
            return Vec::new();
        };
        if let Some(error) = r.error {
            let state = &mut self.types[ty.index()];
            state.nonce = r.nonce;
            state.answered = true;
            let nack = self.nack(ty, error);
            return vec![nack];
        }
        self.apply(ty, r.version, r.nonce, r.resources, r.removed);

        let mut out = Vec::new();
        match ty {
            XdsType::Cluster => {
                let eds = self.wanted_names(XdsType::Cluster);
                if self.wants_update(XdsType::Endpoint, &eds) {
                    out.push(self.subscribe(XdsType::Endpoint, eds));
                }
                let ack = self.ack(XdsType::Cluster);
                if self.lds_started && !self.types[XdsType::Endpoint.index()].complete() {
                    self.held_cds_ack = Some(ack);
                } else {
                    out.push(ack);
                }
            }
            XdsType::Listener => {
                let rds = self.wanted_names(XdsType::Listener);
                if self.wants_update(XdsType::Route, &rds) {
                    out.push(self.subscribe(XdsType::Route, rds));
                }
                out.push(self.ack(XdsType::Listener));
            }
            XdsType::Endpoint => {
                out.push(self.ack(XdsType::Endpoint));
                if self.types[XdsType::Endpoint.index()].complete()
                    && let Some(held) = self.held_cds_ack.take()
                {
                    out.push(held);
                }
            }
            XdsType::Route => out.push(self.ack(XdsType::Route)),
        }
        let cds = &self.types[XdsType::Cluster.index()];
        if !self.lds_started && cds.answered && self.types[XdsType::Endpoint.index()].complete() {
            self.lds_started = true;
            out.push(self.subscribe(XdsType::Listener, BTreeSet::new()));
        }
        out
    }

    /// Holds a complete config received on the current stream: CDS and LDS
    /// answered, and every EDS and RDS name they reference present.
    pub fn synced(&self) -> bool {
        let [cds, eds, lds, rds] = &self.types;
        let named_ok = |t: &TypeState| t.complete() && (t.names.is_empty() || t.answered);
        cds.answered && lds.answered && named_ok(eds) && named_ok(rds)
    }

    /// The resources of `ty` the proxy holds.
    pub fn held(&self, ty: XdsType) -> impl Iterator<Item = &Facts> {
        self.types[ty.index()]
            .held
            .values()
            .map(|i| i.facts.as_ref())
    }

    /// How many resources of `ty` the proxy holds.
    pub fn held_count(&self, ty: XdsType) -> usize {
        self.types[ty.index()].held.len()
    }

    /// Whether the proxy holds a cluster of `fqdn` (Istio-style cluster
    /// names end in `|FQDN`).
    pub fn holds_cluster_for(&self, fqdn: &str) -> bool {
        self.held_services().contains(fqdn)
    }

    /// The FQDNs of the services the proxy holds clusters of (the part of
    /// each cluster name after its last `|`).
    pub fn held_services(&self) -> std::collections::HashSet<&str> {
        self.types[XdsType::Cluster.index()]
            .held
            .keys()
            .filter_map(|name| name.rsplit_once('|').map(|(_, fqdn)| fqdn))
            .collect()
    }

    fn apply(
        &mut self,
        ty: XdsType,
        version: String,
        nonce: String,
        resources: Vec<Item>,
        removed: Vec<String>,
    ) {
        let mode = self.mode;
        let state = &mut self.types[ty.index()];
        state.nonce = nonce;
        state.answered = true;
        match mode {
            Mode::Sotw => {
                state.version = version;
                if ty.is_wildcard() {
                    // The whole set: what is not in it is gone.
                    state.held.clear();
                }
                for item in resources {
                    let name = item.facts.name.clone();
                    if ty.is_wildcard() || state.names.contains(&*name) {
                        state.held.insert(name, item);
                    }
                }
            }
            Mode::Delta => {
                for name in removed {
                    state.held.remove(name.as_str());
                    if state.names.contains(&name) {
                        state.absent.insert(name);
                    }
                }
                for item in resources {
                    let name = item.facts.name.clone();
                    state.absent.remove(&*name);
                    state.held.insert(name, item);
                }
            }
        }
    }

    /// The EDS names the held clusters need, or the RDS names the held listeners need.
    fn wanted_names(&self, from: XdsType) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for facts in self.held(from) {
            match &facts.kind {
                Kind::Cluster { eds: Some(name) } => {
                    names.insert(name.clone());
                }
                Kind::Listener { routes } => names.extend(routes.iter().cloned()),
                _ => {}
            }
        }
        names
    }

    fn wants_update(&self, ty: XdsType, names: &BTreeSet<String>) -> bool {
        let state = &self.types[ty.index()];
        if state.subscribed {
            state.names != *names
        } else {
            // Envoy subscribes once there is something to ask for.
            !names.is_empty()
        }
    }

    /// A subscription (or a change of it) for `ty`.
    fn subscribe(&mut self, ty: XdsType, names: BTreeSet<String>) -> Outgoing {
        let mode = self.mode;
        let state = &mut self.types[ty.index()];
        let req = match mode {
            Mode::Sotw => {
                state.names = names;
                Outgoing::Sotw(DiscoveryRequest {
                    version_info: state.version.clone(),
                    resource_names: state.names.iter().cloned().collect(),
                    type_url: ty.type_url().to_string(),
                    response_nonce: state.nonce.clone(),
                    ..Default::default()
                })
            }
            Mode::Delta => {
                let added: Vec<String> = names.difference(&state.names).cloned().collect();
                let dropped: Vec<String> = state.names.difference(&names).cloned().collect();
                for name in &dropped {
                    state.held.remove(name.as_str());
                    state.absent.remove(name);
                }
                state.names = names;
                Outgoing::Delta(DeltaDiscoveryRequest {
                    type_url: ty.type_url().to_string(),
                    resource_names_subscribe: added,
                    resource_names_unsubscribe: dropped,
                    ..Default::default()
                })
            }
        };
        state.subscribed = true;
        self.with_node(req)
    }

    /// The request that re-establishes `ty` on a new stream.
    fn resume(&mut self, ty: XdsType) -> Outgoing {
        let state = &self.types[ty.index()];
        let req = match self.mode {
            Mode::Sotw => Outgoing::Sotw(DiscoveryRequest {
                version_info: state.version.clone(),
                resource_names: state.names.iter().cloned().collect(),
                type_url: ty.type_url().to_string(),
                ..Default::default()
            }),
            Mode::Delta => Outgoing::Delta(DeltaDiscoveryRequest {
                type_url: ty.type_url().to_string(),
                resource_names_subscribe: state.names.iter().cloned().collect(),
                initial_resource_versions: state
                    .held
                    .iter()
                    .map(|(name, item)| (name.to_string(), item.version.clone()))
                    .collect(),
                ..Default::default()
            }),
        };
        self.with_node(req)
    }

    fn ack(&mut self, ty: XdsType) -> Outgoing {
        let state = &self.types[ty.index()];
        let req = match self.mode {
            Mode::Sotw => Outgoing::Sotw(DiscoveryRequest {
                version_info: state.version.clone(),
                resource_names: state.names.iter().cloned().collect(),
                type_url: ty.type_url().to_string(),
                response_nonce: state.nonce.clone(),
                ..Default::default()
            }),
            Mode::Delta => Outgoing::Delta(DeltaDiscoveryRequest {
                type_url: ty.type_url().to_string(),
                response_nonce: state.nonce.clone(),
                ..Default::default()
            }),
        };
        self.with_node(req)
    }

    fn nack(&mut self, ty: XdsType, error: String) -> Outgoing {
        let status = Some(RpcStatus {
            code: NACK_CODE,
            message: error,
            details: Vec::new(),
        });
        let req = match self.ack(ty) {
            Outgoing::Sotw(mut r) => {
                r.error_detail = status;
                Outgoing::Sotw(r)
            }
            Outgoing::Delta(mut r) => {
                r.error_detail = status;
                Outgoing::Delta(r)
            }
        };
        // `ack` already attached the node if this is the stream's first request.
        req
    }

    fn with_node(&mut self, mut req: Outgoing) -> Outgoing {
        if !self.node_sent {
            self.node_sent = true;
            req.set_node(self.node.clone());
        }
        req
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::tests::{any, cla, eds_cluster, listener, routes};
    use crate::facts::{FactCache, decode};
    use prost::Message;

    const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";
    const LDS: &str = "type.googleapis.com/envoy.config.listener.v3.Listener";
    const RDS: &str = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration";

    fn node() -> Node {
        Node {
            id: "sidecar~127.64.0.1~svc0-0.ns0~ns0.svc.cluster.local".into(),
            ..Default::default()
        }
    }

    fn item<M: Message>(ty: XdsType, m: &M, version: &str) -> Item {
        Item {
            facts: Arc::new(decode(ty, &any(ty, m)).unwrap()),
            version: version.into(),
        }
    }

    fn response(ty: XdsType, version: &str, nonce: &str, resources: Vec<Item>) -> Incoming {
        Incoming {
            ty: Some(ty),
            version: version.into(),
            nonce: nonce.into(),
            resources,
            ..Default::default()
        }
    }

    fn sotw(o: &Outgoing) -> &DiscoveryRequest {
        match o {
            Outgoing::Sotw(r) => r,
            Outgoing::Delta(_) => panic!("a delta request on a sotw flow"),
        }
    }

    fn delta(o: &Outgoing) -> &DeltaDiscoveryRequest {
        match o {
            Outgoing::Delta(r) => r,
            Outgoing::Sotw(_) => panic!("a sotw request on a delta flow"),
        }
    }

    fn clusters(names: &[&str]) -> Vec<Item> {
        names
            .iter()
            .map(|n| item(XdsType::Cluster, &eds_cluster(n), &format!("v-{n}")))
            .collect()
    }

    #[test]
    fn sotw_follows_envoys_order_to_a_synced_config() {
        let mut f = Flow::new(Mode::Sotw, node());
        let open = f.open_stream();
        assert_eq!(open.len(), 1);
        let cds = sotw(&open[0]);
        assert_eq!(cds.type_url, CDS);
        assert!(cds.resource_names.is_empty() && cds.response_nonce.is_empty());
        assert_eq!(cds.node.as_ref().unwrap().id, node().id);

        let out = f.on_response(response(
            XdsType::Cluster,
            "c1",
            "n1",
            clusters(&["a", "b"]),
        ));
        assert_eq!(out.len(), 2);
        let (eds, ack) = (sotw(&out[0]), sotw(&out[1]));
        assert_eq!(eds.type_url, EDS);
        assert_eq!(eds.resource_names, ["a", "b"]);
        assert!(
            eds.node.is_none(),
            "the node goes in the first request only"
        );
        assert_eq!(
            (
                ack.type_url.as_str(),
                ack.version_info.as_str(),
                ack.response_nonce.as_str()
            ),
            (CDS, "c1", "n1")
        );
        assert!(!f.synced());

        // Only once every EDS name arrived is LDS requested.
        let out = f.on_response(response(
            XdsType::Endpoint,
            "e1",
            "n2",
            vec![item(XdsType::Endpoint, &cla("a", &["127.64.0.1"]), "")],
        ));
        assert_eq!(out.len(), 1);
        assert_eq!(sotw(&out[0]).resource_names, ["a", "b"]);
        let out = f.on_response(response(
            XdsType::Endpoint,
            "e2",
            "n3",
            vec![
                item(XdsType::Endpoint, &cla("a", &["127.64.0.1"]), ""),
                item(XdsType::Endpoint, &cla("b", &["127.64.0.2"]), ""),
            ],
        ));
        assert_eq!(out.len(), 2);
        assert_eq!(
            (
                sotw(&out[0]).type_url.as_str(),
                sotw(&out[0]).response_nonce.as_str()
            ),
            (EDS, "n3")
        );
        let lds = sotw(&out[1]);
        assert_eq!(lds.type_url, LDS);
        assert!(lds.resource_names.is_empty() && lds.response_nonce.is_empty());

        let out = f.on_response(response(
            XdsType::Listener,
            "l1",
            "n4",
            vec![item(XdsType::Listener, &listener("out", "outbound"), "")],
        ));
        assert_eq!(out.len(), 2);
        assert_eq!(sotw(&out[0]).type_url, RDS);
        assert_eq!(sotw(&out[0]).resource_names, ["outbound"]);
        assert_eq!(sotw(&out[1]).version_info, "l1");
        assert!(!f.synced());

        let out = f.on_response(response(
            XdsType::Route,
            "r1",
            "n5",
            vec![item(XdsType::Route, &routes("outbound", "svc0-r0"), "")],
        ));
        assert_eq!(out.len(), 1);
        assert_eq!(
            (
                sotw(&out[0]).version_info.as_str(),
                sotw(&out[0]).response_nonce.as_str()
            ),
            ("r1", "n5")
        );
        assert_eq!(sotw(&out[0]).resource_names, ["outbound"]);
        assert!(f.synced());
    }

    fn synced_sotw() -> Flow {
        let mut f = Flow::new(Mode::Sotw, node());
        f.open_stream();
        f.on_response(response(XdsType::Cluster, "c1", "n1", clusters(&["a"])));
        f.on_response(response(
            XdsType::Endpoint,
            "e1",
            "n2",
            vec![item(XdsType::Endpoint, &cla("a", &["127.64.0.1"]), "")],
        ));
        f.on_response(response(
            XdsType::Listener,
            "l1",
            "n3",
            vec![item(XdsType::Listener, &listener("out", "outbound"), "")],
        ));
        f.on_response(response(
            XdsType::Route,
            "r1",
            "n4",
            vec![item(XdsType::Route, &routes("outbound", "m"), "")],
        ));
        assert!(f.synced());
        f
    }

    #[test]
    fn sotw_push_of_unchanged_names_is_only_acked() {
        let mut f = synced_sotw();
        let out = f.on_response(response(XdsType::Cluster, "c2", "n5", clusters(&["a"])));
        assert_eq!(out.len(), 1);
        assert_eq!(
            (
                sotw(&out[0]).type_url.as_str(),
                sotw(&out[0]).version_info.as_str()
            ),
            (CDS, "c2")
        );
        let out = f.on_response(response(
            XdsType::Route,
            "r2",
            "n6",
            vec![item(XdsType::Route, &routes("outbound", "m2"), "")],
        ));
        assert_eq!(sotw(&out[0]).version_info, "r2");
        assert!(f.synced());
    }

    #[test]
    fn sotw_new_cluster_after_init_holds_the_cds_ack_until_it_warms() {
        let mut f = synced_sotw();
        let out = f.on_response(response(
            XdsType::Cluster,
            "c2",
            "n5",
            clusters(&["a", "b"]),
        ));
        assert_eq!(out.len(), 1, "the EDS request goes out, the CDS ACK waits");
        let eds = sotw(&out[0]);
        assert_eq!(eds.resource_names, ["a", "b"]);
        assert_eq!(
            (eds.version_info.as_str(), eds.response_nonce.as_str()),
            ("e1", "n2")
        );
        assert!(!f.synced());
        let out = f.on_response(response(
            XdsType::Endpoint,
            "e2",
            "n6",
            vec![
                item(XdsType::Endpoint, &cla("a", &["127.64.0.1"]), ""),
                item(XdsType::Endpoint, &cla("b", &["127.64.0.2"]), ""),
            ],
        ));
        assert_eq!(out.len(), 2);
        assert_eq!(sotw(&out[0]).type_url, EDS);
        assert_eq!(
            (
                sotw(&out[1]).type_url.as_str(),
                sotw(&out[1]).version_info.as_str(),
                sotw(&out[1]).response_nonce.as_str()
            ),
            (CDS, "c2", "n5")
        );
        assert!(f.synced());
    }

    #[test]
    fn sotw_removed_cluster_narrows_eds() {
        let mut f = Flow::new(Mode::Sotw, node());
        f.open_stream();
        f.on_response(response(
            XdsType::Cluster,
            "c1",
            "n1",
            clusters(&["a", "b"]),
        ));
        let out = f.on_response(response(XdsType::Cluster, "c2", "n2", clusters(&["b"])));
        assert_eq!(sotw(&out[0]).resource_names, ["b"]);
        assert_eq!(f.held_count(XdsType::Cluster), 1);
    }

    #[test]
    fn sotw_reconnect_requests_every_type_with_its_version_and_no_nonce() {
        let mut f = synced_sotw();
        let out = f.open_stream();
        let got: Vec<(&str, &str, &str, Vec<String>)> = out
            .iter()
            .map(sotw)
            .map(|r| {
                (
                    r.type_url.as_str(),
                    r.version_info.as_str(),
                    r.response_nonce.as_str(),
                    r.resource_names.clone(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (CDS, "c1", "", vec![]),
                (EDS, "e1", "", vec!["a".to_string()]),
                (LDS, "l1", "", vec![]),
                (RDS, "r1", "", vec!["outbound".to_string()]),
            ]
        );
        assert!(sotw(&out[0]).node.is_some());
        assert!(out[1..].iter().all(|o| sotw(o).node.is_none()));
        assert!(
            !f.synced(),
            "synced again only after answers on the new stream"
        );
        f.on_response(response(XdsType::Cluster, "c1", "m1", clusters(&["a"])));
        f.on_response(response(
            XdsType::Endpoint,
            "e1",
            "m2",
            vec![item(XdsType::Endpoint, &cla("a", &["127.64.0.1"]), "")],
        ));
        f.on_response(response(
            XdsType::Listener,
            "l1",
            "m3",
            vec![item(XdsType::Listener, &listener("out", "outbound"), "")],
        ));
        assert!(!f.synced());
        f.on_response(response(
            XdsType::Route,
            "r1",
            "m4",
            vec![item(XdsType::Route, &routes("outbound", "m"), "")],
        ));
        assert!(f.synced());
    }

    #[test]
    fn delta_subscribes_by_name_and_acks_with_the_nonce_only() {
        let mut f = Flow::new(Mode::Delta, node());
        let open = f.open_stream();
        let cds = delta(&open[0]);
        assert_eq!(cds.type_url, CDS);
        assert!(cds.resource_names_subscribe.is_empty() && cds.node.is_some());

        let out = f.on_response(response(
            XdsType::Cluster,
            "s1",
            "n1",
            clusters(&["a", "b"]),
        ));
        assert_eq!(delta(&out[0]).resource_names_subscribe, ["a", "b"]);
        assert!(delta(&out[0]).response_nonce.is_empty());
        assert_eq!(
            (
                delta(&out[1]).type_url.as_str(),
                delta(&out[1]).response_nonce.as_str()
            ),
            (CDS, "n1")
        );

        let out = f.on_response(response(
            XdsType::Endpoint,
            "s2",
            "n2",
            vec![item(XdsType::Endpoint, &cla("a", &["127.64.0.1"]), "va")],
        ));
        assert_eq!(out.len(), 1);
        // The server says `b` does not exist: that counts as answered.
        let out = f.on_response(Incoming {
            ty: Some(XdsType::Endpoint),
            nonce: "n3".into(),
            removed: vec!["b".into()],
            ..Default::default()
        });
        assert_eq!(out.len(), 2);
        assert_eq!(delta(&out[1]).type_url, LDS);

        f.on_response(response(
            XdsType::Listener,
            "s3",
            "n4",
            vec![item(XdsType::Listener, &listener("out", "outbound"), "vl")],
        ));
        f.on_response(response(
            XdsType::Route,
            "s4",
            "n5",
            vec![item(XdsType::Route, &routes("outbound", "m"), "vr")],
        ));
        assert!(f.synced());

        // A cluster goes: EDS unsubscribes its name.
        let out = f.on_response(Incoming {
            ty: Some(XdsType::Cluster),
            nonce: "n6".into(),
            removed: vec!["a".into()],
            ..Default::default()
        });
        assert_eq!(delta(&out[0]).resource_names_unsubscribe, ["a"]);
        assert!(delta(&out[0]).resource_names_subscribe.is_empty());
        assert_eq!(f.held_count(XdsType::Endpoint), 0);
    }

    #[test]
    fn delta_reconnect_sends_names_and_initial_versions() {
        let mut f = Flow::new(Mode::Delta, node());
        f.open_stream();
        f.on_response(response(XdsType::Cluster, "s1", "n1", clusters(&["a"])));
        f.on_response(response(
            XdsType::Endpoint,
            "s2",
            "n2",
            vec![item(XdsType::Endpoint, &cla("a", &["127.64.0.1"]), "va")],
        ));
        let out = f.open_stream();
        assert_eq!(out.len(), 3, "CDS, EDS and LDS were subscribed");
        let (cds, eds) = (delta(&out[0]), delta(&out[1]));
        assert!(cds.resource_names_subscribe.is_empty());
        assert_eq!(
            cds.initial_resource_versions.get("a").map(String::as_str),
            Some("v-a")
        );
        assert_eq!(eds.resource_names_subscribe, ["a"]);
        assert_eq!(
            eds.initial_resource_versions.get("a").map(String::as_str),
            Some("va")
        );
        assert!(out.iter().all(|o| o.nonce().is_empty()));
        assert!(cds.node.is_some() && eds.node.is_none());
    }

    #[test]
    fn undecodable_response_is_nacked_with_the_last_good_version() {
        let mut f = synced_sotw();
        let out = f.on_response(Incoming {
            ty: Some(XdsType::Route),
            version: "r9".into(),
            nonce: "n9".into(),
            error: Some("cannot decode".into()),
            ..Default::default()
        });
        assert_eq!(out.len(), 1);
        assert!(out[0].is_nack());
        let r = sotw(&out[0]);
        assert_eq!(
            (r.version_info.as_str(), r.response_nonce.as_str()),
            ("r1", "n9")
        );
        assert_eq!(r.error_detail.as_ref().unwrap().code, NACK_CODE);
        assert!(f.held(XdsType::Route).all(
            |r| matches!(&r.kind, Kind::Routes { markers } if markers.contains(&"m".to_string()))
        ));
    }

    #[test]
    fn facts_from_the_cache_drive_the_flow() {
        let cache = FactCache::default();
        let mut f = Flow::new(Mode::Sotw, node());
        f.open_stream();
        let facts = cache
            .get(
                XdsType::Cluster,
                &any(
                    XdsType::Cluster,
                    &eds_cluster("outbound|8080||svc0.ns0.svc.cluster.local"),
                ),
            )
            .unwrap();
        let out = f.on_response(response(
            XdsType::Cluster,
            "c1",
            "n1",
            vec![Item {
                facts,
                version: String::new(),
            }],
        ));
        assert_eq!(
            sotw(&out[0]).resource_names,
            ["outbound|8080||svc0.ns0.svc.cluster.local"]
        );
        assert!(f.holds_cluster_for("svc0.ns0.svc.cluster.local"));
        assert!(!f.holds_cluster_for("vc0.ns0.svc.cluster.local"));
    }
}
