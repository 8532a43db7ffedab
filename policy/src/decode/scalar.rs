//! Scalars, lists and maps: each decoder names what it expected and what it got.

use std::collections::BTreeMap;

use serde_yaml::Value;

use super::{DecodeError, Result};
use crate::diag::FieldPath;

/// A short description of a value for "expected X, got Y" messages.
pub(crate) fn describe(value: &Value) -> String {
    match value {
        Value::Null => "null".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => format!("{s:?}"),
        Value::Sequence(_) => "a list".to_string(),
        Value::Mapping(_) => "a mapping".to_string(),
        Value::Tagged(t) => format!("a value tagged {}", t.tag),
    }
}

fn expected(path: &FieldPath, what: &str, got: &Value) -> DecodeError {
    DecodeError::new(path, format!("expected {what}, got {}", describe(got)))
}

pub(crate) fn string(value: &Value, path: &FieldPath) -> Result<String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        other => Err(expected(path, "a string", other)),
    }
}

/// A port number. 0 decodes (validation reports it with the other errors);
/// anything that is not an integer in 0..=65535 is an error here.
pub(crate) fn port(value: &Value, path: &FieldPath) -> Result<u16> {
    value
        .as_u64()
        .and_then(|n| u16::try_from(n).ok())
        .ok_or_else(|| expected(path, "a port number 1-65535", value))
}

pub(crate) fn uint32(value: &Value, path: &FieldPath) -> Result<u32> {
    value
        .as_u64()
        .and_then(|n| u32::try_from(n).ok())
        .ok_or_else(|| expected(path, "a non-negative integer", value))
}

pub(crate) fn uint64(value: &Value, path: &FieldPath) -> Result<u64> {
    value
        .as_u64()
        .ok_or_else(|| expected(path, "a non-negative integer", value))
}

pub(crate) fn boolean(value: &Value, path: &FieldPath) -> Result<bool> {
    value
        .as_bool()
        .ok_or_else(|| expected(path, "true or false", value))
}

/// A number, integer or not, such as a percentage `50` or `0.5`.
pub(crate) fn number(value: &Value, path: &FieldPath) -> Result<f64> {
    match value {
        Value::Number(n) => n
            .as_f64()
            .filter(|f| f.is_finite())
            .ok_or_else(|| expected(path, "a finite number", value)),
        other => Err(expected(path, "a number", other)),
    }
}

/// The items of a list with their paths; null is the empty list.
pub(crate) fn list<'a>(value: &'a Value, path: &FieldPath) -> Result<Vec<(FieldPath, &'a Value)>> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Sequence(items) => Ok(items
            .iter()
            .enumerate()
            .map(|(i, item)| (path.index(i), item))
            .collect()),
        other => Err(expected(path, "a list", other)),
    }
}

pub(crate) fn string_list(value: &Value, path: &FieldPath) -> Result<Vec<String>> {
    list(value, path)?
        .into_iter()
        .map(|(p, v)| string(v, &p))
        .collect()
}

/// The entries of a map with string keys, each with its `path[key]`.
fn entries<'a>(value: &'a Value, path: &FieldPath) -> Result<Vec<(String, FieldPath, &'a Value)>> {
    match value {
        Value::Null => Ok(Vec::new()),
        Value::Mapping(map) => map
            .iter()
            .map(|(k, v)| match k {
                Value::String(k) => Ok((k.clone(), path.key(k), v)),
                other => Err(expected(path, "string keys", other)),
            })
            .collect(),
        other => Err(expected(path, "a mapping", other)),
    }
}

/// The entries of a mapping with string keys, each with its path.
pub(crate) fn map_entries<'a>(
    value: &'a Value,
    path: &FieldPath,
) -> Result<Vec<(String, FieldPath, &'a Value)>> {
    entries(value, path)
}

/// A map of strings, such as labels: `labels[app]: expected a string, got 1`.
pub(crate) fn string_map(value: &Value, path: &FieldPath) -> Result<BTreeMap<String, String>> {
    entries(value, path)?
        .into_iter()
        .map(|(k, p, v)| Ok((k, string(v, &p)?)))
        .collect()
}

/// A map from port name to port number.
pub(crate) fn port_map(value: &Value, path: &FieldPath) -> Result<BTreeMap<String, u16>> {
    entries(value, path)?
        .into_iter()
        .map(|(k, p, v)| Ok((k, port(v, &p)?)))
        .collect()
}

/// An enum value such as `DNS` or `mesh_internal`, matched case-insensitively
/// against `options` (written in upper case).
pub(crate) fn keyword<T: Copy>(
    value: &Value,
    path: &FieldPath,
    options: &[(&str, T)],
) -> Result<T> {
    let text = string(value, path)?;
    let upper = text.to_ascii_uppercase();
    options
        .iter()
        .find(|(name, _)| *name == upper)
        .map(|(_, v)| *v)
        .ok_or_else(|| {
            let names: Vec<&str> = options.iter().map(|(n, _)| *n).collect();
            DecodeError::new(
                path,
                format!(
                    "unknown value {text:?}; expected one of {}",
                    names.join(", ")
                ),
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn port_errors_say_what_was_given() {
        let p = FieldPath::new("spec.ports[0].port");
        assert_eq!(port(&yaml("8080"), &p), Ok(8080));
        assert_eq!(port(&yaml("0"), &p), Ok(0));
        let err = port(&yaml("abc"), &p).unwrap_err();
        assert_eq!(err.message, "expected a port number 1-65535, got \"abc\"");
        assert_eq!(err.path, p);
        let err = port(&yaml("70000"), &p).unwrap_err();
        assert_eq!(err.message, "expected a port number 1-65535, got 70000");
        assert!(port(&yaml("-1"), &p).is_err());
        assert!(port(&yaml("80.5"), &p).is_err());
    }

    #[test]
    fn string_map_paths_use_brackets() {
        let p = FieldPath::new("metadata.labels");
        let err = string_map(&yaml("app: x\nversion: 1"), &p).unwrap_err();
        assert_eq!(err.path.as_str(), "metadata.labels[version]");
        assert_eq!(err.message, "expected a string, got 1");
        let ok = string_map(&yaml("app: x"), &p).unwrap();
        assert_eq!(ok.get("app").map(String::as_str), Some("x"));
    }

    #[test]
    fn lists_index_their_items() {
        let p = FieldPath::new("spec.hosts");
        let err = string_list(&yaml("[a, {b: c}]"), &p).unwrap_err();
        assert_eq!(err.path.as_str(), "spec.hosts[1]");
        assert_eq!(err.message, "expected a string, got a mapping");
        assert_eq!(string_list(&Value::Null, &p), Ok(vec![]));
        assert!(list(&yaml("a"), &p).is_err());
    }

    #[test]
    fn weights_are_non_negative() {
        let p = FieldPath::new("w");
        assert_eq!(uint32(&yaml("7"), &p), Ok(7));
        assert_eq!(
            uint32(&yaml("-7"), &p).unwrap_err().message,
            "expected a non-negative integer, got -7"
        );
    }

    #[test]
    fn numbers_booleans_and_wide_integers() {
        let p = FieldPath::new("x");
        assert_eq!(number(&yaml("50"), &p), Ok(50.0));
        assert_eq!(number(&yaml("0.5"), &p), Ok(0.5));
        assert_eq!(
            number(&yaml("\"5\""), &p).unwrap_err().message,
            "expected a number, got \"5\""
        );
        assert!(number(&yaml(".nan"), &p).is_err());
        assert_eq!(boolean(&yaml("true"), &p), Ok(true));
        assert_eq!(
            boolean(&yaml("yes please"), &p).unwrap_err().message,
            "expected true or false, got \"yes please\""
        );
        assert_eq!(uint64(&yaml("8589934592"), &p), Ok(8_589_934_592));
        assert!(uint64(&yaml("-1"), &p).is_err());
    }

    #[test]
    fn keywords_ignore_case() {
        let p = FieldPath::new("spec.resolution");
        let options = [("STATIC", 1), ("DNS", 2)];
        assert_eq!(keyword(&yaml("dns"), &p, &options), Ok(2));
        assert_eq!(keyword(&yaml("Static"), &p, &options), Ok(1));
        assert_eq!(
            keyword(&yaml("dnss"), &p, &options).unwrap_err().message,
            "unknown value \"dnss\"; expected one of STATIC, DNS"
        );
    }

    #[test]
    fn port_maps() {
        let p = FieldPath::new("spec.ports");
        assert_eq!(
            port_map(&yaml("http: 8080"), &p).unwrap().get("http"),
            Some(&8080)
        );
        assert_eq!(
            port_map(&yaml("http: x"), &p).unwrap_err().path.as_str(),
            "spec.ports[http]"
        );
    }
}
