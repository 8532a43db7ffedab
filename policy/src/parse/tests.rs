//! Splitting, routing and strict decoding, with our own YAML.

use super::*;
use crate::diag::Severity;
use crate::networking::{Location, Resolution, StringMatch};
use crate::service::TargetPort;

fn only(text: &str) -> ParsedDocument {
    let mut docs = parse_documents("f.yaml", text);
    assert_eq!(docs.len(), 1, "{docs:#?}");
    docs.remove(0)
}

/// The single error of a rejected single-document text, as `path: message`.
fn rejection(text: &str) -> String {
    match only(text) {
        ParsedDocument::Rejected { diagnostics, .. } => {
            let errors: Vec<_> = diagnostics.iter().filter(|d| d.is_error()).collect();
            assert_eq!(errors.len(), 1, "{errors:#?}");
            format!("{}: {}", errors[0].path, errors[0].message)
        }
        other => panic!("expected a rejection, got {other:#?}"),
    }
}

fn object(text: &str) -> Object {
    match only(text) {
        ParsedDocument::Object { object, .. } => object,
        other => panic!("expected an object, got {other:#?}"),
    }
}

const REVIEWS_VS: &str = "apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: reviews
  namespace: shop
spec:
  hosts: [reviews]
  http:
  - name: jason
    match:
    - uri:
        prefix: /api
    route:
    - destination:
        host: reviews
        subset: v2
        port: {number: 9080}
      weight: 75
    - destination:
        host: reviews
        subset: v3
      weight: 25
";

#[test]
fn decodes_a_virtual_service() {
    let Object::VirtualService(vs) = object(REVIEWS_VS) else {
        panic!("not a VirtualService")
    };
    assert_eq!(vs.meta.namespace, "shop");
    let route = &vs.spec.http[0];
    assert_eq!(route.name.as_deref(), Some("jason"));
    assert_eq!(
        route.matches[0].uri,
        Some(StringMatch::Prefix("/api".into()))
    );
    assert_eq!(route.route[0].destination.port, Some(9080));
    assert_eq!(route.route[0].destination.subset.as_deref(), Some("v2"));
    assert_eq!(route.route[1].weight, Some(25));
}

#[test]
fn decodes_a_service_with_named_and_numbered_target_ports() {
    let Object::Service(svc) = object(
        "apiVersion: v1\nkind: Service\nmetadata: {name: reviews}\nspec:\n  type: ClusterIP\n  clusterIP: 10.0.0.1\n  sessionAffinity: None\n  selector: {app: reviews}\n  ports:\n  - {name: http, port: 9080, targetPort: web, appProtocol: http, protocol: TCP}\n  - {name: grpc, port: 9090, targetPort: 19090, nodePort: 30000}\n",
    ) else {
        panic!("not a Service")
    };
    assert_eq!(svc.meta.namespace, "default");
    assert_eq!(
        svc.spec.ports[0].target_port,
        Some(TargetPort::Name("web".into()))
    );
    assert_eq!(svc.spec.ports[0].app_protocol.as_deref(), Some("http"));
    assert_eq!(
        svc.spec.ports[1].target_port,
        Some(TargetPort::Number(19090))
    );
}

#[test]
fn decodes_snake_case_and_lower_case_enums() {
    let Object::ServiceEntry(se) = object(
        "apiVersion: networking.istio.io/v1beta1\nkind: ServiceEntry\nmetadata: {name: db}\nspec:\n  hosts: [db.example.com]\n  location: mesh_internal\n  resolution: static\n  ports:\n  - {number: 5432, name: tcp, protocol: tcp, target_port: 15432}\n  endpoints:\n  - address: 10.0.0.1\n    service_account: db\n",
    ) else {
        panic!("not a ServiceEntry")
    };
    assert_eq!(se.spec.location, Location::MeshInternal);
    assert_eq!(se.spec.resolution, Resolution::Static);
    assert_eq!(se.spec.ports[0].protocol.as_deref(), Some("TCP"));
    assert_eq!(se.spec.ports[0].target_port, Some(15432));
    assert_eq!(se.spec.endpoints[0].service_account.as_deref(), Some("db"));
}

#[test]
fn decodes_a_workload_entry() {
    let Object::WorkloadEntry(we) = object(
        "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: vm1, namespace: shop}\nspec:\n  address: 10.0.0.9\n  labels: {app: reviews}\n  ports: {http: 8080}\n  serviceAccount: reviews\n  locality: eu/west/a\n  weight: 3\n",
    ) else {
        panic!("not a WorkloadEntry")
    };
    assert_eq!(we.spec.ports.get("http"), Some(&8080));
    assert_eq!(we.spec.weight, Some(3));
    assert_eq!(we.spec.locality.as_deref(), Some("eu/west/a"));
}

#[test]
fn unknown_fields_name_their_full_path() {
    let text = REVIEWS_VS.replace("        subset: v3", "        hostt: v3");
    assert_eq!(
        rejection(&text),
        "spec.http[0].route[1].destination.hostt: unknown field"
    );
    let text = REVIEWS_VS.replace("  hosts: [reviews]", "  hosts: [reviews]\n  hots: [x]");
    assert_eq!(rejection(&text), "spec.hots: unknown field");
    let text = REVIEWS_VS.replace("kind: VirtualService", "kind: VirtualService\nextra: 1");
    assert_eq!(rejection(&text), "extra: unknown field");
}

#[test]
fn unsupported_istio_fields_have_their_own_message() {
    let text = REVIEWS_VS.replace(
        "  - name: jason",
        "  - name: jason\n    mirrors: [{destination: {host: m}}]",
    );
    assert_eq!(
        rejection(&text),
        "spec.http[0].mirrors: field is not supported yet"
    );
    let text = REVIEWS_VS.replace(
        "        prefix: /api",
        "        prefix: /api\n      stat_prefix: x",
    );
    assert_eq!(
        rejection(&text),
        "spec.http[0].match[0].stat_prefix: field is not supported yet"
    );
    let text = REVIEWS_VS.replace(
        "  - name: jason",
        "  - name: jason\n    delegate: {name: d}",
    );
    assert_eq!(
        rejection(&text),
        "spec.http[0].delegate: field is not supported yet"
    );
    let text = REVIEWS_VS.replace(
        "  hosts: [reviews]",
        "  hosts: [reviews]\n  gateways: [mesh, my-gw]",
    );
    assert_eq!(
        rejection(&text),
        "spec.gateways[1]: field is not supported yet (only the value \"mesh\" is)"
    );
    let text = REVIEWS_VS.replace(
        "  hosts: [reviews]",
        "  hosts: [reviews]\n  gateways: [mesh]\n  exportTo: ['*']\n  tcp: []",
    );
    assert!(matches!(only(&text), ParsedDocument::Object { .. }));
    let dr = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: r\n  trafficPolicy:\n    tunnel: {protocol: CONNECT}\n";
    assert_eq!(
        rejection(dr),
        "spec.trafficPolicy.tunnel: field is not supported yet"
    );
    let we = "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: w}\nspec:\n  address: 1.2.3.4\n  network: n1\n";
    assert_eq!(rejection(we), "spec.network: field is not supported yet");
}

#[test]
fn type_errors_name_their_path() {
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  selector: {app: a}\n  ports:\n  - port: abc\n";
    assert_eq!(
        rejection(svc),
        "spec.ports[0].port: expected a port number 1-65535, got \"abc\""
    );
    let text = REVIEWS_VS.replace("weight: 75", "weight: lots");
    assert_eq!(
        rejection(&text),
        "spec.http[0].route[0].weight: expected a non-negative integer, got \"lots\""
    );
    let se = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  hosts: [a.b]\n  resolution: DNS_ROUND_ROBIN\n";
    assert_eq!(
        rejection(se),
        "spec.resolution: resolution DNS_ROUND_ROBIN is not supported yet"
    );
    let se = se.replace("DNS_ROUND_ROBIN", "dnss");
    assert_eq!(
        rejection(&se),
        "spec.resolution: unknown value \"dnss\"; expected one of NONE, STATIC, DNS"
    );
    let meta =
        "apiVersion: v1\nkind: Service\nmetadata: {name: a, labels: {version: 1}}\nspec: {}\n";
    assert_eq!(
        rejection(meta),
        "metadata.labels[version]: expected a string, got 1"
    );
}

#[test]
fn unknown_protocols_and_udp_are_errors() {
    let se = "apiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {name: a}\nspec:\n  hosts: [a.b]\n  ports: [{number: 53, name: dns, protocol: udp}, {number: 80, name: web, protocol: htp}]\n";
    let ParsedDocument::Rejected { diagnostics, .. } = only(se) else {
        panic!("expected a rejection")
    };
    let messages: Vec<String> = diagnostics
        .iter()
        .map(|d| format!("{}: {}", d.path, d.message))
        .collect();
    assert_eq!(
        messages[0],
        "spec.ports[0].protocol: protocol UDP is not supported yet"
    );
    assert!(messages[1].starts_with("spec.ports[1].protocol: unknown protocol \"htp\""));
    let svc = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\nspec:\n  selector: {app: a}\n  ports: [{port: 53, protocol: UDP}]\n";
    assert_eq!(
        rejection(svc),
        "spec.ports[0].protocol: protocol UDP is not supported yet"
    );
}

#[test]
fn kinds_are_routed() {
    let gw =
        "apiVersion: networking.istio.io/v1alpha3\nkind: Gateway\nmetadata: {name: g}\nspec: {}\n";
    assert_eq!(
        rejection(gw),
        ": kind Gateway (networking.istio.io/v1alpha3) is not supported yet"
    );
    let dep = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: d}\nspec: {replicas: 1}\n";
    let ParsedDocument::Skipped {
        diagnostic,
        document,
    } = only(dep)
    else {
        panic!("expected a skip")
    };
    assert_eq!(document, 0);
    assert_eq!(diagnostic.severity, Severity::Warning);
    assert_eq!(
        diagnostic.message,
        "kind Deployment (apps/v1) is ignored: it does not configure the mesh"
    );
    let wrong = "apiVersion: networking.istio.io/v2\nkind: VirtualService\nmetadata: {name: r, namespace: shop}\nspec: {}\n";
    let ParsedDocument::Rejected {
        key, diagnostics, ..
    } = only(wrong)
    else {
        panic!("expected a rejection")
    };
    assert_eq!(
        key.map(|k| k.to_string()).as_deref(),
        Some("VirtualService shop/r")
    );
    assert_eq!(diagnostics[0].path.as_str(), "apiVersion");
    assert!(diagnostics[0].message.starts_with("apiVersion networking.istio.io/v2 does not serve kind VirtualService; expected networking.istio.io/v1, "));
    assert_eq!(
        rejection("kind: Service\nmetadata: {name: a}\n"),
        "apiVersion: field is required"
    );
    assert_eq!(
        rejection("apiVersion: v1\nmetadata: {name: a}\n"),
        "kind: field is required"
    );
    assert_eq!(
        rejection("- a\n- b\n"),
        ": expected a mapping with apiVersion, kind, metadata and spec, got a list"
    );
}

#[test]
fn empty_documents_are_skipped_silently() {
    let text = format!("---\n# only a comment\n---\n{REVIEWS_VS}---\n---\n");
    let docs = parse_documents("f.yaml", &text);
    assert_eq!(docs.len(), 1, "{docs:#?}");
    assert_eq!(docs[0].document(), 1);
    assert!(parse_documents("f.yaml", "").is_empty());
    assert!(parse_documents("f.yaml", "# nothing\n").is_empty());
    let no_newline = REVIEWS_VS.trim_end();
    assert!(matches!(only(no_newline), ParsedDocument::Object { .. }));
}

#[test]
fn every_diagnostic_names_file_document_and_object() {
    let text = format!(
        "{REVIEWS_VS}---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: d}}\n---\n{}",
        REVIEWS_VS
            .replace("weight: 75", "weight: 70")
            .replace("name: reviews", "name: ratings")
    );
    let docs = parse_documents("dir/f.yaml", &text);
    assert_eq!(docs.len(), 3);
    let ParsedDocument::Rejected {
        document,
        key,
        diagnostics,
    } = &docs[2]
    else {
        panic!("expected a rejection")
    };
    assert_eq!(*document, 2);
    assert_eq!(key.as_ref().map(|k| k.name.as_str()), Some("ratings"));
    let d = &diagnostics[0];
    assert_eq!(
        d.to_string(),
        "dir/f.yaml: document 2: VirtualService shop/ratings: spec.http[0].route: weights must sum to 100, got 95"
    );
    for doc in &docs {
        for d in doc.diagnostics() {
            assert_eq!(d.file, "dir/f.yaml");
            assert_eq!(d.document, Some(doc.document()));
        }
    }
}

#[test]
fn rejected_documents_keep_their_key() {
    let text = REVIEWS_VS.replace("  hosts: [reviews]", "  hosts: [reviews]\n  bogus: 1");
    let ParsedDocument::Rejected {
        key, diagnostics, ..
    } = only(&text)
    else {
        panic!("expected a rejection")
    };
    let key = key.unwrap();
    assert_eq!(
        (key.kind, key.namespace.as_str(), key.name.as_str()),
        (Kind::VirtualService, "shop", "reviews")
    );
    assert_eq!(diagnostics[0].object.as_ref(), Some(&key));
}

#[test]
fn syntax_errors_reject_the_whole_file_with_a_location() {
    let text =
        format!("{REVIEWS_VS}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: [unclosed\n");
    let err = parse_stream("f.yaml", &text).unwrap_err();
    assert_eq!(err.document, Some(1));
    assert_eq!(err.file, "f.yaml");
    assert!(err.message.starts_with("invalid YAML: "), "{}", err.message);
    assert!(err.message.contains("line "), "{}", err.message);
    assert!(err.message.contains("column "), "{}", err.message);
    println!("{err}");
    let docs = parse_documents("f.yaml", &text);
    assert_eq!(docs.len(), 1);
    assert!(matches!(
        &docs[0],
        ParsedDocument::Rejected {
            key: None,
            document: 1,
            ..
        }
    ));
    let dup = "apiVersion: v1\nkind: Service\nkind: Service\n";
    assert!(parse_stream("f.yaml", dup).is_err());
}

#[test]
fn merge_keys_are_applied() {
    let text = "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: r}\nspec:\n  host: r\n  subsets:\n  - &v1 {name: v1, labels: {version: v1}}\n  - <<: *v1\n    name: v2\n";
    let Object::DestinationRule(dr) = object(text) else {
        panic!("not a DestinationRule")
    };
    assert_eq!(dr.spec.subsets[1].name, "v2");
    assert_eq!(
        dr.spec.subsets[1].labels.get("version").map(String::as_str),
        Some("v1")
    );
}

#[test]
fn status_and_server_fields_are_ignored() {
    let text = "apiVersion: v1\nkind: Service\nmetadata:\n  name: a\n  uid: 0b7e\n  creationTimestamp: '2024-01-01T00:00:00Z'\nspec:\n  selector: {app: a}\n  ports: [{port: 80}]\nstatus:\n  loadBalancer: {}\n";
    assert!(matches!(only(text), ParsedDocument::Object { .. }));
}
