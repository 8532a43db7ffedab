//! `bowline explain --from WORKLOAD[.NAMESPACE] URL [-H 'name: value']... --config-dir DIR`:
//! what that workload's sidecar would do with the request, from the config
//! compiled for it (`pilot_core::explain`); no traffic is sent.

use std::path::PathBuf;

use pilot_core::explain::{Request, explain};

use crate::validate::collect;

#[derive(clap::Args, Debug)]
pub(crate) struct ExplainArgs {
    /// The workload whose sidecar sends it: a WorkloadEntry, `NAME` (in
    /// `default`) or `NAME.NAMESPACE`.
    #[arg(long = "from", value_name = "WORKLOAD")]
    pub(crate) from: String,
    /// The request's URL, `http://host[:port]/path?query`.
    pub(crate) url: String,
    /// A request header, `name: value` (repeatable).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    pub(crate) headers: Vec<String>,
    /// The config directory in force.
    #[arg(long, value_name = "DIR")]
    pub(crate) config_dir: PathBuf,
    /// Istio MeshConfig YAML, as `bowline serve` takes it.
    #[arg(long)]
    pub(crate) mesh_config: Option<PathBuf>,
    /// `text` (a step a line), or `json`.
    #[arg(short = 'o', long = "output", default_value = "text")]
    pub(crate) output: crate::diff::DiffOutput,
    /// `redirect`: the workload's traffic is captured (as `bowline proxy
    /// --interception-mode REDIRECT`, or a pod injected so): the
    /// application dials the service's address and the capture listener
    /// takes it.
    #[arg(long, value_enum, default_value = "none", ignore_case = true)]
    pub(crate) interception_mode: InterceptionMode,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InterceptionMode {
    Redirect,
    None,
}

pub(crate) async fn run(args: ExplainArgs) -> anyhow::Result<()> {
    let mut headers = Vec::new();
    for header in &args.headers {
        let Some((name, value)) = header.split_once(':') else {
            return Err(crate::config_cli::fail(
                2,
                format!("-H {header:?}: expected `name: value`"),
            ));
        };
        headers.push((name.trim().to_string(), value.trim().to_string()));
    }
    let mut request =
        Request::get(&args.url, &headers).map_err(|e| crate::config_cli::fail(2, e))?;
    request.now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mesh = pilot_server::mesh::load(args.mesh_config.as_deref());
    let mut store = discovery::file::FileStore::new();
    for (path, text) in collect(std::slice::from_ref(&args.config_dir)) {
        match text {
            Ok(text) => store.apply(&path, &text),
            Err(why) => eprintln!("{}: cannot read: {why}", path.display()),
        }
    }
    let snapshot = mesh.build(1, &store.config());
    // Keys at a `jwksUri` (or an issuer's discovery document) are fetched
    // as the control plane fetches them, so tokens verify as they would;
    // one that cannot be fetched verifies nothing, as in the control plane.
    let (keys, failures) = pilot_server::jwks::fetch_once(&snapshot).await;
    for (source, error) in failures.iter() {
        eprintln!(
            "warning: cannot fetch the JWT keys of {source:?}: {error}; its tokens are refused"
        );
    }
    let snapshot = snapshot.with_jwks(keys);
    let (name, namespace) = args.from.split_once('.').unwrap_or((&args.from, "default"));
    let mut proxy = pilot_core::diff::workload_proxies(&snapshot, &snapshot)
        .into_iter()
        .find(|p| p.metadata.workload == name && p.metadata.namespace == namespace)
        .ok_or_else(|| {
            crate::config_cli::fail(
                2,
                format!(
                    "no WorkloadEntry {namespace}/{name} in {}",
                    args.config_dir.display()
                ),
            )
        })?;
    proxy.metadata.capture = args.interception_mode == InterceptionMode::Redirect;
    let steps = explain(&snapshot, &proxy, &request);
    match args.output {
        crate::diff::DiffOutput::Text => {
            for s in &steps {
                match &s.source {
                    Some(source) => println!("{}: {}   [{source}]", s.step, s.detail),
                    None => println!("{}: {}", s.step, s.detail),
                }
            }
        }
        crate::diff::DiffOutput::Json => println!("{}", serde_json::to_string_pretty(&steps)?),
    }
    Ok(())
}
