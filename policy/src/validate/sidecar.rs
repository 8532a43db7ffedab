//! Sidecar: Istio's `ValidateSidecar`, for the fields Bowline decodes.
//! Whether a selector is allowed depends on the mesh's root namespace, which
//! one object does not know; the snapshot checks that.

use std::collections::{BTreeMap, BTreeSet};

use super::names;
use crate::diag::{Diagnostic, FieldPath};
use crate::networking::{SidecarSpec, WorkloadSelector};

pub(super) fn check(spec: &SidecarSpec, namespace: &str, out: &mut Vec<Diagnostic>) {
    let path = FieldPath::new("spec");
    if let Some(selector) = &spec.workload_selector {
        check_selector(selector, &path.field("workloadSelector"), out);
    }
    let egress = path.field("egress");
    if spec.egress.is_empty() {
        out.push(Diagnostic::error(
            egress.clone(),
            "at least one egress listener is required",
        ));
    }
    let last = spec.egress.len().saturating_sub(1);
    for (i, listener) in spec.egress.iter().enumerate() {
        let at = egress.index(i);
        // Without ports every listener is the catch-all one, which must be
        // the last and only one.
        if i < last {
            out.push(Diagnostic::error(
                at.clone(),
                "an egress listener without a port must be the last one (listener ports are not supported yet: put every host in one listener)",
            ));
        }
        check_hosts(&listener.hosts, namespace, &at.field("hosts"), out);
    }
}

fn check_selector(selector: &WorkloadSelector, path: &FieldPath, out: &mut Vec<Diagnostic>) {
    let labels = path.field("labels");
    if selector.labels.is_empty() {
        out.push(Diagnostic::warning(
            labels.clone(),
            "workload selector specified without labels: the Sidecar applies to every workload in its namespace",
        ));
    }
    super::check_selector_labels(&selector.labels, &labels, out);
}

fn check_hosts(hosts: &[String], namespace: &str, path: &FieldPath, out: &mut Vec<Diagnostic>) {
    if hosts.is_empty() {
        out.push(Diagnostic::error(
            path.clone(),
            "egress listener must contain at least one host",
        ));
        return;
    }
    // Imported names per config namespace, for Istio's duplicate warnings.
    let mut imported: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (i, host) in hosts.iter().enumerate() {
        let at = path.index(i);
        if let Err(e) = egress_host(host) {
            out.push(Diagnostic::error(at, e));
            continue;
        }
        let Some((ns, name)) = host.split_once('/') else {
            continue;
        };
        if ns.starts_with('~') {
            continue;
        }
        let ns = if ns == "." { namespace } else { ns };
        let names = imported.entry(ns).or_default();
        let duplicate = if name == "*" {
            !names.is_empty()
        } else {
            names.contains(name) || names.contains("*")
        };
        if duplicate {
            out.push(Diagnostic::warning(
                at,
                format!("duplicated egress host {host:?}"),
            ));
        }
        names.insert(name);
    }
    let everything = imported.get("*").is_some_and(|n| n.contains("*"));
    if everything && imported.len() > 1 {
        out.push(Diagnostic::warning(
            path.clone(),
            "host \"*/*\" imports everything: the other hosts add nothing",
        ));
    }
}

/// `namespace/dnsName`, as Istio's `ValidateNamespaceSlashWildcardHostname`
/// checks it for a Sidecar.
pub(crate) fn egress_host(host: &str) -> Result<(), String> {
    let Some((ns, name)) = host.split_once('/') else {
        return Err(format!(
            "host {host:?} must be of the form namespace/dnsName"
        ));
    };
    if ns.is_empty() || name.is_empty() {
        return Err(format!(
            "host {host:?}: the namespace and the dnsName cannot be empty"
        ));
    }
    let bare = ns.strip_prefix('~').unwrap_or(ns);
    if !matches!(bare, "" | "*" | ".") && names::dns1123_label(bare).is_err() {
        return Err(format!(
            "host {host:?}: invalid namespace {ns:?}: expected \"*\", \".\" or a namespace name, optionally after \"~\" to exclude it"
        ));
    }
    if name == "*" {
        return Ok(());
    }
    if !name.contains('.') {
        return Err(format!(
            "host {host:?}: short names are not allowed; write the FQDN, such as {name}.{}.svc.cluster.local",
            if matches!(bare, "" | "*" | ".") {
                "NAMESPACE"
            } else {
                bare
            }
        ));
    }
    if name.parse::<std::net::IpAddr>().is_ok() {
        return Err(format!(
            "host {host:?}: {name:?} is an IP address; expected a DNS name"
        ));
    }
    names::host(name, true).map_err(|e| format!("host {host:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn egress_hosts_follow_istio() {
        for ok in [
            "*/*",
            "./*",
            "~/*",
            "prod/*",
            "prod/reviews.prod.svc.cluster.local",
            "*/*.example.com",
            "~prod/*.prod.svc.cluster.local",
            "./api.example.com",
        ] {
            assert_eq!(egress_host(ok), Ok(()), "{ok}");
        }
        let err = |h: &str| egress_host(h).unwrap_err();
        assert!(err("reviews.prod.svc.cluster.local").contains("namespace/dnsName"));
        assert!(err("/a.b").contains("cannot be empty"));
        assert!(err("prod/").contains("cannot be empty"));
        assert!(err("Prod/a.b").contains("invalid namespace \"Prod\""));
        assert!(err("~~/a.b").contains("invalid namespace"));
        assert!(err("prod/reviews").contains("short names are not allowed"));
        assert!(err("prod/reviews").contains("reviews.prod.svc.cluster.local"));
        assert!(err("prod/10.0.0.1").contains("IP address"));
        assert!(err("prod/*foo.example.com").contains("wildcard"));
        assert!(err("prod/a.*.com").contains("wildcard"));
        assert!(err("prod/a/b.com").contains("not a valid host"));
    }
}
