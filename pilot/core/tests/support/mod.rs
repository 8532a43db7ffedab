//! Helpers shared by pilot's integration tests.
#![allow(dead_code, unreachable_pub)]

pub mod envoy_json;

/// A self-signed P-256 root (`openssl req -x509`, no key kept): the trust
/// bundle of the tests that run with a CA.
pub const ROOT_CERT: &str = include_str!("root-cert.pem");

use std::net::{IpAddr, SocketAddr};

use pilot_core::proxy::{DEFAULT_OUTBOUND_PORT, Generator, NodeMetadata, Proxy};
use policy::networking::WorkloadEntry;

/// The proxy of a WorkloadEntry, as its sidecar would announce itself; its
/// application listens on `ADDRESS:15080`. `None` when the address is not an IP.
pub fn proxy_of(we: &WorkloadEntry) -> Option<Proxy> {
    let address: IpAddr = we.spec.address.parse().ok()?;
    Some(Proxy::new(NodeMetadata {
        namespace: we.meta.namespace.clone(),
        workload: we.meta.name.clone(),
        address,
        labels: we.spec.labels.clone(),
        service_account: we.spec.service_account.clone(),
        app_address: Some(SocketAddr::new(address, 15080)),
        app_ports: Default::default(),
        outbound_port: DEFAULT_OUTBOUND_PORT,
        generator: Default::default(),
        sds: false,
        capture: false,
    }))
}

/// The proxyless gRPC client (`GENERATOR: grpc`) of a WorkloadEntry: the
/// same identity as [`proxy_of`]'s sidecar, as a client that reads xDS
/// itself.
pub fn proxyless_of(we: &WorkloadEntry) -> Option<Proxy> {
    let mut proxy = proxy_of(we)?;
    proxy.metadata.generator = Generator::Grpc;
    proxy.metadata.app_address = None;
    Some(proxy)
}
