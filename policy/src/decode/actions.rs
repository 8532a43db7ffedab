//! What an HTTP route does besides choosing destinations: redirect, direct
//! response, rewrite, retries, fault injection, CORS and header operations.

use serde_yaml::Value;

use super::matching::decode_string_match;
use super::{
    DecodeError, Fields, Findings, Result, Shape, ShapeId, boolean, duration, list, number, port,
    string, string_list, string_map, uint32,
};
use crate::diag::{Diagnostic, FieldPath};
use crate::networking::{
    CorsPolicy, FaultAbort, FaultDelay, HeaderOperations, Headers, HttpDirectResponse,
    HttpFaultInjection, HttpRedirect, HttpRetry, HttpRewrite, StringMatch,
};

pub(super) const REDIRECT: Shape = Shape {
    name: "VirtualService.spec.http[].redirect",
    known: &["uri", "authority", "port", "scheme", "redirectCode"],
    unsupported: &["derivePort"],
    ignored: &[],
    proto_names: true,
};

pub(super) const DIRECT_RESPONSE: Shape = Shape {
    name: "VirtualService.spec.http[].directResponse",
    known: &["status", "body"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const BODY: Shape = Shape {
    name: "VirtualService.spec.http[].directResponse.body",
    known: &["string"],
    unsupported: &["bytes"],
    ignored: &[],
    proto_names: true,
};

pub(super) const REWRITE: Shape = Shape {
    name: "VirtualService.spec.http[].rewrite",
    known: &["uri", "authority", "uriRegexRewrite"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const REGEX_REWRITE: Shape = Shape {
    name: "VirtualService.spec.http[].rewrite.uriRegexRewrite",
    known: &["match", "rewrite"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const RETRY: Shape = Shape {
    name: "VirtualService.spec.http[].retries",
    known: &[
        "attempts",
        "perTryTimeout",
        "retryOn",
        "retryRemoteLocalities",
    ],
    unsupported: &["retryIgnorePreviousHosts", "backoff"],
    ignored: &[],
    proto_names: true,
};

pub(super) const FAULT: Shape = Shape {
    name: "VirtualService.spec.http[].fault",
    known: &["delay", "abort"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const DELAY: Shape = Shape {
    name: "VirtualService.spec.http[].fault.delay",
    known: &["fixedDelay", "percentage", "percent"],
    unsupported: &["exponentialDelay"],
    ignored: &[],
    proto_names: true,
};

pub(super) const ABORT: Shape = Shape {
    name: "VirtualService.spec.http[].fault.abort",
    known: &["httpStatus", "percentage", "percent"],
    unsupported: &["grpcStatus", "http2Error"],
    ignored: &[],
    proto_names: true,
};

pub(super) const PERCENT: Shape = Shape {
    name: "VirtualService.spec.http[].fault.delay.percentage",
    known: &["value"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const CORS: Shape = Shape {
    name: "VirtualService.spec.http[].corsPolicy",
    known: &[
        "allowOrigins",
        "allowOrigin",
        "allowMethods",
        "allowHeaders",
        "exposeHeaders",
        "maxAge",
        "allowCredentials",
    ],
    unsupported: &["unmatchedPreflights"],
    ignored: &[],
    proto_names: true,
};

pub(super) const HEADERS: Shape = Shape {
    name: "VirtualService.spec.http[].headers",
    known: &["request", "response"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const HEADER_OPERATIONS: Shape = Shape {
    name: "VirtualService.spec.http[].headers.request",
    known: &["set", "add", "remove"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

fn opt_string(fields: &Fields<'_>, name: &str) -> Result<Option<String>> {
    fields.get(name).map(|(p, v)| string(v, &p)).transpose()
}

/// An HTTP status code as written; its range is checked by validation.
fn status(value: &Value, path: &FieldPath) -> Result<u16> {
    value
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| {
            DecodeError::new(
                path,
                format!(
                    "expected an HTTP status code, got {}",
                    super::describe(value)
                ),
            )
        })
}

pub(super) fn decode_redirect(path: &FieldPath, value: &Value) -> Result<HttpRedirect> {
    let fields = Fields::new(value, path, ShapeId::Redirect)?;
    Ok(HttpRedirect {
        uri: opt_string(&fields, "uri")?,
        authority: opt_string(&fields, "authority")?,
        port: fields.get("port").map(|(p, v)| port(v, &p)).transpose()?,
        scheme: opt_string(&fields, "scheme")?,
        redirect_code: fields
            .get("redirectCode")
            .map(|(p, v)| status(v, &p))
            .transpose()?,
    })
}

pub(super) fn decode_direct_response(
    path: &FieldPath,
    value: &Value,
) -> Result<HttpDirectResponse> {
    let fields = Fields::new(value, path, ShapeId::DirectResponse)?;
    let (p, v) = fields.require("status")?;
    let status = status(v, &p)?;
    let body = match fields.get("body") {
        Some((p, v)) => opt_string(&Fields::new(v, &p, ShapeId::DirectResponseBody)?, "string")?,
        None => None,
    };
    Ok(HttpDirectResponse { status, body })
}

pub(super) fn decode_rewrite(path: &FieldPath, value: &Value) -> Result<HttpRewrite> {
    let fields = Fields::new(value, path, ShapeId::Rewrite)?;
    let uri_regex = match fields.get("uriRegexRewrite") {
        Some((p, v)) => {
            let fields = Fields::new(v, &p, ShapeId::RegexRewrite)?;
            let (mp, m) = fields.require("match")?;
            let (rp, r) = fields.require("rewrite")?;
            Some((string(m, &mp)?, string(r, &rp)?))
        }
        None => None,
    };
    Ok(HttpRewrite {
        uri: opt_string(&fields, "uri")?,
        authority: opt_string(&fields, "authority")?,
        uri_regex,
    })
}

pub(super) fn decode_retries(path: &FieldPath, value: &Value) -> Result<HttpRetry> {
    let fields = Fields::new(value, path, ShapeId::Retries)?;
    Ok(HttpRetry {
        attempts: fields
            .get("attempts")
            .map(|(p, v)| uint32(v, &p))
            .transpose()?
            .unwrap_or(0),
        per_try_timeout: fields
            .get("perTryTimeout")
            .map(|(p, v)| duration(v, &p))
            .transpose()?,
        retry_on: opt_string(&fields, "retryOn")?,
        retry_remote_localities: fields
            .get("retryRemoteLocalities")
            .map(|(p, v)| boolean(v, &p))
            .transpose()?,
    })
}

/// `percentage: {value: 12.5}`, or the deprecated integer `percent` in its
/// place; giving both is an error.
fn fault_percentage(fields: &Fields<'_>, path: &FieldPath) -> Result<Option<f64>> {
    let modern = fields
        .get("percentage")
        .map(|(p, v)| decode_percentage(&p, v))
        .transpose()?;
    let legacy = fields
        .get("percent")
        .map(|(p, v)| uint32(v, &p))
        .transpose()?;
    match (modern, legacy) {
        (Some(_), Some(_)) => Err(DecodeError::new(
            &path.field("percent"),
            "set only one of percentage and the deprecated percent",
        )),
        (Some(value), None) => Ok(Some(value)),
        (None, legacy) => Ok(legacy.map(f64::from)),
    }
}

pub(super) fn decode_fault(path: &FieldPath, value: &Value) -> Result<HttpFaultInjection> {
    let fields = Fields::new(value, path, ShapeId::Fault)?;
    let delay = match fields.get("delay") {
        Some((p, v)) => {
            let f = Fields::new(v, &p, ShapeId::FaultDelay)?;
            let (dp, d) = f.require("fixedDelay")?;
            Some(FaultDelay {
                fixed_delay: duration(d, &dp)?,
                percentage: fault_percentage(&f, &p)?,
            })
        }
        None => None,
    };
    let abort = match fields.get("abort") {
        Some((p, v)) => {
            let f = Fields::new(v, &p, ShapeId::FaultAbort)?;
            let (sp, s) = f.require("httpStatus")?;
            Some(FaultAbort {
                http_status: status(s, &sp)?,
                percentage: fault_percentage(&f, &p)?,
            })
        }
        None => None,
    };
    Ok(HttpFaultInjection { delay, abort })
}

/// `{value: 50}`. A percentage without a value is 0, as in protobuf.
pub(super) fn decode_percentage(path: &FieldPath, value: &Value) -> Result<f64> {
    let fields = Fields::new(value, path, ShapeId::Percent)?;
    Ok(fields
        .get("value")
        .map(|(p, v)| number(v, &p))
        .transpose()?
        .unwrap_or(0.0))
}

pub(super) fn decode_cors(
    path: &FieldPath,
    value: &Value,
    findings: &mut Findings,
) -> Result<CorsPolicy> {
    let fields = Fields::new(value, path, ShapeId::CorsPolicy)?;
    let strings = |name: &str| -> Result<Vec<String>> {
        Ok(fields
            .get(name)
            .map(|(p, v)| string_list(v, &p))
            .transpose()?
            .unwrap_or_default())
    };
    let mut allow_origins = Vec::new();
    if let Some((p, v)) = fields.get("allowOrigins") {
        for (p, v) in list(v, &p)? {
            allow_origins.extend(decode_string_match(&p, v, findings)?);
        }
    }
    if let Some((p, v)) = fields.get("allowOrigin") {
        findings.push(Diagnostic::warning(
            p.clone(),
            "allowOrigin is deprecated; use allowOrigins with exact matches",
        ));
        allow_origins.extend(string_list(v, &p)?.into_iter().map(StringMatch::Exact));
    }
    Ok(CorsPolicy {
        allow_origins,
        allow_methods: strings("allowMethods")?,
        allow_headers: strings("allowHeaders")?,
        expose_headers: strings("exposeHeaders")?,
        max_age: fields
            .get("maxAge")
            .map(|(p, v)| duration(v, &p))
            .transpose()?,
        allow_credentials: fields
            .get("allowCredentials")
            .map(|(p, v)| boolean(v, &p))
            .transpose()?,
    })
}

pub(super) fn decode_headers(path: &FieldPath, value: &Value) -> Result<Headers> {
    let fields = Fields::new(value, path, ShapeId::Headers)?;
    let operations = |name: &str| -> Result<HeaderOperations> {
        let Some((p, v)) = fields.get(name) else {
            return Ok(HeaderOperations::default());
        };
        let ops = Fields::new(v, &p, ShapeId::HeaderOperations)?;
        let map = |name: &str| {
            ops.get(name)
                .map(|(p, v)| string_map(v, &p))
                .transpose()
                .map(Option::unwrap_or_default)
        };
        Ok(HeaderOperations {
            set: map("set")?,
            add: map("add")?,
            remove: ops
                .get("remove")
                .map(|(p, v)| string_list(v, &p))
                .transpose()?
                .unwrap_or_default(),
        })
    };
    Ok(Headers {
        request: operations("request")?,
        response: operations("response")?,
    })
}
