//! `telemetry.istio.io`: Telemetry. Its `tracing` and `metrics`, and
//! `targetRef(s)`, are "not supported yet".

use serde_yaml::Value;

use super::{
    DecodeError, Fields, Result, Shape, ShapeId, boolean, keyword, list, map_entries, number,
    string, string_map,
};
use crate::diag::FieldPath;
use crate::meta::ObjectMeta;
use crate::telemetry::{AccessLogging, CustomTag, Telemetry, TelemetrySpec, Tracing, WorkloadMode};

pub(super) const TELEMETRY: Shape = Shape {
    name: "Telemetry.spec",
    known: &["selector", "accessLogging", "tracing"],
    unsupported: &["metrics", "targetRef", "targetRefs"],
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

pub(super) const TRACING: Shape = Shape {
    name: "Telemetry.spec.tracing[]",
    known: &[
        "providers",
        "match",
        "randomSamplingPercentage",
        "disableSpanReporting",
        "customTags",
    ],
    unsupported: &["useRequestIdForTraceSampling", "enableIstioTags"],
    ignored: &[],
    proto_names: true,
};

pub(super) const TRACING_PROVIDER: Shape = Shape {
    name: "Telemetry.spec.tracing[].providers[]",
    known: &["name"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const TRACING_MATCH: Shape = Shape {
    name: "Telemetry.spec.tracing[].match",
    known: &["mode"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

/// A `customTags` value, named here after a tag called `tag`.
pub(super) const CUSTOM_TAG: Shape = Shape {
    name: "Telemetry.spec.tracing[].customTags.tag",
    known: &["literal", "environment", "header"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const TAG_LITERAL: Shape = Shape {
    name: "Telemetry.spec.tracing[].customTags.tag.literal",
    known: &["value"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const TAG_ENVIRONMENT: Shape = Shape {
    name: "Telemetry.spec.tracing[].customTags.tag.environment",
    known: &["name", "defaultValue"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const TAG_HEADER: Shape = Shape {
    name: "Telemetry.spec.tracing[].customTags.tag.header",
    known: &["name", "defaultValue"],
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
    let mut tracing = Vec::new();
    if let Some((p, v)) = fields.get("tracing") {
        for (p, v) in list(v, &p)? {
            tracing.push(tracing_entry(v, &p)?);
        }
    }
    Ok(Telemetry {
        meta,
        spec: TelemetrySpec {
            selector,
            access_logging,
            tracing,
        },
    })
}

fn tracing_entry(value: &Value, path: &FieldPath) -> Result<Tracing> {
    let fields = Fields::new(value, path, ShapeId::TelemetryTracing)?;
    let mut providers = Vec::new();
    if let Some((p, v)) = fields.get("providers") {
        for (p, v) in list(v, &p)? {
            let provider = Fields::new(v, &p, ShapeId::TelemetryTracingProvider)?;
            if let Some((p, v)) = provider.get("name") {
                providers.push(string(v, &p)?);
            }
        }
    }
    let mode = match fields.get("match") {
        Some((p, v)) => {
            let matched = Fields::new(v, &p, ShapeId::TelemetryTracingMatch)?;
            match matched.get("mode") {
                Some((p, v)) => keyword(v, &p, &MODES)?,
                None => WorkloadMode::ClientAndServer,
            }
        }
        None => WorkloadMode::ClientAndServer,
    };
    let random_sampling_percentage = match fields.get("randomSamplingPercentage") {
        Some((p, v)) => {
            let pct = number(v, &p)?;
            if !(0.0..=100.0).contains(&pct) {
                return Err(DecodeError::new(
                    &p,
                    format!("{pct} is not a percentage between 0 and 100"),
                ));
            }
            Some(pct)
        }
        None => None,
    };
    let disable_span_reporting = match fields.get("disableSpanReporting") {
        Some((p, v)) => Some(boolean(v, &p)?),
        None => None,
    };
    let mut custom_tags = std::collections::BTreeMap::new();
    if let Some((p, v)) = fields.get("customTags") {
        for (name, p, v) in map_entries(v, &p)? {
            custom_tags.insert(name, custom_tag(v, &p)?);
        }
    }
    Ok(Tracing {
        providers,
        mode,
        random_sampling_percentage,
        disable_span_reporting,
        custom_tags,
    })
}

fn custom_tag(value: &Value, path: &FieldPath) -> Result<CustomTag> {
    let fields = Fields::new(value, path, ShapeId::TelemetryCustomTag)?;
    let named = |v: &Value, p: &FieldPath, shape: ShapeId| -> Result<(String, String)> {
        let f = Fields::new(v, p, shape)?;
        let name = match f.get("name") {
            Some((p, v)) => string(v, &p)?,
            None => return Err(DecodeError::new(&p.field("name"), "a name is required")),
        };
        let default = match f.get("defaultValue") {
            Some((p, v)) => string(v, &p)?,
            None => String::new(),
        };
        Ok((name, default))
    };
    match (
        fields.get("literal"),
        fields.get("environment"),
        fields.get("header"),
    ) {
        (Some((p, v)), None, None) => {
            let f = Fields::new(v, &p, ShapeId::TelemetryTagLiteral)?;
            let value = match f.get("value") {
                Some((p, v)) => string(v, &p)?,
                None => String::new(),
            };
            Ok(CustomTag::Literal(value))
        }
        (None, Some((p, v)), None) => {
            let (name, default) = named(v, &p, ShapeId::TelemetryTagEnvironment)?;
            Ok(CustomTag::Environment { name, default })
        }
        (None, None, Some((p, v))) => {
            let (name, default) = named(v, &p, ShapeId::TelemetryTagHeader)?;
            Ok(CustomTag::Header { name, default })
        }
        _ => Err(DecodeError::new(
            path,
            "a custom tag is one of literal, environment or header",
        )),
    }
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
