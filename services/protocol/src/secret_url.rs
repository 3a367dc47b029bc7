//! URLs that carry a password (`FLEET_AMQP_URL`, `FLEET_DATABASE_URL`): printed and
//! logged only with the password replaced, so a settings dump or an error message
//! cannot leak it. The raw text is reachable only through [`SecretUrl::expose_url`],
//! which a reader can grep for.

use std::fmt;

/// What stands in for a password when a URL is shown.
pub const REDACTED: &str = "***";

/// A URL whose password never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretUrl(String);

impl SecretUrl {
    pub fn new(url: impl Into<String>) -> Self {
        Self(url.into())
    }

    /// The URL with its password, for the one call that connects with it.
    pub fn expose_url(&self) -> &str {
        &self.0
    }

    /// The URL as it may be shown: see [`redact`].
    pub fn redacted(&self) -> String {
        redact(&self.0)
    }
}

impl fmt::Debug for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SecretUrl").field(&self.redacted()).finish()
    }
}

impl fmt::Display for SecretUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `scheme://user:password@host/…` → `scheme://user:***@host/…`, and the value of a
/// `password=` query parameter (libpq accepts one) likewise. Text that is not a URL
/// with credentials comes back unchanged.
pub fn redact(url: &str) -> String {
    let (head, query) = match url.split_once('?') {
        Some((head, query)) => (head, Some(query)),
        None => (url, None),
    };
    let mut out = match head.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            let (authority, path) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => {
                    let user = match userinfo.split_once(':') {
                        Some((user, _password)) => format!("{user}:{REDACTED}"),
                        None => userinfo.to_owned(),
                    };
                    format!("{scheme}://{user}@{host}{path}")
                }
                None => head.to_owned(),
            }
        }
        None => head.to_owned(),
    };
    if let Some(query) = query {
        out.push('?');
        let params: Vec<String> = query
            .split('&')
            .map(|param| match param.split_once('=') {
                Some((key, _)) if key.eq_ignore_ascii_case("password") => {
                    format!("{key}={REDACTED}")
                }
                _ => param.to_owned(),
            })
            .collect();
        out.push_str(&params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn passwords_never_print() {
        let url = SecretUrl::new("amqp://fleet:secret@127.0.0.1:5672/%2f");
        assert_eq!(url.to_string(), "amqp://fleet:***@127.0.0.1:5672/%2f");
        assert!(!format!("{url:?}").contains("secret"));
        assert!(!format!("{url:#?}").contains("secret"));
        assert_eq!(url.expose_url(), "amqp://fleet:secret@127.0.0.1:5672/%2f");
    }

    #[test]
    fn what_is_redacted() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("amqp://h"), "amqp://h");
        // An '@' in the password: the host is after the last one.
        assert_eq!(redact("amqp://u:p@ss@h:5672"), "amqp://u:***@h:5672");
        assert_eq!(
            redact("postgres://h/db?user=u&password=secret&sslmode=require"),
            "postgres://h/db?user=u&password=***&sslmode=require"
        );
        assert_eq!(redact("fleet.db"), "fleet.db");
        assert_eq!(redact(""), "");
    }

    proptest! {
        /// Whatever the password, it does not survive redaction.
        #[test]
        fn no_password_survives(password in "[A-Za-z0-9]{8,24}") {
            let url = SecretUrl::new(format!("amqp://user:{password}@broker.example:5672/vhost"));
            prop_assert!(!url.to_string().contains(&password));
            let debug = format!("{:?}", url);
            prop_assert!(!debug.contains(&password));
        }
    }
}
