//! The mesh config file that `serve`, `demo` and `validate` take with
//! `--mesh-config`: read once at start (by `pilot_server::mesh::load`; this
//! crate reads no files), and never a reason not to run.
//!
//! ```text
//! FILE ──► policy::mesh::parse_mesh_config ──► MeshConfig ──► Snapshot::build_with_mesh (or build_after)
//!                  └── unreadable or invalid ──► defaults + diagnostics (in every snapshot)
//! ```
//!
//! A bad file leaves the mesh on the defaults, so nothing that worked
//! without the flag stops working; its errors are reported where every
//! config error is: `/api/v1/diagnostics`, the log and `bowline validate`.

use std::collections::BTreeSet;

use discovery::file::ConfigSet;
use policy::mesh::{MeshConfig, parse_mesh_config};
use policy::{Diagnostic, FieldPath, ObjectKey};

use crate::snapshot::Snapshot;

/// The mesh config in force, and what was wrong with the file, if anything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Mesh {
    pub config: MeshConfig,
    pub diagnostics: Vec<Diagnostic>,
}

impl Mesh {
    /// The defaults, with an error saying why `file` could not be read.
    pub fn unreadable(file: &str, error: &dyn std::fmt::Display) -> Mesh {
        Mesh::rejected(
            file,
            vec![Diagnostic {
                file: file.to_string(),
                ..Diagnostic::error(FieldPath::root(), format!("cannot read: {error}"))
            }],
        )
    }

    /// The mesh config of the text of `file`.
    pub fn parse(file: &str, text: &str) -> Mesh {
        match parse_mesh_config(file, text) {
            Ok(config) => Mesh {
                config,
                diagnostics: Vec::new(),
            },
            Err(diagnostics) => Mesh::rejected(file, diagnostics),
        }
    }

    fn rejected(file: &str, mut diagnostics: Vec<Diagnostic>) -> Mesh {
        let config = MeshConfig::default();
        diagnostics.push(Diagnostic {
            file: file.to_string(),
            ..Diagnostic::warning(
                FieldPath::root(),
                format!(
                    "the mesh config is not used: running with the defaults (rootNamespace {})",
                    config.root_namespace
                ),
            )
        });
        Mesh {
            config,
            diagnostics,
        }
    }

    /// The snapshot of `config` in this mesh, reporting the file's problems too.
    pub fn build(&self, generation: u64, config: &ConfigSet) -> Snapshot {
        self.report(Snapshot::build_with_mesh(generation, config, &self.config))
    }

    /// Like [`Mesh::build`], from `previous` and the keys whose objects
    /// changed since `previous` was built (see [`Snapshot::build_after`]).
    pub fn build_after(
        &self,
        previous: &Snapshot,
        generation: u64,
        config: &ConfigSet,
        changed: &BTreeSet<ObjectKey>,
    ) -> Snapshot {
        if previous.mesh != self.config {
            return self
                .build(generation, config)
                .with_trust_bundle(previous.trust_bundle.clone())
                .with_jwks(previous.jwks.clone());
        }
        self.report(Snapshot::build_after(previous, generation, config, changed))
    }

    fn report(&self, mut snapshot: Snapshot) -> Snapshot {
        if !self.diagnostics.is_empty() {
            snapshot
                .diagnostics
                .extend(self.diagnostics.iter().cloned());
            snapshot.diagnostics.sort();
            snapshot.diagnostics.dedup();
        }
        snapshot
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_root_namespace_is_istio_system() {
        assert_eq!(Mesh::default().config.root_namespace, "istio-system");
        assert!(Mesh::default().diagnostics.is_empty());
    }

    #[test]
    fn a_bad_file_runs_on_defaults_and_says_why() {
        let mesh = Mesh::parse(
            "mesh.yaml",
            "rootNamespace: mesh-root\ntrustDomainAliases: [x]\n",
        );
        assert_eq!(mesh.config, MeshConfig::default());
        let lines: Vec<String> = mesh.diagnostics.iter().map(|d| d.to_string()).collect();
        assert_eq!(
            lines,
            [
                "mesh.yaml: trustDomainAliases: field is not supported yet",
                "warning: mesh.yaml: the mesh config is not used: running with the defaults (rootNamespace istio-system)",
            ]
        );
        let snapshot = mesh.build(1, &ConfigSet::default());
        assert_eq!(snapshot.diagnostics, mesh.diagnostics);
    }
}
