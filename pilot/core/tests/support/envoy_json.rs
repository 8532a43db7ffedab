//! Renders Envoy resources as proto3 JSON (the format of Envoy's own config
//! dump), for golden files a reviewer can read: `pilot-envoy-json`, whose
//! descriptors the admin API's config view uses too.

use prost_reflect::DescriptorPool;

pub fn descriptor_pool() -> &'static DescriptorPool {
    pilot_envoy_json::pool()
}

/// Decodes `bytes` as `type_url` and renders it as pretty JSON.
pub fn to_json(_pool: &DescriptorPool, type_url: &str, bytes: &[u8]) -> serde_json::Value {
    pilot_envoy_json::to_json(type_url, bytes)
        .unwrap_or_else(|e| panic!("the resource renders as JSON: {e}"))
}
