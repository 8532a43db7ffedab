//! Samples a process's CPU time and memory from `/proc`.
//!
//! CPU is utime + stime from `/proc/PID/stat` in clock ticks; Linux reports
//! those in USER_HZ, which is 100 on every architecture it ships for, so a
//! sample has 10 ms resolution. Memory is VmRSS and VmHWM from
//! `/proc/PID/status`; kernel socket buffers are not in it.

use serde::Serialize;

/// Clock ticks per second of `/proc/PID/stat` (USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// One sample of a process.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Sample {
    pub phase: String,
    pub pid: u32,
    /// Seconds since the run started.
    pub at_s: f64,
    pub rss_kib: u64,
    pub hwm_kib: u64,
    pub cpu_s: f64,
    pub threads: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("/proc/{pid}/{file}: {source}")]
    Read {
        pid: u32,
        file: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("/proc/{pid}/{file}: unexpected format: {reason}")]
    Format {
        pid: u32,
        file: &'static str,
        reason: String,
    },
}

/// Reads one sample of process `pid`.
pub fn sample(pid: u32, phase: &str, at_s: f64) -> Result<Sample, Error> {
    let read = |file: &'static str| {
        std::fs::read_to_string(format!("/proc/{pid}/{file}")).map_err(|source| Error::Read {
            pid,
            file,
            source,
        })
    };
    let cpu_s = cpu_seconds(&read("stat")?).map_err(|reason| Error::Format {
        pid,
        file: "stat",
        reason,
    })?;
    let status = read("status")?;
    let field = |key: &str| -> Result<u64, Error> {
        status_field(&status, key).ok_or_else(|| Error::Format {
            pid,
            file: "status",
            reason: format!("no {key} line"),
        })
    };
    Ok(Sample {
        phase: phase.to_string(),
        pid,
        at_s,
        rss_kib: field("VmRSS")?,
        hwm_kib: field("VmHWM")?,
        cpu_s,
        threads: field("Threads")?,
    })
}

/// utime + stime of a `/proc/PID/stat` line, in seconds.
fn cpu_seconds(stat: &str) -> Result<f64, String> {
    // The command name (field 2) is in parentheses and may contain spaces.
    let after = stat
        .rfind(')')
        .map(|i| &stat[i + 1..])
        .ok_or("no ')' after the command name")?;
    // After the name: state is field 3, so utime (14) and stime (15) are the
    // 12th and 13th fields here.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| -> Result<u64, String> {
        fields
            .get(i)
            .and_then(|f| f.parse().ok())
            .ok_or_else(|| format!("field {} is not a number", i + 3))
    };
    Ok((tick(11)? + tick(12)?) as f64 / TICKS_PER_SECOND)
}

/// A `Key:   123 kB` (or bare number) line of `/proc/PID/status`.
fn status_field(status: &str, key: &str) -> Option<u64> {
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(key)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_stat_with_spaces_in_the_name() {
        let stat = "4242 (my (odd) server) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 130 0 0 20 0 3 0 100 1000 200";
        assert_eq!(cpu_seconds(stat), Ok(3.8));
        assert!(cpu_seconds("4242 (x) S 1").is_err());
    }

    #[test]
    fn parses_status_fields() {
        let status = "Name:\tbowline\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\nThreads:\t3\n";
        assert_eq!(status_field(status, "VmRSS"), Some(10240));
        assert_eq!(status_field(status, "VmHWM"), Some(20480));
        assert_eq!(status_field(status, "Threads"), Some(3));
        assert_eq!(status_field(status, "VmSwap"), None);
    }

    #[test]
    fn samples_this_process() {
        let s = sample(std::process::id(), "now", 0.0).unwrap();
        assert!(s.rss_kib > 0 && s.hwm_kib >= s.rss_kib && s.threads >= 1);
        assert!(matches!(
            sample(u32::MAX, "x", 0.0),
            Err(Error::Read { .. })
        ));
    }
}
