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
