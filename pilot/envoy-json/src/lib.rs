//! Envoy resources as proto3 JSON, the form of Envoy's own config dump, so
//! that what the control plane sent and what Envoy runs read alike: for the
//! admin API's `/api/v1/proxies/{id}/config`, `bowline proxy-config` and
//! the compiler's golden files.
//!
//! The descriptors are compiled at build time from the `.proto` files the
//! `envoy-types` crate ships (see `build.rs`) and decoded once.

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};

static DESCRIPTORS: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/envoy.bin"));

/// The Envoy messages Bowline emits, with everything they import.
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(DESCRIPTORS).expect("the descriptor set compiled at build time")
    })
}

/// `bytes`, a message of `type_url`, as proto3 JSON; an error names what
/// could not be read.
pub fn to_json(type_url: &str, bytes: &[u8]) -> Result<serde_json::Value, String> {
    let name = type_url.rsplit('/').next().unwrap_or(type_url);
    let descriptor = pool()
        .get_message_by_name(name)
        .ok_or_else(|| format!("no descriptor for {name}"))?;
    let message = DynamicMessage::decode(descriptor, bytes)
        .map_err(|e| format!("{name} does not decode: {e}"))?;
    let options = SerializeOptions::new().stringify_64_bit_integers(true);
    message
        .serialize_with_options(serde_json::value::Serializer, &options)
        .map_err(|e| format!("{name} does not render as JSON: {e}"))
}

/// `value` with every private key's content replaced, so that key material
/// never leaves through a config view: Envoy's `private_key` and
/// `privateKey` fields, wherever they are.
pub fn redact(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if key == "privateKey" || key == "private_key" {
                    *inner = serde_json::Value::String("[redacted]".to_string());
                } else {
                    redact(inner);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cluster_renders_as_envoy_writes_it_and_keys_never_do() {
        // A Cluster with name "c" and connect_timeout 1s, encoded by hand:
        // field 1 (name) "c", field 4 (connect_timeout) { seconds: 1 }.
        let bytes = [0x0a, 0x01, b'c', 0x22, 0x02, 0x08, 0x01];
        let json = to_json(
            "type.googleapis.com/envoy.config.cluster.v3.Cluster",
            &bytes,
        )
        .unwrap();
        assert_eq!(
            json,
            serde_json::json!({"name": "c", "connectTimeout": "1s"})
        );
        assert!(to_json("type.googleapis.com/no.Such", &bytes).is_err());

        let mut secret = serde_json::json!({"name": "default", "tlsCertificate": {
            "certificateChain": {"inlineString": "CERT"},
            "privateKey": {"inlineString": "KEY"}}});
        redact(&mut secret);
        assert_eq!(secret["tlsCertificate"]["privateKey"], "[redacted]");
        assert_eq!(
            secret["tlsCertificate"]["certificateChain"]["inlineString"],
            "CERT"
        );
    }
}
