//! VirtualService and DestinationRule: how requests to a host are routed, and
//! the subsets they may be routed to.

use serde_yaml::Value;

use super::workload::check_export_to;
use super::{
    DecodeError, Fields, Findings, Result, Shape, list, port, string, string_list, string_map,
    uint32,
};
use crate::diag::{Diagnostic, FieldPath};
use crate::networking::{
    Destination, DestinationRule, DestinationRuleSpec, HttpMatchRequest, HttpRoute,
    HttpRouteDestination, StringMatch, Subset, VirtualService, VirtualServiceSpec,
};
use crate::object::ObjectMeta;

const VIRTUAL_SERVICE: Shape = Shape {
    known: &["hosts", "http", "gateways", "exportTo"],
    unsupported: &["tcp", "tls"],
    ignored: &[],
    proto_names: true,
};

const HTTP_ROUTE: Shape = Shape {
    known: &["name", "match", "route"],
    unsupported: &[
        "redirect",
        "directResponse",
        "delegate",
        "rewrite",
        "timeout",
        "retries",
        "fault",
        "mirror",
        "mirrors",
        "mirrorPercentage",
        "mirrorPercent",
        "corsPolicy",
        "headers",
    ],
    ignored: &[],
    proto_names: true,
};

const HTTP_MATCH: Shape = Shape {
    known: &["name", "uri"],
    unsupported: &[
        "scheme",
        "method",
        "authority",
        "headers",
        "port",
        "sourceLabels",
        "gateways",
        "queryParams",
        "ignoreUriCase",
        "withoutHeaders",
        "sourceNamespace",
        "statPrefix",
    ],
    ignored: &[],
    proto_names: true,
};

const STRING_MATCH: Shape = Shape {
    known: &["exact", "prefix", "regex"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

const ROUTE_DESTINATION: Shape = Shape {
    known: &["destination", "weight"],
    unsupported: &["headers"],
    ignored: &[],
    proto_names: true,
};

const DESTINATION: Shape = Shape {
    known: &["host", "subset", "port"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

const PORT_SELECTOR: Shape = Shape {
    known: &["number"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

const DESTINATION_RULE: Shape = Shape {
    known: &["host", "subsets", "exportTo"],
    unsupported: &["trafficPolicy", "workloadSelector"],
    ignored: &[],
    proto_names: true,
};

const SUBSET: Shape = Shape {
    known: &["name", "labels"],
    unsupported: &["trafficPolicy"],
    ignored: &[],
    proto_names: true,
};

fn opt_string(fields: &Fields<'_>, name: &str) -> Result<Option<String>> {
    fields.get(name).map(|(p, v)| string(v, &p)).transpose()
}

pub(crate) fn decode_virtual_service(
    meta: ObjectMeta,
    path: &FieldPath,
    spec: &Value,
    findings: &mut Findings,
) -> Result<VirtualService> {
    let fields = Fields::new(spec, path, &VIRTUAL_SERVICE)?;
    if let Some((p, v)) = fields.get("gateways") {
        for (p, v) in list(v, &p)? {
            if string(v, &p)? != "mesh" {
                return Err(DecodeError::new(
                    &p,
                    "field is not supported yet (only the value \"mesh\" is)",
                ));
            }
        }
    }
    if let Some((p, v)) = fields.get("exportTo") {
        check_export_to(v, &p)?;
    }
    let hosts = fields
        .get("hosts")
        .map(|(p, v)| string_list(v, &p))
        .transpose()?
        .unwrap_or_default();
    let mut http = Vec::new();
    if let Some((p, v)) = fields.get("http") {
        for (p, v) in list(v, &p)? {
            http.push(decode_http_route(&p, v, findings)?);
        }
    }
    Ok(VirtualService {
        meta,
        spec: VirtualServiceSpec {
            hosts,
            http,
            ..Default::default()
        },
    })
}

fn decode_http_route(
    path: &FieldPath,
    value: &Value,
    findings: &mut Findings,
) -> Result<HttpRoute> {
    let fields = Fields::new(value, path, &HTTP_ROUTE)?;
    let name = opt_string(&fields, "name")?;
    let mut matches = Vec::new();
    if let Some((p, v)) = fields.get("match") {
        for (p, v) in list(v, &p)? {
            matches.push(decode_match(&p, v, findings)?);
        }
    }
    let mut route = Vec::new();
    if let Some((p, v)) = fields.get("route") {
        for (p, v) in list(v, &p)? {
            route.push(decode_route_destination(&p, v)?);
        }
    }
    Ok(HttpRoute {
        name,
        matches,
        route,
        ..Default::default()
    })
}

fn decode_match(
    path: &FieldPath,
    value: &Value,
    findings: &mut Findings,
) -> Result<HttpMatchRequest> {
    let fields = Fields::new(value, path, &HTTP_MATCH)?;
    let name = opt_string(&fields, "name")?;
    let uri = match fields.get("uri") {
        Some((p, v)) => decode_string_match(&p, v, findings)?,
        None => None,
    };
    Ok(HttpMatchRequest {
        name,
        uri,
        ..Default::default()
    })
}

/// Exactly one of `exact`, `prefix` and `regex`. When that does not hold the
/// finding is recorded and decoding goes on, so the rest is checked too.
fn decode_string_match(
    path: &FieldPath,
    value: &Value,
    findings: &mut Findings,
) -> Result<Option<StringMatch>> {
    let fields = Fields::new(value, path, &STRING_MATCH)?;
    let mut set = Vec::new();
    for name in STRING_MATCH.known {
        if let Some((p, v)) = fields.get(name) {
            let text = string(v, &p)?;
            set.push(match *name {
                "exact" => StringMatch::Exact(text),
                "prefix" => StringMatch::Prefix(text),
                _ => StringMatch::Regex(text),
            });
        }
    }
    if set.len() != 1 {
        findings.push(Diagnostic::error(
            path.clone(),
            format!(
                "exactly one of exact, prefix or regex must be set, got {}",
                set.len()
            ),
        ));
    }
    Ok(set.into_iter().next())
}

fn decode_route_destination(path: &FieldPath, value: &Value) -> Result<HttpRouteDestination> {
    let fields = Fields::new(value, path, &ROUTE_DESTINATION)?;
    let (p, v) = fields.require("destination")?;
    let destination = decode_destination(&p, v)?;
    let weight = fields
        .get("weight")
        .map(|(p, v)| uint32(v, &p))
        .transpose()?;
    Ok(HttpRouteDestination {
        destination,
        weight,
        headers: None,
    })
}

fn decode_destination(path: &FieldPath, value: &Value) -> Result<Destination> {
    let fields = Fields::new(value, path, &DESTINATION)?;
    let host = opt_string(&fields, "host")?.unwrap_or_default();
    let subset = opt_string(&fields, "subset")?;
    let port = match fields.get("port") {
        Some((p, v)) => {
            let selector = Fields::new(v, &p, &PORT_SELECTOR)?;
            selector
                .get("number")
                .map(|(p, v)| port(v, &p))
                .transpose()?
        }
        None => None,
    };
    Ok(Destination { host, subset, port })
}

pub(crate) fn decode_destination_rule(
    meta: ObjectMeta,
    path: &FieldPath,
    spec: &Value,
) -> Result<DestinationRule> {
    let fields = Fields::new(spec, path, &DESTINATION_RULE)?;
    if let Some((p, v)) = fields.get("exportTo") {
        check_export_to(v, &p)?;
    }
    let host = opt_string(&fields, "host")?.unwrap_or_default();
    let mut subsets = Vec::new();
    if let Some((p, v)) = fields.get("subsets") {
        for (p, v) in list(v, &p)? {
            let fields = Fields::new(v, &p, &SUBSET)?;
            subsets.push(Subset {
                name: opt_string(&fields, "name")?.unwrap_or_default(),
                labels: fields
                    .get("labels")
                    .map(|(p, v)| string_map(v, &p))
                    .transpose()?
                    .unwrap_or_default(),
                traffic_policy: None,
            });
        }
    }
    Ok(DestinationRule {
        meta,
        spec: DestinationRuleSpec {
            host,
            subsets,
            ..Default::default()
        },
    })
}
