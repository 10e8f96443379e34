//! Log output with the access log batched for throughput: it writes a line per request,
//! and a write(2) per line cost the host about a tenth of its requests per second. Its
//! lines collect in memory and a background thread writes them to stderr every 20 ms;
//! every other event (and everything once 1 MiB is pending) is written at once, after
//! the pending lines, so the order holds.

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

const FLUSH_EVERY: Duration = Duration::from_millis(20);
const MAX_PENDING: usize = 1 << 20;
/// The `tracing` target of access-log lines (see tessera-trigger-http's body.rs).
const ACCESS_LOG_TARGET: &str = "tessera::access";

/// Where tracing writes; clones share one buffer.
#[derive(Clone)]
pub struct BatchedStderr {
    pending: Arc<Mutex<Vec<u8>>>,
}

impl BatchedStderr {
    /// Starts the thread that writes pending lines out.
    pub fn start() -> Self {
        let this = Self { pending: Arc::default() };
        let flusher = this.clone();
        let _ = std::thread::Builder::new().name("tessera-log".into()).spawn(move || {
            loop {
                std::thread::sleep(FLUSH_EVERY);
                flusher.flush();
            }
        });
        this
    }

    /// Writes every pending line now (call before the process exits).
    pub fn flush(&self) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        write_out(&mut pending);
    }
}

fn write_out(pending: &mut Vec<u8>) {
    if !pending.is_empty() {
        let _ = std::io::stderr().lock().write_all(pending);
        pending.clear();
    }
}

/// One event's writer.
pub struct EventWriter<'a> {
    shared: &'a BatchedStderr,
    immediate: bool,
}

impl Write for EventWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut pending = self.shared.pending.lock().unwrap_or_else(|e| e.into_inner());
        pending.extend_from_slice(bytes);
        if self.immediate || pending.len() >= MAX_PENDING {
            write_out(&mut pending);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for BatchedStderr {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter { shared: self, immediate: true }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        EventWriter { shared: self, immediate: meta.target() != ACCESS_LOG_TARGET }
    }
}
