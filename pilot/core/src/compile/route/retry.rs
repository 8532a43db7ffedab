//! Retry policies: Istio's defaults, and an http route's `retries`.
//!
//! ```text
//! retries unset ────────► default: 2 retries on connect-failure, refused-stream,
//!                         unavailable and cancelled, each to a new host; the
//!                         retriable-status-codes condition names no code, so
//!                         no status is retried (Istio 1.24 and later)
//! retries.attempts: 0 ──► no retry policy at all
//! retries set ──────────► the default, with attempts, perTryTimeout, retryOn
//!                         (numbers become retriable status codes) and
//!                         retryRemoteLocalities laid over it
//! inbound route ────────► 2 retries on reset-before-request, to the app
//! ```
//!
//! With consistent hashing a retry must go to the same host, so, as Istio
//! does, such routes do not get the "previous hosts" predicate.

use envoy_types::pb::envoy::config::route::v3::{
    RetryPolicy,
    retry_policy::{RetryHostPredicate, RetryPriority, retry_host_predicate, retry_priority},
};
use envoy_types::pb::envoy::extensions::retry::host::previous_hosts::v3::PreviousHostsPredicate;
use envoy_types::pb::envoy::extensions::retry::priority::previous_priorities::v3::PreviousPrioritiesConfig;
use envoy_types::pb::google::protobuf::UInt32Value;
use policy::networking::HttpRetry;

use crate::compile::proto;

const DEFAULT_RETRY_ON: &str =
    "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes";
const RETRIABLE_STATUS_CODES: &str = "retriable-status-codes";
/// A request reset before any of it was sent to the application was never
/// processed, so retrying it is safe for any method. Envoy counts a request
/// as sent once it is on an established connection, so this retries a
/// failed connection to the application (refused, timed out), not a request
/// on a connection the application resets, read or not: Istio's note that it
/// covers an application closing an idle connection does not hold on Envoy
/// 1.40 (tests/e2e/fidelity_retry.rs shows both sides).
const INBOUND_RETRY_ON: &str = "reset-before-request";

/// The retry policy of a route; `hashing` when it has a hash policy.
pub(super) fn policy(retries: Option<&HttpRetry>, hashing: bool) -> Option<RetryPolicy> {
    let Some(retries) = retries else {
        return Some(default_policy(hashing));
    };
    let HttpRetry {
        attempts,
        per_try_timeout,
        retry_on,
        retry_remote_localities,
    } = retries;
    if *attempts == 0 {
        return None;
    }
    let mut out = default_policy(hashing);
    out.num_retries = Some(UInt32Value { value: *attempts });
    if let Some(retry_on) = retry_on.as_deref().filter(|r| !r.trim().is_empty()) {
        let (conditions, codes) = parse_retry_on(retry_on);
        out.retry_on = conditions;
        out.retriable_status_codes = codes;
    }
    out.per_try_timeout = per_try_timeout.map(proto::duration);
    if *retry_remote_localities == Some(true) {
        out.retry_priority = Some(RetryPriority {
            name: "envoy.retry_priorities.previous_priorities".to_string(),
            config_type: Some(retry_priority::ConfigType::TypedConfig(proto::any(
                PreviousPrioritiesConfig {
                    update_frequency: 2,
                },
            ))),
        });
    }
    Some(out)
}

/// Istio's default: two retries on connection failures and refused or
/// cancelled streams, none on an HTTP status.
pub(super) fn default_policy(hashing: bool) -> RetryPolicy {
    RetryPolicy {
        retry_on: DEFAULT_RETRY_ON.to_string(),
        num_retries: Some(UInt32Value { value: 2 }),
        retry_host_predicate: if hashing {
            Vec::new()
        } else {
            vec![RetryHostPredicate {
                name: "envoy.retry_host_predicates.previous_hosts".to_string(),
                config_type: Some(retry_host_predicate::ConfigType::TypedConfig(proto::any(
                    PreviousHostsPredicate::default(),
                ))),
            }]
        },
        host_selection_retry_max_attempts: 5,
        ..Default::default()
    }
}

/// Istio's default for the inbound route to the application: two retries of
/// a request reset before it was read. The inbound route has one endpoint,
/// so no host predicate applies.
pub(super) fn inbound_policy() -> RetryPolicy {
    RetryPolicy {
        retry_on: INBOUND_RETRY_ON.to_string(),
        num_retries: Some(UInt32Value { value: 2 }),
        ..Default::default()
    }
}

/// Splits `retryOn` into Envoy conditions and HTTP status codes; when codes
/// are given, the `retriable-status-codes` condition that makes Envoy use
/// them is added if missing.
fn parse_retry_on(retry_on: &str) -> (String, Vec<u32>) {
    let mut conditions: Vec<&str> = Vec::new();
    let mut codes = Vec::new();
    for part in retry_on.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.parse::<u32>() {
            Ok(code) if (100..=599).contains(&code) => codes.push(code),
            _ => conditions.push(part),
        }
    }
    if !codes.is_empty() && !conditions.contains(&RETRIABLE_STATUS_CODES) {
        conditions.push(RETRIABLE_STATUS_CODES);
    }
    (conditions.join(","), codes)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn unset_keeps_istio_default() {
        let p = policy(None, false).unwrap();
        assert_eq!(p.retry_on, DEFAULT_RETRY_ON);
        assert_eq!(p.num_retries, Some(UInt32Value { value: 2 }));
        // No status is retried by default, 503 included.
        assert!(p.retriable_status_codes.is_empty());
        assert_eq!(p.host_selection_retry_max_attempts, 5);
        assert_eq!(p.retry_host_predicate.len(), 1);
        assert_eq!(
            p.retry_host_predicate[0].name,
            "envoy.retry_host_predicates.previous_hosts"
        );
        assert!(policy(None, true).unwrap().retry_host_predicate.is_empty());
    }

    #[test]
    fn inbound_default_retries_resets_before_request() {
        let p = inbound_policy();
        assert_eq!(p.retry_on, "reset-before-request");
        assert_eq!(p.num_retries, Some(UInt32Value { value: 2 }));
        assert!(p.retriable_status_codes.is_empty());
        assert!(p.retry_host_predicate.is_empty());
        assert_eq!(p.host_selection_retry_max_attempts, 0);
    }

    #[test]
    fn zero_attempts_disables_retries() {
        let r = HttpRetry {
            attempts: 0,
            retry_on: Some("5xx".into()),
            ..Default::default()
        };
        assert_eq!(policy(Some(&r), false), None);
    }

    #[test]
    fn fields_are_laid_over_the_default() {
        let r = HttpRetry {
            attempts: 5,
            per_try_timeout: Some(Duration::from_millis(250)),
            retry_on: Some("5xx, gateway-error,503,504".into()),
            retry_remote_localities: Some(true),
        };
        let p = policy(Some(&r), false).unwrap();
        assert_eq!(p.num_retries, Some(UInt32Value { value: 5 }));
        assert_eq!(p.retry_on, "5xx,gateway-error,retriable-status-codes");
        assert_eq!(p.retriable_status_codes, [503, 504]);
        assert_eq!(
            p.per_try_timeout,
            Some(proto::duration(Duration::from_millis(250)))
        );
        let priority = p.retry_priority.unwrap();
        assert_eq!(priority.name, "envoy.retry_priorities.previous_priorities");
        assert_eq!(p.retry_host_predicate.len(), 1);
    }

    #[test]
    fn retry_on_without_codes_replaces_default_codes() {
        let r = HttpRetry {
            attempts: 3,
            retry_on: Some("connect-failure".into()),
            ..Default::default()
        };
        let p = policy(Some(&r), false).unwrap();
        assert_eq!(p.retry_on, "connect-failure");
        assert!(p.retriable_status_codes.is_empty());
        assert_eq!(p.retry_priority, None);
    }

    #[test]
    fn attempts_alone_keep_default_conditions() {
        let r = HttpRetry {
            attempts: 4,
            ..Default::default()
        };
        let p = policy(Some(&r), false).unwrap();
        assert_eq!(p.retry_on, DEFAULT_RETRY_ON);
        assert!(p.retriable_status_codes.is_empty());
        assert_eq!(p.host_selection_retry_max_attempts, 5);
        assert_eq!(p.num_retries, Some(UInt32Value { value: 4 }));
    }

    #[test]
    fn codes_with_explicit_condition_are_not_doubled() {
        assert_eq!(
            parse_retry_on("retriable-status-codes,502"),
            ("retriable-status-codes".to_string(), vec![502])
        );
        assert_eq!(
            parse_retry_on("503"),
            ("retriable-status-codes".to_string(), vec![503])
        );
    }
}
