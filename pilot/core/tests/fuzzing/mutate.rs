//! The robustness property and the mutator that feeds it, shared by the
//! bounded run in the test suite (`pilot/core/tests/robustness.rs`) and the
//! cargo-fuzz target (`pilot/core/fuzz/fuzz_targets/pipeline.rs`).
//!
//! ```text
//! seed (golden input | Istio corpus file) ──► mutate (YAML-aware or raw text)
//!   ──► FileStore::apply ──► Snapshot::build ──► compile_consistent per proxy
//! ```
//!
//! The property: nothing panics, every compiled set passes the consistency
//! check, and every diagnostic names its file and says where in it.

#![allow(dead_code, unreachable_pub)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use arbitrary::{Result, Unstructured};
use discovery::file::FileStore;
use pilot_core::compile::compile_consistent;
use pilot_core::proxy::{DEFAULT_OUTBOUND_PORT, NodeMetadata, Proxy};
use pilot_core::snapshot::Snapshot;
use policy::Object;
use serde_yaml::{Mapping, Value};

/// The file name every mutated input is applied as.
pub const FILE: &str = "fuzz.yaml";

/// Seeds: every golden input, and the Istio corpus where it is present
/// (`$BOWLINE_COMPAT_DIR`, else `../shared/compat/istio` beside the checkout).
pub fn seeds() -> Vec<(String, String)> {
    let mut dirs = vec![repository().join("tests/golden")];
    dirs.push(compat_dir());
    let mut files = Vec::new();
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        yaml_files(dir, &mut files);
    }
    files.sort();
    files
        .into_iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).ok()?;
            Some((p.display().to_string(), text))
        })
        .collect()
}

/// Where the Istio corpus is expected.
pub fn compat_dir() -> PathBuf {
    match std::env::var_os("BOWLINE_COMPAT_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => repository().join("../shared/compat/istio"),
    }
}

/// The checkout's root: the nearest directory above this crate (or above
/// the fuzz crate, which includes this file too) holding the golden inputs.
fn repository() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest
        .ancestors()
        .find(|dir| dir.join("tests/golden").is_dir())
        .unwrap_or(manifest)
        .to_path_buf()
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for path in entries.flatten().map(|e| e.path()) {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

/// One input: a seed picked and mutated by the bytes in `u`.
pub fn input(seeds: &[(String, String)], u: &mut Unstructured<'_>) -> Result<String> {
    if seeds.is_empty() || u.ratio(1, 16)? {
        // Raw text: whatever the bytes say.
        let text: String = u.arbitrary()?;
        return Ok(text);
    }
    let (_, seed) = &seeds[u.choose_index(seeds.len())?];
    let rounds = u.int_in_range(1..=4)?;
    let mut text = seed.clone();
    for _ in 0..rounds {
        text = if u.ratio(3, 4)? {
            mutate_yaml(&text, u)?
        } else {
            mutate_text(&text, u)?
        };
    }
    Ok(text)
}

/// Byte-level edits on line boundaries: delete, duplicate or swap lines,
/// truncate, or splice in arbitrary text.
fn mutate_text(text: &str, u: &mut Unstructured<'_>) -> Result<String> {
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    if lines.is_empty() {
        return u.arbitrary();
    }
    let i = u.choose_index(lines.len())?;
    match u.int_in_range(0..=4)? {
        0 => {
            lines.remove(i);
        }
        1 => {
            let line = lines[i].clone();
            lines.insert(i, line);
        }
        2 => {
            let j = u.choose_index(lines.len())?;
            lines.swap(i, j);
        }
        3 => lines.truncate(i),
        _ => {
            let junk: String = u.arbitrary()?;
            lines.insert(i, junk);
        }
    }
    Ok(lines.join("\n"))
}

/// Structural edits: each document is parsed, one node replaced, removed or
/// given a new key, and the stream written back.
fn mutate_yaml(text: &str, u: &mut Unstructured<'_>) -> Result<String> {
    let mut documents: Vec<Value> = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        match serde::Deserialize::deserialize(document) {
            Ok(value) => documents.push(value),
            Err(_) => return mutate_text(text, u),
        }
    }
    if documents.is_empty() {
        return mutate_text(text, u);
    }
    let d = u.choose_index(documents.len())?;
    let mut nodes = 0;
    count_nodes(&documents[d], &mut nodes);
    let target = u.choose_index(nodes.max(1))?;
    let mut seen = 0;
    edit_node(&mut documents[d], target, &mut seen, u)?;
    let mut out = String::new();
    for document in &documents {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(document).unwrap_or_default());
    }
    Ok(out)
}

fn count_nodes(value: &Value, n: &mut usize) {
    *n += 1;
    match value {
        Value::Mapping(m) => m.values().for_each(|v| count_nodes(v, n)),
        Value::Sequence(s) => s.iter().for_each(|v| count_nodes(v, n)),
        Value::Tagged(t) => count_nodes(&t.value, n),
        _ => {}
    }
}

/// Edits the `target`-th node in depth-first order.
fn edit_node(
    value: &mut Value,
    target: usize,
    seen: &mut usize,
    u: &mut Unstructured<'_>,
) -> Result<bool> {
    if *seen == target {
        match u.int_in_range(0..=3)? {
            0 | 1 => *value = interesting_value(u)?,
            2 => match value {
                Value::Mapping(m) if !m.is_empty() => {
                    let keys: Vec<Value> = m.keys().cloned().collect();
                    let k = &keys[u.choose_index(keys.len())?];
                    m.remove(k);
                }
                Value::Sequence(s) if !s.is_empty() => {
                    let i = u.choose_index(s.len())?;
                    let copy = s[i].clone();
                    if u.arbitrary()? {
                        s.push(copy);
                    } else {
                        s.remove(i);
                    }
                }
                _ => *value = interesting_value(u)?,
            },
            _ => {
                if let Value::Mapping(m) = value {
                    let key = *u.choose(FIELD_NAMES)?;
                    m.insert(Value::String(key.to_string()), interesting_value(u)?);
                } else {
                    *value = interesting_value(u)?;
                }
            }
        }
        return Ok(true);
    }
    *seen += 1;
    match value {
        Value::Mapping(m) => {
            for (_, v) in m.iter_mut() {
                if edit_node(v, target, seen, u)? {
                    return Ok(true);
                }
            }
        }
        Value::Sequence(s) => {
            for v in s.iter_mut() {
                if edit_node(v, target, seen, u)? {
                    return Ok(true);
                }
            }
        }
        Value::Tagged(t) => return edit_node(&mut t.value, target, seen, u),
        _ => {}
    }
    Ok(false)
}

/// Field names that appear in the APIs, so that insertions reach deep code.
const FIELD_NAMES: &[&str] = &[
    "hosts",
    "host",
    "http",
    "match",
    "route",
    "destination",
    "subset",
    "port",
    "number",
    "weight",
    "headers",
    "request",
    "response",
    "set",
    "add",
    "remove",
    "uri",
    "exact",
    "prefix",
    "regex",
    "ignoreUriCase",
    "withoutHeaders",
    "queryParams",
    "sourceLabels",
    "timeout",
    "retries",
    "attempts",
    "perTryTimeout",
    "retryOn",
    "fault",
    "delay",
    "abort",
    "percentage",
    "value",
    "httpStatus",
    "fixedDelay",
    "mirror",
    "mirrorPercentage",
    "redirect",
    "rewrite",
    "directResponse",
    "body",
    "string",
    "status",
    "corsPolicy",
    "trafficPolicy",
    "loadBalancer",
    "simple",
    "consistentHash",
    "localityLbSetting",
    "failover",
    "failoverPriority",
    "distribution",
    "connectionPool",
    "outlierDetection",
    "consecutiveErrors",
    "consecutive5xxErrors",
    "portLevelSettings",
    "subsets",
    "labels",
    "selector",
    "ports",
    "targetPort",
    "address",
    "endpoints",
    "resolution",
    "location",
    "exportTo",
    "name",
    "namespace",
    "workloadSelector",
    "egress",
    "tls",
    "gateways",
];

fn interesting_value(u: &mut Unstructured<'_>) -> Result<Value> {
    Ok(match u.int_in_range(0..=17)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::Number(u.arbitrary::<i64>()?.into()),
        3 => Value::Number(u.arbitrary::<u64>()?.into()),
        4 => Value::Number(serde_yaml::Number::from(u.arbitrary::<f64>()?)),
        5 => Value::String(u.arbitrary()?),
        6 => Value::Sequence(Vec::new()),
        7 => Value::Mapping(Mapping::new()),
        8 => Value::String((*u.choose(&["*", "~", ".", "*.", "*.*", "a.*", ":80"])?).into()),
        9 => Value::String(
            (*u.choose(&[
                "-1s",
                "0s",
                "1.5ms",
                "999999999999s",
                "1h",
                "1",
                "s",
                "1e9s",
            ])?)
            .into(),
        ),
        10 => Value::String((*u.choose(&["(", "(?i)a", "a{1001}", "[z-a]", ".*", "\\"])?).into()),
        11 => Value::String("x".repeat(u.int_in_range(1000..=70_000)?)),
        12 => {
            Value::Number((*u.choose(&[0i64, -1, 65535, 65536, 100, 101, 4_294_967_296])?).into())
        }
        13 => Value::String((*u.choose(&["127.0.0.1", "::1", "unix:///x", "10.0.0.1/8"])?).into()),
        14 => {
            let mut m = Mapping::new();
            m.insert(
                Value::String((*u.choose(FIELD_NAMES)?).into()),
                Value::String(u.arbitrary()?),
            );
            Value::Mapping(m)
        }
        15 => Value::Sequence(vec![Value::Mapping(Mapping::new()), Value::Null]),
        16 => Value::String("ünïcödé\u{0}\u{feff}".into()),
        _ => Value::String((*u.choose(&["HTTP", "TCP", "GRPC", "STATIC", "DNS", "NONE"])?).into()),
    })
}

/// Runs the whole pipeline on `text` as the file [`FILE`] and checks the
/// property. Panics (with the reason) when it does not hold.
pub fn check(text: &str) {
    let mut store = FileStore::default();
    store.apply(Path::new(FILE), text);
    let config = store.config();
    for d in &config.diagnostics {
        assert_eq!(d.file, FILE, "a diagnostic without its file: {d}");
        assert!(
            d.document.is_some() || d.message.contains("line"),
            "a diagnostic that says neither document nor line: {d}"
        );
    }
    let snapshot = Snapshot::build(1, &config);
    for d in &snapshot.diagnostics {
        assert!(
            !d.file.is_empty() || d.object.is_none(),
            "a finding about an object that does not name its file: {d}"
        );
    }
    for proxy in proxies(&config.objects) {
        if let Err(inconsistent) = compile_consistent(&snapshot, &proxy) {
            panic!("proxy {}: {inconsistent}", proxy.id);
        }
    }
}

/// A few proxies: the first WorkloadEntries of the config (their labels and
/// namespaces reach sourceLabels, exportTo and locality code), and one
/// stranger in a namespace of its own.
fn proxies(objects: &[std::sync::Arc<Object>]) -> Vec<Proxy> {
    let mut out = Vec::new();
    for object in objects.iter().take(200) {
        if let Object::WorkloadEntry(we) = object.as_ref() {
            let Ok(address) = we.spec.address.parse() else {
                continue;
            };
            let mut p = proxy(
                &we.meta.namespace,
                &we.meta.name,
                address,
                we.spec.labels.clone(),
            );
            for &port in we.spec.ports.values() {
                p.metadata
                    .app_ports
                    .insert(port, std::net::SocketAddr::new(address, 15080));
            }
            out.push(p);
            if out.len() == 3 {
                break;
            }
        }
    }
    out.push(proxy(
        "elsewhere",
        "stranger",
        [127, 0, 9, 9].into(),
        BTreeMap::new(),
    ));
    out
}

fn proxy(
    namespace: &str,
    name: &str,
    address: std::net::IpAddr,
    labels: BTreeMap<String, String>,
) -> Proxy {
    Proxy::new(NodeMetadata {
        namespace: namespace.to_string(),
        workload: name.to_string(),
        address,
        labels,
        service_account: None,
        app_address: Some(std::net::SocketAddr::new(address, 15080)),
        app_ports: BTreeMap::new(),
        outbound_port: DEFAULT_OUTBOUND_PORT,
        generator: Default::default(),
        sds: false,
        capture: false,
    })
}
