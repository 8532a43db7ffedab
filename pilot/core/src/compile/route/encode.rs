//! Deterministic encoding of the outbound route configuration.
//!
//! The generated Envoy types hold protobuf maps (a route's
//! `typed_per_filter_config`) in `HashMap`s, whose iteration order, and so
//! prost's encoding, changes from run to run. Resource versions are content
//! hashes, so the same config must always give the same bytes: this type
//! encodes each route's map entries in key order, everything else as prost
//! does. Protobuf parsers accept fields in any order and concatenate
//! repeated fields and map entries, so the bytes decode to the same message.
//!
//! ```text
//! RouteConfiguration (no virtual hosts) ─┐
//!   VirtualHost (no routes) ─────────────┼─► concatenated, field by field
//!     Route (no map) + one entry at a time, by key
//! ```

use std::collections::HashMap;
use std::ops::Deref;

use envoy_types::pb::envoy::config::route::v3::{Route, RouteConfiguration, VirtualHost};
use prost::Message;
use prost::bytes::{Buf, BufMut};
use prost::encoding::{DecodeContext, WireType, encode_key, encode_varint};

/// `RouteConfiguration.virtual_hosts`.
const VIRTUAL_HOSTS: u32 = 2;
/// `VirtualHost.routes`.
const ROUTES: u32 = 3;

/// A route configuration that encodes the same way every time.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Canonical {
    config: RouteConfiguration,
    bytes: Vec<u8>,
}

impl Canonical {
    pub(crate) fn new(mut config: RouteConfiguration) -> Canonical {
        let bytes = encode(&mut config);
        Canonical { config, bytes }
    }
}

impl Deref for Canonical {
    type Target = RouteConfiguration;

    fn deref(&self) -> &RouteConfiguration {
        &self.config
    }
}

impl Message for Canonical {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        buf.put_slice(&self.bytes);
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), prost::DecodeError> {
        self.config.merge_field(tag, wire_type, buf, ctx)?;
        self.bytes = encode(&mut self.config);
        Ok(())
    }

    fn encoded_len(&self) -> usize {
        self.bytes.len()
    }

    fn clear(&mut self) {
        self.config.clear();
        self.bytes.clear();
    }
}

/// Encodes `config`, map entries in key order. The parts are taken out and
/// put back rather than cloned; only routes with more than one map entry
/// (the only ones whose order can vary) take the slow path.
fn encode(config: &mut RouteConfiguration) -> Vec<u8> {
    let unordered = |v: &VirtualHost| v.routes.iter().any(|r| r.typed_per_filter_config.len() > 1);
    if !config.virtual_hosts.iter().any(unordered) {
        return config.encode_to_vec();
    }
    let mut vhosts = std::mem::take(&mut config.virtual_hosts);
    let mut buf = config.encode_to_vec();
    for vhost in &mut vhosts {
        let bytes = if unordered(vhost) {
            encode_virtual_host(vhost)
        } else {
            vhost.encode_to_vec()
        };
        nested(VIRTUAL_HOSTS, &bytes, &mut buf);
    }
    config.virtual_hosts = vhosts;
    buf
}

fn encode_virtual_host(vhost: &mut VirtualHost) -> Vec<u8> {
    let mut routes = std::mem::take(&mut vhost.routes);
    let mut buf = vhost.encode_to_vec();
    for route in &mut routes {
        nested(ROUTES, &encode_route(route), &mut buf);
    }
    vhost.routes = routes;
    buf
}

fn encode_route(route: &mut Route) -> Vec<u8> {
    let map = std::mem::take(&mut route.typed_per_filter_config);
    let mut buf = route.encode_to_vec();
    let mut entries: Vec<_> = map.into_iter().collect();
    entries.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, config) in entries {
        // A route with just this entry encodes as just this map entry.
        let single = Route {
            typed_per_filter_config: HashMap::from([(name.clone(), config.clone())]),
            ..Default::default()
        };
        single.encode_raw(&mut buf);
        route.typed_per_filter_config.insert(name, config);
    }
    buf
}

/// Appends `bytes` as the length-delimited field `tag`.
fn nested(tag: u32, bytes: &[u8], buf: &mut Vec<u8>) {
    encode_key(tag, WireType::LengthDelimited, buf);
    encode_varint(bytes.len() as u64, buf);
    buf.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use envoy_types::pb::google::protobuf::Any;

    use super::*;

    fn config() -> RouteConfiguration {
        let any = |n: u8| Any {
            type_url: format!("type.googleapis.com/t{n}"),
            value: vec![n],
        };
        let route = |name: &str, filters: u8| Route {
            name: name.to_string(),
            typed_per_filter_config: (0..filters)
                .map(|n| (format!("filter.{n}"), any(n)))
                .collect(),
            ..Default::default()
        };
        RouteConfiguration {
            name: "outbound".to_string(),
            virtual_hosts: vec![
                VirtualHost {
                    name: "a".to_string(),
                    domains: vec!["a".to_string()],
                    routes: vec![route("one", 6), route("two", 0)],
                    ..Default::default()
                },
                VirtualHost {
                    name: "b".to_string(),
                    routes: vec![route("three", 1)],
                    ..Default::default()
                },
            ],
            ..Default::default()
        }
    }

    #[test]
    fn same_config_same_bytes() {
        // Each `config()` builds fresh HashMaps with their own random order.
        let first = Canonical::new(config()).encode_to_vec();
        for _ in 0..20 {
            assert_eq!(Canonical::new(config()).encode_to_vec(), first);
        }
    }

    #[test]
    fn without_unordered_maps_the_bytes_are_prost_s() {
        let mut config = config();
        config.virtual_hosts.remove(0);
        assert_eq!(
            Canonical::new(config.clone()).encode_to_vec(),
            config.encode_to_vec()
        );
    }

    #[test]
    fn bytes_decode_to_the_same_message() {
        let original = config();
        let bytes = Canonical::new(original.clone()).encode_to_vec();
        assert_eq!(
            RouteConfiguration::decode(bytes.as_slice()).unwrap(),
            original
        );
        assert_eq!(
            Canonical::decode(bytes.as_slice()).unwrap().config,
            original
        );
    }
}
