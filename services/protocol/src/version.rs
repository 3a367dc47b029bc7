//! Dotted version numbers as the terminal software writes them.
//!
//! The contract (§3) compares versions as dotted numbers: `5.1.0` > `5.0.12` and
//! `5.1` = `5.1.0`. Trailing zero components are therefore insignificant, and a
//! version is stored without them so that equality and ordering agree. Anything that
//! is not digits separated by dots is not a [`Version`]: callers treat it as "unknown"
//! rather than guessing, because an unparsable version must never crash anything.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

/// A dotted numeric version such as `5.1.0`.
#[derive(Clone, Debug)]
pub struct Version {
    /// Components with trailing zeros removed (`5.1.0` → `[5, 1]`), so `5.1 == 5.1.0`.
    significant: Vec<u64>,
    /// The text as given, for display.
    original: String,
}

/// Why a text is not a dotted version.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VersionError {
    #[error("version is empty")]
    Empty,
    #[error("version {0:?} is not dot-separated numbers")]
    NotNumeric(String),
}

impl Version {
    /// Parses `5.1.0`, also tolerating surrounding white space and a leading `v`
    /// (`v5.1.0`), which some version files carry.
    pub fn parse(text: &str) -> Result<Self, VersionError> {
        let trimmed = text.trim();
        let body = trimmed
            .strip_prefix('v')
            .or_else(|| trimmed.strip_prefix('V'))
            .unwrap_or(trimmed);
        if body.is_empty() {
            return Err(VersionError::Empty);
        }
        let mut parts = Vec::new();
        for part in body.split('.') {
            if part.is_empty() || part.len() > 18 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(VersionError::NotNumeric(text.to_owned()));
            }
            // At most 18 digits, so this never overflows.
            parts.push(
                part.parse::<u64>()
                    .map_err(|_| VersionError::NotNumeric(text.to_owned()))?,
            );
        }
        while parts.last() == Some(&0) {
            parts.pop();
        }
        Ok(Self {
            significant: parts,
            original: trimmed.to_owned(),
        })
    }

    /// The text as it was given (trimmed).
    pub fn as_str(&self) -> &str {
        &self.original
    }
}

impl FromStr for Version {
    type Err = VersionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.original)
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        // Lexicographic over the significant parts; a missing part counts as 0, which
        // the trimming of trailing zeros already encodes.
        self.significant.cmp(&other.significant)
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

// Equality must agree with Ord: `5.1` == `5.1.0` although their texts differ, so
// equality and hashing look at the significant parts only.
impl PartialEq for Version {
    fn eq(&self, other: &Self) -> bool {
        self.significant == other.significant
    }
}

impl Eq for Version {}

impl std::hash::Hash for Version {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.significant.hash(state);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn v(s: &str) -> Version {
        Version::parse(s).unwrap()
    }

    #[test]
    fn contract_examples_compare_as_dotted_numbers() {
        assert!(v("5.1.0") > v("5.0.12"));
        assert_eq!(v("5.1"), v("5.1.0"));
        assert!(v("5.10") > v("5.9.99"));
        assert!(v("5.0.3") < v("5.1.0"));
        assert!(v("6") > v("5.99"));
    }

    #[test]
    fn tolerates_whitespace_and_v_prefix() {
        assert_eq!(v(" v5.1.0\r\n"), v("5.1"));
    }

    #[test]
    fn rejects_what_is_not_dotted_numbers() {
        for bad in [
            "", " ", "5..1", "5.1.", ".5", "5.1-beta", "abc", "5,1", "１.２", "5.1.0.x",
        ] {
            assert!(Version::parse(bad).is_err(), "{bad:?} must not parse");
        }
    }

    proptest! {
        #[test]
        fn trailing_zeros_never_change_order(parts in prop::collection::vec(0u64..1000, 1..6), zeros in 0usize..4) {
            let base = parts.iter().map(u64::to_string).collect::<Vec<_>>().join(".");
            let padded = format!("{base}{}", ".0".repeat(zeros));
            prop_assert_eq!(v(&base), v(&padded));
        }

        #[test]
        fn order_matches_numeric_tuple_order(a in prop::collection::vec(0u64..50, 3), b in prop::collection::vec(0u64..50, 3)) {
            let sa = a.iter().map(u64::to_string).collect::<Vec<_>>().join(".");
            let sb = b.iter().map(u64::to_string).collect::<Vec<_>>().join(".");
            prop_assert_eq!(v(&sa).cmp(&v(&sb)), a.cmp(&b));
        }

        #[test]
        fn parsing_arbitrary_text_never_panics(s in ".*") {
            let _ = Version::parse(&s);
        }
    }
}
