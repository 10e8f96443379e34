//! Bodies on their way through the host: the response body handed to hyper (holds the
//! instance slot until the body is done, cuts it off at `max_response_body_size`, writes
//! the access-log line when dropped) and the request body that tells a slow client from a
//! slow component.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Instant;
use tokio::sync::OwnedSemaphorePermit;

/// Errors a response body can end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// One access-log line, written when the response is finished (or abandoned).
pub struct AccessLog {
    /// Request id.
    pub id: u64,
    /// Method.
    pub method: http::Method,
    /// Path and query.
    pub path: String,
    /// Status sent.
    pub status: u16,
    /// When the request arrived.
    pub start: Instant,
    /// Component id, or `-` for host answers.
    pub component: Arc<str>,
    /// The app's name, when the host serves many (`tessera host`).
    pub app: Option<Arc<str>>,
    /// Where the request is counted, when metrics are on.
    pub metrics: Option<Arc<tessera_executor::metrics::AppMetrics>>,
    /// Peak instance memory, when an instance ran.
    pub peak_memory: Option<Arc<AtomicU64>>,
    /// The instance's CPU time until the response ended, when an instance ran.
    pub cpu: Option<tessera_executor::SharedCpu>,
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        let elapsed = self.start.elapsed();
        if let Some(metrics) = &self.metrics {
            metrics.invocation(tessera_executor::metrics::InvocationRecord {
                component: &self.component,
                trigger: "http",
                outcome: status_label(self.status),
                duration: elapsed,
                cpu: self.cpu.as_ref().map(|c| c.get()),
                peak_memory: self.peak_memory.as_ref().map(|p| p.load(Ordering::Relaxed)),
            });
        }
        let ms = elapsed.as_secs_f64() * 1000.0;
        let peak = match &self.peak_memory {
            Some(p) => format!("{}KiB", p.load(Ordering::Relaxed) / 1024),
            None => "-".into(),
        };
        let cpu = match &self.cpu {
            Some(c) => format!("{:.2}ms", c.get().as_secs_f64() * 1000.0),
            None => "-".into(),
        };
        let app = match &self.app {
            Some(app) => format!("app={app} "),
            None => String::new(),
        };
        tracing::info!(
            target: "tessera::access",
            "{} {} {} {:.2}ms {app}component={} cpu={} peak_memory={} request_id={}",
            self.method, self.path, self.status, ms, self.component, cpu, peak, self.id
        );
    }
}

/// A status as a metric label, without allocating: the common ones as themselves, the
/// rest by class.
fn status_label(status: u16) -> &'static str {
    match status {
        200 => "200",
        201 => "201",
        204 => "204",
        301 => "301",
        302 => "302",
        304 => "304",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        413 => "413",
        500 => "500",
        502 => "502",
        503 => "503",
        504 => "504",
        other => match other / 100 {
            1 => "1xx",
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
    }
}

/// The body of every response Tessera sends.
pub struct ResponseBody {
    inner: UnsyncBoxBody<Bytes, BoxError>,
    _permit: Option<OwnedSemaphorePermit>,
    log: Option<AccessLog>,
    /// Bytes sent so far, and the most that may be.
    sent: u64,
    max: u64,
    /// Set when the instance writing the body failed (see `RequestData::failed`).
    instance_failed: Option<Arc<AtomicBool>>,
}

impl ResponseBody {
    /// Wraps `inner`, keeping `permit` and `log` alive until the body ends.
    pub fn new(
        inner: UnsyncBoxBody<Bytes, BoxError>,
        permit: Option<OwnedSemaphorePermit>,
        log: Option<AccessLog>,
    ) -> Self {
        Self {
            inner,
            _permit: permit,
            log,
            sent: 0,
            max: u64::MAX,
            instance_failed: None,
        }
    }

    /// Ends the body with an error, not cleanly, if it stops because the instance writing
    /// it failed (Wasmtime ends the body of a dropped instance as if it were finished).
    pub fn failing_with_instance(mut self, failed: Arc<AtomicBool>) -> Self {
        self.instance_failed = Some(failed);
        self
    }

    /// Ends the body with an error (so the client sees it cut off, never complete) once
    /// more than `max` bytes were sent.
    pub fn with_limit(mut self, max: u64) -> Self {
        self.max = max;
        self
    }
}

/// The error a response body ends with past `max_response_body_size`.
#[derive(Debug)]
pub struct ResponseTooLarge(pub u64);

impl std::fmt::Display for ResponseTooLarge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "response body over max_response_body_size ({} bytes)", self.0)
    }
}

impl std::error::Error for ResponseTooLarge {}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.sent > self.max {
            return Poll::Ready(None);
        }
        let frame = std::task::ready!(Pin::new(&mut self.inner).poll_frame(cx));
        if frame.is_none() && self.instance_failed.as_ref().is_some_and(|f| f.load(Ordering::Relaxed)) {
            return Poll::Ready(Some(Err("the component failed while writing the response body".into())));
        }
        if let Some(Ok(data)) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
            self.sent += data.map_or(0, |d| d.len() as u64);
            if self.sent > self.max {
                let max = self.max;
                if let Some(log) = &self.log {
                    tracing::error!(
                        "request {}: component `{}` sent a response body over max_response_body_size ({max} bytes); it was cut off (raise max_response_body_size in the runtime config, globally or under [component.{}])",
                        log.id, log.component, log.component
                    );
                }
                return Poll::Ready(Some(Err(Box::new(ResponseTooLarge(max)))));
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.sent > self.max || self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A request body that records whether the guest is waiting for bytes the client has not
/// sent yet, so a request that times out on a slow upload is told apart from a slow
/// component.
pub struct ClientPaced<B> {
    inner: B,
    waiting: Arc<AtomicBool>,
}

impl<B: Body> ClientPaced<B> {
    /// Wraps `inner`; `waiting` is true while a read of it waits on the client.
    pub fn new(inner: B, waiting: Arc<AtomicBool>) -> Self {
        Self { inner, waiting }
    }
}

impl<B: Body + Unpin> Body for ClientPaced<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let frame = Pin::new(&mut self.inner).poll_frame(cx);
        self.waiting.store(frame.is_pending(), Ordering::Relaxed);
        frame
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
