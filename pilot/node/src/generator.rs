//! Which kind of xDS client a node is, from its `GENERATOR` metadata (the
//! key and values Istio uses): an Envoy sidecar, or a proxyless gRPC client
//! that reads xDS itself (gRPC's xDS resolver and balancer).

use std::fmt;

/// The kind of xDS client behind a node, which decides the config it gets.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Generator {
    /// An Envoy sidecar: outbound and inbound listeners bound to the
    /// workload's address. Nodes without `GENERATOR` are Envoys.
    #[default]
    Envoy,
    /// A proxyless gRPC client (`GENERATOR: grpc`): one API listener per
    /// service `host:port`, named as a `xds:///host:port` target asks for
    /// it, and no address-bound listeners.
    Grpc,
}

/// A `GENERATOR` value that is not one of [`Generator::NAMES`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown generator {0:?}: expected grpc, or no GENERATOR for an Envoy sidecar")]
pub struct UnknownGenerator(pub String);

impl Generator {
    /// The values of `GENERATOR`, by kind; Envoy's is what Istio writes
    /// for its sidecars (and what an absent key means).
    pub const NAMES: [&'static str; 2] = ["istio", "grpc"];

    pub fn as_str(self) -> &'static str {
        match self {
            Generator::Envoy => "istio",
            Generator::Grpc => "grpc",
        }
    }

    /// Whether the node is a proxyless gRPC client.
    pub fn is_proxyless(self) -> bool {
        self == Generator::Grpc
    }

    /// The kind a `GENERATOR` value names.
    pub fn parse(value: &str) -> Result<Generator, UnknownGenerator> {
        match value {
            "istio" => Ok(Generator::Envoy),
            "grpc" => Ok(Generator::Grpc),
            other => Err(UnknownGenerator(other.to_string())),
        }
    }
}

impl fmt::Display for Generator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
