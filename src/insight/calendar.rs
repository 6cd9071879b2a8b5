//! UTC dates for people: Unix milliseconds to `2026-12-06 18:30 UTC` and back from
//! `2026-12-06`, without a time-zone database (the dashboard, analytics' days and the CLI
//! show UTC).

/// Days since 1970-01-01 to (year, month, day) (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// (year, month, day) to days since 1970-01-01 (`days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = if m > 2 { m - 3 } else { m + 9 };
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2026-12-06`.
pub fn date_text(unix_ms: i64) -> String {
    let (y, m, d) = civil_from_days(unix_ms.div_euclid(86_400_000));
    format!("{y:04}-{m:02}-{d:02}")
}

/// `2026-12-06 18:30 UTC`.
pub fn date_time_text(unix_ms: i64) -> String {
    let s = unix_ms.div_euclid(1000).rem_euclid(86_400);
    format!(
        "{} {:02}:{:02} UTC",
        date_text(unix_ms),
        s / 3600,
        (s % 3600) / 60
    )
}

/// The start (00:00 UTC) of the day `YYYY-MM-DD` names, in Unix milliseconds.
pub fn parse_date(text: &str) -> Option<i64> {
    let mut parts = text.trim().splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) || !(1970..=9999).contains(&y) {
        return None;
    }
    let days = days_from_civil(y, m, d);
    // 2026-02-31 is not a day.
    (civil_from_days(days) == (y, m, d)).then_some(days * 86_400_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_go_both_ways() {
        assert_eq!(date_time_text(0), "1970-01-01 00:00 UTC");
        let t = parse_date("2026-12-06").unwrap();
        assert_eq!(date_text(t), "2026-12-06");
        assert_eq!(
            date_time_text(t + 18 * 3_600_000 + 30 * 60_000),
            "2026-12-06 18:30 UTC"
        );
        assert_eq!(
            parse_date("2024-02-29").map(date_text).as_deref(),
            Some("2024-02-29")
        );
        assert_eq!(parse_date("2026-02-31"), None);
        assert_eq!(parse_date("yesterday"), None);
    }
}
