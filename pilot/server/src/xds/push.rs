//! The push queue: decides which proxies a new snapshot reaches, compiles
//! their resources on a bounded pool of blocking threads, and hands each
//! stream the newest result.
//!
//! ```text
//! snapshots ──► pusher task: ChangeSet::between(previous, next), PushContext
//!                  │  for each subscribed proxy the change reaches:
//!                  ▼
//!            schedule(proxy, context) ── coalesces: one pending context per proxy, the newest
//!                  │
//!                  ▼  (one queue entry per proxy at most)
//!            dispatcher ──► spawn_blocking × cores (batches of what queued) ──► compile ──► watch slot ──► stream task
//! ```
//!
//! Stream tasks never compile: they wait on their slot, which holds only the
//! newest compiled set, so a proxy that reads slowly costs one set, not a
//! backlog. A proxy the change does not reach is not compiled at all.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use dashmap::DashMap;
use tokio::sync::{Semaphore, mpsc, watch};
use tracing::debug;

use crate::xds::server::accept;
use crate::xds::status::StatusRegistry;
use pilot_core::compile::PushContext;
use pilot_core::proxy::Proxy;
use pilot_core::resources::ProxyResources;
use pilot_core::snapshot::{ChangeSet, Snapshot};

/// One compiled set for one proxy.
#[derive(Clone, Debug)]
pub struct Pushed {
    /// The generation of the snapshot the set was compiled from.
    pub generation: u64,
    pub resources: Arc<ProxyResources>,
    /// When the first change this set carries reached the queue, and when
    /// its compile started: `pilot_proxy_convergence_time` and
    /// `pilot_xds_push_time` count from them. `None` for a set handed
    /// over again unchanged (nothing is pushed).
    pub timing: Option<PushTiming>,
}

/// See [`Pushed::timing`].
#[derive(Clone, Copy, Debug)]
pub struct PushTiming {
    pub changed: Instant,
    pub compile_started: Instant,
}

/// What the queue has done since it started; for the admin API and tests.
#[derive(Debug, Default)]
pub struct PushCounters {
    /// Full compiles of one proxy's resources.
    pub compiles: AtomicU64,
    /// Compiles that only rebuilt a proxy's endpoints.
    pub endpoint_updates: AtomicU64,
    /// Compiles that only rebuilt a proxy's routes.
    pub route_updates: AtomicU64,
    /// Sets that only took a new trust bundle's secrets.
    pub secret_updates: AtomicU64,
    /// Proxies a snapshot change did not reach, so were not compiled.
    pub skipped: AtomicU64,
}

/// The queue shared by every stream of a server.
#[derive(Debug, Clone)]
pub struct PushQueue {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    status: Arc<StatusRegistry>,
    subscribers: DashMap<u64, Arc<Subscriber>>,
    current: RwLock<Arc<PushContext>>,
    work: mpsc::UnboundedSender<Arc<Subscriber>>,
    counters: PushCounters,
}

#[derive(Debug)]
struct Subscriber {
    proxy: Arc<Proxy>,
    state: Mutex<SubscriberState>,
    slot: watch::Sender<Option<Pushed>>,
}

#[derive(Debug, Default)]
struct SubscriberState {
    /// The newest context not compiled yet for this proxy, and when the
    /// first change not yet delivered reached the queue.
    pending: Option<Arc<PushContext>>,
    pending_since: Option<Instant>,
    /// In the work queue or being compiled: not to be queued again.
    busy: bool,
    /// The last set delivered, and the newest generation it is known to be
    /// right for (later snapshots that did not reach the proxy count too).
    last: Option<Pushed>,
    valid_for: u64,
    /// The newest generation the pusher has looked at for this proxy.
    seen: u64,
}

/// Unsubscribes when the stream ends.
#[derive(Debug)]
pub struct Subscription {
    inner: Arc<Inner>,
    stream_id: u64,
    pub pushed: watch::Receiver<Option<Pushed>>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.inner.subscribers.remove(&self.stream_id);
    }
}

/// The most proxies one blocking thread compiles per hand-over.
const COMPILE_BATCH: usize = 64;

impl PushQueue {
    /// Starts the queue's tasks on the current tokio runtime: the pusher,
    /// which follows `snapshots`, and the dispatcher, which compiles on at
    /// most `workers` blocking threads at once.
    pub fn start(
        mut snapshots: watch::Receiver<Arc<Snapshot>>,
        status: Arc<StatusRegistry>,
        workers: usize,
    ) -> PushQueue {
        let first = snapshots.borrow_and_update().clone();
        let (work, mut queued) = mpsc::unbounded_channel::<Arc<Subscriber>>();
        let inner = Arc::new(Inner {
            status,
            subscribers: DashMap::new(),
            current: RwLock::new(Arc::new(PushContext::new(first))),
            work,
            counters: PushCounters::default(),
        });

        let pool = Arc::new(Semaphore::new(workers.max(1)));
        let dispatcher = Arc::downgrade(&inner);
        tokio::spawn(async move {
            while let Some(first) = queued.recv().await {
                let Ok(permit) = pool.clone().acquire_owned().await else {
                    return;
                };
                let Some(inner) = dispatcher.upgrade() else {
                    return;
                };
                // What queued up while a thread was busy goes in one batch:
                // one hand-over to a blocking thread per batch, not per
                // proxy (at 10,000 proxies on one core, those switches were
                // a fifth of the push's CPU). Each set still goes to its
                // stream as soon as it is compiled.
                let mut batch = vec![first];
                while batch.len() < COMPILE_BATCH {
                    match queued.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                tokio::task::spawn_blocking(move || {
                    for subscriber in &batch {
                        inner.compile(subscriber);
                    }
                    drop(permit);
                });
            }
        });

        let pusher = Arc::downgrade(&inner);
        tokio::spawn(async move {
            while snapshots.changed().await.is_ok() {
                let next = snapshots.borrow_and_update().clone();
                let Some(inner) = pusher.upgrade() else {
                    return;
                };
                inner.on_snapshot(next);
            }
            debug!("snapshot source closed; the push queue serves the last snapshot");
        });
        PushQueue { inner }
    }

    /// Subscribes a stream's proxy: its first set is compiled from the
    /// current snapshot, and later ones from every snapshot that reaches it.
    pub fn subscribe(&self, proxy: Arc<Proxy>, stream_id: u64) -> Subscription {
        let (slot, pushed) = watch::channel(None);
        let subscriber = Arc::new(Subscriber {
            proxy,
            state: Mutex::default(),
            slot,
        });
        // Listed before reading the current context, so that a snapshot
        // published meanwhile is scheduled by the pusher if not here.
        self.inner.subscribers.insert(stream_id, subscriber.clone());
        let current = self.inner.current();
        self.inner.schedule(&subscriber, current);
        Subscription {
            inner: self.inner.clone(),
            stream_id,
            pushed,
        }
    }

    pub fn counters(&self) -> &PushCounters {
        &self.inner.counters
    }
}

impl Inner {
    fn current(&self) -> Arc<PushContext> {
        match self.current.read() {
            Ok(current) => current.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Works out what changed and schedules the proxies it reaches.
    fn on_snapshot(&self, next: Arc<Snapshot>) {
        let previous = self.current();
        if previous.generation() >= next.generation && next.generation != 0 {
            return;
        }
        let changes = ChangeSet::between(previous.snapshot(), &next);
        let context = Arc::new(match changes.endpoints_only() {
            _ if changes.trust_bundle_only() => {
                PushContext::after_trust_bundle_change(&previous, next)
            }
            Some(endpoints) => PushContext::after_endpoint_change(&previous, next, endpoints),
            None if next.same_apart_from_routes(previous.snapshot()) => {
                PushContext::after_route_change(&previous, next)
            }
            None => PushContext::new(next),
        });
        match self.current.write() {
            Ok(mut current) => *current = context.clone(),
            Err(poisoned) => *poisoned.into_inner() = context.clone(),
        }
        let (before, after) = (previous.snapshot(), context.snapshot());
        let mut reached = 0usize;
        for entry in self.subscribers.iter() {
            let subscriber = entry.value();
            if changes.reaches(&subscriber.proxy, before, after) {
                reached += 1;
                self.schedule(subscriber, context.clone());
            } else {
                self.counters.skipped.fetch_add(1, Ordering::Relaxed);
                self.unchanged(subscriber, before.generation, after.generation);
            }
        }
        debug!(
            generation = after.generation,
            reasons = ?changes.reasons,
            hosts = changes.hosts.len(),
            endpoint_hosts = changes.endpoint_hosts.len(),
            reached,
            "snapshot change"
        );
    }

    /// Records that the change from `before` to `after` leaves `subscriber`'s
    /// set as it is. If that set is current and nothing is being compiled,
    /// it is handed over again at the new generation, so that the connection
    /// knows the proxy is at `after` (and reads as converged) without a
    /// compile; a compile in progress takes the new generation when it ends.
    fn unchanged(&self, subscriber: &Subscriber, before: u64, after: u64) {
        let mut state = lock(&subscriber.state);
        state.seen = state.seen.max(after);
        if state.busy || state.valid_for != before {
            return;
        }
        let Some(last) = &state.last else {
            return;
        };
        let pushed = Pushed {
            generation: after,
            resources: Arc::new((*last.resources).clone().with_generation(after)),
            timing: None,
        };
        state.valid_for = after;
        state.last = Some(pushed.clone());
        subscriber.slot.send_replace(Some(pushed));
    }

    /// Makes `context` the next one compiled for `subscriber`, unless a newer
    /// one is already pending or delivered, and queues the subscriber once.
    fn schedule(&self, subscriber: &Arc<Subscriber>, context: Arc<PushContext>) {
        let mut state = lock(&subscriber.state);
        let generation = context.generation();
        state.seen = state.seen.max(generation);
        let newer_pending = state
            .pending
            .as_ref()
            .is_some_and(|p| p.generation() >= generation);
        let delivered = state
            .last
            .as_ref()
            .is_some_and(|l| l.generation >= generation);
        if newer_pending || delivered {
            return;
        }
        state.pending = Some(context);
        state.pending_since.get_or_insert_with(Instant::now);
        if !state.busy {
            state.busy = true;
            // The receiver lives as long as the dispatcher, which lives as
            // long as the queue.
            let _ = self.work.send(subscriber.clone());
        }
    }

    /// Compiles the pending context of `subscriber` (on a blocking thread)
    /// and delivers the set if it passes the consistency check.
    fn compile(&self, subscriber: &Arc<Subscriber>) {
        let compile_started = Instant::now();
        let (context, last, valid_for, changed) = {
            let mut state = lock(&subscriber.state);
            let Some(context) = state.pending.take() else {
                state.busy = false;
                return;
            };
            let changed = state.pending_since.take().unwrap_or(compile_started);
            (context, state.last.clone(), state.valid_for, changed)
        };
        let proxy = &subscriber.proxy;
        let generation = context.generation();
        let update = last.as_ref().and_then(|l| {
            let endpoints = context.endpoints_update(proxy, &l.resources, valid_for);
            let endpoints = endpoints.map(|r| (r, &self.counters.endpoint_updates));
            endpoints
                .or_else(|| {
                    let routes = context.routes_update(proxy, &l.resources, valid_for);
                    routes.map(|r| (r, &self.counters.route_updates))
                })
                .or_else(|| {
                    let secrets = context.secrets_update(proxy, &l.resources, valid_for);
                    secrets.map(|r| (r, &self.counters.secret_updates))
                })
        });
        let compiled = match update {
            Some((resources, counter)) => {
                counter.fetch_add(1, Ordering::Relaxed);
                Ok(resources)
            }
            None => {
                self.counters.compiles.fetch_add(1, Ordering::Relaxed);
                context.compile_consistent(proxy)
            }
        };
        let accepted = accept(&self.status, &proxy.id, generation, compiled);

        let mut state = lock(&subscriber.state);
        // With nothing pending, every snapshot looked at since this one's did
        // not reach the proxy: the set is right up to the newest of them.
        let current = if state.pending.is_none() {
            state.seen.max(generation)
        } else {
            generation
        };
        let delivered = match accepted {
            Some(resources) => {
                state.valid_for = current;
                Some(resources.with_generation(current))
            }
            // An inconsistent first set is left out: the proxy is answered
            // with nothing until a consistent one compiles, and nothing is
            // ever derived from that empty set.
            None if last.is_none() => {
                state.valid_for = 0;
                Some(ProxyResources::default())
            }
            None => None,
        };
        if let Some(resources) = delivered {
            let pushed = Pushed {
                generation: current,
                resources: Arc::new(resources),
                timing: Some(PushTiming {
                    changed,
                    compile_started,
                }),
            };
            state.last = Some(pushed.clone());
            subscriber.slot.send_replace(Some(pushed));
        }
        if state.pending.is_some() {
            let _ = self.work.send(subscriber.clone());
        } else {
            state.busy = false;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match mutex.lock() {
        Ok(guard) => guard,
        Err(poisoned) => poisoned.into_inner(),
    }
}
