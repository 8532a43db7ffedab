//! The objects in force from a set of files, with the last good version of
//! each kept when an edit breaks it.
//!
//! ```text
//! apply(path, text) ──► parse ──► per file: key -> object it provides, diagnostics
//! remove(path)                               │
//!                                            └──► the keys it touched: first definer by path wins
//!                                                   ──► objects in force, origins, changed keys
//! config() ──► ConfigSet (shares what is in force)       take_changed() ──► keys changed since the last call
//! ```
//!
//! The merge is kept up to date one file at a time, so an edit costs what
//! the edited file defines, not what the whole directory does, and the
//! keys it changed are known without comparing whole configs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use policy::object::parse_stream;
use policy::{Diagnostic, FieldPath, Object, ObjectKey, ParsedDocument};

use super::FileChange;
use crate::model::ServiceEndpoints;

/// Every object in force, unique by key and sorted by key, and every problem
/// found, sorted.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConfigSet {
    pub objects: Vec<Arc<Object>>,
    pub diagnostics: Vec<Diagnostic>,
    /// Where each object in force was read: file (display form) and document index.
    pub origins: Arc<BTreeMap<ObjectKey, (String, usize)>>,
    /// Endpoints the source supplies for its Services (a Kubernetes
    /// source's EndpointSlices); none from files, whose Services select
    /// WorkloadEntries. A source that changes a Service's entry reports
    /// that Service's key as changed, so an incremental build looks at it.
    pub endpoints: Arc<ServiceEndpoints>,
}

/// The files of a config source and what each provides. Pure and synchronous:
/// whoever reads the files calls `apply` and `remove`.
#[derive(Debug, Default)]
pub struct FileStore {
    files: BTreeMap<PathBuf, FileState>,
    /// The files that define each key, in path order: the first is in force.
    definers: BTreeMap<ObjectKey, BTreeSet<PathBuf>>,
    /// The keys more than one file defines.
    duplicated: BTreeSet<ObjectKey>,
    /// The object in force for each key.
    in_force: BTreeMap<ObjectKey, Arc<Object>>,
    /// Shared with the config sets handed out; copied on write only while
    /// one of them is still held.
    origins: Arc<BTreeMap<ObjectKey, (String, usize)>>,
    /// Keys whose object in force appeared, went or changed since the last
    /// [`FileStore::take_changed`].
    changed: BTreeSet<ObjectKey>,
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
        let before: Vec<ObjectKey> = previous.objects.keys().cloned().collect();
        let state = match parse_stream(&file, text) {
            Err(syntax) => FileState {
                objects: previous.objects,
                diagnostics: vec![*syntax],
            },
            Ok(documents) => file_state(&file, documents, previous),
        };
        self.files.insert(path.to_path_buf(), state);
        self.settle(path, before);
    }

    /// Forgets a file and every object it provided.
    pub fn remove(&mut self, path: &Path) {
        if let Some(previous) = self.files.remove(path) {
            self.settle(path, previous.objects.into_keys().collect());
        }
    }

    /// The keys whose object in force appeared, went or changed since the
    /// last call (since the store was made, for the first): what a build
    /// from the previous [`config`](FileStore::config) has to look at again.
    pub fn take_changed(&mut self) -> BTreeSet<ObjectKey> {
        std::mem::take(&mut self.changed)
    }

    /// Brings the merge up to date for the keys `path` defined (`before`)
    /// and defines now.
    fn settle(&mut self, path: &Path, before: Vec<ObjectKey>) {
        let now: Vec<ObjectKey> = self
            .files
            .get(path)
            .map(|state| state.objects.keys().cloned().collect())
            .unwrap_or_default();
        for key in &before {
            if now.contains(key) {
                continue;
            }
            if let Some(paths) = self.definers.get_mut(key) {
                paths.remove(path);
                if paths.is_empty() {
                    self.definers.remove(key);
                }
            }
        }
        for key in &now {
            self.definers
                .entry(key.clone())
                .or_default()
                .insert(path.to_path_buf());
        }
        for key in before.iter().chain(&now) {
            self.settle_key(key);
        }
    }

    /// Puts the first definition of `key` by path in force, noting a change
    /// when it is a different object.
    fn settle_key(&mut self, key: &ObjectKey) {
        let first = self.definers.get(key).and_then(|paths| {
            if paths.len() > 1 {
                self.duplicated.insert(key.clone());
            } else {
                self.duplicated.remove(key);
            }
            let path = paths.first()?;
            Some((path, self.files.get(path)?.objects.get(key)?))
        });
        let Some((path, provided)) = first else {
            self.duplicated.remove(key);
            if self.in_force.remove(key).is_some() {
                Arc::make_mut(&mut self.origins).remove(key);
                self.changed.insert(key.clone());
            }
            return;
        };
        let origin = (path.display().to_string(), provided.document);
        if self.origins.get(key) != Some(&origin) {
            Arc::make_mut(&mut self.origins).insert(key.clone(), origin);
        }
        let object = provided.object.clone();
        let path = path.clone();
        match self.in_force.get(key) {
            Some(current) if Arc::ptr_eq(current, &object) => {}
            // The same object again (another document of its file changed,
            // or a touch): the one in force stays, and so does its identity.
            Some(current) if **current == *object => {
                let current = current.clone();
                if let Some(provided) = self
                    .files
                    .get_mut(&path)
                    .and_then(|state| state.objects.get_mut(key))
                {
                    provided.object = current;
                }
            }
            _ => {
                self.in_force.insert(key.clone(), object);
                self.changed.insert(key.clone());
            }
        }
    }

    /// Applies one change, as the file source (`discovery_file::FileSource`)
    /// sends them.
    pub fn apply_change(&mut self, change: &FileChange) {
        match change {
            FileChange::Upsert { path, text } => self.apply(path, text),
            FileChange::Remove { path } => self.remove(path),
        }
    }

    /// The objects in force. When two files define the same object, the
    /// first file by path wins and the other definition is an error.
    pub fn config(&self) -> ConfigSet {
        let mut diagnostics: Vec<Diagnostic> = self
            .files
            .values()
            .flat_map(|state| state.diagnostics.iter().cloned())
            .collect();
        for key in &self.duplicated {
            let Some(paths) = self.definers.get(key) else {
                continue;
            };
            let mut paths = paths.iter();
            let Some(first) = paths.next() else {
                continue;
            };
            for path in paths {
                let Some(provided) = self.files.get(path).and_then(|s| s.objects.get(key)) else {
                    continue;
                };
                diagnostics.push(
                    Diagnostic::error(
                        FieldPath::root(),
                        format!("duplicate object, also defined in {}", first.display()),
                    )
                    .in_file(path.display().to_string(), provided.document)
                    .on(key.clone()),
                );
            }
        }
        diagnostics.sort();
        ConfigSet {
            objects: self.in_force.values().cloned().collect(),
            diagnostics,
            origins: self.origins.clone(),
            endpoints: Arc::default(),
        }
    }
}

#[cfg(test)]
impl FileStore {
    /// The merge of every file's current state, from scratch, as `config`
    /// once computed it on every call: what the kept-up-to-date merge must
    /// equal.
    fn config_from_scratch(&self) -> ConfigSet {
        let mut objects: BTreeMap<&ObjectKey, (&Path, &Provided)> = BTreeMap::new();
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
                        objects.insert(key, (path, provided));
                    }
                }
            }
        }
        diagnostics.sort();
        let origins = objects
            .iter()
            .map(|(key, (path, p))| ((*key).clone(), (path.display().to_string(), p.document)))
            .collect();
        ConfigSet {
            objects: objects
                .into_values()
                .map(|(_, p)| p.object.clone())
                .collect(),
            diagnostics,
            origins: Arc::new(origins),
            endpoints: Arc::default(),
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
