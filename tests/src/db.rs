//! A throwaway database per test: an SQLite file or a PostgreSQL database.

use std::process::Command;

use anyhow::Context;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

/// A database that exists for as long as this value does.
pub struct TestDb {
    pub url: String,
    kind: DbKind,
    name: String,
    dir: Option<std::path::PathBuf>,
}

fn psql(sql: &str) -> anyhow::Result<()> {
    let out = Command::new("psql")
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "postgres",
            "-d",
            "postgres",
            "-v",
            "ON_ERROR_STOP=1",
            "-q",
            "-c",
            sql,
        ])
        .output()
        .context("running psql (is PostgreSQL installed?)")?;
    anyhow::ensure!(
        out.status.success(),
        "psql {sql:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

impl TestDb {
    pub fn create(kind: DbKind) -> anyhow::Result<Self> {
        let name = format!("fleet_test_{}", uuid::Uuid::new_v4().simple());
        match kind {
            DbKind::Sqlite => {
                let dir = std::env::temp_dir().join(&name);
                std::fs::create_dir_all(&dir)?;
                let url = dir.join("fleet.db").to_string_lossy().into_owned();
                Ok(Self {
                    url,
                    kind,
                    name,
                    dir: Some(dir),
                })
            }
            DbKind::Postgres => {
                psql(&format!("CREATE DATABASE {name}"))?;
                let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
                Ok(Self {
                    url,
                    kind,
                    name,
                    dir: None,
                })
            }
        }
    }
}

impl TestDb {
    /// PostgreSQL only: refuse every new connection to this database and end the open
    /// ones, as if the database went away (other tests' databases are untouched).
    pub fn cut_off(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.kind == DbKind::Postgres,
            "only a PostgreSQL database can be cut off"
        );
        psql(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS false",
            self.name
        ))?;
        psql(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{}' AND pid <> pg_backend_pid()",
            self.name
        ))
    }

    /// Lets connections in again after [`TestDb::cut_off`].
    pub fn restore(&self) -> anyhow::Result<()> {
        psql(&format!(
            "ALTER DATABASE {} WITH ALLOW_CONNECTIONS true",
            self.name
        ))
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        match self.kind {
            DbKind::Sqlite => {
                if let Some(dir) = &self.dir {
                    let _ = std::fs::remove_dir_all(dir);
                }
            }
            DbKind::Postgres => {
                let _ = psql(&format!(
                    "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                    self.name
                ));
            }
        }
    }
}
