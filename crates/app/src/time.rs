//! Dates for people and forms, in UTC.

use clinic_auth_core::UnixTime;

/// 2026-11-23
pub fn day(t: UnixTime) -> String {
    let (y, m, d) = civil_from_days(t.0.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// 2026-11-23 14:05 UTC
pub fn date_time(t: UnixTime) -> String {
    let secs = t.0.rem_euclid(86_400);
    format!("{} {:02}:{:02} UTC", day(t), secs / 3600, (secs % 3600) / 60)
}

/// 2026-11-23T14:05:09Z
pub fn rfc3339(t: UnixTime) -> String {
    let secs = t.0.rem_euclid(86_400);
    format!("{}T{:02}:{:02}:{:02}Z", day(t), secs / 3600, (secs % 3600) / 60, secs % 60)
}

/// The start of a `YYYY-MM-DD` day; `None` for anything else.
pub fn parse_day(s: &str) -> Option<UnixTime> {
    let mut parts = s.trim().splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1970..=9999).contains(&y) || !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // Refuse dates such as 2026-02-31 that would roll over into the next month.
    (civil_from_days(days) == (y, m, d)).then_some(UnixTime(days * 86_400))
}

// Howard Hinnant's civil calendar algorithms.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_round_trip() {
        assert_eq!(parse_day("2027-01-15"), Some(UnixTime(1_800_000_000 - 1_800_000_000 % 86_400)));
        assert_eq!(day(UnixTime(1_800_000_000)), "2027-01-15");
        assert_eq!(date_time(UnixTime(1_800_000_000)), "2027-01-15 08:00 UTC");
        assert_eq!(rfc3339(UnixTime(1_800_000_000)), "2027-01-15T08:00:00Z");
        assert_eq!(parse_day("2026-02-31"), None);
        assert_eq!(parse_day("yesterday"), None);
        assert_eq!(parse_day("2024-02-29").map(day).as_deref(), Some("2024-02-29"));
    }
}
