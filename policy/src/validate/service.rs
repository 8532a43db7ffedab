//! `v1 Service`: ports and selector.

use super::{check_labels, check_port, check_unique, names};
use crate::diag::{Diagnostic, FieldPath};
use crate::protocol::canonical_protocol;
use crate::service::{ServiceSpec, TargetPort};

pub(super) fn check(spec: &ServiceSpec, out: &mut Vec<Diagnostic>) {
    let path = FieldPath::new("spec");
    check_labels(&spec.selector, &path.field("selector"), out);
    if spec.selector.is_empty() {
        out.push(Diagnostic::warning(
            path.field("selector"),
            "no selector: the service selects no workloads",
        ));
    }
    let ports = path.field("ports");
    if spec.ports.is_empty() {
        out.push(Diagnostic::error(
            ports.clone(),
            "at least one port is required",
        ));
    }
    for (i, port) in spec.ports.iter().enumerate() {
        let at = ports.index(i);
        check_port(port.port, at.field("port"), out);
        match &port.name {
            None if spec.ports.len() > 1 => out.push(Diagnostic::error(
                at.field("name"),
                "port name is required when the service has more than one port",
            )),
            None => {}
            Some(name) => {
                if let Err(e) = names::dns1123_label(name) {
                    out.push(Diagnostic::error(at.field("name"), e));
                }
            }
        }
        match &port.target_port {
            Some(TargetPort::Number(n)) => check_port(*n, at.field("targetPort"), out),
            Some(TargetPort::Name(name)) => {
                if let Err(e) = names::iana_port_name(name) {
                    out.push(Diagnostic::error(at.field("targetPort"), e));
                }
            }
            None => {}
        }
        if let Some(app) = &port.app_protocol
            && canonical_protocol(app).is_none()
        {
            let message = format!(
                "appProtocol {app:?} is not a protocol Istio knows; the port name decides the protocol"
            );
            out.push(Diagnostic::warning(at.field("appProtocol"), message));
        }
    }
    check_unique(
        spec.ports
            .iter()
            .enumerate()
            .map(|(i, p)| (ports.index(i).field("port"), p.port)),
        "port number",
        out,
    );
    check_unique(
        spec.ports
            .iter()
            .enumerate()
            .filter_map(|(i, p)| Some((ports.index(i).field("name"), p.name.clone()?))),
        "port name",
        out,
    );
}
