//! A VirtualService `match` entry and the StringMatch conditions inside it.

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::{
    Fields, Findings, Result, Shape, ShapeId, boolean, map_entries, port, string, string_map,
};
use crate::diag::{Diagnostic, FieldPath};
use crate::networking::{HttpMatchRequest, StringMatch};

pub(super) const HTTP_MATCH: Shape = Shape {
    name: "VirtualService.spec.http[].match[]",
    known: &[
        "name",
        "uri",
        "scheme",
        "method",
        "authority",
        "headers",
        "queryParams",
        "withoutHeaders",
        "port",
        "sourceLabels",
        "sourceNamespace",
        "ignoreUriCase",
    ],
    unsupported: &["gateways", "statPrefix"],
    ignored: &[],
    proto_names: true,
};

pub(super) const STRING_MATCH: Shape = Shape {
    name: "VirtualService.spec.http[].match[].uri",
    known: &["exact", "prefix", "regex"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

/// Whether an empty StringMatch (`{}`) is allowed, as it is for headers and
/// query parameters, where it means "present" (or "absent" in `withoutHeaders`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Empty {
    Allowed,
    Refused,
}

/// The condition an empty StringMatch stands for: any value, so the header or
/// parameter only has to be there.
fn any_value() -> StringMatch {
    StringMatch::Regex(".*".to_string())
}

pub(super) fn decode_match(
    path: &FieldPath,
    value: &Value,
    findings: &mut Findings,
) -> Result<HttpMatchRequest> {
    let fields = Fields::new(value, path, ShapeId::HttpMatch)?;
    let string_match = |name: &str, findings: &mut Findings| -> Result<Option<StringMatch>> {
        match fields.get(name) {
            Some((p, v)) => decode_string_match(&p, v, findings),
            None => Ok(None),
        }
    };
    let uri = string_match("uri", findings)?;
    let scheme = string_match("scheme", findings)?;
    let method = string_match("method", findings)?;
    let authority = string_match("authority", findings)?;
    let named = |name: &str, lower: bool, findings: &mut Findings| match fields.get(name) {
        Some((p, v)) => decode_named_matches(&p, v, lower, findings),
        None => Ok(BTreeMap::new()),
    };
    let headers = named("headers", true, findings)?;
    let query_params = named("queryParams", false, findings)?;
    let without_headers = named("withoutHeaders", true, findings)?;
    Ok(HttpMatchRequest {
        name: fields.get("name").map(|(p, v)| string(v, &p)).transpose()?,
        uri,
        scheme,
        method,
        authority,
        headers,
        query_params,
        without_headers,
        port: fields.get("port").map(|(p, v)| port(v, &p)).transpose()?,
        source_labels: fields
            .get("sourceLabels")
            .map(|(p, v)| string_map(v, &p))
            .transpose()?
            .unwrap_or_default(),
        source_namespace: fields
            .get("sourceNamespace")
            .map(|(p, v)| string(v, &p))
            .transpose()?,
        ignore_uri_case: fields
            .get("ignoreUriCase")
            .map(|(p, v)| boolean(v, &p))
            .transpose()?
            .unwrap_or(false),
    })
}

/// `headers`, `queryParams` or `withoutHeaders`: name -> StringMatch. Header
/// names are lower-cased, as Envoy sees them; two names that differ only in
/// case are an error.
fn decode_named_matches(
    path: &FieldPath,
    value: &Value,
    lower: bool,
    findings: &mut Findings,
) -> Result<BTreeMap<String, StringMatch>> {
    let mut out = BTreeMap::new();
    let mut first: BTreeMap<String, String> = BTreeMap::new();
    for (name, p, v) in map_entries(value, path)? {
        let key = if lower {
            name.to_ascii_lowercase()
        } else {
            name.clone()
        };
        if let Some(earlier) = first.get(&key) {
            findings.push(Diagnostic::error(
                p.clone(),
                format!("header {name:?} is also given as {earlier:?}; header names ignore case"),
            ));
        }
        first.insert(key.clone(), name);
        if let Some(m) = string_match(&p, v, Empty::Allowed, findings)? {
            out.insert(key, m);
        }
    }
    Ok(out)
}

/// Exactly one of `exact`, `prefix` and `regex`. When that does not hold the
/// finding is recorded and decoding goes on, so the rest is checked too.
pub(super) fn decode_string_match(
    path: &FieldPath,
    value: &Value,
    findings: &mut Findings,
) -> Result<Option<StringMatch>> {
    string_match(path, value, Empty::Refused, findings)
}

fn string_match(
    path: &FieldPath,
    value: &Value,
    empty: Empty,
    findings: &mut Findings,
) -> Result<Option<StringMatch>> {
    let fields = Fields::new(value, path, ShapeId::StringMatch)?;
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
    if set.is_empty() && empty == Empty::Allowed {
        return Ok(Some(any_value()));
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
