//! Istio's protocol names, as written in a ServiceEntry port's `protocol`, a
//! Service port's `appProtocol` or a port name prefix (`http-web`).

/// Every protocol name Istio knows, in canonical (upper-case) form.
pub const PROTOCOLS: &[&str] = &[
    "HTTP", "HTTPS", "HTTP2", "GRPC", "GRPC-WEB", "TCP", "TLS", "MONGO", "MYSQL", "REDIS", "UDP",
];

/// The canonical name of a protocol, matched case-insensitively; `None` for a
/// name Istio does not know. Also maps the Kubernetes application protocols
/// `kubernetes.io/h2c`, `kubernetes.io/ws` and `kubernetes.io/wss`.
pub fn canonical_protocol(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    match lower.as_str() {
        "kubernetes.io/h2c" => return Some("HTTP2"),
        "kubernetes.io/ws" => return Some("HTTP"),
        "kubernetes.io/wss" => return Some("HTTPS"),
        _ => {}
    }
    PROTOCOLS
        .iter()
        .copied()
        .find(|p| p.eq_ignore_ascii_case(&lower))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_are_case_insensitive() {
        assert_eq!(canonical_protocol("http"), Some("HTTP"));
        assert_eq!(canonical_protocol("Grpc-Web"), Some("GRPC-WEB"));
        assert_eq!(canonical_protocol("kubernetes.io/h2c"), Some("HTTP2"));
        assert_eq!(canonical_protocol("web"), None);
    }
}
