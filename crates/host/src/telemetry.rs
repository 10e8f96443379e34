//! OpenTelemetry traces over OTLP (http/protobuf), switched on by the variables Spin
//! honours: `OTEL_EXPORTER_OTLP_ENDPOINT` (spans go to `<it>/v1/traces`) or
//! `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`, with `OTEL_SERVICE_NAME` (default `tessera`),
//! `OTEL_RESOURCE_ATTRIBUTES`, `OTEL_TRACES_SAMPLER(_ARG)` and `OTEL_BSP_*` read by the SDK;
//! `OTEL_SDK_DISABLED=true` turns them off. Each invocation's span is a server span, host
//! calls (outbound HTTP, key-value, SQLite, PostgreSQL) its children, and W3C trace
//! context is taken from inbound requests and sent on outbound ones.

use anyhow::{Context as _, Result};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::Layer;

/// Traces being exported; flushed by [`Traces::shutdown`].
pub struct Traces {
    provider: SdkTracerProvider,
}

impl Traces {
    /// The exporter the environment asks for, if any.
    pub fn from_env() -> Result<Option<Self>> {
        let set = |name: &str| std::env::var(name).is_ok_and(|v| !v.trim().is_empty());
        if !(set("OTEL_EXPORTER_OTLP_ENDPOINT") || set("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
            || std::env::var("OTEL_SDK_DISABLED").is_ok_and(|v| v.eq_ignore_ascii_case("true"))
            || std::env::var("OTEL_TRACES_EXPORTER").is_ok_and(|v| v == "none")
        {
            return Ok(None);
        }
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .build()
            .context("cannot set up the OTLP trace exporter (check OTEL_EXPORTER_OTLP_ENDPOINT)")?;
        let mut resource = opentelemetry_sdk::Resource::builder();
        if !set("OTEL_SERVICE_NAME") {
            resource = resource.with_service_name("tessera");
        }
        let provider = SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource.build()).build();
        tessera_capabilities::trace_context::enable();
        Ok(Some(Self { provider }))
    }

    /// The layer that turns Tessera's spans into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl Layer<S> + use<S>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let targets = tracing_subscriber::filter::Targets::new()
            .with_target("tessera_executor", tracing::Level::INFO)
            .with_target("tessera_capabilities", tracing::Level::INFO)
            .with_target("tessera_trigger_http", tracing::Level::INFO)
            .with_target("tessera_triggers", tracing::Level::INFO);
        tracing_opentelemetry::layer().with_tracer(self.provider.tracer("tessera")).with_filter(targets)
    }

    /// Sends the spans not sent yet.
    pub fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            eprintln!("warning: traces not all sent: {e}");
        }
    }
}
