//! Traffic capture: the iptables rules (`nat` table, as `iptables-restore`
//! reads them) that send a pod's TCP through its sidecar, as istio-init
//! installs them. Pure; `bowline capture` (the injected init container)
//! hands them to `iptables-restore`.
//!
//! ```text
//! inbound:  PREROUTING ─► BOWLINE_INBOUND ─ excluded port ─► RETURN
//!                                         └─► BOWLINE_IN_REDIRECT ─► REDIRECT :inbound (15006)
//! outbound: OUTPUT ─► BOWLINE_OUTPUT ─ from 127.0.0.6 (the sidecar's inbound upstreams) ─► RETURN
//!                                   ─ the sidecar's own user or group ──────────────► RETURN
//!                                   ─ to 127.0.0.1, excluded ports or ranges ───────► RETURN
//!                                   └─► BOWLINE_REDIRECT ─► REDIRECT :outbound
//! ```
//!
//! The sidecar's own traffic is told apart by its user (the image's, 1337
//! as Istio's), so Envoy's upstream connections leave uncaptured; its
//! inbound upstream connections to the application go from 127.0.0.6, so
//! they do not loop back into the inbound capture either. The outbound
//! capture port is one of its own: 15001 is the explicit outbound listener.

use std::fmt::Write;

/// What to capture, and where to send it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CaptureConfig {
    /// The sidecar's user and group: their traffic is never captured.
    pub proxy_uid: u32,
    pub proxy_gid: u32,
    /// Where captured inbound connections go (Istio's 15006).
    pub inbound_port: u16,
    /// Where captured outbound connections go.
    pub outbound_port: u16,
    /// Inbound ports left alone (the agent's and Envoy's own: admin,
    /// status, stats), so the kubelet and Prometheus reach them directly.
    pub exclude_inbound_ports: Vec<u16>,
    /// Outbound ports left alone.
    pub exclude_outbound_ports: Vec<u16>,
    /// Outbound destinations left alone (`CIDR`).
    pub exclude_outbound_cidrs: Vec<String>,
}

pub use pilot_node::{INBOUND_CAPTURE_PORT, OUTBOUND_CAPTURE_PORT};

pub use pilot_node::INBOUND_PASSTHROUGH_SOURCE;

impl Default for CaptureConfig {
    fn default() -> Self {
        CaptureConfig {
            proxy_uid: 1337,
            proxy_gid: 1337,
            inbound_port: INBOUND_CAPTURE_PORT,
            outbound_port: OUTBOUND_CAPTURE_PORT,
            exclude_inbound_ports: vec![15000, 15020, 15090],
            exclude_outbound_ports: Vec::new(),
            exclude_outbound_cidrs: Vec::new(),
        }
    }
}

/// The rules, as `iptables-restore --noflush` reads them: the chains are
/// Bowline's own (declaring them empties them), so other rules stay.
pub fn rules(config: &CaptureConfig) -> String {
    let mut out = String::from("*nat\n");
    for chain in [
        "BOWLINE_INBOUND",
        "BOWLINE_IN_REDIRECT",
        "BOWLINE_OUTPUT",
        "BOWLINE_REDIRECT",
    ] {
        let _ = writeln!(out, ":{chain} - [0:0]");
    }
    let mut rule = |r: String| {
        out.push_str(&r);
        out.push('\n');
    };
    rule(format!(
        "-A BOWLINE_IN_REDIRECT -p tcp -j REDIRECT --to-ports {}",
        config.inbound_port
    ));
    rule(format!(
        "-A BOWLINE_REDIRECT -p tcp -j REDIRECT --to-ports {}",
        config.outbound_port
    ));
    rule("-A PREROUTING -p tcp -j BOWLINE_INBOUND".into());
    // The capture ports themselves, or a redirected connection would loop.
    let mut inbound_excluded = config.exclude_inbound_ports.clone();
    inbound_excluded.extend([config.inbound_port, config.outbound_port]);
    inbound_excluded.sort_unstable();
    inbound_excluded.dedup();
    for port in inbound_excluded {
        rule(format!(
            "-A BOWLINE_INBOUND -p tcp --dport {port} -j RETURN"
        ));
    }
    rule("-A BOWLINE_INBOUND -p tcp -j BOWLINE_IN_REDIRECT".into());
    rule("-A OUTPUT -p tcp -j BOWLINE_OUTPUT".into());
    rule(format!(
        "-A BOWLINE_OUTPUT -o lo -s {INBOUND_PASSTHROUGH_SOURCE}/32 -j RETURN"
    ));
    rule(format!(
        "-A BOWLINE_OUTPUT -m owner --uid-owner {} -j RETURN",
        config.proxy_uid
    ));
    rule(format!(
        "-A BOWLINE_OUTPUT -m owner --gid-owner {} -j RETURN",
        config.proxy_gid
    ));
    rule("-A BOWLINE_OUTPUT -d 127.0.0.1/32 -j RETURN".into());
    for port in &config.exclude_outbound_ports {
        rule(format!("-A BOWLINE_OUTPUT -p tcp --dport {port} -j RETURN"));
    }
    for cidr in &config.exclude_outbound_cidrs {
        rule(format!("-A BOWLINE_OUTPUT -d {cidr} -j RETURN"));
    }
    rule("-A BOWLINE_OUTPUT -j BOWLINE_REDIRECT".into());
    out.push_str("COMMIT\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_rules_capture_both_ways_and_spare_the_sidecar() {
        let text = rules(&CaptureConfig::default());
        let expected = "\
*nat
:BOWLINE_INBOUND - [0:0]
:BOWLINE_IN_REDIRECT - [0:0]
:BOWLINE_OUTPUT - [0:0]
:BOWLINE_REDIRECT - [0:0]
-A BOWLINE_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A BOWLINE_REDIRECT -p tcp -j REDIRECT --to-ports 15002
-A PREROUTING -p tcp -j BOWLINE_INBOUND
-A BOWLINE_INBOUND -p tcp --dport 15000 -j RETURN
-A BOWLINE_INBOUND -p tcp --dport 15002 -j RETURN
-A BOWLINE_INBOUND -p tcp --dport 15006 -j RETURN
-A BOWLINE_INBOUND -p tcp --dport 15020 -j RETURN
-A BOWLINE_INBOUND -p tcp --dport 15090 -j RETURN
-A BOWLINE_INBOUND -p tcp -j BOWLINE_IN_REDIRECT
-A OUTPUT -p tcp -j BOWLINE_OUTPUT
-A BOWLINE_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
-A BOWLINE_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A BOWLINE_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A BOWLINE_OUTPUT -d 127.0.0.1/32 -j RETURN
-A BOWLINE_OUTPUT -j BOWLINE_REDIRECT
COMMIT
";
        assert_eq!(text, expected);
    }

    #[test]
    fn exclusions_are_returned_before_the_redirect() {
        let text = rules(&CaptureConfig {
            exclude_outbound_ports: vec![5432],
            exclude_outbound_cidrs: vec!["169.254.169.254/32".into()],
            ..CaptureConfig::default()
        });
        let at = |needle: &str| text.find(needle).unwrap();
        assert!(at("--dport 5432 -j RETURN") < at("-j BOWLINE_REDIRECT\n"));
        assert!(at("-d 169.254.169.254/32 -j RETURN") < at("-j BOWLINE_REDIRECT\n"));
    }
}
