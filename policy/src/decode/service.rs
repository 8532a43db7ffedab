//! `v1 Service`: selector and ports. Fields that only concern kube-proxy or
//! cloud load balancers are accepted and ignored.

use serde_yaml::Value;

use super::{
    DecodeError, Fields, Findings, Result, Shape, ShapeId, list, port, string, string_map,
};
use crate::diag::{Diagnostic, FieldPath};
use crate::meta::ObjectMeta;
use crate::service::{Service, ServicePort, ServiceSpec, TargetPort};

pub(super) const SPEC: Shape = Shape {
    name: "Service.spec",
    known: &["selector", "ports", "type", "clusterIP"],
    unsupported: &["externalName"],
    ignored: &[
        "clusterIPs",
        "ipFamilies",
        "ipFamilyPolicy",
        "sessionAffinity",
        "sessionAffinityConfig",
        "internalTrafficPolicy",
        "externalTrafficPolicy",
        "publishNotReadyAddresses",
        "healthCheckNodePort",
        "allocateLoadBalancerNodePorts",
        "loadBalancerIP",
        "loadBalancerSourceRanges",
        "loadBalancerClass",
        "externalIPs",
        "trafficDistribution",
    ],
    proto_names: false,
};

pub(super) const PORT: Shape = Shape {
    name: "Service.spec.ports[]",
    known: &["name", "port", "targetPort", "appProtocol", "protocol"],
    unsupported: &[],
    ignored: &["nodePort"],
    proto_names: false,
};

pub(crate) fn decode_service(
    meta: ObjectMeta,
    path: &FieldPath,
    spec: &Value,
    findings: &mut Findings,
) -> Result<Service> {
    let fields = Fields::new(spec, path, ShapeId::ServiceSpec)?;
    if let Some((p, v)) = fields.get("type") {
        check_type(&string(v, &p)?, p, findings);
    }
    let mut cluster_ip = None;
    if let Some((p, v)) = fields.get("clusterIP") {
        match string(v, &p)?.as_str() {
            "None" => findings.push(Diagnostic::warning(
                p,
                "headless service: it is served like a ClusterIP service",
            )),
            // Kubernetes allocates one when it is left empty.
            "" => {}
            ip => match ip.parse() {
                Ok(ip) => cluster_ip = Some(ip),
                Err(_) => findings.push(Diagnostic::error(
                    p,
                    format!("{ip:?} is neither an IP address nor \"None\""),
                )),
            },
        }
    }
    let selector = match fields.get("selector") {
        Some((p, v)) => string_map(v, &p)?,
        None => Default::default(),
    };
    let mut ports = Vec::new();
    if let Some((p, v)) = fields.get("ports") {
        for (p, v) in list(v, &p)? {
            ports.push(decode_port(&p, v, findings)?);
        }
    }
    Ok(Service {
        meta,
        spec: ServiceSpec {
            selector,
            ports,
            cluster_ip,
        },
    })
}

fn check_type(service_type: &str, path: FieldPath, findings: &mut Findings) {
    match service_type {
        "ClusterIP" => {}
        "NodePort" | "LoadBalancer" => findings.push(Diagnostic::warning(
            path,
            format!("service type {service_type} is served as ClusterIP: node ports and load balancers are not programmed"),
        )),
        "ExternalName" => findings.push(Diagnostic::error(
            path,
            "service type ExternalName is not supported yet",
        )),
        other => findings.push(Diagnostic::error(
            path,
            format!("unknown service type {other:?}; expected ClusterIP, NodePort, LoadBalancer or ExternalName"),
        )),
    }
}

fn decode_port(path: &FieldPath, value: &Value, findings: &mut Findings) -> Result<ServicePort> {
    let fields = Fields::new(value, path, ShapeId::ServicePort)?;
    let name = match fields.get("name") {
        Some((p, v)) => Some(string(v, &p)?),
        None => None,
    };
    let (p, v) = fields.require("port")?;
    let number = port(v, &p)?;
    let target_port = match fields.get("targetPort") {
        Some((p, v)) => Some(target_port(v, &p)?),
        None => None,
    };
    let app_protocol = match fields.get("appProtocol") {
        Some((p, v)) => Some(string(v, &p)?),
        None => None,
    };
    if let Some((p, v)) = fields.get("protocol") {
        match string(v, &p)?.as_str() {
            "TCP" => {}
            other @ ("UDP" | "SCTP") => findings.push(Diagnostic::error(
                p,
                format!("protocol {other} is not supported yet"),
            )),
            other => findings.push(Diagnostic::error(
                p,
                format!("unknown protocol {other:?}; expected TCP, UDP or SCTP"),
            )),
        }
    }
    Ok(ServicePort {
        name,
        port: number,
        target_port,
        app_protocol,
    })
}

/// A number, or the name of a port the workload declares.
fn target_port(value: &Value, path: &FieldPath) -> Result<TargetPort> {
    match value {
        Value::String(name) => Ok(TargetPort::Name(name.clone())),
        Value::Number(_) => Ok(TargetPort::Number(port(value, path)?)),
        other => Err(DecodeError::new(
            path,
            format!(
                "expected a port number 1-65535 or a port name, got {}",
                super::describe(other)
            ),
        )),
    }
}
