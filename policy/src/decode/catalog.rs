//! The registry of every [`Shape`] the decoder reads, so that tools and tests
//! can walk the fields Bowline knows without a second list kept by hand.
//!
//! ```text
//! Shape consts (beside their decoders) ──► registry! ──► ShapeId (what Fields::new takes)
//!                                                   └──► ShapeId::ALL ──► crate::schema
//! ```
//!
//! [`super::Fields::new`] takes a [`ShapeId`], so a new shape must be listed
//! here before any decoder can use it, and a listed shape is in `ALL`.

use super::Shape;

macro_rules! registry {
    ($($id:ident => $shape:path,)*) => {
        /// One registered shape.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub(crate) enum ShapeId {
            $($id,)*
        }

        impl ShapeId {
            /// Every registered shape, in registry order.
            pub(crate) const ALL: &'static [ShapeId] = &[$(ShapeId::$id,)*];

            pub(crate) fn shape(self) -> &'static Shape {
                match self {
                    $(ShapeId::$id => &$shape,)*
                }
            }
        }
    };
}

registry! {
    Envelope => crate::parse::ENVELOPE,
    Metadata => super::meta::META,
    ServiceSpec => super::service::SPEC,
    ServicePort => super::service::PORT,
    WorkloadEntry => super::workload::WORKLOAD,
    ServiceEntry => super::workload::SERVICE_ENTRY,
    ServiceEntryPort => super::workload::PORT,
    VirtualService => super::routing::VIRTUAL_SERVICE,
    HttpRoute => super::routing::HTTP_ROUTE,
    HttpMatch => super::matching::HTTP_MATCH,
    StringMatch => super::matching::STRING_MATCH,
    RouteDestination => super::routing::ROUTE_DESTINATION,
    Destination => super::routing::DESTINATION,
    DestinationPort => super::routing::PORT_SELECTOR,
    Redirect => super::actions::REDIRECT,
    DirectResponse => super::actions::DIRECT_RESPONSE,
    DirectResponseBody => super::actions::BODY,
    Rewrite => super::actions::REWRITE,
    RegexRewrite => super::actions::REGEX_REWRITE,
    Retries => super::actions::RETRY,
    Fault => super::actions::FAULT,
    FaultDelay => super::actions::DELAY,
    FaultAbort => super::actions::ABORT,
    Percent => super::actions::PERCENT,
    CorsPolicy => super::actions::CORS,
    Headers => super::actions::HEADERS,
    HeaderOperations => super::actions::HEADER_OPERATIONS,
    DestinationRule => super::traffic::DESTINATION_RULE,
    Subset => super::traffic::SUBSET,
    TrafficPolicy => super::traffic::TRAFFIC_POLICY,
    PortTrafficPolicy => super::traffic::PORT_TRAFFIC_POLICY,
    PortLevelPort => super::traffic::PORT_SELECTOR,
    ClientTls => super::traffic::CLIENT_TLS,
    LoadBalancer => super::traffic::LOAD_BALANCER,
    ConsistentHash => super::traffic::CONSISTENT_HASH,
    HttpCookie => super::traffic::HTTP_COOKIE,
    RingHash => super::traffic::RING_HASH,
    Maglev => super::traffic::MAGLEV,
    LocalityLb => super::traffic::LOCALITY_LB,
    LocalityFromTo => super::traffic::FROM_TO,
    ConnectionPool => super::traffic::CONNECTION_POOL,
    TcpSettings => super::traffic::TCP,
    HttpSettings => super::traffic::HTTP,
    OutlierDetection => super::traffic::OUTLIER,
    Sidecar => super::sidecar::SIDECAR,
    SidecarEgress => super::sidecar::EGRESS,
    SidecarWorkloadSelector => super::sidecar::WORKLOAD_SELECTOR,
    PeerAuthentication => super::security::PEER_AUTHENTICATION,
    SecuritySelector => super::security::SELECTOR,
    Mtls => super::security::MTLS,
    AuthorizationPolicy => super::security::AUTHORIZATION_POLICY,
    AuthorizationRule => super::security::RULE,
    AuthorizationFrom => super::security::FROM,
    AuthorizationSource => super::security::SOURCE,
    AuthorizationTo => super::security::TO,
    AuthorizationOperation => super::security::OPERATION,
    AuthorizationCondition => super::security::CONDITION,
    RequestAuthentication => super::security::REQUEST_AUTHENTICATION,
    JwtRule => super::security::JWT_RULE,
    JwtHeader => super::security::JWT_HEADER,
    Telemetry => super::telemetry::TELEMETRY,
    TelemetrySelector => super::telemetry::SELECTOR,
    TelemetryAccessLogging => super::telemetry::ACCESS_LOGGING,
    TelemetryProvider => super::telemetry::PROVIDER,
    TelemetryMatch => super::telemetry::MATCH,
    TelemetryFilter => super::telemetry::FILTER,
    TelemetryTracing => super::telemetry::TRACING,
    TelemetryTracingProvider => super::telemetry::TRACING_PROVIDER,
    TelemetryTracingMatch => super::telemetry::TRACING_MATCH,
    TelemetryCustomTag => super::telemetry::CUSTOM_TAG,
    TelemetryTagLiteral => super::telemetry::TAG_LITERAL,
    TelemetryTagEnvironment => super::telemetry::TAG_ENVIRONMENT,
    TelemetryTagHeader => super::telemetry::TAG_HEADER,
    MeshConfig => crate::mesh::MESH_CONFIG,
    PathNormalization => crate::mesh::PATH_NORMALIZATION,
    ExtensionProvider => crate::mesh::EXTENSION_PROVIDER,
    FileAccessLogProvider => crate::mesh::FILE_ACCESS_LOG_PROVIDER,
    LogFormat => crate::mesh::LOG_FORMAT,
    DefaultProviders => crate::mesh::DEFAULT_PROVIDERS,
    Zipkin => crate::mesh::ZIPKIN,
    OpenTelemetry => crate::mesh::OPENTELEMETRY,
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    #[test]
    fn names_are_unique_and_fields_are_listed_once() {
        let mut names = BTreeSet::new();
        for id in ShapeId::ALL {
            let shape = id.shape();
            assert!(names.insert(shape.name), "{} named twice", shape.name);
            let mut fields = BTreeSet::new();
            for field in shape
                .known
                .iter()
                .chain(shape.unsupported)
                .chain(shape.ignored)
            {
                assert!(fields.insert(field), "{}.{field} listed twice", shape.name);
            }
        }
    }
}
