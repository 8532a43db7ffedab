//! The control plane's replicas, found from its Service's endpoints, as
//! `istioctl` finds istiod's pods: `bowline proxy-status --kubernetes` and
//! `GET /api/v1/proxies?replicas=all` ask each of them and merge.
//!
//! ```text
//! EndpointSlices (kubernetes.io/service-name=SERVICE, in NAMESPACE)
//!   ──► every endpoint not known to be unready ──► ADDRESS:PORT of the port named PORT_NAME
//! ```

use std::net::{IpAddr, SocketAddr};

use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::Api;
use kube::api::ListParams;

/// Where the control plane's Service is, and the port of its admin API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControlPlaneService {
    pub namespace: String,
    pub name: String,
    /// The name of the admin API's port in the Service.
    pub port_name: String,
}

impl Default for ControlPlaneService {
    /// `istio-system/istiod`, port `http-admin`, as `manifests/` deploy it.
    fn default() -> Self {
        ControlPlaneService {
            namespace: "istio-system".to_string(),
            name: "istiod".to_string(),
            port_name: "http-admin".to_string(),
        }
    }
}

impl ControlPlaneService {
    /// `NAMESPACE/NAME`, the admin port's name as by default.
    pub fn parse(text: &str) -> Option<ControlPlaneService> {
        let (namespace, name) = text.split_once('/')?;
        (!namespace.is_empty() && !name.is_empty() && !name.contains('/')).then(|| {
            ControlPlaneService {
                namespace: namespace.to_string(),
                name: name.to_string(),
                ..ControlPlaneService::default()
            }
        })
    }
}

/// The admin addresses in `slices`: each endpoint whose `ready` is not
/// false (unknown counts as ready, as the API says), at the port named
/// `port_name`; sorted, without duplicates. IPv4 and IPv6 alike.
pub fn admin_addresses(slices: &[EndpointSlice], port_name: &str) -> Vec<SocketAddr> {
    let mut out = Vec::new();
    for slice in slices {
        let Some(port) = slice
            .ports
            .iter()
            .flatten()
            .find(|p| p.name.as_deref() == Some(port_name))
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for endpoint in slice.endpoints.iter().flatten() {
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !ready {
                continue;
            }
            for address in &endpoint.addresses {
                if let Ok(ip) = address.parse::<IpAddr>() {
                    out.push(SocketAddr::new(ip, port));
                }
            }
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The replicas' admin addresses, read now.
pub async fn admin_addresses_of(
    client: kube::Client,
    service: &ControlPlaneService,
) -> Result<Vec<SocketAddr>, kube::Error> {
    let api: Api<EndpointSlice> = Api::namespaced(client, &service.namespace);
    let params =
        ListParams::default().labels(&format!("kubernetes.io/service-name={}", service.name));
    let slices = api.list(&params).await?;
    Ok(admin_addresses(&slices.items, &service.port_name))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(json: serde_json::Value) -> EndpointSlice {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn ready_endpoints_at_the_admin_port() {
        let slices = [
            slice(serde_json::json!({
                "metadata": {"name": "istiod-a", "namespace": "istio-system"},
                "addressType": "IPv4",
                "ports": [{"name": "grpc-xds", "port": 15010}, {"name": "http-admin", "port": 15014}],
                "endpoints": [
                    {"addresses": ["10.0.0.2"], "conditions": {"ready": true}},
                    {"addresses": ["10.0.0.3"], "conditions": {"ready": false}},
                    {"addresses": ["10.0.0.1"]},
                ],
            })),
            slice(serde_json::json!({
                "metadata": {"name": "istiod-b", "namespace": "istio-system"},
                "addressType": "IPv4",
                "ports": [{"name": "http-admin", "port": 15014}],
                "endpoints": [{"addresses": ["10.0.0.2", "not-an-ip"]}],
            })),
            slice(serde_json::json!({
                "metadata": {"name": "istiod-c", "namespace": "istio-system"},
                "addressType": "IPv4",
                "ports": [{"name": "grpc-xds", "port": 15010}],
                "endpoints": [{"addresses": ["10.0.0.9"]}],
            })),
        ];
        let found: Vec<String> = admin_addresses(&slices, "http-admin")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(found, ["10.0.0.1:15014", "10.0.0.2:15014"]);
    }

    #[test]
    fn a_service_is_named_namespace_slash_name() {
        let parsed = ControlPlaneService::parse("mesh/bowline").unwrap();
        assert_eq!(
            (parsed.namespace.as_str(), parsed.name.as_str()),
            ("mesh", "bowline")
        );
        assert_eq!(parsed.port_name, "http-admin");
        for bad in ["bowline", "/x", "x/", "a/b/c"] {
            assert_eq!(ControlPlaneService::parse(bad), None, "{bad}");
        }
    }
}
