//! DestinationRule: subsets and the traffic policy for a host (load balancing,
//! connection pool, outlier detection, per-port overrides).

use std::collections::BTreeMap;
use std::time::Duration;

use serde_yaml::Value;

use super::{
    DecodeError, Fields, Findings, Result, Shape, ShapeId, boolean, duration, keyword, list,
    map_entries, port, string, string_list, string_map, uint32, uint64,
};
use crate::diag::{Diagnostic, FieldPath};
use crate::meta::ObjectMeta;
use crate::networking::{
    ClientTls, ConnectionPool, ConsistentHash, DestinationRule, DestinationRuleSpec, HashAlgorithm,
    HashKey, HttpSettings, LbPolicy, LoadBalancer, LocalityLbSetting, OutlierDetection,
    PortTrafficPolicy, SimpleLb, Subset, TcpSettings, TlsMode, TrafficPolicy,
};

pub(super) const DESTINATION_RULE: Shape = Shape {
    name: "DestinationRule.spec",
    known: &["host", "subsets", "exportTo", "trafficPolicy"],
    unsupported: &["workloadSelector"],
    ignored: &[],
    proto_names: true,
};

pub(super) const SUBSET: Shape = Shape {
    name: "DestinationRule.spec.subsets[]",
    known: &["name", "labels", "trafficPolicy"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const TRAFFIC_POLICY: Shape = Shape {
    name: "DestinationRule.spec.trafficPolicy",
    known: &[
        "loadBalancer",
        "connectionPool",
        "outlierDetection",
        "portLevelSettings",
        "tls",
    ],
    unsupported: &["tunnel", "proxyProtocol", "retryBudget"],
    ignored: &[],
    proto_names: true,
};

pub(super) const PORT_TRAFFIC_POLICY: Shape = Shape {
    name: "DestinationRule.spec.trafficPolicy.portLevelSettings[]",
    known: &[
        "port",
        "loadBalancer",
        "connectionPool",
        "outlierDetection",
        "tls",
    ],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const CLIENT_TLS: Shape = Shape {
    name: "DestinationRule.spec.trafficPolicy.tls",
    known: &[
        "mode",
        "clientCertificate",
        "privateKey",
        "caCertificates",
        "subjectAltNames",
        "sni",
    ],
    unsupported: &["credentialName", "insecureSkipVerify", "caCrl"],
    ignored: &[],
    proto_names: true,
};

pub(super) const PORT_SELECTOR: Shape = Shape {
    name: "DestinationRule.spec.trafficPolicy.portLevelSettings[].port",
    known: &["number"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const LOAD_BALANCER: Shape = Shape {
    name: "DestinationRule.spec.trafficPolicy.loadBalancer",
    known: &["simple", "consistentHash", "localityLbSetting"],
    unsupported: &["warmupDurationSecs", "warmup"],
    ignored: &[],
    proto_names: true,
};

pub(super) const CONSISTENT_HASH: Shape = Shape {
    name: "DestinationRule.spec.trafficPolicy.loadBalancer.consistentHash",
    known: &[
        "httpHeaderName",
        "httpCookie",
        "useSourceIp",
        "httpQueryParameterName",
        "ringHash",
        "maglev",
        "minimumRingSize",
    ],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const HTTP_COOKIE: Shape = Shape {
    name: "DestinationRule.spec.trafficPolicy.loadBalancer.consistentHash.httpCookie",
    known: &["name", "path", "ttl"],
    unsupported: &["attributes"],
    ignored: &[],
    proto_names: true,
};

pub(super) const RING_HASH: Shape = Shape {
    name: "DestinationRule.spec.trafficPolicy.loadBalancer.consistentHash.ringHash",
    known: &["minimumRingSize"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const MAGLEV: Shape = Shape {
    name: "DestinationRule.spec.trafficPolicy.loadBalancer.consistentHash.maglev",
    known: &["tableSize"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const LOCALITY_LB: Shape = Shape {
    name: "DestinationRule.spec.trafficPolicy.loadBalancer.localityLbSetting",
    known: &["enabled", "failover", "distribute", "failoverPriority"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const FROM_TO: Shape = Shape {
    name: "DestinationRule.spec.trafficPolicy.loadBalancer.localityLbSetting.failover[]",
    known: &["from", "to"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const CONNECTION_POOL: Shape = Shape {
    name: "DestinationRule.spec.trafficPolicy.connectionPool",
    known: &["tcp", "http"],
    unsupported: &[],
    ignored: &[],
    proto_names: true,
};

pub(super) const TCP: Shape = Shape {
    name: "DestinationRule.spec.trafficPolicy.connectionPool.tcp",
    known: &["maxConnections", "connectTimeout"],
    unsupported: &["tcpKeepalive", "maxConnectionDuration", "idleTimeout"],
    ignored: &[],
    proto_names: true,
};

pub(super) const HTTP: Shape = Shape {
    name: "DestinationRule.spec.trafficPolicy.connectionPool.http",
    known: &[
        "http1MaxPendingRequests",
        "http2MaxRequests",
        "maxRequestsPerConnection",
        "maxRetries",
        "idleTimeout",
    ],
    unsupported: &[
        "h2UpgradePolicy",
        "useClientProtocol",
        "maxConcurrentStreams",
    ],
    ignored: &[],
    proto_names: true,
};

pub(super) const OUTLIER: Shape = Shape {
    name: "DestinationRule.spec.trafficPolicy.outlierDetection",
    known: &[
        "consecutive5xxErrors",
        "consecutiveGatewayErrors",
        "consecutiveErrors",
        "interval",
        "baseEjectionTime",
        "maxEjectionPercent",
        "minHealthPercent",
    ],
    unsupported: &[
        "splitExternalLocalOriginErrors",
        "consecutiveLocalOriginFailures",
    ],
    ignored: &[],
    proto_names: true,
};

fn opt_string(fields: &Fields<'_>, name: &str) -> Result<Option<String>> {
    fields.get(name).map(|(p, v)| string(v, &p)).transpose()
}

fn opt_u32(fields: &Fields<'_>, name: &str) -> Result<Option<u32>> {
    fields.get(name).map(|(p, v)| uint32(v, &p)).transpose()
}

fn opt_duration(fields: &Fields<'_>, name: &str) -> Result<Option<Duration>> {
    fields.get(name).map(|(p, v)| duration(v, &p)).transpose()
}

pub(crate) fn decode_destination_rule(
    meta: ObjectMeta,
    path: &FieldPath,
    spec: &Value,
    findings: &mut Findings,
) -> Result<DestinationRule> {
    let fields = Fields::new(spec, path, ShapeId::DestinationRule)?;
    let export_to = fields
        .get("exportTo")
        .map(|(p, v)| string_list(v, &p))
        .transpose()?
        .unwrap_or_default();
    let host = opt_string(&fields, "host")?.unwrap_or_default();
    let traffic_policy = fields
        .get("trafficPolicy")
        .map(|(p, v)| decode_traffic_policy(&p, v, findings))
        .transpose()?
        .map(Box::new);
    let mut subsets = Vec::new();
    if let Some((p, v)) = fields.get("subsets") {
        for (p, v) in list(v, &p)? {
            let fields = Fields::new(v, &p, ShapeId::Subset)?;
            subsets.push(Subset {
                name: opt_string(&fields, "name")?.unwrap_or_default(),
                labels: fields
                    .get("labels")
                    .map(|(p, v)| string_map(v, &p))
                    .transpose()?
                    .unwrap_or_default(),
                traffic_policy: fields
                    .get("trafficPolicy")
                    .map(|(p, v)| decode_traffic_policy(&p, v, findings))
                    .transpose()?,
            });
        }
    }
    Ok(DestinationRule {
        meta,
        spec: DestinationRuleSpec {
            host,
            traffic_policy,
            subsets,
            export_to,
        },
    })
}

fn decode_traffic_policy(
    path: &FieldPath,
    value: &Value,
    findings: &mut Findings,
) -> Result<TrafficPolicy> {
    let fields = Fields::new(value, path, ShapeId::TrafficPolicy)?;
    let mut port_level_settings = Vec::new();
    if let Some((p, v)) = fields.get("portLevelSettings") {
        for (p, v) in list(v, &p)? {
            let f = Fields::new(v, &p, ShapeId::PortTrafficPolicy)?;
            let (pp, pv) = f.require("port")?;
            let selector = Fields::new(pv, &pp, ShapeId::PortLevelPort)?;
            let (np, nv) = selector.require("number")?;
            let (load_balancer, connection_pool, outlier_detection, tls) =
                decode_policies(&f, findings)?;
            port_level_settings.push(PortTrafficPolicy {
                port: port(nv, &np)?,
                load_balancer,
                connection_pool,
                outlier_detection,
                tls,
            });
        }
    }
    let (load_balancer, connection_pool, outlier_detection, tls) =
        decode_policies(&fields, findings)?;
    Ok(TrafficPolicy {
        load_balancer,
        connection_pool,
        outlier_detection,
        tls,
        port_level_settings,
    })
}

type Policies = (
    Option<LoadBalancer>,
    Option<ConnectionPool>,
    Option<OutlierDetection>,
    Option<ClientTls>,
);

/// The policies a traffic policy and a port-level setting share.
fn decode_policies(fields: &Fields<'_>, findings: &mut Findings) -> Result<Policies> {
    Ok((
        fields
            .get("loadBalancer")
            .map(|(p, v)| decode_load_balancer(&p, v, findings))
            .transpose()?,
        fields
            .get("connectionPool")
            .map(|(p, v)| decode_connection_pool(&p, v))
            .transpose()?,
        fields
            .get("outlierDetection")
            .map(|(p, v)| decode_outlier_detection(&p, v, findings))
            .transpose()?,
        fields
            .get("tls")
            .map(|(p, v)| decode_client_tls(&p, v))
            .transpose()?,
    ))
}

const TLS_MODES: &[(&str, TlsMode)] = &[
    ("DISABLE", TlsMode::Disable),
    ("SIMPLE", TlsMode::Simple),
    ("MUTUAL", TlsMode::Mutual),
    ("ISTIO_MUTUAL", TlsMode::IstioMutual),
];

/// `tls`, with Istio's rules on which fields each mode takes: files only
/// for SIMPLE and MUTUAL, a client certificate and key required for MUTUAL.
fn decode_client_tls(path: &FieldPath, value: &Value) -> Result<ClientTls> {
    let fields = Fields::new(value, path, ShapeId::ClientTls)?;
    let text = |name: &str| fields.get(name).map(|(p, v)| string(v, &p)).transpose();
    let mode = match fields.get("mode") {
        Some((p, v)) => keyword(v, &p, TLS_MODES)?,
        None => {
            return Err(DecodeError::new(
                &path.field("mode"),
                "required: one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL",
            ));
        }
    };
    let tls = ClientTls {
        mode,
        client_certificate: text("clientCertificate")?,
        private_key: text("privateKey")?,
        ca_certificates: text("caCertificates")?,
        subject_alt_names: fields
            .get("subjectAltNames")
            .map(|(p, v)| string_list(v, &p))
            .transpose()?
            .unwrap_or_default(),
        sni: text("sni")?,
    };
    let files = [
        ("clientCertificate", &tls.client_certificate),
        ("privateKey", &tls.private_key),
        ("caCertificates", &tls.ca_certificates),
    ];
    match mode {
        TlsMode::Disable | TlsMode::IstioMutual => {
            if let Some((name, _)) = files.iter().find(|(_, v)| v.is_some()) {
                let mode = if mode == TlsMode::Disable {
                    "DISABLE"
                } else {
                    "ISTIO_MUTUAL, which uses the workload's mesh certificate"
                };
                return Err(DecodeError::new(
                    &path.field(name),
                    format!("not allowed with mode {mode}"),
                ));
            }
            if mode == TlsMode::Disable {
                for name in ["subjectAltNames", "sni"] {
                    if fields.get(name).is_some() {
                        return Err(DecodeError::new(
                            &path.field(name),
                            "not allowed with mode DISABLE",
                        ));
                    }
                }
            }
        }
        TlsMode::Mutual => {
            for (name, value) in &files[..2] {
                if value.is_none() {
                    return Err(DecodeError::new(
                        &path.field(name),
                        "required with mode MUTUAL",
                    ));
                }
            }
        }
        TlsMode::Simple => {
            if let Some((name, _)) = files[..2].iter().find(|(_, v)| v.is_some()) {
                return Err(DecodeError::new(
                    &path.field(name),
                    "a client certificate needs mode MUTUAL, not SIMPLE",
                ));
            }
        }
    }
    Ok(tls)
}

const SIMPLE: &[(&str, SimpleLb)] = &[
    ("UNSPECIFIED", SimpleLb::Unspecified),
    ("ROUND_ROBIN", SimpleLb::RoundRobin),
    ("LEAST_REQUEST", SimpleLb::LeastRequest),
    ("LEAST_CONN", SimpleLb::LeastRequest),
    ("RANDOM", SimpleLb::Random),
    ("PASSTHROUGH", SimpleLb::Passthrough),
];

fn decode_load_balancer(
    path: &FieldPath,
    value: &Value,
    findings: &mut Findings,
) -> Result<LoadBalancer> {
    let fields = Fields::new(value, path, ShapeId::LoadBalancer)?;
    let simple = match fields.get("simple") {
        Some((p, v)) => {
            if v.as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("LEAST_CONN"))
            {
                findings.push(Diagnostic::warning(
                    p.clone(),
                    "LEAST_CONN is deprecated; it means LEAST_REQUEST",
                ));
            }
            Some(keyword(v, &p, SIMPLE)?)
        }
        None => None,
    };
    let hash = match fields.get("consistentHash") {
        Some((p, v)) => decode_consistent_hash(&p, v, findings)?,
        None => None,
    };
    let policy = match (simple, hash) {
        (Some(_), Some(hash)) => {
            findings.push(Diagnostic::error(
                path.clone(),
                "set only one of simple and consistentHash",
            ));
            Some(LbPolicy::ConsistentHash(hash))
        }
        (Some(simple), None) => Some(LbPolicy::Simple(simple)),
        (None, Some(hash)) => Some(LbPolicy::ConsistentHash(hash)),
        (None, None) => None,
    };
    Ok(LoadBalancer {
        policy,
        locality_lb_setting: fields
            .get("localityLbSetting")
            .map(|(p, v)| decode_locality_lb(&p, v))
            .transpose()?,
    })
}

/// One hash key and at most one algorithm. `None` (with a finding) when no
/// key is given.
fn decode_consistent_hash(
    path: &FieldPath,
    value: &Value,
    findings: &mut Findings,
) -> Result<Option<ConsistentHash>> {
    let fields = Fields::new(value, path, ShapeId::ConsistentHash)?;
    let mut keys = Vec::new();
    if let Some((p, v)) = fields.get("httpHeaderName") {
        keys.push(HashKey::HttpHeaderName(string(v, &p)?));
    }
    if let Some((p, v)) = fields.get("httpCookie") {
        let f = Fields::new(v, &p, ShapeId::HttpCookie)?;
        let (np, nv) = f.require("name")?;
        keys.push(HashKey::HttpCookie {
            name: string(nv, &np)?,
            path: opt_string(&f, "path")?,
            ttl: opt_duration(&f, "ttl")?,
        });
    }
    if let Some((p, v)) = fields.get("useSourceIp")
        && boolean(v, &p)?
    {
        keys.push(HashKey::UseSourceIp);
    }
    if let Some((p, v)) = fields.get("httpQueryParameterName") {
        keys.push(HashKey::HttpQueryParameterName(string(v, &p)?));
    }
    if keys.len() != 1 {
        findings.push(Diagnostic::error(
            path.clone(),
            format!(
                "exactly one of httpHeaderName, httpCookie, useSourceIp or httpQueryParameterName must be set, got {}",
                keys.len()
            ),
        ));
    }
    let mut algorithms = Vec::new();
    if let Some((p, v)) = fields.get("ringHash") {
        let f = Fields::new(v, &p, ShapeId::RingHash)?;
        let size = f
            .get("minimumRingSize")
            .map(|(p, v)| uint64(v, &p))
            .transpose()?;
        algorithms.push((
            "ringHash",
            HashAlgorithm::RingHash {
                minimum_ring_size: size,
            },
        ));
    }
    if let Some((p, v)) = fields.get("maglev") {
        let f = Fields::new(v, &p, ShapeId::Maglev)?;
        let size = f.get("tableSize").map(|(p, v)| uint64(v, &p)).transpose()?;
        algorithms.push(("maglev", HashAlgorithm::Maglev { table_size: size }));
    }
    if let Some((p, v)) = fields.get("minimumRingSize") {
        let size = uint64(v, &p)?;
        algorithms.push((
            "minimumRingSize",
            HashAlgorithm::RingHash {
                minimum_ring_size: Some(size),
            },
        ));
    }
    if algorithms.len() > 1 {
        let names: Vec<&str> = algorithms.iter().map(|(n, _)| *n).collect();
        findings.push(Diagnostic::error(
            path.clone(),
            format!(
                "set only one of ringHash, maglev or the deprecated minimumRingSize, got {}",
                names.join(" and ")
            ),
        ));
    }
    let algorithm = algorithms.into_iter().next().map_or(
        HashAlgorithm::RingHash {
            minimum_ring_size: None,
        },
        |(_, a)| a,
    );
    Ok(keys
        .into_iter()
        .next()
        .map(|key| ConsistentHash { key, algorithm }))
}

fn decode_locality_lb(path: &FieldPath, value: &Value) -> Result<LocalityLbSetting> {
    let fields = Fields::new(value, path, ShapeId::LocalityLb)?;
    let mut failover = Vec::new();
    if let Some((p, v)) = fields.get("failover") {
        for (p, v) in list(v, &p)? {
            let f = Fields::new(v, &p, ShapeId::LocalityFromTo)?;
            failover.push((
                opt_string(&f, "from")?.unwrap_or_default(),
                opt_string(&f, "to")?.unwrap_or_default(),
            ));
        }
    }
    let mut distribute = Vec::new();
    if let Some((p, v)) = fields.get("distribute") {
        for (p, v) in list(v, &p)? {
            let f = Fields::new(v, &p, ShapeId::LocalityFromTo)?;
            let mut to = BTreeMap::new();
            if let Some((tp, tv)) = f.get("to") {
                for (locality, lp, weight) in map_entries(tv, &tp)? {
                    to.insert(locality, uint32(weight, &lp)?);
                }
            }
            distribute.push((opt_string(&f, "from")?.unwrap_or_default(), to));
        }
    }
    Ok(LocalityLbSetting {
        enabled: fields
            .get("enabled")
            .map(|(p, v)| boolean(v, &p))
            .transpose()?,
        failover,
        distribute,
        failover_priority: fields
            .get("failoverPriority")
            .map(|(p, v)| string_list(v, &p))
            .transpose()?
            .unwrap_or_default(),
    })
}

fn decode_connection_pool(path: &FieldPath, value: &Value) -> Result<ConnectionPool> {
    let fields = Fields::new(value, path, ShapeId::ConnectionPool)?;
    let tcp = match fields.get("tcp") {
        Some((p, v)) => {
            let f = Fields::new(v, &p, ShapeId::TcpSettings)?;
            Some(TcpSettings {
                max_connections: opt_u32(&f, "maxConnections")?,
                connect_timeout: opt_duration(&f, "connectTimeout")?,
            })
        }
        None => None,
    };
    let http = match fields.get("http") {
        Some((p, v)) => {
            let f = Fields::new(v, &p, ShapeId::HttpSettings)?;
            Some(HttpSettings {
                http1_max_pending_requests: opt_u32(&f, "http1MaxPendingRequests")?,
                http2_max_requests: opt_u32(&f, "http2MaxRequests")?,
                max_requests_per_connection: opt_u32(&f, "maxRequestsPerConnection")?,
                max_retries: opt_u32(&f, "maxRetries")?,
                idle_timeout: opt_duration(&f, "idleTimeout")?,
            })
        }
        None => None,
    };
    Ok(ConnectionPool { tcp, http })
}

fn decode_outlier_detection(
    path: &FieldPath,
    value: &Value,
    findings: &mut Findings,
) -> Result<OutlierDetection> {
    let fields = Fields::new(value, path, ShapeId::OutlierDetection)?;
    if let Some((p, _)) = fields.get("consecutiveErrors") {
        findings.push(Diagnostic::warning(
            p,
            "consecutiveErrors is deprecated: it is compiled as consecutiveGatewayErrors (502, 503 and 504), as Istio's API reference defines it; use consecutiveGatewayErrors or consecutive5xxErrors",
        ));
    }
    Ok(OutlierDetection {
        consecutive_5xx_errors: opt_u32(&fields, "consecutive5xxErrors")?,
        consecutive_gateway_errors: opt_u32(&fields, "consecutiveGatewayErrors")?,
        consecutive_errors: opt_u32(&fields, "consecutiveErrors")?,
        interval: opt_duration(&fields, "interval")?,
        base_ejection_time: opt_duration(&fields, "baseEjectionTime")?,
        max_ejection_percent: opt_u32(&fields, "maxEjectionPercent")?,
        min_health_percent: opt_u32(&fields, "minHealthPercent")?,
    })
}
