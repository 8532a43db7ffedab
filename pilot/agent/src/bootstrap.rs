//! The Envoy v3 bootstrap a sidecar starts from.
//!
//! The bootstrap only tells Envoy who it is (node id and metadata), where its
//! admin interface listens and how to reach the control plane over ADS. All
//! listeners and clusters come from the control plane.
//!
//! ```text
//! BootstrapConfig ──► build (pure) ──► serde_json::Value ──► bootstrap file ──► envoy -c FILE
//!   └─ node: NodeMetadata ──► NodeMetadata::to_json (pilot-node) ──► node.metadata
//! ```
//!
//! `build` does no I/O and its output is deterministic (object keys are
//! sorted), so it can be compared against golden files.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use pilot_node::{DEFAULT_ADMIN_PORT, Mode, NodeMetadata};
use serde_json::{Value, json};

/// Name of the static cluster that points at the control plane.
pub const XDS_CLUSTER: &str = "xds-grpc";

/// Name of the static cluster on the agent's SDS socket, as istio-agent names it.
pub use pilot_node::SDS_CLUSTER;

/// The RE2 program size above which Envoy rejects a regex. Envoy's default
/// of 100 rejects ordinary route patterns; Istio's bootstrap raises it to
/// this value (validation bounds the pattern length at 1024 characters).
pub const RE2_MAX_PROGRAM_SIZE: u32 = 32768;

/// Errors from parsing bootstrap inputs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    #[error("xds address {0:?}: expected HOST:PORT")]
    XdsAddress(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where the control plane's xDS server listens: an IP address or a host name, and a port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct XdsAddress {
    pub host: String,
    pub port: u16,
}

impl XdsAddress {
    /// Whether `host` is a literal IP address (a `STATIC` cluster) rather than a
    /// name Envoy must resolve (`STRICT_DNS`).
    pub fn is_ip(&self) -> bool {
        self.host.parse::<IpAddr>().is_ok()
    }
}

impl From<SocketAddr> for XdsAddress {
    fn from(addr: SocketAddr) -> Self {
        XdsAddress {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

impl FromStr for XdsAddress {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        if let Ok(addr) = s.parse::<SocketAddr>() {
            return Ok(addr.into());
        }
        let invalid = || Error::XdsAddress(s.to_string());
        let (host, port) = s.rsplit_once(':').ok_or_else(invalid)?;
        let port = port.parse::<u16>().map_err(|_| invalid())?;
        let valid_host = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.' || c == '_');
        if !valid_host {
            return Err(invalid());
        }
        Ok(XdsAddress {
            host: host.to_string(),
            port,
        })
    }
}

impl fmt::Display for XdsAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.host.parse::<IpAddr>() {
            Ok(IpAddr::V6(ip)) => write!(f, "[{ip}]:{}", self.port),
            _ => write!(f, "{}:{}", self.host, self.port),
        }
    }
}

/// Everything the bootstrap depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapConfig {
    /// Who the sidecar is: the node metadata the control plane reads back.
    pub node: NodeMetadata,
    pub xds_address: XdsAddress,
    pub xds_mode: Mode,
    pub admin_port: u16,
    /// The agent's SDS socket, when it serves the workload certificate.
    pub sds_socket: Option<PathBuf>,
    /// xDS over mutual TLS: Envoy presents the workload certificate (SDS
    /// `default` from the agent's socket, so `sds_socket` must be set) and
    /// verifies the control plane's serving certificate against the roots
    /// in this file and for the xDS host's IP or name. `None`: plaintext.
    pub xds_tls_roots: Option<PathBuf>,
}

impl BootstrapConfig {
    /// A configuration for `node` with the default admin port and ADS in
    /// state-of-the-world mode.
    pub fn new(node: NodeMetadata, xds_address: XdsAddress) -> Self {
        BootstrapConfig {
            node,
            xds_address,
            xds_mode: Mode::Sotw,
            admin_port: DEFAULT_ADMIN_PORT,
            sds_socket: None,
            xds_tls_roots: None,
        }
    }

    /// Envoy's node id for this sidecar.
    pub fn node_id(&self) -> String {
        self.node.node_id()
    }

    /// Where Envoy's admin interface listens.
    pub fn admin_addr(&self) -> SocketAddr {
        SocketAddr::new(self.node.address, self.admin_port)
    }
}

/// Builds the Envoy v3 bootstrap for `cfg`.
pub fn build(cfg: &BootstrapConfig) -> Value {
    let mut xds = xds_cluster(&cfg.xds_address);
    if let (Some(roots), Some(_), Some(obj)) =
        (&cfg.xds_tls_roots, &cfg.sds_socket, xds.as_object_mut())
    {
        obj.insert("transport_socket".into(), xds_tls(&cfg.xds_address, roots));
    }
    let mut clusters = vec![xds];
    if let Some(socket) = &cfg.sds_socket {
        clusters.push(sds_cluster(socket));
    }
    // The metadata says whether the agent serves the workload certificate,
    // so the control plane gives mutual TLS only to sidecars that have one.
    let node = NodeMetadata {
        sds: cfg.sds_socket.is_some(),
        ..cfg.node.clone()
    };
    json!({
        "node": {
            "id": cfg.node_id(),
            "cluster": cfg.node.cluster(),
            "metadata": node.to_json(),
        },
        "admin": {
            "address": socket_address(&cfg.node.address.to_string(), cfg.admin_port),
        },
        "dynamic_resources": {
            "ads_config": {
                "api_type": cfg.xds_mode.api_type(),
                "transport_api_version": "V3",
                "grpc_services": [{
                    "envoy_grpc": {
                        "cluster_name": XDS_CLUSTER,
                        // Envoy's default is 500ms growing to 30s; a control plane
                        // restart should be picked up within a couple of seconds.
                        "retry_policy": {
                            "retry_back_off": {
                                "base_interval": "0.25s",
                                "max_interval": "2s",
                            },
                        },
                    },
                }],
                "set_node_on_first_message_only": true,
            },
            "lds_config": { "ads": {}, "resource_api_version": "V3" },
            "cds_config": { "ads": {}, "resource_api_version": "V3" },
        },
        "static_resources": {
            "clusters": clusters,
        },
        // Every upstream connection leaves from the workload's own address,
        // as it would from a pod's IP: without it Linux gives each loopback
        // connection the source 127.0.0.1, and the peer's `ipBlocks`,
        // `source.ip` and `remoteIpBlocks` could not tell callers apart.
        "cluster_manager": {
            "upstream_bind_config": {
                "source_address": { "address": cfg.node.address.to_string(), "port_value": 0 },
            },
        },
        "layered_runtime": layered_runtime(),
    })
}

/// Istio's runtime layers: a static layer with the RE2 program size limit
/// (a string, as Istio writes it; Envoy reads it as a number), then the
/// admin layer so `/runtime_modify` still works.
fn layered_runtime() -> Value {
    json!({
        "layers": [
            {
                "name": "global config",
                "static_layer": {
                    "re2.max_program_size.error_level": RE2_MAX_PROGRAM_SIZE.to_string(),
                },
            },
            { "name": "admin", "admin_layer": {} },
        ],
    })
}

/// The static cluster to the control plane. It must speak HTTP/2: without it
/// Envoy waits forever in cluster manager initialisation.
fn xds_cluster(xds: &XdsAddress) -> Value {
    let mut cluster = json!({
        "name": XDS_CLUSTER,
        "type": if xds.is_ip() { "STATIC" } else { "STRICT_DNS" },
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": XDS_CLUSTER,
            "endpoints": [{
                "lb_endpoints": [{
                    "endpoint": { "address": socket_address(&xds.host, xds.port) },
                }],
            }],
        },
        "typed_extension_protocol_options": http2_options(),
    });
    if !xds.is_ip()
        && let Some(obj) = cluster.as_object_mut()
    {
        obj.insert("dns_lookup_family".into(), "V4_PREFERRED".into());
    }
    cluster
}

/// The xDS cluster's mutual TLS, as istio-agent writes it for 15012: the
/// workload certificate from the agent, the control plane checked against
/// the CA's roots and for the host it is dialled by, ALPN `h2`.
fn xds_tls(xds: &XdsAddress, roots: &Path) -> Value {
    let san = if xds.is_ip() {
        json!({ "san_type": "IP_ADDRESS", "matcher": { "exact": xds.host } })
    } else {
        json!({ "san_type": "DNS", "matcher": { "exact": xds.host } })
    };
    let mut context = json!({
        "@type": "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext",
        "common_tls_context": {
            "alpn_protocols": ["h2"],
            "tls_certificate_sds_secret_configs": [{
                "name": pilot_node::DEFAULT_SECRET,
                "sds_config": {
                    "resource_api_version": "V3",
                    "initial_fetch_timeout": "0s",
                    "api_config_source": {
                        "api_type": "GRPC",
                        "transport_api_version": "V3",
                        "set_node_on_first_message_only": true,
                        "grpc_services": [{ "envoy_grpc": { "cluster_name": SDS_CLUSTER } }],
                    },
                },
            }],
            "validation_context": {
                "trusted_ca": { "filename": roots.display().to_string() },
                "match_typed_subject_alt_names": [san],
            },
        },
    });
    if !xds.is_ip()
        && let Some(obj) = context.as_object_mut()
    {
        obj.insert("sni".into(), xds.host.clone().into());
    }
    json!({ "name": "envoy.transport_sockets.tls", "typed_config": context })
}

/// The static cluster on the agent's SDS socket. gRPC, so HTTP/2 as the
/// xDS cluster; a pipe needs no DNS and no connect retries to speak of.
fn sds_cluster(socket: &Path) -> Value {
    json!({
        "name": SDS_CLUSTER,
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {
            "cluster_name": SDS_CLUSTER,
            "endpoints": [{
                "lb_endpoints": [{
                    "endpoint": {
                        "address": { "pipe": { "path": socket.display().to_string() } },
                    },
                }],
            }],
        },
        "typed_extension_protocol_options": http2_options(),
    })
}

fn http2_options() -> Value {
    json!({
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {
            "@type": "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions",
            "explicit_http_config": {
                "http2_protocol_options": {
                    "connection_keepalive": { "interval": "30s", "timeout": "5s" },
                },
            },
        },
    })
}

fn socket_address(host: &str, port: u16) -> Value {
    json!({ "socket_address": { "address": host, "port_value": port } })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> BootstrapConfig {
        let mut node = NodeMetadata::new("shop", "reviews-v1", "127.0.1.3".parse().unwrap());
        node.labels.insert("app".into(), "reviews".into());
        node.labels.insert("version".into(), "v1".into());
        node.service_account = Some("bookinfo-reviews".into());
        node.app_address = Some("127.0.0.1:19080".parse().unwrap());
        node.app_ports
            .insert(9080, "127.0.0.1:19081".parse().unwrap());
        BootstrapConfig::new(node, "127.0.0.1:15010".parse().unwrap())
    }

    #[test]
    fn node_identity() {
        let b = build(&config());
        assert_eq!(
            b["node"]["id"],
            "sidecar~127.0.1.3~reviews-v1.shop~shop.svc.cluster.local"
        );
        assert_eq!(b["node"]["cluster"], "reviews-v1.shop");
        assert_eq!(
            b["admin"]["address"]["socket_address"],
            json!({ "address": "127.0.1.3", "port_value": 15000 })
        );
    }

    #[test]
    fn metadata_has_every_key() {
        let b = build(&config());
        assert_eq!(
            b["node"]["metadata"],
            json!({
                "namespace": "shop",
                "workload": "reviews-v1",
                "address": "127.0.1.3",
                "labels": { "app": "reviews", "version": "v1" },
                "service_account": "bookinfo-reviews",
                "app_address": "127.0.0.1:19080",
                "app_ports": { "9080": "127.0.0.1:19081" },
                "outbound_port": "15001",
            })
        );
    }

    #[test]
    fn metadata_leaves_out_unset_optional_keys() {
        let mut cfg = config();
        cfg.node.service_account = None;
        cfg.node.app_address = None;
        cfg.node.labels.clear();
        cfg.node.app_ports.clear();
        cfg.node.outbound_port = 16001;
        let meta = build(&cfg)["node"]["metadata"].clone();
        let keys: Vec<&str> = meta
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys,
            [
                "address",
                "app_ports",
                "labels",
                "namespace",
                "outbound_port",
                "workload"
            ]
        );
        assert_eq!(meta["labels"], json!({}));
        assert_eq!(meta["outbound_port"], "16001");
    }

    #[test]
    fn api_type_follows_mode() {
        let mut cfg = config();
        assert_eq!(
            build(&cfg)["dynamic_resources"]["ads_config"]["api_type"],
            "GRPC"
        );
        cfg.xds_mode = Mode::Delta;
        let b = build(&cfg);
        let ads = &b["dynamic_resources"]["ads_config"];
        assert_eq!(ads["api_type"], "DELTA_GRPC");
        assert_eq!(ads["transport_api_version"], "V3");
        assert_eq!(ads["set_node_on_first_message_only"], true);
        assert_eq!(
            ads["grpc_services"][0]["envoy_grpc"]["cluster_name"],
            XDS_CLUSTER
        );
        for key in ["lds_config", "cds_config"] {
            assert_eq!(
                b["dynamic_resources"][key],
                json!({ "ads": {}, "resource_api_version": "V3" })
            );
        }
    }

    #[test]
    fn xds_cluster_speaks_http2() {
        let b = build(&config());
        let cluster = &b["static_resources"]["clusters"][0];
        assert_eq!(cluster["name"], XDS_CLUSTER);
        assert_eq!(cluster["type"], "STATIC");
        assert_eq!(cluster["connect_timeout"], "1s");
        let opts = &cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"];
        assert_eq!(
            opts["@type"],
            "type.googleapis.com/envoy.extensions.upstreams.http.v3.HttpProtocolOptions"
        );
        assert_eq!(
            opts["explicit_http_config"]["http2_protocol_options"]["connection_keepalive"],
            json!({ "interval": "30s", "timeout": "5s" })
        );
        assert_eq!(
            cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"],
            json!({ "socket_address": { "address": "127.0.0.1", "port_value": 15010 } })
        );
    }

    #[test]
    fn xds_over_mutual_tls_presents_the_workload_certificate_and_checks_the_control_plane() {
        let mut cfg = config();
        cfg.xds_tls_roots = Some("/etc/bowline/ca-root.pem".into());
        // Without the agent's certificate there is nothing to present: plaintext.
        assert!(build(&cfg)["static_resources"]["clusters"][0]["transport_socket"].is_null());
        cfg.sds_socket = Some("/tmp/bowline-1-0/sds.sock".into());
        let b = build(&cfg);
        let socket = &b["static_resources"]["clusters"][0]["transport_socket"];
        assert_eq!(socket["name"], "envoy.transport_sockets.tls");
        let common = &socket["typed_config"]["common_tls_context"];
        assert_eq!(common["alpn_protocols"], json!(["h2"]));
        let cert = &common["tls_certificate_sds_secret_configs"][0];
        assert_eq!(cert["name"], "default");
        assert_eq!(
            cert["sds_config"]["api_config_source"]["grpc_services"][0]["envoy_grpc"]["cluster_name"],
            SDS_CLUSTER
        );
        let validation = &common["validation_context"];
        assert_eq!(
            validation["trusted_ca"]["filename"],
            "/etc/bowline/ca-root.pem"
        );
        assert_eq!(
            validation["match_typed_subject_alt_names"][0],
            json!({ "san_type": "IP_ADDRESS", "matcher": { "exact": cfg.xds_address.host } })
        );
        assert!(socket["typed_config"].get("sni").is_none());
    }

    #[test]
    fn upstream_connections_leave_from_the_workload_address() {
        let b = build(&config());
        assert_eq!(
            b["cluster_manager"]["upstream_bind_config"]["source_address"],
            json!({ "address": config().node.address.to_string(), "port_value": 0 })
        );
    }

    #[test]
    fn no_sds_socket_no_sds_cluster() {
        let b = build(&config());
        assert_eq!(
            b["static_resources"]["clusters"].as_array().unwrap().len(),
            1
        );
        assert_eq!(b["node"]["metadata"].get("sds"), None);
    }

    #[test]
    fn sds_cluster_on_the_agents_pipe_speaks_http2() {
        let mut cfg = config();
        cfg.sds_socket = Some("/tmp/bowline-1-0/sds.sock".into());
        let b = build(&cfg);
        let clusters = b["static_resources"]["clusters"].as_array().unwrap();
        assert_eq!(clusters.len(), 2);
        let sds = &clusters[1];
        assert_eq!(sds["name"], SDS_CLUSTER);
        assert_eq!(sds["name"], "sds-grpc");
        assert_eq!(b["node"]["metadata"]["sds"], "true");
        assert_eq!(sds["type"], "STATIC");
        assert_eq!(
            sds["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"],
            json!({ "pipe": { "path": "/tmp/bowline-1-0/sds.sock" } })
        );
        assert_eq!(
            sds["typed_extension_protocol_options"],
            clusters[0]["typed_extension_protocol_options"]
        );
    }

    #[test]
    fn host_name_uses_dns() {
        let mut cfg = config();
        cfg.xds_address = "istiod.local:15010".parse().unwrap();
        let b = build(&cfg);
        let cluster = &b["static_resources"]["clusters"][0];
        assert_eq!(cluster["type"], "STRICT_DNS");
        assert_eq!(cluster["dns_lookup_family"], "V4_PREFERRED");
        assert_eq!(
            cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"]
                ["address"],
            "istiod.local"
        );
    }

    #[test]
    fn runtime_raises_the_re2_program_size_limit_as_istio_does() {
        let b = build(&config());
        assert_eq!(
            b["layered_runtime"],
            json!({
                "layers": [
                    {
                        "name": "global config",
                        "static_layer": { "re2.max_program_size.error_level": "32768" },
                    },
                    { "name": "admin", "admin_layer": {} },
                ],
            })
        );
    }

    #[test]
    fn output_is_deterministic() {
        let a = serde_json::to_string(&build(&config())).unwrap();
        let b = serde_json::to_string(&build(&config())).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn parses_xds_addresses() {
        assert_eq!(
            "127.0.0.1:15010".parse::<XdsAddress>().unwrap(),
            XdsAddress {
                host: "127.0.0.1".into(),
                port: 15010
            }
        );
        let v6: XdsAddress = "[::1]:15010".parse().unwrap();
        assert_eq!(v6.host, "::1");
        assert!(v6.is_ip());
        assert_eq!(v6.to_string(), "[::1]:15010");
        let named: XdsAddress = "pilot.mesh:15010".parse().unwrap();
        assert!(!named.is_ip());
        assert_eq!(named.to_string(), "pilot.mesh:15010");
        for bad in ["", "15010", ":15010", "host:", "host:99999", "a b:1"] {
            assert_eq!(
                bad.parse::<XdsAddress>(),
                Err(Error::XdsAddress(bad.to_string())),
                "{bad}"
            );
        }
    }
}
