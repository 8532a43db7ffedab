//! Which application protocol a port speaks, derived the way Istio does.

use policy::protocol::canonical_protocol;

use super::Protocol;

impl Protocol {
    /// The protocol of an Istio protocol name such as `HTTP`, `grpc` or
    /// `kubernetes.io/h2c`, case-insensitively; `Unknown` for anything else.
    /// Database protocols are carried as TCP; gRPC-Web is HTTP; UDP is not
    /// carried at all, so it is `Unknown`.
    pub fn from_name(name: &str) -> Protocol {
        match canonical_protocol(name) {
            Some("HTTP" | "GRPC-WEB") => Protocol::Http,
            Some("HTTP2") => Protocol::Http2,
            Some("GRPC") => Protocol::Grpc,
            Some("HTTPS") => Protocol::Https,
            Some("TLS") => Protocol::Tls,
            Some("TCP" | "MONGO" | "MYSQL" | "REDIS") => Protocol::Tcp,
            _ => Protocol::Unknown,
        }
    }

    /// The protocol of a Kubernetes Service port: `appProtocol` when it names
    /// a known protocol, else the port name up to its first `-` (`http-web`
    /// is HTTP, `grpc-web` is gRPC-Web, so HTTP), else `Unknown`.
    pub fn of_service_port(name: Option<&str>, app_protocol: Option<&str>) -> Protocol {
        if let Some(app) = app_protocol {
            let protocol = Protocol::from_name(app);
            if protocol != Protocol::Unknown {
                return protocol;
            }
        }
        let Some(name) = name else {
            return Protocol::Unknown;
        };
        let lower = name.to_ascii_lowercase();
        if lower.starts_with("grpc-web") {
            return Protocol::Http;
        }
        let prefix = lower.split('-').next().unwrap_or_default();
        Protocol::from_name(prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_case_insensitive() {
        assert_eq!(Protocol::from_name("http"), Protocol::Http);
        assert_eq!(Protocol::from_name("HTTP2"), Protocol::Http2);
        assert_eq!(Protocol::from_name("gRPC"), Protocol::Grpc);
        assert_eq!(Protocol::from_name("Mongo"), Protocol::Tcp);
        assert_eq!(Protocol::from_name("tls"), Protocol::Tls);
        assert_eq!(Protocol::from_name("https"), Protocol::Https);
        assert_eq!(Protocol::from_name("udp"), Protocol::Unknown);
        assert_eq!(Protocol::from_name("web"), Protocol::Unknown);
    }

    #[test]
    fn service_ports_prefer_app_protocol_then_name_prefix() {
        let of = Protocol::of_service_port;
        assert_eq!(of(Some("tcp-db"), Some("http")), Protocol::Http);
        assert_eq!(
            of(Some("tcp-db"), Some("kubernetes.io/h2c")),
            Protocol::Http2
        );
        assert_eq!(of(Some("grpc-api"), Some("custom")), Protocol::Grpc);
        assert_eq!(of(Some("HTTP-web"), None), Protocol::Http);
        assert_eq!(of(Some("http2"), None), Protocol::Http2);
        assert_eq!(of(Some("grpc-web-ui"), None), Protocol::Http);
        assert_eq!(of(Some("tls-passthrough"), None), Protocol::Tls);
        assert_eq!(of(Some("web"), None), Protocol::Unknown);
        assert_eq!(of(Some("httpx"), None), Protocol::Unknown);
        assert_eq!(of(None, None), Protocol::Unknown);
    }
}
