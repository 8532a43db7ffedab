//! The resource types the fixture serves: group, versions, kind, plural, scope.

/// One resource type, as the API server's discovery would describe it.
///
/// Every version of a group shares one storage, as a CustomResourceDefinition
/// without a conversion webhook does: reads only rewrite `apiVersion`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourceType {
    /// The API group, `""` for the core group.
    pub group: String,
    /// The versions served, the first one preferred.
    pub versions: Vec<String>,
    /// The kind, as in `Pod`.
    pub kind: String,
    /// The plural, as in `pods`.
    pub plural: String,
    /// Whether objects live in a namespace.
    pub namespaced: bool,
}

impl ResourceType {
    /// A resource type with the given group, versions, kind, plural and scope.
    pub fn new(group: &str, versions: &[&str], kind: &str, plural: &str, namespaced: bool) -> Self {
        Self {
            group: group.to_string(),
            versions: versions.iter().map(|v| v.to_string()).collect(),
            kind: kind.to_string(),
            plural: plural.to_string(),
            namespaced,
        }
    }

    /// `v1` for the core group, else `group/version`.
    pub fn api_version(&self, version: &str) -> String {
        if self.group.is_empty() {
            version.to_string()
        } else {
            format!("{}/{version}", self.group)
        }
    }
}

/// The built-in types, and the Istio custom resources Bowline reads.
pub(crate) fn builtin() -> Vec<ResourceType> {
    let core = |kind, plural, namespaced| ResourceType::new("", &["v1"], kind, plural, namespaced);
    let istio = &["v1", "v1beta1", "v1alpha3"];
    let security = &["v1", "v1beta1"];
    vec![
        core("Pod", "pods", true),
        core("Service", "services", true),
        core("Endpoints", "endpoints", true),
        core("ConfigMap", "configmaps", true),
        core("Secret", "secrets", true),
        core("ServiceAccount", "serviceaccounts", true),
        core("Event", "events", true),
        core("Namespace", "namespaces", false),
        core("Node", "nodes", false),
        ResourceType::new(
            "discovery.k8s.io",
            &["v1"],
            "EndpointSlice",
            "endpointslices",
            true,
        ),
        ResourceType::new("coordination.k8s.io", &["v1"], "Lease", "leases", true),
        ResourceType::new(
            "authentication.k8s.io",
            &["v1"],
            "TokenReview",
            "tokenreviews",
            false,
        ),
        ResourceType::new(
            "admissionregistration.k8s.io",
            &["v1"],
            "MutatingWebhookConfiguration",
            "mutatingwebhookconfigurations",
            false,
        ),
        ResourceType::new(
            "admissionregistration.k8s.io",
            &["v1"],
            "ValidatingWebhookConfiguration",
            "validatingwebhookconfigurations",
            false,
        ),
        ResourceType::new(
            "apiextensions.k8s.io",
            &["v1"],
            "CustomResourceDefinition",
            "customresourcedefinitions",
            false,
        ),
        ResourceType::new(
            "networking.istio.io",
            istio,
            "VirtualService",
            "virtualservices",
            true,
        ),
        ResourceType::new(
            "networking.istio.io",
            istio,
            "DestinationRule",
            "destinationrules",
            true,
        ),
        ResourceType::new(
            "networking.istio.io",
            istio,
            "ServiceEntry",
            "serviceentries",
            true,
        ),
        ResourceType::new(
            "networking.istio.io",
            istio,
            "WorkloadEntry",
            "workloadentries",
            true,
        ),
        ResourceType::new("networking.istio.io", istio, "Sidecar", "sidecars", true),
        ResourceType::new("networking.istio.io", istio, "Gateway", "gateways", true),
        ResourceType::new(
            "security.istio.io",
            security,
            "PeerAuthentication",
            "peerauthentications",
            true,
        ),
        ResourceType::new(
            "security.istio.io",
            security,
            "AuthorizationPolicy",
            "authorizationpolicies",
            true,
        ),
        ResourceType::new(
            "security.istio.io",
            security,
            "RequestAuthentication",
            "requestauthentications",
            true,
        ),
        ResourceType::new(
            "telemetry.istio.io",
            &["v1", "v1alpha1"],
            "Telemetry",
            "telemetries",
            true,
        ),
    ]
}
