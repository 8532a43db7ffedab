//! Running Envoy as a supervised child process.
//!
//! ```text
//! Sidecar::start ──► write bootstrap ──► spawn envoy ──► supervisor task
//!                                                           │ exits unexpectedly: log, back off, respawn
//!                                                           │ too many quick exits: give up with an error
//! Sidecar::stop ──► SIGTERM ──► wait up to 5s ──► SIGKILL ◄──┘
//! ```
//!
//! The child is spawned with `kill_on_drop`, so dropping a `Sidecar` (or its
//! runtime) never leaves Envoy behind.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use tokio::process::{Child, Command};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::bootstrap::{self, BootstrapConfig};

/// How long Envoy gets to exit after SIGTERM before it is killed.
pub const STOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot write bootstrap {}", path.display())]
    WriteBootstrap {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start envoy {}", path.display())]
    Spawn {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot wait for envoy")]
    Wait(#[source] std::io::Error),
    #[error("envoy exited {failures} times in quick succession, last with {status}; giving up")]
    GaveUp { failures: u32, status: ExitStatus },
    #[error("envoy supervisor task failed")]
    Task(#[source] tokio::task::JoinError),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// When and how often Envoy is restarted after exiting on its own.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartPolicy {
    /// A run shorter than this counts as a quick failure; a longer one resets the count.
    pub quick: Duration,
    /// Give up after this many quick failures in a row.
    pub max_quick_failures: u32,
    /// Delay before the first restart; it doubles after each quick failure.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        RestartPolicy {
            quick: Duration::from_secs(10),
            max_quick_failures: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(5),
        }
    }
}

impl RestartPolicy {
    fn backoff(&self, failures: u32) -> Duration {
        let factor = 1u32 << failures.saturating_sub(1).min(16);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }
}

/// Everything needed to run one sidecar.
#[derive(Clone, Debug)]
pub struct SidecarConfig {
    pub bootstrap: BootstrapConfig,
    /// The Envoy binary (see `envoy::locate`).
    pub envoy: PathBuf,
    /// Where the bootstrap file is written; created if missing.
    pub work_dir: PathBuf,
    /// Envoy's `--log-level`.
    pub log_level: String,
    /// Envoy's `--log-path`; Envoy logs to the inherited stderr when unset.
    pub log_file: Option<PathBuf>,
    pub restart: RestartPolicy,
}

impl SidecarConfig {
    /// A configuration logging at `warning` to stderr, with the default restart policy.
    pub fn new(bootstrap: BootstrapConfig, envoy: PathBuf, work_dir: PathBuf) -> Self {
        SidecarConfig {
            bootstrap,
            envoy,
            work_dir,
            log_level: "warning".into(),
            log_file: None,
            restart: RestartPolicy::default(),
        }
    }

    /// The bootstrap file's path: one per node, so sidecars can share a work dir.
    pub fn bootstrap_path(&self) -> PathBuf {
        let b = &self.bootstrap.node;
        self.work_dir.join(format!(
            "envoy-{}.{}-{}.json",
            b.workload, b.namespace, b.address
        ))
    }
}

/// A running, supervised Envoy.
#[derive(Debug)]
pub struct Sidecar {
    node_id: String,
    admin: SocketAddr,
    bootstrap_path: PathBuf,
    pid: Arc<AtomicU32>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<Result<()>>>,
}

impl Sidecar {
    /// Writes the bootstrap, starts Envoy and supervises it until `stop`.
    pub async fn start(cfg: SidecarConfig) -> Result<Sidecar> {
        let path = cfg.bootstrap_path();
        write_bootstrap(&cfg, &path).await?;
        let launcher = Launcher {
            envoy: cfg.envoy,
            bootstrap: path.clone(),
            log_level: cfg.log_level,
            log_file: cfg.log_file,
        };
        let child = launcher.spawn()?;
        let node_id = cfg.bootstrap.node_id();
        let pid = Arc::new(AtomicU32::new(child.id().unwrap_or(0)));
        tracing::info!(node = %node_id, pid = pid.load(Ordering::Relaxed), bootstrap = %path.display(), "envoy started");
        let (shutdown, shutdown_rx) = watch::channel(false);
        let supervisor = Supervisor {
            launcher,
            policy: cfg.restart,
            pid: pid.clone(),
            shutdown: shutdown_rx,
            node_id: node_id.clone(),
        };
        let task = tokio::spawn(supervisor.run(child));
        Ok(Sidecar {
            node_id,
            admin: cfg.bootstrap.admin_addr(),
            bootstrap_path: path,
            pid,
            shutdown,
            task: Some(task),
        })
    }

    pub fn node_id(&self) -> &str {
        &self.node_id
    }

    /// Where Envoy's admin interface listens.
    pub fn admin_addr(&self) -> SocketAddr {
        self.admin
    }

    pub fn bootstrap_path(&self) -> &Path {
        &self.bootstrap_path
    }

    /// The process id of the current Envoy, if one is running.
    pub fn pid(&self) -> Option<u32> {
        match self.pid.load(Ordering::Relaxed) {
            0 => None,
            pid => Some(pid),
        }
    }

    /// Waits until supervision ends on its own, which happens only when
    /// Envoy keeps failing. Cancel-safe.
    pub async fn wait(&mut self) -> Result<()> {
        let Some(task) = self.task.as_mut() else {
            return Ok(());
        };
        let outcome = task.await;
        self.task = None;
        outcome.map_err(Error::Task)?
    }

    /// Stops Envoy: SIGTERM, then SIGKILL after `STOP_GRACE`. Returns the
    /// supervisor's error if it had already given up.
    pub async fn stop(mut self) -> Result<()> {
        self.shutdown.send_replace(true);
        self.wait().await
    }
}

async fn write_bootstrap(cfg: &SidecarConfig, path: &Path) -> Result<()> {
    let io_err = |source| Error::WriteBootstrap {
        path: path.to_path_buf(),
        source,
    };
    tokio::fs::create_dir_all(&cfg.work_dir)
        .await
        .map_err(io_err)?;
    let mut text = serde_json::to_string_pretty(&bootstrap::build(&cfg.bootstrap))
        .map_err(|e| io_err(e.into()))?;
    text.push('\n');
    tokio::fs::write(path, text).await.map_err(io_err)
}

/// How to start one Envoy process.
#[derive(Debug)]
struct Launcher {
    envoy: PathBuf,
    bootstrap: PathBuf,
    log_level: String,
    log_file: Option<PathBuf>,
}

impl Launcher {
    fn spawn(&self) -> Result<Child> {
        let mut cmd = Command::new(&self.envoy);
        cmd.arg("-c")
            .arg(&self.bootstrap)
            .arg("--disable-hot-restart")
            .arg("--log-level")
            .arg(&self.log_level);
        if let Some(log) = &self.log_file {
            cmd.arg("--log-path").arg(log);
        }
        // Its own process group: a terminal's Ctrl-C reaches only the agent,
        // which then stops Envoy in order.
        cmd.stdin(Stdio::null()).process_group(0).kill_on_drop(true);
        cmd.spawn().map_err(|source| Error::Spawn {
            path: self.envoy.clone(),
            source,
        })
    }
}

#[derive(Debug)]
struct Supervisor {
    launcher: Launcher,
    policy: RestartPolicy,
    pid: Arc<AtomicU32>,
    shutdown: watch::Receiver<bool>,
    node_id: String,
}

impl Supervisor {
    async fn run(mut self, mut child: Child) -> Result<()> {
        let mut started = Instant::now();
        let mut failures = 0u32;
        loop {
            let status = tokio::select! {
                biased;
                _ = wait_for_shutdown(&mut self.shutdown) => {
                    terminate(&mut child).await;
                    self.pid.store(0, Ordering::Relaxed);
                    return Ok(());
                }
                status = child.wait() => status.map_err(Error::Wait)?,
            };
            self.pid.store(0, Ordering::Relaxed);
            if *self.shutdown.borrow() {
                tracing::info!(node = %self.node_id, %status, "envoy exited while stopping");
                return Ok(());
            }
            if started.elapsed() < self.policy.quick {
                failures += 1;
            } else {
                failures = 1;
            }
            tracing::warn!(node = %self.node_id, %status, failures, "envoy exited unexpectedly");
            if failures >= self.policy.max_quick_failures {
                tracing::error!(node = %self.node_id, failures, "envoy keeps failing; giving up");
                return Err(Error::GaveUp { failures, status });
            }
            let delay = self.policy.backoff(failures);
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = wait_for_shutdown(&mut self.shutdown) => return Ok(()),
            }
            child = self.launcher.spawn()?;
            started = Instant::now();
            let pid = child.id().unwrap_or(0);
            self.pid.store(pid, Ordering::Relaxed);
            tracing::info!(node = %self.node_id, pid, ?delay, "envoy restarted");
        }
    }
}

/// Resolves once shutdown is requested (or the `Sidecar` is gone).
async fn wait_for_shutdown(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// SIGTERM, a grace period, then SIGKILL; always reaps the child.
async fn terminate(child: &mut Child) {
    let Some(pid) = child.id() else {
        return;
    };
    let sent = i32::try_from(pid)
        .ok()
        .map(|pid| kill(Pid::from_raw(pid), Signal::SIGTERM));
    if let Some(Err(err)) = sent {
        tracing::warn!(pid, %err, "cannot send SIGTERM to envoy");
    }
    match tokio::time::timeout(STOP_GRACE, child.wait()).await {
        Ok(Ok(status)) => tracing::info!(pid, %status, "envoy stopped"),
        Ok(Err(err)) => tracing::warn!(pid, %err, "cannot wait for envoy"),
        Err(_) => {
            tracing::warn!(pid, "envoy ignored SIGTERM; killing it");
            if let Err(err) = child.kill().await {
                tracing::warn!(pid, %err, "cannot kill envoy");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RestartPolicy::default();
        let delays: Vec<u64> = (1..=7)
            .map(|n| policy.backoff(n).as_millis() as u64)
            .collect();
        assert_eq!(delays, [200, 400, 800, 1600, 3200, 5000, 5000]);
    }
}
