//! From YAML text to objects: split the stream into documents, route each by
//! apiVersion and kind, decode strictly, validate.
//!
//! ```text
//! text ──► documents ──► empty? skip silently
//!                   ──► route ──► Skipped (not mesh config) | Rejected (not supported, wrong apiVersion)
//!                             ──► decode ──► validate ──► Object (+ warnings) | Rejected (+ key)
//! ```

use serde::Deserialize;
use serde_yaml::Value;

use crate::decode::{self, DecodeError, Fields, Findings, Shape, ShapeId};
use crate::diag::{Diagnostic, FieldPath};
use crate::envelope::{Route, expected_versions, route};
use crate::object::{Kind, Object, ObjectKey};
use crate::validate::validate;

/// What became of one YAML document.
#[derive(Clone, Debug, PartialEq)]
pub enum ParsedDocument {
    /// Decoded and valid; `warnings` has no errors.
    Object {
        document: usize,
        object: Object,
        warnings: Vec<Diagnostic>,
    },
    /// Invalid. `key` names the object when the document got far enough to
    /// say which, so a caller can keep its previous valid version in force.
    /// `diagnostics` has at least one error.
    Rejected {
        document: usize,
        key: Option<ObjectKey>,
        diagnostics: Vec<Diagnostic>,
    },
    /// A kind that does not configure the mesh; `diagnostic` is a warning.
    Skipped {
        document: usize,
        diagnostic: Diagnostic,
    },
}

impl ParsedDocument {
    /// Zero-based index of the document in its file.
    pub fn document(&self) -> usize {
        match self {
            ParsedDocument::Object { document, .. }
            | ParsedDocument::Rejected { document, .. }
            | ParsedDocument::Skipped { document, .. } => *document,
        }
    }

    /// The object this document defines or meant to define, if known.
    pub fn key(&self) -> Option<ObjectKey> {
        match self {
            ParsedDocument::Object { object, .. } => Some(object.key()),
            ParsedDocument::Rejected { key, .. } => key.clone(),
            ParsedDocument::Skipped { .. } => None,
        }
    }

    /// Every diagnostic about this document.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            ParsedDocument::Object { warnings, .. } => warnings,
            ParsedDocument::Rejected { diagnostics, .. } => diagnostics,
            ParsedDocument::Skipped { diagnostic, .. } => std::slice::from_ref(diagnostic),
        }
    }
}

/// Parses every document of a multi-document YAML file. A file that is not
/// valid YAML yields a single `Rejected` with no key, whose message has the
/// line and column; see [`parse_stream`] to tell that case apart.
pub fn parse_documents(file: &str, text: &str) -> Vec<ParsedDocument> {
    match parse_stream(file, text) {
        Ok(documents) => documents,
        Err(diagnostic) => vec![ParsedDocument::Rejected {
            document: diagnostic.document.unwrap_or(0),
            key: None,
            diagnostics: vec![*diagnostic],
        }],
    }
}

/// Like [`parse_documents`], but a YAML syntax error anywhere in the file is
/// `Err`: nothing in the file can be trusted then, not even the documents
/// before the error, since the user is probably in the middle of an edit.
pub fn parse_stream(file: &str, text: &str) -> Result<Vec<ParsedDocument>, Box<Diagnostic>> {
    let mut out = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let mut value = Value::deserialize(document).map_err(|e| syntax_error(file, index, &e))?;
        value
            .apply_merge()
            .map_err(|e| syntax_error(file, index, &e))?;
        if let Some(parsed) = decode_document(file, index, &value) {
            out.push(parsed);
        }
    }
    Ok(out)
}

fn syntax_error(file: &str, document: usize, error: &serde_yaml::Error) -> Box<Diagnostic> {
    let mut message = format!("invalid YAML: {error}");
    if let Some(at) = error.location()
        && !message.contains(" line ")
    {
        message.push_str(&format!(" at line {} column {}", at.line(), at.column()));
    }
    Box::new(Diagnostic::error(FieldPath::root(), message).in_file(file, document))
}

pub(crate) const ENVELOPE: Shape = Shape {
    name: "*",
    known: &["apiVersion", "kind", "metadata", "spec"],
    unsupported: &[],
    ignored: &["status"],
    proto_names: false,
};

/// Decodes and validates one parsed document. `None` for an empty document
/// (`---` alone, or only comments).
pub fn decode_document(file: &str, document: usize, value: &Value) -> Option<ParsedDocument> {
    if value.is_null() {
        return None;
    }
    let locate = |d: Diagnostic, key: &Option<ObjectKey>| {
        let d = d.in_file(file, document);
        match key {
            Some(key) => d.on(key.clone()),
            None => d,
        }
    };
    let reject = |key: Option<ObjectKey>, found: Vec<Diagnostic>| ParsedDocument::Rejected {
        document,
        diagnostics: found.into_iter().map(|d| locate(d, &key)).collect(),
        key,
    };
    let (api_version, kind) = match type_of(value) {
        Ok(pair) => pair,
        Err(e) => return Some(reject(None, vec![e.into_diagnostic()])),
    };
    let root = FieldPath::root();
    let kind = match route(&api_version, &kind) {
        Route::Decode(kind) => kind,
        Route::WrongVersion(known) => {
            let message = format!(
                "apiVersion {api_version} does not serve kind {kind}; expected {}",
                expected_versions(known)
            );
            let found = vec![Diagnostic::error(root.field("apiVersion"), message)];
            return Some(reject(decode::peek_key(value, known), found));
        }
        Route::NotSupported => {
            let message = format!("kind {kind} ({api_version}) is not supported yet");
            return Some(reject(None, vec![Diagnostic::error(root, message)]));
        }
        Route::Unknown => {
            let group = api_version.rsplit_once('/').map_or("", |(g, _)| g);
            let message = format!("unknown kind {kind} in {group}");
            return Some(reject(
                None,
                vec![Diagnostic::error(root.field("kind"), message)],
            ));
        }
        Route::Ignored => {
            let message =
                format!("kind {kind} ({api_version}) is ignored: it does not configure the mesh");
            return Some(ParsedDocument::Skipped {
                document,
                diagnostic: locate(Diagnostic::warning(root, message), &None),
            });
        }
    };
    let key = decode::peek_key(value, kind);
    let mut findings = Findings::new();
    let object = match decode_object(kind, value, &mut findings) {
        Ok(object) => object,
        Err(e) => {
            findings.push(e.into_diagnostic());
            return Some(reject(key, findings));
        }
    };
    let key = Some(object.key());
    findings.extend(validate(&object));
    if findings.iter().any(Diagnostic::is_error) {
        return Some(reject(key, findings));
    }
    Some(ParsedDocument::Object {
        document,
        warnings: findings.into_iter().map(|d| locate(d, &key)).collect(),
        object,
    })
}

/// `apiVersion` and `kind`, which every document must have.
fn type_of(value: &Value) -> Result<(String, String), DecodeError> {
    let root = FieldPath::root();
    if !value.is_mapping() {
        return Err(DecodeError::new(
            &root,
            format!(
                "expected a mapping with apiVersion, kind, metadata and spec, got {}",
                decode::describe(value)
            ),
        ));
    }
    let field = |name: &str| -> Result<String, DecodeError> {
        let path = root.field(name);
        match value.get(name) {
            None | Some(Value::Null) => Err(DecodeError::new(&path, "field is required")),
            Some(v) => decode::string(v, &path),
        }
    };
    Ok((field("apiVersion")?, field("kind")?))
}

fn decode_object(
    kind: Kind,
    value: &Value,
    findings: &mut Findings,
) -> Result<Object, DecodeError> {
    let envelope = Fields::new(value, &FieldPath::root(), ShapeId::Envelope)?;
    let meta = decode::decode_meta(&envelope)?;
    let (path, spec) = envelope.require("spec")?;
    Ok(match kind {
        Kind::Service => Object::Service(decode::decode_service(meta, &path, spec, findings)?),
        Kind::WorkloadEntry => {
            Object::WorkloadEntry(decode::decode_workload_entry(meta, &path, spec)?)
        }
        Kind::ServiceEntry => {
            Object::ServiceEntry(decode::decode_service_entry(meta, &path, spec, findings)?)
        }
        Kind::VirtualService => {
            Object::VirtualService(decode::decode_virtual_service(meta, &path, spec, findings)?)
        }
        Kind::DestinationRule => Object::DestinationRule(decode::decode_destination_rule(
            meta, &path, spec, findings,
        )?),
        Kind::Sidecar => Object::Sidecar(decode::decode_sidecar(meta, &path, spec)?),
        Kind::PeerAuthentication => {
            Object::PeerAuthentication(decode::decode_peer_authentication(meta, &path, spec)?)
        }
        Kind::AuthorizationPolicy => {
            Object::AuthorizationPolicy(decode::decode_authorization_policy(meta, &path, spec)?)
        }
        Kind::RequestAuthentication => Object::RequestAuthentication(
            decode::decode_request_authentication(meta, &path, spec, findings)?,
        ),
        Kind::Telemetry => Object::Telemetry(decode::decode_telemetry(meta, &path, spec)?),
    })
}

#[cfg(test)]
mod tests;
