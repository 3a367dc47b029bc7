//! Traces end to end: the real agent publishes one report with a known `traceparent`
//! through the real broker into the real service (in-process, SQLite), which exports
//! its spans over OTLP HTTP/protobuf to a tiny receiver on loopback. The spans must
//! hang off the agent's publish: `ingest.report` is its child, `store.write` a child
//! of that, and the batch's `store.write_batch` links to the report's span.
//!
//! Its own test binary: it installs the process-wide `tracing` subscriber.
//! Needs RabbitMQ on 127.0.0.1:5672 (guest/guest), like the end-to-end tests.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use fleet_agent::{AmqpTarget, Publisher};
use fleet_e2e::reports::{in_state, terminal_id};
use fleet_e2e::{DbKind, TestApp};
use fleet_protocol::{CampaignState, TenantSlug, TraceParent};
use fleetd::telemetry::Telemetry;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as AnyValue;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// What the receiver got: every span, with the `service.name` it came under.
#[derive(Default)]
struct Received {
    spans: Vec<(String, Span)>,
}

type Shared = Arc<Mutex<Received>>;

/// A minimal OTLP/HTTP receiver: answers every `POST` with 200 and an empty
/// (valid) `ExportTraceServiceResponse`, keeping connections alive as reqwest does.
async fn start_receiver() -> anyhow::Result<(String, Shared)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/v1/traces", listener.local_addr()?);
    let received = Shared::default();
    let shared = received.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let shared = shared.clone();
            tokio::spawn(async move {
                if let Err(err) = serve_connection(stream, shared).await {
                    eprintln!("otlp receiver: {err:#}");
                }
            });
        }
    });
    Ok((url, received))
}

async fn serve_connection(stream: tokio::net::TcpStream, shared: Shared) -> anyhow::Result<()> {
    let mut stream = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if stream.read_line(&mut request_line).await? == 0 {
            return Ok(());
        }
        let mut length = None;
        loop {
            let mut line = String::new();
            anyhow::ensure!(stream.read_line(&mut line).await? > 0, "headers cut off");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                anyhow::ensure!(
                    !name.eq_ignore_ascii_case("content-encoding"),
                    "compressed bodies are not expected"
                );
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.trim().parse::<usize>()?);
                }
            }
        }
        let length = length.context("no content-length")?;
        let mut body = vec![0; length];
        stream.read_exact(&mut body).await?;
        anyhow::ensure!(
            request_line.starts_with("POST /v1/traces "),
            "unexpected request {request_line:?}"
        );
        let request = ExportTraceServiceRequest::decode(body.as_slice())?;
        {
            let mut received = shared.lock().expect("receiver lock");
            for resource_spans in request.resource_spans {
                let service = resource_spans
                    .resource
                    .iter()
                    .flat_map(|r| &r.attributes)
                    .find(|kv| kv.key == "service.name")
                    .and_then(|kv| kv.value.as_ref()?.value.as_ref())
                    .map(|v| match v {
                        AnyValue::StringValue(s) => s.clone(),
                        other => format!("{other:?}"),
                    })
                    .unwrap_or_default();
                for scope in resource_spans.scope_spans {
                    for span in scope.spans {
                        received.spans.push((service.clone(), span));
                    }
                }
            }
        }
        stream
            .get_mut()
            .write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n",
            )
            .await?;
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Waits (bounded) until `found` finds what it looks for among the received spans.
async fn wait_for<T>(
    received: &Shared,
    what: &str,
    found: impl Fn(&[(String, Span)]) -> Option<T>,
) -> anyhow::Result<T> {
    // The batch processor exports every 5 s by default; allow for a slow machine.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(t) = found(&received.lock().expect("receiver lock").spans) {
            return Ok(t);
        }
        if Instant::now() > deadline {
            let names: Vec<String> = received
                .lock()
                .expect("receiver lock")
                .spans
                .iter()
                .map(|(_, s)| format!("{} {}<-{}", s.name, hex(&s.span_id), hex(&s.parent_span_id)))
                .collect();
            anyhow::bail!("no {what} among the exported spans: {names:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reports_spans_hang_off_the_agents_publish() -> anyhow::Result<()> {
    let (url, received) = start_receiver().await?;
    let telemetry = Telemetry::install(Some(&url))?;
    assert!(telemetry.is_exporting());

    let app = TestApp::spawn(DbKind::Sqlite).await?;

    // The agent's publish, with a context the test knows.
    let trace = TraceParent::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")?;
    let target = AmqpTarget::parse(&app.vhost().url()).map_err(anyhow::Error::msg)?;
    let publisher = Publisher::connect(&target).await?;
    let terminal = terminal_id(1);
    let report = in_state(&terminal, 1, "2712345678", CampaignState::Updated);
    publisher
        .publish_body_traced(
            &TenantSlug::parse("demo")?,
            &format!("{terminal}/1"),
            &serde_json::to_vec(&report)?,
            0,
            trace,
        )
        .await?;
    publisher.close().await;
    app.wait_rows("reports", 1).await?;

    let trace_hex = format!("{:032x}", trace.trace_id());
    let agent_span = format!("{:016x}", trace.span_id());

    // ingest.report: in the agent's trace, its parent the agent's publish.
    let (service, report_span) = wait_for(&received, "ingest.report", |spans| {
        spans
            .iter()
            .find(|(_, s)| s.name == "ingest.report" && hex(&s.trace_id) == trace_hex)
            .cloned()
    })
    .await?;
    assert_eq!(service, "fleetd");
    assert_eq!(hex(&report_span.parent_span_id), agent_span);

    // store.write: the report's share of the batch write, its child, same trace.
    let report_id = report_span.span_id.clone();
    let write = wait_for(&received, "store.write under ingest.report", |spans| {
        spans
            .iter()
            .find(|(_, s)| s.name == "store.write" && s.parent_span_id == report_id)
            .map(|(_, s)| s.clone())
    })
    .await?;
    assert_eq!(hex(&write.trace_id), trace_hex);

    // store.write_batch: the batch's write, linked to the report's span, a child of
    // its ingest.batch.
    let batch_write = wait_for(
        &received,
        "store.write_batch linked to the report",
        |spans| {
            spans
                .iter()
                .find(|(_, s)| {
                    s.name == "store.write_batch"
                        && s.links
                            .iter()
                            .any(|l| l.span_id == report_id && hex(&l.trace_id) == trace_hex)
                })
                .map(|(_, s)| s.clone())
        },
    )
    .await?;
    let batch = wait_for(&received, "the ingest.batch of that write", |spans| {
        spans
            .iter()
            .find(|(_, s)| s.name == "ingest.batch" && s.span_id == batch_write.parent_span_id)
            .map(|(_, s)| s.clone())
    })
    .await?;
    assert_eq!(batch.trace_id, batch_write.trace_id);
    assert!(batch.parent_span_id.is_empty(), "ingest.batch is a root");

    app.shutdown().await?;
    // Blocking: flushes and stops the exporter off the runtime's workers.
    tokio::task::spawn_blocking(move || telemetry.shutdown()).await?;
    Ok(())
}
