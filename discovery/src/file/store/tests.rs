//! One test per FileStore rule.

use std::path::Path;

use policy::{Kind, Severity};

use super::*;

fn dr(name: &str, subset: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}}}\nspec:\n  host: {name}\n  subsets:\n  - name: {subset}\n    labels: {{version: {subset}}}\n"
    )
}

/// A DestinationRule whose subset has no labels: rejected, key known.
fn broken_dr(name: &str) -> String {
    format!(
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: {name}}}\nspec:\n  host: {name}\n  subsets:\n  - name: v9\n"
    )
}

fn names(config: &ConfigSet) -> Vec<String> {
    config.objects.iter().map(|o| o.key().to_string()).collect()
}

fn subset_of(config: &ConfigSet, name: &str) -> String {
    let object = config
        .objects
        .iter()
        .find(|o| o.meta().name == name)
        .unwrap_or_else(|| panic!("{name} is not in force"));
    match object.as_ref() {
        Object::DestinationRule(dr) => dr.spec.subsets[0].name.clone(),
        other => panic!("not a DestinationRule: {other:?}"),
    }
}

fn errors(config: &ConfigSet) -> Vec<String> {
    config
        .diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .map(ToString::to_string)
        .collect()
}

#[test]
fn objects_are_unique_and_sorted_by_key() {
    let mut store = FileStore::new();
    store.apply(
        Path::new("b.yaml"),
        &format!("{}---\n{}", dr("zeta", "v1"), dr("alpha", "v1")),
    );
    store.apply(
        Path::new("a.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  selector: {app: web}\n  ports: [{port: 80}]\n",
    );
    let config = store.config();
    assert_eq!(
        names(&config),
        vec![
            "Service default/web",
            "DestinationRule default/alpha",
            "DestinationRule default/zeta"
        ]
    );
    assert!(config.diagnostics.is_empty(), "{:?}", config.diagnostics);
}

#[test]
fn a_rejected_edit_keeps_the_previous_valid_version() {
    let mut store = FileStore::new();
    let path = Path::new("conf/rules.yaml");
    store.apply(
        path,
        &format!("{}---\n{}", dr("reviews", "v1"), dr("ratings", "v1")),
    );
    store.apply(
        path,
        &format!("{}---\n{}", broken_dr("reviews"), dr("ratings", "v2")),
    );
    let config = store.config();
    assert_eq!(
        subset_of(&config, "reviews"),
        "v1",
        "the previous valid version"
    );
    assert_eq!(subset_of(&config, "ratings"), "v2", "the new valid version");
    assert_eq!(
        errors(&config),
        vec![
            "conf/rules.yaml: document 0: DestinationRule default/reviews: spec.subsets[0].labels: a subset needs at least one label"
        ]
    );
    let kept: Vec<&Diagnostic> = config
        .diagnostics
        .iter()
        .filter(|d| d.message == "the previous valid version stays in force")
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        kept[0].object.as_ref().map(|k| k.name.as_str()),
        Some("reviews")
    );

    // Fixing the edit replaces the kept version and clears the errors.
    store.apply(
        path,
        &format!("{}---\n{}", dr("reviews", "v3"), dr("ratings", "v2")),
    );
    let config = store.config();
    assert_eq!(subset_of(&config, "reviews"), "v3");
    assert!(config.diagnostics.is_empty(), "{:?}", config.diagnostics);
}

#[test]
fn a_rejected_new_object_is_not_in_force() {
    let mut store = FileStore::new();
    store.apply(Path::new("a.yaml"), &broken_dr("reviews"));
    let config = store.config();
    assert!(config.objects.is_empty());
    assert_eq!(errors(&config).len(), 1);
}

#[test]
fn a_file_that_is_not_yaml_keeps_everything_it_had() {
    let mut store = FileStore::new();
    let path = Path::new("a.yaml");
    store.apply(
        path,
        &format!("{}---\n{}", dr("reviews", "v1"), dr("ratings", "v1")),
    );
    store.apply(path, "apiVersion: [unclosed\n");
    let config = store.config();
    assert_eq!(names(&config).len(), 2);
    let e = errors(&config);
    assert_eq!(e.len(), 1);
    assert!(
        e[0].starts_with("a.yaml: document 0: invalid YAML: "),
        "{}",
        e[0]
    );
    assert!(e[0].contains("line 1"), "{}", e[0]);
}

#[test]
fn objects_gone_from_the_text_are_removed() {
    let mut store = FileStore::new();
    let path = Path::new("a.yaml");
    store.apply(
        path,
        &format!("{}---\n{}", dr("reviews", "v1"), dr("ratings", "v1")),
    );
    store.apply(path, &dr("ratings", "v1"));
    assert_eq!(
        names(&store.config()),
        vec!["DestinationRule default/ratings"]
    );
    store.apply(path, "# everything moved elsewhere\n");
    assert!(store.config().objects.is_empty());
}

#[test]
fn removing_a_file_removes_its_objects() {
    let mut store = FileStore::new();
    store.apply(Path::new("a.yaml"), &dr("reviews", "v1"));
    store.apply(Path::new("b.yaml"), &dr("ratings", "v1"));
    store.remove(Path::new("a.yaml"));
    assert_eq!(
        names(&store.config()),
        vec!["DestinationRule default/ratings"]
    );
    store.apply_change(&FileChange::Remove {
        path: "b.yaml".into(),
    });
    assert!(store.config().objects.is_empty());
}

#[test]
fn the_first_file_by_path_wins_a_duplicate() {
    let mut store = FileStore::new();
    store.apply(Path::new("dir/b.yaml"), &dr("reviews", "from-b"));
    store.apply(Path::new("dir/a.yaml"), &dr("reviews", "from-a"));
    let config = store.config();
    assert_eq!(subset_of(&config, "reviews"), "from-a");
    assert_eq!(
        errors(&config),
        vec![
            "dir/b.yaml: document 0: DestinationRule default/reviews: duplicate object, also defined in dir/a.yaml"
        ]
    );
    let d = &config.diagnostics[0];
    assert_eq!(
        d.object.as_ref().map(|k| k.kind),
        Some(Kind::DestinationRule)
    );

    store.remove(Path::new("dir/a.yaml"));
    let config = store.config();
    assert_eq!(subset_of(&config, "reviews"), "from-b");
    assert!(config.diagnostics.is_empty());
}

#[test]
fn a_duplicate_within_a_file_keeps_the_first_document() {
    let mut store = FileStore::new();
    store.apply(
        Path::new("a.yaml"),
        &format!("{}---\n{}", dr("reviews", "v1"), dr("reviews", "v2")),
    );
    let config = store.config();
    assert_eq!(subset_of(&config, "reviews"), "v1");
    assert_eq!(
        errors(&config),
        vec![
            "a.yaml: document 1: DestinationRule default/reviews: duplicate object, also defined in document 0 of this file"
        ]
    );
}

#[test]
fn warnings_and_skips_are_reported_and_sorted() {
    let mut store = FileStore::new();
    store.apply(
        Path::new("b.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\n",
    );
    store.apply(
        Path::new("a.yaml"),
        "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  ports: [{port: 80}]\n",
    );
    let config = store.config();
    assert_eq!(names(&config), vec!["Service default/web"]);
    let mut sorted = config.diagnostics.clone();
    sorted.sort();
    assert_eq!(config.diagnostics, sorted);
    let files: Vec<&str> = config.diagnostics.iter().map(|d| d.file.as_str()).collect();
    assert_eq!(files, vec!["a.yaml", "b.yaml"]);
    assert!(
        config
            .diagnostics
            .iter()
            .all(|d| d.severity == Severity::Warning)
    );
}

fn changed(store: &mut FileStore) -> Vec<String> {
    store
        .take_changed()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn the_keys_an_edit_changed_are_known() {
    let mut store = FileStore::new();
    store.apply(Path::new("a.yaml"), &dr("reviews", "v1"));
    store.apply(Path::new("b.yaml"), &dr("ratings", "v1"));
    assert_eq!(
        changed(&mut store),
        vec![
            "DestinationRule default/ratings",
            "DestinationRule default/reviews"
        ]
    );
    assert!(changed(&mut store).is_empty(), "taken once");

    // The same object again, however written, is no change.
    store.apply(
        Path::new("a.yaml"),
        &format!("# a comment\n{}", dr("reviews", "v1")),
    );
    assert!(changed(&mut store).is_empty());

    store.apply(Path::new("b.yaml"), &dr("ratings", "v2"));
    assert_eq!(changed(&mut store), vec!["DestinationRule default/ratings"]);

    // A later file's duplicate does not change what is in force; removing
    // the first file puts it in force.
    store.apply(Path::new("c.yaml"), &dr("reviews", "from-c"));
    assert!(changed(&mut store).is_empty());
    store.remove(Path::new("a.yaml"));
    assert_eq!(changed(&mut store), vec!["DestinationRule default/reviews"]);
    assert_eq!(subset_of(&store.config(), "reviews"), "from-c");

    // A rejected edit keeps the last valid version: no change either.
    store.apply(Path::new("b.yaml"), &broken_dr("ratings"));
    assert!(changed(&mut store).is_empty());
    store.remove(Path::new("b.yaml"));
    store.remove(Path::new("c.yaml"));
    assert_eq!(
        changed(&mut store),
        vec![
            "DestinationRule default/ratings",
            "DestinationRule default/reviews"
        ]
    );
    assert!(store.config().objects.is_empty());
}

#[test]
fn an_unchanged_object_keeps_its_identity_across_edits_of_its_file() {
    let mut store = FileStore::new();
    let path = Path::new("a.yaml");
    store.apply(
        path,
        &format!("{}---\n{}", dr("reviews", "v1"), dr("ratings", "v1")),
    );
    let before = store.config();
    store.apply(
        path,
        &format!("{}---\n{}", dr("reviews", "v1"), dr("ratings", "v2")),
    );
    let after = store.config();
    let find = |config: &ConfigSet, name: &str| {
        config
            .objects
            .iter()
            .find(|o| o.meta().name == name)
            .cloned()
            .unwrap()
    };
    assert!(Arc::ptr_eq(
        &find(&before, "reviews"),
        &find(&after, "reviews")
    ));
    assert!(!Arc::ptr_eq(
        &find(&before, "ratings"),
        &find(&after, "ratings")
    ));
}

/// Whatever order edits come in, the merge kept up to date one file at a
/// time is the merge of the files' states from scratch.
#[test]
fn the_merge_kept_up_to_date_is_the_merge_from_scratch() {
    let steps: &[(&str, Option<String>)] = &[
        (
            "a.yaml",
            Some(format!(
                "{}---\n{}",
                dr("reviews", "v1"),
                dr("ratings", "v1")
            )),
        ),
        ("b.yaml", Some(dr("reviews", "from-b"))),
        ("c.yaml", Some(broken_dr("details"))),
        (
            "a.yaml",
            Some(format!(
                "{}---\n{}",
                broken_dr("reviews"),
                dr("ratings", "v2")
            )),
        ),
        ("c.yaml", Some(dr("details", "v1"))),
        ("d.yaml", Some("apiVersion: [unclosed\n".to_string())),
        ("a.yaml", None),
        (
            "e.yaml",
            Some(format!(
                "{}---\n{}",
                dr("details", "v2"),
                dr("details", "v3")
            )),
        ),
        ("b.yaml", None),
    ];
    let mut store = FileStore::new();
    for (path, text) in steps {
        match text {
            Some(text) => store.apply(Path::new(path), text),
            None => store.remove(Path::new(path)),
        }
        assert_eq!(store.config(), store.config_from_scratch(), "after {path}");
    }
}
