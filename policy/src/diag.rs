//! Diagnostics: every problem found in user input, with where it is.
//!
//! A diagnostic renders as one line that a user can act on:
//! `manifests/reviews.yaml: document 2: VirtualService default/reviews: spec.http[0].route[1].weight: weights must sum to 100, got 90`

use std::fmt;

use crate::object::ObjectKey;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    /// The object is rejected; the previous valid version, if any, stays in force.
    Error,
    /// The object is accepted, but something about it is probably wrong.
    Warning,
}

/// A path into a document, such as `spec.http[0].route[1].weight`.
#[derive(Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct FieldPath(String);

impl FieldPath {
    pub fn root() -> Self {
        FieldPath(String::new())
    }

    pub fn new(path: impl Into<String>) -> Self {
        FieldPath(path.into())
    }

    /// `spec` + `hosts` = `spec.hosts`.
    pub fn field(&self, name: &str) -> Self {
        if self.0.is_empty() {
            FieldPath(name.to_string())
        } else {
            FieldPath(format!("{}.{name}", self.0))
        }
    }

    /// `spec.http` + 0 = `spec.http[0]`.
    pub fn index(&self, i: usize) -> Self {
        FieldPath(format!("{}[{i}]", self.0))
    }

    /// `metadata.labels` + `app` = `metadata.labels[app]`.
    pub fn key(&self, k: &str) -> Self {
        FieldPath(format!("{}[{k}]", self.0))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One problem, located as precisely as the input allows.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic {
    pub severity: Severity,
    /// The file, as the user named it; empty when the text did not come from a file.
    pub file: String,
    /// Zero-based index of the YAML document in the file.
    pub document: Option<usize>,
    /// The object, once its kind, namespace and name are known.
    pub object: Option<ObjectKey>,
    /// Where in the object; empty for problems with the whole document.
    pub path: FieldPath,
    pub message: String,
}

impl Diagnostic {
    pub fn error(path: FieldPath, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            file: String::new(),
            document: None,
            object: None,
            path,
            message: message.into(),
        }
    }

    pub fn warning(path: FieldPath, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(path, message)
        }
    }

    pub fn in_file(mut self, file: impl Into<String>, document: usize) -> Self {
        self.file = file.into();
        self.document = Some(document);
        self
    }

    pub fn on(mut self, object: ObjectKey) -> Self {
        self.object = Some(object);
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.severity == Severity::Warning {
            f.write_str("warning: ")?;
        }
        if !self.file.is_empty() {
            write!(f, "{}: ", self.file)?;
        }
        if let Some(doc) = self.document {
            write!(f, "document {doc}: ")?;
        }
        if let Some(object) = &self.object {
            write!(f, "{object}: ")?;
        }
        if !self.path.as_str().is_empty() {
            write!(f, "{}: ", self.path)?;
        }
        f.write_str(&self.message)
    }
}
