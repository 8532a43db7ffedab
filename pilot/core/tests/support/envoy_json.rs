//! Renders Envoy resources as proto3 JSON (the format of Envoy's own config
//! dump), for golden files a reviewer can read.
//!
//! The descriptors come from the `.proto` files that the `envoy-types` crate
//! ships, compiled at test time; nothing of Envoy's API is copied here.

use std::path::{Path, PathBuf};

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

/// Envoy messages the compiler emits, with everything they import.
const ROOTS: &[&str] = &[
    "envoy/config/cluster/v3/cluster.proto",
    "envoy/config/endpoint/v3/endpoint.proto",
    "envoy/config/listener/v3/listener.proto",
    "envoy/config/route/v3/route.proto",
    "envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto",
    "envoy/extensions/filters/http/router/v3/router.proto",
    "envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto",
    "envoy/extensions/upstreams/http/v3/http_protocol_options.proto",
    "envoy/extensions/retry/host/previous_hosts/v3/previous_hosts.proto",
    "envoy/extensions/retry/priority/previous_priorities/v3/previous_priorities_config.proto",
    "envoy/extensions/filters/http/fault/v3/fault.proto",
    "envoy/extensions/filters/http/cors/v3/cors.proto",
    "envoy/extensions/filters/http/rbac/v3/rbac.proto",
    "envoy/extensions/filters/network/rbac/v3/rbac.proto",
    "envoy/extensions/filters/http/jwt_authn/v3/config.proto",
    "envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto",
    "envoy/extensions/filters/listener/original_dst/v3/original_dst.proto",
    "envoy/extensions/transport_sockets/tls/v3/tls.proto",
    "envoy/extensions/transport_sockets/raw_buffer/v3/raw_buffer.proto",
];

/// Include roots inside the crate's `proto/` directory.
const INCLUDES: &[&str] = &[
    "data-plane-api",
    "xds",
    "googleapis",
    "protoc-gen-validate",
    "cel-spec/proto",
    "opentelemetry-proto",
    "client_model",
];

pub fn descriptor_pool() -> DescriptorPool {
    let root = envoy_types_proto_dir();
    let includes: Vec<PathBuf> = INCLUDES.iter().map(|i| root.join(i)).collect();
    let files = protox::compile(ROOTS, &includes)
        .unwrap_or_else(|e| panic!("compiling Envoy's protos from {}: {e}", root.display()));
    DescriptorPool::from_file_descriptor_set(files).expect("a valid descriptor set")
}

/// Decodes `bytes` as `type_url` and renders it as pretty JSON.
pub fn to_json(pool: &DescriptorPool, type_url: &str, bytes: &[u8]) -> serde_json::Value {
    let name = type_url.rsplit('/').next().unwrap_or(type_url);
    let descriptor = pool
        .get_message_by_name(name)
        .unwrap_or_else(|| panic!("no descriptor for {name}"));
    let message = DynamicMessage::decode(descriptor, bytes).expect("the resource decodes");
    let options = SerializeOptions::new().stringify_64_bit_integers(true);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .expect("the resource renders as JSON")
}

/// `<cargo home>/registry/src/*/envoy-types-<locked version>/proto`.
fn envoy_types_proto_dir() -> PathBuf {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let lock = std::fs::read_to_string(workspace.join("Cargo.lock")).expect("Cargo.lock");
    let version = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"envoy-types\""))
        .and_then(|p| p.lines().find_map(|l| l.strip_prefix("version = \"")))
        .map(|v| v.trim_end_matches('"').to_string())
        .expect("envoy-types in Cargo.lock");
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cargo")))
        .expect("CARGO_HOME or HOME");
    let pattern = cargo_home
        .join("registry/src/*")
        .join(format!("envoy-types-{version}/proto"));
    glob::glob(&pattern.to_string_lossy())
        .expect("a valid glob")
        .flatten()
        .next()
        .unwrap_or_else(|| panic!("envoy-types sources not found at {}", pattern.display()))
}
