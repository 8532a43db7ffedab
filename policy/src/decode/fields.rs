//! The fields of one struct-like YAML mapping, checked against a [`Shape`].

use serde_yaml::Value;

use super::{DecodeError, Result, ShapeId, describe};
use crate::diag::FieldPath;

/// What a struct-like mapping may contain. Every shape is registered in
/// [`super::catalog`]: decoding takes a [`ShapeId`], never a `Shape`, so a
/// shape the catalog does not list cannot be used.
#[derive(Debug)]
pub(crate) struct Shape {
    /// Where the mapping sits, from the kind down, with `[]` for a list item
    /// and `*` for any kind: `VirtualService.spec.http[]`. A shape read in
    /// several places is named after the first of them.
    pub(crate) name: &'static str,
    /// Fields Bowline decodes, by their lowerCamelCase name.
    pub(crate) known: &'static [&'static str],
    /// Fields of the upstream API that Bowline does not honour yet: an error
    /// unless the value is empty (null, `[]` or `{}`), which means "unset".
    pub(crate) unsupported: &'static [&'static str],
    /// Fields accepted and dropped without looking at them (server-managed
    /// metadata, status).
    pub(crate) ignored: &'static [&'static str],
    /// Whether protobuf snake_case names (`service_account`) are accepted as
    /// well as lowerCamelCase ones, as Istio's protobuf-JSON decoding does.
    pub(crate) proto_names: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Known,
    Unsupported,
    Ignored,
}

impl Shape {
    /// The canonical name and class of a key as written, if the shape has it.
    fn classify(&self, key: &str) -> Option<(&'static str, Class)> {
        let lists = [
            (self.known, Class::Known),
            (self.unsupported, Class::Unsupported),
            (self.ignored, Class::Ignored),
        ];
        for (names, class) in lists {
            for &name in names {
                let snake = self.proto_names && is_proto_name_of(key, name);
                if name == key || snake {
                    return Some((name, class));
                }
            }
        }
        None
    }
}

/// Whether `key` is the protobuf field name whose JSON name is `name`:
/// `service_account` for `serviceAccount`, `consecutive_5xx_errors` for
/// `consecutive5xxErrors`. Protobuf derives the JSON name by dropping each
/// underscore and capitalising the letter after it, so the two agree once
/// underscores and case are set aside.
fn is_proto_name_of(key: &str, name: &str) -> bool {
    key.contains('_')
        && key
            .chars()
            .all(|c| c == '_' || c.is_ascii_lowercase() || c.is_ascii_digit())
        && key
            .chars()
            .filter(|&c| c != '_')
            .eq(name.chars().map(|c| c.to_ascii_lowercase()))
}

/// Null, `[]` and `{}`: a field that is present but says nothing.
pub(crate) fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::Sequence(s) => s.is_empty(),
        Value::Mapping(m) => m.is_empty(),
        _ => false,
    }
}

/// The known fields of one mapping, each with the name it was written as.
#[derive(Debug)]
pub(crate) struct Fields<'a> {
    path: FieldPath,
    found: Vec<Found<'a>>,
}

#[derive(Debug)]
struct Found<'a> {
    canonical: &'static str,
    written: String,
    value: &'a Value,
}

impl<'a> Fields<'a> {
    /// Checks every key of `value` against `shape`, in document order: the
    /// first unknown or not-yet-supported field is the error. A null value is
    /// an empty mapping.
    pub(crate) fn new(value: &'a Value, path: &FieldPath, shape: ShapeId) -> Result<Self> {
        Self::of(value, path, shape.shape())
    }

    fn of(value: &'a Value, path: &FieldPath, shape: &Shape) -> Result<Self> {
        let mut fields = Fields {
            path: path.clone(),
            found: Vec::new(),
        };
        let map = match value {
            Value::Null => return Ok(fields),
            Value::Mapping(map) => map,
            other => {
                return Err(DecodeError::new(
                    path,
                    format!("expected a mapping, got {}", describe(other)),
                ));
            }
        };
        let mut seen: Vec<(&'static str, String)> = Vec::new();
        for (key, value) in map {
            let Value::String(key) = key else {
                return Err(DecodeError::new(
                    path,
                    format!("expected a field name, got {}", describe(key)),
                ));
            };
            let at = path.field(key);
            let Some((canonical, class)) = shape.classify(key) else {
                return Err(DecodeError::new(&at, "unknown field"));
            };
            if let Some((_, earlier)) = seen.iter().find(|(c, _)| *c == canonical) {
                return Err(DecodeError::new(
                    &at,
                    format!("field given twice, as {earlier} and {key}"),
                ));
            }
            seen.push((canonical, key.clone()));
            match class {
                Class::Known => fields.found.push(Found {
                    canonical,
                    written: key.clone(),
                    value,
                }),
                Class::Unsupported if !is_empty(value) => {
                    return Err(DecodeError::new(&at, "field is not supported yet"));
                }
                Class::Unsupported | Class::Ignored => {}
            }
        }
        Ok(fields)
    }

    /// A known field and its path, or `None` when it is absent or null.
    pub(crate) fn get(&self, name: &str) -> Option<(FieldPath, &'a Value)> {
        self.found
            .iter()
            .find(|f| f.canonical == name && !f.value.is_null())
            .map(|f| (self.path.field(&f.written), f.value))
    }

    /// A field that must be present and not null.
    pub(crate) fn require(&self, name: &str) -> Result<(FieldPath, &'a Value)> {
        self.get(name)
            .ok_or_else(|| DecodeError::new(&self.path.field(name), "field is required"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHAPE: Shape = Shape {
        name: "Test.spec",
        known: &["host", "serviceAccount"],
        unsupported: &["trafficPolicy"],
        ignored: &["uid"],
        proto_names: true,
    };

    fn yaml(text: &str) -> Value {
        serde_yaml::from_str(text).unwrap()
    }

    #[test]
    fn accepts_camel_and_snake_case_names() {
        let v = yaml("host: a\nservice_account: sa\nuid: x");
        let f = Fields::of(&v, &FieldPath::new("spec"), &SHAPE).unwrap();
        assert_eq!(f.get("host").unwrap().0.as_str(), "spec.host");
        assert_eq!(
            f.get("serviceAccount").unwrap().0.as_str(),
            "spec.service_account"
        );
        assert!(f.get("uid").is_none());
    }

    #[test]
    fn proto_names_with_digits() {
        assert!(is_proto_name_of(
            "consecutive_5xx_errors",
            "consecutive5xxErrors"
        ));
        assert!(is_proto_name_of(
            "http1_max_pending_requests",
            "http1MaxPendingRequests"
        ));
        assert!(is_proto_name_of("mirror_percent", "mirrorPercent"));
        assert!(!is_proto_name_of("mirrorpercent", "mirrorPercent"));
        assert!(!is_proto_name_of("Mirror_Percent", "mirrorPercent"));
        assert!(!is_proto_name_of("mirror_percentage", "mirrorPercent"));
    }

    #[test]
    fn snake_case_is_refused_for_kubernetes_shapes() {
        let shape = Shape {
            proto_names: false,
            ..SHAPE
        };
        let err = Fields::of(&yaml("service_account: sa"), &FieldPath::root(), &shape).unwrap_err();
        assert_eq!(err.path.as_str(), "service_account");
        assert_eq!(err.message, "unknown field");
    }

    #[test]
    fn unknown_field_names_its_path() {
        let err =
            Fields::of(&yaml("host: a\nhostt: b"), &FieldPath::new("spec"), &SHAPE).unwrap_err();
        assert_eq!(err.path.as_str(), "spec.hostt");
        assert_eq!(err.message, "unknown field");
    }

    #[test]
    fn unsupported_field_is_distinct_unless_empty() {
        let err = Fields::of(
            &yaml("trafficPolicy: {tls: {}}"),
            &FieldPath::new("spec"),
            &SHAPE,
        )
        .unwrap_err();
        assert_eq!(err.path.as_str(), "spec.trafficPolicy");
        assert_eq!(err.message, "field is not supported yet");
        assert!(Fields::of(&yaml("trafficPolicy: {}"), &FieldPath::new("spec"), &SHAPE).is_ok());
    }

    #[test]
    fn same_field_twice_is_an_error() {
        let err = Fields::of(
            &yaml("serviceAccount: a\nservice_account: b"),
            &FieldPath::new("spec"),
            &SHAPE,
        )
        .unwrap_err();
        assert_eq!(
            err.message,
            "field given twice, as serviceAccount and service_account"
        );
    }

    #[test]
    fn non_mapping_and_required() {
        let err = Fields::of(&yaml("[1]"), &FieldPath::new("spec"), &SHAPE).unwrap_err();
        assert_eq!(err.message, "expected a mapping, got a list");
        let f = Fields::of(&Value::Null, &FieldPath::new("spec"), &SHAPE).unwrap();
        let err = f.require("host").unwrap_err();
        assert_eq!(
            (err.path.as_str(), err.message.as_str()),
            ("spec.host", "field is required")
        );
    }
}
