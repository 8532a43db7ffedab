//! Leader election on a `coordination.k8s.io/v1` Lease, for the work that
//! must happen once however many replicas run (writing status conditions,
//! later the per-namespace root certificates and webhook `caBundle`s).
//! kube-runtime has none; this follows client-go's leaderelection.
//!
//! ```text
//! every `retry`: GET Lease ──► decide(observed, me, now)
//!   none                         ──► Create (holder = me)            201 leader · 409 someone else won
//!   holder = me                  ──► Renew (renewTime, resourceVersion) 200 leader · 409 re-read
//!   another, unchanged ≥ duration ──► TakeOver (transitions + 1)       200 leader · 409 lost the race
//!   another, changing            ──► Follow
//! a leader that cannot renew for `duration` steps down at once, before another may take over
//! ```
//!
//! - **Local clocks only.** Whether another holder has lapsed is judged
//!   from when *this* replica last saw the Lease change (its holder,
//!   renewTime or resourceVersion), never by comparing its `renewTime`
//!   with our clock, so clock skew between nodes cannot make two leaders.
//! - **Optimistic concurrency.** Every write names the resourceVersion it
//!   read; of two replicas writing at once, one gets 409 and follows.
//! - **Stepping down.** A leader steps down when a renewal has not
//!   succeeded for the renew deadline (two thirds of the duration), so it
//!   has stopped before a follower, waiting the whole duration, takes over.
//!   `watch::Receiver<bool>` tells the work that depends on it, at once.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use k8s_openapi::jiff::Timestamp;
use kube::api::PostParams;
use kube::{Api, Client};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{info, warn};

/// The Lease's name, in the control plane's namespace.
pub const LEASE_NAME: &str = "bowline-leader";

/// The control plane's own namespace: `POD_NAMESPACE`, else the mesh's
/// root namespace (where istiod lives too).
pub fn namespace(root_namespace: &str) -> String {
    std::env::var("POD_NAMESPACE").unwrap_or_else(|_| root_namespace.to_string())
}

/// Who competes for which Lease, and how fast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeaseConfig {
    pub namespace: String,
    pub name: String,
    /// This replica's name in `holderIdentity` (its pod name).
    pub identity: String,
    /// How long a holder's silence lasts before another takes over
    /// (client-go's default, 15 s).
    pub duration: Duration,
    /// How often to look and to renew (client-go's default, 2 s).
    pub retry: Duration,
}

impl LeaseConfig {
    pub fn new(namespace: impl Into<String>, identity: impl Into<String>) -> LeaseConfig {
        LeaseConfig {
            namespace: namespace.into(),
            name: LEASE_NAME.to_string(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
            retry: Duration::from_secs(2),
        }
    }

    /// A replica's election from its pod's downward-API variables, as
    /// Istio's deployment sets them: the Lease in [`namespace`] as
    /// `POD_NAME`, else the host name and process id.
    pub fn from_env(root_namespace: &str) -> LeaseConfig {
        let identity = std::env::var("POD_NAME").unwrap_or_else(|_| {
            let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
            format!("{}-{}", host.trim(), std::process::id())
        });
        LeaseConfig::new(namespace(root_namespace), identity)
    }

    /// How long a leader keeps leading without a successful renewal.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }
}

/// The Lease as this replica last saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Observed {
    pub holder: Option<String>,
    /// What makes a change visible: holder, renewTime and resourceVersion.
    pub record: String,
    /// When this replica saw `record` change.
    pub since: Instant,
}

/// What to do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Create,
    Renew,
    TakeOver,
    Follow,
}

/// The next step for `me`, given the Lease as last seen (`None`: there is none).
pub fn decide(observed: Option<&Observed>, me: &str, duration: Duration, now: Instant) -> Action {
    let Some(observed) = observed else {
        return Action::Create;
    };
    match observed.holder.as_deref() {
        Some(holder) if holder == me => Action::Renew,
        // Released (an empty holder) or lapsed.
        None | Some("") => Action::TakeOver,
        Some(_) if now.duration_since(observed.since) >= duration => Action::TakeOver,
        Some(_) => Action::Follow,
    }
}

/// A running election. Dropping it stops competing (the Lease then lapses).
#[derive(Debug)]
pub struct LeaderElector {
    leading: watch::Receiver<bool>,
    task: JoinHandle<()>,
}

impl LeaderElector {
    /// Starts competing for the Lease of `config`. Must be called within a tokio runtime.
    pub fn start(client: Client, config: LeaseConfig) -> LeaderElector {
        let (tx, leading) = watch::channel(false);
        let api: Api<Lease> = Api::namespaced(client, &config.namespace);
        let task = tokio::spawn(run(api, config, tx));
        LeaderElector { leading, task }
    }

    /// Whether this replica leads, now and as it changes.
    pub fn leading(&self) -> watch::Receiver<bool> {
        self.leading.clone()
    }
}

impl Drop for LeaderElector {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn record(lease: &Lease) -> (Option<String>, String) {
    let spec = lease.spec.clone().unwrap_or_default();
    let renewed = spec.renew_time.map(|t| t.0.to_string()).unwrap_or_default();
    let version = lease.metadata.resource_version.clone().unwrap_or_default();
    let holder = spec.holder_identity;
    let record = format!("{holder:?}/{renewed}/{version}");
    (holder, record)
}

async fn run(api: Api<Lease>, config: LeaseConfig, leading: watch::Sender<bool>) {
    let mut observed: Option<Observed> = None;
    let mut renewed_at: Option<Instant> = None;
    let mut interval = tokio::time::interval(config.retry);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let now = Instant::now();
        let won = match api.get_opt(&config.name).await {
            Ok(current) => {
                observed = current.as_ref().map(|lease| {
                    let (holder, record) = record(lease);
                    match &observed {
                        Some(o) if o.record == record => o.clone(),
                        _ => Observed {
                            holder,
                            record,
                            since: now,
                        },
                    }
                });
                let action = decide(observed.as_ref(), &config.identity, config.duration, now);
                attempt(&api, &config, current, action).await
            }
            Err(error) => {
                warn!(%error, lease = %config.name, "reading the Lease failed");
                false
            }
        };
        if won {
            renewed_at = Some(now);
        }
        // Another holder on record: we lost it, whatever our deadline says.
        let taken = !won
            && observed
                .as_ref()
                .and_then(|o| o.holder.as_deref())
                .is_some_and(|h| !h.is_empty() && h != config.identity);
        let leads = !taken
            && renewed_at.is_some_and(|at| now.duration_since(at) < config.renew_deadline())
            && (won || *leading.borrow());
        if leads != *leading.borrow() {
            if leads {
                info!(identity = %config.identity, lease = %config.name, "leading");
            } else {
                info!(identity = %config.identity, lease = %config.name, "no longer leading");
            }
            leading.send_replace(leads);
        }
        if !leads {
            renewed_at = None;
        }
    }
}

/// Carries out `action`; whether this replica holds the Lease afterwards.
async fn attempt(
    api: &Api<Lease>,
    config: &LeaseConfig,
    current: Option<Lease>,
    action: Action,
) -> bool {
    let now = MicroTime(Timestamp::now());
    let seconds = i32::try_from(config.duration.as_secs()).unwrap_or(i32::MAX);
    let result = match (action, current) {
        (Action::Follow, _) => return false,
        (Action::Create, _) => {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(config.name.clone()),
                    namespace: Some(config.namespace.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(config.identity.clone()),
                    lease_duration_seconds: Some(seconds),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..LeaseSpec::default()
                }),
            };
            api.create(&PostParams::default(), &lease).await
        }
        (_, None) => return false,
        (action, Some(mut lease)) => {
            let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
            if action == Action::TakeOver {
                spec.holder_identity = Some(config.identity.clone());
                spec.acquire_time = Some(now.clone());
                spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0) + 1);
            }
            spec.lease_duration_seconds = Some(seconds);
            spec.renew_time = Some(now);
            // The resourceVersion read stays in the object: a write after
            // another's is refused (409).
            api.replace(&config.name, &PostParams::default(), &lease)
                .await
        }
    };
    match result {
        Ok(_) => true,
        Err(kube::Error::Api(status)) if status.code == 409 => false,
        Err(error) => {
            warn!(%error, lease = %config.name, ?action, "writing the Lease failed");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Duration = Duration::from_secs(15);

    fn seen(holder: Option<&str>, since: Instant) -> Observed {
        Observed {
            holder: holder.map(str::to_string),
            record: "r".into(),
            since,
        }
    }

    #[test]
    fn no_lease_is_created_and_ours_is_renewed() {
        let now = Instant::now();
        assert_eq!(decide(None, "a", D, now), Action::Create);
        assert_eq!(
            decide(Some(&seen(Some("a"), now)), "a", D, now),
            Action::Renew
        );
    }

    #[test]
    fn another_holder_is_followed_until_silent_for_the_whole_duration() {
        let then = Instant::now();
        let other = seen(Some("b"), then);
        assert_eq!(decide(Some(&other), "a", D, then + D / 2), Action::Follow);
        assert_eq!(decide(Some(&other), "a", D, then + D), Action::TakeOver);
    }

    #[test]
    fn a_released_lease_is_taken_at_once() {
        let now = Instant::now();
        assert_eq!(
            decide(Some(&seen(Some(""), now)), "a", D, now),
            Action::TakeOver
        );
        assert_eq!(
            decide(Some(&seen(None, now)), "a", D, now),
            Action::TakeOver
        );
    }

    #[test]
    fn a_leader_steps_down_before_a_follower_may_take_over() {
        let config = LeaseConfig::new("istio-system", "a");
        assert!(config.renew_deadline() < config.duration);
    }
}
