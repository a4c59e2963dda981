//! Times as the CLI and the TUI both show them.

/// Now, in unix seconds.
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `2026-11-26 15:02 UTC`.
pub fn format_time(unix: i64) -> String {
    let format = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute] UTC");
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&format).ok())
        .unwrap_or_else(|| format!("@{unix}"))
}

/// `3d`, `5h`, `12m`: how long ago, for lists.
pub fn format_age(now: i64, then: i64) -> String {
    let secs = (now - then).max(0);
    match secs {
        s if s >= 86_400 => format!("{}d", s / 86_400),
        s if s >= 3_600 => format!("{}h", s / 3_600),
        s => format!("{}m", s / 60),
    }
}

/// `2026-11-26T15:02:00Z` (RFC 3339, UTC): times for scripts and logs, beside the number.
pub fn rfc3339(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| unix.to_string())
}

/// A time given on the command line (`audit --since`): RFC 3339 (`2026-12-07T14:02:00Z`,
/// any offset), a UTC date (`2026-12-07`), or an age before `now` (`90m`, `12h`, `7d`,
/// `2w`). As unix seconds.
pub fn parse_since(text: &str, now: i64) -> Result<i64, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "{text:?} is not a time: give RFC 3339 (2026-12-07T14:02:00Z), a date (2026-12-07) or an age (90m, 12h, 7d, 2w)"
        )
    };
    if let Ok(t) = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
    {
        return Ok(t.unix_timestamp());
    }
    let date_format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(text, &date_format) {
        return Ok(date.midnight().assume_utc().unix_timestamp());
    }
    let unit = match text.chars().last() {
        Some('m') => 60,
        Some('h') => 3_600,
        Some('d') => 86_400,
        Some('w') => 7 * 86_400,
        _ => return Err(bad()),
    };
    let count: i64 = text[..text.len() - 1].parse().map_err(|_| bad())?;
    if count < 0 {
        return Err(bad());
    }
    Ok(now - count.saturating_mul(unit))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_rfc3339_a_date_or_an_age() {
        assert_eq!(rfc3339(1_796_652_120), "2026-12-07T14:02:00Z");
        assert_eq!(parse_since("2026-12-07T14:02:00Z", 0), Ok(1_796_652_120));
        assert_eq!(
            parse_since("2026-12-07T15:02:00+01:00", 0),
            Ok(1_796_652_120)
        );
        assert_eq!(parse_since("2026-12-07", 0), Ok(1_796_601_600));
        assert_eq!(parse_since("2h", 10_000), Ok(10_000 - 7_200));
        assert_eq!(parse_since("7d", 1_000_000), Ok(1_000_000 - 604_800));
        assert!(parse_since("yesterday", 0).is_err());
        assert!(parse_since("-2d", 0).is_err());
    }
}
