//! `bowline apply`, `bowline get` and `bowline delete`: the admin API's
//! config paths from the command line, as kubectl talks to an API server.
//!
//! ```text
//! apply -f PATH... [--dry-run] ──► POST /api/v1/apply (every file in one request: all or nothing)
//! get KIND [NAME] [-n NS] [-o table|json|yaml] ──► GET /api/v1/config/{group}/{kind}[/{ns}/{name}]
//! delete KIND NAME [-n NS] | -f PATH... ──► DELETE /api/v1/config/{group}/{kind}/{ns}/{name}
//! ```
//!
//! `--server URL` (`$BOWLINE_SERVER`, else http://127.0.0.1:15014) and
//! `--token T` (`$BOWLINE_TOKEN`). Exit codes: 0 success, 1 a request
//! failed, 2 bad usage, 3 validation errors; a validation error names the
//! file, the document in it, the object and the field.

use std::path::PathBuf;

use anyhow::Context;
use policy::Kind;
use serde_json::Value;

use crate::proxy_status::DEFAULT_SERVER;

/// An error with the exit code it stands for.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct Failure {
    pub(crate) code: u8,
    pub(crate) message: String,
}

pub(crate) fn fail(code: u8, message: impl Into<String>) -> anyhow::Error {
    Failure {
        code,
        message: message.into(),
    }
    .into()
}

#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Server {
    /// The control plane's admin API [env: BOWLINE_SERVER; default: http://127.0.0.1:15014]
    #[arg(long = "server", value_name = "URL")]
    server: Option<String>,
    /// The admin token [env: BOWLINE_TOKEN]
    #[arg(long)]
    token: Option<String>,
}

impl Server {
    fn url(&self, path: &str) -> String {
        let base = self
            .server
            .clone()
            .or_else(|| std::env::var("BOWLINE_SERVER").ok())
            .unwrap_or_else(|| DEFAULT_SERVER.to_string());
        format!("{}{path}", base.trim_end_matches('/'))
    }

    fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        let request = reqwest::Client::new().request(method, self.url(path));
        match self
            .token
            .clone()
            .or_else(|| std::env::var("BOWLINE_TOKEN").ok())
        {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    /// Sends `request`: the status and the JSON answer, or exit code 1.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<(u16, Value)> {
        let response = request
            .send()
            .await
            .map_err(|e| fail(1, format!("{}: {e}", self.url(""))))?;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        Ok((
            status,
            serde_json::from_str(&body).unwrap_or(Value::String(body)),
        ))
    }
}

/// Kubernetes mode: the API server, with the user's own kubeconfig (so
/// under the user's RBAC), instead of the control plane's admin API.
#[derive(clap::Args, Debug, Clone)]
pub(crate) struct Cluster {
    /// Talk to the Kubernetes API server, as kubectl does [kubeconfig:
    /// $KUBECONFIG, else ~/.kube/config, else in-cluster]
    #[arg(long)]
    kubernetes: bool,
    /// The kubeconfig to use (implies --kubernetes).
    #[arg(long, value_name = "PATH")]
    kubeconfig: Option<PathBuf>,
}

impl Cluster {
    pub(crate) fn client_wanted(&self) -> bool {
        self.kubernetes || self.kubeconfig.is_some()
    }

    pub(crate) async fn client(&self) -> anyhow::Result<discovery_kubernetes::KubeClient> {
        discovery_kubernetes::client(self.kubeconfig.as_deref())
            .await
            .map_err(|e| fail(1, format!("the Kubernetes API server: {e:#}")))
    }
}

#[derive(clap::Args, Debug)]
pub(crate) struct ApplyArgs {
    /// Files of mesh config (multi-document YAML or JSON).
    #[arg(short = 'f', long = "filename", required = true, num_args = 1..)]
    paths: Vec<PathBuf>,
    /// Validate and say what would change, without applying.
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    server: Server,
    #[command(flatten)]
    cluster: Cluster,
}

#[derive(clap::Args, Debug)]
pub(crate) struct GetArgs {
    /// The kind: as written (VirtualService), in lower case, plural, or
    /// Istio's short name (vs, dr, se, we, pa, ap, ra).
    kind: String,
    /// One object's name; all of the kind without it.
    name: Option<String>,
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// `table`, `json` or `yaml`.
    #[arg(short = 'o', long = "output", default_value = "table")]
    output: GetOutput,
    /// Every namespace (Kubernetes mode).
    #[arg(short = 'A', long)]
    all_namespaces: bool,
    #[command(flatten)]
    server: Server,
    #[command(flatten)]
    cluster: Cluster,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum GetOutput {
    Table,
    Json,
    Yaml,
}

#[derive(clap::Args, Debug)]
pub(crate) struct DeleteArgs {
    /// The kind, as `get` takes it (with NAME), unless -f names files.
    kind: Option<String>,
    name: Option<String>,
    #[arg(short = 'n', long, default_value = "default")]
    namespace: String,
    /// Delete the objects these files define.
    #[arg(short = 'f', long = "filename", num_args = 1..)]
    paths: Vec<PathBuf>,
    #[command(flatten)]
    server: Server,
    #[command(flatten)]
    cluster: Cluster,
}

/// The kind `name` means: as written, in lower case, plural or short name.
pub(crate) fn kind(name: &str) -> Option<Kind> {
    let lower = name.to_ascii_lowercase();
    Kind::ALL.into_iter().find(|k| {
        let (plural, short) = policy::crd::names(*k);
        k.as_str().to_ascii_lowercase() == lower || plural == lower || short.contains(&&*lower)
    })
}

fn object_path(kind: Kind, namespace: &str, name: &str) -> String {
    format!(
        "/api/v1/config/{}/{}/{namespace}/{name}",
        kind.group(),
        kind.as_str()
    )
}

/// The documents of `files`, one after another, and for each file where
/// its documents start in the whole: to name the file of a document index
/// the server reports (it counts every document, empty ones too).
fn bundle(files: &[(PathBuf, String)]) -> (String, Vec<(PathBuf, usize)>) {
    let mut body = String::new();
    let mut starts = Vec::new();
    let mut next = 0;
    for (path, text) in files {
        starts.push((path.clone(), next));
        next += serde_yaml::Deserializer::from_str(text).count();
        if !body.is_empty() {
            // A file that opens with its own marker needs none of ours.
            body.push_str(if text.trim_start().starts_with("---") {
                "\n"
            } else {
                "\n---\n"
            });
        }
        body.push_str(text);
    }
    (body, starts)
}

/// `FILE: document N` for document `index` of the bundle.
fn locate(starts: &[(PathBuf, usize)], index: usize) -> String {
    match starts.iter().rev().find(|(_, start)| *start <= index) {
        Some((path, start)) => format!("{}: document {}", path.display(), index - start + 1),
        None => format!("document {}", index + 1),
    }
}

/// One line per error of a 400: `FILE: document N: OBJECT: PATH: MESSAGE`.
pub(crate) fn error_lines(answer: &Value, starts: &[(PathBuf, usize)]) -> Vec<String> {
    answer["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|e| {
            let mut parts = Vec::new();
            match e["document"].as_u64() {
                Some(i) => parts.push(locate(starts, i as usize)),
                None => parts.push("request".to_string()),
            }
            if let Some(object) = e["object"].as_str() {
                parts.push(object.to_string());
            }
            if let Some(path) = e["path"].as_str().filter(|p| !p.is_empty()) {
                parts.push(path.to_string());
            }
            parts.push(e["message"].as_str().unwrap_or_default().to_string());
            parts.join(": ")
        })
        .collect()
}

fn read(paths: &[PathBuf]) -> anyhow::Result<Vec<(PathBuf, String)>> {
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))
                .map_err(|e| fail(2, format!("{e:#}")))?;
            Ok((p.clone(), text))
        })
        .collect()
}

pub(crate) async fn apply(args: ApplyArgs) -> anyhow::Result<()> {
    if args.cluster.client_wanted() {
        return apply_to_cluster(&args).await;
    }
    let files = read(&args.paths)?;
    let (body, starts) = bundle(&files);
    let path = if args.dry_run {
        "/api/v1/apply?dryRun=true"
    } else {
        "/api/v1/apply"
    };
    let (status, answer) = args
        .server
        .send(args.server.request(reqwest::Method::POST, path).body(body))
        .await?;
    match status {
        200 => {
            for a in answer["applied"].as_array().into_iter().flatten() {
                println!(
                    "{} {}/{} {}{}",
                    a["kind"].as_str().unwrap_or_default(),
                    a["namespace"].as_str().unwrap_or_default(),
                    a["name"].as_str().unwrap_or_default(),
                    a["action"].as_str().unwrap_or_default(),
                    if args.dry_run { " (dry run)" } else { "" }
                );
            }
            print!("{}", proxies_text(&answer["proxies"], args.dry_run));
            Ok(())
        }
        400 => {
            let lines = error_lines(&answer, &starts);
            for line in &lines {
                eprintln!("{line}");
            }
            Err(fail(
                3,
                format!("{} validation errors; nothing applied", lines.len()),
            ))
        }
        _ => Err(fail(1, message(status, &answer))),
    }
}

/// What an apply changes (or, dry, would change) in each sidecar, from the
/// answer's `proxies`: as `bowline diff` shows it, the unified diffs where
/// the answer has them (dry runs).
fn proxies_text(preview: &Value, dry_run: bool) -> String {
    let Some(changed) = preview["changed"].as_array() else {
        return String::new();
    };
    let mut out = String::new();
    for proxy in changed {
        let changes = proxy["changes"].as_array().cloned().unwrap_or_default();
        out.push_str(&format!(
            "{} ({}): {} resource(s)\n",
            proxy["workload"].as_str().unwrap_or_default(),
            proxy["proxy"].as_str().unwrap_or_default(),
            changes.len()
        ));
        for change in &changes {
            let sign = match change["change"].as_str() {
                Some("added") => '+',
                Some("removed") => '-',
                _ => '~',
            };
            out.push_str(&format!(
                "  {sign} {} {}\n",
                change["type"].as_str().unwrap_or_default(),
                change["name"].as_str().unwrap_or_default()
            ));
            for line in change["diff"].as_str().unwrap_or_default().lines() {
                out.push_str("    ");
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    out.push_str(&format!(
        "{} of {} sidecar(s) {}\n",
        changed.len(),
        preview["sidecars"].as_u64().unwrap_or_default(),
        if dry_run { "would change" } else { "change" }
    ));
    out
}

fn message(status: u16, answer: &Value) -> String {
    let text = answer["error"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| answer.to_string());
    format!("{status}: {text}")
}

pub(crate) async fn get(args: GetArgs) -> anyhow::Result<()> {
    let Some(kind) = kind(&args.kind) else {
        return Err(fail(2, format!("no kind {:?}", args.kind)));
    };
    if args.cluster.client_wanted() {
        return get_from_cluster(&args, kind).await;
    }
    let path = match &args.name {
        Some(name) => object_path(kind, &args.namespace, name),
        None => format!("/api/v1/config/{}/{}", kind.group(), kind.as_str()),
    };
    let (status, answer) = args
        .server
        .send(args.server.request(reqwest::Method::GET, &path))
        .await?;
    if status != 200 {
        return Err(fail(1, message(status, &answer)));
    }
    let items: Vec<Value> = match answer {
        Value::Array(items) => items,
        one => vec![one],
    };
    match args.output {
        GetOutput::Json => println!("{}", serde_json::to_string_pretty(&items)?),
        GetOutput::Yaml => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    println!("---");
                }
                print!("{}", serde_yaml::to_string(&item["object"])?);
            }
        }
        GetOutput::Table => print!("{}", table(&items)),
    }
    Ok(())
}

/// `NAMESPACE NAME VERSION FILE`, aligned.
pub(crate) fn table(items: &[Value]) -> String {
    let mut rows = vec![["NAMESPACE", "NAME", "VERSION", "FILE"].map(str::to_string)];
    for item in items {
        let s = |f: &str| item[f].as_str().unwrap_or_default().to_string();
        rows.push([s("namespace"), s("name"), s("resourceVersion"), s("file")]);
    }
    let widths: Vec<usize> = (0..4)
        .map(|i| rows.iter().map(|r| r[i].len()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row
            .iter()
            .zip(&widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

pub(crate) async fn delete(args: DeleteArgs) -> anyhow::Result<()> {
    let mut targets = Vec::new();
    match (&args.kind, &args.name, args.paths.is_empty()) {
        (Some(k), Some(name), true) => {
            let kind = kind(k).ok_or_else(|| fail(2, format!("no kind {k:?}")))?;
            targets.push((kind, args.namespace.clone(), name.clone()));
        }
        (None, None, false) => {
            for (path, text) in read(&args.paths)? {
                for parsed in policy::parse_documents(&path.display().to_string(), &text) {
                    if let Some(key) = parsed.key() {
                        targets.push((key.kind, key.namespace, key.name));
                    }
                }
            }
        }
        _ => return Err(fail(2, "delete KIND NAME [-n NS], or delete -f PATH...")),
    }
    if args.cluster.client_wanted() {
        let client = args.cluster.client().await?;
        let mut failed = 0;
        for (kind, namespace, name) in targets {
            match discovery_kubernetes::objects::delete(&client, kind, &namespace, &name).await {
                Ok(()) => println!("{kind} {namespace}/{name} deleted"),
                Err(error) => {
                    eprintln!("{kind} {namespace}/{name}: {error}");
                    failed += 1;
                }
            }
        }
        if failed > 0 {
            return Err(fail(1, format!("{failed} objects not deleted")));
        }
        return Ok(());
    }
    let mut failed = 0;
    for (kind, namespace, name) in targets {
        let path = object_path(kind, &namespace, &name);
        let (status, answer) = args
            .server
            .send(args.server.request(reqwest::Method::DELETE, &path))
            .await?;
        if status == 200 {
            println!("{kind} {namespace}/{name} deleted");
        } else {
            eprintln!("{kind} {namespace}/{name}: {}", message(status, &answer));
            failed += 1;
        }
    }
    if failed > 0 {
        return Err(fail(1, format!("{failed} objects not deleted")));
    }
    Ok(())
}

/// `bowline apply --kubernetes`: every document checked as the control
/// plane's admission webhook would (errors name file, document and field;
/// nothing is sent then), then applied server-side, all or none.
async fn apply_to_cluster(args: &ApplyArgs) -> anyhow::Result<()> {
    use discovery_kubernetes::objects::Applied;
    use serde::Deserialize;
    let files = read(&args.paths)?;
    let mut errors = Vec::new();
    let mut objects = Vec::new();
    for (path, text) in &files {
        let file = path.display().to_string();
        let raw: Vec<Option<Value>> = serde_yaml::Deserializer::from_str(text)
            .map(|doc| {
                serde_yaml::Value::deserialize(doc)
                    .ok()
                    .and_then(|v| serde_json::to_value(v).ok())
            })
            .collect();
        for parsed in policy::parse_documents(&file, text) {
            match parsed {
                policy::ParsedDocument::Object {
                    document, object, ..
                } => {
                    let key = object.key();
                    let Some(Some(raw)) = raw.get(document) else {
                        continue;
                    };
                    objects.push(Applied {
                        kind: key.kind,
                        namespace: key.namespace,
                        name: key.name,
                        document: raw.clone(),
                    });
                }
                policy::ParsedDocument::Rejected { diagnostics, .. } => errors.extend(
                    diagnostics
                        .iter()
                        .filter(|d| d.is_error())
                        .map(ToString::to_string),
                ),
                policy::ParsedDocument::Skipped { diagnostic, .. } => {
                    eprintln!("{diagnostic}");
                }
            }
        }
    }
    if !errors.is_empty() {
        for line in &errors {
            eprintln!("{line}");
        }
        return Err(fail(
            3,
            format!("{} validation errors; nothing applied", errors.len()),
        ));
    }
    let client = args.cluster.client().await?;
    match discovery_kubernetes::objects::apply(&client, &objects, args.dry_run).await {
        Ok(()) => {
            for o in &objects {
                println!(
                    "{} {}/{} applied{}",
                    o.kind,
                    o.namespace,
                    o.name,
                    if args.dry_run { " (dry run)" } else { "" }
                );
            }
            Ok(())
        }
        Err((object, error)) => Err(fail(
            1,
            format!(
                "{} {}/{}: the API server refused it: {error}; nothing applied",
                object.kind, object.namespace, object.name
            ),
        )),
    }
}

/// `bowline get --kubernetes`: the objects as the cluster holds them.
async fn get_from_cluster(args: &GetArgs, kind: Kind) -> anyhow::Result<()> {
    let client = args.cluster.client().await?;
    let namespace = (!args.all_namespaces).then_some(args.namespace.as_str());
    let objects =
        discovery_kubernetes::objects::get(&client, kind, namespace, args.name.as_deref())
            .await
            .map_err(|e| fail(1, format!("{kind}: {e}")))?;
    let values: Vec<Value> = objects
        .into_iter()
        .map(|mut o| {
            o.metadata.managed_fields = None;
            serde_json::to_value(o).unwrap_or_default()
        })
        .collect();
    match args.output {
        GetOutput::Json => println!("{}", serde_json::to_string_pretty(&values)?),
        GetOutput::Yaml => {
            for (i, value) in values.iter().enumerate() {
                if i > 0 {
                    println!("---");
                }
                print!("{}", serde_yaml::to_string(value)?);
            }
        }
        GetOutput::Table => {
            let items: Vec<Value> = values
                .iter()
                .map(|v| {
                    serde_json::json!({
                        "namespace": v["metadata"]["namespace"],
                        "name": v["metadata"]["name"],
                        "resourceVersion": v["metadata"]["resourceVersion"],
                        "file": "",
                    })
                })
                .collect();
            print!("{}", table(&items));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn starts_of(files: &[(&str, &str)]) -> (String, Vec<(PathBuf, usize)>) {
        let files: Vec<(PathBuf, String)> = files
            .iter()
            .map(|(p, t)| (PathBuf::from(p), t.to_string()))
            .collect();
        bundle(&files)
    }

    #[test]
    fn kinds_by_any_of_their_names() {
        for name in ["VirtualService", "virtualservice", "virtualservices", "vs"] {
            assert_eq!(kind(name), Some(Kind::VirtualService), "{name}");
        }
        assert_eq!(kind("ap"), Some(Kind::AuthorizationPolicy));
        assert_eq!(kind("Service"), Some(Kind::Service));
        assert_eq!(kind("pods"), None);
    }

    #[test]
    fn errors_name_the_file_and_its_document() {
        let (body, starts) = starts_of(&[
            ("a.yaml", "kind: A\n---\nkind: B\n"),
            ("b.yaml", "---\nkind: C\n"),
        ]);
        // The server counts the documents of the body as the files had them.
        assert_eq!(
            serde_yaml::Deserializer::from_str(&body).count(),
            3,
            "{body}"
        );
        let answer = serde_json::json!({"errors": [{
            "document": 2, "object": "DestinationRule shop/r",
            "path": "spec.host", "message": "missing"
        }]});
        assert_eq!(
            error_lines(&answer, &starts),
            ["b.yaml: document 1: DestinationRule shop/r: spec.host: missing"]
        );
        let first = serde_json::json!({"errors": [{"document": 1, "path": "", "message": "bad"}]});
        assert_eq!(error_lines(&first, &starts), ["a.yaml: document 2: bad"]);
    }
}

#[derive(clap::Args, Debug)]
pub(crate) struct TopologyArgs {
    /// `text`, `json` (as /api/v1/topology), or `dot` (Graphviz).
    #[arg(short = 'o', long = "output", default_value = "text")]
    output: TopologyOutput,
    #[command(flatten)]
    server: Server,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TopologyOutput {
    Text,
    Json,
    Dot,
}

pub(crate) async fn topology(args: TopologyArgs) -> anyhow::Result<()> {
    let (status, graph) = args
        .server
        .send(
            args.server
                .request(reqwest::Method::GET, "/api/v1/topology"),
        )
        .await?;
    if status != 200 {
        return Err(fail(1, message(status, &graph)));
    }
    match args.output {
        TopologyOutput::Json => println!("{}", serde_json::to_string_pretty(&graph)?),
        TopologyOutput::Text => print!("{}", topology_text(&graph)),
        TopologyOutput::Dot => print!("{}", topology_dot(&graph)),
    }
    Ok(())
}

/// What an edge says beside its ends: `v1 90% (uri prefix /api)`, `:8080
/// STRICT`, `:8080 STRICT authz DENY`.
fn edge_label(edge: &Value) -> String {
    let mut parts = Vec::new();
    if let Some(subset) = edge["subset"].as_str() {
        parts.push(subset.to_string());
    }
    if let Some(weight) = edge["weight"].as_u64() {
        parts.push(format!("{weight}%"));
    }
    if let Some(m) = edge["matches"].as_str().filter(|m| *m != "*") {
        parts.push(format!("({m})"));
    }
    if let Some(port) = edge["port"].as_u64() {
        parts.push(format!(":{port}"));
    }
    if let Some(mtls) = edge["mtls"].as_str() {
        parts.push(mtls.to_string());
    }
    if let Some(outcome) = edge["authz"]["outcome"].as_str() {
        parts.push(format!("authz {outcome}"));
    }
    parts.join(" ")
}

fn short(id: &str) -> &str {
    id.split_once(':').map_or(id, |(_, rest)| rest)
}

/// One line per edge: `FROM -route-> TO  LABEL`, grouped by source.
pub(crate) fn topology_text(graph: &Value) -> String {
    let mut out = String::new();
    for edge in graph["edges"].as_array().into_iter().flatten() {
        let (from, to) = (
            edge["from"].as_str().unwrap_or_default(),
            edge["to"].as_str().unwrap_or_default(),
        );
        out.push_str(&format!(
            "{} -{}-> {}   {}\n",
            short(from),
            edge["kind"].as_str().unwrap_or_default(),
            short(to),
            edge_label(edge)
        ));
    }
    out
}

/// Graphviz: services as boxes, workloads as ellipses.
pub(crate) fn topology_dot(graph: &Value) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\\\""));
    let mut out = String::from("digraph mesh {\n  rankdir=LR;\n");
    for node in graph["nodes"].as_array().into_iter().flatten() {
        let id = node["id"].as_str().unwrap_or_default();
        let shape = if node["kind"] == "service" {
            "box"
        } else {
            "ellipse"
        };
        out.push_str(&format!(
            "  {} [label={}, shape={shape}];\n",
            quote(id),
            quote(short(id))
        ));
    }
    for edge in graph["edges"].as_array().into_iter().flatten() {
        let style = if edge["kind"] == "route" {
            "solid"
        } else {
            "dashed"
        };
        out.push_str(&format!(
            "  {} -> {} [label={}, style={style}];\n",
            quote(edge["from"].as_str().unwrap_or_default()),
            quote(edge["to"].as_str().unwrap_or_default()),
            quote(&edge_label(edge))
        ));
    }
    out.push_str("}\n");
    out
}

#[cfg(test)]
mod topology_tests {
    use super::*;

    #[test]
    fn an_apply_prints_what_changes_in_each_sidecar() {
        let preview = serde_json::json!({
            "sidecars": 3,
            "changed": [{
                "proxy": "sidecar~127.0.1.2~reviews-v1.default~default.svc.cluster.local",
                "workload": "reviews-v1.default",
                "changes": [
                    {"type": "route", "name": "outbound", "change": "changed", "diff": "--- a\n+++ b\n-x\n+y\n"},
                    {"type": "cluster", "name": "outbound|9080|v3|reviews.default.svc.cluster.local", "change": "added"},
                ],
            }],
        });
        assert_eq!(
            proxies_text(&preview, true),
            "reviews-v1.default (sidecar~127.0.1.2~reviews-v1.default~default.svc.cluster.local): 2 resource(s)\n\
             \x20 ~ route outbound\n\
             \x20   --- a\n\
             \x20   +++ b\n\
             \x20   -x\n\
             \x20   +y\n\
             \x20 + cluster outbound|9080|v3|reviews.default.svc.cluster.local\n\
             1 of 3 sidecar(s) would change\n"
        );
        assert_eq!(
            proxies_text(&serde_json::json!({"sidecars": 2, "changed": []}), false),
            "0 of 2 sidecar(s) change\n"
        );
        assert_eq!(proxies_text(&Value::Null, false), "", "an older server");
    }

    fn graph() -> Value {
        serde_json::json!({
            "nodes": [
                {"id": "service:reviews.shop.svc.cluster.local", "kind": "service"},
                {"id": "workload:shop/reviews-v1", "kind": "workload"},
            ],
            "edges": [
                {"from": "service:reviews.shop.svc.cluster.local", "to": "service:reviews.shop.svc.cluster.local",
                 "kind": "route", "subset": "v1", "weight": 90, "matches": "uri prefix /api"},
                {"from": "service:reviews.shop.svc.cluster.local", "to": "workload:shop/reviews-v1",
                 "kind": "endpoint", "port": 8080, "mtls": "STRICT"},
                {"from": "service:reviews.shop.svc.cluster.local", "to": "workload:shop/reviews-v1",
                 "kind": "endpoint", "port": 9090, "mtls": "STRICT",
                 "authz": {"outcome": "DENY", "policies": ["AuthorizationPolicy shop/no-admin (DENY)"]}},
            ],
        })
    }

    #[test]
    fn text_and_dot_say_each_edge() {
        assert_eq!(
            topology_text(&graph()),
            "reviews.shop.svc.cluster.local -route-> reviews.shop.svc.cluster.local   v1 90% (uri prefix /api)\n\
             reviews.shop.svc.cluster.local -endpoint-> shop/reviews-v1   :8080 STRICT\n\
             reviews.shop.svc.cluster.local -endpoint-> shop/reviews-v1   :9090 STRICT authz DENY\n"
        );
        let dot = topology_dot(&graph());
        assert!(dot.starts_with("digraph mesh {"), "{dot}");
        assert!(
            dot.contains("\"service:reviews.shop.svc.cluster.local\" -> \"workload:shop/reviews-v1\" [label=\":8080 STRICT\", style=dashed];"),
            "{dot}"
        );
        assert!(dot.contains("shape=box"), "{dot}");
    }
}
