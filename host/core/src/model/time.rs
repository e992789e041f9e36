//! Timestamps as LangSmith writes them.
//!
//! Runs carry UTC timestamps *without* an offset (`2024-04-05T01:28:54.085646`);
//! webhook windows carry them *with* `+00:00`. Input is accepted in any
//! RFC 3339 form, or without an offset (read as UTC, as the SDK means it).
//! Storage uses the offset-free form with microseconds, which sorts
//! lexicographically in time order.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A UTC instant with microsecond precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

/// A timestamp that could not be parsed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid timestamp {0:?}: expected ISO-8601, e.g. 2026-11-22T10:15:00.000000Z")]
pub struct TimestampError(pub String);

impl Timestamp {
    /// Now, truncated to microseconds.
    pub fn now() -> Self {
        Self::from_datetime(Utc::now())
    }

    /// From a chrono instant, truncated to microseconds.
    pub fn from_datetime(dt: DateTime<Utc>) -> Self {
        let micros = dt.timestamp_micros();
        Self(DateTime::from_timestamp_micros(micros).unwrap_or(dt))
    }

    /// The chrono instant.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// Microseconds since the Unix epoch.
    pub fn micros(&self) -> i64 {
        self.0.timestamp_micros()
    }

    /// The run form: `2024-04-05T01:28:54.085646` (UTC, no offset).
    pub fn to_naive_string(&self) -> String {
        use chrono::{Datelike, Timelike};
        let t = self.0.naive_utc();
        // Written by hand: every stored timestamp goes through here, and
        // chrono's `format` interprets its pattern on each call. Years
        // outside four digits keep chrono's spelling.
        if !(0..=9999).contains(&t.year()) {
            return t.format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
        }
        let (date, micros) = ((t.year(), t.month(), t.day()), t.nanosecond() / 1000);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}",
            date.0,
            date.1,
            date.2,
            t.hour(),
            t.minute(),
            t.second(),
            // A leap second's nanoseconds run past one second.
            micros.min(999_999)
        )
    }

    /// The stored form (see [`Self::to_naive_string`]) read back, without
    /// trying the other forms input may come in.
    fn from_naive_str(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        let shape = b.len() == 26 && b[4] == b'-' && b[7] == b'-' && b[10] == b'T' && b[13] == b':' && b[16] == b':';
        if !shape || b[19] != b'.' {
            return None;
        }
        let num = |range: std::ops::Range<usize>| -> Option<u32> {
            let digits = s.get(range)?;
            digits.bytes().all(|d| d.is_ascii_digit()).then(|| digits.parse().ok())?
        };
        let date = chrono::NaiveDate::from_ymd_opt(i32::try_from(num(0..4)?).ok()?, num(5..7)?, num(8..10)?)?;
        let time = chrono::NaiveTime::from_hms_micro_opt(num(11..13)?, num(14..16)?, num(17..19)?, num(20..26)?)?;
        Some(Self(date.and_time(time).and_utc()))
    }

    /// The window form: `2024-04-05T01:28:54.734491+00:00`.
    pub fn to_offset_string(&self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Micros, false)
    }

    /// Seconds from `self` to `later` (negative if `later` is earlier).
    pub fn seconds_until(&self, later: &Timestamp) -> f64 {
        (later.micros() - self.micros()) as f64 / 1e6
    }
}

impl FromStr for Timestamp {
    type Err = TimestampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(stored) = Self::from_naive_str(s) {
            return Ok(stored);
        }
        let t = s.trim();
        if let Ok(dt) = DateTime::parse_from_rfc3339(t) {
            return Ok(Self::from_datetime(dt.with_timezone(&Utc)));
        }
        for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"] {
            if let Ok(naive) = NaiveDateTime::parse_from_str(t, fmt) {
                return Ok(Self::from_datetime(naive.and_utc()));
            }
        }
        if let Ok(date) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
            return Ok(Self::from_datetime(date.and_time(chrono::NaiveTime::MIN).and_utc()));
        }
        Err(TimestampError(s.chars().take(64).collect()))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_naive_string())
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_naive_string())
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<str>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stored_form_reads_back_as_written() {
        for text in ["2026-11-22T20:58:35.755832", "0001-01-01T00:00:00.000000", "9999-12-31T23:59:59.999999"] {
            let t: Timestamp = text.parse().unwrap();
            assert_eq!(t.to_naive_string(), text);
            assert_eq!(Timestamp::from_naive_str(text), Some(t));
            let chrono = t.as_datetime().naive_utc().format("%Y-%m-%dT%H:%M:%S%.6f").to_string();
            assert_eq!(chrono, text);
        }
        // Not the stored form: left to the general parser, or refused.
        for text in [
            "2026-11-22T20:58:35.7558Z",
            "2026-13-22T20:58:35.755832",
            "2026-11-22T20:58:35+755832",
            "2026-+1-22T20:58:35.755832",
        ] {
            assert_eq!(Timestamp::from_naive_str(text), None, "{text}");
        }
        let far = Timestamp::from_datetime(DateTime::from_timestamp(253_402_300_800, 0).unwrap());
        assert_eq!(far.to_naive_string(), "+10000-01-01T00:00:00.000000");
    }

    #[test]
    fn parses_every_form_the_sdk_and_users_send() {
        let want = "2026-11-22T20:58:35.755832";
        for input in [
            "2026-11-22T20:58:35.755832+00:00",
            "2026-11-22T20:58:35.755832Z",
            "2026-11-22T21:58:35.755832+01:00",
            "2026-11-22T20:58:35.755832",
            "2026-11-22 20:58:35.755832",
        ] {
            assert_eq!(input.parse::<Timestamp>().unwrap().to_naive_string(), want, "{input}");
        }
        assert_eq!("2026-11-22".parse::<Timestamp>().unwrap().to_naive_string(), "2026-11-22T00:00:00.000000");
        assert!("yesterday".parse::<Timestamp>().is_err());
        assert!("".parse::<Timestamp>().is_err());
    }

    #[test]
    fn formats_runs_without_and_windows_with_offset() {
        let t: Timestamp = "2024-04-05T01:28:54.734491Z".parse().unwrap();
        assert_eq!(t.to_naive_string(), "2024-04-05T01:28:54.734491");
        assert_eq!(t.to_offset_string(), "2024-04-05T01:28:54.734491+00:00");
        assert_eq!(serde_json::to_string(&t).unwrap(), "\"2024-04-05T01:28:54.734491\"");
    }

    #[test]
    fn truncates_to_microseconds_so_round_trips_are_exact() {
        let t: Timestamp = "2024-04-05T01:28:54.123456789Z".parse().unwrap();
        assert_eq!(t.to_naive_string().parse::<Timestamp>().unwrap(), t);
    }
}
