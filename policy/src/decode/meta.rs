//! `metadata`: name, namespace, labels and annotations.

use serde_yaml::Value;

use super::{Fields, Result, Shape, ShapeId, string, string_map};
use crate::meta::ObjectMeta;
use crate::object::{Kind, ObjectKey};

/// The namespace of an object whose document names none.
pub const DEFAULT_NAMESPACE: &str = "default";

pub(super) const META: Shape = Shape {
    name: "*.metadata",
    known: &["name", "namespace", "labels", "annotations"],
    unsupported: &["generateName"],
    ignored: &[
        "uid",
        "resourceVersion",
        "generation",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "managedFields",
        "ownerReferences",
        "finalizers",
        "selfLink",
    ],
    proto_names: false,
};

/// Decodes `metadata`, which every object must have.
pub(crate) fn decode_meta(envelope: &Fields<'_>) -> Result<ObjectMeta> {
    let (path, value) = envelope.require("metadata")?;
    let fields = Fields::new(value, &path, ShapeId::Metadata)?;
    let (name_path, name) = fields.require("name")?;
    let name = string(name, &name_path)?;
    let namespace = match fields.get("namespace") {
        Some((p, v)) => string(v, &p)?,
        None => String::new(),
    };
    let namespace = if namespace.is_empty() {
        DEFAULT_NAMESPACE.to_string()
    } else {
        namespace
    };
    let labels = match fields.get("labels") {
        Some((p, v)) => string_map(v, &p)?,
        None => Default::default(),
    };
    let annotations = match fields.get("annotations") {
        Some((p, v)) => string_map(v, &p)?,
        None => Default::default(),
    };
    Ok(ObjectMeta {
        name,
        namespace,
        labels,
        annotations,
    })
}

/// The key of a document, read leniently before strict decoding, so that a
/// rejected document still names the object it was meant to be.
pub(crate) fn peek_key(document: &Value, kind: Kind) -> Option<ObjectKey> {
    let metadata = document.get("metadata")?;
    let name = metadata.get("name")?.as_str()?;
    let namespace = match metadata.get("namespace") {
        None | Some(Value::Null) => DEFAULT_NAMESPACE,
        Some(Value::String(ns)) if ns.is_empty() => DEFAULT_NAMESPACE,
        Some(Value::String(ns)) => ns.as_str(),
        Some(_) => return None,
    };
    Some(ObjectKey {
        kind,
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::ShapeId;
    use crate::diag::FieldPath;

    fn meta(text: &str) -> Result<ObjectMeta> {
        let doc: Value = serde_yaml::from_str(text).unwrap();
        let fields = Fields::new(&doc, &FieldPath::root(), ShapeId::Envelope).unwrap();
        decode_meta(&fields)
    }

    #[test]
    fn namespace_defaults_and_server_fields_are_ignored() {
        let m = meta(
            "metadata:\n  name: a\n  uid: 1234\n  resourceVersion: '9'\n  managedFields: [{}]\n  labels: {app: x}",
        )
        .unwrap();
        assert_eq!(m.name, "a");
        assert_eq!(m.namespace, "default");
        assert_eq!(m.labels.get("app").map(String::as_str), Some("x"));
    }

    #[test]
    fn other_metadata_fields_are_errors() {
        let err = meta("metadata:\n  name: a\n  nmespace: b").unwrap_err();
        assert_eq!(
            (err.path.as_str(), err.message.as_str()),
            ("metadata.nmespace", "unknown field")
        );
        let err = meta("metadata:\n  generateName: a-").unwrap_err();
        assert_eq!(err.message, "field is not supported yet");
    }

    #[test]
    fn name_is_required() {
        let err = meta("metadata:\n  namespace: b").unwrap_err();
        assert_eq!(
            (err.path.as_str(), err.message.as_str()),
            ("metadata.name", "field is required")
        );
        let err = meta("{}").unwrap_err();
        assert_eq!(
            (err.path.as_str(), err.message.as_str()),
            ("metadata", "field is required")
        );
    }

    #[test]
    fn peeks_the_key_leniently() {
        let doc: Value =
            serde_yaml::from_str("metadata: {name: a, namespace: ns, bogus: 1}").unwrap();
        let key = peek_key(&doc, Kind::Service).unwrap();
        assert_eq!((key.namespace.as_str(), key.name.as_str()), ("ns", "a"));
        let doc: Value = serde_yaml::from_str("metadata: {namespace: ns}").unwrap();
        assert!(peek_key(&doc, Kind::Service).is_none());
    }
}
