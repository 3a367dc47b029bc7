//! Where the database is (`FLEET_DATABASE_URL`), and how it may be shown: `Debug` and
//! `Display` never print a PostgreSQL password; the raw URL is reachable only through
//! [`DatabaseUrl::expose_url`].

use std::fmt;

use fleet_protocol::secret_url::redact;

/// Where the database is.
#[derive(Clone, PartialEq, Eq)]
pub enum DatabaseUrl {
    /// An SQLite file, created when missing.
    Sqlite(String),
    /// A `postgres://` URL.
    Postgres(String),
}

impl DatabaseUrl {
    /// Parses `FLEET_DATABASE_URL`: `postgres://…`/`postgresql://…`, `sqlite://PATH` or a
    /// bare file path.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            Ok(Self::Postgres(text.to_owned()))
        } else if let Some(path) = text
            .strip_prefix("sqlite://")
            .or_else(|| text.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or_default();
            anyhow::ensure!(
                !path.is_empty(),
                "FLEET_DATABASE_URL: sqlite URL has no file path"
            );
            Ok(Self::Sqlite(path.to_owned()))
        } else if text.contains("://") {
            // Shown redacted: a mistyped scheme may still carry a password.
            anyhow::bail!(
                "FLEET_DATABASE_URL: {:?} is neither postgres:// nor sqlite://",
                redact(text)
            )
        } else {
            anyhow::ensure!(!text.is_empty(), "FLEET_DATABASE_URL: empty");
            Ok(Self::Sqlite(text.to_owned()))
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// The URL (or SQLite path) with its password, for the one call that connects.
    pub fn expose_url(&self) -> &str {
        match self {
            Self::Sqlite(path) => path,
            Self::Postgres(url) => url,
        }
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => f.debug_tuple("Sqlite").field(path).finish(),
            Self::Postgres(url) => f.debug_tuple("Postgres").field(&redact(url)).finish(),
        }
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(path) => f.write_str(path),
            Self::Postgres(url) => f.write_str(&redact(url)),
        }
    }
}

/// A database URL for logs, without its password.
pub(crate) fn describe(url: &DatabaseUrl) -> String {
    match url {
        DatabaseUrl::Sqlite(path) => format!("SQLite file {path}"),
        DatabaseUrl::Postgres(url) => match url.split_once('@') {
            Some((_, host)) => format!("PostgreSQL at {host}"),
            None => "PostgreSQL".to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls() {
        assert_eq!(
            DatabaseUrl::parse("fleet.db").unwrap(),
            DatabaseUrl::Sqlite("fleet.db".into())
        );
        assert_eq!(
            DatabaseUrl::parse("sqlite://x/y.db?mode=rwc").unwrap(),
            DatabaseUrl::Sqlite("x/y.db".into())
        );
        assert!(
            DatabaseUrl::parse("postgres://u@h/db")
                .unwrap()
                .is_postgres()
        );
        assert!(DatabaseUrl::parse("mysql://h/db").is_err());
        assert!(DatabaseUrl::parse("").is_err());
    }

    #[test]
    fn descriptions_hide_passwords() {
        let d = describe(&DatabaseUrl::Postgres(
            "postgres://u:secret@h:5432/db".into(),
        ));
        assert!(!d.contains("secret"), "{d}");
    }

    #[test]
    fn debug_and_display_hide_passwords() {
        let url = DatabaseUrl::parse("postgres://u:secret@h:5432/db").unwrap();
        for shown in [format!("{url:?}"), format!("{url:#?}"), url.to_string()] {
            assert!(!shown.contains("secret"), "{shown}");
            assert!(shown.contains("u:***@h:5432/db"), "{shown}");
        }
        assert_eq!(url.expose_url(), "postgres://u:secret@h:5432/db");
        let err = DatabaseUrl::parse("mysql://u:secret@h/db").unwrap_err();
        assert!(!format!("{err:#}").contains("secret"), "{err:#}");
        let sqlite = DatabaseUrl::parse("fleet.db").unwrap();
        assert_eq!(format!("{sqlite:?}"), r#"Sqlite("fleet.db")"#);
        assert_eq!(sqlite.expose_url(), "fleet.db");
    }
}
