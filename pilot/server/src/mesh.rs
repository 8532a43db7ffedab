//! Reading the mesh config file: the only part of `pilot_core::mesh` that
//! touches the file system.

use std::path::Path;

use pilot_core::mesh::Mesh;

/// The mesh config in `path`, or the defaults when there is none. A file
/// that cannot be read leaves the defaults and an error saying why.
pub fn load(path: Option<&Path>) -> Mesh {
    let Some(path) = path else {
        return Mesh::default();
    };
    let file = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(text) => Mesh::parse(&file, &text),
        Err(e) => Mesh::unreadable(&file, &e),
    }
}

#[cfg(test)]
mod tests {
    use discovery::file::ConfigSet;
    use policy::mesh::MeshConfig;

    use super::*;

    #[test]
    fn no_file_is_the_defaults() {
        assert_eq!(load(None), Mesh::default());
    }

    #[test]
    fn an_unreadable_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing.yaml");
        let mesh = load(Some(&path));
        assert_eq!(mesh.config, MeshConfig::default());
        assert!(
            mesh.diagnostics[0]
                .to_string()
                .starts_with(&format!("{}: cannot read: ", path.display())),
            "{:?}",
            mesh.diagnostics
        );
    }

    #[test]
    fn a_good_file_sets_the_root_namespace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mesh.yaml");
        std::fs::write(&path, "rootNamespace: mesh-root\n").unwrap();
        let mesh = load(Some(&path));
        assert!(mesh.diagnostics.is_empty());
        assert_eq!(mesh.config.root_namespace, "mesh-root");
        assert_eq!(
            mesh.build(1, &ConfigSet::default()).mesh.root_namespace,
            "mesh-root"
        );
    }
}
