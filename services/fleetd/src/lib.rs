//! `fleetd`, the central service: the roles of contract §4 as library functions, so
//! the binary stays thin and the end-to-end tests run the real service in-process.
//!
//! - `serve`: migrations, ingest consumer and web in one process (the embedded default);
//! - `migrate` / `ingest` / `web`: one role each, for replicas run apart;
//! - `token`: signs a JWT with the service's secret.
//!
//! Each role runs until the shutdown signal, and `serve` reports how each task ended.

pub mod settings;

use std::net::TcpListener;

use anyhow::Context;
use fleet_ingest::{BrokerHealth, IngestMetrics};
use fleet_store::Store;
use fleet_web::AppState;
use prometheus::Registry;
use tokio::sync::watch;

pub use settings::Settings;

/// Opens the store, applies migrations and seeds the defaults.
pub async fn migrate(settings: &Settings) -> anyhow::Result<Store> {
    let store = Store::connect(&settings.database).await?;
    store.migrate().await?;
    store.seed_defaults().await?;
    Ok(store)
}

/// Everything in one process until `shutdown`: migrations, ingest and web.
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
    let metrics = IngestMetrics::register(&registry).context("registering ingest metrics")?;
    let health = BrokerHealth::new();
    tokio::spawn(maintain_history(
        store.clone(),
        settings.retention_days,
        shutdown.clone(),
    ));
    let ingest = fleet_ingest::run(
        settings.ingest.clone(),
        store.clone(),
        metrics,
        health.clone(),
        shutdown.clone(),
    );
    let state = AppState {
        store,
        secret,
        registry,
        broker: health,
    };
    let web = fleet_web::serve(listener, state, shutdown.clone());
    let (ingest, web) = tokio::join!(ingest, web);
    report("ingest", &ingest);
    report("web", &web);
    ingest.and(web)
}

/// Hourly upkeep, also at start: history partitions ahead, retention, and campaign
/// causes that changed with time.
pub async fn maintain_history(
    store: Store,
    retention_days: u32,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match store
            .maintain_history(fleet_store::now_jst(), retention_days)
            .await
        {
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
        match store.reassess_time_dependent(fleet_store::now_jst()).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(terminals = n, "re-assessed causes that depended on time"),
            Err(err) => tracing::warn!(
                error = format!("{err:#}"),
                "re-assessing campaign causes failed"
            ),
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(3600)) => {}
            _ = shutdown.changed() => return,
        }
    }
}

/// The ingest consumer alone.
pub async fn ingest(settings: Settings, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let store = Store::connect(&settings.database).await?;
    store.set_state_cache(settings.state_cache);
    let registry = Registry::new_custom(Some("fleetd".to_owned()), None)?;
    let metrics = IngestMetrics::register(&registry)?;
    tokio::spawn(maintain_history(
        store.clone(),
        settings.retention_days,
        shutdown.clone(),
    ));
    fleet_ingest::run(
        settings.ingest.clone(),
        store,
        metrics,
        BrokerHealth::new(),
        shutdown,
    )
    .await
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
    tokio::spawn(fleet_ingest::broker::watch(
        settings.amqp_url.clone(),
        health.clone(),
        shutdown.clone(),
    ));
    fleet_web::serve(
        listener,
        AppState {
            store,
            secret,
            registry,
            broker: health,
        },
        shutdown,
    )
    .await
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
