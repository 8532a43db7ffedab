//! `networking.istio.io` objects: WorkloadEntry, ServiceEntry, VirtualService,
//! DestinationRule and Sidecar. Field names follow Istio's API; apiVersions v1, v1beta1 and
//! v1alpha3 all decode to these types.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::meta::ObjectMeta;

/// A workload outside Kubernetes: one address that Services select by labels.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkloadEntry {
    pub meta: ObjectMeta,
    pub spec: WorkloadEntrySpec,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct WorkloadEntrySpec {
    pub address: String,
    pub labels: BTreeMap<String, String>,
    /// Port name -> port number on this workload; overrides a Service's targetPort.
    pub ports: BTreeMap<String, u16>,
    pub service_account: Option<String>,
    pub locality: Option<String>,
    pub weight: Option<u32>,
}

/// A service the registry does not otherwise know, usually outside the mesh.
#[derive(Clone, Debug, PartialEq)]
pub struct ServiceEntry {
    pub meta: ObjectMeta,
    pub spec: ServiceEntrySpec,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceEntrySpec {
    pub hosts: Vec<String>,
    pub ports: Vec<ServiceEntryPort>,
    pub location: Location,
    pub resolution: Resolution,
    pub endpoints: Vec<ServiceEntryEndpoint>,
    /// Virtual IPs (or CIDRs) of the service, as written. Without traffic
    /// capture, clients reach services by host name, so they are not used.
    pub addresses: Vec<String>,
    /// Namespaces that see this object: `*` (all, the default), `.` (its own),
    /// `~` (none) or names.
    pub export_to: Vec<String>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ServiceEntryPort {
    pub number: u16,
    pub name: String,
    /// Upper-cased protocol name (`HTTP`, `TCP`, ...); Istio accepts any case.
    pub protocol: Option<String>,
    pub target_port: Option<u16>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Location {
    #[default]
    MeshExternal,
    MeshInternal,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Resolution {
    #[default]
    None,
    Static,
    Dns,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ServiceEntryEndpoint {
    pub address: String,
    /// Port name -> port number on this endpoint.
    pub ports: BTreeMap<String, u16>,
    pub labels: BTreeMap<String, String>,
    pub locality: Option<String>,
    pub weight: Option<u32>,
    pub service_account: Option<String>,
}

/// Routing rules for traffic addressed to some hosts.
#[derive(Clone, Debug, PartialEq)]
pub struct VirtualService {
    pub meta: ObjectMeta,
    pub spec: VirtualServiceSpec,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct VirtualServiceSpec {
    pub hosts: Vec<String>,
    pub http: Vec<HttpRoute>,
    /// Namespaces that see this object: `*` (all, the default), `.` (its own), or names.
    pub export_to: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpRoute {
    pub name: Option<String>,
    /// Any entry may match; an empty list matches every request.
    pub matches: Vec<HttpMatchRequest>,
    /// Weighted destinations. Empty when `redirect` or `direct_response` answers instead.
    pub route: Vec<HttpRouteDestination>,
    pub redirect: Option<HttpRedirect>,
    pub direct_response: Option<HttpDirectResponse>,
    pub rewrite: Option<HttpRewrite>,
    /// Whole-request timeout; `None` means none (Istio's default).
    pub timeout: Option<Duration>,
    pub retries: Option<HttpRetry>,
    pub fault: Option<HttpFaultInjection>,
    pub mirror: Option<Destination>,
    /// Percent (0-100) of requests mirrored; `None` means 100. `mirror_percent` maps here.
    pub mirror_percentage: Option<f64>,
    pub cors_policy: Option<CorsPolicy>,
    /// Header operations for every destination of this route.
    pub headers: Option<Headers>,
}

/// All conditions set in one entry must hold.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpMatchRequest {
    pub name: Option<String>,
    pub uri: Option<StringMatch>,
    pub scheme: Option<StringMatch>,
    pub method: Option<StringMatch>,
    pub authority: Option<StringMatch>,
    /// Lower-cased header name -> condition. An empty condition (`{}`), which
    /// means "present", decodes as `Regex(".*")`.
    pub headers: BTreeMap<String, StringMatch>,
    /// Parameter name -> condition; `{}` decodes as `Regex(".*")` too.
    pub query_params: BTreeMap<String, StringMatch>,
    /// Headers that must be absent or must not match; `{}` (`Regex(".*")`)
    /// means absent.
    pub without_headers: BTreeMap<String, StringMatch>,
    /// The port the request was sent to (the service port).
    pub port: Option<u16>,
    /// Labels the calling workload must carry.
    pub source_labels: BTreeMap<String, String>,
    pub source_namespace: Option<String>,
    /// Whether `uri` matches without regard to case.
    pub ignore_uri_case: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Regex(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct HttpRouteDestination {
    pub destination: Destination,
    /// Percent of traffic; `None` when the route has a single destination.
    pub weight: Option<u32>,
    pub headers: Option<Headers>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Destination {
    pub host: String,
    pub subset: Option<String>,
    pub port: Option<u16>,
}

/// Header operations on requests and responses.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Headers {
    pub request: HeaderOperations,
    pub response: HeaderOperations,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HeaderOperations {
    /// Overwrite (or add) these headers.
    pub set: BTreeMap<String, String>,
    /// Append these values.
    pub add: BTreeMap<String, String>,
    pub remove: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpRedirect {
    pub uri: Option<String>,
    pub authority: Option<String>,
    pub port: Option<u16>,
    pub scheme: Option<String>,
    /// 301 when unset; one of 301, 302, 303, 307, 308.
    pub redirect_code: Option<u16>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpDirectResponse {
    pub status: u16,
    pub body: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpRewrite {
    /// Replaces the matched path prefix (or the whole path for exact matches).
    pub uri: Option<String>,
    pub authority: Option<String>,
    /// `uriRegexRewrite`: (match, rewrite).
    pub uri_regex: Option<(String, String)>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpRetry {
    pub attempts: u32,
    pub per_try_timeout: Option<Duration>,
    /// Envoy retry conditions and HTTP status codes, as written: `5xx,connect-failure,503`.
    pub retry_on: Option<String>,
    pub retry_remote_localities: Option<bool>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpFaultInjection {
    pub delay: Option<FaultDelay>,
    pub abort: Option<FaultAbort>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FaultDelay {
    pub fixed_delay: Duration,
    /// Percent of requests (0-100); `None` means all. Deprecated `percent` maps here.
    pub percentage: Option<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct FaultAbort {
    pub http_status: u16,
    /// Percent of requests (0-100); `None` means all. Legacy `percent` maps here.
    pub percentage: Option<f64>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CorsPolicy {
    /// `allowOrigins`, plus the deprecated `allowOrigin` as exact matches.
    pub allow_origins: Vec<StringMatch>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<Duration>,
    pub allow_credentials: Option<bool>,
}

/// Policies for traffic to one host once routing has happened.
#[derive(Clone, Debug, PartialEq)]
pub struct DestinationRule {
    pub meta: ObjectMeta,
    pub spec: DestinationRuleSpec,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct DestinationRuleSpec {
    pub host: String,
    pub traffic_policy: Option<Box<TrafficPolicy>>,
    pub subsets: Vec<Subset>,
    pub export_to: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct Subset {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    /// Merged over the rule's own policy, field by field, as Istio does.
    pub traffic_policy: Option<TrafficPolicy>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TrafficPolicy {
    pub load_balancer: Option<LoadBalancer>,
    pub connection_pool: Option<ConnectionPool>,
    pub outlier_detection: Option<OutlierDetection>,
    pub tls: Option<ClientTls>,
    pub port_level_settings: Vec<PortTrafficPolicy>,
}

/// `trafficPolicy.tls`: how the client's sidecar secures its connections to
/// the host. Without it, sidecars use mutual TLS toward endpoints that have
/// a sidecar (auto-mTLS) and plaintext toward the rest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientTls {
    pub mode: TlsMode,
    /// Files on the client's machine (PEM), for SIMPLE and MUTUAL.
    pub client_certificate: Option<String>,
    pub private_key: Option<String>,
    pub ca_certificates: Option<String>,
    /// Names the server's certificate must carry; for ISTIO_MUTUAL they
    /// replace the service accounts behind the host.
    pub subject_alt_names: Vec<String>,
    pub sni: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsMode {
    /// Plaintext.
    Disable,
    /// TLS, verifying the server.
    Simple,
    /// TLS with a client certificate from files.
    Mutual,
    /// Mutual TLS with the workload's mesh certificate.
    IstioMutual,
}

/// A traffic policy for one port; overrides the rule-level policy for it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PortTrafficPolicy {
    pub port: u16,
    pub load_balancer: Option<LoadBalancer>,
    pub connection_pool: Option<ConnectionPool>,
    pub outlier_detection: Option<OutlierDetection>,
    pub tls: Option<ClientTls>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct LoadBalancer {
    /// `simple` or `consistentHash`; `None` when only `localityLbSetting` is set.
    pub policy: Option<LbPolicy>,
    pub locality_lb_setting: Option<LocalityLbSetting>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum LbPolicy {
    Simple(SimpleLb),
    ConsistentHash(ConsistentHash),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SimpleLb {
    /// `UNSPECIFIED`: Istio's default (LEAST_REQUEST).
    Unspecified,
    RoundRobin,
    /// Also the deprecated `LEAST_CONN`.
    LeastRequest,
    Random,
    Passthrough,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConsistentHash {
    pub key: HashKey,
    pub algorithm: HashAlgorithm,
}

#[derive(Clone, Debug, PartialEq)]
pub enum HashKey {
    HttpHeaderName(String),
    HttpCookie {
        name: String,
        path: Option<String>,
        ttl: Option<Duration>,
    },
    UseSourceIp,
    HttpQueryParameterName(String),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashAlgorithm {
    /// `ringHash` (or the deprecated top-level `minimumRingSize`); the default.
    RingHash {
        minimum_ring_size: Option<u64>,
    },
    Maglev {
        table_size: Option<u64>,
    },
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct LocalityLbSetting {
    pub enabled: Option<bool>,
    /// `from` locality -> `to` locality, in order.
    pub failover: Vec<(String, String)>,
    /// `distribute`: `from` -> (`to` locality -> weight).
    pub distribute: Vec<(String, BTreeMap<String, u32>)>,
    pub failover_priority: Vec<String>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ConnectionPool {
    pub tcp: Option<TcpSettings>,
    pub http: Option<HttpSettings>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct TcpSettings {
    pub max_connections: Option<u32>,
    pub connect_timeout: Option<Duration>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct HttpSettings {
    pub http1_max_pending_requests: Option<u32>,
    pub http2_max_requests: Option<u32>,
    pub max_requests_per_connection: Option<u32>,
    pub max_retries: Option<u32>,
    pub idle_timeout: Option<Duration>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct OutlierDetection {
    pub consecutive_5xx_errors: Option<u32>,
    pub consecutive_gateway_errors: Option<u32>,
    /// The deprecated `consecutiveErrors`: consecutive gateway errors (502,
    /// 503, 504) in Istio's API reference, with 5xx ejection off unless
    /// `consecutive5xxErrors` turns it on; `consecutiveGatewayErrors` and
    /// `consecutive5xxErrors` take precedence over it.
    pub consecutive_errors: Option<u32>,
    pub interval: Option<Duration>,
    pub base_ejection_time: Option<Duration>,
    pub max_ejection_percent: Option<u32>,
    pub min_health_percent: Option<u32>,
}

/// Which services and routes the sidecars of some workloads see: Istio's
/// `Sidecar`, reduced to its egress hosts.
#[derive(Clone, Debug, PartialEq)]
pub struct Sidecar {
    pub meta: ObjectMeta,
    pub spec: SidecarSpec,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct SidecarSpec {
    /// The workloads of the Sidecar's namespace it applies to; `None` for all
    /// of them (a namespace-wide default, or the mesh-wide one in the root
    /// namespace).
    pub workload_selector: Option<WorkloadSelector>,
    pub egress: Vec<EgressListener>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WorkloadSelector {
    pub labels: BTreeMap<String, String>,
}

/// One egress listener. Without `port` (not supported yet) it is the catch-all
/// listener, whose hosts say which config the workload imports.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EgressListener {
    /// `namespace/dnsName`: the namespace the config lives in (`*` any, `.`
    /// the Sidecar's own, a name; prefixed with `~` to exclude instead of
    /// import), and an FQDN, `*`, or a name with a leading `*.` wildcard.
    pub hosts: Vec<String>,
}
