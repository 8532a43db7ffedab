//! The load harness and mesh generator behind `bowline bench`: how a user
//! sizes a control plane.
//!
//! ```text
//! bowline bench mesh ──► config dir ──► bowline serve ◄──ADS── bowline bench xds (N sidecars)
//!                            ▲                                      │
//!                            └────── edits (VirtualService, endpoint)┘
//! ```
//!
//! - [`mesh`] writes meshes of any size and makes the edits scenarios need.
//! - [`flow`] is one simulated Envoy's ADS request flow, a state machine
//!   with no I/O; [`facts`] decodes what it needs of each resource, once per
//!   distinct content.
//! - [`xds`] runs a fleet of flows over real connections through a scenario;
//!   [`procstat`] samples the server; [`report`] prints and serializes.
//!
//! The harness speaks only xDS to the server and reads only `/proc` of it:
//! it does not depend on the control plane's crates, so it measures Bowline
//! exactly as it would any other ADS server.

pub mod facts;
pub mod flow;
pub mod mesh;
pub mod procstat;
pub mod report;
pub mod xds;

/// `bowline bench`.
#[derive(clap::Args, Debug, Clone)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(clap::Subcommand, Debug, Clone)]
pub enum Verb {
    /// Write a generated mesh into a config directory.
    Mesh(mesh::MeshArgs),
    /// Simulate N Envoy sidecars against an ADS server through one scenario.
    Xds(xds::XdsArgs),
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Mesh(#[from] mesh::Error),
    #[error(transparent)]
    Xds(#[from] xds::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Runs a `bowline bench` verb. Blocking: `xds` builds its own runtime with
/// `--threads` workers, so call this outside of any runtime.
pub fn run(args: BenchArgs) -> Result<()> {
    match args.verb {
        Verb::Mesh(a) => mesh::run(&a)?,
        Verb::Xds(a) => xds::run(a)?,
    }
    Ok(())
}
