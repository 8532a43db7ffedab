//! WorkloadEntry and ServiceEntry: addresses, ports, hosts and resolution.

use std::collections::BTreeMap;

use super::{
    check_labels, check_locality, check_port, check_service_account, check_unique, check_weight,
    names,
};
use crate::diag::{Diagnostic, FieldPath};
use crate::networking::{Resolution, ServiceEntryEndpoint, ServiceEntrySpec, WorkloadEntrySpec};

pub(super) fn check_workload_entry(spec: &WorkloadEntrySpec, out: &mut Vec<Diagnostic>) {
    let path = FieldPath::new("spec");
    if let Err(e) = names::ip_address(&spec.address) {
        out.push(Diagnostic::error(path.field("address"), e));
    }
    check_port_map(&spec.ports, &path.field("ports"), out);
    check_labels(&spec.labels, &path.field("labels"), out);
    check_service_account(
        spec.service_account.as_deref(),
        path.field("serviceAccount"),
        out,
    );
    if let Some(locality) = &spec.locality {
        check_locality(locality, path.field("locality"), out);
    }
    check_weight(spec.weight, path.field("weight"), out);
}

/// Port name -> number maps of workloads and endpoints.
fn check_port_map(ports: &BTreeMap<String, u16>, path: &FieldPath, out: &mut Vec<Diagnostic>) {
    for (name, number) in ports {
        if let Err(e) = names::dns1123_label(name) {
            out.push(Diagnostic::error(path.key(name), e));
        }
        check_port(*number, path.key(name), out);
    }
}

pub(super) fn check_service_entry(spec: &ServiceEntrySpec, out: &mut Vec<Diagnostic>) {
    let path = FieldPath::new("spec");
    let hosts = path.field("hosts");
    if spec.hosts.is_empty() {
        out.push(Diagnostic::error(
            hosts.clone(),
            "at least one host is required",
        ));
    }
    for (i, host) in spec.hosts.iter().enumerate() {
        if host == "*" {
            out.push(Diagnostic::error(
                hosts.index(i),
                "host \"*\" would capture all traffic; name the hosts",
            ));
        } else if let Err(e) = names::host(host, true) {
            out.push(Diagnostic::error(hosts.index(i), e));
        } else if host.starts_with("*.")
            && spec.resolution == Resolution::Dns
            && spec.endpoints.is_empty()
        {
            out.push(Diagnostic::error(
                hosts.index(i),
                "a wildcard host cannot be resolved by DNS without endpoints; use resolution NONE",
            ));
        }
    }
    check_unique(
        spec.hosts
            .iter()
            .enumerate()
            .map(|(i, h)| (hosts.index(i), h.as_str())),
        "host",
        out,
    );
    check_ports(spec, &path.field("ports"), out);
    check_endpoints(spec, &path.field("endpoints"), out);
    for (i, address) in spec.addresses.iter().enumerate() {
        if let Err(e) = ip_or_cidr(address) {
            out.push(Diagnostic::error(path.field("addresses").index(i), e));
        }
    }
}

/// `10.0.0.1` or `10.0.0.0/16`.
fn ip_or_cidr(address: &str) -> Result<(), String> {
    let (ip, prefix) = address.split_once('/').unwrap_or((address, ""));
    let Ok(ip) = ip.parse::<std::net::IpAddr>() else {
        return Err(format!(
            "address must be an IP address or a CIDR block, got {address:?}"
        ));
    };
    let max = if ip.is_ipv4() { 32 } else { 128 };
    if prefix.is_empty() && !address.contains('/') {
        return Ok(());
    }
    match prefix.parse::<u8>() {
        Ok(bits) if bits <= max => Ok(()),
        _ => Err(format!(
            "address must be an IP address or a CIDR block, got {address:?}"
        )),
    }
}

fn check_ports(spec: &ServiceEntrySpec, ports: &FieldPath, out: &mut Vec<Diagnostic>) {
    if spec.ports.is_empty() {
        out.push(Diagnostic::error(
            ports.clone(),
            "at least one port is required",
        ));
    }
    for (i, port) in spec.ports.iter().enumerate() {
        let at = ports.index(i);
        check_port(port.number, at.field("number"), out);
        if let Some(target) = port.target_port {
            check_port(target, at.field("targetPort"), out);
        }
        if port.name.is_empty() {
            out.push(Diagnostic::error(at.field("name"), "port name is required"));
        } else if let Err(e) = names::dns1123_label(&port.name) {
            out.push(Diagnostic::error(at.field("name"), e));
        }
        if port.protocol.is_none() {
            out.push(Diagnostic::warning(
                at.field("protocol"),
                "no protocol: the port is treated as TCP",
            ));
        }
    }
    check_unique(
        spec.ports
            .iter()
            .enumerate()
            .map(|(i, p)| (ports.index(i).field("number"), p.number)),
        "port number",
        out,
    );
    check_unique(
        spec.ports
            .iter()
            .enumerate()
            .filter(|(_, p)| !p.name.is_empty())
            .map(|(i, p)| (ports.index(i).field("name"), p.name.as_str())),
        "port name",
        out,
    );
}

fn check_endpoints(spec: &ServiceEntrySpec, endpoints: &FieldPath, out: &mut Vec<Diagnostic>) {
    match spec.resolution {
        Resolution::None if !spec.endpoints.is_empty() => out.push(Diagnostic::error(
            endpoints.clone(),
            "endpoints are not allowed with resolution NONE",
        )),
        Resolution::Static if spec.endpoints.is_empty() => out.push(Diagnostic::warning(
            endpoints.clone(),
            "resolution STATIC with no endpoints: traffic to these hosts has nowhere to go",
        )),
        _ => {}
    }
    for (i, endpoint) in spec.endpoints.iter().enumerate() {
        check_endpoint(spec, endpoint, &endpoints.index(i), out);
    }
}

fn check_endpoint(
    spec: &ServiceEntrySpec,
    endpoint: &ServiceEntryEndpoint,
    at: &FieldPath,
    out: &mut Vec<Diagnostic>,
) {
    let address = at.field("address");
    match spec.resolution {
        Resolution::Dns if names::ip_address(&endpoint.address).is_err() => {
            if endpoint.address.is_empty() {
                out.push(Diagnostic::error(address, "address is required"));
            } else if endpoint.address.starts_with("unix://") {
                out.push(Diagnostic::error(
                    address,
                    "unix domain socket addresses are not supported yet",
                ));
            } else if let Err(e) = names::host(&endpoint.address, false) {
                out.push(Diagnostic::error(address, e));
            }
        }
        Resolution::Dns => {}
        _ => {
            if let Err(e) = names::ip_address(&endpoint.address) {
                out.push(Diagnostic::error(address, e));
            }
        }
    }
    check_port_map(&endpoint.ports, &at.field("ports"), out);
    for name in endpoint.ports.keys() {
        if !spec.ports.iter().any(|p| &p.name == name) {
            out.push(Diagnostic::warning(
                at.field("ports").key(name),
                format!("port name {name:?} is not declared in spec.ports; it is unused"),
            ));
        }
    }
    check_labels(&endpoint.labels, &at.field("labels"), out);
    check_service_account(
        endpoint.service_account.as_deref(),
        at.field("serviceAccount"),
        out,
    );
    if let Some(locality) = &endpoint.locality {
        check_locality(locality, at.field("locality"), out);
    }
    check_weight(endpoint.weight, at.field("weight"), out);
}
