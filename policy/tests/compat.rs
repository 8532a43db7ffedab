//! Every YAML file of the Istio compatibility corpus goes through the parser:
//! each document is decoded, skipped with a warning, or rejected with
//! diagnostics that say where. Never a panic, never an unlocated diagnostic.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use policy::{Diagnostic, ParsedDocument, Severity, parse_documents};

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/compat/istio");

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries =
        std::fs::read_dir(dir).unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap().path();
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "yaml") {
            out.push(path);
        }
    }
}

fn corpus() -> Vec<(String, String)> {
    let root = Path::new(CORPUS);
    assert!(
        root.is_dir(),
        "the Istio compatibility corpus is missing: expected a directory at {}",
        root.display()
    );
    let mut files = Vec::new();
    yaml_files(root, &mut files);
    files.sort();
    assert!(!files.is_empty(), "no .yaml files under {}", root.display());
    files
        .into_iter()
        .map(|p| {
            let name = p.strip_prefix(root).unwrap().display().to_string();
            (name, std::fs::read_to_string(&p).unwrap())
        })
        .collect()
}

/// The `kind:` of a document for the summary, read from the diagnostics or the object.
fn kind_of(doc: &ParsedDocument) -> String {
    match doc {
        ParsedDocument::Object { object, .. } => object.kind().to_string(),
        ParsedDocument::Rejected { key: Some(key), .. } => key.kind.to_string(),
        ParsedDocument::Rejected { diagnostics, .. } => diagnostics[0]
            .message
            .strip_prefix("kind ")
            .and_then(|m| m.split_whitespace().next())
            .unwrap_or("(unknown)")
            .to_string(),
        ParsedDocument::Skipped { diagnostic, .. } => diagnostic
            .message
            .strip_prefix("kind ")
            .and_then(|m| m.split_whitespace().next())
            .unwrap_or("(unknown)")
            .to_string(),
    }
}

fn assert_located(file: &str, doc: &ParsedDocument, d: &Diagnostic) {
    assert_eq!(d.file, file, "diagnostic without its file: {d}");
    assert_eq!(
        d.document,
        Some(doc.document()),
        "diagnostic without its document: {d}"
    );
    let kind_level = d.message.starts_with("kind ")
        && (d.message.contains("is not supported yet") || d.message.contains("is ignored"));
    assert!(
        !d.path.as_str().is_empty() || kind_level,
        "diagnostic with neither a path nor an unsupported kind: {d}"
    );
    if let Some(key) = doc.key() {
        assert_eq!(
            d.object.as_ref(),
            Some(&key),
            "diagnostic without its object: {d}"
        );
    }
}

#[test]
fn every_corpus_document_is_decoded_skipped_or_located() {
    // kind -> (accepted, rejected, skipped)
    let mut summary: BTreeMap<String, (usize, usize, usize)> = BTreeMap::new();
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    for (file, text) in corpus() {
        let docs = parse_documents(&file, &text);
        assert!(!docs.is_empty(), "{file}: no documents");
        for doc in &docs {
            let row = summary.entry(kind_of(doc)).or_default();
            match doc {
                ParsedDocument::Object { warnings, .. } => {
                    row.0 += 1;
                    assert!(warnings.iter().all(|w| w.severity == Severity::Warning));
                }
                ParsedDocument::Rejected { diagnostics, .. } => {
                    row.1 += 1;
                    assert!(
                        diagnostics.iter().any(Diagnostic::is_error),
                        "{file}: rejected without an error"
                    );
                    for d in diagnostics.iter().filter(|d| d.is_error()) {
                        *reasons
                            .entry(format!("{}: {}", d.path, d.message))
                            .or_default() += 1;
                    }
                }
                ParsedDocument::Skipped { diagnostic, .. } => {
                    row.2 += 1;
                    assert_eq!(diagnostic.severity, Severity::Warning);
                }
            }
            for d in doc.diagnostics() {
                assert_located(&file, doc, d);
            }
        }
    }
    println!(
        "{:<24} {:>8} {:>8} {:>8}",
        "kind", "accepted", "rejected", "skipped"
    );
    for (kind, (a, r, s)) in &summary {
        println!("{kind:<24} {a:>8} {r:>8} {s:>8}");
    }
    println!("\nrejections:");
    for (reason, n) in &reasons {
        println!("{n:>4}  {reason}");
    }
}

fn parse(file: &str) -> Vec<ParsedDocument> {
    let text = std::fs::read_to_string(Path::new(CORPUS).join(file)).unwrap();
    parse_documents(file, &text)
}

fn accepted(docs: &[ParsedDocument]) -> usize {
    docs.iter()
        .filter(|d| matches!(d, ParsedDocument::Object { .. }))
        .count()
}

#[test]
fn bookinfo_platform_services_decode_and_the_rest_is_skipped() {
    let docs = parse("bookinfo-platform/bookinfo.yaml");
    assert_eq!(accepted(&docs), 4);
    let skipped = docs
        .iter()
        .filter(|d| matches!(d, ParsedDocument::Skipped { .. }))
        .count();
    assert_eq!(skipped, 10, "4 ServiceAccounts and 6 Deployments");
}

#[test]
fn v1alpha3_v1beta1_and_trailing_documents_decode() {
    assert_eq!(
        accepted(&parse(
            "bookinfo-networking/virtual-service-reviews-80-20.yaml"
        )),
        1
    );
    assert_eq!(
        accepted(&parse("bookinfo-networking/destination-rule-all.yaml")),
        4
    );
    assert_eq!(
        accepted(&parse("bookinfo-networking/virtual-service-all-v1.yaml")),
        4
    );
    assert_eq!(accepted(&parse("traffic-extra/static-weighted-se.yaml")), 1);
}

#[test]
fn lower_case_protocols_decode() {
    let docs = parse("bookinfo-networking/egress-rule-google-apis.yaml");
    let [
        ParsedDocument::Object {
            object: policy::Object::ServiceEntry(se),
            ..
        },
    ] = docs.as_slice()
    else {
        panic!("expected one ServiceEntry: {docs:#?}")
    };
    assert_eq!(se.spec.ports[0].protocol.as_deref(), Some("HTTP"));
}

#[test]
fn missing_final_newline_decodes() {
    let docs = parse("bookinfo-networking/fault-injection-details-v1.yaml");
    assert_eq!(docs.len(), 2);
    // The VirtualService uses fault injection, which is not supported yet; the
    // DestinationRule after it, on the last line without a newline, decodes.
    assert!(matches!(&docs[0], ParsedDocument::Rejected { .. }));
    assert!(matches!(&docs[1], ParsedDocument::Object { .. }));
}
