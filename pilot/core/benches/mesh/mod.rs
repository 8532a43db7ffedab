//! The generated mesh the benches share: `svc-N` services in 10 namespaces,
//! each with its own WorkloadEntries on 127.x addresses.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use pilot_core::proxy::{DEFAULT_OUTBOUND_PORT, NodeMetadata, Proxy};

pub(crate) fn address(i: usize) -> Ipv4Addr {
    let i = u32::try_from(i).expect("small index");
    Ipv4Addr::new(127, 1 + (i >> 16) as u8, (i >> 8) as u8, i as u8)
}

/// Services `svc-N` in 10 namespaces, each selecting its own 10 workloads; a
/// tenth of them split 90/10 between two subsets.
pub(crate) fn mesh_yaml(services: usize, endpoints: usize) -> String {
    let mut y = String::new();
    for s in 0..services {
        let ns = format!("ns-{}", s % 10);
        let _ = write!(
            y,
            "apiVersion: v1\nkind: Service\nmetadata: {{name: svc-{s}, namespace: {ns}}}\nspec:\n  selector: {{app: svc-{s}}}\n  ports:\n  - {{name: http, port: 8080}}\n---\n"
        );
        for e in 0..endpoints {
            let version = if e % 2 == 0 { "v1" } else { "v2" };
            let _ = write!(
                y,
                "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {{name: svc-{s}-{e}, namespace: {ns}}}\nspec:\n  address: {}\n  labels: {{app: svc-{s}, version: {version}}}\n---\n",
                address(s * endpoints + e)
            );
        }
        if s % 10 == 0 {
            let _ = write!(
                y,
                "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: svc-{s}, namespace: {ns}}}\nspec:\n  host: svc-{s}\n  subsets:\n  - {{name: v1, labels: {{version: v1}}}}\n  - {{name: v2, labels: {{version: v2}}}}\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: svc-{s}, namespace: {ns}}}\nspec:\n  hosts: [svc-{s}]\n  http:\n  - route:\n    - destination: {{host: svc-{s}, subset: v1}}\n      weight: 90\n    - destination: {{host: svc-{s}, subset: v2}}\n      weight: 10\n---\n"
            );
        }
    }
    y
}

/// The sidecar of endpoint `e` of service `s`.
pub(crate) fn proxy(s: usize, e: usize, endpoints: usize) -> Proxy {
    let ip = IpAddr::V4(address(s * endpoints + e));
    let (name, ns) = (format!("svc-{s}-{e}"), format!("ns-{}", s % 10));
    Proxy::new(NodeMetadata {
        namespace: ns,
        workload: name,
        address: ip,
        labels: Default::default(),
        service_account: None,
        app_address: Some(SocketAddr::new(ip, 15080)),
        app_ports: Default::default(),
        outbound_port: DEFAULT_OUTBOUND_PORT,
        generator: Default::default(),
        sds: false,
        capture: false,
    })
}
