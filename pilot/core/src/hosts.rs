//! Host names as Istio resolves them.
//!
//! A short name (`reviews`) is relative to the namespace of the object that
//! wrote it: `reviews.<ns>.svc.cluster.local`. `reviews.prod` and
//! `reviews.prod.svc` also expand when such a Kubernetes service exists (Istio
//! itself expands only short names; users expect the longer forms to work the
//! way they do in DNS). Anything else is taken as written, wildcards
//! included: `*.prod` stays `*.prod`, as in Istio.
//!
//! A wildcard (`*.example.com`, or `*` alone) matches every name that ends
//! with what follows the `*`, compared without regard to case; `*.example.com`
//! does not match `example.com` (Istio's `host.Name.Matches`).

use discovery::{Registry, ServiceModel};

/// The cluster's DNS suffix.
pub const CLUSTER_DOMAIN: &str = "svc.cluster.local";

/// The fully qualified name of `host` as written in an object of `namespace`.
pub fn resolve(registry: &Registry, host: &str, namespace: &str) -> String {
    if !host.contains('.') && host != "*" {
        return format!("{host}.{namespace}.{CLUSTER_DOMAIN}");
    }
    let dots = host.matches('.').count();
    let expanded = match dots {
        1 => format!("{host}.{CLUSTER_DOMAIN}"),
        2 if host.ends_with(".svc") => format!("{host}.cluster.local"),
        _ => return host.to_string(),
    };
    if registry.services.contains_key(&expanded) {
        expanded
    } else {
        host.to_string()
    }
}

/// Whether `host` is a wildcard: `*` or `*.suffix`.
pub fn is_wildcard(host: &str) -> bool {
    host.starts_with('*')
}

/// What the wildcard `pattern` requires a name to end with, lower-cased:
/// `.b.c` for `*.b.c`, nothing for `*`.
pub fn wildcard_suffix(pattern: &str) -> String {
    pattern.trim_start_matches('*').to_ascii_lowercase()
}

/// The wildcard suffixes (see [`wildcard_suffix`]) that match a lower-cased
/// `hostname`, most specific (longest) first, that of the bare `*` last: for
/// `a.b.c`, `.b.c`, `.c` and the empty one. A wildcard hostname (a
/// ServiceEntry's `*.b.c`) yields its own first. Looking these up in an index
/// of wildcards finds every match of a name in one pass over its labels,
/// however many wildcards the mesh has.
pub fn matching_suffixes(hostname: &str) -> impl Iterator<Item = &str> {
    hostname
        .char_indices()
        .filter(|&(_, c)| c == '.')
        .map(move |(i, _)| &hostname[i..])
        .chain(std::iter::once(""))
}

/// The names a caller in `namespace` may use for `service`, without ports:
/// `reviews` (same namespace only), `reviews.ns`, `reviews.ns.svc` and the
/// FQDN; ServiceEntry hosts only as written.
pub fn names_for(service: &ServiceModel, namespace: &str) -> Vec<String> {
    let Some(name) = &service.name else {
        return vec![service.hostname.clone()];
    };
    let ns = &service.namespace;
    let mut names = Vec::with_capacity(4);
    if ns == namespace {
        names.push(name.clone());
    }
    names.push(format!("{name}.{ns}"));
    names.push(format!("{name}.{ns}.svc"));
    names.push(service.hostname.clone());
    names
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Arc;

    use discovery::model::Resolution;

    use super::*;

    fn registry_with(hostname: &str) -> Registry {
        let service = ServiceModel {
            hostname: hostname.to_string(),
            namespace: "prod".to_string(),
            name: Some("reviews".to_string()),
            ports: vec![],
            endpoints: vec![],
            resolution: Resolution::Static,
            mesh_external: false,
            export_to: Vec::new(),
            addresses: Vec::new(),
            object: None,
        };
        Registry {
            services: BTreeMap::from([(hostname.to_string(), Arc::new(service))]),
        }
    }

    #[test]
    fn short_names_are_relative_to_the_namespace() {
        let registry = Registry::default();
        assert_eq!(
            resolve(&registry, "reviews", "prod"),
            "reviews.prod.svc.cluster.local"
        );
    }

    #[test]
    fn partial_names_expand_only_to_known_services() {
        let registry = registry_with("reviews.prod.svc.cluster.local");
        assert_eq!(
            resolve(&registry, "reviews.prod", "default"),
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(
            resolve(&registry, "reviews.prod.svc", "default"),
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(resolve(&registry, "example.com", "default"), "example.com");
        assert_eq!(
            resolve(&registry, "reviews.prod.svc.cluster.local", "x"),
            "reviews.prod.svc.cluster.local"
        );
    }

    #[test]
    fn wildcards_are_taken_as_written() {
        let registry = registry_with("reviews.prod.svc.cluster.local");
        assert_eq!(resolve(&registry, "*", "prod"), "*");
        assert_eq!(resolve(&registry, "*.prod", "default"), "*.prod");
        assert_eq!(
            resolve(&registry, "*.prod.svc.cluster.local", "default"),
            "*.prod.svc.cluster.local"
        );
    }

    fn wildcard_matches(pattern: &str, hostname: &str) -> bool {
        let suffix = wildcard_suffix(pattern);
        matching_suffixes(&hostname.to_ascii_lowercase()).any(|s| s == suffix)
    }

    #[test]
    fn wildcards_match_whole_labels_from_the_right() {
        let name = "reviews.prod.svc.cluster.local";
        assert_eq!(
            matching_suffixes(name).collect::<Vec<_>>(),
            [
                ".prod.svc.cluster.local",
                ".svc.cluster.local",
                ".cluster.local",
                ".local",
                ""
            ]
        );
        assert!(wildcard_matches("*.prod.svc.cluster.local", name));
        assert!(wildcard_matches("*.PROD.svc.cluster.local", name));
        assert!(wildcard_matches("*", name));
        assert!(!wildcard_matches("*.reviews.prod.svc.cluster.local", name));
        assert!(!wildcard_matches("*.other.svc.cluster.local", name));
        assert!(!wildcard_matches("*.example.com", "example.com"));
        // A wildcard ServiceEntry host is matched by itself and by broader wildcards.
        assert!(wildcard_matches("*.example.com", "*.example.com"));
        assert!(wildcard_matches("*.com", "*.example.com"));
        assert!(!wildcard_matches("*.a.example.com", "*.example.com"));
    }

    #[test]
    fn short_name_is_offered_only_within_the_namespace() {
        let registry = registry_with("reviews.prod.svc.cluster.local");
        let service = &registry.services["reviews.prod.svc.cluster.local"];
        assert_eq!(
            names_for(service, "prod"),
            [
                "reviews",
                "reviews.prod",
                "reviews.prod.svc",
                "reviews.prod.svc.cluster.local"
            ]
        );
        assert_eq!(names_for(service, "other").len(), 3);
    }
}
