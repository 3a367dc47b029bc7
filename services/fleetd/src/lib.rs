//! `fleetd`, the central service: the roles of contract §4 as library functions, so
//! the binary stays thin and the end-to-end tests run the real service in-process.
//!
//! - `serve`: migrations, ingest consumer and web in one process (the embedded default);
//! - `migrate` / `ingest` / `web`: one role each, for replicas run apart;
//! - `token`: signs a JWT with the service's secret.
//!
//! Logs, and traces when `OTEL_EXPORTER_OTLP_ENDPOINT` is set, are set up by
//! [`telemetry`].
//!
//! Each role runs until the shutdown signal; the tasks of one process are owned by
//! [`Roles`], so when one of them ends on its own the process stops with its error
//! instead of running on half.

pub mod alert;
pub mod settings;
pub mod telemetry;
pub mod ttl;
pub mod windows;

use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::Arc;

use anyhow::Context;
use fleet_ingest::{BrokerHealth, IngestMetrics};
use fleet_protocol::SharedClock;
use fleet_store::Store;
use fleet_web::AppState;
use prometheus::Registry;
use tokio::sync::watch;
use tokio::task::JoinSet;

pub use settings::Settings;

/// Opens the store, applies migrations and seeds the defaults.
pub async fn migrate(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(&settings.database).await?;
    store.migrate().await?;
    store.seed_defaults(settings.clock.now()).await?;
    Ok(store)
}

/// What [`open_current`] says when migrations are pending.
pub const SCHEMA_NOT_CURRENT: &str = "database schema is not current: run `fleetd migrate`";

/// Opens the store for a one-off command (`check`, `campaign`, `succession`) without
/// changing its schema: a command that migrated as a side effect could upgrade a
/// database under replicas still running the old version.
pub async fn open_current(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(&settings.database).await?;
    ensure_schema_current(&store).await?;
    Ok(store)
}

/// Fails with [`SCHEMA_NOT_CURRENT`] unless every migration this binary knows is
/// applied. Reads only: the migration table is not created when missing.
pub async fn ensure_schema_current(store: &Store) -> anyhow::Result<()> {
    use fleet_migration::MigratorTrait;
    let pending = fleet_migration::Migrator::get_pending_migrations_read_only(store.connection())
        .await
        .context("reading which migrations are applied")?;
    if let Some(first) = pending.first() {
        anyhow::bail!(
            "{SCHEMA_NOT_CURRENT} ({} pending, the first {})",
            pending.len(),
            first.name()
        );
    }
    Ok(())
}

/// Everything in one process until `shutdown`: migrations, then ingest, web and the
/// maintenance task as [`Roles`]. If any of them ends before `shutdown`, the others are
/// stopped and `serve` returns that role's error: the process never half-runs.
pub async fn serve(
    settings: Settings,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let secret = settings.jwt_secret()?;
    let store = migrate(&settings).await?;
    store.set_state_cache(settings.state_cache);
    let registry =
        Registry::new_custom(Some("fleetd".to_owned()), None).context("metrics registry")?;
    let health = BrokerHealth::new();
    let mut roles = Roles::new();
    spawn_ingest(&mut roles, &settings, &store, &registry, &health)?;
    spawn_alert(&mut roles, &settings, &store, &registry)?;
    let state = AppState {
        store,
        secret,
        registry,
        broker: Arc::new(BrokerReadiness(health)),
        clock: settings.clock.clone(),
    };
    roles.spawn(
        "web",
        fleet_web::serve(listener, state, roles.stop_signal()),
    );
    roles.run(shutdown).await
}

/// Hourly upkeep, also at start: history partitions ahead, retention, and campaign
/// causes that changed with time. A failed pass is logged and retried an hour later;
/// the task ends (`Ok`) only when `shutdown` turns true.
///
/// "Now" is the service's clock: reports are received (and partitioned) on it, so
/// the months kept and the causes judged follow it too.
pub async fn maintain_history(
    store: Store,
    retention_days: u32,
    clock: SharedClock,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    loop {
        match store.maintain_history(clock.now(), retention_days).await {
            Ok(done) => tracing::info!(
                created = ?done.partitions_created,
                dropped = ?done.partitions_dropped,
                deleted = done.rows_deleted,
                "history maintained"
            ),
            Err(err) => tracing::warn!(
                error = format!("{err:#}"),
                "history maintenance failed; retrying in an hour"
            ),
        }
        match store.reassess_time_dependent(clock.now()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(terminals = n, "re-assessed causes that depended on time"),
            Err(err) => tracing::warn!(
                error = format!("{err:#}"),
                "re-assessing campaign causes failed"
            ),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
            _ = shutdown.changed() => return Ok(()),
        }
    }
}

/// The ingest consumer alone, with the maintenance task.
pub async fn ingest(settings: Settings, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let store = Store::connect(&settings.database).await?;
    store.set_state_cache(settings.state_cache);
    let registry =
        Registry::new_custom(Some("fleetd".to_owned()), None).context("metrics registry")?;
    let mut roles = Roles::new();
    spawn_ingest(
        &mut roles,
        &settings,
        &store,
        &registry,
        &BrokerHealth::new(),
    )?;
    roles.run(shutdown).await
}

/// The two roles of every process that ingests (`serve`, `ingest`): the maintenance
/// task and the consumer, its metrics in `registry`.
fn spawn_ingest(
    roles: &mut Roles,
    settings: &Settings,
    store: &Store,
    registry: &Registry,
    health: &Arc<BrokerHealth>,
) -> anyhow::Result<()> {
    let metrics = IngestMetrics::register(registry).context("registering ingest metrics")?;
    store.set_findings(settings.findings_rules());
    roles.spawn(
        "maintenance",
        maintain_history(
            store.clone(),
            settings.retention_days,
            settings.clock.clone(),
            roles.stop_signal(),
        ),
    );
    roles.spawn(
        "ingest",
        fleet_ingest::run(
            settings.ingest.clone(),
            store.clone(),
            metrics,
            health.clone(),
            roles.stop_signal(),
        ),
    );
    Ok(())
}

/// The alert role alone (contract §6): the sweep and delivery to Alertmanager, active
/// in one process at a time.
pub async fn alert(settings: Settings, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let store = open_current(&settings).await?;
    let registry =
        Registry::new_custom(Some("fleetd".to_owned()), None).context("metrics registry")?;
    let mut roles = Roles::new();
    spawn_alert(&mut roles, &settings, &store, &registry)?;
    roles.run(shutdown).await
}

fn spawn_alert(
    roles: &mut Roles,
    settings: &Settings,
    store: &Store,
    registry: &Registry,
) -> anyhow::Result<()> {
    let metrics = alert::AlertMetrics::register(registry).context("registering alert metrics")?;
    roles.spawn(
        "alert",
        alert::run(
            store.clone(),
            settings.database.clone(),
            settings.alert.clone(),
            settings.clock.clone(),
            metrics,
            roles.stop_signal(),
        ),
    );
    Ok(())
}

/// The web role alone; it keeps a connection to the broker only for `/readyz`.
pub async fn web(
    settings: Settings,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let secret = settings.jwt_secret()?;
    let store = Store::connect(&settings.database).await?;
    let registry = Registry::new_custom(Some("fleetd".to_owned()), None)?;
    let health = BrokerHealth::new();
    let mut roles = Roles::new();
    let watcher = fleet_ingest::broker::watch(
        settings.amqp_url.clone(),
        health.clone(),
        roles.stop_signal(),
    );
    roles.spawn("readiness", async move {
        watcher.await;
        Ok(())
    });
    roles.spawn(
        "web",
        fleet_web::serve(
            listener,
            AppState {
                store,
                secret,
                registry,
                broker: Arc::new(BrokerReadiness(health)),
                clock: settings.clock.clone(),
            },
            roles.stop_signal(),
        ),
    );
    roles.run(shutdown).await
}

/// `/readyz`'s view of the broker: the health the ingest consumer (or, in `fleetd
/// web`, the readiness watcher) keeps up to date.
struct BrokerReadiness(Arc<BrokerHealth>);

impl fleet_web::Readiness for BrokerReadiness {
    fn broker_ready(&self) -> bool {
        self.0.is_up()
    }
}

/// The tasks of one process (ingest, web, maintenance …), owned together: none is
/// detached, and none runs on alone.
///
/// Every role watches [`Roles::stop_signal`] and returns when it turns true. The
/// signal is raised by the outside `shutdown` (SIGTERM) or by the first role that
/// ends on its own — a role that stops while nobody asked it to has failed, even with
/// `Ok`. [`Roles::run`] then waits for every role and returns the first failure, so the
/// process exits non-zero naming the role and its cause.
pub struct Roles {
    tasks: JoinSet<anyhow::Result<()>>,
    /// Which role each task is, for the log and for a panic's error.
    names: HashMap<tokio::task::Id, &'static str>,
    stop: watch::Sender<bool>,
}

impl Default for Roles {
    fn default() -> Self {
        Self::new()
    }
}

impl Roles {
    pub fn new() -> Self {
        Self {
            tasks: JoinSet::new(),
            names: HashMap::new(),
            stop: watch::channel(false).0,
        }
    }

    /// What each role watches to know when to stop.
    pub fn stop_signal(&self) -> watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Starts a role; it runs until [`Roles::stop_signal`] turns true.
    pub fn spawn<F>(&mut self, name: &'static str, role: F)
    where
        F: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let handle = self.tasks.spawn(role);
        self.names.insert(handle.id(), name);
    }

    /// Runs the roles until `shutdown` turns true or one of them ends, then stops the
    /// others and waits for them. `Ok` only when every role stopped cleanly because
    /// `shutdown` asked it to.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
        let mut stopping = false;
        // The outside signal may be gone (its sender dropped): then only a role ending
        // stops the process.
        let mut listening = true;
        let mut failure: Option<anyhow::Error> = None;
        if *shutdown.borrow_and_update() {
            stopping = true;
            self.stop.send_replace(true);
        }
        loop {
            tokio::select! {
                changed = shutdown.changed(), if listening && !stopping => match changed {
                    Ok(()) if *shutdown.borrow_and_update() => {
                        stopping = true;
                        self.stop.send_replace(true);
                    }
                    Ok(()) => {}
                    Err(_) => listening = false,
                },
                joined = self.tasks.join_next_with_id() => {
                    let Some(joined) = joined else { break };
                    let (name, result) = match joined {
                        Ok((id, result)) => (self.name(id), result),
                        Err(err) => {
                            let name = self.name(err.id());
                            (name, Err(anyhow::anyhow!("{err}")))
                        }
                    };
                    let result = match result {
                        Ok(()) if !stopping => Err(anyhow::anyhow!(
                            "the {name} role stopped while nobody asked it to"
                        )),
                        Err(err) => Err(err.context(format!("the {name} role failed"))),
                        Ok(()) => Ok(()),
                    };
                    report(name, &result);
                    if let Err(err) = result {
                        failure.get_or_insert(err);
                        if !stopping {
                            tracing::warn!(role = name, "stopping the other roles");
                            stopping = true;
                            self.stop.send_replace(true);
                        }
                    }
                }
            }
        }
        match failure {
            Some(err) => Err(err),
            None => Ok(()),
        }
    }

    fn name(&self, id: tokio::task::Id) -> &'static str {
        self.names.get(&id).copied().unwrap_or("unnamed")
    }
}

fn report(task: &str, result: &anyhow::Result<()>) {
    match result {
        Ok(()) => tracing::info!(task, "stopped"),
        Err(err) => tracing::error!(task, error = format!("{err:#}"), "failed"),
    }
}

/// Binds the HTTP listener, naming the setting when the address is taken.
pub fn bind(settings: &Settings) -> anyhow::Result<TcpListener> {
    let listener = TcpListener::bind(settings.http_addr)
        .with_context(|| format!("FLEET_HTTP_ADDR: cannot listen on {}", settings.http_addr))?;
    listener.set_nonblocking(true)?;
    Ok(listener)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::time::Duration;

    /// A role that runs until told to stop, and records that it was told.
    async fn steady(
        mut stop: watch::Receiver<bool>,
        stopped: Arc<AtomicBool>,
    ) -> anyhow::Result<()> {
        let _ = stop.wait_for(|s| *s).await;
        stopped.store(true, Ordering::SeqCst);
        Ok(())
    }

    #[tokio::test]
    async fn a_role_that_fails_stops_the_others_with_its_error() {
        let (_outside, shutdown) = watch::channel(false);
        let stopped = Arc::new(AtomicBool::new(false));
        let mut roles = Roles::new();
        roles.spawn("ingest", steady(roles.stop_signal(), stopped.clone()));
        roles.spawn("web", async { anyhow::bail!("address in use") });
        let err = tokio::time::timeout(Duration::from_secs(10), roles.run(shutdown))
            .await
            .expect("run returns once the failed role's siblings stopped")
            .unwrap_err();
        let text = format!("{err:#}");
        assert!(
            text.contains("web") && text.contains("address in use"),
            "{text}"
        );
        assert!(stopped.load(Ordering::SeqCst), "ingest was told to stop");
    }

    #[tokio::test]
    async fn a_role_that_ends_unasked_is_a_failure() {
        let (_outside, shutdown) = watch::channel(false);
        let stopped = Arc::new(AtomicBool::new(false));
        let mut roles = Roles::new();
        roles.spawn("web", steady(roles.stop_signal(), stopped.clone()));
        roles.spawn("maintenance", async { Ok(()) });
        let err = roles.run(shutdown).await.unwrap_err();
        assert!(format!("{err:#}").contains("maintenance"), "{err:#}");
        assert!(stopped.load(Ordering::SeqCst));
    }

    #[tokio::test]
    async fn a_panicking_role_is_named() {
        let (_outside, shutdown) = watch::channel(false);
        let mut roles = Roles::new();
        roles.spawn("ingest", async { panic!("boom") });
        let err = roles.run(shutdown).await.unwrap_err();
        assert!(format!("{err:#}").contains("ingest"), "{err:#}");
    }

    #[tokio::test]
    async fn shutdown_stops_every_role_cleanly() {
        let (outside, shutdown) = watch::channel(false);
        let flags: Vec<_> = (0..3).map(|_| Arc::new(AtomicBool::new(false))).collect();
        let mut roles = Roles::new();
        for (name, flag) in ["ingest", "web", "maintenance"].into_iter().zip(&flags) {
            roles.spawn(name, steady(roles.stop_signal(), flag.clone()));
        }
        let running = tokio::spawn(roles.run(shutdown));
        outside.send_replace(true);
        running.await.unwrap().unwrap();
        assert!(flags.iter().all(|f| f.load(Ordering::SeqCst)));
    }

    #[tokio::test]
    async fn a_dropped_outside_signal_does_not_stop_the_roles() {
        let (outside, shutdown) = watch::channel(false);
        drop(outside);
        let mut roles = Roles::new();
        roles.spawn("web", async {
            tokio::time::sleep(Duration::from_millis(10)).await;
            anyhow::bail!("late failure")
        });
        let err = roles.run(shutdown).await.unwrap_err();
        assert!(format!("{err:#}").contains("late failure"));
    }
}
