//! Tenants: one per system vendor (システム事業者).
//!
//! The slug appears in the AMQP routing key `v1.<tenant>.report`, so it is restricted
//! to `[a-z0-9-]{1,32}` (contract §1).

use std::fmt;

use serde::{Deserialize, Serialize};

/// A vendor's slug, `[a-z0-9-]{1,32}`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TenantSlug(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tenant {0:?} is not [a-z0-9-]{{1,32}}")]
pub struct TenantSlugError(pub String);

impl TenantSlug {
    pub fn parse(text: &str) -> Result<Self, TenantSlugError> {
        let ok = (1..=32).contains(&text.len())
            && text
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(TenantSlugError(text.to_owned()))
        }
    }

    /// The tenant named by a routing key `v1.<tenant>.report`, if the key has that shape.
    pub fn from_routing_key(key: &str) -> Result<Self, TenantSlugError> {
        let tenant = key
            .strip_prefix("v1.")
            .and_then(|rest| rest.strip_suffix(".report"))
            .ok_or_else(|| TenantSlugError(key.to_owned()))?;
        Self::parse(tenant)
    }

    /// The routing key a publisher of this tenant uses.
    pub fn routing_key(&self) -> String {
        format!("v1.{}.report", self.0)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TenantSlug {
    type Error = TenantSlugError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<TenantSlug> for String {
    fn from(value: TenantSlug) -> Self {
        value.0
    }
}

impl fmt::Display for TenantSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_keys() {
        assert_eq!(
            TenantSlug::from_routing_key("v1.demo.report")
                .unwrap()
                .as_str(),
            "demo"
        );
        assert_eq!(
            TenantSlug::parse("acme-2").unwrap().routing_key(),
            "v1.acme-2.report"
        );
        for bad in [
            "v1.Demo.report",
            "v1..report",
            "v2.demo.report",
            "v1.demo.reports",
            "v1.a_b.report",
        ] {
            assert!(TenantSlug::from_routing_key(bad).is_err(), "{bad}");
        }
        assert!(TenantSlug::parse(&"a".repeat(33)).is_err());
        assert!(TenantSlug::parse(&"a".repeat(32)).is_ok());
    }
}
