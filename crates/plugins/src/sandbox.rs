//! What a plugin may reach: nothing by default. No files, no network, no environment,
//! clocks fixed at one instant; guest output is kept per call, up to the log quota. The
//! embedder grants pieces per plugin ([`Grants`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxBuilder};

/// What a plugin is given beyond computing. Everything is off by default.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Grants {
    /// Environment variables.
    pub environment: BTreeMap<String, String>,
    /// Host directories the plugin may read, each at a guest path: `(host, guest)`.
    pub files: Vec<(PathBuf, String)>,
    /// What the clocks say.
    pub clocks: Clocks,
    /// Outbound HTTP (and Redis, PostgreSQL, ...) destinations, in Spin's
    /// `allowed_outbound_hosts` syntax: `https://api.example.com`, `https://*.example.com:443`.
    pub allowed_outbound_hosts: Vec<String>,
    /// Key-value stores by label (`default` is a SQLite file in the tenant's state
    /// directory), as Spin's `key_value_stores`.
    pub key_value_stores: Vec<String>,
    /// SQLite databases by label, as Spin's `sqlite_databases`.
    pub sqlite_databases: Vec<String>,
    /// Values of `spin:variables` / `wasi:config` keys.
    pub variables: BTreeMap<String, String>,
}

impl Grants {
    /// Whether the plugin keeps state of its own (key-value stores, databases), so it
    /// needs its tenant's state directory.
    pub(crate) fn keeps_state(&self) -> bool {
        !self.key_value_stores.is_empty() || !self.sqlite_databases.is_empty()
    }
}

/// What a plugin's clocks say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Clocks {
    /// Always this instant, and a monotonic clock that never moves: calls are repeatable
    /// and a plugin cannot time its neighbours. The default, at the Unix epoch.
    Fixed(SystemTime),
    /// The host's clocks.
    Real,
}

impl Default for Clocks {
    fn default() -> Self {
        Self::Fixed(SystemTime::UNIX_EPOCH)
    }
}

struct FixedWall(Duration);

impl HostWallClock for FixedWall {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        self.0
    }
}

struct FixedMonotonic;

impl HostMonotonicClock for FixedMonotonic {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

/// A fresh WASI context for one call: the grants, output into `logs`, no stdin, no
/// network (outbound HTTP goes through its own allow-list).
pub(crate) fn wasi_for_call(grants: &Grants, logs: &LogSink) -> anyhow::Result<WasiCtx> {
    let mut builder = WasiCtxBuilder::new();
    builder.allow_tcp(false).allow_udp(false).allow_ip_name_lookup(false);
    builder.stdout(logs.clone()).stderr(logs.clone());
    builder.envs(&grants.environment.iter().collect::<Vec<_>>());
    for (host, guest) in &grants.files {
        builder
            .preopened_dir(host, guest, wasmtime_wasi::FsPerms::ReadOnly)
            .map_err(anyhow::Error::from)
            .map_err(|e| e.context(format!("cannot grant {} to the plugin as {guest}", host.display())))?;
    }
    if let Clocks::Fixed(at) = grants.clocks {
        let since_epoch = at.duration_since(SystemTime::UNIX_EPOCH).unwrap_or_default();
        builder.wall_clock(FixedWall(since_epoch)).monotonic_clock(FixedMonotonic);
    }
    Ok(builder.build())
}

/// What a call's guest printed (stdout and stderr interleaved), up to the log quota.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Logs {
    /// The output kept, as text (invalid UTF-8 replaced).
    pub text: String,
    /// Bytes dropped past the quota.
    pub dropped: u64,
}

/// Guest output of one call, kept up to a limit.
#[derive(Clone)]
pub(crate) struct LogSink(Arc<Mutex<SinkState>>);

struct SinkState {
    kept: Vec<u8>,
    limit: usize,
    dropped: u64,
}

impl LogSink {
    pub(crate) fn new(limit: u64) -> Self {
        Self(Arc::new(Mutex::new(SinkState { kept: Vec::new(), limit: usize::try_from(limit).unwrap_or(usize::MAX), dropped: 0 })))
    }

    fn write(&self, bytes: &[u8]) {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let room = s.limit.saturating_sub(s.kept.len());
        let keep = room.min(bytes.len());
        s.kept.extend_from_slice(&bytes[..keep]);
        s.dropped += (bytes.len() - keep) as u64;
    }

    pub(crate) fn take(&self) -> Logs {
        let mut s = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let kept = std::mem::take(&mut s.kept);
        Logs { text: String::from_utf8_lossy(&kept).into_owned(), dropped: std::mem::take(&mut s.dropped) }
    }
}

impl IsTerminal for LogSink {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for LogSink {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

impl AsyncWrite for LogSink {
    fn poll_write(self: Pin<&mut Self>, _: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        // Output past the quota is accepted and dropped, so a chatty plugin is not failed.
        self.write(buf);
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_past_the_quota_is_dropped_and_counted() {
        let sink = LogSink::new(5);
        sink.write(b"abc");
        sink.write(b"defgh");
        assert_eq!(sink.take(), Logs { text: "abcde".into(), dropped: 3 });
    }
}
