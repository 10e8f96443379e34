//! W3C trace context (`traceparent`, `tracestate`): an inbound request's context becomes
//! the parent of its invocation's span, and outbound requests carry the context of the
//! span that sends them. Off (and free) unless the process exports traces.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use std::sync::atomic::{AtomicBool, Ordering};
use tracing_opentelemetry::OpenTelemetrySpanExt as _;

static ON: AtomicBool = AtomicBool::new(false);

/// Turns propagation on: the process exports traces.
pub fn enable() {
    ON.store(true, Ordering::Relaxed);
}

/// Whether the process exports traces.
pub fn is_on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Makes the context in `headers`, if any, the parent of `span`.
pub fn continue_from(headers: &http::HeaderMap, span: &tracing::Span) {
    if !is_on() || !headers.contains_key("traceparent") {
        return;
    }
    let parent = TraceContextPropagator::new().extract(&Headers(headers));
    let _ = span.set_parent(parent);
}

/// Writes `span`'s context into `headers`.
pub fn inject(span: &tracing::Span, headers: &mut http::HeaderMap) {
    if !is_on() {
        return;
    }
    TraceContextPropagator::new().inject_context(&span.context(), &mut HeadersMut(headers));
}

struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|k| k.as_str()).collect()
    }
}

struct HeadersMut<'a>(&'a mut http::HeaderMap);

impl Injector for HeadersMut<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(name), Ok(value)) = (http::HeaderName::from_bytes(key.as_bytes()), http::HeaderValue::from_str(&value)) {
            self.0.insert(name, value);
        }
    }
}
