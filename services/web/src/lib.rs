//! HTTP: health, readiness, metrics, the JSON API and the Japanese-first pages.
//!
//! - [`auth`] turns a JWT into a [`auth::Caller`] with a scope;
//! - [`api`] is the contract's JSON (§5); [`pages`] the HTML dashboards;
//! - [`view`] computes what both say about a terminal, so they cannot disagree;
//! - [`i18n`] holds the Japanese and English texts and JST formatting.

pub mod api;
pub mod auth;
pub mod error;
pub mod findings_api;
pub mod i18n;
pub mod pages;
pub mod view;

use std::sync::Arc;

use actix_web::{App, HttpResponse, HttpServer, get, web};
use fleet_protocol::SharedClock;
use fleet_store::Store;
use prometheus::{Encoder, IntGauge, Registry, TextEncoder};
use tokio::sync::watch;

pub use auth::JwtSecret;

/// Whether the broker is reachable, for `/readyz` (contract §5). The web does not
/// talk to the broker itself: the process that runs it answers (in `fleetd`, from
/// the ingest consumer's connection or a readiness watcher).
pub trait Readiness: Send + Sync {
    /// Was the broker reachable at the last look? Cheap: `/readyz` asks on every probe.
    fn broker_ready(&self) -> bool;
}

/// What every handler shares.
pub struct AppState {
    pub store: Store,
    pub secret: JwtSecret,
    pub registry: Registry,
    pub broker: Arc<dyn Readiness>,
    /// The service's clock (contract §6), for what a page judges against "now".
    /// Token expiry is not judged on it: JWTs expire in real time.
    pub clock: SharedClock,
}

#[get("/healthz")]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain").body("ok\n")
}

/// How long readiness waits for the database's answer before calling it unreachable:
/// a probe or a scrape that hangs on a dead database would say nothing at all.
const PING_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

/// What `/readyz` and the `fleet_ready` gauge both say: is the database answering,
/// and was the broker reachable at the last look?
async fn readiness(state: &AppState) -> (bool, bool) {
    let database = matches!(
        tokio::time::timeout(PING_TIMEOUT, state.store.ping()).await,
        Ok(Ok(_))
    );
    (database, state.broker.broker_ready())
}

/// The `fleet_ready` gauge: 1 when `/readyz` would answer 200, else 0.
///
/// Why a gauge beside `/readyz`: Prometheus scrapes `/metrics`, not `/readyz`, and
/// `up` only says the process answers HTTP. A fleetd that serves pages while its
/// database or broker is gone is up and not ready; this is what an alert sees of it.
/// Computed afresh at every scrape (and every probe), so it is never stale.
#[derive(Clone)]
pub struct ReadyGauge(IntGauge);

impl ReadyGauge {
    /// Registers `fleet_ready` (0 until first computed) in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let gauge = IntGauge::new(
            "fleet_ready",
            "1 when /readyz answers 200 (database and broker reachable), else 0",
        )?;
        registry.register(Box::new(gauge.clone()))?;
        Ok(Self(gauge))
    }
}

#[get("/readyz")]
async fn readyz(state: web::Data<AppState>, gauge: web::Data<ReadyGauge>) -> HttpResponse {
    let (database, broker) = readiness(&state).await;
    gauge.0.set(i64::from(database && broker));
    let body = serde_json::json!({
        "database": if database { "ok" } else { "unreachable" },
        "broker": if broker { "ok" } else { "unreachable" },
    });
    if database && broker {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    }
}

#[get("/metrics")]
async fn metrics(state: web::Data<AppState>, gauge: web::Data<ReadyGauge>) -> HttpResponse {
    let (database, broker) = readiness(&state).await;
    gauge.0.set(i64::from(database && broker));
    let mut buffer = Vec::new();
    match TextEncoder::new().encode(&state.registry.gather(), &mut buffer) {
        Ok(()) => HttpResponse::Ok()
            .content_type("text/plain; version=0.0.4; charset=utf-8")
            .body(buffer),
        Err(err) => {
            tracing::error!(error = %err, "encoding metrics");
            HttpResponse::InternalServerError().finish()
        }
    }
}

/// Registers every route. The app must hold [`AppState`] and [`ReadyGauge`] as data
/// (as [`serve`] does).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(healthz)
        .service(readyz)
        .service(metrics)
        .service(api::clinic)
        .service(api::rollout)
        .service(findings_api::list_findings)
        .service(findings_api::ack)
        .service(findings_api::list_incidents)
        .service(findings_api::list_windows)
        .service(findings_api::add_window)
        .service(findings_api::remove_window)
        .service(findings_api::get_hours)
        .service(findings_api::put_hours)
        .service(findings_api::get_terminal)
        .service(pages::overview)
        .service(pages::clinic)
        .service(pages::login_form)
        .service(pages::login)
        .service(pages::logout)
        .service(pages::stylesheet);
}

/// Serves HTTP on `listener` until `shutdown` turns true, then drains gracefully.
pub async fn serve(
    listener: std::net::TcpListener,
    state: AppState,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let ready = web::Data::new(ReadyGauge::register(&state.registry)?);
    let state = web::Data::new(state);
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(ready.clone())
            .configure(routes)
    })
    .workers(2)
    .disable_signals()
    .listen(listener)?
    .run();
    let handle = server.handle();
    tokio::spawn(async move {
        let _ = shutdown.changed().await;
        handle.stop(true).await;
    });
    server.await?;
    Ok(())
}
