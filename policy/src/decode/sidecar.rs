//! Sidecar: which workloads it applies to and the hosts their sidecars import.
//! Only the catch-all egress listener's hosts are decoded; listener ports,
//! ingress listeners and the rest are "not supported yet".

use serde_yaml::Value;

use super::{DecodeError, Fields, Result, Shape, ShapeId, list, string_list, string_map};
use crate::diag::FieldPath;
use crate::meta::ObjectMeta;
use crate::networking::{EgressListener, Sidecar, SidecarSpec, WorkloadSelector};

pub(super) const SIDECAR: Shape = Shape {
    name: "Sidecar.spec",
    known: &["workloadSelector", "egress"],
    unsupported: &["ingress", "outboundTrafficPolicy", "inboundConnectionPool"],
    ignored: &[],
    proto_names: true,
};

pub(super) const EGRESS: Shape = Shape {
    name: "Sidecar.spec.egress[]",
    known: &["hosts"],
    unsupported: &["port", "bind", "captureMode"],
    ignored: &[],
    proto_names: true,
};

pub(super) const WORKLOAD_SELECTOR: Shape = Shape {
    name: "Sidecar.spec.workloadSelector",
    known: &["labels"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(crate) fn decode_sidecar(meta: ObjectMeta, path: &FieldPath, spec: &Value) -> Result<Sidecar> {
    let fields = Fields::new(spec, path, ShapeId::Sidecar)?;
    let workload_selector = match fields.get("workloadSelector") {
        Some((p, v)) => {
            let selector = Fields::new(v, &p, ShapeId::SidecarWorkloadSelector)?;
            let labels = selector
                .get("labels")
                .map(|(p, v)| string_map(v, &p))
                .transpose()?
                .unwrap_or_default();
            Some(WorkloadSelector { labels })
        }
        None => None,
    };
    let mut egress = Vec::new();
    if let Some((p, v)) = fields.get("egress") {
        for (p, v) in list(v, &p)? {
            if v.is_null() {
                return Err(DecodeError::new(&p, "egress listener may not be null"));
            }
            let listener = Fields::new(v, &p, ShapeId::SidecarEgress)?;
            let hosts = listener
                .get("hosts")
                .map(|(p, v)| string_list(v, &p))
                .transpose()?
                .unwrap_or_default();
            egress.push(EgressListener { hosts });
        }
    }
    Ok(Sidecar {
        meta,
        spec: SidecarSpec {
            workload_selector,
            egress,
        },
    })
}
