//! When to try again: the retry schedule with jitter, and `Retry-After`.

// Values from requests, settings and receivers flow through this arithmetic: it must not wrap.
#![warn(clippy::arithmetic_side_effects)]

use std::time::Duration;

use rand::Rng;

/// The longest a `Retry-After` may push the next attempt.
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// The wait before retry `retry` (1 for the first retry): entry `retry` of the schedule, the last
/// entry repeating. Entry 0 is the first attempt, which is always immediate.
pub fn delay_before_retry(schedule: &[Duration], retry: u32) -> Duration {
    let at = usize::try_from(retry).unwrap_or(usize::MAX);
    schedule.get(at).or(schedule.last()).copied().unwrap_or(Duration::ZERO)
}

/// ±20% uniform jitter so that retries of many deliveries do not arrive together.
pub fn jitter(d: Duration) -> Duration {
    if d.is_zero() {
        return d;
    }
    let factor = rand::thread_rng().gen_range(0.8..=1.2);
    d.mul_f64(factor)
}

/// Parses `Retry-After`: delta-seconds or an HTTP-date (IMF-fixdate, RFC 850 or asctime).
/// A date in the past means now; the wait is capped at one hour.
pub fn parse_retry_after(value: &str, now: std::time::SystemTime) -> Option<Duration> {
    let value = value.trim();
    let wait = if let Ok(secs) = value.parse::<u64>() {
        Duration::from_secs(secs)
    } else {
        let at = httpdate::parse_http_date(value).ok()?;
        at.duration_since(now).unwrap_or(Duration::ZERO)
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn schedule_repeats_its_last_entry() {
        let s: Vec<Duration> = [0u64, 30_000, 120_000].iter().map(|ms| Duration::from_millis(*ms)).collect();
        assert_eq!(delay_before_retry(&s, 1), Duration::from_secs(30));
        assert_eq!(delay_before_retry(&s, 2), Duration::from_secs(120));
        assert_eq!(delay_before_retry(&s, 7), Duration::from_secs(120));
    }

    #[test]
    fn jitter_stays_within_20_percent() {
        for _ in 0..100 {
            let d = jitter(Duration::from_secs(100)).as_secs_f64();
            assert!((80.0..=120.0).contains(&d), "{d}");
        }
        assert_eq!(jitter(Duration::ZERO), Duration::ZERO);
    }

    #[test]
    fn retry_after_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
        assert_eq!(parse_retry_after("999999", now), Some(MAX_RETRY_AFTER));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:50:37 GMT", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("Sunday, 06-Nov-94 08:50:37 GMT", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("Sun Nov  6 08:50:37 1994", now), Some(Duration::from_secs(60)));
        assert_eq!(parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now), Some(Duration::ZERO));
        assert_eq!(parse_retry_after("soon", SystemTime::now()), None);
    }
}
