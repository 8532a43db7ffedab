//! WorkloadEntry and ServiceEntry: workloads and the services they back.

use serde_yaml::Value;

use super::{
    DecodeError, Fields, Findings, Result, Shape, ShapeId, keyword, list, port, port_map, string,
    string_list, string_map, uint32,
};
use crate::diag::{Diagnostic, FieldPath};
use crate::meta::ObjectMeta;
use crate::networking::{
    Location, Resolution, ServiceEntry, ServiceEntryEndpoint, ServiceEntryPort, ServiceEntrySpec,
    WorkloadEntry, WorkloadEntrySpec,
};
use crate::protocol::canonical_protocol;

/// The fields of a WorkloadEntry spec, which are also those of a ServiceEntry endpoint.
pub(super) const WORKLOAD: Shape = Shape {
    name: "WorkloadEntry.spec",
    known: &[
        "address",
        "ports",
        "labels",
        "serviceAccount",
        "locality",
        "weight",
    ],
    unsupported: &["network"],
    ignored: &[],
    proto_names: true,
};

pub(super) const SERVICE_ENTRY: Shape = Shape {
    name: "ServiceEntry.spec",
    known: &[
        "hosts",
        "ports",
        "location",
        "resolution",
        "endpoints",
        "exportTo",
        "addresses",
    ],
    unsupported: &["workloadSelector", "subjectAltNames"],
    ignored: &[],
    proto_names: true,
};

pub(super) const PORT: Shape = Shape {
    name: "ServiceEntry.spec.ports[]",
    known: &["number", "protocol", "name", "targetPort"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(crate) fn decode_workload_entry(
    meta: ObjectMeta,
    path: &FieldPath,
    spec: &Value,
) -> Result<WorkloadEntry> {
    let e = decode_endpoint(path, spec)?;
    Ok(WorkloadEntry {
        meta,
        spec: WorkloadEntrySpec {
            address: e.address,
            labels: e.labels,
            ports: e.ports,
            service_account: e.service_account,
            locality: e.locality,
            weight: e.weight,
        },
    })
}

fn decode_endpoint(path: &FieldPath, value: &Value) -> Result<ServiceEntryEndpoint> {
    let fields = Fields::new(value, path, ShapeId::WorkloadEntry)?;
    let opt_string = |name: &str| -> Result<Option<String>> {
        fields.get(name).map(|(p, v)| string(v, &p)).transpose()
    };
    Ok(ServiceEntryEndpoint {
        address: opt_string("address")?.unwrap_or_default(),
        ports: fields
            .get("ports")
            .map(|(p, v)| port_map(v, &p))
            .transpose()?
            .unwrap_or_default(),
        labels: fields
            .get("labels")
            .map(|(p, v)| string_map(v, &p))
            .transpose()?
            .unwrap_or_default(),
        locality: opt_string("locality")?,
        weight: fields
            .get("weight")
            .map(|(p, v)| uint32(v, &p))
            .transpose()?,
        service_account: opt_string("serviceAccount")?,
    })
}

pub(crate) fn decode_service_entry(
    meta: ObjectMeta,
    path: &FieldPath,
    spec: &Value,
    findings: &mut Findings,
) -> Result<ServiceEntry> {
    let fields = Fields::new(spec, path, ShapeId::ServiceEntry)?;
    let export_to = fields
        .get("exportTo")
        .map(|(p, v)| string_list(v, &p))
        .transpose()?
        .unwrap_or_default();
    let addresses = fields
        .get("addresses")
        .map(|(p, v)| string_list(v, &p))
        .transpose()?
        .unwrap_or_default();
    if let Some((p, _)) = fields.get("addresses") {
        for (i, address) in addresses.iter().enumerate() {
            check_entry_address(address, p.index(i), findings);
        }
    }
    let hosts = fields
        .get("hosts")
        .map(|(p, v)| string_list(v, &p))
        .transpose()?
        .unwrap_or_default();
    let mut ports = Vec::new();
    if let Some((p, v)) = fields.get("ports") {
        for (p, v) in list(v, &p)? {
            ports.push(decode_port(&p, v, findings)?);
        }
    }
    let location = match fields.get("location") {
        Some((p, v)) => keyword(
            v,
            &p,
            &[
                ("MESH_EXTERNAL", Location::MeshExternal),
                ("MESH_INTERNAL", Location::MeshInternal),
            ],
        )?,
        None => Location::default(),
    };
    let resolution = match fields.get("resolution") {
        Some((p, v)) => decode_resolution(v, &p)?,
        None => Resolution::default(),
    };
    let mut endpoints = Vec::new();
    if let Some((p, v)) = fields.get("endpoints") {
        for (p, v) in list(v, &p)? {
            endpoints.push(decode_endpoint(&p, v)?);
        }
    }
    Ok(ServiceEntry {
        meta,
        spec: ServiceEntrySpec {
            hosts,
            ports,
            location,
            resolution,
            endpoints,
            addresses,
            export_to,
        },
    })
}

fn decode_resolution(value: &Value, path: &FieldPath) -> Result<Resolution> {
    if value
        .as_str()
        .is_some_and(|s| s.eq_ignore_ascii_case("DNS_ROUND_ROBIN"))
    {
        return Err(DecodeError::new(
            path,
            "resolution DNS_ROUND_ROBIN is not supported yet",
        ));
    }
    keyword(
        value,
        path,
        &[
            ("NONE", Resolution::None),
            ("STATIC", Resolution::Static),
            ("DNS", Resolution::Dns),
        ],
    )
}

fn decode_port(
    path: &FieldPath,
    value: &Value,
    findings: &mut Findings,
) -> Result<ServiceEntryPort> {
    let fields = Fields::new(value, path, ShapeId::ServiceEntryPort)?;
    let (p, v) = fields.require("number")?;
    let number = port(v, &p)?;
    let name = fields
        .get("name")
        .map(|(p, v)| string(v, &p))
        .transpose()?
        .unwrap_or_default();
    let protocol = match fields.get("protocol") {
        Some((p, v)) => {
            let written = string(v, &p)?;
            match canonical_protocol(&written) {
                Some("UDP") => {
                    findings.push(Diagnostic::error(p, "protocol UDP is not supported yet"))
                }
                Some(_) => {}
                None => findings.push(Diagnostic::error(
                    p,
                    format!(
                        "unknown protocol {written:?}; expected one of {}",
                        crate::protocol::PROTOCOLS.join(", ")
                    ),
                )),
            }
            Some(
                canonical_protocol(&written)
                    .map_or_else(|| written.to_ascii_uppercase(), str::to_string),
            )
        }
        None => None,
    };
    let target_port = fields
        .get("targetPort")
        .map(|(p, v)| port(v, &p))
        .transpose()?;
    Ok(ServiceEntryPort {
        number,
        name,
        protocol,
        target_port,
    })
}

/// A ServiceEntry address wider than one host: captured sidecars match
/// single addresses only. (Validation checks the addresses' form.)
fn check_entry_address(address: &str, path: FieldPath, findings: &mut Findings) {
    let Some((ip, prefix)) = address.split_once('/') else {
        return;
    };
    let (Ok(ip), Ok(len)) = (ip.parse::<std::net::IpAddr>(), prefix.parse::<u8>()) else {
        return;
    };
    if len < if ip.is_ipv4() { 32 } else { 128 } {
        findings.push(Diagnostic::warning(
            path,
            format!("the CIDR block {address} is not matched on: captured sidecars match single addresses"),
        ));
    }
}
