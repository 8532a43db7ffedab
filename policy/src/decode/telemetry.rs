//! `telemetry.istio.io`: Telemetry. Its `tracing` and `metrics`, and
//! `targetRef(s)`, are "not supported yet".

use serde_yaml::Value;

use super::{Fields, Result, Shape, ShapeId, boolean, keyword, list, string, string_map};
use crate::diag::FieldPath;
use crate::meta::ObjectMeta;
use crate::telemetry::{AccessLogging, Telemetry, TelemetrySpec, WorkloadMode};

pub(super) const TELEMETRY: Shape = Shape {
    name: "Telemetry.spec",
    known: &["selector", "accessLogging"],
    unsupported: &["tracing", "metrics", "targetRef", "targetRefs"],
    ignored: &[],
    proto_names: true,
};

pub(super) const SELECTOR: Shape = Shape {
    name: "Telemetry.spec.selector",
    known: &["matchLabels"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const ACCESS_LOGGING: Shape = Shape {
    name: "Telemetry.spec.accessLogging[]",
    known: &["providers", "disabled", "match", "filter"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const PROVIDER: Shape = Shape {
    name: "Telemetry.spec.accessLogging[].providers[]",
    known: &["name"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const MATCH: Shape = Shape {
    name: "Telemetry.spec.accessLogging[].match",
    known: &["mode"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const FILTER: Shape = Shape {
    name: "Telemetry.spec.accessLogging[].filter",
    known: &["expression"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

const MODES: [(&str, WorkloadMode); 3] = [
    ("CLIENT_AND_SERVER", WorkloadMode::ClientAndServer),
    ("CLIENT", WorkloadMode::Client),
    ("SERVER", WorkloadMode::Server),
];

pub(crate) fn decode_telemetry(
    meta: ObjectMeta,
    path: &FieldPath,
    spec: &Value,
) -> Result<Telemetry> {
    let fields = Fields::new(spec, path, ShapeId::Telemetry)?;
    let selector = match fields.get("selector") {
        Some((p, v)) => {
            let selector = Fields::new(v, &p, ShapeId::TelemetrySelector)?;
            Some(match selector.get("matchLabels") {
                Some((p, v)) => string_map(v, &p)?,
                None => Default::default(),
            })
        }
        None => None,
    };
    let mut access_logging = Vec::new();
    if let Some((p, v)) = fields.get("accessLogging") {
        for (p, v) in list(v, &p)? {
            access_logging.push(entry(v, &p)?);
        }
    }
    Ok(Telemetry {
        meta,
        spec: TelemetrySpec {
            selector,
            access_logging,
        },
    })
}

fn entry(value: &Value, path: &FieldPath) -> Result<AccessLogging> {
    let fields = Fields::new(value, path, ShapeId::TelemetryAccessLogging)?;
    let mut providers = Vec::new();
    if let Some((p, v)) = fields.get("providers") {
        for (p, v) in list(v, &p)? {
            let provider = Fields::new(v, &p, ShapeId::TelemetryProvider)?;
            if let Some((p, v)) = provider.get("name") {
                providers.push(string(v, &p)?);
            }
        }
    }
    let disabled = match fields.get("disabled") {
        Some((p, v)) => Some(boolean(v, &p)?),
        None => None,
    };
    let mode = match fields.get("match") {
        Some((p, v)) => {
            let matched = Fields::new(v, &p, ShapeId::TelemetryMatch)?;
            match matched.get("mode") {
                Some((p, v)) => keyword(v, &p, &MODES)?,
                None => WorkloadMode::ClientAndServer,
            }
        }
        None => WorkloadMode::ClientAndServer,
    };
    let filter = match fields.get("filter") {
        Some((p, v)) => {
            let filter = Fields::new(v, &p, ShapeId::TelemetryFilter)?;
            match filter.get("expression") {
                Some((p, v)) => Some(string(v, &p)?).filter(|e| !e.is_empty()),
                None => None,
            }
        }
        None => None,
    };
    Ok(AccessLogging {
        providers,
        disabled,
        mode,
        filter,
    })
}
