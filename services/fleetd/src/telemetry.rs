//! Logging, and traces over OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set.
//!
//! Logs are what they always were: `tracing-subscriber`'s fmt layer on stderr,
//! filtered by `RUST_LOG` (default `info`, with sqlx, lapin and actix quieter).
//!
//! Traces are opt-in. With `OTEL_EXPORTER_OTLP_ENDPOINT` (or the traces-only
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`) set, a `tracing-opentelemetry` layer exports
//! the service's spans as OTLP HTTP/protobuf to `<endpoint>/v1/traces`, as
//! `service.name` `fleetd`. Why these choices:
//!
//! - HTTP/protobuf over `reqwest`'s async client rather than gRPC: fewer crates to
//!   build (no tonic), and never the blocking client, which must not run inside
//!   tokio. Without a TLS feature, so the endpoint is plain `http://` — a collector
//!   on the host or beside it; an `https://` endpoint is refused at start rather than
//!   failing every export later. (A TLS stack for it would be a second one beside
//!   lapin's rustls/ring; add it when a remote collector is needed.)
//! - The batch span processor runs on the tokio runtime (the SDK's default processor
//!   runs its own thread and blocks on the export, which the async client cannot do
//!   outside tokio). So [`Telemetry::install`] must be called inside the runtime and
//!   [`Telemetry::shutdown`] outside any of its tasks, before the runtime stops: it
//!   flushes what is buffered.
//! - The exporter's layer has its own filter: the spans of this workspace's crates
//!   down to DEBUG (the ingest spans are DEBUG, see `fleet_ingest::trace`, so they
//!   cost nothing when nobody exports them), and WARN and worse events, which become
//!   span events. `RUST_LOG` keeps governing the log alone.
//! - The rest of the standard variables work as the SDK reads them:
//!   `OTEL_TRACES_SAMPLER` / `OTEL_TRACES_SAMPLER_ARG` (e.g. `traceidratio` to keep a
//!   share of a busy fleet's traces), `OTEL_EXPORTER_OTLP_TIMEOUT`,
//!   `OTEL_BSP_MAX_QUEUE_SIZE` and friends.
//!
//! Without the variables only the fmt layer is installed: nothing changes.

use anyhow::Context;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::trace::span_processor_with_async_runtime::BatchSpanProcessor;
use tracing::{Level, Metadata};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// The service name every span is exported under.
pub const SERVICE_NAME: &str = "fleetd";

/// The log filter when `RUST_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "info,sqlx=warn,lapin=warn,actix_server=warn";

/// The crates whose spans are exported.
const TRACED_CRATES: [&str; 5] = [
    "fleetd",
    "fleet_ingest",
    "fleet_store",
    "fleet_web",
    "fleet_protocol",
];

/// Where spans go: the OTLP traces URL, from the standard variables. `None` when
/// neither is set (or both are empty).
pub fn traces_url_from_env(lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
    let set = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
    if let Some(url) = set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
        // The signal-specific variable is the full URL, as the spec says.
        return Some(url.trim().to_owned());
    }
    let base = set("OTEL_EXPORTER_OTLP_ENDPOINT")?;
    Some(format!("{}/v1/traces", base.trim().trim_end_matches('/')))
}

/// The installed subscriber; hold it for the life of the process and call
/// [`Telemetry::shutdown`] at the end.
#[must_use = "dropping it does not flush the spans; call shutdown"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Installs the global `tracing` subscriber: the log, plus the OTLP exporter
    /// when `traces_url` is given. Must run inside a tokio runtime when exporting.
    pub fn install(traces_url: Option<&str>) -> anyhow::Result<Self> {
        let log = tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(
                EnvFilter::try_from_default_env().unwrap_or_else(|_| DEFAULT_LOG_FILTER.into()),
            );
        let provider = traces_url.map(tracer_provider).transpose()?;
        let traces = provider.as_ref().map(|provider| {
            tracing_opentelemetry::layer()
                .with_tracer(provider.tracer(SERVICE_NAME))
                .with_filter(filter_fn(exported))
        });
        tracing_subscriber::registry()
            .with(log)
            .with(traces)
            .try_init()
            .context("installing the tracing subscriber")?;
        if let Some(url) = traces_url {
            tracing::info!(url, "exporting traces over OTLP");
        }
        Ok(Self { provider })
    }

    /// Whether spans are exported.
    pub fn is_exporting(&self) -> bool {
        self.provider.is_some()
    }

    /// Exports what is still buffered and stops the exporter. Blocks: call it
    /// outside the runtime's tasks, while the runtime still runs.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(err) = provider.shutdown()
        {
            eprintln!("fleetd: flushing the traces failed: {err}");
        }
    }
}

/// What the exporter's layer sees (see the module doc).
fn exported(meta: &Metadata<'_>) -> bool {
    if meta.is_span() {
        TRACED_CRATES
            .iter()
            .any(|name| meta.target().starts_with(name))
            && *meta.level() <= Level::DEBUG
    } else {
        *meta.level() <= Level::WARN
    }
}

fn tracer_provider(url: &str) -> anyhow::Result<SdkTracerProvider> {
    anyhow::ensure!(
        url.starts_with("http://"),
        "OTEL_EXPORTER_OTLP_ENDPOINT: {url:?} is not an http:// URL (fleetd exports \
         OTLP over plain HTTP to a collector nearby; https is not built in)"
    );
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .build()
        .context("building the OTLP span exporter")?;
    let processor =
        BatchSpanProcessor::builder(exporter, opentelemetry_sdk::runtime::Tokio).build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(processor)
        .with_resource(Resource::builder().with_service_name(SERVICE_NAME).build())
        .build())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn no_endpoint_no_traces() {
        assert_eq!(traces_url_from_env(env(&[])), None);
        assert_eq!(
            traces_url_from_env(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", " ")])),
            None
        );
    }

    #[test]
    fn the_base_endpoint_gets_the_traces_path() {
        for base in ["http://127.0.0.1:4318", "http://127.0.0.1:4318/"] {
            assert_eq!(
                traces_url_from_env(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", base)])).as_deref(),
                Some("http://127.0.0.1:4318/v1/traces")
            );
        }
    }

    #[test]
    fn the_traces_endpoint_is_used_as_is() {
        let vars = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:4318/custom"),
        ];
        assert_eq!(
            traces_url_from_env(env(&vars)).as_deref(),
            Some("http://b:4318/custom")
        );
    }

    #[test]
    fn an_https_endpoint_is_refused_at_start() {
        let err = tracer_provider("https://collector:4318/v1/traces").unwrap_err();
        assert!(format!("{err:#}").contains("http://"), "{err:#}");
    }
}
