//! `bowline capture`: installs the pod's traffic capture (the injected
//! `bowline-init` container runs it, as root with NET_ADMIN), the rules of
//! `pilot_agent::capture` handed to `iptables-restore --noflush`.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::Context;
use pilot_agent::capture::{CaptureConfig, INBOUND_CAPTURE_PORT, OUTBOUND_CAPTURE_PORT, rules};

/// Flags of `bowline capture`.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct CaptureArgs {
    /// The sidecar's user, whose traffic is never captured.
    #[arg(long, default_value_t = 1337)]
    pub(crate) proxy_uid: u32,
    /// The sidecar's group [default: --proxy-uid]
    #[arg(long)]
    pub(crate) proxy_gid: Option<u32>,
    /// Inbound ports to capture: `*` (every port but the excluded), as
    /// Istio's default.
    #[arg(long, default_value = "*", value_parser = ["*"])]
    pub(crate) inbound_ports: String,
    /// Inbound ports left alone, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "15000,15020,15090")]
    pub(crate) exclude_inbound_ports: Vec<u16>,
    /// Outbound ports left alone, comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(crate) exclude_outbound_ports: Vec<u16>,
    /// Outbound destinations left alone (CIDRs), comma-separated.
    #[arg(long, value_delimiter = ',')]
    pub(crate) exclude_outbound_ranges: Vec<String>,
    /// Where captured inbound connections go.
    #[arg(long, default_value_t = INBOUND_CAPTURE_PORT)]
    pub(crate) inbound_capture_port: u16,
    /// Where captured outbound connections go.
    #[arg(long, default_value_t = OUTBOUND_CAPTURE_PORT)]
    pub(crate) outbound_capture_port: u16,
    /// Print the rules instead of installing them.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

impl CaptureArgs {
    fn config(&self) -> anyhow::Result<CaptureConfig> {
        for cidr in &self.exclude_outbound_ranges {
            let (ip, bits) = cidr.split_once('/').unwrap_or((cidr, "32"));
            anyhow::ensure!(
                ip.parse::<std::net::Ipv4Addr>().is_ok()
                    && bits.parse::<u8>().is_ok_and(|b| b <= 32),
                "--exclude-outbound-ranges {cidr}: not an IPv4 CIDR"
            );
        }
        Ok(CaptureConfig {
            proxy_uid: self.proxy_uid,
            proxy_gid: self.proxy_gid.unwrap_or(self.proxy_uid),
            inbound_port: self.inbound_capture_port,
            outbound_port: self.outbound_capture_port,
            exclude_inbound_ports: self.exclude_inbound_ports.clone(),
            exclude_outbound_ports: self.exclude_outbound_ports.clone(),
            exclude_outbound_cidrs: self.exclude_outbound_ranges.clone(),
        })
    }
}

pub(crate) fn run(args: CaptureArgs) -> anyhow::Result<()> {
    let text = rules(&args.config()?);
    if args.dry_run {
        print!("{text}");
        return Ok(());
    }
    let mut child = Command::new("iptables-restore")
        .arg("--noflush")
        .stdin(Stdio::piped())
        .spawn()
        .context("running iptables-restore")?;
    child
        .stdin
        .take()
        .context("iptables-restore's stdin")?
        .write_all(text.as_bytes())?;
    let status = child.wait()?;
    anyhow::ensure!(status.success(), "iptables-restore failed: {status}");
    eprint!("{text}");
    Ok(())
}
