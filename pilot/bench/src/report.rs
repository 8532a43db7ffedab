//! The figures of a run: distributions, counters, process samples; printed
//! as a table and written as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::mesh::Edit;
use crate::procstat::Sample;

/// A distribution of durations, in milliseconds (nearest-rank percentiles).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Distribution {
    pub count: usize,
    pub p50_ms: Option<f64>,
    pub p90_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    pub max_ms: Option<f64>,
    pub mean_ms: Option<f64>,
    /// Expected values that never came.
    pub missing: usize,
}

impl Distribution {
    /// From one value per subject, `None` where it never happened.
    pub fn of(values: impl IntoIterator<Item = Option<f64>>) -> Self {
        let mut missing = 0;
        let mut v: Vec<f64> = Vec::new();
        for x in values {
            match x {
                Some(x) => v.push(x),
                None => missing += 1,
            }
        }
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| -> Option<f64> {
            if v.is_empty() {
                return None;
            }
            let i = ((p / 100.0) * v.len() as f64).ceil() as usize;
            Some(v[i.clamp(1, v.len()) - 1])
        };
        Distribution {
            count: v.len(),
            p50_ms: rank(50.0),
            p90_ms: rank(90.0),
            p99_ms: rank(99.0),
            max_ms: v.last().copied(),
            mean_ms: (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64),
            missing,
        }
    }
}

/// Responses of one type received in one phase of the run.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct TypeCounts {
    #[serde(rename = "type")]
    pub ty: &'static str,
    /// `sync` (before the change) or `change` (from the first edit on).
    pub phase: &'static str,
    pub responses: u64,
    pub resources: u64,
    /// Delta `removed_resources`.
    pub removed: u64,
    /// Encoded size of the responses (the gRPC message, without its frame header).
    pub bytes: u64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Errors {
    pub connect_failures: u64,
    /// Open streams that ended or failed (each is opened again).
    pub stream_resets: u64,
    /// Attempts to open a stream that failed (the server was down).
    pub stream_open_failures: u64,
    pub nacks: u64,
    pub last_error: Option<String>,
}

/// Samples of one process and what follows from them.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ProcessReport {
    pub pid: u32,
    pub samples: Vec<Sample>,
    /// (RSS after sync - RSS before) / proxies.
    pub marginal_rss_per_proxy_kib: Option<f64>,
    pub cpu_s_initial_sync: Option<f64>,
    pub cpu_s_convergence: Option<f64>,
}

impl ProcessReport {
    pub fn new(pid: u32, samples: Vec<Sample>, proxies: usize) -> Self {
        let find = |phase: &str| samples.iter().find(|s| s.phase == phase);
        let (before, synced, converged) = (
            find("before"),
            find("after_sync"),
            find("after_convergence"),
        );
        let marginal = match (before, synced) {
            (Some(b), Some(s)) if proxies > 0 => {
                Some((s.rss_kib as f64 - b.rss_kib as f64) / proxies as f64)
            }
            _ => None,
        };
        // CPU time is per process: after a restart, count from the new one's start.
        let diff = |a: Option<&Sample>, b: Option<&Sample>| {
            let (a, b) = (a?, b?);
            (a.pid == b.pid).then_some(b.cpu_s - a.cpu_s)
        };
        let restarted = find("restarted");
        ProcessReport {
            pid,
            marginal_rss_per_proxy_kib: marginal,
            cpu_s_initial_sync: diff(before, synced),
            cpu_s_convergence: diff(synced, converged)
                .or_else(|| Some(converged?.cpu_s - restarted?.cpu_s)),
            samples,
        }
    }
}

/// What happened after the change (none in the connect scenario).
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct ChangeReport {
    /// Edits made (churn: many; vs-edit and endpoint-move: one; restart: none).
    pub edits: usize,
    /// The last edit.
    pub last_edit: Option<Edit>,
    /// Proxies whose config held the changed service when the change came.
    pub affected: usize,
    /// From the (last) edit until the proxy held the new state and had ACKed it.
    pub converged: Distribution,
    pub never_converged: usize,
    /// Proxies whose config did not hold the changed service.
    pub unaffected: usize,
    /// Of those, how many received any response after the change.
    pub unaffected_with_responses: usize,
    pub unaffected_responses: u64,
    /// From the edit until the wait for convergence and quiet ended.
    pub waited_s: f64,
    /// Restart: from the kill until the old server exited, and until the new one accepted connections.
    pub server_exit_s: Option<f64>,
    pub server_ready_s: Option<f64>,
}

/// The whole report of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Report {
    pub tool: &'static str,
    pub target: String,
    pub scenario: String,
    pub mode: String,
    pub proxies: usize,
    pub mesh: crate::mesh::MeshSpec,
    pub wall_s: f64,
    pub connect: Distribution,
    pub initial_sync: Distribution,
    /// Seconds from the start until the last proxy synced; none if some never did.
    pub all_synced_s: Option<f64>,
    pub change: Option<ChangeReport>,
    pub types: Vec<TypeCounts>,
    pub errors: Errors,
    pub server: Option<ProcessReport>,
    pub client: ProcessReport,
    /// Distinct resources the harness decoded.
    pub distinct_resources: usize,
}

impl Report {
    /// Every proxy synced and every affected proxy converged.
    pub fn complete(&self) -> bool {
        self.initial_sync.missing == 0
            && self.change.as_ref().is_none_or(|c| c.never_converged == 0)
    }

    /// The human-readable table.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let ms = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.1}"));
        let dist = |d: &Distribution| {
            format!(
                "{:>6} {:>10} {:>10} {:>10} {:>10} {:>8}",
                d.count,
                ms(d.p50_ms),
                ms(d.p90_ms),
                ms(d.p99_ms),
                ms(d.max_ms),
                d.missing
            )
        };
        let _ = writeln!(
            t,
            "bowline bench xds: {} proxies, {}, scenario {}, target {}",
            self.proxies, self.mode, self.scenario, self.target
        );
        let m = &self.mesh;
        let _ = writeln!(
            t,
            "mesh: {} services x {} endpoints, {} namespaces, sidecar scope {}",
            m.services,
            m.endpoints,
            m.namespaces,
            m.sidecar_scope
                .map_or("none".to_string(), |s| s.to_string())
        );
        let _ = writeln!(
            t,
            "\n{:<22} {:>6} {:>10} {:>10} {:>10} {:>10} {:>8}",
            "(ms)", "count", "p50", "p90", "p99", "max", "missing"
        );
        let _ = writeln!(t, "{:<22} {}", "connect", dist(&self.connect));
        let _ = writeln!(t, "{:<22} {}", "initial sync", dist(&self.initial_sync));
        if let Some(c) = &self.change {
            let _ = writeln!(t, "{:<22} {}", "convergence", dist(&c.converged));
        }
        let _ = writeln!(
            t,
            "\nall synced after: {}",
            self.all_synced_s.map_or(
                "never (some proxies did not sync)".to_string(),
                |s| format!("{s:.2} s")
            )
        );
        if let Some(c) = &self.change {
            let _ = writeln!(
                t,
                "change: {} edit(s); affected {}, never converged {}; unaffected {}, of which {} received {} responses; waited {:.2} s",
                c.edits,
                c.affected,
                c.never_converged,
                c.unaffected,
                c.unaffected_with_responses,
                c.unaffected_responses,
                c.waited_s
            );
            if let (Some(exit), Some(ready)) = (c.server_exit_s, c.server_ready_s) {
                let _ = writeln!(
                    t,
                    "restart: old server exited {exit:.2} s after the kill, new one ready after {ready:.2} s"
                );
            }
        }
        let _ = writeln!(
            t,
            "\n{:<6} {:<7} {:>10} {:>10} {:>8} {:>14}",
            "type", "phase", "responses", "resources", "removed", "bytes"
        );
        for c in &self.types {
            let _ = writeln!(
                t,
                "{:<6} {:<7} {:>10} {:>10} {:>8} {:>14}",
                c.ty, c.phase, c.responses, c.resources, c.removed, c.bytes
            );
        }
        let e = &self.errors;
        let _ = writeln!(
            t,
            "\nstream resets {}, failed stream opens {}, connect failures {}, nacks {}{}",
            e.stream_resets,
            e.stream_open_failures,
            e.connect_failures,
            e.nacks,
            e.last_error
                .as_ref()
                .map(|s| format!(", last error: {s}"))
                .unwrap_or_default()
        );
        for (who, p) in [
            ("server", self.server.as_ref()),
            ("client", Some(&self.client)),
        ] {
            let Some(p) = p else { continue };
            let _ = writeln!(
                t,
                "\n{who} (pid {}):",
                p.samples.last().map_or(p.pid, |s| s.pid)
            );
            let _ = writeln!(
                t,
                "  {:<18} {:>8} {:>12} {:>12} {:>10} {:>8}",
                "phase", "at s", "RSS KiB", "HWM KiB", "CPU s", "threads"
            );
            for s in &p.samples {
                let _ = writeln!(
                    t,
                    "  {:<18} {:>8.2} {:>12} {:>12} {:>10.2} {:>8}",
                    s.phase, s.at_s, s.rss_kib, s.hwm_kib, s.cpu_s, s.threads
                );
            }
            let f = |v: Option<f64>, unit: &str| {
                v.map_or("-".to_string(), |v| format!("{v:.2} {unit}"))
            };
            let _ = writeln!(
                t,
                "  marginal RSS per proxy {}; CPU for initial sync {}, for convergence {}",
                f(p.marginal_rss_per_proxy_kib, "KiB"),
                f(p.cpu_s_initial_sync, "s"),
                f(p.cpu_s_convergence, "s")
            );
        }
        t
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let d = Distribution::of((1..=100).map(|i| Some(i as f64)).chain([None]));
        assert_eq!(d.count, 100);
        assert_eq!(d.missing, 1);
        assert_eq!(d.p50_ms, Some(50.0));
        assert_eq!(d.p90_ms, Some(90.0));
        assert_eq!(d.p99_ms, Some(99.0));
        assert_eq!(d.max_ms, Some(100.0));
        assert_eq!(d.mean_ms, Some(50.5));
        let one = Distribution::of([Some(7.0)]);
        assert_eq!((one.p50_ms, one.p99_ms), (Some(7.0), Some(7.0)));
        let none = Distribution::of([None, None]);
        assert_eq!((none.count, none.missing, none.p50_ms), (0, 2, None));
    }

    #[test]
    fn process_report_derives_marginal_memory_and_cpu() {
        let s = |phase: &str, rss, cpu| Sample {
            phase: phase.into(),
            pid: 1,
            at_s: 0.0,
            rss_kib: rss,
            hwm_kib: rss,
            cpu_s: cpu,
            threads: 1,
        };
        let p = ProcessReport::new(
            1,
            vec![
                s("before", 1000, 1.0),
                s("after_sync", 3000, 2.5),
                s("after_convergence", 3100, 2.75),
            ],
            100,
        );
        assert_eq!(p.marginal_rss_per_proxy_kib, Some(20.0));
        assert_eq!(p.cpu_s_initial_sync, Some(1.5));
        assert_eq!(p.cpu_s_convergence, Some(0.25));

        // A restart: the new process's CPU counts from its own start.
        let mut restarted = s("restarted", 900, 0.0);
        restarted.pid = 2;
        let mut after = s("after_convergence", 2000, 0.5);
        after.pid = 2;
        let p = ProcessReport::new(
            1,
            vec![
                s("before", 1000, 1.0),
                s("after_sync", 3000, 2.5),
                restarted,
                after,
            ],
            100,
        );
        assert_eq!(p.cpu_s_convergence, Some(0.5));
    }
}
