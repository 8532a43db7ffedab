//! The walker's rules on real temporary directories.

use super::*;

fn write(root: &Path, rel: &str, text: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, text).unwrap();
}

fn listed(root: &Path) -> Vec<String> {
    let files = walk(root).unwrap().files;
    let paths: Vec<&PathBuf> = files.iter().map(|(p, _)| p).collect();
    let mut sorted = paths.clone();
    sorted.sort();
    assert_eq!(paths, sorted, "listed in path order");
    paths
        .iter()
        .map(|p| p.strip_prefix(root).unwrap().display().to_string())
        .collect()
}

#[test]
fn names() {
    assert!(is_config_file("a.yaml"));
    assert!(is_config_file("a.yml"));
    assert!(!is_config_file("a.json"));
    assert!(!is_config_file(".hidden.yaml"));
    assert!(!is_config_file(".#a.yaml"));
    assert!(!is_config_file("#a.yaml#"));
    assert!(!is_config_file("a.yaml~"));
    assert!(!is_config_file(".a.yaml.swp"));
    assert!(!is_config_file("a.yaml.tmp"));
}

#[test]
fn lists_recursively_and_skips_what_is_not_config() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "a.yaml", "a");
    write(root, "sub/deeper/b.yml", "b");
    write(root, ".hidden/c.yaml", "c");
    write(root, ".#a.yaml", "x");
    write(root, "a.yaml~", "x");
    write(root, "#a.yaml#", "x");
    write(root, "notes.txt", "x");
    write(root, "a/z.yaml", "z");
    write(root, "a-b.yaml", "x");
    assert_eq!(
        listed(root),
        vec!["a/z.yaml", "a-b.yaml", "a.yaml", "sub/deeper/b.yml"]
    );
}

#[cfg(unix)]
#[test]
fn follows_file_links_not_directory_links() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "..2024_01_01/mesh.yaml", "m");
    write(root, "elsewhere/other.yaml", "o");
    std::os::unix::fs::symlink("..2024_01_01", root.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/mesh.yaml", root.join("mesh.yaml")).unwrap();
    std::os::unix::fs::symlink(".", root.join("loop")).unwrap();
    std::os::unix::fs::symlink("elsewhere", root.join("linked")).unwrap();
    std::os::unix::fs::symlink("gone.yaml", root.join("dangling.yaml")).unwrap();
    std::os::unix::fs::symlink("elsewhere", root.join("dir.yaml")).unwrap();
    assert_eq!(listed(root), vec!["elsewhere/other.yaml", "mesh.yaml"]);
}

#[test]
fn a_missing_root_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    assert!(walk(&dir.path().join("nope")).is_err());
}
