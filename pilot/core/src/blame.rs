//! Which config objects a NACK came from (the question istio#30498 and
//! #41793 leave open).
//!
//! Every compiled resource is named after what it came from, in Istio's
//! formats (`outbound|PORT|SUBSET|HOST`, `inbound|ADDRESS|PORT`, virtual
//! hosts `HOST:PORT`), so the names Envoy puts in its error text, and the
//! indices of its validation errors (`VirtualHosts[3]`, `Routes[2]`), lead
//! back to the objects through the snapshot:
//!
//! ```text
//! NACK text ──► resource names of that type found in it ──► per name:
//!   cluster / endpoints outbound|P|S|HOST ─► the service's Service or ServiceEntry, its DestinationRule
//!   cluster inbound|P||, listener inbound|A|P ─► the services reaching the workload there, its WorkloadEntry
//!   virtualInbound ─► the same, for every inbound port
//!   route configuration + VirtualHosts[i] (or a virtual host's name) ─► the host's VirtualService, its service
//! ```
//!
//! Pure: the server calls it with the proxy's last compiled set when a
//! NACK comes in, and publishes the result beside the NACK.

use std::collections::BTreeSet;

use envoy_types::pb::envoy::config::route::v3::RouteConfiguration;
use policy::{Kind, ObjectKey};
use prost::Message;
use serde::{Deserialize, Serialize};

use crate::proxy::Proxy;
use crate::resources::{ProxyResources, ResourceType};
use crate::snapshot::Snapshot;

/// An object a rejected resource came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Blamed {
    pub kind: String,
    pub namespace: String,
    pub name: String,
    /// Where it was read (file mode).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    /// The resource, and the part of it, that Envoy named:
    /// `route outbound virtual_hosts[3] (reviews.shop.svc.cluster.local:9080)`.
    pub resource: String,
}

/// The objects behind the resources of type `ty` that Envoy's error text
/// `message` names, read against `resources` (what was compiled for
/// `proxy`) and `snapshot`. Empty when the text names none of them.
pub fn nack_sources(
    snapshot: &Snapshot,
    proxy: &Proxy,
    resources: &ProxyResources,
    ty: ResourceType,
    message: &str,
) -> Vec<Blamed> {
    let set = resources.get(ty);
    let mut named: Vec<&String> = set
        .keys()
        .filter(|n| message.contains(n.as_str()))
        .collect();
    // A route configuration error need not name the configuration: with
    // one, it is that one.
    if named.is_empty() && ty == ResourceType::Route && set.len() == 1 {
        named = set.keys().collect();
    }
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    let mut push = |key: ObjectKey, resource: String, out: &mut Vec<Blamed>| {
        if seen.insert((key.clone(), resource.clone())) {
            let origin = snapshot.origins.get(&key);
            out.push(Blamed {
                kind: format!("{:?}", key.kind),
                namespace: key.namespace,
                name: key.name,
                file: origin.map(|(file, _)| file.clone()),
                document: origin.map(|(_, document)| *document),
                resource,
            });
        }
    };
    for name in named {
        let what = format!("{} {name}", kind_word(ty));
        match ty {
            ResourceType::Route => {
                let Some(config) = set
                    .get(name)
                    .and_then(|r| RouteConfiguration::decode(r.value()).ok())
                else {
                    continue;
                };
                for (index, host) in virtual_hosts_named(&config, message) {
                    let part = format!("{what} virtual_hosts[{index}] ({host})");
                    let service_host = host.rsplit_once(':').map_or(host.as_str(), |(h, _)| h);
                    if let Some(vs) =
                        snapshot.virtual_service(service_host, &proxy.metadata.namespace)
                    {
                        push(key(Kind::VirtualService, &vs.meta), part.clone(), &mut out);
                    }
                    for key in service_objects(snapshot, service_host) {
                        push(key, part.clone(), &mut out);
                    }
                }
            }
            ResourceType::Cluster | ResourceType::Endpoint => {
                let parts: Vec<&str> = name.split('|').collect();
                match parts.as_slice() {
                    ["outbound", _, _, host] => {
                        for key in service_objects(snapshot, host) {
                            push(key, what.clone(), &mut out);
                        }
                        if let Some(dr) = snapshot.destination_rule(host, &proxy.metadata.namespace)
                        {
                            push(key(Kind::DestinationRule, &dr.meta), what.clone(), &mut out);
                        }
                    }
                    ["inbound", port, _, _] => {
                        if let Ok(port) = port.parse() {
                            for key in inbound_objects(snapshot, proxy, Some(port)) {
                                push(key, what.clone(), &mut out);
                            }
                        }
                    }
                    _ => {}
                }
            }
            ResourceType::Listener => {
                let parts: Vec<&str> = name.split('|').collect();
                let port = match parts.as_slice() {
                    ["inbound", _, port] => port.parse().ok(),
                    _ if name == "virtualInbound" => None,
                    _ => continue,
                };
                for key in inbound_objects(snapshot, proxy, port) {
                    push(key, what.clone(), &mut out);
                }
            }
            ResourceType::Secret => {}
        }
    }
    out
}

fn kind_word(ty: ResourceType) -> &'static str {
    match ty {
        ResourceType::Cluster => "cluster",
        ResourceType::Endpoint => "endpoints",
        ResourceType::Listener => "listener",
        ResourceType::Route => "route",
        ResourceType::Secret => "secret",
    }
}

fn key(kind: Kind, meta: &policy::ObjectMeta) -> ObjectKey {
    ObjectKey {
        kind,
        namespace: meta.namespace.clone(),
        name: meta.name.clone(),
    }
}

/// The virtual hosts of `config` that `message` points at: by index
/// (`VirtualHosts[3]`, `virtual_hosts[3]`, as Envoy's validation errors
/// and our own names put it) or by name.
fn virtual_hosts_named(config: &RouteConfiguration, message: &str) -> Vec<(usize, String)> {
    let mut indices = BTreeSet::new();
    for marker in ["VirtualHosts[", "virtual_hosts["] {
        let mut rest = message;
        while let Some(at) = rest.find(marker) {
            rest = &rest[at + marker.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            if let Ok(index) = digits.parse::<usize>() {
                indices.insert(index);
            }
        }
    }
    for (index, host) in config.virtual_hosts.iter().enumerate() {
        if !host.name.is_empty() && message.contains(&host.name) {
            indices.insert(index);
        }
    }
    indices
        .into_iter()
        .filter_map(|i| Some((i, config.virtual_hosts.get(i)?.name.clone())))
        .collect()
}

/// The objects that define the service `host`.
fn service_objects(snapshot: &Snapshot, host: &str) -> Vec<ObjectKey> {
    snapshot
        .registry
        .services
        .get(host)
        .and_then(|s| s.object.clone())
        .into_iter()
        .collect()
}

/// The services reaching `proxy`'s workload (at `port`, or at any port),
/// and the WorkloadEntry at its address.
fn inbound_objects(snapshot: &Snapshot, proxy: &Proxy, port: Option<u16>) -> Vec<ObjectKey> {
    let address = proxy.metadata.address.to_string();
    let mut keys = Vec::new();
    let mut workloads = BTreeSet::new();
    for service in snapshot.registry.services.values() {
        if service.namespace != proxy.metadata.namespace {
            continue;
        }
        for endpoint in service.endpoints.iter().filter(|e| e.address == address) {
            let reaches = port.is_none_or(|p| endpoint.ports.values().any(|t| *t == p));
            if !reaches {
                continue;
            }
            if let Some(object) = &service.object
                && !keys.contains(object)
            {
                keys.push(object.clone());
            }
            if let Some(workload) = &endpoint.workload {
                workloads.insert(workload.clone());
            }
        }
    }
    for (namespace, name) in workloads {
        let known = snapshot
            .workload_entries
            .iter()
            .any(|we| we.meta.namespace == namespace && we.meta.name == name);
        if known {
            keys.push(ObjectKey {
                kind: Kind::WorkloadEntry,
                namespace,
                name,
            });
        }
    }
    keys
}

#[cfg(test)]
mod tests;
