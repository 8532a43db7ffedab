//! Durations as Istio accepts them: Go's `time.ParseDuration` forms (`1s`,
//! `0.5s`, `100ms`, `1m30s`, `1h`), which include the protobuf JSON form.

use std::time::Duration;

use serde_yaml::Value;

use super::{DecodeError, Result, describe};
use crate::diag::FieldPath;

/// Nanoseconds per unit, longest suffix first so `ms` is not read as `m`.
const UNITS: &[(&str, u128)] = &[
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("μs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// A non-negative duration such as `1.5s`; `0` alone is zero.
pub(crate) fn duration(value: &Value, path: &FieldPath) -> Result<Duration> {
    let Value::String(text) = value else {
        return Err(DecodeError::new(
            path,
            format!(
                "expected a duration such as \"1s\" or \"100ms\", got {}",
                describe(value)
            ),
        ));
    };
    parse(text).map_err(|why| DecodeError::new(path, format!("invalid duration {text:?}: {why}")))
}

fn parse(text: &str) -> Result<Duration, &'static str> {
    let text = text.trim();
    if text.starts_with('-') {
        return Err("durations cannot be negative");
    }
    let mut rest = text.strip_prefix('+').unwrap_or(text);
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err("expected a number and a unit such as 1s or 100ms");
    }
    let mut nanos: u128 = 0;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        if number.is_empty() || number == "." || number.matches('.').count() > 1 {
            return Err("expected a number and a unit such as 1s or 100ms");
        }
        let (unit, scale) = UNITS
            .iter()
            .filter(|(u, _)| after.starts_with(u))
            .max_by_key(|(u, _)| u.len())
            .ok_or("missing or unknown unit; use ns, us, ms, s, m or h")?;
        nanos = nanos
            .checked_add(scaled(number, *scale)?)
            .ok_or("duration is too large")?;
        rest = &after[unit.len()..];
    }
    let secs = u64::try_from(nanos / 1_000_000_000).map_err(|_| "duration is too large")?;
    // The remainder is below 10^9, so it fits.
    let sub = u32::try_from(nanos % 1_000_000_000).unwrap_or(0);
    Ok(Duration::new(secs, sub))
}

/// `number` (digits with at most one dot) times `scale` nanoseconds,
/// dropping precision below a nanosecond as Go does.
fn scaled(number: &str, scale: u128) -> Result<u128, &'static str> {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let whole: u128 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| "duration is too large")?
    };
    let mut total = whole.checked_mul(scale).ok_or("duration is too large")?;
    let mut place = scale;
    for digit in fraction.chars() {
        place /= 10;
        if place == 0 {
            break;
        }
        let d = u128::from(digit.to_digit(10).unwrap_or(0));
        total = total
            .checked_add(d * place)
            .ok_or("duration is too large")?;
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Duration {
        parse(text).unwrap()
    }

    #[test]
    fn go_and_protobuf_forms() {
        assert_eq!(ok("1s"), Duration::from_secs(1));
        assert_eq!(ok("0.5s"), Duration::from_millis(500));
        assert_eq!(ok("100ms"), Duration::from_millis(100));
        assert_eq!(ok("1m"), Duration::from_secs(60));
        assert_eq!(ok("1h"), Duration::from_secs(3600));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok("250us"), Duration::from_micros(250));
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok(".25s"), Duration::from_millis(250));
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("1h2m3s4ms"), Duration::new(3723, 4_000_000));
    }

    #[test]
    fn negatives_and_junk_are_rejected() {
        assert_eq!(parse("-1s"), Err("durations cannot be negative"));
        assert!(parse("1").is_err());
        assert!(parse("s").is_err());
        assert!(parse("1x").is_err());
        assert!(parse("1.2.3s").is_err());
        assert!(parse("").is_err());
        assert!(parse("1s junk").is_err());
        assert_eq!(
            parse("99999999999999999999999h"),
            Err("duration is too large")
        );
    }

    #[test]
    fn errors_name_the_path_and_value() {
        let p = FieldPath::new("spec.http[0].timeout");
        let v: Value = serde_yaml::from_str("\"-3s\"").unwrap();
        let err = duration(&v, &p).unwrap_err();
        assert_eq!(err.path, p);
        assert_eq!(
            err.message,
            "invalid duration \"-3s\": durations cannot be negative"
        );
        let v: Value = serde_yaml::from_str("5").unwrap();
        assert_eq!(
            duration(&v, &p).unwrap_err().message,
            "expected a duration such as \"1s\" or \"100ms\", got 5"
        );
    }
}
