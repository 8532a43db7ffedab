//! Which documents Bowline decodes, by apiVersion and kind.
//!
//! ```text
//! v1 Service, networking.istio.io/{v1,v1beta1,v1alpha3} WorkloadEntry | ServiceEntry | VirtualService | DestinationRule | Sidecar
//! security.istio.io/{v1,v1beta1} PeerAuthentication | AuthorizationPolicy | RequestAuthentication
//!     ──► decoded
//! other Istio kinds, Gateway API kinds          ──► rejected: not supported yet
//! a known kind under the wrong apiVersion       ──► rejected at `apiVersion`
//! everything else (Deployment, ConfigMap, ...)  ──► skipped with a warning
//! ```

use crate::object::Kind;

/// What to do with a document of some apiVersion and kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Route {
    Decode(Kind),
    /// A kind Bowline decodes, under an apiVersion that does not serve it.
    WrongVersion(Kind),
    /// A kind that configures the mesh, which Bowline does not handle yet.
    NotSupported,
    /// A kind in an Istio group that Istio does not have either.
    Unknown,
    /// A kind that does not configure the mesh.
    Ignored,
}

const ISTIO_NETWORKING: &str = "networking.istio.io";
const ISTIO_VERSIONS: [&str; 3] = ["v1", "v1beta1", "v1alpha3"];
const ISTIO_SECURITY: &str = "security.istio.io";
const SECURITY_VERSIONS: [&str; 2] = ["v1", "v1beta1"];
const ISTIO_TELEMETRY: &str = "telemetry.istio.io";
const TELEMETRY_VERSIONS: [&str; 2] = ["v1", "v1alpha1"];

/// Istio kinds Bowline does not decode yet, in any `*.istio.io` group.
const ISTIO_KINDS: &[&str] = &[
    "Gateway",
    "EnvoyFilter",
    "WorkloadGroup",
    "ProxyConfig",
    "WasmPlugin",
    "IstioOperator",
];

/// Kubernetes groups whose kinds Bowline knows; under any of them, one of our
/// kind names is a mistake rather than a third-party resource.
const KUBERNETES_GROUPS: &[&str] = &["", "apps", "batch", "autoscaling", "policy"];

/// `networking.istio.io/v1` -> (`networking.istio.io`, `v1`); `v1` -> (``, `v1`).
fn split(api_version: &str) -> (&str, &str) {
    api_version.rsplit_once('/').unwrap_or(("", api_version))
}

pub(crate) fn route(api_version: &str, kind: &str) -> Route {
    let (group, version) = split(api_version);
    let istio_group = group == "istio.io" || group.ends_with(".istio.io");
    let ours = istio_group || group.ends_with(".k8s.io") || KUBERNETES_GROUPS.contains(&group);
    if let Some(known) = Kind::from_name(kind) {
        let served = match known {
            Kind::Service => group.is_empty() && version == "v1",
            k if is_security(k) => group == ISTIO_SECURITY && SECURITY_VERSIONS.contains(&version),
            Kind::Telemetry => group == ISTIO_TELEMETRY && TELEMETRY_VERSIONS.contains(&version),
            _ => group == ISTIO_NETWORKING && ISTIO_VERSIONS.contains(&version),
        };
        return if served {
            Route::Decode(known)
        } else if ours {
            Route::WrongVersion(known)
        } else {
            Route::Ignored
        };
    }
    let mesh_kind = group == "gateway.networking.k8s.io"
        || kind == "List"
        || (istio_group && ISTIO_KINDS.contains(&kind));
    if mesh_kind {
        Route::NotSupported
    } else if istio_group {
        Route::Unknown
    } else {
        Route::Ignored
    }
}

fn is_security(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::PeerAuthentication | Kind::AuthorizationPolicy | Kind::RequestAuthentication
    )
}

/// The API group and versions that serve `kind` (newest first); `None` for
/// Kubernetes' own `Service`.
pub(crate) fn served(kind: Kind) -> Option<(&'static str, &'static [&'static str])> {
    match kind {
        Kind::Service => None,
        k if is_security(k) => Some((ISTIO_SECURITY, &SECURITY_VERSIONS)),
        Kind::Telemetry => Some((ISTIO_TELEMETRY, &TELEMETRY_VERSIONS)),
        _ => Some((ISTIO_NETWORKING, &ISTIO_VERSIONS)),
    }
}

/// The apiVersions that serve `kind`, for error messages.
pub(crate) fn expected_versions(kind: Kind) -> String {
    match kind {
        Kind::Service => "v1".to_string(),
        k if is_security(k) => SECURITY_VERSIONS
            .iter()
            .map(|v| format!("{ISTIO_SECURITY}/{v}"))
            .collect::<Vec<_>>()
            .join(", "),
        Kind::Telemetry => TELEMETRY_VERSIONS
            .iter()
            .map(|v| format!("{ISTIO_TELEMETRY}/{v}"))
            .collect::<Vec<_>>()
            .join(", "),
        _ => ISTIO_VERSIONS
            .iter()
            .map(|v| format!("{ISTIO_NETWORKING}/{v}"))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("v1", "Service"), Route::Decode(Kind::Service));
        for v in [
            "networking.istio.io/v1",
            "networking.istio.io/v1beta1",
            "networking.istio.io/v1alpha3",
        ] {
            assert_eq!(
                route(v, "VirtualService"),
                Route::Decode(Kind::VirtualService)
            );
            assert_eq!(
                route(v, "WorkloadEntry"),
                Route::Decode(Kind::WorkloadEntry)
            );
            assert_eq!(route(v, "Sidecar"), Route::Decode(Kind::Sidecar));
        }
        assert_eq!(
            route("networking.istio.io/v2", "ServiceEntry"),
            Route::WrongVersion(Kind::ServiceEntry)
        );
        assert_eq!(
            route("v1", "DestinationRule"),
            Route::WrongVersion(Kind::DestinationRule)
        );
        assert_eq!(
            route("apps/v1", "Service"),
            Route::WrongVersion(Kind::Service)
        );
        assert_eq!(route("serving.knative.dev/v1", "Service"), Route::Ignored);
        assert_eq!(
            route("networking.istio.io/v1alpha3", "Gateway"),
            Route::NotSupported
        );
        for v in ["security.istio.io/v1", "security.istio.io/v1beta1"] {
            assert_eq!(
                route(v, "AuthorizationPolicy"),
                Route::Decode(Kind::AuthorizationPolicy)
            );
            assert_eq!(
                route(v, "PeerAuthentication"),
                Route::Decode(Kind::PeerAuthentication)
            );
            assert_eq!(
                route(v, "RequestAuthentication"),
                Route::Decode(Kind::RequestAuthentication)
            );
        }
        assert_eq!(
            route("networking.istio.io/v1", "PeerAuthentication"),
            Route::WrongVersion(Kind::PeerAuthentication)
        );
        assert_eq!(
            route("security.istio.io/v1alpha1", "AuthorizationPolicy"),
            Route::WrongVersion(Kind::AuthorizationPolicy)
        );
        assert_eq!(
            expected_versions(Kind::RequestAuthentication),
            "security.istio.io/v1, security.istio.io/v1beta1"
        );
        assert_eq!(
            route("gateway.networking.k8s.io/v1", "HTTPRoute"),
            Route::NotSupported
        );
        assert_eq!(
            route("networking.istio.io/v1", "VirtualServce"),
            Route::Unknown
        );
        assert_eq!(
            route("networking.istio.io/v2", "Sidecar"),
            Route::WrongVersion(Kind::Sidecar)
        );
        assert_eq!(route("apps/v1", "Deployment"), Route::Ignored);
        assert_eq!(route("v1", "ConfigMap"), Route::Ignored);
    }
}
