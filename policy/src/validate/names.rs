//! The syntax of names: Kubernetes object names, label keys and values, port
//! names, host names and IP addresses. Each check returns the reason a name is
//! invalid, phrased for a diagnostic message.

use std::net::IpAddr;

fn is_alnum_lower(c: char) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit()
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub(crate) fn dns1123_label(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 63
        && s.chars().all(|c| is_alnum_lower(c) || c == '-')
        && !s.starts_with('-')
        && !s.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid DNS-1123 label: at most 63 lower-case letters, digits and '-', starting and ending with a letter or digit"
        ))
    }
}

/// Dot-separated DNS-1123 labels, at most 253 characters: Kubernetes object names.
pub(crate) fn dns1123_subdomain(s: &str) -> Result<(), String> {
    let ok = !s.is_empty() && s.len() <= 253 && s.split('.').all(|l| dns1123_label(l).is_ok());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid DNS-1123 subdomain: at most 253 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
        ))
    }
}

/// A DNS-1123 label that starts with a letter: Kubernetes Service names.
pub(crate) fn dns1035_label(s: &str) -> Result<(), String> {
    if dns1123_label(s).is_ok() && s.starts_with(|c: char| c.is_ascii_lowercase()) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid service name: at most 63 lower-case letters, digits and '-', starting with a letter and ending with a letter or digit"
        ))
    }
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`: the name part of a label key,
/// and a non-empty label value.
fn qualified_name_part(s: &str) -> bool {
    let edge = |c: char| c.is_ascii_alphanumeric();
    !s.is_empty()
        && s.len() <= 63
        && s.starts_with(edge)
        && s.ends_with(edge)
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// A label or annotation key: an optional DNS subdomain prefix and `/`, then a
/// name of at most 63 characters.
pub(crate) fn label_key(s: &str) -> Result<(), String> {
    let (prefix, name) = match s.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, s),
    };
    let prefix_ok = prefix.is_none_or(|p| dns1123_subdomain(p).is_ok());
    if prefix_ok && qualified_name_part(name) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid label key: an optional DNS subdomain prefix and '/', then at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ))
    }
}

/// A label value: empty, or like the name part of a key.
pub(crate) fn label_value(s: &str) -> Result<(), String> {
    if s.is_empty() || qualified_name_part(s) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid label value: at most 63 letters, digits, '-', '_' and '.', starting and ending with a letter or digit"
        ))
    }
}

/// A container port name that a Service `targetPort` may refer to (IANA
/// service name): at most 15 lower-case letters, digits and '-', with at
/// least one letter and no '--'.
pub(crate) fn iana_port_name(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= 15
        && s.chars().all(|c| is_alnum_lower(c) || c == '-')
        && s.chars().any(|c| c.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--");
    if ok {
        Ok(())
    } else if s.chars().all(|c| c.is_ascii_digit()) {
        Err(format!(
            "{s:?} is a quoted number; write the port number without quotes"
        ))
    } else {
        Err(format!(
            "{s:?} is not a valid port name: at most 15 lower-case letters, digits and '-', with at least one letter"
        ))
    }
}

/// An HTTP header name: an RFC 9110 token, or a pseudo-header such as
/// `:authority` when `pseudo` is set.
pub(crate) fn header_name(s: &str, pseudo: bool) -> Result<(), String> {
    if s.is_empty() {
        return Err("header name must not be empty".to_string());
    }
    let token = if pseudo {
        s.strip_prefix(':').unwrap_or(s)
    } else {
        s
    };
    let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if !token.is_empty() && token.chars().all(tchar) {
        Ok(())
    } else if !pseudo && s.starts_with(':') {
        Err(format!("pseudo-header {s:?} cannot be used here"))
    } else {
        Err(format!(
            "{s:?} is not a valid header name: letters, digits and !#$%&'*+-.^_`|~"
        ))
    }
}

/// A host as Istio accepts it: a short or fully qualified DNS name (any case),
/// an IP address, or, when `wildcard` is set, `*` or `*.suffix`.
pub(crate) fn host(s: &str, wildcard: bool) -> Result<(), String> {
    if s.is_empty() {
        return Err("host must not be empty".to_string());
    }
    if s.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    let rest = if wildcard && s == "*" {
        return Ok(());
    } else if wildcard {
        s.strip_prefix("*.").unwrap_or(s)
    } else {
        s
    };
    if s.contains('*') && (!wildcard || rest.contains('*')) {
        return Err(if wildcard {
            format!("{s:?} is not a valid host: a wildcard may only be a leading \"*.\"")
        } else {
            format!("{s:?} is not a valid host: wildcards are not allowed here")
        });
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if s.len() > 255 {
        return Err(format!(
            "{s:?} is not a valid host: at most 255 characters, got {}",
            s.len()
        ));
    }
    let top = rest.rsplit('.').next().unwrap_or(rest);
    if rest.contains('.') && !top.is_empty() && top.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!(
            "{s:?} is not a valid host: the top-level label {top:?} cannot be all digits"
        ));
    }
    if rest.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "{s:?} is not a valid host: dot-separated labels of letters, digits and '-'"
        ))
    }
}

/// Whether `s` is an IP address; otherwise why not, naming host names and
/// Unix sockets, which users often try.
pub(crate) fn ip_address(s: &str) -> Result<(), String> {
    if s.parse::<IpAddr>().is_ok() {
        Ok(())
    } else if s.is_empty() {
        Err("address is required".to_string())
    } else if s.starts_with("unix://") {
        Err(format!(
            "address must be an IP address; unix domain sockets are not supported yet, got {s:?}"
        ))
    } else if host(s, false).is_ok() {
        Err(format!(
            "address must be an IP address; host names are not supported here, got {s:?}"
        ))
    } else {
        Err(format!("address must be an IP address, got {s:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn object_names() {
        assert!(dns1123_subdomain("reviews-v1.prod").is_ok());
        assert!(dns1123_subdomain("Reviews").is_err());
        assert!(dns1123_subdomain("-a").is_err());
        assert!(dns1123_subdomain("a..b").is_err());
        assert!(dns1123_label("a.b").is_err());
        assert!(dns1123_label(&"a".repeat(64)).is_err());
        assert!(dns1035_label("9lives").is_err());
        assert!(dns1035_label("lives9").is_ok());
    }

    #[test]
    fn labels() {
        assert!(label_key("app").is_ok());
        assert!(label_key("app.kubernetes.io/name").is_ok());
        assert!(label_key("Bad_Key.x").is_ok());
        assert!(label_key("/name").is_err());
        assert!(label_key("a/b/c").is_err());
        assert!(label_key("app!").is_err());
        assert!(label_value("").is_ok());
        assert!(label_value("v1.2_x").is_ok());
        assert!(label_value("v1 ").is_err());
        assert!(label_value(&"v".repeat(64)).is_err());
    }

    #[test]
    fn port_names() {
        assert!(iana_port_name("http-web").is_ok());
        assert!(iana_port_name("http--web").is_err());
        assert!(iana_port_name("a-very-long-port-name").is_err());
        assert!(
            iana_port_name("8080")
                .unwrap_err()
                .contains("quoted number")
        );
    }

    #[test]
    fn header_names() {
        assert!(header_name("x-user", false).is_ok());
        assert!(header_name(":authority", true).is_ok());
        assert_eq!(
            header_name(":authority", false),
            Err("pseudo-header \":authority\" cannot be used here".to_string())
        );
        assert!(header_name("", true).is_err());
        assert!(header_name(":", true).is_err());
        assert!(header_name("bad header", false).is_err());
    }

    #[test]
    fn hosts() {
        assert!(host("reviews", false).is_ok());
        assert!(host("www.Example.com", false).is_ok());
        assert!(host("10.1.2.3", false).is_ok());
        assert!(host("::1", false).is_ok());
        assert!(host("*.example.com", true).is_ok());
        assert!(host("*", true).is_ok());
        assert!(host("*.example.com", false).is_err());
        assert!(host("a.*.com", true).is_err());
        assert!(host("a_b.com", false).is_err());
        assert!(host("", true).is_err());
        assert!(host("*foo.example.com", true).is_err());
        assert!(host("*.*.example.com", true).is_err());
        assert_eq!(
            host("foo.123", true),
            Err(
                "\"foo.123\" is not a valid host: the top-level label \"123\" cannot be all digits"
                    .to_string()
            )
        );
        assert!(host(&format!("{}.com", "a.".repeat(127)), false).is_err());
    }

    #[test]
    fn addresses_say_what_is_wrong() {
        assert!(ip_address("10.0.0.1").is_ok());
        assert!(ip_address("2001:db8::1").is_ok());
        assert!(
            ip_address("vm1.example.com")
                .unwrap_err()
                .contains("host names")
        );
        assert!(
            ip_address("unix:///var/run/x")
                .unwrap_err()
                .contains("unix domain sockets")
        );
        assert!(
            ip_address("10.0.0.1/24")
                .unwrap_err()
                .starts_with("address must be an IP address, got")
        );
    }
}
