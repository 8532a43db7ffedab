//! `bowline crds`: the CustomResourceDefinitions of the kinds Bowline
//! reads, generated from the policy crate (`manifests/crds/` holds them;
//! a test fails when they are stale).

use std::path::PathBuf;

use anyhow::Context;

#[derive(clap::Args, Debug)]
pub(crate) struct CrdsArgs {
    /// Write one file per CRD into this directory (replacing what is
    /// there) instead of printing them all to stdout.
    #[arg(long, value_name = "DIR")]
    pub(crate) out: Option<PathBuf>,
}

pub(crate) fn run(args: CrdsArgs) -> anyhow::Result<()> {
    let crds = policy::crd::crds();
    match args.out {
        None => {
            let all: Vec<&str> = crds.iter().map(|c| c.yaml.as_str()).collect();
            print!("{}", all.join("---\n"));
        }
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            for entry in std::fs::read_dir(&dir)? {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "yaml") {
                    std::fs::remove_file(&path)
                        .with_context(|| format!("cannot remove {}", path.display()))?;
                }
            }
            for crd in &crds {
                let path = dir.join(&crd.file);
                std::fs::write(&path, &crd.yaml)
                    .with_context(|| format!("cannot write {}", path.display()))?;
            }
            println!("{} CRDs written to {}", crds.len(), dir.display());
        }
    }
    Ok(())
}
