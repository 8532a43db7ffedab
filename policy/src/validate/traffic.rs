//! DestinationRule traffic policies: load balancing, connection pool, outlier
//! detection and per-port overrides, at the rule and at each subset.

use super::{check_duration, check_port, check_unique};
use crate::diag::{Diagnostic, FieldPath};
use crate::networking::{
    ConnectionPool, DestinationRuleSpec, HashAlgorithm, HashKey, LbPolicy, LoadBalancer,
    LocalityLbSetting, OutlierDetection, PortTrafficPolicy, TrafficPolicy,
};

pub(super) fn check_destination_rule_policies(
    spec: &DestinationRuleSpec,
    out: &mut Vec<Diagnostic>,
) {
    let path = FieldPath::new("spec");
    let rule_outlier = spec
        .traffic_policy
        .as_deref()
        .is_some_and(|p| has_outlier(p.outlier_detection.as_ref(), &p.port_level_settings));
    if let Some(policy) = &spec.traffic_policy {
        check_policy(policy, false, &path.field("trafficPolicy"), out);
    }
    for (i, subset) in spec.subsets.iter().enumerate() {
        if let Some(policy) = &subset.traffic_policy {
            check_policy(
                policy,
                rule_outlier,
                &path.field("subsets").index(i).field("trafficPolicy"),
                out,
            );
        }
    }
}

/// Whether outlier detection is on at this level or any of its ports.
fn has_outlier(outlier: Option<&OutlierDetection>, ports: &[PortTrafficPolicy]) -> bool {
    outlier.is_some() || ports.iter().any(|p| p.outlier_detection.is_some())
}

/// One traffic policy; `inherited_outlier` says whether the level above it
/// already has outlier detection.
fn check_policy(
    policy: &TrafficPolicy,
    inherited_outlier: bool,
    path: &FieldPath,
    out: &mut Vec<Diagnostic>,
) {
    let outlier = inherited_outlier || policy.outlier_detection.is_some();
    check_policies(
        policy.load_balancer.as_ref(),
        policy.connection_pool.as_ref(),
        policy.outlier_detection.as_ref(),
        outlier,
        path,
        out,
    );
    let ports = path.field("portLevelSettings");
    for (i, setting) in policy.port_level_settings.iter().enumerate() {
        let at = ports.index(i);
        check_port(setting.port, at.field("port").field("number"), out);
        check_policies(
            setting.load_balancer.as_ref(),
            setting.connection_pool.as_ref(),
            setting.outlier_detection.as_ref(),
            outlier || setting.outlier_detection.is_some(),
            &at,
            out,
        );
    }
    check_unique(
        policy
            .port_level_settings
            .iter()
            .enumerate()
            .map(|(i, s)| (ports.index(i).field("port").field("number"), s.port)),
        "port",
        out,
    );
}

fn check_policies(
    load_balancer: Option<&LoadBalancer>,
    connection_pool: Option<&ConnectionPool>,
    outlier_detection: Option<&OutlierDetection>,
    outlier_in_force: bool,
    path: &FieldPath,
    out: &mut Vec<Diagnostic>,
) {
    if let Some(lb) = load_balancer {
        check_load_balancer(lb, outlier_in_force, &path.field("loadBalancer"), out);
    }
    if let Some(pool) = connection_pool {
        check_connection_pool(pool, &path.field("connectionPool"), out);
    }
    if let Some(outlier) = outlier_detection {
        check_outlier(outlier, &path.field("outlierDetection"), out);
    }
}

fn check_load_balancer(
    lb: &LoadBalancer,
    outlier_in_force: bool,
    path: &FieldPath,
    out: &mut Vec<Diagnostic>,
) {
    if let Some(LbPolicy::ConsistentHash(hash)) = &lb.policy {
        let p = path.field("consistentHash");
        match &hash.key {
            HashKey::HttpHeaderName(name) if name.is_empty() => out.push(Diagnostic::error(
                p.field("httpHeaderName"),
                "header name must not be empty",
            )),
            HashKey::HttpCookie { name, .. } if name.is_empty() => out.push(Diagnostic::error(
                p.field("httpCookie").field("name"),
                "cookie name must not be empty",
            )),
            HashKey::HttpQueryParameterName(name) if name.is_empty() => {
                out.push(Diagnostic::error(
                    p.field("httpQueryParameterName"),
                    "query parameter name must not be empty",
                ))
            }
            _ => {}
        }
        match hash.algorithm {
            HashAlgorithm::Maglev {
                table_size: Some(size),
            } if !is_prime(size) => out.push(Diagnostic::error(
                p.field("maglev").field("tableSize"),
                format!("tableSize must be a prime number (Envoy requires it), got {size}"),
            )),
            HashAlgorithm::RingHash {
                minimum_ring_size: Some(0),
            } => out.push(Diagnostic::error(
                p.clone(),
                "minimumRingSize must be at least 1",
            )),
            _ => {}
        }
    }
    if let Some(locality) = &lb.locality_lb_setting {
        check_locality_lb(
            locality,
            outlier_in_force,
            &path.field("localityLbSetting"),
            out,
        );
    }
}

fn is_prime(n: u64) -> bool {
    n >= 2
        && (2..)
            .take_while(|d| d * d <= n)
            .all(|d| !n.is_multiple_of(d))
}

fn check_locality_lb(
    locality: &LocalityLbSetting,
    outlier_in_force: bool,
    path: &FieldPath,
    out: &mut Vec<Diagnostic>,
) {
    if !locality.failover.is_empty() && !locality.distribute.is_empty() {
        out.push(Diagnostic::error(
            path.clone(),
            "set only one of failover and distribute",
        ));
    }
    let failover = path.field("failover");
    for (i, (from, to)) in locality.failover.iter().enumerate() {
        let at = failover.index(i);
        for (field, region) in [("from", from), ("to", to)] {
            if region.is_empty() || region.contains('/') {
                out.push(Diagnostic::error(
                    at.field(field),
                    format!("failover {field} must be a region (no '/'), got {region:?}"),
                ));
            }
        }
        if from == to {
            out.push(Diagnostic::error(
                at.clone(),
                format!("failover from and to are the same region {from:?}"),
            ));
        }
    }
    let distribute = path.field("distribute");
    for (i, (from, to)) in locality.distribute.iter().enumerate() {
        let at = distribute.index(i);
        if from.is_empty() {
            out.push(Diagnostic::error(at.field("from"), "from is required"));
        }
        let sum: u64 = to.values().map(|w| u64::from(*w)).sum();
        if sum != 100 {
            out.push(Diagnostic::error(
                at.field("to"),
                format!("weights must sum to 100, got {sum}"),
            ));
        }
    }
    let wants_failover = !locality.failover.is_empty() || !locality.failover_priority.is_empty();
    if wants_failover && !outlier_in_force && locality.enabled != Some(false) {
        out.push(Diagnostic::warning(
            path.clone(),
            "failover without outlierDetection is ignored: Istio fails over only when outlier detection ejects endpoints",
        ));
    }
}

fn check_connection_pool(pool: &ConnectionPool, path: &FieldPath, out: &mut Vec<Diagnostic>) {
    let mut at_least_one = |value: Option<u32>, p: FieldPath| {
        if value == Some(0) {
            out.push(Diagnostic::error(p, "must be at least 1, got 0"));
        }
    };
    if let Some(tcp) = &pool.tcp {
        let p = path.field("tcp");
        at_least_one(tcp.max_connections, p.field("maxConnections"));
    }
    if let Some(http) = &pool.http {
        let p = path.field("http");
        at_least_one(
            http.http1_max_pending_requests,
            p.field("http1MaxPendingRequests"),
        );
        at_least_one(http.http2_max_requests, p.field("http2MaxRequests"));
    }
    if let Some(tcp) = &pool.tcp {
        check_duration(
            tcp.connect_timeout,
            false,
            path.field("tcp").field("connectTimeout"),
            out,
        );
    }
    if let Some(http) = &pool.http {
        check_duration(
            http.idle_timeout,
            false,
            path.field("http").field("idleTimeout"),
            out,
        );
    }
}

fn check_outlier(outlier: &OutlierDetection, path: &FieldPath, out: &mut Vec<Diagnostic>) {
    for (name, value) in [
        ("maxEjectionPercent", outlier.max_ejection_percent),
        ("minHealthPercent", outlier.min_health_percent),
    ] {
        if let Some(v) = value
            && v > 100
        {
            out.push(Diagnostic::error(
                path.field(name),
                format!("percentage must be 0-100, got {v}"),
            ));
        }
    }
    check_duration(outlier.interval, false, path.field("interval"), out);
    check_duration(
        outlier.base_ejection_time,
        false,
        path.field("baseEjectionTime"),
        out,
    );
    let gateway_ejection = outlier.consecutive_gateway_errors.is_some()
        || outlier.consecutive_errors.is_some_and(|n| n > 0);
    if outlier.consecutive_5xx_errors == Some(0) && !gateway_ejection {
        out.push(Diagnostic::warning(
            path.field("consecutive5xxErrors"),
            "consecutive5xxErrors 0 turns 5xx ejection off, and no other ejection is set",
        ));
    }
}
