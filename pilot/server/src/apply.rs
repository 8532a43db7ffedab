//! `POST /api/v1/apply`: objects written through the admin API, in file
//! mode, into a directory of the API's own inside the config directory,
//! one file per object, so GitOps and the API see one truth and a restart
//! loses nothing.
//!
//! ```text
//! body (multi-document YAML or JSON) ──► every document decoded and validated
//!   any error ──► 400 [{document, object, path, message}], nothing written
//!   an object a hand-written file defines ──► 409, naming that file
//!   else (unless ?dryRun=true) ──► CONFIG_DIR/bowline-api/KIND.NAMESPACE.NAME.yaml, atomically
//!                                  ──► the file source picks it up like any edit
//! ```
//!
//! All or nothing: the files are written only once every document has
//! passed. Writers are serialised, so two applies never interleave.
//!
//! Every object has a resource version, a hash of its content: `GET
//! /api/v1/config/...` shows it, and a document that names one
//! (`metadata.resourceVersion`) is applied only over that version, else
//! 409; one without is unconditional. The version is not stored.

use std::path::{Path, PathBuf};

use policy::{Diagnostic, ObjectKey, ParsedDocument};
use serde::Serialize;
use serde_yaml::Value;

/// The API's directory inside the config directory.
pub const API_DIR: &str = "bowline-api";

/// One problem with a request, by document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ApplyError {
    /// Zero-based index of the document in the body.
    pub document: Option<usize>,
    /// `Kind namespace/name`, once known.
    pub object: Option<String>,
    pub path: String,
    pub message: String,
}

impl From<&Diagnostic> for ApplyError {
    fn from(d: &Diagnostic) -> Self {
        ApplyError {
            document: d.document,
            object: d.object.as_ref().map(describe),
            path: d.path.to_string(),
            message: d.message.clone(),
        }
    }
}

fn describe(key: &ObjectKey) -> String {
    format!("{} {}/{}", key.kind, key.namespace, key.name)
}

/// What an apply did (or, dry, would do) to one object.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Applied {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// The file it is (or would be) in.
    pub file: String,
    /// `created`, `configured` or `unchanged`.
    pub action: &'static str,
    /// What is (or would be) written to `file`.
    #[serde(skip)]
    pub text: String,
}

/// Why an apply was refused.
#[derive(Debug)]
pub enum Refused {
    /// 400: documents that are not valid mesh config.
    Invalid(Vec<ApplyError>),
    /// 409: an object a hand-written file defines; edit that file instead.
    HandWritten { object: String, file: String },
    /// 409: the document names a resource version the object no longer has.
    Stale {
        object: String,
        asked: String,
        current: Option<String>,
    },
    /// 500: a file could not be written.
    Write { file: String, error: String },
}

/// One decoded document to write.
struct Planned {
    key: ObjectKey,
    text: String,
    /// The resource version the document was written over, if it names one.
    over: Option<String>,
}

/// An object in force, as `GET /api/v1/config/...` shows it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Stored {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    pub file: String,
    pub document: usize,
    #[serde(rename = "resourceVersion")]
    pub resource_version: String,
    /// The document as written, with `metadata.resourceVersion` set.
    pub object: serde_json::Value,
}

/// The resource version of a document: a hash of its content without
/// `metadata.resourceVersion`.
pub fn resource_version(value: &Value) -> String {
    let mut value = value.clone();
    strip_version(&mut value);
    let text = serde_json::to_string(&value).unwrap_or_default();
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

/// Removes `metadata.resourceVersion`, returning it.
fn strip_version(value: &mut Value) -> Option<String> {
    let metadata = value.get_mut("metadata")?.as_mapping_mut()?;
    let version = metadata.remove("resourceVersion")?;
    version.as_str().map(str::to_string)
}

/// Document `document` of `file`, read now.
fn read_document(file: &str, document: usize) -> Option<Value> {
    use serde::Deserialize;
    let text = std::fs::read_to_string(file).ok()?;
    let doc = serde_yaml::Deserializer::from_str(&text).nth(document)?;
    Value::deserialize(doc).ok()
}

/// The object `key` as in force (`origin`: its file and document).
pub fn stored(key: &ObjectKey, origin: &(String, usize)) -> Option<Stored> {
    let (file, document) = origin;
    let value = read_document(file, *document)?;
    let version = resource_version(&value);
    let mut object = serde_json::to_value(&value).ok()?;
    object["metadata"]["resourceVersion"] = serde_json::Value::from(version.as_str());
    Some(Stored {
        kind: key.kind.to_string(),
        namespace: key.namespace.clone(),
        name: key.name.clone(),
        file: file.clone(),
        document: *document,
        resource_version: version,
        object,
    })
}

/// `DELETE /api/v1/config/...`: removes the API's file of `key`; an object
/// of a hand-written file is refused (409), an unknown one is `Ok(false)`.
pub fn delete(
    config_dir: &Path,
    key: &ObjectKey,
    origin: Option<&(String, usize)>,
) -> Result<bool, Refused> {
    if let Some((file, _)) = origin.filter(|(f, _)| !in_api_dir(f)) {
        return Err(Refused::HandWritten {
            object: describe(key),
            file: file.clone(),
        });
    }
    let path = config_dir.join(API_DIR).join(file_name(key));
    match std::fs::remove_file(&path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(Refused::Write {
            file: path.display().to_string(),
            error: error.to_string(),
        }),
    }
}

/// Checks `body` and, unless `dry_run`, writes its objects under
/// `config_dir`. `origin` says where the config in force defines an object
/// (file and document), to refuse objects of hand-written files and to
/// check resource versions.
pub fn apply(
    config_dir: &Path,
    body: &str,
    dry_run: bool,
    origin: impl Fn(&ObjectKey) -> Option<(String, usize)>,
) -> Result<Vec<Applied>, Refused> {
    let planned = plan(body)?;
    let dir = config_dir.join(API_DIR);
    let mut applied = Vec::with_capacity(planned.len());
    for p in &planned {
        let found = origin(&p.key);
        if let Some((file, _)) = found.as_ref().filter(|(f, _)| !in_api_dir(f)) {
            return Err(Refused::HandWritten {
                object: describe(&p.key),
                file: file.clone(),
            });
        }
        if let Some(asked) = &p.over {
            let current = found
                .as_ref()
                .and_then(|(file, doc)| read_document(file, *doc))
                .map(|v| resource_version(&v));
            if current.as_ref() != Some(asked) {
                return Err(Refused::Stale {
                    object: describe(&p.key),
                    asked: asked.clone(),
                    current,
                });
            }
        }
        let path = dir.join(file_name(&p.key));
        let action = match std::fs::read_to_string(&path) {
            Ok(existing) if existing == p.text => "unchanged",
            Ok(_) => "configured",
            Err(_) => "created",
        };
        applied.push(Applied {
            kind: p.key.kind.to_string(),
            namespace: p.key.namespace.clone(),
            name: p.key.name.clone(),
            file: path.display().to_string(),
            action,
            text: p.text.clone(),
        });
    }
    if dry_run {
        return Ok(applied);
    }
    for (p, a) in planned.iter().zip(&applied) {
        if a.action == "unchanged" {
            continue;
        }
        write_atomically(&dir, &file_name(&p.key), &p.text).map_err(|error| Refused::Write {
            file: a.file.clone(),
            error: error.to_string(),
        })?;
    }
    Ok(applied)
}

/// Every document of `body`, decoded and validated, as the text to write;
/// any error refuses the whole body.
fn plan(body: &str) -> Result<Vec<Planned>, Refused> {
    use serde::Deserialize;
    let mut planned = Vec::new();
    let mut errors = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(body).enumerate() {
        let mut value = match Value::deserialize(document) {
            Ok(value) => value,
            Err(error) => {
                errors.push(ApplyError {
                    document: Some(index),
                    object: None,
                    path: String::new(),
                    message: format!("invalid YAML: {error}"),
                });
                // Nothing after a syntax error can be trusted.
                break;
            }
        };
        let over = strip_version(&mut value);
        match policy::object::decode_document("request", index, &value) {
            None => {}
            Some(ParsedDocument::Object { object, .. }) => {
                let text = serde_yaml::to_string(&value).unwrap_or_default();
                planned.push(Planned {
                    key: object.key(),
                    text,
                    over,
                });
            }
            Some(parsed) => errors.extend(
                parsed
                    .diagnostics()
                    .iter()
                    .map(|d| ApplyError::from(&d.clone().in_file("request", index))),
            ),
        }
    }
    let mut keys: Vec<&ObjectKey> = planned.iter().map(|p| &p.key).collect();
    keys.sort();
    for pair in keys.windows(2) {
        if pair[0] == pair[1] {
            errors.push(ApplyError {
                document: None,
                object: Some(describe(pair[0])),
                path: String::new(),
                message: "defined twice in the request".to_string(),
            });
        }
    }
    if planned.is_empty() && errors.is_empty() {
        errors.push(ApplyError {
            document: None,
            object: None,
            path: String::new(),
            message: "no mesh config in the request".to_string(),
        });
    }
    if errors.is_empty() {
        Ok(planned)
    } else {
        Err(Refused::Invalid(errors))
    }
}

/// `KIND.NAMESPACE.NAME.yaml`, the kind in lower case.
pub fn file_name(key: &ObjectKey) -> String {
    format!(
        "{}.{}.{}.yaml",
        key.kind.to_string().to_lowercase(),
        key.namespace,
        key.name
    )
}

fn in_api_dir(file: &str) -> bool {
    Path::new(file)
        .components()
        .any(|c| c.as_os_str() == API_DIR)
}

/// `text` into `dir/name` through a temporary file and a rename, so the
/// file source never reads half of it.
fn write_atomically(dir: &Path, name: &str, text: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    let tmp: PathBuf = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, dir.join(name)).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const VS: &str = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: reviews, namespace: shop}\nspec:\n  hosts: [reviews]\n  http:\n  - route:\n    - destination: {host: reviews}\n";
    const BAD: &str = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: ratings, namespace: shop}\nspec:\n  host: ratings\n  trafficPolicy:\n    loadBalancer: {simple: SIDEWAYS}\n";

    #[test]
    fn all_or_nothing_with_field_paths() {
        let dir = tempfile::tempdir().unwrap();
        let body = format!("{VS}---\n{BAD}");
        let Err(Refused::Invalid(errors)) = apply(dir.path(), &body, false, |_| None) else {
            panic!("an invalid document refuses the request");
        };
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].document, Some(1));
        assert_eq!(
            errors[0].object.as_deref(),
            Some("DestinationRule shop/ratings")
        );
        assert_eq!(errors[0].path, "spec.trafficPolicy.loadBalancer.simple");
        assert!(!dir.path().join(API_DIR).exists(), "nothing written");
    }

    #[test]
    fn writes_one_file_per_object_dry_runs_and_tells_what_changed() {
        let dir = tempfile::tempdir().unwrap();
        let dry = apply(dir.path(), VS, true, |_| None).unwrap();
        assert_eq!(dry[0].action, "created");
        assert!(
            !dir.path().join(API_DIR).exists(),
            "a dry run writes nothing"
        );
        let done = apply(dir.path(), VS, false, |_| None).unwrap();
        let file = dir
            .path()
            .join(API_DIR)
            .join("virtualservice.shop.reviews.yaml");
        assert_eq!(done[0].file, file.display().to_string());
        assert!(std::fs::read_to_string(&file).unwrap().contains("reviews"));
        let again = apply(dir.path(), VS, false, |_| None).unwrap();
        assert_eq!(again[0].action, "unchanged");
        let changed = VS.replace("{host: reviews}", "{host: reviews, port: {number: 9080}}");
        assert_eq!(
            apply(dir.path(), &changed, false, |_| None).unwrap()[0].action,
            "configured"
        );
    }

    #[test]
    fn an_object_of_a_hand_written_file_is_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let refused = apply(dir.path(), VS, false, |_| {
            Some(("mesh/reviews.yaml".to_string(), 0))
        });
        let Err(Refused::HandWritten { object, file }) = refused else {
            panic!("refused: {refused:?}");
        };
        assert_eq!(object, "VirtualService shop/reviews");
        assert_eq!(file, "mesh/reviews.yaml");
        // One the API wrote before is the API's to replace.
        let ours = format!("config/{API_DIR}/virtualservice.shop.reviews.yaml");
        assert!(apply(dir.path(), VS, false, |_| Some((ours.clone(), 0))).is_ok());
    }

    #[test]
    fn a_stale_resource_version_is_refused_a_current_one_applies() {
        let dir = tempfile::tempdir().unwrap();
        apply(dir.path(), VS, false, |_| None).unwrap();
        let file = dir
            .path()
            .join(API_DIR)
            .join("virtualservice.shop.reviews.yaml");
        let origin = (file.display().to_string(), 0);
        let key = ObjectKey {
            kind: policy::Kind::VirtualService,
            namespace: "shop".into(),
            name: "reviews".into(),
        };
        let current = stored(&key, &origin).unwrap();
        assert_eq!(
            current.object["metadata"]["resourceVersion"],
            current.resource_version
        );
        let with = |version: &str| {
            VS.replace(
                "namespace: shop}",
                &format!("namespace: shop, resourceVersion: \"{version}\"}}"),
            )
            .replace("{host: reviews}", "{host: reviews, port: {number: 9080}}")
        };
        let stale = apply(dir.path(), &with("0123"), false, |_| Some(origin.clone()));
        assert!(matches!(stale, Err(Refused::Stale { .. })), "{stale:?}");
        let fresh = apply(dir.path(), &with(&current.resource_version), false, |_| {
            Some(origin.clone())
        });
        assert_eq!(fresh.unwrap()[0].action, "configured");
        // The version is not stored, and it moved with the content.
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(!text.contains("resourceVersion"), "{text}");
        assert_ne!(
            stored(&key, &origin).unwrap().resource_version,
            current.resource_version
        );
        // Deleted: the API's file goes; a hand-written one is refused.
        assert!(delete(dir.path(), &key, Some(&origin)).unwrap());
        assert!(!delete(dir.path(), &key, None).unwrap());
        let hand = ("mesh/vs.yaml".to_string(), 0);
        assert!(matches!(
            delete(dir.path(), &key, Some(&hand)),
            Err(Refused::HandWritten { .. })
        ));
    }

    #[test]
    fn nothing_to_apply_twice_defined_and_bad_yaml_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        for body in ["", &format!("{VS}---\n{VS}"), "kind: [unclosed"] {
            assert!(
                matches!(
                    apply(dir.path(), body, false, |_| None),
                    Err(Refused::Invalid(_))
                ),
                "{body:?}"
            );
        }
    }
}
