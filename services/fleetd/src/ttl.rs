//! `fleetd token --ttl`: a token's lifetime such as `30m`, `12h`, `7d` or `3600s`.
//!
//! Whatever the text, parsing answers with a lifetime or an error that says what is
//! wrong; it never panics and never yields a lifetime that would overflow when added
//! to now.

use anyhow::{anyhow, bail, ensure};

/// The longest lifetime a token may have: a year and a day. Longer tokens are a
/// credential nobody remembers to revoke.
pub const MAX_TTL_DAYS: u64 = 366;

const USAGE: &str = "is not like 30m, 12h, 7d or 3600s";

/// Parses a lifetime: ASCII digits, then one unit `s`, `m`, `h` or `d`.
pub fn parse_ttl(text: &str) -> anyhow::Result<chrono::Duration> {
    let Some(unit) = text.chars().last() else {
        bail!("--ttl: empty; give a lifetime like 30m, 12h or 7d");
    };
    let number = &text[..text.len() - unit.len_utf8()];
    let unit_seconds: u64 = match unit {
        's' => 1,
        'm' => 60,
        'h' => 3600,
        'd' => 86_400,
        _ => bail!("--ttl: {text:?} {USAGE} (the unit is s, m, h or d)"),
    };
    // ASCII digits only: `str::parse` would also take a sign, and other scripts'
    // digits are not what anyone means by a lifetime.
    ensure!(
        !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()),
        "--ttl: {text:?} {USAGE}"
    );
    let too_long = || anyhow!("--ttl: {text:?} is longer than {MAX_TTL_DAYS} days");
    // Leading zeros are fine; a number past u64 is too long, not malformed.
    let n: u64 = number.parse().map_err(|_| too_long())?;
    ensure!(n > 0, "--ttl: {text:?} must be longer than 0");
    let seconds = n
        .checked_mul(unit_seconds)
        .filter(|s| *s <= MAX_TTL_DAYS * 86_400)
        .ok_or_else(too_long)?;
    let seconds = i64::try_from(seconds).map_err(|_| too_long())?;
    chrono::Duration::try_seconds(seconds).ok_or_else(too_long)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn lifetimes() {
        assert_eq!(parse_ttl("30m").unwrap(), chrono::Duration::minutes(30));
        assert_eq!(parse_ttl("12h").unwrap(), chrono::Duration::hours(12));
        assert_eq!(parse_ttl("7d").unwrap(), chrono::Duration::days(7));
        assert_eq!(parse_ttl("3600s").unwrap(), chrono::Duration::hours(1));
        assert_eq!(parse_ttl("007d").unwrap(), chrono::Duration::days(7));
        assert_eq!(parse_ttl("366d").unwrap(), chrono::Duration::days(366));
    }

    #[test]
    fn clear_errors_instead_of_panics() {
        let err = |text: &str| format!("{:#}", parse_ttl(text).unwrap_err());
        assert!(err("").contains("empty"));
        assert!(err("0").contains("not like"), "{}", err("0"));
        assert!(err("0d").contains("longer than 0"));
        assert!(err("99999999999999999999d").contains("longer than 366 days"));
        assert!(err("9223372036854775807s").contains("longer than 366 days"));
        assert!(err("18446744073709551615d").contains("longer than 366 days"));
        assert!(err("367d").contains("longer than 366 days"));
        assert!(err("-5m").contains("not like"));
        assert!(err("+5m").contains("not like"));
        assert!(err("m").contains("not like"));
        assert!(err("12").contains("not like"));
        assert!(err("１２h").contains("not like"), "full-width digits");
        assert!(err("١٢h").contains("not like"), "Arabic-Indic digits");
        assert!(err("12時").contains("not like"));
        assert!(err("1.5h").contains("not like"));
        assert!(err(" 12h").contains("not like"));
        for text in ["", "0", "-5m", "１２h", "12時"] {
            assert!(err(text).starts_with("--ttl"), "{text:?}: {}", err(text));
        }
    }

    proptest! {
        /// Arbitrary text never panics, and what parses is within the limit.
        #[test]
        fn never_panics(text in any::<String>()) {
            if let Ok(ttl) = parse_ttl(&text) {
                prop_assert!(ttl > chrono::Duration::zero());
                prop_assert!(ttl <= chrono::Duration::days(366));
            }
        }

        /// Digits and a unit, of any length: an answer, never a panic.
        #[test]
        fn long_numbers_never_panic(number in "[0-9]{1,40}", unit in "[smhdx]") {
            let _ = parse_ttl(&format!("{number}{unit}"));
        }
    }
}
