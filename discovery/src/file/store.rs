//! The objects in force from a set of files, with the last good version of
//! each kept when an edit breaks it.
//!
//! ```text
//! apply(path, text) ──► parse ──► per file: key -> object in force, diagnostics
//! remove(path)                               │
//!                            config() ◄──────┘ merge files in path order (first definition wins)
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use policy::object::parse_stream;
use policy::{Diagnostic, FieldPath, Object, ObjectKey, ParsedDocument};

use super::FileChange;

/// Every object in force, unique by key and sorted by key, and every problem
/// found, sorted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfigSet {
    pub objects: Vec<Arc<Object>>,
    pub diagnostics: Vec<Diagnostic>,
    /// Where each object in force was read: file (display form) and document index.
    pub origins: BTreeMap<ObjectKey, (String, usize)>,
}

/// The files of a config source and what each provides. Pure and synchronous:
/// whoever reads the files calls `apply` and `remove`.
#[derive(Debug, Default)]
pub struct FileStore {
    files: BTreeMap<PathBuf, FileState>,
}

#[derive(Debug, Default)]
struct FileState {
    /// The objects this file provides, each with the document defining it.
    objects: BTreeMap<ObjectKey, Provided>,
    diagnostics: Vec<Diagnostic>,
}

#[derive(Clone, Debug)]
struct Provided {
    document: usize,
    object: Arc<Object>,
}

impl FileStore {
    pub fn new() -> Self {
        FileStore::default()
    }

    /// Takes the new text of a file. Objects it no longer defines are gone; an
    /// object it now defines invalidly keeps its previous valid version in
    /// force; a file that is not valid YAML keeps everything it had.
    pub fn apply(&mut self, path: &Path, text: &str) {
        let file = path.display().to_string();
        let previous = self.files.remove(path).unwrap_or_default();
        let state = match parse_stream(&file, text) {
            Err(syntax) => FileState {
                objects: previous.objects,
                diagnostics: vec![*syntax],
            },
            Ok(documents) => file_state(&file, documents, previous),
        };
        self.files.insert(path.to_path_buf(), state);
    }

    /// Forgets a file and every object it provided.
    pub fn remove(&mut self, path: &Path) {
        self.files.remove(path);
    }

    /// Applies one change from a [`FileSource`](super::FileSource).
    pub fn apply_change(&mut self, change: &FileChange) {
        match change {
            FileChange::Upsert { path, text } => self.apply(path, text),
            FileChange::Remove { path } => self.remove(path),
        }
    }

    /// The objects in force. When two files define the same object, the
    /// first file by path wins and the other definition is an error.
    pub fn config(&self) -> ConfigSet {
        let mut objects: BTreeMap<&ObjectKey, (&Path, &Arc<Object>)> = BTreeMap::new();
        let mut diagnostics = Vec::new();
        for (path, state) in &self.files {
            diagnostics.extend(state.diagnostics.iter().cloned());
            for (key, provided) in &state.objects {
                match objects.get(key) {
                    Some((first, _)) => diagnostics.push(
                        Diagnostic::error(
                            FieldPath::root(),
                            format!("duplicate object, also defined in {}", first.display()),
                        )
                        .in_file(path.display().to_string(), provided.document)
                        .on(key.clone()),
                    ),
                    None => {
                        objects.insert(key, (path, &provided.object));
                    }
                }
            }
        }
        diagnostics.sort();
        let origins = objects
            .iter()
            .map(|(key, (path, _))| {
                let document = self.files[*path].objects[*key].document;
                ((*key).clone(), (path.display().to_string(), document))
            })
            .collect();
        ConfigSet {
            objects: objects.into_values().map(|(_, o)| Arc::clone(o)).collect(),
            diagnostics,
            origins,
        }
    }
}

/// What a file provides after an edit, given what it provided before.
fn file_state(file: &str, documents: Vec<ParsedDocument>, previous: FileState) -> FileState {
    let mut objects: BTreeMap<ObjectKey, Provided> = BTreeMap::new();
    let mut diagnostics = Vec::new();
    let mut rejected: BTreeMap<ObjectKey, usize> = BTreeMap::new();
    for parsed in documents {
        match parsed {
            ParsedDocument::Object {
                document,
                object,
                warnings,
            } => {
                diagnostics.extend(warnings);
                let key = object.key();
                if let Some(first) = objects.get(&key) {
                    diagnostics.push(
                        Diagnostic::error(
                            FieldPath::root(),
                            format!(
                                "duplicate object, also defined in document {} of this file",
                                first.document
                            ),
                        )
                        .in_file(file, document)
                        .on(key),
                    );
                    continue;
                }
                let object = Arc::new(object);
                objects.insert(key, Provided { document, object });
            }
            ParsedDocument::Rejected {
                document,
                key,
                diagnostics: found,
            } => {
                diagnostics.extend(found);
                if let Some(key) = key {
                    rejected.entry(key).or_insert(document);
                }
            }
            ParsedDocument::Skipped { diagnostic, .. } => diagnostics.push(diagnostic),
        }
    }
    // A broken edit of an object keeps its last valid version, unless the
    // file also defines it validly elsewhere.
    for (key, document) in rejected {
        if objects.contains_key(&key) {
            continue;
        }
        let Some(old) = previous.objects.get(&key) else {
            continue;
        };
        diagnostics.push(
            Diagnostic::warning(
                FieldPath::root(),
                "the previous valid version stays in force",
            )
            .in_file(file, document)
            .on(key.clone()),
        );
        let object = Arc::clone(&old.object);
        objects.insert(key, Provided { document, object });
    }
    FileState {
        objects,
        diagnostics,
    }
}

#[cfg(test)]
mod tests;
