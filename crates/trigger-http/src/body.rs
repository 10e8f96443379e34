//! The response body handed to hyper: holds the instance slot until the body is done and
//! writes the access-log line when it is dropped.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::combinators::UnsyncBoxBody;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
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
    /// Peak instance memory, when an instance ran.
    pub peak_memory: Option<Arc<AtomicU64>>,
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        let ms = self.start.elapsed().as_secs_f64() * 1000.0;
        let peak = match &self.peak_memory {
            Some(p) => format!("{}KiB", p.load(Ordering::Relaxed) / 1024),
            None => "-".into(),
        };
        tracing::info!(
            target: "tessera::access",
            "{} {} {} {:.2}ms component={} peak_memory={} request_id={}",
            self.method, self.path, self.status, ms, self.component, peak, self.id
        );
    }
}

/// The body of every response Tessera sends.
pub struct ResponseBody {
    inner: UnsyncBoxBody<Bytes, BoxError>,
    _permit: Option<OwnedSemaphorePermit>,
    _log: Option<AccessLog>,
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
            _log: log,
        }
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
