//! The store: where reports become history and current state, on SQLite (the embedded
//! default) or PostgreSQL (scale-out).
//!
//! Layout:
//! - [`Store`] opens the database, runs migrations and seeds the defaults;
//! - [`write`] applies a batch of parsed reports in one transaction (history append,
//!   current-state upsert, campaign states) and says what happened to each;
//! - [`read`] answers the dashboards and the API, always within a caller's [`Scope`].
//!
//! Query functions take the connection and know nothing of HTTP or AMQP. Statements are
//! built with sea-query so one code path serves both databases.

pub mod campaigns;
pub mod check;
pub mod history;
mod lock;
pub mod read;
pub mod succession;
mod url;
pub mod write;
mod write_pg;
mod write_sqlite;
pub use url::DatabaseUrl;
use url::describe;
pub use write_sqlite::DEFAULT_STATE_CACHE;

use std::collections::HashMap;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, FixedOffset, Utc};
use fleet_protocol::{Campaign, Prefecture, TenantSlug};
use sea_orm::sea_query::{Alias, OnConflict, Query};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};

pub use read::{ClinicTerminal, ClinicView, Rollout, WorkItem};
pub use write::{IncomingReport, Outcome, Turn};

/// Which part of the fleet a caller may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    /// A vendor's staff (`admin`, `support`, `oncall`): everything of one tenant.
    Tenant(TenantSlug),
    /// A regional medical association: its prefectures, across the vendors.
    Prefectures(Vec<Prefecture>),
}

/// The tenant every embedded install starts with (contract §1).
pub const DEMO_TENANT: &str = "demo";
/// The AMQP user allowed to publish for [`DEMO_TENANT`].
pub const DEMO_PUBLISHER: &str = "guest";

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    /// SQLite only: the native connection batches are written on.
    sqlite_writer: Option<std::sync::Arc<write_sqlite::SqliteWriter>>,
}

impl Store {
    /// Opens the database. SQLite runs in WAL mode with `synchronous=FULL`: the service
    /// acks a message only after its commit, so a commit must survive a power cut.
    pub async fn connect(url: &DatabaseUrl) -> anyhow::Result<Self> {
        let mut options = match url {
            DatabaseUrl::Sqlite(path) => {
                let mut o = ConnectOptions::new(format!("sqlite://{path}"));
                o.map_sqlx_sqlite_opts(|opts| {
                    use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
                    opts.create_if_missing(true)
                        .journal_mode(SqliteJournalMode::Wal)
                        .synchronous(SqliteSynchronous::Full)
                        .busy_timeout(Duration::from_secs(10))
                        .foreign_keys(true)
                        // From the ingest profile (docs/BENCHMARKS.md): a 64 MiB page
                        // cache instead of 2 MiB stops pages spilling as the fleet
                        // grows; statement journals stay in memory; checkpoints run
                        // every 256 MiB of WAL rather than inside every few commits
                        // (a page rewritten by many batches is copied back once).
                        .pragma("cache_size", "-65536")
                        .pragma("temp_store", "MEMORY")
                        .pragma("wal_autocheckpoint", "65536")
                });
                // One writer at a time is SQLite's rule; a few readers serve the web.
                o.max_connections(4);
                o
            }
            DatabaseUrl::Postgres(url) => {
                let mut o = ConnectOptions::new(url.clone());
                o.max_connections(8);
                o
            }
        };
        options
            .sqlx_logging(false)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(10));
        let db = Database::connect(options)
            .await
            .with_context(|| format!("connecting to the database ({})", describe(url)))?;
        let sqlite_writer = match url {
            DatabaseUrl::Sqlite(path) => {
                Some(std::sync::Arc::new(write_sqlite::SqliteWriter::open(path)?))
            }
            DatabaseUrl::Postgres(_) => None,
        };
        Ok(Self { db, sqlite_writer })
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        use fleet_migration::MigratorTrait;
        fleet_migration::Migrator::up(&self.db, None)
            .await
            .context("running migrations")
    }

    /// Inserts what an embedded install starts with, once: tenant `demo`, AMQP user
    /// `guest` publishing for it, and the seeded campaigns.
    pub async fn seed_defaults(&self) -> anyhow::Result<()> {
        let now = now_jst();
        self.add_tenant(DEMO_TENANT, "デモ事業者", &[DEMO_PUBLISHER])
            .await?;
        let campaign = Campaign::face_library_5_1_0();
        let definition = serde_json::to_string(&campaign)?;
        let insert = Query::insert()
            .into_table(Alias::new("campaigns"))
            .columns([
                Alias::new("id"),
                Alias::new("definition"),
                Alias::new("created_at"),
            ])
            .values([campaign.id.clone().into(), definition.into(), now.into()])?
            .on_conflict(OnConflict::column(Alias::new("id")).do_nothing().to_owned())
            .to_owned();
        self.db
            .execute(&insert)
            .await
            .context("seeding campaigns")?;
        Ok(())
    }

    /// Adds a tenant and the AMQP users that publish for it (idempotent).
    pub async fn add_tenant(
        &self,
        slug: &str,
        name: &str,
        publishers: &[&str],
    ) -> anyhow::Result<()> {
        let slug = TenantSlug::parse(slug)?;
        let insert = Query::insert()
            .into_table(Alias::new("tenants"))
            .columns([
                Alias::new("slug"),
                Alias::new("name"),
                Alias::new("created_at"),
            ])
            .values([slug.as_str().into(), name.into(), now_jst().into()])?
            .on_conflict(
                OnConflict::column(Alias::new("slug"))
                    .do_nothing()
                    .to_owned(),
            )
            .to_owned();
        self.db.execute(&insert).await.context("adding a tenant")?;
        for user in publishers {
            let insert = Query::insert()
                .into_table(Alias::new("publishers"))
                .columns([Alias::new("amqp_user"), Alias::new("tenant")])
                .values([(*user).into(), slug.as_str().into()])?
                .on_conflict(
                    OnConflict::column(Alias::new("amqp_user"))
                        .update_column(Alias::new("tenant"))
                        .to_owned(),
                )
                .to_owned();
            self.db
                .execute(&insert)
                .await
                .context("adding a publisher")?;
        }
        Ok(())
    }

    /// Which tenant each AMQP user publishes for.
    pub async fn publishers(&self) -> anyhow::Result<HashMap<String, TenantSlug>> {
        let select = Query::select()
            .columns([Alias::new("amqp_user"), Alias::new("tenant")])
            .from(Alias::new("publishers"))
            .to_owned();
        let mut map = HashMap::new();
        for row in self
            .db
            .query_all(&select)
            .await
            .context("reading publishers")?
        {
            let user: String = row.try_get("", "amqp_user")?;
            let tenant: String = row.try_get("", "tenant")?;
            map.insert(user, TenantSlug::parse(&tenant)?);
        }
        Ok(map)
    }

    /// Every campaign, as data.
    pub async fn campaigns(&self) -> anyhow::Result<Vec<Campaign>> {
        let select = Query::select()
            .column(Alias::new("definition"))
            .from(Alias::new("campaigns"))
            .order_by(Alias::new("id"), sea_orm::sea_query::Order::Asc)
            .to_owned();
        let mut campaigns = Vec::new();
        for row in self
            .db
            .query_all(&select)
            .await
            .context("reading campaigns")?
        {
            let definition: String = row.try_get("", "definition")?;
            let campaign: Campaign = serde_json::from_str(&definition)
                .with_context(|| format!("campaign definition {definition:?} does not parse"))?;
            campaigns.push(campaign);
        }
        Ok(campaigns)
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> anyhow::Result<()> {
        self.db.ping().await.context("database ping")
    }

    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// How many terminal states the SQLite writer keeps in memory between batches
    /// (`FLEET_INGEST_STATE_CACHE`); 0 keeps none. PostgreSQL keeps none.
    pub fn set_state_cache(&self, terminals: usize) {
        if let Some(writer) = &self.sqlite_writer {
            writer.set_state_cache(terminals);
        }
    }

    /// The underlying connection, for tests and tools.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }
}

/// The current time in JST.
pub fn now_jst() -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&fleet_protocol::JST)
}
