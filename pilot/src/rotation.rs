//! The CA's driver in a running control plane: it follows the state
//! directory for a root rotation that `bowline ca rotate-root` started,
//! publishes the trust bundle to the proxies, moves the rotation on when
//! its step's condition holds, and reports `/api/v1/ca`.
//!
//! ```text
//! every second: Ca::reload (rotation.json) ──► set_trust_bundle ──► ROOTCA pushed over ADS
//!   distributing: every sidecar that subscribes ROOTCA has ACKed the bundle's generation ──► Ca::sign_with_new_root
//!   reissuing:    the clock is past the old key's last certificate ──────────────────────► Ca::retire_old_root
//! then Ca::trust ──► Trust/Watch (agents renew at once when a forced rotation's new key signs)
//! ```
//!
//! The conditions read the same status as `/api/v1/proxies`; the clock and
//! files are checked once a second, the way a controller resyncs, since
//! neither the clock nor another process's write announces itself here.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use citadel::Trust;
use citadel::rotation::Step;
use citadel::signing::Signer;
use discovery_kubernetes::ca_sync::{self, Distribution, Follower, lagging};
use pilot_core::resources::ResourceType;
use pilot_server::serve::{Cluster, ControlPlane};
use serde_json::json;
use tokio::sync::watch;
use tracing::{info, warn};

/// How often the driver looks.
const RESYNC: Duration = Duration::from_secs(1);

/// Runs until the future is dropped (at shutdown). In Kubernetes mode the
/// state directory `state_dir` follows the replicas' shared Secret, and
/// only the leader moves a rotation on, once every replica's proxies have
/// the bundle (see `discovery_kubernetes::ca_sync`).
pub(crate) async fn drive(
    control_plane: &ControlPlane,
    signer: Arc<Signer>,
    trust: &watch::Sender<Trust>,
    state_dir: Option<&Path>,
) {
    let mut driver = Driver::default();
    let mut replicas = control_plane
        .cluster()
        .zip(state_dir)
        .map(|(cluster, dir)| Replicas::new(cluster, dir));
    let mut tick = tokio::time::interval(RESYNC);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Some(replicas) = &mut replicas {
            replicas.before(&mut driver, &signer).await;
        }
        driver.step(control_plane, &signer, SystemTime::now());
        if let Some(replicas) = &mut replicas {
            replicas.after(&mut driver).await;
        }
        let now = signer.ca.trust();
        trust.send_if_modified(|published| {
            let changed = *published != now;
            if changed {
                if now.reissue {
                    info!("root rotation (forced): every workload is asked to renew now");
                }
                *published = now;
            }
            changed
        });
    }
}

#[derive(Debug, Default)]
struct Driver {
    /// The bundle last published, and the first snapshot generation that
    /// served it: what every proxy must have ACKed.
    published: Option<(Arc<str>, u64)>,
    /// The last error, logged once until it changes.
    error: Option<String>,
    /// With replicas: this one does not lead, so it moves no rotation on.
    follows: bool,
    /// With replicas: the others whose proxies do not all have the bundle.
    lagging: Vec<String>,
    /// This replica's proxies not done with the bundle, after a step.
    pending: usize,
}

/// The CA's state shared with the other replicas, and the leader's view of
/// how far the trust bundle has reached their proxies.
struct Replicas {
    follower: Follower,
    distribution: Distribution,
    leading: watch::Receiver<bool>,
    /// The last error, logged once until it changes.
    error: Option<String>,
}

impl Replicas {
    fn new(cluster: &Cluster, dir: &Path) -> Self {
        Replicas {
            follower: Follower::start(cluster.client.clone(), &cluster.namespace, dir),
            distribution: Distribution::new(
                cluster.client.clone(),
                &cluster.namespace,
                &cluster.identity,
            ),
            leading: cluster.leading.clone(),
            error: None,
        }
    }

    /// Before a step: the Secret's state into the directory (or this
    /// replica's out to it), and, for the leader in a rotation's first
    /// step, who is not done with the bundle.
    async fn before(&mut self, driver: &mut Driver, signer: &Signer) {
        if let Err(error) = self.follower.sync().await {
            self.fail(&error);
        }
        driver.follows = !*self.leading.borrow();
        driver.lagging.clear();
        if driver.follows || signer.ca.rotation().step != Step::Distributing {
            return;
        }
        let bundle = bundle_id(&signer.ca.trust_bundle_pem());
        match self.distribution.reports().await {
            Ok(reports) => {
                driver.lagging = lagging(&reports, &bundle, unix(SystemTime::now()));
            }
            Err(error) => {
                self.fail(&error);
                // Unknown is not done.
                driver.lagging = vec!["(the reports could not be read)".to_string()];
            }
        }
    }

    /// After a step: this replica's word on the bundle it serves.
    async fn after(&mut self, driver: &mut Driver) {
        let Some((bundle, _)) = &driver.published else {
            return;
        };
        let bundle = bundle_id(bundle);
        let refresh = driver.pending > 0;
        if let Err(error) = self
            .distribution
            .report(&bundle, driver.pending, refresh, SystemTime::now())
            .await
        {
            self.fail(&error);
        }
    }

    fn fail(&mut self, error: &ca_sync::Error) {
        let text = format!("{error:#}");
        if self.error.as_deref() != Some(&text) {
            warn!(%error, "the CA's state across replicas");
            self.error = Some(text);
        }
    }
}

/// A short, stable name for a trust bundle, which replicas compare.
fn bundle_id(bundle: &str) -> String {
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(bundle.as_bytes()))
}

fn unix(time: SystemTime) -> u64 {
    time.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Driver {
    fn step(&mut self, control_plane: &ControlPlane, signer: &Signer, now: SystemTime) {
        let ca = &signer.ca;
        match ca.reload() {
            Ok(true) => {
                info!(step = ?ca.rotation().step, "the CA reloaded its state (root rotation or plug-in files)")
            }
            Ok(false) => {}
            Err(error) => self.fail(&error),
        }
        let bundle = ca.trust_bundle_pem();
        control_plane.set_trust_bundle(&bundle);
        let snapshot = control_plane.snapshots().borrow().clone();
        let serves_it = snapshot.trust_bundle.as_deref() == Some(&*bundle);
        let known = self.published.as_ref().is_some_and(|(b, _)| *b == bundle);
        if serves_it && !known {
            self.published = Some((bundle.clone(), snapshot.generation));
        }
        let generation = self
            .published
            .as_ref()
            .filter(|(b, _)| *b == bundle)
            .map(|(_, g)| *g);

        let rotation = ca.rotation();
        let pending = match generation {
            Some(generation) => pending_proxies(control_plane, generation),
            None => Vec::new(),
        };
        self.pending = pending.len();
        match rotation.step {
            // A replica that does not lead follows the Secret instead.
            _ if self.follows => {}
            Step::Distributing
                if generation.is_some() && pending.is_empty() && self.lagging.is_empty() =>
            {
                match ca.sign_with_new_root() {
                    Ok(next) => info!(
                        signing = %next.signing,
                        old_signed_until = next.old_signed_until,
                        "root rotation: every proxy trusts the new root; it signs from now on"
                    ),
                    Err(error) => self.fail(&error),
                }
            }
            Step::Reissuing => match ca.retire_old_root(now) {
                Ok(Some(next)) => {
                    info!(bundle = ?next.bundle, "root rotation: the old root left the bundle");
                    control_plane.set_trust_bundle(&ca.trust_bundle_pem());
                }
                Ok(None) => {}
                Err(error) => self.fail(&error),
            },
            Step::Distributing | Step::Idle => {}
        }

        if let Err(error) = ca.save_issued(now) {
            self.fail(&error);
        }
        let mut view = serde_json::to_value(ca.status(now)).unwrap_or_default();
        if let Some(rotation) = view.get_mut("rotation") {
            rotation["bundle_generation"] = json!(generation);
            rotation["pending_proxies"] = json!(pending);
            rotation["pending_replicas"] = json!(self.lagging);
            rotation["moved_on_here"] = json!(!self.follows);
        }
        control_plane.set_ca_status(view);
    }

    fn fail(&mut self, error: &citadel::authority::Error) {
        let text = format!("{error:#}");
        if self.error.as_deref() != Some(&text) {
            warn!(%error, "root rotation");
            self.error = Some(text);
        }
    }
}

/// Sidecars that subscribe `ROOTCA` and have not ACKed `generation` (or a
/// later one) of it: what step (1) waits for.
fn pending_proxies(control_plane: &ControlPlane, generation: u64) -> Vec<String> {
    let sds = ResourceType::Secret.type_url();
    control_plane
        .status()
        .list()
        .into_iter()
        .filter(|p| {
            p.xds
                .get(sds)
                .is_some_and(|s| s.acked_generation.is_none_or(|g| g < generation))
        })
        .map(|p| p.id)
        .collect()
}
