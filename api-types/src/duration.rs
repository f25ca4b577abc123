//! Durations as Kubernetes components read and print them: Go's
//! `time.ParseDuration` syntax (`30s`, `2m`, `1h30m`, `1.5s`), Go's
//! `time.Duration.String()` (`2m0s`), and kubectl's bare integer meaning
//! seconds (what `--request-timeout=30` accepts).
//!
//! The one parser and formatter of the project: the plugin's flags, both
//! servers' duration flags and the stand-in's `?timeout=` use it.
//! [`GoDuration`] is the flag type (`FromStr` + `Display`, so clap parses
//! and prints defaults with it).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A duration flag value that is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Same text as Go's `time: invalid duration "x"`.
    #[error("time: invalid duration {0:?}")]
    Invalid(String),
    #[error("time: missing unit in duration {0:?}")]
    MissingUnit(String),
    #[error("time: unknown unit {unit:?} in duration {value:?}")]
    UnknownUnit { unit: String, value: String },
    #[error("must not be negative")]
    Negative,
}

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

/// Largest duration accepted (Go's `time.Duration` is an int64 of nanoseconds).
const MAX_NANOS: u128 = i64::MAX as u128;

/// Parse Go's duration syntax (`[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`). Negative
/// values are refused: no flag of this command takes one.
pub fn parse_go_duration(value: &str) -> Result<Duration, DurationError> {
    let invalid = || DurationError::Invalid(value.to_owned());
    let mut s = value;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        // integer part
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_part, rest) = s.split_at(int_len);
        s = rest;
        let mut frac_part = "";
        if let Some(rest) = s.strip_prefix('.') {
            let frac_len = rest.bytes().take_while(u8::is_ascii_digit).count();
            (frac_part, s) = rest.split_at(frac_len);
            if int_part.is_empty() && frac_part.is_empty() {
                return Err(invalid());
            }
        } else if int_part.is_empty() {
            return Err(invalid());
        }
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        let (unit, rest) = s.split_at(unit_len);
        s = rest;
        if unit.is_empty() {
            return Err(DurationError::MissingUnit(value.to_owned()));
        }
        let scale = UNITS
            .iter()
            .find(|(name, _)| *name == unit)
            .map(|(_, scale)| *scale)
            .ok_or_else(|| DurationError::UnknownUnit {
                unit: unit.to_owned(),
                value: value.to_owned(),
            })?;
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().map_err(|_| invalid())?
        };
        let mut nanos = whole.checked_mul(scale).ok_or_else(invalid)?;
        // fraction, truncated to nanoseconds as Go does
        let mut place = scale;
        for digit in frac_part.bytes() {
            place /= 10;
            if place == 0 {
                break;
            }
            nanos += u128::from(digit - b'0') * place;
        }
        total = total
            .checked_add(nanos)
            .filter(|t| *t <= MAX_NANOS)
            .ok_or_else(invalid)?;
    }
    if negative && total > 0 {
        return Err(DurationError::Negative);
    }
    let secs = u64::try_from(total / 1_000_000_000).map_err(|_| invalid())?;
    let sub = u32::try_from(total % 1_000_000_000).map_err(|_| invalid())?;
    Ok(Duration::new(secs, sub))
}

/// A flag value that is either a bare integer (seconds) or a Go duration.
pub fn parse_seconds_or_duration(value: &str) -> Result<Duration, DurationError> {
    let v = value.trim();
    if let Some(digits) = v.strip_prefix('-')
        && !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(DurationError::Negative);
    }
    if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) {
        let secs: u64 = v
            .parse()
            .map_err(|_| DurationError::Invalid(value.to_owned()))?;
        if u128::from(secs) * 1_000_000_000 > MAX_NANOS {
            return Err(DurationError::Invalid(value.to_owned()));
        }
        return Ok(Duration::from_secs(secs));
    }
    parse_go_duration(v)
}

/// Whole seconds, rounding a fraction up so that `500ms` asks for 1 s rather than
/// the runtime default (0).
pub fn whole_seconds_ceil(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// Go's `time.Duration.String()` for the values this command prints
/// (`0s`, `500ms`, `40s`, `2m0s`, `1h0m0s`, `1m30.5s`).
pub fn format_go_duration(d: Duration) -> String {
    if d.is_zero() {
        return "0s".to_owned();
    }
    if d < Duration::from_secs(1) {
        let nanos = d.subsec_nanos();
        return if nanos.is_multiple_of(1_000_000) {
            format!("{}ms", nanos / 1_000_000)
        } else if nanos.is_multiple_of(1_000) {
            format!("{}µs", nanos / 1_000)
        } else {
            format!("{nanos}ns")
        };
    }
    let total = d.as_secs();
    let (h, m, s) = (total / 3600, (total / 60) % 60, total % 60);
    let mut secs = s.to_string();
    let frac = d.subsec_nanos();
    if frac > 0 {
        let digits = format!("{frac:09}");
        secs.push('.');
        secs.push_str(digits.trim_end_matches('0'));
    }
    if h > 0 {
        format!("{h}h{m}m{secs}s")
    } else if m > 0 {
        format!("{m}m{secs}s")
    } else {
        format!("{secs}s")
    }
}

/// A duration flag value in Go syntax: parses with [`parse_go_duration`],
/// prints with [`format_go_duration`] (so `--help` shows `[default: 2m0s]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    pub const fn from_secs(secs: u64) -> Self {
        Self(Duration::from_secs(secs))
    }

    pub const fn get(self) -> Duration {
        self.0
    }
}

impl FromStr for GoDuration {
    type Err = DurationError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse_go_duration(s).map(Self)
    }
}

impl fmt::Display for GoDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format_go_duration(self.0))
    }
}

impl From<GoDuration> for Duration {
    fn from(d: GoDuration) -> Self {
        d.0
    }
}

impl From<Duration> for GoDuration {
    fn from(d: Duration) -> Self {
        Self(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        let table: &[(&str, Option<Duration>)] = &[
            ("0", Some(Duration::ZERO)),
            ("0s", Some(Duration::ZERO)),
            ("30s", Some(Duration::from_secs(30))),
            ("2m", Some(Duration::from_secs(120))),
            ("1h30m", Some(Duration::from_secs(5400))),
            ("1.5s", Some(Duration::from_millis(1500))),
            (".5s", Some(Duration::from_millis(500))),
            ("500ms", Some(Duration::from_millis(500))),
            ("1m30.25s", Some(Duration::from_millis(90_250))),
            ("10us", Some(Duration::from_micros(10))),
            ("10µs", Some(Duration::from_micros(10))),
            ("+5s", Some(Duration::from_secs(5))),
            ("-0s", Some(Duration::ZERO)),
            ("", None),
            ("s", None),
            (".s", None),
            ("5", None),
            ("5x", None),
            ("1d", None),
            ("-5s", None),
            ("5 s", None),
            ("abc", None),
            ("9999999999999999999h", None),
            ("3000000h", None),
            ("1s2", None),
            ("1x", None),
            ("1e400h", None),
            ("1m30", None),
            ("1..2s", None),
            ("2 m", None),
        ];
        for (input, want) in table {
            assert_eq!(parse_go_duration(input).ok(), *want, "{input:?}");
        }
    }

    #[test]
    fn go_error_messages() {
        assert_eq!(
            parse_go_duration("abc").unwrap_err().to_string(),
            "time: invalid duration \"abc\""
        );
        assert_eq!(
            parse_go_duration("5").unwrap_err().to_string(),
            "time: missing unit in duration \"5\""
        );
        assert_eq!(
            parse_go_duration("1d").unwrap_err().to_string(),
            "time: unknown unit \"d\" in duration \"1d\""
        );
        assert_eq!(
            parse_go_duration("-1s").unwrap_err(),
            DurationError::Negative
        );
    }

    #[test]
    fn seconds_or_duration() {
        assert_eq!(parse_seconds_or_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_seconds_or_duration("0"), Ok(Duration::ZERO));
        assert_eq!(
            parse_seconds_or_duration("2m"),
            Ok(Duration::from_secs(120))
        );
        assert_eq!(
            parse_seconds_or_duration("-3"),
            Err(DurationError::Negative)
        );
        assert!(parse_seconds_or_duration("99999999999999999999").is_err());
        assert!(parse_seconds_or_duration("9999999999999").is_err());
        assert!(parse_seconds_or_duration("1.5").is_err());
    }

    #[test]
    fn flag_type_round_trips() {
        for text in ["0s", "500ms", "40s", "2m0s", "1h0m0s", "1m30.5s"] {
            let d: GoDuration = text.parse().unwrap();
            assert_eq!(d.to_string(), text);
        }
        assert_eq!("2m".parse::<GoDuration>(), Ok(GoDuration::from_secs(120)));
        assert!("2".parse::<GoDuration>().is_err());
    }

    #[test]
    fn rounding_and_formatting() {
        assert_eq!(whole_seconds_ceil(Duration::from_millis(500)), 1);
        assert_eq!(whole_seconds_ceil(Duration::from_secs(30)), 30);
        assert_eq!(whole_seconds_ceil(Duration::from_millis(30_001)), 31);
        assert_eq!(whole_seconds_ceil(Duration::ZERO), 0);
        for (d, s) in [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_secs(40), "40s"),
            (Duration::from_secs(120), "2m0s"),
            (Duration::from_secs(3600), "1h0m0s"),
            (Duration::from_millis(90_500), "1m30.5s"),
        ] {
            assert_eq!(format_go_duration(d), s);
        }
    }
}
