//! The compiler: `compile(&Snapshot, &Proxy) -> ProxyResources`, a pure function.
//!
//! Translation goes in two steps. First the snapshot is resolved, once per
//! namespace and Sidecar scope, into a small intermediate form (`view`):
//! per admitted service, its ports, the DestinationRule in force and the
//! VirtualService in force; per route destination, the host it means and
//! that host's rule. Every precedence and visibility question is answered
//! there. Then the translators turn that form into Envoy protos without
//! going back to the snapshot's lookups:
//!
//! ```text
//! Snapshot ─► ScopeView ─┬─► clusters, endpoints   (once per view, shared by its proxies)
//!  (resolve,  (per ns,   ├─► locality-balanced     (per proxy: endpoint priorities and
//!   step one)  scope)    │   endpoints              weights relative to its locality)
//!                        ├─► routes                (per view and the labels `sourceLabels` reads)
//!                        └─► API listeners, routes (proxyless gRPC clients; see `grpc`)
//! Snapshot + Proxy ──────►   listeners, inbound    (per proxy: its address and inbound ports)
//! ```
//!
//! A proxy gets the clusters, endpoints and virtual hosts of only the
//! services its [`SidecarScope`] admits, and only the VirtualServices it
//! imports apply to its routes.
//!
//! No I/O, clock, environment or globals: the same snapshot and proxy always
//! give the same bytes, which is what makes content-hash versions and golden
//! tests work.

mod access_log;
mod authz;
pub(crate) mod capture;
mod cluster;
mod context;
mod endpoint;
mod grpc;
pub(crate) mod jwt;
mod listener;
pub mod names;
mod proto;
mod route;
mod tls;
mod traffic_policy;
mod verify;
mod view;

use std::collections::BTreeMap;
use std::sync::Arc;

use discovery::model::Resolution;
use envoy_types::pb::envoy::extensions::filters::network::http_connection_manager::v3::HttpFilter;
use policy::security::AuthorizationPolicy;

use crate::proxy::{Generator, Proxy};
use crate::resources::{ProxyResources, Resource, ResourceMap, ResourceSet, ResourceType};
use crate::snapshot::Snapshot;

pub use context::PushContext;
pub use verify::{Inconsistent, verify};

use listener::InboundPort;
use view::ScopeView;

/// The part of every proxy's config that does not depend on the proxy.
#[derive(Debug, Default)]
pub struct SharedResources {
    clusters: ResourceSet,
    endpoints: ResourceSet,
    /// Clusters (by host) whose endpoints depend on the proxy's locality:
    /// their shared assignment is replaced per proxy.
    localized: BTreeMap<String, Vec<String>>,
    /// The consistency check of the shared clusters against the shared
    /// endpoints, run once here rather than once per proxy (per-proxy
    /// endpoints only replace assignments, under the same names).
    problems: Vec<String>,
}

/// Compiles the Envoy resources one proxy should have, from scratch. The
/// server compiles through a [`PushContext`] instead, which shares the parts
/// proxies have in common; both give the same bytes.
pub fn compile(snapshot: &Snapshot, proxy: &Proxy) -> ProxyResources {
    compile_parts(snapshot, proxy, None).0
}

/// The proxy's resources, the shared part they were built from, and the
/// names of the clusters built for this proxy alone. With a push context,
/// the parts proxies share come from (and go into) its memo.
fn compile_parts(
    snapshot: &Snapshot,
    proxy: &Proxy,
    context: Option<&PushContext>,
) -> (ProxyResources, Arc<SharedResources>, Vec<String>) {
    let scope = snapshot.scope_for(proxy);
    let namespace = &proxy.metadata.namespace;
    let client = ClientKind::of(proxy);
    // Resolved once per namespace and scope (step one), then translated
    // (step two) by everything below.
    let view = match context {
        Some(context) => context.view(namespace, &scope),
        None => Arc::new(ScopeView::resolve(snapshot, namespace, &scope)),
    };
    let shared = match context {
        Some(context) => context.shared(&view, &scope, client),
        None => Arc::new(compile_shared(&view, client)),
    };
    let endpoints = proxy_endpoints(snapshot, &view, proxy, &shared);
    if proxy.metadata.is_proxyless() {
        let grpc = match context {
            Some(context) => context.grpc(&view, proxy, &scope),
            None => Arc::new(grpc::compile(&view, &proxy.metadata.labels)),
        };
        let resources = ProxyResources::new(
            shared.clusters.clone(),
            endpoints,
            grpc.listeners.clone(),
            grpc.routes.clone(),
        );
        return (resources, shared, Vec::new());
    }
    let mut own_clusters = Vec::new();

    let inbound = inbound_ports(snapshot, proxy);
    // The proxy's own clusters go over the shared ones; the shared map is
    // never copied.
    let mut own = ResourceMap::new();
    let mut listeners = ResourceMap::new();
    let mut routes = ResourceMap::new();

    let normalization = snapshot.mesh.path_normalization;
    let client_logs =
        access_log::for_side(snapshot, proxy, policy::telemetry::WorkloadMode::Client);
    let server_logs =
        access_log::for_side(snapshot, proxy, policy::telemetry::WorkloadMode::Server);
    let client_tracing =
        access_log::tracing_for_side(snapshot, proxy, policy::telemetry::WorkloadMode::Client);
    let server_tracing =
        access_log::tracing_for_side(snapshot, proxy, policy::telemetry::WorkloadMode::Server);
    let client = listener::Observe {
        logs: &client_logs,
        tracing: client_tracing.as_ref(),
    };
    let server = listener::Observe {
        logs: &server_logs,
        tracing: server_tracing.as_ref(),
    };
    let outbound = listener::outbound(proxy, normalization, client);
    insert(
        &mut listeners,
        ResourceType::Listener,
        &outbound.name.clone(),
        &outbound,
    );
    let route_config = match context {
        Some(context) => context.outbound_routes(&view, proxy, &scope),
        None => outbound_routes(&view, &proxy.metadata.labels),
    };
    routes.insert(route_config.name.clone(), route_config);

    let security = match context {
        _ if inbound.is_empty() || snapshot.security.is_empty() => {
            Arc::new(InboundSecurity::default())
        }
        Some(context) => context.inbound_security(namespace, &proxy.metadata.labels),
        None => Arc::new(InboundSecurity::compile(
            snapshot,
            namespace,
            &proxy.metadata.labels,
        )),
    };
    let trust_domain = snapshot.mesh.trust_domain.as_str();
    let network =
        |listener: &str| authz::network_filters(security.policies.iter(), trust_domain, listener);
    let authz = listener::Authz {
        http: security.http.clone(),
        network: &network,
    };
    let peer = snapshot
        .security
        .peer_authentication_for(namespace, &proxy.metadata.labels);
    let capture = proxy.metadata.capture;
    let mut captured_inbound = Vec::new();
    for port in &inbound {
        let mut c = cluster::inbound(
            port.port,
            port.app,
            matches!(
                port.protocol,
                discovery::Protocol::Http2 | discovery::Protocol::Grpc
            ),
        );
        if capture {
            capture::bind_to_passthrough_source(&mut c);
        }
        insert(&mut own, ResourceType::Cluster, &c.name.clone(), &c);
        own_clusters.push(c.name.clone());
        let mtls = listener::InboundTls::new(peer.mode_at(port.port), proxy.metadata.sds);
        let l = listener::inbound(proxy, port, normalization, &authz, mtls, server);
        if capture {
            captured_inbound.push((port.port, l));
        } else {
            insert(&mut listeners, ResourceType::Listener, &l.name.clone(), &l);
        }
    }
    if capture {
        let strict = peer.mode == policy::security::MtlsMode::Strict;
        for l in [
            capture::virtual_outbound(&view, normalization, client),
            capture::virtual_inbound(captured_inbound, strict, &server_logs),
        ] {
            insert(&mut listeners, ResourceType::Listener, &l.name.clone(), &l);
        }
        for c in capture::passthrough_clusters() {
            insert(&mut own, ResourceType::Cluster, &c.name.clone(), &c);
            own_clusters.push(c.name.clone());
        }
    }

    let secrets = match context {
        Some(context) => context.secrets(),
        None => secrets(snapshot),
    };
    let resources = ProxyResources::new(
        ResourceSet::new(&shared.clusters, own),
        endpoints,
        listeners,
        routes,
    )
    .with(ResourceType::Secret, secrets);
    (resources, shared, own_clusters)
}

/// The secrets the control plane serves every sidecar: `ROOTCA`, from the
/// trust bundle, once a CA runs. Proxyless gRPC clients read theirs from
/// their own bootstrap's certificate providers.
pub(crate) fn secrets(snapshot: &Snapshot) -> ResourceSet {
    let mut map = ResourceMap::new();
    if let Some(bundle) = &snapshot.trust_bundle {
        insert(
            &mut map,
            ResourceType::Secret,
            pilot_node::ROOT_SECRET,
            &tls::root_secret(bundle),
        );
    }
    map.into()
}

/// What the security policies give the inbound side of the workloads of
/// one namespace with the same labels: the HTTP filters (JWT, then RBAC)
/// and the AuthorizationPolicies, for the TCP ports' network filters (which
/// are named after each listener).
#[derive(Debug, Default)]
pub(crate) struct InboundSecurity {
    http: Vec<HttpFilter>,
    policies: Vec<Arc<AuthorizationPolicy>>,
}

impl InboundSecurity {
    fn compile(
        snapshot: &Snapshot,
        namespace: &str,
        labels: &BTreeMap<String, String>,
    ) -> InboundSecurity {
        let security = &snapshot.security;
        let policies: Vec<_> = security
            .authorization_policies_for(namespace, labels)
            .cloned()
            .collect();
        let mut http = Vec::new();
        let mut issuers = Vec::new();
        if let Some((filter, verified)) = jwt::http_filter(
            security.request_authentications_for(namespace, labels),
            &snapshot.jwks,
        ) {
            http.push(filter);
            issuers = verified;
        }
        http.extend(authz::http_filters(
            &policies,
            &snapshot.mesh.trust_domain,
            &issuers,
        ));
        InboundSecurity { http, policies }
    }
}

/// Compiles `proxy`'s resources and runs the consistency check on them, as
/// the server does before every push: a set with a dangling reference (a
/// listener naming a route configuration, or an EDS cluster naming a load
/// assignment, that is not in the set) is never pushed, since Envoy would
/// wait for the missing piece forever.
pub fn compile_consistent(
    snapshot: &Snapshot,
    proxy: &Proxy,
) -> Result<ProxyResources, Inconsistent> {
    checked(compile_parts(snapshot, proxy, None))
}

/// The consistency check of [`compile_consistent`] on compiled parts.
fn checked(
    (resources, shared, own_clusters): (ProxyResources, Arc<SharedResources>, Vec<String>),
) -> Result<ProxyResources, Inconsistent> {
    // The same check as `verify`, with the shared clusters' part done once
    // per snapshot and namespace.
    let mut problems = shared.problems.clone();
    problems.extend(verify::listeners(&resources));
    let clusters = resources.get(ResourceType::Cluster);
    problems.extend(verify::clusters(
        own_clusters
            .iter()
            .filter_map(|name| clusters.get(name).map(|r| r.as_ref())),
        |name| resources.get(ResourceType::Endpoint).contains_key(name),
    ));
    if problems.is_empty() {
        Ok(resources)
    } else {
        Err(Inconsistent { problems })
    }
}

fn insert<M: prost::Message>(map: &mut ResourceMap, ty: ResourceType, name: &str, message: &M) {
    map.insert(name.to_string(), Arc::new(Resource::new(ty, name, message)));
}

/// The outbound route configuration of proxies with `labels` in `view`. It
/// depends only on the view (namespace and Sidecar scope) and the labels
/// some `sourceLabels` reads, so a push context shares one compiled,
/// encoded copy per snapshot between the proxies that have those in common.
fn outbound_routes(view: &ScopeView, labels: &BTreeMap<String, String>) -> Arc<Resource> {
    let config = route::outbound(view, labels);
    Arc::new(Resource::new(
        ResourceType::Route,
        config.name.clone(),
        &config,
    ))
}

/// The kind of client shared clusters are compiled for: an Envoy sidecar,
/// with a mesh certificate or without, or a proxyless gRPC client.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) struct ClientKind {
    generator: Generator,
    /// Whether the client can present the workload certificate (its agent
    /// serves it over SDS), so that clusters may use mutual TLS.
    certificate: bool,
}

impl ClientKind {
    pub(crate) fn of(proxy: &Proxy) -> Self {
        ClientKind {
            generator: proxy.metadata.generator,
            certificate: proxy.metadata.sds && !proxy.metadata.is_proxyless(),
        }
    }
}

/// Outbound clusters and their endpoints: one per admitted service port and
/// subset, the clusters in the form `client`'s kind takes. Proxyless gRPC
/// clients get TLS only where a DestinationRule says ISTIO_MUTUAL, from
/// their bootstrap's certificate provider (see `tls::grpc_upstream`).
fn compile_shared(view: &ScopeView, client: ClientKind) -> SharedResources {
    let mut clusters = ResourceMap::new();
    let mut endpoints = ResourceMap::new();
    let mut localized = BTreeMap::new();
    for service in view.services() {
        for c in service.clusters() {
            let proto = match client.generator {
                Generator::Envoy => {
                    let mut proto = c.to_proto();
                    c.secure(&mut proto, client.certificate);
                    proto
                }
                Generator::Grpc => {
                    let mut proto = grpc::cluster(c.to_proto());
                    c.secure_grpc(&mut proto);
                    proto
                }
            };
            insert(&mut clusters, ResourceType::Cluster, &c.name, &proto);
            if c.locality_mode().is_some() {
                localized
                    .entry(service.service.hostname.clone())
                    .or_insert_with(Vec::new)
                    .push(c.name.clone());
            }
            if c.uses_eds() {
                insert(
                    &mut endpoints,
                    ResourceType::Endpoint,
                    &c.name,
                    &c.load_assignment(),
                );
            }
        }
    }
    let problems = verify::clusters(clusters.values().map(|r| r.as_ref()), |name| {
        endpoints.contains_key(name)
    });
    SharedResources {
        clusters: clusters.into(),
        endpoints: endpoints.into(),
        localized,
        problems,
    }
}

/// [`compile_shared`] after a change of endpoints only (see
/// [`EndpointChanges`](crate::snapshot::EndpointChanges)), from the view of
/// the new snapshot: the clusters of `base` stand as they are, and only the
/// load assignments of the changed hosts are compiled again. The clusters
/// do not depend on endpoints (DNS-resolved services, whose endpoints are
/// inline, never count as endpoint-only changes), so the names stay the
/// same and `base`'s consistency findings still hold.
fn derive_shared(
    view: &ScopeView,
    base: &SharedResources,
    hosts: &std::collections::BTreeSet<String>,
) -> SharedResources {
    let mut endpoints: ResourceMap = base
        .endpoints
        .iter()
        .map(|(name, r)| (name.clone(), Arc::clone(r)))
        .collect();
    for service in hosts.iter().filter_map(|host| view.service(host)) {
        for c in service.clusters().filter(|c| c.uses_eds()) {
            insert(
                &mut endpoints,
                ResourceType::Endpoint,
                &c.name,
                &c.load_assignment(),
            );
        }
    }
    SharedResources {
        clusters: base.clusters.clone(),
        endpoints: endpoints.into(),
        localized: base.localized.clone(),
        problems: base.problems.clone(),
    }
}

/// The endpoints `proxy` gets: the shared ones, with the assignments of
/// locality-load-balanced clusters compiled for the proxy's locality.
fn proxy_endpoints(
    snapshot: &Snapshot,
    view: &ScopeView,
    proxy: &Proxy,
    shared: &SharedResources,
) -> ResourceSet {
    if shared.localized.is_empty() {
        return shared.endpoints.clone();
    }
    let client = endpoint::Client {
        locality: endpoint::proxy_locality(snapshot, proxy),
        labels: &proxy.metadata.labels,
    };
    let mut own = ResourceMap::new();
    for (host, names) in &shared.localized {
        let Some(service) = view.service(host) else {
            continue;
        };
        for c in service.clusters().filter(|c| names.contains(&c.name)) {
            let assignment = c.load_assignment_for(&client);
            insert(&mut own, ResourceType::Endpoint, &c.name, &assignment);
        }
    }
    ResourceSet::new(&shared.endpoints, own)
}

/// The ports at which services reach this workload: every endpoint whose
/// address is the proxy's own, in the proxy's namespace. Ports without a
/// declared application address get no listener.
fn inbound_ports(snapshot: &Snapshot, proxy: &Proxy) -> Vec<InboundPort> {
    let address = proxy.metadata.address.to_string();
    let mut ports: BTreeMap<u16, InboundPort> = BTreeMap::new();
    for service in snapshot.registry.services.values() {
        if service.namespace != proxy.metadata.namespace
            || service.mesh_external
            || service.resolution != Resolution::Static
        {
            continue;
        }
        for endpoint in service.endpoints.iter().filter(|e| e.address == address) {
            for port in &service.ports {
                let Some(&target) = endpoint.ports.get(&port.number) else {
                    continue;
                };
                let Some(app) = proxy.app_for(target) else {
                    continue;
                };
                ports.entry(target).or_insert(InboundPort {
                    port: target,
                    protocol: port.protocol,
                    app,
                });
            }
        }
    }
    ports.into_values().collect()
}
