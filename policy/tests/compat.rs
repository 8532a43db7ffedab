//! Every YAML file of the Istio compatibility corpus goes through the parser:
//! each document is decoded, skipped with a warning, or rejected with
//! diagnostics that say where. Never a panic, never an unlocated diagnostic.
//!
//! The corpus lives beside the checkout, at `../shared/compat/istio` from the
//! repository root, or wherever `BOWLINE_COMPAT_DIR` points. Where it is
//! absent, each test says so plainly and passes.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use policy::{Diagnostic, Kind, ParsedDocument, Severity, parse_documents};

/// Where the corpus is expected: `BOWLINE_COMPAT_DIR`, else
/// `../shared/compat/istio` from the repository root.
fn corpus_dir() -> PathBuf {
    match std::env::var_os("BOWLINE_COMPAT_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/compat/istio"),
    }
}

/// Whether the corpus is present; when it is not, says so on stdout and
/// stderr, so that a skipped check is never mistaken for a passing one.
fn corpus_present() -> bool {
    let dir = corpus_dir();
    if dir.is_dir() {
        return true;
    }
    let note = format!(
        "compat: skipped: Istio corpus not found at {} (set BOWLINE_COMPAT_DIR)",
        dir.display()
    );
    println!("{note}");
    eprintln!("{note}");
    false
}

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
    let dir = corpus_dir();
    let root = dir.as_path();
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
    if !corpus_present() {
        return;
    }
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
    let text = std::fs::read_to_string(corpus_dir().join(file)).unwrap();
    parse_documents(file, &text)
}

fn accepted(docs: &[ParsedDocument]) -> usize {
    docs.iter()
        .filter(|d| matches!(d, ParsedDocument::Object { .. }))
        .count()
}

#[test]
fn bookinfo_platform_services_decode_and_the_rest_is_skipped() {
    if !corpus_present() {
        return;
    }
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
    if !corpus_present() {
        return;
    }
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
    if !corpus_present() {
        return;
    }
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
    let docs = parse("traffic-extra/external-github.yaml");
    let github = service_entries(&docs);
    let ssh = github
        .iter()
        .find(|se| se.spec.ports[0].number == 22)
        .expect("the TCP/22 ServiceEntry");
    assert_eq!(ssh.spec.ports[0].protocol.as_deref(), Some("TCP"));
    assert_eq!(ssh.spec.addresses.len(), 18);
}

fn service_entries(docs: &[ParsedDocument]) -> Vec<&policy::networking::ServiceEntry> {
    docs.iter()
        .filter_map(|d| match d {
            ParsedDocument::Object {
                object: policy::Object::ServiceEntry(se),
                ..
            } => Some(se),
            _ => None,
        })
        .collect()
}

/// The VirtualService of a single-object text, decoded and valid.
fn virtual_service(file: &str, text: &str) -> policy::networking::VirtualServiceSpec {
    match parse_documents(file, text).as_slice() {
        [
            ParsedDocument::Object {
                object: policy::Object::VirtualService(vs),
                ..
            },
        ] => vs.spec.clone(),
        other => panic!("{file}: expected one valid VirtualService, got {other:#?}"),
    }
}

fn corpus_text(file: &str) -> String {
    std::fs::read_to_string(corpus_dir().join(file)).unwrap()
}

#[test]
fn deprecated_fault_percent_means_percentage() {
    if !corpus_present() {
        return;
    }
    for (file, delay, abort) in [
        (
            "bookinfo-networking/virtual-service-ratings-test-abort.yaml",
            None,
            Some((500, 100.0)),
        ),
        (
            "bookinfo-networking/virtual-service-ratings-test-delay.yaml",
            Some((7, 100.0)),
            None,
        ),
        (
            "traffic-extra/rule-fault-injection.yaml",
            Some((5, 100.0)),
            Some((503, 100.0)),
        ),
    ] {
        let text = corpus_text(file);
        let docs = parse_documents(file, &text);
        let fault = docs
            .iter()
            .find_map(|d| match d {
                ParsedDocument::Object {
                    object: policy::Object::VirtualService(vs),
                    ..
                } => vs.spec.http.iter().find_map(|r| r.fault.clone()),
                _ => None,
            })
            .unwrap_or_else(|| panic!("{file}: no decoded fault: {docs:#?}"));
        assert_eq!(
            fault
                .delay
                .map(|d| (d.fixed_delay.as_secs(), d.percentage.unwrap())),
            delay,
            "{file}"
        );
        assert_eq!(
            fault.abort.map(|a| (a.http_status, a.percentage.unwrap())),
            abort,
            "{file}"
        );
    }
}

#[test]
fn proto_field_names_decode() {
    if !corpus_present() {
        return;
    }
    let file = "traffic-extra/rule-fault-injection.yaml";
    let text = corpus_text(file);
    let docs = parse_documents(file, &text);
    let labels = docs.iter().find_map(|d| match d {
        ParsedDocument::Object {
            object: policy::Object::VirtualService(vs),
            ..
        } => vs
            .spec
            .http
            .iter()
            .flat_map(|r| &r.matches)
            .find(|m| !m.source_labels.is_empty())
            .map(|m| m.source_labels.clone()),
        _ => None,
    });
    assert_eq!(
        labels.and_then(|l| l.get("version").cloned()).as_deref(),
        Some("v1"),
        "source_labels decodes as sourceLabels"
    );
}

/// With its one unsupported part taken out (in memory), the rest of the
/// "every field" DestinationRule decodes, deprecated forms included.
#[test]
fn deprecated_consecutive_errors_and_minimum_ring_size_decode() {
    if !corpus_present() {
        return;
    }
    use policy::networking::{HashAlgorithm, HashKey, LbPolicy};
    let file = "traffic-extra/destination-rule-all.yaml";
    let text = corpus_text(file);
    let without_tls = text.replace("    tls:\n      mode: DISABLE\n", "");
    assert_ne!(text, without_tls, "the tls block is where it was");
    let docs = parse_documents(file, &without_tls);
    let dr = docs
        .iter()
        .find_map(|d| match d {
            ParsedDocument::Object {
                object: policy::Object::DestinationRule(dr),
                ..
            } => Some(dr),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no valid DestinationRule: {docs:#?}"));
    let policy = dr.spec.traffic_policy.as_deref().unwrap();
    let outlier = policy.outlier_detection.as_ref().unwrap();
    assert_eq!(outlier.consecutive_errors, Some(7));
    assert_eq!(outlier.max_ejection_percent, Some(11));
    let pool = policy.connection_pool.as_ref().unwrap();
    assert_eq!(pool.tcp.as_ref().unwrap().max_connections, Some(99));
    assert_eq!(
        pool.http.as_ref().unwrap().max_requests_per_connection,
        Some(65)
    );
    let subset = dr.spec.subsets.iter().find(|s| s.name == "v2").unwrap();
    let lb = subset
        .traffic_policy
        .as_ref()
        .and_then(|p| p.load_balancer.as_ref())
        .unwrap();
    let Some(LbPolicy::ConsistentHash(hash)) = &lb.policy else {
        panic!("{lb:#?}")
    };
    assert!(matches!(&hash.key, HashKey::HttpCookie { name, .. } if name == "Cookie"));
    assert_eq!(
        hash.algorithm,
        HashAlgorithm::RingHash {
            minimum_ring_size: Some(42)
        }
    );
}

/// With the ingress gateway taken out (in memory), the rest of the "every
/// field" VirtualService decodes.
#[test]
fn virtual_service_all_decodes_for_the_mesh() {
    if !corpus_present() {
        return;
    }
    let file = "traffic-extra/virtual-service-all.yaml";
    let text = corpus_text(file).replace("  - my-gateway\n", "");
    let spec = virtual_service(file, &text);
    assert_eq!(spec.http.len(), 2);
    assert_eq!(spec.http[1].route[0].weight, Some(80));
    assert!(spec.http[0].matches[0].headers.contains_key("cookie"));
}

/// The corpus has no `mirror_percent` nor `LEAST_CONN`: our own inputs.
#[test]
fn deprecated_mirror_percent_and_least_conn_decode() {
    if !corpus_present() {
        return;
    }
    use policy::networking::{LbPolicy, SimpleLb};
    let vs = "apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata: {name: shadow}
spec:
  hosts: [orders]
  http:
  - route: [{destination: {host: orders}}]
    mirror: {host: orders-shadow}
    mirror_percent: 25
";
    let spec = virtual_service("own.yaml", vs);
    assert_eq!(spec.http[0].mirror_percentage, Some(25.0));
    let dr = "apiVersion: networking.istio.io/v1beta1
kind: DestinationRule
metadata: {name: orders}
spec:
  host: orders
  trafficPolicy: {loadBalancer: {simple: LEAST_CONN}}
";
    let docs = parse_documents("own.yaml", dr);
    let [
        ParsedDocument::Object {
            object: policy::Object::DestinationRule(dr),
            warnings,
            ..
        },
    ] = docs.as_slice()
    else {
        panic!("{docs:#?}")
    };
    assert_eq!(
        dr.spec
            .traffic_policy
            .as_ref()
            .and_then(|p| p.load_balancer.as_ref())
            .and_then(|lb| lb.policy.clone()),
        Some(LbPolicy::Simple(SimpleLb::LeastRequest))
    );
    assert!(
        warnings
            .iter()
            .any(|w| w.message == "LEAST_CONN is deprecated; it means LEAST_REQUEST")
    );
}

#[test]
fn missing_final_newline_decodes() {
    if !corpus_present() {
        return;
    }
    let docs = parse("bookinfo-networking/fault-injection-details-v1.yaml");
    assert_eq!(docs.len(), 2);
    // The DestinationRule after the VirtualService, on the last line without a
    // newline, decodes.
    assert!(matches!(&docs[0], ParsedDocument::Object { .. }));
    assert!(matches!(&docs[1], ParsedDocument::Object { .. }));
}

/// The kinds of the traffic API this issue covers.
const TRAFFIC_KINDS: &[Kind] = &[
    Kind::VirtualService,
    Kind::DestinationRule,
    Kind::ServiceEntry,
    Kind::Sidecar,
];

/// Every use in the corpus of a traffic-API field that Bowline does not
/// support yet, as `file: document N: path: message`. This list is the gap:
/// a field that becomes supported must be removed from it, and a new
/// unsupported use in the corpus must be added.
const UNSUPPORTED_IN_CORPUS: &[&str] = &[
    // VirtualServices bound to ingress gateways (gateways come later).
    "bookinfo-networking/bookinfo-gateway.yaml: document 1: spec.gateways[0]: field is not supported yet (only the value \"mesh\" is)",
    "bookinfo-networking/bookinfo-gateway2.yaml: document 1: spec.gateways[0]: field is not supported yet (only the value \"mesh\" is)",
    "bookinfo-networking/certmanager-gateway.yaml: document 1: spec.gateways[0]: field is not supported yet (only the value \"mesh\" is)",
    // Upstream TLS settings belong to the security issue.
    "traffic-extra/helloworld-gateway.yaml: document 1: spec.gateways[0]: field is not supported yet (only the value \"mesh\" is)",
    // VirtualService `tls` routes (SNI routing).
    "traffic-extra/se-example.yaml: document 5: spec.tls: field is not supported yet",
    // ServiceEntry endpoints on Unix domain sockets.
    "traffic-extra/se-example.yaml: document 7: spec.endpoints[0].address: address must be an IP address; unix domain sockets are not supported yet, got \"unix:///var/run/example/socket\"",
    // Sidecar ingress listeners.
    "traffic-extra/sidecar-none-interception.yaml: document 0: spec.ingress: field is not supported yet",
    "traffic-extra/sidecar-none-interception.yaml: document 12: spec.tls: field is not supported yet",
    "traffic-extra/virtual-service-all.yaml: document 0: spec.gateways[0]: field is not supported yet (only the value \"mesh\" is)",
];

/// Documents that Istio itself rejects, with Bowline's error. This analyzer
/// test input has a wildcard host with DNS resolution and no endpoints, which
/// Istio's validation refuses ("hosts must be FQDN if no endpoints are
/// provided for resolution mode DNS").
const ISTIO_REJECTS_TOO: &[&str] = &[
    "security/analyzer-authorizationpolicies.yaml: document 3: spec.hosts[1]: a wildcard host cannot be resolved by DNS without endpoints; use resolution NONE",
];

/// The corpus's documents of `kinds`: how many of each kind are accepted
/// and rejected (printed as a table), and every error of the rejected ones
/// as `file: document N: path: message`. Every error must name a field.
fn tally(kinds: &[Kind]) -> (BTreeMap<Kind, (usize, usize)>, Vec<String>) {
    // kind -> (accepted, rejected)
    let mut summary: BTreeMap<Kind, (usize, usize)> = BTreeMap::new();
    let mut errors = Vec::new();
    for (file, text) in corpus() {
        for doc in parse_documents(&file, &text) {
            let Some(kind) = doc.key().map(|k| k.kind) else {
                continue;
            };
            if !kinds.contains(&kind) {
                continue;
            }
            let row = summary.entry(kind).or_default();
            let ParsedDocument::Rejected { diagnostics, .. } = &doc else {
                row.0 += 1;
                continue;
            };
            row.1 += 1;
            for d in diagnostics.iter().filter(|d| d.is_error()) {
                assert!(
                    !d.path.as_str().is_empty(),
                    "an error that names no field: {d}"
                );
                errors.push(format!(
                    "{file}: document {}: {}: {}",
                    doc.document(),
                    d.path,
                    d.message
                ));
            }
        }
    }
    println!("{:<24} {:>8} {:>8}", "kind", "accepted", "rejected");
    for (kind, (a, r)) in &summary {
        println!("{:<24} {a:>8} {r:>8}", kind.to_string());
    }
    (summary, errors)
}

#[test]
fn traffic_objects_are_accepted_or_named_as_unsupported() {
    if !corpus_present() {
        return;
    }
    let (_, errors) = tally(TRAFFIC_KINDS);
    let (unsupported, istio_rejects): (Vec<String>, Vec<String>) = errors
        .into_iter()
        .partition(|line| line.contains("not supported yet"));
    println!("\nnot supported yet:");
    for line in &unsupported {
        println!("  {line}");
    }
    println!("\nrejected by Istio too:");
    for line in &istio_rejects {
        println!("  {line}");
    }
    assert_eq!(unsupported, UNSUPPORTED_IN_CORPUS);
    assert_eq!(istio_rejects, ISTIO_REJECTS_TOO);
}

/// The kinds of Istio's security API.
const SECURITY_KINDS: &[Kind] = &[
    Kind::PeerAuthentication,
    Kind::AuthorizationPolicy,
    Kind::RequestAuthentication,
];

/// Every error the corpus's security objects get, as `file: document N:
/// path: message`. Uses of what Bowline does not support yet say "not
/// supported yet"; the rest Istio refuses as well. A field that becomes
/// supported must leave this list.
const SECURITY_REJECTIONS: &[&str] = &[
    // The newer serviceAccounts source field.
    "security/authz-http-allow-full-rule-in.yaml: document 0: spec.rules[0].from[0].source.serviceAccounts: field is not supported yet",
    // Path templates.
    "security/authz-http-allow-path-in.yaml: document 0: spec.rules[0].to[0].operation.paths[4]: \"/path/template/{*}\": path templates ({*}, {**}) are not supported yet",
    "security/authz-http-allow-path-in.yaml: document 0: spec.rules[0].to[0].operation.paths[5]: \"{**}/path/template\": path templates ({*}, {**}) are not supported yet",
    "security/authz-http-allow-path-in.yaml: document 0: spec.rules[0].to[0].operation.notPaths[4]: \"/not-path/template/{*}\": path templates ({*}, {**}) are not supported yet",
    "security/authz-http-allow-path-in.yaml: document 0: spec.rules[0].to[0].operation.notPaths[5]: \"/{**}/not-path/template\": path templates ({*}, {**}) are not supported yet",
    // Condition keys Bowline does not compile.
    "security/authz-http-single-policy-in.yaml: document 0: spec.rules[0].when[1].key: condition key \"destination.ip\" is not supported yet",
    "security/authz-tcp-audit-both-http-tcp-in.yaml: document 0: spec.rules[0].when[6].key: condition key \"request.auth.audiences\" is not supported yet",
    "security/authz-tcp-audit-both-http-tcp-in.yaml: document 0: spec.rules[0].when[7].key: condition key \"request.auth.presenter\" is not supported yet",
    "security/authz-tcp-audit-both-http-tcp-in.yaml: document 0: spec.rules[0].when[9].key: condition key \"destination.ip\" is not supported yet",
    "security/authz-tcp-audit-both-http-tcp-in.yaml: document 0: spec.rules[0].when[11].key: condition key \"connection.sni\" is not supported yet",
    "security/authz-tcp-audit-both-http-tcp-in.yaml: document 0: spec.rules[0].when[12].key: condition key \"experimental.envoy.filters.a.b[c]\" is not supported yet",
    "security/authz-tcp-deny-both-http-tcp-in.yaml: document 0: spec.rules[8].when[6].key: condition key \"request.auth.audiences\" is not supported yet",
    "security/authz-tcp-deny-both-http-tcp-in.yaml: document 0: spec.rules[8].when[7].key: condition key \"request.auth.presenter\" is not supported yet",
    "security/authz-tcp-deny-both-http-tcp-in.yaml: document 0: spec.rules[8].when[9].key: condition key \"destination.ip\" is not supported yet",
    "security/authz-tcp-deny-both-http-tcp-in.yaml: document 0: spec.rules[8].when[11].key: condition key \"connection.sni\" is not supported yet",
    "security/authz-tcp-deny-both-http-tcp-in.yaml: document 0: spec.rules[8].when[12].key: condition key \"experimental.envoy.filters.a.b[c]\" is not supported yet",
    // CUSTOM (external authorization).
    "security/authz-http-custom-simple-http-in.yaml: document 0: spec.action: action CUSTOM (external authorization) is not supported yet",
    "security/authz-http-custom-simple-http-in.yaml: document 1: spec.action: action CUSTOM (external authorization) is not supported yet",
    // Dry-run policies would be enforced: refused, not ignored.
    "security/authz-http-dry-run-allow-and-deny-in.yaml: document 0: metadata.annotations[istio.io/dry-run]: dry-run policies are not supported yet: this policy would be enforced, not only logged",
    "security/authz-http-dry-run-allow-and-deny-in.yaml: document 1: metadata.annotations[istio.io/dry-run]: dry-run policies are not supported yet: this policy would be enforced, not only logged",
    "security/authz-http-dry-run-mix-in.yaml: document 0: metadata.annotations[istio.io/dry-run]: dry-run policies are not supported yet: this policy would be enforced, not only logged",
];

#[test]
fn security_objects_are_accepted_or_named_as_unsupported() {
    if !corpus_present() {
        return;
    }
    let (summary, rejections) = tally(SECURITY_KINDS);
    for line in &rejections {
        println!("  {line}");
    }
    let mut expected: Vec<&str> = SECURITY_REJECTIONS.to_vec();
    expected.sort();
    let mut got: Vec<&str> = rejections.iter().map(String::as_str).collect();
    got.sort();
    assert_eq!(got, expected);
    assert_eq!(summary.get(&Kind::PeerAuthentication), Some(&(3, 0)));
    assert_eq!(summary.get(&Kind::RequestAuthentication), Some(&(1, 0)));
    // 40 AuthorizationPolicies, of which the 10 documents above are rejected.
    assert_eq!(summary.get(&Kind::AuthorizationPolicy), Some(&(30, 10)));
}

/// The dry-run mix: the policy with `istio.io/dry-run: "false"` is an
/// ordinary, enforced policy and decodes.
#[test]
fn a_dry_run_of_false_is_an_enforced_policy() {
    if !corpus_present() {
        return;
    }
    let docs = parse("security/authz-http-dry-run-mix-in.yaml");
    assert!(matches!(docs[0], ParsedDocument::Rejected { .. }));
    let ParsedDocument::Object {
        object: policy::Object::AuthorizationPolicy(ap),
        ..
    } = &docs[1]
    else {
        panic!("{docs:#?}")
    };
    assert_eq!(ap.spec.rules[0].to[0].paths, ["/another"]);
}

#[test]
fn peer_authentication_port_levels_are_keyed_by_target_port() {
    if !corpus_present() {
        return;
    }
    use policy::security::MtlsMode;
    let docs = parse("security/peer-authn-per-port-mtls.yaml");
    let ParsedDocument::Object {
        object: policy::Object::PeerAuthentication(pa),
        ..
    } = &docs[0]
    else {
        panic!("{docs:#?}")
    };
    assert_eq!(pa.spec.mtls, MtlsMode::Disable);
    assert_eq!(pa.spec.port_level_mtls.get(&8090), Some(&MtlsMode::Strict));
}
