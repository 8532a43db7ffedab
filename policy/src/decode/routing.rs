//! VirtualService: how requests to a host are routed.

use serde_yaml::Value;

use super::actions::{
    decode_cors, decode_direct_response, decode_fault, decode_headers, decode_percentage,
    decode_redirect, decode_retries, decode_rewrite,
};
use super::matching::decode_match;
use super::{
    DecodeError, Fields, Findings, Result, Shape, ShapeId, duration, list, port, string,
    string_list, uint32,
};
use crate::diag::{Diagnostic, FieldPath};
use crate::meta::ObjectMeta;
use crate::networking::{
    Destination, HttpRoute, HttpRouteDestination, VirtualService, VirtualServiceSpec,
};

pub(super) const VIRTUAL_SERVICE: Shape = Shape {
    name: "VirtualService.spec",
    known: &["hosts", "http", "gateways", "exportTo"],
    unsupported: &["tcp", "tls"],
    ignored: &[],
    proto_names: true,
};

pub(super) const HTTP_ROUTE: Shape = Shape {
    name: "VirtualService.spec.http[]",
    known: &[
        "name",
        "match",
        "route",
        "redirect",
        "directResponse",
        "rewrite",
        "timeout",
        "retries",
        "fault",
        "mirror",
        "mirrorPercentage",
        "mirrorPercent",
        "corsPolicy",
        "headers",
    ],
    unsupported: &["delegate", "mirrors"],
    ignored: &[],
    proto_names: true,
};

pub(super) const ROUTE_DESTINATION: Shape = Shape {
    name: "VirtualService.spec.http[].route[]",
    known: &["destination", "weight", "headers"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const DESTINATION: Shape = Shape {
    name: "VirtualService.spec.http[].route[].destination",
    known: &["host", "subset", "port"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const PORT_SELECTOR: Shape = Shape {
    name: "VirtualService.spec.http[].route[].destination.port",
    known: &["number"],
    unsupported: &[],
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
    let fields = Fields::new(spec, path, ShapeId::VirtualService)?;
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
    let export_to = fields
        .get("exportTo")
        .map(|(p, v)| string_list(v, &p))
        .transpose()?
        .unwrap_or_default();
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
            export_to,
        },
    })
}

fn decode_http_route(
    path: &FieldPath,
    value: &Value,
    findings: &mut Findings,
) -> Result<HttpRoute> {
    let fields = Fields::new(value, path, ShapeId::HttpRoute)?;
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
    let with = |name: &str| fields.get(name);
    Ok(HttpRoute {
        name,
        matches,
        route,
        redirect: with("redirect")
            .map(|(p, v)| decode_redirect(&p, v))
            .transpose()?,
        direct_response: with("directResponse")
            .map(|(p, v)| decode_direct_response(&p, v))
            .transpose()?,
        rewrite: with("rewrite")
            .map(|(p, v)| decode_rewrite(&p, v))
            .transpose()?,
        timeout: with("timeout").map(|(p, v)| duration(v, &p)).transpose()?,
        retries: with("retries")
            .map(|(p, v)| decode_retries(&p, v))
            .transpose()?,
        fault: with("fault")
            .map(|(p, v)| decode_fault(&p, v))
            .transpose()?,
        mirror: with("mirror")
            .map(|(p, v)| decode_destination(&p, v))
            .transpose()?,
        mirror_percentage: mirror_percentage(&fields, findings)?,
        cors_policy: with("corsPolicy")
            .map(|(p, v)| decode_cors(&p, v, findings))
            .transpose()?,
        headers: with("headers")
            .map(|(p, v)| decode_headers(&p, v))
            .transpose()?,
    })
}

/// `mirrorPercentage.value`, or the deprecated integer `mirrorPercent`
/// (`mirror_percent`), which Istio accepts with a deprecation warning; giving
/// both is an error.
fn mirror_percentage(fields: &Fields<'_>, findings: &mut Findings) -> Result<Option<f64>> {
    let modern = fields
        .get("mirrorPercentage")
        .map(|(p, v)| decode_percentage(&p, v))
        .transpose()?;
    match (modern, fields.get("mirrorPercent")) {
        (Some(_), Some((p, _))) => Err(DecodeError::new(
            &p,
            "set only one of mirrorPercentage and the deprecated mirrorPercent",
        )),
        (Some(value), None) => Ok(Some(value)),
        (None, Some((p, v))) => {
            let percent = f64::from(uint32(v, &p)?);
            findings.push(Diagnostic::warning(
                p,
                "mirrorPercent is deprecated: use mirrorPercentage (it means the same)",
            ));
            Ok(Some(percent))
        }
        (None, None) => Ok(None),
    }
}

fn decode_route_destination(path: &FieldPath, value: &Value) -> Result<HttpRouteDestination> {
    let fields = Fields::new(value, path, ShapeId::RouteDestination)?;
    let (p, v) = fields.require("destination")?;
    let destination = decode_destination(&p, v)?;
    let weight = fields
        .get("weight")
        .map(|(p, v)| uint32(v, &p))
        .transpose()?;
    let headers = fields
        .get("headers")
        .map(|(p, v)| decode_headers(&p, v))
        .transpose()?;
    Ok(HttpRouteDestination {
        destination,
        weight,
        headers,
    })
}

pub(super) fn decode_destination(path: &FieldPath, value: &Value) -> Result<Destination> {
    let fields = Fields::new(value, path, ShapeId::Destination)?;
    let host = opt_string(&fields, "host")?.unwrap_or_default();
    let subset = opt_string(&fields, "subset")?;
    let port = match fields.get("port") {
        Some((p, v)) => {
            let selector = Fields::new(v, &p, ShapeId::DestinationPort)?;
            selector
                .get("number")
                .map(|(p, v)| port(v, &p))
                .transpose()?
        }
        None => None,
    };
    Ok(Destination { host, subset, port })
}
