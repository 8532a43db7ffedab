//! The two variants of the xDS protocol: what the agent asks Envoy to speak,
//! and what the server's state machine follows on a stream.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The two variants of the xDS protocol.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// State of the world: every response carries the full set of a type
    /// (`api_type: GRPC`).
    #[default]
    Sotw,
    /// Incremental: responses carry changed resources and removed names
    /// (`api_type: DELTA_GRPC`).
    Delta,
}

/// A name that is not one of [`Mode::NAMES`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown xDS mode {0:?}: expected sotw or delta")]
pub struct UnknownMode(pub String);

impl Mode {
    /// Every mode's name, as written on the command line and in JSON.
    pub const NAMES: [&'static str; 2] = ["sotw", "delta"];

    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Sotw => "sotw",
            Mode::Delta => "delta",
        }
    }

    /// The bootstrap's `ApiConfigSource.api_type` for this mode.
    pub fn api_type(self) -> &'static str {
        match self {
            Mode::Sotw => "GRPC",
            Mode::Delta => "DELTA_GRPC",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Mode {
    type Err = UnknownMode;

    fn from_str(s: &str) -> Result<Self, UnknownMode> {
        match s {
            "sotw" => Ok(Mode::Sotw),
            "delta" => Ok(Mode::Delta),
            other => Err(UnknownMode(other.to_string())),
        }
    }
}
