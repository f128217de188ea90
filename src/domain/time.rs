//! Timestamps are stored as Unix milliseconds (portable across both stores) and shown as RFC 3339.

use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// Milliseconds since the Unix epoch, now.
pub fn now_ms() -> i64 {
    (OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64
}

/// RFC 3339 in UTC with millisecond precision, e.g. `2026-05-08T14:30:45.123Z`.
pub fn rfc3339_ms(ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format(&Rfc3339).unwrap_or_default()
}

/// RFC 3339 in UTC to whole seconds, e.g. `2026-05-08T14:30:45Z` (the seeds' style).
pub fn rfc3339_secs(ms: i64) -> String {
    let mut out = Vec::with_capacity(20);
    write_rfc3339_secs(ms, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// [`rfc3339_secs`], appended to `out` (a request's header buffer).
pub fn write_rfc3339_secs(ms: i64, out: &mut Vec<u8>) {
    let t = OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000)).unwrap_or(OffsetDateTime::UNIX_EPOCH);
    t.format_into(out, &Rfc3339).ok();
}

/// A duration written with its unit (`500ms`, `30s`, `15m`, `72h`, `3d`; a bare number is seconds),
/// within `lo..=hi`. Settings and profile files write durations this way.
pub fn parse_duration_text(
    s: &str,
    lo: std::time::Duration,
    hi: std::time::Duration,
) -> Result<std::time::Duration, String> {
    let bad = || format!("'{s}' must be a duration such as 30s, 15m, 72h or 3d, from {lo:?} to {hi:?}");
    let (digits, unit_ms): (&str, u64) = if let Some(d) = s.strip_suffix("ms") {
        (d, 1)
    } else if let Some(d) = s.strip_suffix('s') {
        (d, 1000)
    } else if let Some(d) = s.strip_suffix('m') {
        (d, 60_000)
    } else if let Some(d) = s.strip_suffix('h') {
        (d, 3_600_000)
    } else if let Some(d) = s.strip_suffix('d') {
        (d, 86_400_000)
    } else {
        (s, 1000)
    };
    let n = digits.trim().parse::<u64>().map_err(|_| bad())?;
    let d = n.checked_mul(unit_ms).map(std::time::Duration::from_millis).ok_or_else(bad)?;
    if d < lo || d > hi {
        return Err(bad());
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats() {
        assert_eq!(super::rfc3339_secs(1_778_250_645_000), "2026-05-08T14:30:45Z");
        assert_eq!(super::rfc3339_ms(1_778_250_645_123), "2026-05-08T14:30:45.123Z");
    }
}
