//! Logs and traces. Logs: human-readable on a terminal, JSON lines for machines; the level comes
//! from `LEADGATE_LOG` (an `EnvFilter` directive such as `info` or `leadgate=debug`). Traces: when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, every span (one per RPC) is exported over OTLP/gRPC too
//! (the standard `OTEL_*` variables apply).

use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable, coloured on a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

/// Flushes exported traces when dropped (at the end of `main`).
pub struct Telemetry {
    tracer: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(tracer) = self.tracer.take() {
            let _ = tracer.shutdown();
        }
    }
}

fn otlp() -> Option<SdkTracerProvider> {
    std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
        .ok()
        .filter(|e| !e.is_empty())?;
    match opentelemetry_otlp::SpanExporter::builder().with_tonic().build() {
        Ok(exporter) => Some(
            SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(resource())
                .build(),
        ),
        Err(error) => {
            eprintln!("warning: OTEL_EXPORTER_OTLP_ENDPOINT is set but traces cannot be exported: {error}");
            None
        }
    }
}

/// The resource from the standard variables (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`),
/// named `leadgate` when they do not name the service.
fn resource() -> opentelemetry_sdk::Resource {
    let detected = opentelemetry_sdk::Resource::builder().build();
    let named = detected
        .get(&opentelemetry::Key::new("service.name"))
        .is_some_and(|name| !name.as_str().starts_with("unknown_service"));
    if named {
        detected
    } else {
        opentelemetry_sdk::Resource::builder()
            .with_service_name("leadgate")
            .build()
    }
}

/// Installs the global subscriber. Call once, at start; keep the guard until the end.
pub fn init(format: LogFormat) -> Telemetry {
    let filter = EnvFilter::try_from_env("LEADGATE_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let tracer = otlp();
    let otel = tracer
        .as_ref()
        .map(|p| tracing_opentelemetry::layer().with_tracer(p.tracer("leadgate")));
    let (json, text) = match format {
        LogFormat::Json => (
            Some(
                tracing_subscriber::fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(true)
                    // The current span has the call's fields; its parents add nothing but bytes.
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            ),
            None,
        ),
        LogFormat::Text => (
            None,
            Some(
                tracing_subscriber::fmt::layer()
                    .with_ansi(std::io::stderr().is_terminal())
                    .with_writer(std::io::stderr),
            ),
        ),
    };
    // Already installed (tests start several servers in one process): keep the first.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(json)
        .with(text)
        .with(otel)
        .try_init();
    Telemetry { tracer }
}
