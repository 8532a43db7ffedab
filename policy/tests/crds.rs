//! `manifests/crds/` is what `bowline crds` generates from this crate:
//! the test fails when a kind, a version or a name changes here and the
//! committed CRDs were not generated again.

use std::collections::BTreeMap;
use std::path::Path;

#[test]
fn the_committed_crds_are_the_generated_ones() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../manifests/crds");
    let committed: BTreeMap<String, String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect();
    let generated: BTreeMap<String, String> = policy::crd::crds()
        .into_iter()
        .map(|c| (c.file, c.yaml))
        .collect();
    assert!(
        committed == generated,
        "manifests/crds is stale: run `cargo run -p pilot --bin bowline -- crds --out manifests/crds` (committed {:?}, generated {:?})",
        committed.keys().collect::<Vec<_>>(),
        generated.keys().collect::<Vec<_>>()
    );
}
