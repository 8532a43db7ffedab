//! `telemetry.istio.io` (`v1`, `v1alpha1`): Telemetry, the subset Bowline
//! honours: who it applies to (`selector`), its `accessLogging` and its
//! `tracing`. `metrics` and `targetRef(s)` are not supported yet.

use crate::meta::ObjectMeta;
use crate::security::MatchLabels;

#[derive(Clone, Debug, PartialEq)]
pub struct Telemetry {
    pub meta: ObjectMeta,
    pub spec: TelemetrySpec,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TelemetrySpec {
    /// `None`: the whole namespace (or, in the root namespace, the mesh).
    pub selector: Option<MatchLabels>,
    pub access_logging: Vec<AccessLogging>,
    pub tracing: Vec<Tracing>,
}

/// One `tracing` entry.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Tracing {
    /// Provider names (Istio uses the first); empty: the parent's.
    pub providers: Vec<String>,
    pub mode: WorkloadMode,
    /// `randomSamplingPercentage`, 0 to 100.
    pub random_sampling_percentage: Option<f64>,
    pub disable_span_reporting: Option<bool>,
    /// `customTags`, by tag name.
    pub custom_tags: std::collections::BTreeMap<String, CustomTag>,
}

/// A `customTags` value: what a span's tag is set to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CustomTag {
    Literal(String),
    /// An environment variable of the proxy, else `default`.
    Environment {
        name: String,
        default: String,
    },
    /// A request header, else `default`.
    Header {
        name: String,
        default: String,
    },
}

/// One `accessLogging` entry.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AccessLogging {
    /// Provider names, from the mesh config's `extensionProviders` (or the
    /// built-in `envoy`); empty: the parent level's, else the mesh
    /// config's `defaultProviders.accessLogging`.
    pub providers: Vec<String>,
    /// `Some(true)`: these providers log nothing here.
    pub disabled: Option<bool>,
    /// Which side of a connection it is for (`match.mode`).
    pub mode: WorkloadMode,
    /// `filter.expression`: a CEL expression; only what it matches is logged.
    pub filter: Option<String>,
}

/// `match.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkloadMode {
    /// The sidecar's outbound side.
    Client,
    /// The sidecar's inbound side.
    Server,
    #[default]
    ClientAndServer,
}

impl WorkloadMode {
    /// Whether an entry of this mode applies to the side `side`
    /// (`Client` or `Server`).
    pub fn covers(self, side: WorkloadMode) -> bool {
        self == WorkloadMode::ClientAndServer || self == side
    }
}
