//! One-off commands (`check`, `campaign`, `succession`) do not migrate as a side
//! effect: on a database whose schema is not current they fail, say so, and leave it
//! as it was.

use std::path::Path;
use std::process::{Command, Output};

use fleet_migration::MigratorTrait;
use fleet_store::{DatabaseUrl, Store};

fn fleetd(db: &Path, args: &[&str]) -> anyhow::Result<Output> {
    Ok(Command::new(env!("CARGO_BIN_EXE_fleetd"))
        .args(args)
        .env("FLEET_DATABASE_URL", db)
        .env_remove("FLEET_JWT_SECRET")
        .output()?)
}

async fn pending(db: &Path) -> anyhow::Result<usize> {
    let url = DatabaseUrl::parse(&db.to_string_lossy())?;
    let store = Store::connect(&url).await?;
    Ok(
        fleet_migration::Migrator::get_pending_migrations_read_only(store.connection())
            .await?
            .len(),
    )
}

#[tokio::test]
async fn commands_refuse_a_schema_that_is_not_current_and_leave_it_alone() -> anyhow::Result<()> {
    let dir = std::env::temp_dir().join(format!("fleetd-schema-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let db = dir.join("fleet.db");
    let all = fleet_migration::Migrator::migrations().len();

    for args in [
        &["check"][..],
        &["campaign", "list"],
        &[
            "succession",
            "--tenant",
            "demo",
            "--from",
            "2712345678",
            "--to",
            "2712345679",
        ],
    ] {
        let out = fleetd(&db, args)?;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success(),
            "{args:?} succeeded on an empty database"
        );
        assert!(
            stderr.contains("database schema is not current: run `fleetd migrate`"),
            "{args:?}: {stderr}"
        );
        assert_eq!(pending(&db).await?, all, "{args:?} migrated");
    }

    let out = fleetd(&db, &["migrate"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(pending(&db).await?, 0);
    let out = fleetd(&db, &["check"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = fleetd(&db, &["campaign", "list"])?;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("face-library-5.1.0"));

    std::fs::remove_dir_all(&dir)?;
    Ok(())
}
