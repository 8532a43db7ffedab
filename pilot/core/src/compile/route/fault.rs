//! Fault injection: an http route's `fault` as the per-route config of
//! Envoy's fault filter (installed, empty, in the outbound listener).
//!
//! ```text
//! fault.delay {fixedDelay, percentage} ─► HTTPFault.delay (FaultDelay)
//! fault.abort {httpStatus, percentage} ─► HTTPFault.abort (FaultAbort)
//! percentage.value (0-100, fractional) ─► FractionalPercent per million
//! ```
//!
//! An unset percentage means every request, as the model documents. (Istio
//! leaves Envoy's percentage unset there, which Envoy reads as none; its
//! documentation promised every request.)

use envoy_types::pb::envoy::extensions::filters::common::fault::v3::{
    FaultDelay, fault_delay::FaultDelaySecifier,
};
use envoy_types::pb::envoy::extensions::filters::http::fault::v3::{
    FaultAbort, HttpFault, fault_abort::ErrorType,
};
use policy::networking::{self, HttpFaultInjection};

use crate::compile::proto;

/// Percentage applied when a fault does not give one.
const ALL: f64 = 100.0;

/// The fault filter's per-route config; `None` if there is nothing to inject.
pub(super) fn to_proto(fault: &HttpFaultInjection) -> Option<HttpFault> {
    let HttpFaultInjection { delay, abort } = fault;
    if delay.is_none() && abort.is_none() {
        return None;
    }
    Some(HttpFault {
        delay: delay.as_ref().map(|d| {
            let networking::FaultDelay {
                fixed_delay,
                percentage,
            } = d;
            FaultDelay {
                percentage: Some(proto::percent(percentage.unwrap_or(ALL))),
                fault_delay_secifier: Some(FaultDelaySecifier::FixedDelay(proto::duration(
                    *fixed_delay,
                ))),
            }
        }),
        abort: abort.as_ref().map(|a| {
            let networking::FaultAbort {
                http_status,
                percentage,
            } = a;
            FaultAbort {
                percentage: Some(proto::percent(percentage.unwrap_or(ALL))),
                error_type: Some(ErrorType::HttpStatus(u32::from(*http_status))),
                ..Default::default()
            }
        }),
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn empty_fault_injects_nothing() {
        assert_eq!(to_proto(&HttpFaultInjection::default()), None);
    }

    #[test]
    fn delay_and_abort_with_fractional_percentages() {
        let fault = HttpFaultInjection {
            delay: Some(networking::FaultDelay {
                fixed_delay: Duration::from_millis(1500),
                percentage: Some(12.5),
            }),
            abort: Some(networking::FaultAbort {
                http_status: 503,
                percentage: Some(0.1),
            }),
        };
        let out = to_proto(&fault).unwrap();
        let delay = out.delay.unwrap();
        assert_eq!(delay.percentage.unwrap().numerator, 125_000);
        assert_eq!(
            delay.fault_delay_secifier,
            Some(FaultDelaySecifier::FixedDelay(proto::duration(
                Duration::from_millis(1500)
            )))
        );
        let abort = out.abort.unwrap();
        assert_eq!(abort.percentage.unwrap().numerator, 1_000);
        assert_eq!(abort.error_type, Some(ErrorType::HttpStatus(503)));
    }

    #[test]
    fn unset_percentage_means_every_request() {
        let fault = HttpFaultInjection {
            delay: None,
            abort: Some(networking::FaultAbort {
                http_status: 418,
                percentage: None,
            }),
        };
        let out = to_proto(&fault).unwrap();
        assert_eq!(out.delay, None);
        assert_eq!(out.abort.unwrap().percentage.unwrap().numerator, 1_000_000);
    }
}
