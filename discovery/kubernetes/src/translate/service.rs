//! A Kubernetes Service as the `policy` Service the registry reads.

use k8s_openapi::api::core::v1 as core;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use policy::meta::ObjectMeta;
use policy::service::{Service, ServicePort, ServiceSpec, TargetPort};
use policy::{Diagnostic, FieldPath, Kind, ObjectKey};

/// The Service, or `None` (with a warning when it is a Service Bowline
/// does not serve yet) when the mesh leaves it out.
pub(super) fn to_service(
    svc: &core::Service,
    diagnostics: &mut Vec<Diagnostic>,
) -> Option<Service> {
    let name = svc.metadata.name.clone()?;
    let namespace = svc
        .metadata
        .namespace
        .clone()
        .unwrap_or_else(|| "default".to_string());
    let spec = svc.spec.clone().unwrap_or_default();
    if spec.type_.as_deref() == Some("ExternalName") {
        diagnostics.push(
            Diagnostic::warning(
                FieldPath::new("spec.type"),
                "ExternalName services are not supported yet; the service is left out",
            )
            .on(ObjectKey {
                kind: Kind::Service,
                namespace,
                name,
            }),
        );
        return None;
    }
    let ports = spec.ports.iter().flatten().filter_map(to_port).collect();
    Some(Service {
        meta: ObjectMeta {
            name,
            namespace,
            labels: svc.metadata.labels.clone().unwrap_or_default(),
            annotations: svc.metadata.annotations.clone().unwrap_or_default(),
        },
        spec: ServiceSpec {
            selector: spec.selector.unwrap_or_default(),
            ports,
            // `None` for a headless service, which parses as no address.
            cluster_ip: spec.cluster_ip.as_deref().and_then(|ip| ip.parse().ok()),
        },
    })
}

/// Whether a Service or EndpointSlice port protocol is TCP (absent means TCP).
pub(super) fn is_tcp(protocol: Option<&str>) -> bool {
    protocol.is_none_or(|p| p == "TCP")
}

/// A TCP port with a number in range; the API server has checked the rest.
fn to_port(port: &core::ServicePort) -> Option<ServicePort> {
    if !is_tcp(port.protocol.as_deref()) {
        return None;
    }
    let target_port = match &port.target_port {
        None => None,
        Some(IntOrString::Int(n)) => Some(TargetPort::Number(u16::try_from(*n).ok()?)),
        Some(IntOrString::String(name)) => Some(TargetPort::Name(name.clone())),
    };
    Some(ServicePort {
        name: port.name.clone().filter(|n| !n.is_empty()),
        port: u16::try_from(port.port).ok().filter(|p| *p != 0)?,
        target_port,
        app_protocol: port.app_protocol.clone(),
    })
}
