//! The Kubernetes core (`v1`) objects the mesh reads: `Service`.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::meta::ObjectMeta;

/// `v1 Service`: a name and ports in front of the workloads its selector matches.
#[derive(Clone, Debug, PartialEq)]
pub struct Service {
    pub meta: ObjectMeta,
    pub spec: ServiceSpec,
}

#[derive(Clone, Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Labels a WorkloadEntry of the same namespace must carry to back this service.
    #[serde(default)]
    pub selector: BTreeMap<String, String>,
    #[serde(default)]
    pub ports: Vec<ServicePort>,
    /// The virtual IP clients dial (`clusterIP`); none for a headless
    /// service or where it is not given. Captured pods' sidecars match
    /// their outbound connections on it.
    #[serde(default, rename = "clusterIP")]
    pub cluster_ip: Option<std::net::IpAddr>,
}

#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    #[serde(default)]
    pub name: Option<String>,
    pub port: u16,
    #[serde(default)]
    pub target_port: Option<TargetPort>,
    #[serde(default)]
    pub app_protocol: Option<String>,
}

/// A `targetPort`: a number, or the name of a port the workload declares.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum TargetPort {
    Number(u16),
    Name(String),
}
