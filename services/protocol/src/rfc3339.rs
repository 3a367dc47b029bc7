//! RFC 3339 timestamps in JSON, written and read without going through `fmt`.
//!
//! A terminal's stored state carries about twenty timestamps (one per observed
//! field), and the ingest reads and writes that state for every report. chrono's own
//! serde goes through `fmt::Formatter` one character at a time, and its parser through
//! a general format-item machine; together they were a tenth of the ingest's CPU in
//! the profile (docs/BENCHMARKS.md). This module produces exactly chrono's output
//! (`SecondsFormat::AutoSi`, `Z` for UTC) and accepts exactly what chrono accepts:
//! the canonical shape is handled here, anything else goes to chrono. The tests
//! compare both ways against chrono.
//!
//! Use with `#[serde(with = "crate::rfc3339")]`.

use std::borrow::Cow;

use chrono::{DateTime, Datelike, FixedOffset, NaiveDate, TimeZone, Timelike};
use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

/// Longest canonical form: `YYYY-MM-DDTHH:MM:SS.nnnnnnnnn+HH:MM`.
const MAX_LEN: usize = 35;

/// Writes `t` as chrono's serde would; `None` for what the fast path does not cover
/// (years outside 0–9999, leap seconds, offsets with seconds).
/// `utc_as_z`: UTC as `Z` (chrono's serde) or as `+00:00` (SQL drivers' text).
fn write(t: &DateTime<FixedOffset>, utc_as_z: bool, buf: &mut [u8; MAX_LEN]) -> Option<usize> {
    let local = t.naive_local();
    let year = local.year();
    let nano = local.nanosecond();
    let offset = t.offset().local_minus_utc();
    if !(0..=9999).contains(&year) || nano >= 1_000_000_000 || offset % 60 != 0 {
        return None;
    }
    let mut out = Cursor { buf, n: 0 };
    out.digits(year.unsigned_abs(), 4);
    let date_time = [
        (b'-', local.month()),
        (b'-', local.day()),
        (b'T', local.hour()),
        (b':', local.minute()),
        (b':', local.second()),
    ];
    for (sep, value) in date_time {
        out.byte(sep);
        out.digits(value, 2);
    }
    if nano != 0 {
        out.byte(b'.');
        if nano.is_multiple_of(1_000_000) {
            out.digits(nano / 1_000_000, 3);
        } else if nano.is_multiple_of(1_000) {
            out.digits(nano / 1_000, 6);
        } else {
            out.digits(nano, 9);
        }
    }
    if offset == 0 && utc_as_z {
        out.byte(b'Z');
    } else {
        out.byte(if offset < 0 { b'-' } else { b'+' });
        let minutes = offset.unsigned_abs() / 60;
        out.digits(minutes / 60, 2);
        out.byte(b':');
        out.digits(minutes % 60, 2);
    }
    let n = out.n;
    Some(n)
}

struct Cursor<'a> {
    buf: &'a mut [u8; MAX_LEN],
    n: usize,
}

impl Cursor<'_> {
    fn byte(&mut self, b: u8) {
        self.buf[self.n] = b;
        self.n += 1;
    }

    /// `value` in exactly `width` decimal digits, zero-padded.
    fn digits(&mut self, value: u32, width: u32) {
        let mut div = 10u32.pow(width - 1);
        for _ in 0..width {
            // A single decimal digit: the conversion cannot fail.
            self.byte(b'0' + u8::try_from((value / div) % 10).unwrap_or(0));
            div /= 10;
        }
    }
}

/// `t` as chrono's serde writes it.
/// Exactly `t.to_rfc3339_opts(SecondsFormat::AutoSi, utc_as_z)`: with `true` what
/// chrono's serde writes, with `false` what the SQL driver writes for a timestamp.
pub fn format(t: &DateTime<FixedOffset>, utc_as_z: bool) -> String {
    let mut buf = [0u8; MAX_LEN];
    match write(t, utc_as_z, &mut buf) {
        Some(n) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        None => t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, utc_as_z),
    }
}

/// Parses what chrono's serde accepts; the canonical shape without chrono's parser.
pub fn parse(text: &str) -> Result<DateTime<FixedOffset>, chrono::ParseError> {
    match parse_canonical(text.as_bytes()) {
        Some(t) => Ok(t),
        None => text.parse(),
    }
}

fn digits(bytes: &[u8]) -> Option<u32> {
    bytes.iter().try_fold(0u32, |acc, b| {
        b.is_ascii_digit().then(|| acc * 10 + u32::from(b - b'0'))
    })
}

/// `YYYY-MM-DDTHH:MM:SS[.f{1,9}](Z|±HH:MM)`, nothing else (and no leap second).
fn parse_canonical(b: &[u8]) -> Option<DateTime<FixedOffset>> {
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let year = i32::try_from(digits(&b[0..4])?).ok()?;
    let (month, day) = (digits(&b[5..7])?, digits(&b[8..10])?);
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    if second > 59 {
        return None;
    }
    let mut rest = &b[19..];
    let mut nano = 0u32;
    if let Some((b'.', after)) = rest.split_first() {
        let len = after.iter().take_while(|c| c.is_ascii_digit()).count();
        if len == 0 || len > 9 {
            return None;
        }
        nano = digits(&after[..len])? * 10u32.pow(u32::try_from(9 - len).ok()?);
        rest = &after[len..];
    }
    let offset = match rest {
        [b'Z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (hours, minutes) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if minutes > 59 {
                return None;
            }
            let minutes = hours * 60 + minutes;
            let seconds = i32::try_from(minutes * 60).ok()?;
            if *sign == b'-' { -seconds } else { seconds }
        }
        _ => return None,
    };
    let naive =
        NaiveDate::from_ymd_opt(year, month, day)?.and_hms_nano_opt(hour, minute, second, nano)?;
    FixedOffset::east_opt(offset)?
        .from_local_datetime(&naive)
        .single()
}

pub fn serialize<S: Serializer>(
    t: &DateTime<FixedOffset>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut buf = [0u8; MAX_LEN];
    match write(t, true, &mut buf) {
        // Only ASCII was written.
        Some(n) => serializer.serialize_str(std::str::from_utf8(&buf[..n]).unwrap_or_default()),
        None => serde::Serialize::serialize(t, serializer),
    }
}

pub fn deserialize<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<DateTime<FixedOffset>, D::Error> {
    let text = Cow::<str>::deserialize(deserializer)?;
    parse(&text).map_err(D::Error::custom)
}

/// The same for an optional timestamp: `#[serde(default, with = "crate::rfc3339::option")]`
/// (`null` reads as `None`, as with chrono).
pub mod option {
    use std::borrow::Cow;

    use chrono::{DateTime, FixedOffset};
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub fn serialize<S: Serializer>(
        t: &Option<DateTime<FixedOffset>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => super::serialize(t, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<FixedOffset>>, D::Error> {
        match Option::<Cow<str>>::deserialize(deserializer)? {
            Some(text) => super::parse(&text).map(Some).map_err(D::Error::custom),
            None => Ok(None),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chrono_json(t: &DateTime<FixedOffset>) -> String {
        serde_json::to_string(t).unwrap()
    }

    proptest! {
        #[test]
        fn writes_what_chrono_writes(
            secs in -62_000_000_000i64..253_000_000_000i64,
            nano_kind in 0u8..4,
            nano in 0u32..1_000_000_000,
            offset_minutes in -1439i32..1440,
        ) {
            let nano = match nano_kind { 0 => 0, 1 => nano / 1_000_000 * 1_000_000, 2 => nano / 1000 * 1000, _ => nano };
            let offset = FixedOffset::east_opt(offset_minutes * 60).unwrap();
            let t = offset.timestamp_opt(secs, nano).single().unwrap();
            let ours = serde_json::to_string(&Wrapped(t)).unwrap();
            prop_assert_eq!(&ours, &chrono_json(&t));
            prop_assert_eq!(format(&t, false), t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, false));
            prop_assert_eq!(format(&t, true), t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true));
            let back: Wrapped = serde_json::from_str(&ours).unwrap();
            prop_assert_eq!(back.0, t);
            prop_assert_eq!(back.0.offset(), t.offset());
        }

        #[test]
        fn reads_what_chrono_reads(text in "[0-9]{4}-[01][0-9]-[0-3][0-9][T t][0-2][0-9]:[0-6][0-9]:[0-6][0-9](\\.[0-9]{0,10})?(Z|z|[+-][0-2][0-9]:?[0-5][0-9])?") {
            let ours = parse(&text).ok();
            let theirs = text.parse::<DateTime<FixedOffset>>().ok();
            prop_assert_eq!(ours, theirs);
            if let (Some(a), Some(b)) = (ours, theirs) {
                prop_assert_eq!(a.offset(), b.offset());
            }
        }
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct Wrapped(#[serde(with = "super")] DateTime<FixedOffset>);

    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct Maybe {
        #[serde(
            default,
            with = "super::option",
            skip_serializing_if = "Option::is_none"
        )]
        at: Option<DateTime<FixedOffset>>,
    }

    /// Optional timestamps read and write as chrono's `Option<DateTime>` does.
    #[test]
    fn optional_timestamps() {
        let t = parse("2026-01-22T09:00:00+09:00").unwrap();
        let some: Maybe = serde_json::from_str(r#"{"at":"2026-01-22T09:00:00+09:00"}"#).unwrap();
        assert_eq!(some, Maybe { at: Some(t) });
        assert_eq!(
            serde_json::to_string(&some).unwrap(),
            r#"{"at":"2026-01-22T09:00:00+09:00"}"#
        );
        for absent in ["{}", r#"{"at":null}"#] {
            let none: Maybe = serde_json::from_str(absent).unwrap();
            assert_eq!(none, Maybe { at: None });
        }
        assert_eq!(serde_json::to_string(&Maybe { at: None }).unwrap(), "{}");
        assert!(serde_json::from_str::<Maybe>(r#"{"at":"2026-02-30T00:00:00Z"}"#).is_err());
        assert!(serde_json::from_str::<Maybe>(r#"{"at":1769040000}"#).is_err());
    }

    #[test]
    fn jst_and_utc_forms() {
        let t = parse("2026-01-22T09:00:00+09:00").unwrap();
        assert_eq!(format(&t, true), "2026-01-22T09:00:00+09:00");
        let utc = parse("2026-01-22T00:00:00.5Z").unwrap();
        assert_eq!(format(&utc, true), "2026-01-22T00:00:00.500Z");
        assert_eq!(format(&utc, false), "2026-01-22T00:00:00.500+00:00");
        assert_eq!(utc, t + chrono::Duration::milliseconds(500));
        // Not canonical, still accepted as chrono accepts it.
        assert_eq!(parse("2026-01-22 09:00:00+0900").unwrap(), t);
        assert!(parse("2026-02-30T00:00:00Z").is_err());
        assert!(parse("yesterday").is_err());
    }
}
