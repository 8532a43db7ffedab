//! Kubernetes validating admission: an `admission.k8s.io/v1`
//! AdmissionReview in, its answer out, with the same checks as
//! `bowline validate`, so that `kubectl apply` of an invalid object fails
//! with the field path, as it does with istiod's webhook.
//!
//! ```text
//! AdmissionReview{request: {uid, operation, object}} ──► decode + validate (as a file's document)
//!   valid (warnings as admission warnings) ──► allowed
//!   invalid ──► denied: 400, "PATH: MESSAGE; ..." · DELETE, CONNECT, kinds not ours ──► allowed
//! ```
//!
//! Pure: the HTTPS endpoint that Kubernetes calls is the server's.

use serde_json::{Value, json};

use crate::ParsedDocument;
use crate::diag::{Diagnostic, Severity};
use crate::parse::decode_document;

/// The answer to one AdmissionReview (its JSON body); a body that is not
/// one is answered as denied, saying why.
pub fn review(body: &[u8]) -> Value {
    let review: Value = match serde_json::from_slice(body) {
        Ok(review) => review,
        Err(e) => return answer("", false, Some(format!("not an AdmissionReview: {e}")), &[]),
    };
    let request = &review["request"];
    let uid = request["uid"].as_str().unwrap_or_default();
    if request.is_null() {
        return answer(
            uid,
            false,
            Some("an AdmissionReview without a request".into()),
            &[],
        );
    }
    let operation = request["operation"].as_str().unwrap_or_default();
    if !matches!(operation, "CREATE" | "UPDATE") {
        return answer(uid, true, None, &[]);
    }
    let object = match serde_yaml::to_value(&request["object"]) {
        Ok(object) => object,
        Err(e) => return answer(uid, false, Some(format!("the object: {e}")), &[]),
    };
    match decode_document("", 0, &object) {
        None | Some(ParsedDocument::Skipped { .. }) => answer(uid, true, None, &[]),
        Some(ParsedDocument::Object { warnings, .. }) => answer(uid, true, None, &warnings),
        Some(ParsedDocument::Rejected { diagnostics, .. }) => {
            let (errors, warnings): (Vec<_>, Vec<_>) = diagnostics
                .into_iter()
                .partition(|d| d.severity == Severity::Error);
            let message = errors.iter().map(line).collect::<Vec<_>>().join("; ");
            answer(uid, false, Some(message), &warnings)
        }
    }
}

/// `PATH: MESSAGE`, as `bowline validate` puts it after the object.
fn line(d: &Diagnostic) -> String {
    let path = d.path.to_string();
    if path.is_empty() {
        d.message.clone()
    } else {
        format!("{path}: {}", d.message)
    }
}

fn answer(uid: &str, allowed: bool, denied: Option<String>, warnings: &[Diagnostic]) -> Value {
    let mut response = json!({ "uid": uid, "allowed": allowed });
    if let Some(message) = denied {
        response["status"] = json!({ "code": 400, "reason": "Invalid", "message": message });
    }
    if !warnings.is_empty() {
        response["warnings"] = json!(warnings.iter().map(line).collect::<Vec<_>>());
    }
    json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": response,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(operation: &str, object: Value) -> Vec<u8> {
        json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "operation": operation,
                "object": object,
            },
        })
        .to_string()
        .into_bytes()
    }

    fn virtual_service(weight: i64) -> Value {
        json!({
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {
                "name": "reviews", "namespace": "shop", "uid": "1", "resourceVersion": "7",
                "managedFields": [{"manager": "kubectl"}],
            },
            "spec": {
                "hosts": ["reviews"],
                "http": [{"route": [{"destination": {"host": "reviews"}, "weight": weight}]}],
            },
        })
    }

    #[test]
    fn an_invalid_object_is_denied_with_its_field_path() {
        let answer = review(&request("CREATE", virtual_service(-5)));
        let response = &answer["response"];
        assert_eq!(response["uid"], "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(response["allowed"], false);
        assert_eq!(response["status"]["code"], 400);
        let message = response["status"]["message"].as_str().unwrap();
        assert!(
            message.contains("spec.http[0].route[0].weight"),
            "{message}"
        );
    }

    #[test]
    fn a_valid_object_is_allowed_and_other_operations_and_kinds_pass() {
        let answer = review(&request("UPDATE", virtual_service(100)));
        assert_eq!(answer["response"]["allowed"], true, "{answer}");
        assert!(answer["response"].get("status").is_none());
        assert_eq!(
            review(&request("DELETE", Value::Null))["response"]["allowed"],
            true
        );
        let config_map =
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}});
        assert_eq!(
            review(&request("CREATE", config_map))["response"]["allowed"],
            true
        );
        // An unknown field is an error, never dropped.
        let mut unknown = virtual_service(100);
        unknown["spec"]["hostz"] = json!(["typo"]);
        let answer = review(&request("CREATE", unknown));
        assert_eq!(answer["response"]["allowed"], false);
        assert!(
            answer["response"]["status"]["message"]
                .as_str()
                .unwrap()
                .contains("hostz")
        );
    }

    #[test]
    fn a_body_that_is_no_review_is_denied_saying_why() {
        let answer = review(b"{not json");
        assert_eq!(answer["response"]["allowed"], false);
        assert!(
            answer["response"]["status"]["message"]
                .as_str()
                .unwrap()
                .starts_with("not an AdmissionReview")
        );
    }
}
