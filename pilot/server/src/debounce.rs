//! Debouncing: a burst of changes becomes one rebuild.
//!
//! A rebuild happens once the input has been quiet for `quiet`, or `max` after
//! the first change of the burst, whichever comes first (Istio's
//! `PILOT_DEBOUNCE_AFTER` and `PILOT_DEBOUNCE_MAX`). Pure: the caller supplies
//! the clock.

use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Debounce {
    pub quiet: Duration,
    pub max: Duration,
}

impl Default for Debounce {
    fn default() -> Self {
        Debounce {
            quiet: Duration::from_millis(100),
            max: Duration::from_secs(1),
        }
    }
}

/// The state of one burst.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Burst {
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Burst {
    /// Records a change at `now`.
    pub fn change(&mut self, now: Instant) {
        self.first.get_or_insert(now);
        self.last = Some(now);
    }

    /// When to rebuild, if anything changed: `None` while the burst is empty.
    pub fn due(&self, debounce: Debounce) -> Option<Instant> {
        let (first, last) = (self.first?, self.last?);
        Some((last + debounce.quiet).min(first + debounce.max))
    }

    /// Ends the burst (after a rebuild).
    pub fn reset(&mut self) {
        *self = Burst::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: Debounce = Debounce {
        quiet: Duration::from_millis(100),
        max: Duration::from_millis(1000),
    };

    #[test]
    fn an_empty_burst_is_never_due() {
        assert_eq!(Burst::default().due(D), None);
    }

    #[test]
    fn a_single_change_waits_for_the_quiet_period() {
        let t0 = Instant::now();
        let mut b = Burst::default();
        b.change(t0);
        assert_eq!(b.due(D), Some(t0 + D.quiet));
    }

    #[test]
    fn each_change_extends_the_quiet_period() {
        let t0 = Instant::now();
        let mut b = Burst::default();
        b.change(t0);
        b.change(t0 + Duration::from_millis(80));
        assert_eq!(b.due(D), Some(t0 + Duration::from_millis(180)));
    }

    #[test]
    fn a_continuous_stream_is_cut_at_the_cap() {
        let t0 = Instant::now();
        let mut b = Burst::default();
        for i in 0..50 {
            b.change(t0 + Duration::from_millis(i * 50));
        }
        assert_eq!(b.due(D), Some(t0 + D.max));
        b.reset();
        assert_eq!(b.due(D), None);
    }
}
