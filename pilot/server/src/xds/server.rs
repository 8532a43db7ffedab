//! The tonic ADS service: moves messages between a gRPC stream and a
//! [`Connection`]. Compiling is the push queue's job (see `push`): a stream
//! task only waits for the sets compiled for its proxy.
//!
//! ```text
//! inbound requests ──────────────┐
//!                                ├──► select ──► Connection ──► StatusRegistry
//! PushQueue slot (newest set) ───┘                   │
//!                                                    └──► mpsc ──► response stream
//! ```
//!
//! One task per stream. The first request must carry a node whose metadata
//! parses into a [`Proxy`]; otherwise the stream ends with `InvalidArgument`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use envoy_types::pb::envoy::config::core::v3::Node;
use envoy_types::pb::envoy::service::discovery::v3::DeltaDiscoveryRequest;
use tokio::sync::{mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::xds::codec::Requests;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::xds::push::PushQueue;
use crate::xds::service::AdsService;
use crate::xds::status::{ProxyEvent, StatusRegistry};
use pilot_core::compile::Inconsistent;
use pilot_core::proxy::Proxy;
use pilot_core::resources::{ProxyResources, ResourceType};
use pilot_core::snapshot::Snapshot;
use pilot_core::xds::connection::{Connection, DeltaResponse, Mode, Response, SotwResponse};
use pilot_core::xds::request::SotwRequest;
use pilot_core::xds::{PeerIdentity, check_node_identity};

/// Responses buffered per stream before the sender waits for the proxy to read.
const RESPONSE_BUFFER: usize = 16;

/// The Aggregated Discovery Service, for both state-of-the-world and Delta streams.
#[derive(Debug)]
pub struct AdsServer {
    queue: PushQueue,
    status: Arc<StatusRegistry>,
    next_stream: AtomicU64,
    /// What a NACK's objects are looked up in.
    snapshots: watch::Receiver<Arc<Snapshot>>,
}

impl AdsServer {
    /// A server following `snapshots`. Starts its push queue on the current
    /// tokio runtime, compiling on as many blocking threads as there are cores.
    pub fn new(snapshots: watch::Receiver<Arc<Snapshot>>, status: Arc<StatusRegistry>) -> Self {
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
        AdsServer {
            queue: PushQueue::start(snapshots.clone(), status.clone(), workers),
            status,
            next_stream: AtomicU64::new(1),
            snapshots,
        }
    }

    /// The push queue, to read its counters.
    pub fn queue(&self) -> &PushQueue {
        &self.queue
    }

    pub fn into_service(self) -> AdsService {
        AdsService::new(self)
    }

    /// Starts the task serving one stream and returns its response stream.
    fn open<V: Variant>(
        &self,
        inbound: Requests<V::Request>,
        peer: Option<PeerIdentity>,
    ) -> ReceiverStream<Result<V::Response, Status>> {
        let (tx, rx) = mpsc::channel(RESPONSE_BUFFER);
        let stream = StreamTask {
            peer,
            stream_id: self.next_stream.fetch_add(1, Ordering::Relaxed),
            queue: self.queue.clone(),
            status: self.status.clone(),
            tx,
            nacks_counted: 0,
            snapshots: self.snapshots.clone(),
        };
        tokio::spawn(stream.run::<V>(inbound));
        ReceiverStream::new(rx)
    }
}

impl AdsServer {
    /// `StreamAggregatedResources`: serves a state-of-the-world stream.
    pub(super) fn stream_aggregated_resources(
        &self,
        inbound: Requests<SotwRequest>,
        peer: Option<PeerIdentity>,
    ) -> ReceiverStream<Result<SotwResponse, Status>> {
        self.open::<Sotw>(inbound, peer)
    }

    /// `DeltaAggregatedResources`: serves an incremental stream.
    pub(super) fn delta_aggregated_resources(
        &self,
        inbound: Requests<DeltaDiscoveryRequest>,
        peer: Option<PeerIdentity>,
    ) -> ReceiverStream<Result<DeltaResponse, Status>> {
        self.open::<Delta>(inbound, peer)
    }
}

/// The message types and handlers of one protocol variant.
trait Variant: Send + 'static {
    type Request: prost::Message + Default + Send + 'static;
    type Response: Send + 'static;
    const MODE: Mode;
    fn node(req: &Self::Request) -> Option<Node>;
    fn type_url(req: &Self::Request) -> &str;
    fn handle(connection: &mut Connection, req: Self::Request) -> Vec<Response>;
    fn message(response: Response) -> Option<Self::Response>;
}

#[derive(Debug)]
struct Sotw;

impl Variant for Sotw {
    type Request = SotwRequest;
    type Response = SotwResponse;
    const MODE: Mode = Mode::Sotw;

    fn node(req: &SotwRequest) -> Option<Node> {
        req.node()
    }

    fn type_url(req: &SotwRequest) -> &str {
        &req.type_url
    }

    fn handle(connection: &mut Connection, req: SotwRequest) -> Vec<Response> {
        connection.on_sotw_request(req)
    }

    fn message(response: Response) -> Option<SotwResponse> {
        match response {
            Response::Sotw(r) => Some(r),
            Response::Delta(_) => None,
        }
    }
}

#[derive(Debug)]
struct Delta;

impl Variant for Delta {
    type Request = DeltaDiscoveryRequest;
    type Response = DeltaResponse;
    const MODE: Mode = Mode::Delta;

    fn node(req: &DeltaDiscoveryRequest) -> Option<Node> {
        req.node.clone()
    }

    fn type_url(req: &DeltaDiscoveryRequest) -> &str {
        &req.type_url
    }

    fn handle(connection: &mut Connection, req: DeltaDiscoveryRequest) -> Vec<Response> {
        connection.on_delta_request(req)
    }

    fn message(response: Response) -> Option<DeltaResponse> {
        match response {
            Response::Delta(r) => Some(r),
            Response::Sotw(_) => None,
        }
    }
}

/// Everything one stream's task owns.
#[derive(Debug)]
struct StreamTask<T> {
    /// The client certificate's identity, on the mutual-TLS listener: the
    /// node must claim exactly it.
    peer: Option<PeerIdentity>,
    stream_id: u64,
    queue: PushQueue,
    status: Arc<StatusRegistry>,
    tx: mpsc::Sender<Result<T, Status>>,
    /// NACKs of this stream already counted in the registry.
    nacks_counted: u64,
    snapshots: watch::Receiver<Arc<Snapshot>>,
}

/// Decides whether a compiled set may be pushed. A set that fails the
/// consistency check never is: the proxy keeps what it has, and the failure
/// shows in the status registry (and so in `/api/v1/diagnostics`) until a
/// consistent set compiles for the proxy.
pub(crate) fn accept(
    status: &StatusRegistry,
    proxy_id: &str,
    generation: u64,
    compiled: Result<ProxyResources, Inconsistent>,
) -> Option<ProxyResources> {
    match compiled {
        Ok(resources) => {
            status.clear_inconsistent(proxy_id);
            Some(resources.with_generation(generation))
        }
        Err(inconsistent) => {
            warn!(
                generation,
                problems = ?inconsistent.problems,
                "not pushing a config that fails the consistency check; the previous one stays"
            );
            status.record_inconsistent(proxy_id, generation, inconsistent.problems);
            None
        }
    }
}

impl<T: Send + 'static> StreamTask<T> {
    async fn run<V: Variant<Response = T>>(self, mut inbound: Requests<V::Request>) {
        let stream_id = self.stream_id;
        let first = match inbound.next().await {
            Some(Ok(req)) => req,
            Some(Err(error)) => {
                debug!(stream_id, %error, "stream failed before its first request");
                return;
            }
            None => return,
        };
        let node = V::node(&first);
        let proxy = match node.as_ref().map(Proxy::try_from) {
            Some(Ok(proxy)) => proxy,
            Some(Err(error)) => {
                let node = node.as_ref().map_or("", |n| n.id.as_str());
                warn!(stream_id, node, %error, "rejecting stream");
                let _ = self
                    .tx
                    .send(Err(Status::invalid_argument(error.to_string())))
                    .await;
                return;
            }
            None => {
                warn!(stream_id, "rejecting stream: first request carries no node");
                let _ = self
                    .tx
                    .send(Err(Status::invalid_argument(
                        "first request carries no node",
                    )))
                    .await;
                return;
            }
        };
        if let Some(peer) = &self.peer
            && let Err(mismatch) = check_node_identity(&proxy.id, &proxy.metadata, peer)
        {
            warn!(stream_id, %mismatch, "rejecting stream");
            let _ = self
                .tx
                .send(Err(Status::permission_denied(mismatch.to_string())))
                .await;
            return;
        }
        let span = info_span!("ads", node = %proxy.id, stream_id, mode = ?V::MODE);
        self.serve::<V>(proxy, first, inbound)
            .instrument(span)
            .await;
    }

    async fn serve<V: Variant<Response = T>>(
        mut self,
        proxy: Proxy,
        first: V::Request,
        mut inbound: Requests<V::Request>,
    ) {
        info!("proxy connected");
        self.status.emit(ProxyEvent::Connected {
            proxy: proxy.id.clone(),
        });
        let mut connection = Connection::new(V::MODE);
        let proxy = Arc::new(proxy);
        let mut subscription = self.queue.subscribe(proxy.clone(), self.stream_id);
        let first_set = match subscription.pushed.wait_for(Option::is_some).await {
            Ok(pushed) => pushed.clone(),
            Err(_) => return,
        };
        if let Some(pushed) = first_set {
            connection.on_resources(pushed.resources);
        }
        let responses = self.handle::<V>(&proxy, &mut connection, first);
        let mut open = self.step::<V>(&proxy, &connection, responses).await;

        let mut watching = true;
        while open {
            tokio::select! {
                request = inbound.next() => match request {
                    Some(Ok(req)) => {
                        let responses = self.handle::<V>(&proxy, &mut connection, req);
                        open = self.step::<V>(&proxy, &connection, responses).await;
                    }
                    Some(Err(error)) => {
                        debug!(%error, "stream error");
                        open = false;
                    }
                    None => open = false,
                },
                changed = subscription.pushed.changed(), if watching => {
                    if changed.is_err() {
                        debug!("push queue closed, serving the last set");
                        watching = false;
                        continue;
                    }
                    let Some(pushed) = subscription.pushed.borrow_and_update().clone() else {
                        continue;
                    };
                    // Even a set that changes nothing goes to the connection:
                    // it records that the proxy is at this generation.
                    let responses = connection.on_resources(pushed.resources);
                    if responses.is_empty() {
                        debug!(generation = pushed.generation, "snapshot change leaves this proxy unchanged");
                    } else {
                        let types: Vec<&str> = responses.iter().map(Response::type_url).collect();
                        debug!(generation = pushed.generation, ?types, "push");
                    }
                    let sent = !responses.is_empty();
                    open = self.step::<V>(&proxy, &connection, responses).await;
                    if let (true, Some(timing)) = (open && sent, pushed.timing) {
                        self.status.metrics().delivered(
                            timing.compile_started.elapsed(),
                            timing.changed.elapsed(),
                        );
                        if self.status.listening() {
                            self.status.emit(ProxyEvent::PushCompleted {
                                proxy: proxy.id.clone(),
                                generation: pushed.generation,
                            });
                        }
                    }
                }
            }
        }
        drop(subscription);
        self.status.remove(&proxy.id, self.stream_id);
        self.status.emit(ProxyEvent::Disconnected {
            proxy: proxy.id.clone(),
        });
        info!("proxy disconnected");
    }

    /// A request through the connection's state machine; a NACK it carries
    /// counts against its type.
    fn handle<V: Variant<Response = T>>(
        &self,
        proxy: &Proxy,
        connection: &mut Connection,
        req: V::Request,
    ) -> Vec<Response> {
        let before = connection.nacks();
        let ty = ResourceType::from_type_url(V::type_url(&req));
        let responses = V::handle(connection, req);
        if let Some(ty) = ty
            && connection.nacks() > before
        {
            self.status
                .metrics()
                .rejected(ty, connection.nacks() - before);
            // Which objects the rejected resources came from, read from the
            // set the proxy was compiled (the snapshot's current build).
            if let Some(nack) = connection
                .status()
                .get(ty.type_url())
                .and_then(|s| s.nack.clone())
            {
                let snapshot = self.snapshots.borrow().clone();
                let objects = pilot_core::blame::nack_sources(
                    &snapshot,
                    proxy,
                    connection.resources(),
                    ty,
                    &nack.message,
                );
                for object in &objects {
                    warn!(
                        kind = %object.kind,
                        namespace = %object.namespace,
                        name = %object.name,
                        file = object.file.as_deref().unwrap_or(""),
                        resource = %object.resource,
                        "the rejected configuration came from this object"
                    );
                }
                connection.blame_nack(ty, objects.clone());
                self.status.emit(ProxyEvent::Nack {
                    proxy: proxy.id.clone(),
                    type_url: ty.type_url().to_string(),
                    version: nack.version,
                    message: nack.message,
                    objects,
                });
            }
        }
        responses
    }

    /// Publishes the connection's status and NACK count, then sends
    /// `responses`. Returns false when the proxy has gone away.
    async fn step<V: Variant<Response = T>>(
        &mut self,
        proxy: &Proxy,
        connection: &Connection,
        responses: Vec<Response>,
    ) -> bool {
        let nacks = connection.nacks();
        if nacks > self.nacks_counted {
            self.status.record_nacks(nacks - self.nacks_counted);
            self.nacks_counted = nacks;
        }
        self.status
            .refresh(proxy, self.stream_id, connection, self.peer.as_ref());
        for response in responses {
            debug!(
                type_url = response.type_url(),
                version = response.version(),
                nonce = response.nonce(),
                "sending response"
            );
            let ty = ResourceType::from_type_url(response.type_url());
            let version = response.version().to_string();
            let Some(message) = V::message(response) else {
                continue;
            };
            if let Some(ty) = ty {
                self.status.metrics().pushed(ty);
            }
            if self.tx.send(Ok(message)).await.is_err() {
                return false;
            }
            if let Some(ty) = ty {
                self.status.record_sent(
                    &proxy.id,
                    self.stream_id,
                    ty,
                    &version,
                    connection.resources().get(ty),
                );
            }
        }
        true
    }
}
