//! One test per validation rule, each through the whole parse path.

use crate::diag::Severity;
use crate::object::{ParsedDocument, parse_documents};

/// `path: message` of every error in a single-document text.
pub(super) fn errors(text: &str) -> Vec<String> {
    found(text, Severity::Error)
}

pub(super) fn warnings(text: &str) -> Vec<String> {
    found(text, Severity::Warning)
}

fn found(text: &str, severity: Severity) -> Vec<String> {
    let docs = parse_documents("test.yaml", text);
    assert_eq!(docs.len(), 1, "{docs:#?}");
    let has_errors = docs[0].diagnostics().iter().any(|d| d.is_error());
    assert_eq!(
        has_errors,
        matches!(docs[0], ParsedDocument::Rejected { .. }),
        "errors iff rejected: {docs:#?}"
    );
    docs[0]
        .diagnostics()
        .iter()
        .filter(|d| d.severity == severity)
        .map(|d| format!("{}: {}", d.path, d.message))
        .collect()
}

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata:\n  name: reviews\nspec:\n";
const WORKLOAD: &str =
    "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata:\n  name: vm1\nspec:\n";
pub(super) const SERVICE_ENTRY: &str =
    "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata:\n  name: ext\nspec:\n";
pub(super) const VIRTUAL_SERVICE: &str =
    "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata:\n  name: reviews\nspec:\n";
pub(super) const DESTINATION_RULE: &str = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: reviews\nspec:\n";

fn vs_route(route: &str) -> String {
    format!("{VIRTUAL_SERVICE}  hosts: [reviews]\n  http:\n  - route:\n{route}")
}

#[test]
fn metadata_names_and_labels() {
    let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: 9Reviews\n  namespace: Prod\n  labels:\n    'bad key!': x\n    app: 'has space'\n  annotations:\n    'no/good/key': x\nspec:\n  selector: {app: r}\n  ports: [{port: 80}]\n";
    let e = errors(text);
    assert_eq!(e.len(), 5, "{e:#?}");
    assert!(e[0].starts_with("metadata.name: \"9Reviews\" is not a valid service name"));
    assert!(e[1].starts_with("metadata.namespace: \"Prod\" is not a valid DNS-1123 label"));
    assert!(e.iter().any(|m| {
        m.starts_with("metadata.labels[bad key!]: \"bad key!\" is not a valid label key")
    }));
    assert!(
        e.iter().any(
            |m| m.starts_with("metadata.labels[app]: \"has space\" is not a valid label value")
        )
    );
    assert!(
        e.iter()
            .any(|m| m.starts_with("metadata.annotations[no/good/key]:"))
    );
}

#[test]
fn service_ports_must_be_valid_and_unique() {
    let text = format!(
        "{SERVICE}  selector: {{app: reviews}}\n  ports:\n  - {{name: http, port: 0}}\n  - {{name: http, port: 9080, targetPort: 0}}\n  - {{port: 9080, targetPort: '8080'}}\n  - {{name: grpc, port: 81, targetPort: not_a_name}}\n"
    );
    let e = errors(&text);
    assert_eq!(
        e,
        vec![
            "spec.ports[0].port: port must be 1-65535, got 0",
            "spec.ports[1].targetPort: port must be 1-65535, got 0",
            "spec.ports[2].name: port name is required when the service has more than one port",
            "spec.ports[2].targetPort: \"8080\" is a quoted number; write the port number without quotes",
            "spec.ports[3].targetPort: \"not_a_name\" is not a valid port name: at most 15 lower-case letters, digits and '-', with at least one letter",
            "spec.ports[2].port: duplicate port number 9080, also at spec.ports[1].port",
            "spec.ports[1].name: duplicate port name http, also at spec.ports[0].name",
        ]
    );
}

#[test]
fn service_without_ports_or_selector() {
    assert_eq!(
        errors(&format!("{SERVICE}  ports: []\n  selector: {{app: x}}\n")),
        vec!["spec.ports: at least one port is required"]
    );
    let w = warnings(&format!(
        "{SERVICE}  ports: [{{port: 80, appProtocol: foo}}]\n"
    ));
    assert_eq!(w.len(), 2, "{w:#?}");
    assert_eq!(
        w[0],
        "spec.selector: no selector: the service selects no workloads"
    );
    assert!(w[1].starts_with(
        "spec.ports[0].appProtocol: appProtocol \"foo\" is not a protocol Istio knows"
    ));
}

#[test]
fn workload_entry_address_must_be_an_ip() {
    let e = errors(&format!("{WORKLOAD}  address: vm1.example.com\n"));
    assert_eq!(
        e,
        vec![
            "spec.address: address must be an IP address; host names are not supported here, got \"vm1.example.com\""
        ]
    );
    assert!(errors(&format!("{WORKLOAD}  address: 2001:db8::1\n")).is_empty());
    assert_eq!(
        errors(&format!("{WORKLOAD}  labels: {{app: x}}\n")),
        vec!["spec.address: address is required"]
    );
}

#[test]
fn workload_entry_ports_labels_account() {
    let text = format!(
        "{WORKLOAD}  address: 10.0.0.1\n  ports: {{http: 0, Bad: 80}}\n  labels: {{app: 'a b'}}\n  serviceAccount: Bad_SA\n  locality: a/b/c/d\n  weight: 0\n"
    );
    let e = errors(&text);
    assert_eq!(e.len(), 4, "{e:#?}");
    assert!(
        e.iter()
            .any(|m| m.starts_with("spec.ports[Bad]: \"Bad\" is not a valid DNS-1123 label"))
    );
    assert!(e.contains(&"spec.ports[http]: port must be 1-65535, got 0".to_string()));
    assert!(e.iter().any(|m| m.starts_with("spec.labels[app]:")));
    assert!(e.iter().any(|m| m.starts_with("spec.serviceAccount:")));
    let w = warnings(&format!(
        "{WORKLOAD}  address: 10.0.0.1\n  locality: a/b/c/d\n  weight: 0\n"
    ));
    assert_eq!(
        w,
        vec![
            "spec.locality: locality \"a/b/c/d\" has more than three parts (region/zone/subzone)",
            "spec.weight: weight 0 is treated as 1",
        ]
    );
}

#[test]
fn service_entry_needs_hosts_and_ports() {
    let e = errors(&format!("{SERVICE_ENTRY}  resolution: DNS\n"));
    assert_eq!(
        e,
        vec![
            "spec.hosts: at least one host is required",
            "spec.ports: at least one port is required",
        ]
    );
}

#[test]
fn service_entry_ports() {
    let text = format!(
        "{SERVICE_ENTRY}  hosts: [a.example.com, a.example.com, '*']\n  ports:\n  - {{number: 443, name: https, protocol: TLS}}\n  - {{number: 443, protocol: TCP, targetPort: 0}}\n  - {{number: 80, name: https}}\n"
    );
    let e = errors(&text);
    assert_eq!(
        e,
        vec![
            "spec.hosts[2]: host \"*\" would capture all traffic; name the hosts",
            "spec.hosts[1]: duplicate host a.example.com, also at spec.hosts[0]",
            "spec.ports[1].targetPort: port must be 1-65535, got 0",
            "spec.ports[1].name: port name is required",
            "spec.ports[1].number: duplicate port number 443, also at spec.ports[0].number",
            "spec.ports[2].name: duplicate port name https, also at spec.ports[0].name",
        ]
    );
    let w = warnings(&format!(
        "{SERVICE_ENTRY}  hosts: [a.example.com]\n  ports: [{{number: 80, name: web}}]\n"
    ));
    assert_eq!(
        w,
        vec!["spec.ports[0].protocol: no protocol: the port is treated as TCP"]
    );
}

#[test]
fn static_resolution_requires_ip_endpoints() {
    let text = format!(
        "{SERVICE_ENTRY}  hosts: [db.example.com]\n  ports: [{{number: 5432, name: tcp, protocol: TCP}}]\n  resolution: STATIC\n  endpoints:\n  - address: db1.example.com\n  - address: unix:///var/run/db.sock\n  - address: 10.0.0.7\n    ports: {{tcp: 15432, other: 1}}\n"
    );
    let e = errors(&text);
    assert_eq!(
        e,
        vec![
            "spec.endpoints[0].address: address must be an IP address; host names are not supported here, got \"db1.example.com\"",
            "spec.endpoints[1].address: address must be an IP address; unix domain sockets are not supported yet, got \"unix:///var/run/db.sock\"",
        ]
    );
    let w = warnings(&format!(
        "{SERVICE_ENTRY}  hosts: [db.example.com]\n  ports: [{{number: 5432, name: tcp, protocol: TCP}}]\n  resolution: STATIC\n  endpoints:\n  - address: 10.0.0.7\n    ports: {{tcp: 15432, other: 1}}\n"
    ));
    assert_eq!(
        w,
        vec![
            "spec.endpoints[0].ports[other]: port name \"other\" is not declared in spec.ports; it is unused"
        ]
    );
    let w = warnings(&format!(
        "{SERVICE_ENTRY}  hosts: [db.example.com]\n  ports: [{{number: 5432, name: tcp, protocol: TCP}}]\n  resolution: STATIC\n"
    ));
    assert_eq!(
        w,
        vec![
            "spec.endpoints: resolution STATIC with no endpoints: traffic to these hosts has nowhere to go"
        ]
    );
}

#[test]
fn dns_endpoints_may_be_host_names() {
    let base = format!(
        "{SERVICE_ENTRY}  hosts: [api.example.com]\n  ports: [{{number: 443, name: tls, protocol: TLS}}]\n  resolution: DNS\n"
    );
    assert!(
        errors(&format!(
            "{base}  endpoints:\n  - address: eu.api.example.com\n  - address: 1.2.3.4\n"
        ))
        .is_empty()
    );
    let e = errors(&format!(
        "{base}  endpoints:\n  - address: bad_host\n  - {{}}\n"
    ));
    assert_eq!(e.len(), 2, "{e:#?}");
    assert!(e[0].starts_with("spec.endpoints[0].address: \"bad_host\" is not a valid host"));
    assert_eq!(e[1], "spec.endpoints[1].address: address is required");
}

#[test]
fn resolution_rules() {
    let e = errors(&format!(
        "{SERVICE_ENTRY}  hosts: ['*.example.com']\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: DNS\n"
    ));
    assert_eq!(
        e,
        vec![
            "spec.hosts[0]: a wildcard host cannot be resolved by DNS without endpoints; use resolution NONE"
        ]
    );
    let e = errors(&format!(
        "{SERVICE_ENTRY}  hosts: [a.example.com]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  endpoints: [{{address: 1.1.1.1}}]\n"
    ));
    assert_eq!(
        e,
        vec!["spec.endpoints: endpoints are not allowed with resolution NONE"]
    );
}

#[test]
fn route_weights_must_sum_to_100() {
    let e = errors(&vs_route(
        "    - destination: {host: reviews, subset: v1}\n      weight: 80\n    - destination: {host: reviews, subset: v2}\n      weight: 10\n",
    ));
    assert_eq!(
        e,
        vec!["spec.http[0].route: weights must sum to 100, got 90"]
    );
    let e = errors(&vs_route(
        "    - destination: {host: reviews, subset: v1}\n      weight: 120\n    - destination: {host: reviews, subset: v2}\n",
    ));
    assert_eq!(
        e,
        vec![
            "spec.http[0].route[0].weight: weight must be 0-100, got 120",
            "spec.http[0].route: weights must sum to 100, got 120",
        ]
    );
    assert!(errors(&vs_route("    - destination: {host: reviews}\n")).is_empty());
    assert!(errors(&vs_route(
        "    - destination: {host: reviews, subset: v1}\n      weight: 50\n    - destination: {host: reviews, subset: v3}\n      weight: 50\n"
    ))
    .is_empty());
    let w = warnings(&vs_route(
        "    - destination: {host: reviews}\n      weight: 40\n",
    ));
    assert_eq!(
        w,
        vec![
            "spec.http[0].route[0].weight: weight 40 is ignored: a single destination gets all traffic"
        ]
    );
}

#[test]
fn destinations_need_hosts() {
    let e = errors(&vs_route(
        "    - destination: {subset: V1, port: {number: 0}}\n      weight: 50\n    - destination: {host: '*.x'}\n      weight: 50\n",
    ));
    assert_eq!(e.len(), 4, "{e:#?}");
    assert_eq!(
        e[0],
        "spec.http[0].route[0].destination.host: host is required"
    );
    assert!(e[1].starts_with(
        "spec.http[0].route[0].destination.subset: \"V1\" is not a valid DNS-1123 label"
    ));
    assert_eq!(
        e[2],
        "spec.http[0].route[0].destination.port.number: port must be 1-65535, got 0"
    );
    assert!(e[3].starts_with(
        "spec.http[0].route[1].destination.host: \"*.x\" is not a valid host: wildcards"
    ));
    assert_eq!(
        errors(&format!(
            "{VIRTUAL_SERVICE}  hosts: [reviews]\n  http:\n  - name: empty\n"
        )),
        vec!["spec.http[0].route: at least one destination is required"]
    );
}

#[test]
fn uri_matches() {
    let e = errors(&format!(
        "{VIRTUAL_SERVICE}  hosts: [reviews]\n  http:\n  - match:\n    - uri: {{regex: '/api/(v1'}}\n    - uri: {{}}\n    - uri: {{exact: /a, prefix: /b}}\n    route:\n    - destination: {{host: reviews}}\n"
    ));
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(e[0].starts_with(
        "spec.http[0].match[1].uri: exactly one of exact, prefix or regex must be set, got 0"
    ));
    assert!(e[1].starts_with(
        "spec.http[0].match[2].uri: exactly one of exact, prefix or regex must be set, got 2"
    ));
    assert!(
        e[2].starts_with("spec.http[0].match[0].uri.regex: invalid regular expression:"),
        "{}",
        e[2]
    );
    assert!(!e[2].contains('\n'));
}

#[test]
fn unreachable_routes_and_relative_paths_warn() {
    let w = warnings(&format!(
        "{VIRTUAL_SERVICE}  hosts: [reviews]\n  http:\n  - match: [{{uri: {{exact: api}}}}]\n    route: [{{destination: {{host: reviews}}}}]\n  - route: [{{destination: {{host: reviews}}}}]\n  - match: [{{uri: {{prefix: /x}}}}]\n    route: [{{destination: {{host: reviews}}}}]\n"
    ));
    assert_eq!(
        w,
        vec![
            "spec.http[0].match[0].uri.exact: \"api\" does not start with '/': no request path matches it",
            "spec.http[2]: route is unreachable: spec.http[1] matches every request",
        ]
    );
}

#[test]
fn virtual_service_hosts() {
    let e = errors(&format!("{VIRTUAL_SERVICE}  http: []\n"));
    assert_eq!(e, vec!["spec.hosts: at least one host is required"]);
    let e = errors(&format!("{VIRTUAL_SERVICE}  hosts: ['*', a, a, 'b..c']\n"));
    assert_eq!(e.len(), 3, "{e:#?}");
    assert!(e[0].starts_with(
        "spec.hosts[0]: wildcard host \"*\" is not allowed for a VirtualService bound to the mesh"
    ));
    assert!(e[1].starts_with("spec.hosts[3]: \"b..c\" is not a valid host"));
    assert_eq!(
        e[2],
        "spec.hosts[2]: duplicate host a, also at spec.hosts[1]"
    );
    assert_eq!(
        warnings(&format!("{VIRTUAL_SERVICE}  hosts: [a]\n")),
        vec!["spec.http: no http routes: the VirtualService routes nothing"]
    );
}

#[test]
fn destination_rule_subsets() {
    let e = errors(&format!(
        "{DESTINATION_RULE}  subsets:\n  - name: v1\n    labels: {{version: v1}}\n  - name: v1\n    labels: {{version: v2}}\n  - labels: {{version: v3}}\n  - name: v4\n  - name: V5\n    labels: {{version: v5}}\n"
    ));
    assert_eq!(e.len(), 5, "{e:#?}");
    assert_eq!(e[0], "spec.host: host is required");
    assert_eq!(e[1], "spec.subsets[2].name: subset name is required");
    assert_eq!(
        e[2],
        "spec.subsets[3].labels: a subset needs at least one label"
    );
    assert!(e[3].starts_with("spec.subsets[4].name: \"V5\" is not a valid DNS-1123 label"));
    assert_eq!(
        e[4],
        "spec.subsets[1].name: duplicate subset name v1, also at spec.subsets[0].name"
    );
    assert!(errors(&format!("{DESTINATION_RULE}  host: '*.local'\n")).is_empty());
}
