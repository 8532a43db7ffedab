//! A network namespace of a test's own, and a gate in it that orders TCP
//! connection attempts by count rather than by time.
//!
//! A test that shapes packets must not touch the machine's loopback, which
//! every other test and person on the machine shares. `run` gives the test a
//! thread in a new, anonymous network namespace with its own `lo`; every
//! process and thread the test starts from there (control plane, agents,
//! Envoys, applications, the runtime's workers) lives in it, and it vanishes
//! with the last of them: there is nothing to clean up, even when the test
//! fails.
//!
//! `SynGate` is a token bucket on that `lo` through which only the SYNs to
//! one address go: the bucket holds one packet's worth, so the first SYN
//! passes and every later one waits in the queue (the bucket refills at one
//! byte a second, so it would take a minute) until the test opens the gate.
//!
//! ```text
//! SYN 1 ──► passes ──► whatever the address answers (RST if nothing listens)
//! SYN 2 ──► held ──► test acts ──► open() drops it ──► the kernel's
//!                                  retransmission goes straight through
//! ```

use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::Command;

use nix::sched::{CloneFlags, unshare};

/// Runs `test` on a thread of its own in a new network namespace whose `lo`
/// is up, on a Tokio runtime built there. Where the namespace cannot be
/// made (not root, or iproute2 missing), says so and returns: the test is
/// skipped.
pub fn run<F, Fut>(name: &str, test: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: Future<Output = ()>,
{
    let name = name.to_string();
    let thread = std::thread::Builder::new()
        .name(name.clone())
        .spawn(move || {
            if let Err(why) = enter(&name) {
                // Straight to the stream, past the test harness's capture, so
                // that a skip is never mistaken for a pass.
                let _ = writeln!(std::io::stderr(), "SKIPPED {name}: {why}");
                return;
            }
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap()
                .block_on(test());
        })
        .unwrap();
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

/// Moves the calling thread into a new network namespace and brings its
/// loopback up.
fn enter(name: &str) -> Result<(), String> {
    let ip = tool("ip").ok_or("it needs `ip` and `tc` (iproute2), and `ip` is not installed")?;
    tool("tc").ok_or("it needs `ip` and `tc` (iproute2), and `tc` is not installed")?;
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| {
        format!("it needs a network namespace of its own (root or CAP_SYS_ADMIN): unshare: {e}")
    })?;
    run_tool(&ip, &["link", "set", "lo", "up"]);
    eprintln!("{name}: running in a network namespace of its own");
    Ok(())
}

/// An iproute2 tool: on `$PATH`, or in the sbin folders that a non-root
/// `$PATH` often leaves out.
fn tool(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Runs an iproute2 command, and panics with its error output if it fails.
fn run_tool(tool: &std::path::Path, args: &[&str]) -> String {
    let out = Command::new(tool).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "{} {}: {}",
        tool.display(),
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn tc(args: &[&str]) -> String {
    run_tool(&tool("tc").expect("tc"), args)
}

/// What a `SynGate` has seen: SYNs let through, and SYNs waiting.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateCount {
    pub passed: u64,
    pub held: u64,
}

/// A gate on `lo` for the connection attempts (TCP SYNs) to one IPv4
/// address: the first passes, the others wait until `open`. Only for use
/// inside `run`, where `lo` is the test's own.
#[derive(Debug)]
pub struct SynGate {
    open: bool,
}

/// The HTB class the gated SYNs go to; everything else goes to `1:10`.
const GATED: &str = "1:20";

impl SynGate {
    /// Closes a gate on SYNs to `to`, letting the next one through.
    pub fn install(to: SocketAddr) -> SynGate {
        let IpAddr::V4(ip) = to.ip() else {
            panic!("SynGate: {to} is not IPv4")
        };
        tc(&[
            "qdisc", "add", "dev", "lo", "root", "handle", "1:", "htb", "default", "10",
        ]);
        // Everything else: far more than the tests send.
        tc(&[
            "class", "add", "dev", "lo", "parent", "1:", "classid", "1:10", "htb", "rate",
            "10gbit", "quantum", "65536",
        ]);
        // One byte a second, with a one-byte bucket that starts full: one
        // packet of any size goes through, and leaves a debt that takes the
        // bucket about a minute to refill (HTB caps it there), so the next
        // packet waits in the queue until the gate is opened.
        tc(&[
            "class", "add", "dev", "lo", "parent", "1:", "classid", GATED, "htb", "rate", "8bit",
            "ceil", "8bit", "burst", "1b", "cburst", "1b", "quantum", "1514",
        ]);
        // IPv4 TCP to the address and port with SYN set and ACK clear. The
        // offsets assume a 20-byte IP header, which the kernel's own SYNs
        // have (it sends no IP options).
        let dst = format!("{ip}/32");
        let port = to.port().to_string();
        tc(&[
            "filter", "add", "dev", "lo", "parent", "1:", "protocol", "ip", "prio", "1", "u32",
            "match", "ip", "dst", &dst, "match", "ip", "protocol", "6", "0xff", "match", "ip",
            "dport", &port, "0xffff", "match", "u8", "0x02", "0x12", "at", "33", "flowid", GATED,
        ]);
        SynGate { open: false }
    }

    /// How many SYNs went through and how many wait.
    pub fn count(&self) -> GateCount {
        let stats = tc(&["-s", "class", "show", "dev", "lo", "classid", GATED]);
        // " Sent 74 bytes 1 pkt (dropped 0, ...)" and " backlog 74b 1p requeues 0"
        let line = |prefix: &str| {
            stats
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with(prefix))
                .unwrap_or_else(|| panic!("no {prefix:?} line in tc's output: {stats}"))
        };
        let words: Vec<&str> = line("Sent ").split_whitespace().collect();
        let passed = words
            .windows(2)
            .find(|w| w[1] == "pkt")
            .and_then(|w| w[0].parse().ok());
        let held = line("backlog ")
            .split_whitespace()
            .find_map(|w| w.strip_suffix('p')?.parse().ok());
        match (passed, held) {
            (Some(passed), Some(held)) => GateCount { passed, held },
            _ => panic!("unexpected tc output: {stats}"),
        }
    }

    /// Opens the gate: the waiting SYNs are dropped, and their connections'
    /// retransmissions (the kernel's, within a second or so) pass freely.
    pub fn open(mut self) {
        self.open = true;
        tc(&["qdisc", "del", "dev", "lo", "root"]);
    }
}

impl Drop for SynGate {
    fn drop(&mut self) {
        // The namespace goes with the test; this only spares a failing
        // test's last requests a minute's wait on the bucket.
        if !self.open
            && let Some(tc) = tool("tc")
        {
            let _ = Command::new(tc)
                .args(["qdisc", "del", "dev", "lo", "root"])
                .output();
        }
    }
}
