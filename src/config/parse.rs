//! Parsers of setting values: each turns the text of one setting into its typed value, or says
//! what is wrong with it (the resolver adds which setting and where it came from). None panics
//! and none overflows, whatever the text.

// Values from requests, settings and receivers flow through this arithmetic: it must not wrap.
#![warn(clippy::arithmetic_side_effects)]

use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;

/// A whole number within `lo..=hi`.
pub fn in_range<T>(lo: T, hi: T) -> impl FnOnce(&str) -> Result<T, String>
where
    T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
{
    move |s| match s.parse::<T>() {
        Ok(n) if n >= lo && n <= hi => Ok(n),
        _ => Err(format!("'{s}' must be a whole number from {lo} to {hi}")),
    }
}

/// A number of `unit`-long steps within `lo..=hi`, as a duration (seconds, days).
pub fn duration_in(
    lo: u64,
    hi: u64,
    unit: Duration,
    what: &'static str,
) -> impl FnOnce(&str) -> Result<Duration, String> {
    move |s| {
        let n = s.parse::<u64>().ok().filter(|n| (lo..=hi).contains(n));
        n.and_then(|n| u32::try_from(n).ok())
            .and_then(|n| unit.checked_mul(n))
            .ok_or_else(|| format!("'{s}' must be a whole number of {what} from {lo} to {hi}"))
    }
}

/// A duration written with its unit (`500ms`, `30s`, `15m`, `72h`, `3d`; a bare number is seconds),
/// within `lo..=hi`.
pub fn duration_text(lo: Duration, hi: Duration) -> impl FnOnce(&str) -> Result<Duration, String> {
    move |s| crate::domain::time::parse_duration_text(s, lo, hi)
}

/// Comma-separated items, trimmed, empty ones left out.
pub fn list(raw: &str) -> Vec<String> {
    raw.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect()
}

/// At least one item.
pub fn non_empty_list(s: &str) -> Result<Vec<String>, String> {
    let v = list(s);
    if v.is_empty() {
        Err("must list at least one event type or *".into())
    } else {
        Ok(v)
    }
}

/// The longest retry delay: a day.
const MAX_DELAY_MS: u64 = 86_400_000;

/// A retry schedule: comma-separated milliseconds, each at most a day.
pub fn delays_ms(s: &str) -> Result<Vec<Duration>, String> {
    let v = list(s)
        .iter()
        .map(|x| x.parse::<u64>().ok().filter(|ms| *ms <= MAX_DELAY_MS).map(Duration::from_millis))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| format!("must be a comma-separated list of milliseconds, each at most {MAX_DELAY_MS}"))?;
    if v.is_empty() || v.len() > 20 {
        Err("must list 1 to 20 delays".into())
    } else {
        Ok(v)
    }
}

/// Networks (`10.0.0.0/8`) or single addresses.
pub fn networks(s: &str) -> Result<Vec<IpNet>, String> {
    list(s)
        .iter()
        .map(|n| {
            n.parse::<IpNet>()
                .or_else(|_| n.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| format!("'{n}' is not a network like 10.0.0.0/8"))
        })
        .collect()
}

/// A file that exists.
pub fn readable_file(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if p.is_file() {
        Ok(p)
    } else {
        Err(format!("{s} is not a readable file"))
    }
}

/// Printable ASCII without spaces, `min..=max` long.
pub fn token_text(min: usize, max: usize) -> impl FnOnce(&str) -> Result<String, String> {
    move |s| {
        if s.len() < min || s.len() > max || !s.bytes().all(|b| b.is_ascii_graphic()) {
            Err(format!("must be {min} to {max} printable characters without spaces"))
        } else {
            Ok(s.to_string())
        }
    }
}

/// Text of 1 to `max` characters without control characters.
pub fn label(max: usize) -> impl FnOnce(&str) -> Result<String, String> {
    move |s| {
        if s.is_empty() || s.chars().count() > max || s.chars().any(char::is_control) {
            Err(format!("must be 1 to {max} characters"))
        } else {
            Ok(s.to_string())
        }
    }
}

/// A header prefix such as `X-Tocsin`.
pub fn header_prefix(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.len() <= 40 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        Ok(s.to_string())
    } else {
        Err("must be 1 to 40 letters, digits or dashes, like X-Tocsin".into())
    }
}

/// A Splunk index name.
pub fn index_name(s: &str) -> Result<String, String> {
    if !s.is_empty() && s.len() <= 80 && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') {
        Ok(s.to_string())
    } else {
        Err("must be an index name (letters, digits, _ and -)".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever the text, the parsers answer, and a number they accept is in its range.
        #[test]
        fn parsers_never_panic(s in ".*") {
            if let Ok(d) = duration_in(0, 3600, Duration::from_secs(1), "seconds")(&s) {
                prop_assert!(d <= Duration::from_secs(3600));
            }
            if let Ok(n) = in_range(1usize, 10_000)(&s) {
                prop_assert!((1..=10_000).contains(&n));
            }
            if let Ok(d) = duration_text(Duration::from_secs(1), Duration::from_secs(3600))(&s) {
                prop_assert!(d >= Duration::from_secs(1) && d <= Duration::from_secs(3600));
            }
            if let Ok(v) = delays_ms(&s) {
                prop_assert!(v.iter().all(|d| d.as_millis() <= u128::from(MAX_DELAY_MS)));
            }
            networks(&s).ok();
            token_text(24, 256)(&s).ok();
            label(63)(&s).ok();
            header_prefix(&s).ok();
            index_name(&s).ok();
        }

        #[test]
        fn huge_numbers_are_refused_not_wrapped(n in any::<u64>()) {
            let text = n.to_string();
            let days = duration_in(1, 36_500, Duration::from_secs(86_400), "days")(&text);
            prop_assert_eq!(days.is_ok(), (1..=36_500).contains(&n));
        }
    }
}
