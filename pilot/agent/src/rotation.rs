//! When to renew the workload certificate: a pure schedule, no clock.
//!
//! ```text
//! (not_before, not_after, fraction, now) ──► renewal_delay ──► sleep, then renew
//! failure n ──► retry_delay(n) (doubling, capped) ──► retry; the old certificate is still served
//! trust update {reissue, signing root} ──► reissue_due(held chain's root) ──► renew now
//! ```

use std::time::{Duration, SystemTime};

/// Istio's default: renew at half the lifetime.
pub const DEFAULT_ROTATION_FRACTION: f64 = 0.5;

/// The first retry after a failed renewal; it doubles up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_millis(500);
/// The longest wait between two attempts.
pub const MAX_RETRY: Duration = Duration::from_secs(30);

/// The instant at which a certificate valid from `not_before` to `not_after`
/// is renewed: `fraction` (clamped to 0..=1) of the way through its lifetime.
pub fn renewal_time(not_before: SystemTime, not_after: SystemTime, fraction: f64) -> SystemTime {
    let lifetime = not_after
        .duration_since(not_before)
        .unwrap_or(Duration::ZERO);
    let fraction = if fraction.is_finite() {
        fraction.clamp(0.0, 1.0)
    } else {
        DEFAULT_ROTATION_FRACTION
    };
    not_before + lifetime.mul_f64(fraction)
}

/// How long to wait at `now` before renewing; zero when it is due.
pub fn renewal_delay(
    not_before: SystemTime,
    not_after: SystemTime,
    fraction: f64,
    now: SystemTime,
) -> Duration {
    renewal_time(not_before, not_after, fraction)
        .duration_since(now)
        .unwrap_or(Duration::ZERO)
}

/// The wait before attempt `failures + 1` after `failures` failures in a row
/// (`failures` >= 1).
pub fn retry_delay(failures: u32) -> Duration {
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    FIRST_RETRY.saturating_mul(factor).min(MAX_RETRY)
}

/// Whether a certificate whose chain ends at `held_root_pem` must be
/// renewed now: a forced root rotation (`reissue`) whose key signs chains
/// that end at `signing_root_pem`, another root. Roots compare by their
/// DER; a held root that does not parse counts as another, a signing root
/// that does not parse asks for nothing.
pub fn reissue_due(reissue: bool, signing_root_pem: &str, held_root_pem: &str) -> bool {
    let der = |pem: &str| {
        citadel::pem::certificates("root", pem)
            .ok()
            .and_then(|certs| certs.into_iter().next())
    };
    match der(signing_root_pem) {
        Some(signing) => reissue && Some(signing) != der(held_root_pem),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: SystemTime = SystemTime::UNIX_EPOCH;

    fn at(secs: u64) -> SystemTime {
        T0 + Duration::from_secs(secs)
    }

    #[test]
    fn renews_at_the_fraction_of_the_lifetime() {
        let (nb, na) = (at(1000), at(1000 + 86_400));
        assert_eq!(renewal_time(nb, na, 0.5), at(1000 + 43_200));
        assert_eq!(renewal_time(nb, na, 0.8), at(1000 + 69_120));
        assert_eq!(
            renewal_delay(nb, na, 0.5, at(1000)),
            Duration::from_secs(43_200)
        );
        assert_eq!(
            renewal_delay(nb, na, 0.5, at(41_000)),
            Duration::from_secs(3_200)
        );
    }

    #[test]
    fn a_due_or_overdue_renewal_waits_nothing() {
        let (nb, na) = (at(0), at(60));
        assert_eq!(renewal_delay(nb, na, 0.5, at(30)), Duration::ZERO);
        assert_eq!(renewal_delay(nb, na, 0.5, at(59)), Duration::ZERO);
        assert_eq!(renewal_delay(nb, na, 0.5, at(600)), Duration::ZERO);
    }

    #[test]
    fn a_clock_behind_not_before_waits_longer() {
        // The CA backdates not_before; a local clock behind it still waits
        // until the renewal instant, never before.
        assert_eq!(
            renewal_delay(at(100), at(160), 0.5, at(90)),
            Duration::from_secs(40)
        );
    }

    #[test]
    fn odd_fractions_and_lifetimes_are_clamped() {
        let (nb, na) = (at(0), at(100));
        assert_eq!(renewal_time(nb, na, -1.0), at(0));
        assert_eq!(renewal_time(nb, na, 2.0), at(100));
        assert_eq!(renewal_time(nb, na, f64::NAN), at(50));
        // not_after before not_before: no lifetime, renew at once.
        assert_eq!(renewal_delay(at(100), at(0), 0.5, at(100)), Duration::ZERO);
    }

    #[test]
    fn retries_back_off_to_a_cap() {
        assert_eq!(retry_delay(1), Duration::from_millis(500));
        assert_eq!(retry_delay(2), Duration::from_secs(1));
        assert_eq!(retry_delay(3), Duration::from_secs(2));
        assert_eq!(retry_delay(7), Duration::from_secs(30));
        assert_eq!(retry_delay(u32::MAX), MAX_RETRY);
    }

    #[test]
    fn a_forced_rotation_renews_chains_of_another_root_only() {
        let (old, _) = crate::secret::tests::issued(1_700_000_000, 3600);
        let (new, _) = crate::secret::tests::issued(1_700_000_000, 3600);
        let (old_root, new_root) = (&old[1], &new[1]);
        assert!(reissue_due(true, new_root, old_root));
        assert!(!reissue_due(true, new_root, new_root));
        // The same root with other line endings is the same root.
        assert!(!reissue_due(
            true,
            new_root,
            &new_root.replace('\n', "\r\n")
        ));
        // Not forced: renewals keep their schedule.
        assert!(!reissue_due(false, new_root, old_root));
        // A chain of one (no root sent) renews when forced.
        assert!(reissue_due(true, new_root, ""));
        assert!(!reissue_due(true, "not a certificate", old_root));
    }
}
