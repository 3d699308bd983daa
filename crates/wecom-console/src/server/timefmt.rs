//! Times as the console shows and reads them: in the configured UTC offset, dates as whole local days.

use time::macros::format_description;
use time::{Date, OffsetDateTime, PrimitiveDateTime, UtcOffset};

/// Shows and reads times in one UTC offset.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    offset: UtcOffset,
}

impl Clock {
    pub fn new(offset_secs: i32) -> Clock {
        Clock {
            offset: UtcOffset::from_whole_seconds(offset_secs).unwrap_or(UtcOffset::UTC),
        }
    }

    fn at(&self, ms: u64) -> Option<OffsetDateTime> {
        let nanos = i128::from(ms).checked_mul(1_000_000)?;
        Some(
            OffsetDateTime::from_unix_timestamp_nanos(nanos)
                .ok()?
                .to_offset(self.offset),
        )
    }

    /// `2026-11-22 16:15:02`.
    pub fn datetime(&self, ms: u64) -> String {
        self.at(ms)
            .and_then(|t| {
                t.format(format_description!(
                    "[year]-[month]-[day] [hour]:[minute]:[second]"
                ))
                .ok()
            })
            .unwrap_or_else(|| "—".to_owned())
    }

    /// `2026-11-22`.
    pub fn date(&self, ms: u64) -> String {
        self.at(ms)
            .and_then(|t| t.format(format_description!("[year]-[month]-[day]")).ok())
            .unwrap_or_default()
    }

    /// RFC 3339 in the offset: `2026-11-22T16:15:02.113+08:00`.
    pub fn rfc3339(&self, ms: u64) -> String {
        self.at(ms)
            .and_then(|t| {
                t.format(format_description!(
                    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3][offset_hour sign:mandatory]:[offset_minute]"
                ))
                .ok()
            })
            .unwrap_or_default()
    }

    /// `+08:00`.
    pub fn offset_label(&self) -> String {
        let s = self.offset.whole_seconds();
        let sign = if s < 0 { '-' } else { '+' };
        format!("{sign}{:02}:{:02}", s.abs() / 3600, (s.abs() % 3600) / 60)
    }

    /// Unix ms of the start of local day `date` (`YYYY-MM-DD`).
    pub fn day_start(&self, date: &str) -> Option<u64> {
        let d = Date::parse(date.trim(), format_description!("[year]-[month]-[day]")).ok()?;
        let t = PrimitiveDateTime::new(d, time::Time::MIDNIGHT).assume_offset(self.offset);
        u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
    }

    /// Reads a point in time: `YYYY-MM-DD` (the start of that local day), RFC 3339, or Unix ms.
    pub fn parse_instant(&self, s: &str) -> Option<u64> {
        let s = s.trim();
        if s.is_empty() {
            return None;
        }
        if s.len() == 10 && s.as_bytes().get(4) == Some(&b'-') {
            return self.day_start(s);
        }
        if let Ok(t) = OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
            return u64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok();
        }
        if s.bytes().all(|b| b.is_ascii_digit()) && s.len() <= 16 {
            return s.parse().ok();
        }
        None
    }

    /// Reads the end of a range: a date means the end of that local day (exclusive: the next day's
    /// start); anything else as [`Clock::parse_instant`].
    pub fn parse_end(&self, s: &str) -> Option<u64> {
        let s = s.trim();
        if s.len() == 10 && s.as_bytes().get(4) == Some(&b'-') {
            return self.day_start(s).map(|t| t + 86_400_000);
        }
        self.parse_instant(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shows_and_reads_local_days() {
        let c = Clock::new(8 * 3600);
        // 2026-01-01T00:00:00Z is 08:00 in Beijing.
        assert_eq!(c.datetime(1_767_225_600_000), "2026-01-01 08:00:00");
        assert_eq!(
            c.rfc3339(1_767_225_600_000),
            "2026-01-01T08:00:00.000+08:00"
        );
        assert_eq!(
            c.day_start("2026-01-01"),
            Some(1_767_225_600_000 - 8 * 3_600_000)
        );
        assert_eq!(
            c.parse_end("2026-01-01"),
            Some(1_767_225_600_000 + 16 * 3_600_000)
        );
        assert_eq!(
            c.parse_instant("2026-01-01T00:00:00Z"),
            Some(1_767_225_600_000)
        );
        assert_eq!(c.parse_instant("1767225600000"), Some(1_767_225_600_000));
        assert_eq!(c.parse_instant("yesterday"), None);
        assert_eq!(c.parse_instant("2026-13-01"), None);
        assert_eq!(c.offset_label(), "+08:00");
    }
}
