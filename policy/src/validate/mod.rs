//! Semantic validation of decoded objects: every error at once, each with its
//! field path, plus warnings for what is legal but probably wrong.
//!
//! Validation sees only one object. Checks that need several (does this
//! destination name a service? is this host routed twice?) belong to the
//! registry and the snapshot.

mod http;
pub(crate) mod names;
mod re2;
mod routing;
pub mod security;
mod service;
mod sidecar;
mod traffic;
mod workload;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::diag::{Diagnostic, FieldPath};
use crate::meta::ObjectMeta;
use crate::object::{Kind, Object};

/// Every problem with `object`. The diagnostics carry paths but no file,
/// document or object; the caller adds those.
pub fn validate(object: &Object) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    check_meta(object.meta(), object.kind(), &mut out);
    match object {
        Object::Service(s) => service::check(&s.spec, &mut out),
        Object::WorkloadEntry(w) => workload::check_workload_entry(&w.spec, &mut out),
        Object::ServiceEntry(s) => {
            workload::check_service_entry(&s.spec, &mut out);
            check_export_to(&s.spec.export_to, &s.meta.namespace, &mut out);
        }
        Object::VirtualService(v) => {
            routing::check_virtual_service(&v.spec, &mut out);
            check_export_to(&v.spec.export_to, &v.meta.namespace, &mut out);
        }
        Object::DestinationRule(d) => {
            routing::check_destination_rule(&d.spec, &mut out);
            traffic::check_destination_rule_policies(&d.spec, &mut out);
            check_export_to(&d.spec.export_to, &d.meta.namespace, &mut out);
        }
        Object::Sidecar(s) => sidecar::check(&s.spec, &s.meta.namespace, &mut out),
        Object::PeerAuthentication(p) => security::check_peer_authentication(&p.spec, &mut out),
        Object::AuthorizationPolicy(a) => {
            security::check_authorization_policy(&a.meta, &a.spec, &mut out)
        }
        Object::RequestAuthentication(r) => {
            security::check_request_authentication(&r.spec, &mut out)
        }
        Object::Telemetry(_) => {}
    }
    out
}

fn check_meta(meta: &ObjectMeta, kind: Kind, out: &mut Vec<Diagnostic>) {
    let path = FieldPath::new("metadata");
    let name = if kind == Kind::Service {
        names::dns1035_label(&meta.name)
    } else {
        names::dns1123_subdomain(&meta.name)
    };
    if let Err(e) = name {
        out.push(Diagnostic::error(path.field("name"), e));
    }
    if let Err(e) = names::dns1123_label(&meta.namespace) {
        out.push(Diagnostic::error(path.field("namespace"), e));
    }
    check_labels(&meta.labels, &path.field("labels"), out);
    for key in meta.annotations.keys() {
        if let Err(e) = names::label_key(key) {
            out.push(Diagnostic::error(path.field("annotations").key(key), e));
        }
    }
}

/// Label keys and values, as Kubernetes checks them.
fn check_labels(labels: &BTreeMap<String, String>, path: &FieldPath, out: &mut Vec<Diagnostic>) {
    for (key, value) in labels {
        let at = path.key(key);
        if let Err(e) = names::label_key(key) {
            out.push(Diagnostic::error(at.clone(), e));
        }
        if let Err(e) = names::label_value(value) {
            out.push(Diagnostic::error(at, e));
        }
    }
}

/// The labels of a workload selector: as [`check_labels`], and no
/// wildcards, which Istio does not match (it refuses them).
fn check_selector_labels(
    labels: &BTreeMap<String, String>,
    path: &FieldPath,
    out: &mut Vec<Diagnostic>,
) {
    for (key, value) in labels {
        let at = path.key(key);
        if key.contains('*') || value.contains('*') {
            out.push(Diagnostic::error(
                at,
                format!("wildcard is not supported in selector: \"{key}={value}\""),
            ));
            continue;
        }
        if let Err(e) = names::label_key(key) {
            out.push(Diagnostic::error(at.clone(), e));
        }
        if let Err(e) = names::label_value(value) {
            out.push(Diagnostic::error(at, e));
        }
    }
}

/// A port number that decoded (0..=65535) but must be 1..=65535.
fn check_port(number: u16, path: FieldPath, out: &mut Vec<Diagnostic>) {
    if number == 0 {
        out.push(Diagnostic::error(path, "port must be 1-65535, got 0"));
    }
}

/// Reports each value that repeats an earlier one, naming where it first was.
fn check_unique<T: Ord + std::fmt::Display>(
    items: impl IntoIterator<Item = (FieldPath, T)>,
    what: &str,
    out: &mut Vec<Diagnostic>,
) {
    let mut seen: BTreeMap<T, FieldPath> = BTreeMap::new();
    for (path, value) in items {
        match seen.get(&value) {
            Some(first) => out.push(Diagnostic::error(
                path,
                format!("duplicate {what} {value}, also at {first}"),
            )),
            None => {
                seen.insert(value, path);
            }
        }
    }
}

/// `region/zone/subzone`: at most three parts.
fn check_locality(locality: &str, path: FieldPath, out: &mut Vec<Diagnostic>) {
    if locality.split('/').count() > 3 {
        out.push(Diagnostic::warning(
            path,
            format!("locality {locality:?} has more than three parts (region/zone/subzone)"),
        ));
    }
}

/// Endpoint weights: 0 is legal but means the default, 1.
fn check_weight(weight: Option<u32>, path: FieldPath, out: &mut Vec<Diagnostic>) {
    if weight == Some(0) {
        out.push(Diagnostic::warning(path, "weight 0 is treated as 1"));
    }
}

fn check_service_account(account: Option<&str>, path: FieldPath, out: &mut Vec<Diagnostic>) {
    if let Some(account) = account
        && let Err(e) = names::dns1123_subdomain(account)
    {
        out.push(Diagnostic::error(path, e));
    }
}

/// `spec.exportTo`: `*` (everyone), `.` (own namespace), `~` (no one) or
/// namespace names; no repeats, and `*` or `~` only alone.
fn check_export_to(export_to: &[String], namespace: &str, out: &mut Vec<Diagnostic>) {
    let path = FieldPath::new("spec").field("exportTo");
    for (i, entry) in export_to.iter().enumerate() {
        match entry.as_str() {
            "*" | "." | "~" => {}
            name => {
                if let Err(e) = names::dns1123_label(name) {
                    out.push(Diagnostic::error(
                        path.index(i),
                        format!("expected \"*\", \".\", \"~\" or a namespace name: {e}"),
                    ));
                }
            }
        }
    }
    check_unique(
        export_to.iter().enumerate().map(|(i, e)| {
            let ns = if e == "." { namespace } else { e.as_str() };
            (path.index(i), ns)
        }),
        "exportTo entry",
        out,
    );
    for alone in ["*", "~"] {
        if export_to.len() > 1 && export_to.iter().any(|e| e == alone) {
            out.push(Diagnostic::error(
                path.clone(),
                format!("{alone:?} cannot be combined with other exportTo entries"),
            ));
        }
    }
}

/// A duration Istio requires to be at least 1ms (zero too, unless `zero_ok`).
fn check_duration(
    duration: Option<Duration>,
    zero_ok: bool,
    path: FieldPath,
    out: &mut Vec<Diagnostic>,
) {
    let Some(d) = duration else { return };
    if d.is_zero() && zero_ok {
        return;
    }
    if d < Duration::from_millis(1) {
        out.push(Diagnostic::error(
            path,
            format!("duration must be at least 1ms, got {d:?}"),
        ));
    }
}

/// A percentage: 0-100, fractions allowed.
fn check_percent(value: Option<f64>, path: FieldPath, out: &mut Vec<Diagnostic>) {
    if let Some(v) = value
        && !(0.0..=100.0).contains(&v)
    {
        out.push(Diagnostic::error(
            path,
            format!("percentage must be 0-100, got {v}"),
        ));
    }
}

#[cfg(test)]
mod fidelity_tests;
#[cfg(test)]
mod security_tests;
#[cfg(test)]
mod sidecar_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod traffic_tests;
