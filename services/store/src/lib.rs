//! The store: where reports become history and current state, on SQLite (the embedded
//! default) or PostgreSQL (scale-out).
//!
//! Layout — a pure plan above, a small adapter trait below, one module per database:
//! - [`plan`] decides: refusals, duplicates, how reports change states, campaign
//!   states and counter changes; no database in it;
//! - [`flow`] runs the steps of every write in order (ingest batches, a campaign's
//!   assessment, 承継) over the [`adapter::Tx`] trait;
//! - [`sqlite`] and [`postgres`] implement that trait, each its own way;
//! - [`Store`] opens the database, runs migrations, seeds the defaults and hands each
//!   write to its database's adapter;
//! - [`read`] answers the dashboards and the API, always within a caller's [`Scope`],
//!   with sea-query statements that serve both databases through the ORM's pool;
//!   [`check`] and [`history`] keep the counters and the history in shape.

mod adapter;
pub mod alerting;
pub mod campaigns;
pub mod check;
mod findings;
mod findings_rows;
pub mod flow;
pub mod history;
pub mod incidents;
pub mod plan;
mod postgres;
pub mod read;
mod schema;
mod sqlite;
pub mod succession;
mod terminal_read;
mod url;
pub use sqlite::DEFAULT_STATE_CACHE;
pub use url::DatabaseUrl;
use url::describe;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, FixedOffset, Utc};
use fleet_protocol::findings::Thresholds;
use fleet_protocol::{Campaign, Prefecture, TenantSlug};
use schema::{Campaigns, Publishers, Tenants};
use sea_orm::sea_query::{OnConflict, Query};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend};

pub use alerting::{FindingFilter, FindingPage, StoredFinding, Swept};
pub use findings::RulesContext;
pub use flow::Turn;
pub use plan::{IncomingReport, Outcome};
pub use read::{ClinicTerminal, ClinicView, Rollout, WorkItem};
pub use terminal_read::TerminalDetail;

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
    /// The ORM's pool: reads, migrations, and every write on PostgreSQL.
    db: DatabaseConnection,
    /// Where writes go.
    writer: Writer,
    /// The findings thresholds a batch is judged with; `None` judges none
    /// (`FLEET_FINDINGS=off`, for measuring what findings cost).
    rules: Arc<std::sync::RwLock<Option<Thresholds>>>,
}

/// Where a database's writes go.
#[derive(Clone, Debug)]
enum Writer {
    /// SQLite: the one native connection every write goes through.
    Sqlite(Arc<sqlite::SqliteWriter>),
    /// PostgreSQL: transactions on the pool.
    Postgres,
}

impl Store {
    /// Opens the database. SQLite runs in WAL mode with `synchronous=FULL`: the service
    /// acks a message only after its commit, so a commit must survive a power cut.
    pub async fn connect(url: &DatabaseUrl) -> anyhow::Result<Self> {
        let mut options = match url {
            DatabaseUrl::Sqlite(path) => {
                let mut o = ConnectOptions::new(format!("sqlite://{path}"));
                o.map_sqlx_sqlite_opts(|opts| {
                    // The writer's settings (sqlite::PRAGMAS), so the pool reads
                    // what the writer writes the same way.
                    sqlite::PRAGMAS.iter().fold(
                        opts.create_if_missing(true)
                            .busy_timeout(sqlite::BUSY_TIMEOUT),
                        |opts, (name, value)| opts.pragma(*name, *value),
                    )
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
        let writer = match url {
            DatabaseUrl::Sqlite(path) => {
                Writer::Sqlite(Arc::new(sqlite::SqliteWriter::open(path)?))
            }
            DatabaseUrl::Postgres(_) => Writer::Postgres,
        };
        Ok(Self {
            db,
            writer,
            rules: Arc::new(std::sync::RwLock::new(Some(Thresholds::default()))),
        })
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> anyhow::Result<()> {
        use fleet_migration::MigratorTrait;
        fleet_migration::Migrator::up(&self.db, None)
            .await
            .context("running migrations")
    }

    /// Inserts what an embedded install starts with, once: tenant `demo`, AMQP user
    /// `guest` publishing for it, and the seeded campaigns (created at `now`).
    pub async fn seed_defaults(&self, now: DateTime<FixedOffset>) -> anyhow::Result<()> {
        self.add_tenant(DEMO_TENANT, "デモ事業者", &[DEMO_PUBLISHER], now)
            .await?;
        let campaign = Campaign::face_library_5_1_0();
        let definition = serde_json::to_string(&campaign)?;
        let insert = Query::insert()
            .into_table(Campaigns::Table)
            .columns([Campaigns::Id, Campaigns::Definition, Campaigns::CreatedAt])
            .values([campaign.id.clone().into(), definition.into(), now.into()])?
            .on_conflict(OnConflict::column(Campaigns::Id).do_nothing().to_owned())
            .to_owned();
        self.db
            .execute(&insert)
            .await
            .context("seeding campaigns")?;
        self.seed_windows(now).await?;
        Ok(())
    }

    /// Adds a tenant and the AMQP users that publish for it (idempotent).
    pub async fn add_tenant(
        &self,
        slug: &str,
        name: &str,
        publishers: &[&str],
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<()> {
        let slug = TenantSlug::parse(slug)?;
        let insert = Query::insert()
            .into_table(Tenants::Table)
            .columns([Tenants::Slug, Tenants::Name, Tenants::CreatedAt])
            .values([slug.as_str().into(), name.into(), now.into()])?
            .on_conflict(OnConflict::column(Tenants::Slug).do_nothing().to_owned())
            .to_owned();
        self.db.execute(&insert).await.context("adding a tenant")?;
        for user in publishers {
            let insert = Query::insert()
                .into_table(Publishers::Table)
                .columns([Publishers::AmqpUser, Publishers::Tenant])
                .values([(*user).into(), slug.as_str().into()])?
                .on_conflict(
                    OnConflict::column(Publishers::AmqpUser)
                        .update_column(Publishers::Tenant)
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
            .columns([Publishers::AmqpUser, Publishers::Tenant])
            .from(Publishers::Table)
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
            .column(Campaigns::Definition)
            .from(Campaigns::Table)
            .order_by(Campaigns::Id, sea_orm::sea_query::Order::Asc)
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
        if let Writer::Sqlite(writer) = &self.writer {
            writer.set_state_cache(terminals);
        }
    }

    /// Sets the thresholds findings are judged with at ingest; `None` turns the
    /// judging of findings at ingest off.
    pub fn set_findings(&self, rules: Option<Thresholds>) {
        *self.rules.write().unwrap_or_else(|e| e.into_inner()) = rules;
    }

    /// The thresholds findings are judged with, if they are.
    pub fn findings_rules(&self) -> Option<Thresholds> {
        self.rules.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Writes a batch in one transaction and returns one outcome per report, in order.
    /// `now` decides time-dependent campaign causes (has distribution started?).
    /// The caller acks the messages only after this returns `Ok`, i.e. after the
    /// commit.
    pub async fn write_batch(
        &self,
        batch: Arc<[IncomingReport]>,
        campaigns: Arc<Vec<Campaign>>,
        now: DateTime<FixedOffset>,
    ) -> anyhow::Result<Vec<Outcome>> {
        self.write_batch_in_turn(batch, campaigns, now, Turn::default())
            .await
    }

    /// How many batches one consumer may have this store write at once: one on
    /// SQLite, which has one writer; two on PostgreSQL, where a batch's per-terminal
    /// locks keep batches that share a terminal in order and let the rest run side
    /// by side on two connections.
    pub fn batches_in_flight(&self) -> usize {
        match self.writer {
            Writer::Sqlite(_) => 1,
            Writer::Postgres => 2,
        }
    }

    /// [`Store::write_batch`] for a batch written while the one before it may still
    /// be running ([`Store::batches_in_flight`]): on PostgreSQL it takes its locks
    /// only once that batch holds all of its own (`turn.after`), and says when it
    /// holds its own (`turn.locked`). A terminal in both batches is therefore applied
    /// in delivery order, as if the batches ran one after the other.
    pub async fn write_batch_in_turn(
        &self,
        batch: Arc<[IncomingReport]>,
        campaigns: Arc<Vec<Campaign>>,
        now: DateTime<FixedOffset>,
        turn: Turn,
    ) -> anyhow::Result<Vec<Outcome>> {
        let rules = self.findings_rules();
        match &self.writer {
            Writer::Sqlite(writer) => {
                let writer = writer.clone();
                // The writer thread works under the caller's span (ingest's
                // `store.write_batch`), so spans opened inside (findings) join its trace.
                let span = tracing::Span::current();
                tokio::task::spawn_blocking(move || {
                    span.in_scope(|| writer.write_batch(&batch, &campaigns, now, rules.as_ref()))
                })
                .await
                .context("the SQLite writer thread panicked")?
            }
            Writer::Postgres => {
                postgres::write_batch(&self.db, &batch, &campaigns, now, turn, rules.as_ref()).await
            }
        }
    }

    /// The underlying connection, for tests and tools.
    pub fn connection(&self) -> &DatabaseConnection {
        &self.db
    }
}

/// The system clock's time in JST, for tests and tools; the service reads its own
/// clock (`fleet_protocol::clock`) and hands the store `now` wherever time matters.
pub fn now_jst() -> DateTime<FixedOffset> {
    Utc::now().with_timezone(&fleet_protocol::JST)
}
