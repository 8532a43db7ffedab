//! Host names as Istio resolves them.
//!
//! A short name (`reviews`) is relative to the namespace of the object that
//! wrote it: `reviews.<ns>.svc.cluster.local`. `reviews.prod` and
//! `reviews.prod.svc` also expand when such a Kubernetes service exists (Istio
//! itself expands only short names; users expect the longer forms to work the
//! way they do in DNS). Anything else is taken as written.

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
