//! Small constructors for Envoy protos that every part of the compiler needs.

use std::time::Duration as StdDuration;

use envoy_types::pb::envoy::config::core::v3::Http2ProtocolOptions;
use envoy_types::pb::envoy::config::core::v3::{
    Address, AggregatedConfigSource, ApiVersion, ConfigSource, RuntimeFractionalPercent,
    SocketAddress, address, config_source::ConfigSourceSpecifier, socket_address::PortSpecifier,
};
use envoy_types::pb::envoy::extensions::upstreams::http::v3::{
    HttpProtocolOptions, http_protocol_options,
};
use envoy_types::pb::envoy::r#type::v3::{FractionalPercent, fractional_percent::DenominatorType};
use envoy_types::pb::google::protobuf::{Any, Duration};
use envoy_types::util::pack_any;
use prost::Name;

/// A socket address for Envoy. `host` may be an IP or, for DNS clusters, a name.
pub(crate) fn socket_address(host: &str, port: u16) -> Address {
    Address {
        address: Some(address::Address::SocketAddress(SocketAddress {
            address: host.to_string(),
            port_specifier: Some(PortSpecifier::PortValue(u32::from(port))),
            ..Default::default()
        })),
    }
}

/// Config source for resources delivered over the ADS stream itself.
pub(crate) fn ads() -> ConfigSource {
    ConfigSource {
        resource_api_version: ApiVersion::V3 as i32,
        config_source_specifier: Some(ConfigSourceSpecifier::Ads(AggregatedConfigSource {})),
        ..Default::default()
    }
}

pub(crate) fn duration(d: StdDuration) -> Duration {
    Duration {
        seconds: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        nanos: i32::try_from(d.subsec_nanos()).unwrap_or(0),
    }
}

/// Packs a message as `Any`, with its type URL.
pub(crate) fn any<M: Name>(message: M) -> Any {
    pack_any(message)
}

/// `typed_extension_protocol_options` entry that makes a cluster speak HTTP/2 upstream.
pub(crate) fn http2_upstream() -> (String, Any) {
    let options = HttpProtocolOptions {
        upstream_protocol_options: Some(
            http_protocol_options::UpstreamProtocolOptions::ExplicitHttpConfig(
                http_protocol_options::ExplicitHttpConfig {
                    protocol_config: Some(
                        http_protocol_options::explicit_http_config::ProtocolConfig::Http2ProtocolOptions(
                            Http2ProtocolOptions::default(),
                        ),
                    ),
                },
            ),
        ),
        ..Default::default()
    };
    (
        "envoy.extensions.upstreams.http.v3.HttpProtocolOptions".to_string(),
        any(options),
    )
}

/// Names of the HTTP filters the compiler installs and configures per route.
pub(crate) mod filters {
    pub(crate) const FAULT: &str = "envoy.filters.http.fault";
    pub(crate) const CORS: &str = "envoy.filters.http.cors";
    pub(crate) const ROUTER: &str = "envoy.filters.http.router";
    pub(crate) const RBAC: &str = "envoy.filters.http.rbac";
}

/// A percentage (0-100, fractions allowed) as parts per million, the finest
/// denominator Envoy has; out-of-range values are clamped.
pub(crate) fn percent(value: f64) -> FractionalPercent {
    let parts = (value * 10_000.0).round().clamp(0.0, 1_000_000.0);
    FractionalPercent {
        // In range after the clamp, so the conversion is exact.
        numerator: parts as u32,
        denominator: DenominatorType::Million as i32,
    }
}

/// A percentage that Envoy's runtime could override (we never set a key).
pub(crate) fn runtime_percent(value: f64) -> RuntimeFractionalPercent {
    RuntimeFractionalPercent {
        default_value: Some(percent(value)),
        runtime_key: String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_keeps_fractions_and_clamps() {
        assert_eq!(percent(100.0).numerator, 1_000_000);
        assert_eq!(percent(0.1).numerator, 1_000);
        // 29.3 * 10000 is 292999.99... in binary floating point.
        assert_eq!(percent(29.3).numerator, 293_000);
        assert_eq!(percent(0.0001).numerator, 1);
        assert_eq!(percent(-1.0).numerator, 0);
        assert_eq!(percent(250.0).numerator, 1_000_000);
        assert_eq!(percent(5.0).denominator, DenominatorType::Million as i32);
    }
}
