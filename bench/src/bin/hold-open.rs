//! Opens many connections at once, each sending one request the guest holds for a while,
//! and reports how the server coped: answers, latency and its peak resident memory.
//! Raise the open-file limit first (`bench/run.py` does).

use anyhow::{Context as _, Result};
use clap::Parser;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

#[derive(Parser)]
struct Args {
    /// Server address, host:port.
    #[arg(long)]
    addr: String,
    /// Path and query of the request (e.g. `/sleep?ms=1000`).
    #[arg(long)]
    path: String,
    /// Requests in flight at once, one connection each.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Server process to sample VmRSS of (from /proc) while the requests are in flight.
    #[arg(long)]
    pid: u32,
}

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Requests sent and not yet answered, now and at most.
#[derive(Default)]
struct InFlight {
    now: AtomicU64,
    max: AtomicU64,
}

async fn one(addr: &str, request: &[u8], in_flight: &InFlight) -> Result<Duration> {
    let start = Instant::now();
    let mut stream = TcpStream::connect(addr).await.context("connect")?;
    stream.write_all(request).await.context("write")?;
    let now = in_flight.now.fetch_add(1, Ordering::Relaxed) + 1;
    in_flight.max.fetch_max(now, Ordering::Relaxed);
    let mut response = Vec::new();
    let read = stream.read_to_end(&mut response).await.context("read");
    in_flight.now.fetch_sub(1, Ordering::Relaxed);
    read?;
    if !response.starts_with(b"HTTP/1.1 200") {
        let head = String::from_utf8_lossy(&response[..response.len().min(80)]).into_owned();
        anyhow::bail!("answer was not 200: {head:?}");
    }
    Ok(start.elapsed())
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let idle = rss_kib(args.pid).context("cannot read the server's /proc status")?;
    let request: Arc<[u8]> = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        args.path, args.addr
    )
    .into_bytes()
    .into();
    let peak = Arc::new(AtomicU64::new(idle));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, done, pid) = (peak.clone(), done.clone(), args.pid);
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                if let Some(kib) = rss_kib(pid) {
                    peak.fetch_max(kib, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let in_flight = Arc::new(InFlight::default());
    let start = Instant::now();
    let tasks: Vec<_> = (0..args.connections)
        .map(|_| {
            let (addr, request, in_flight) =
                (args.addr.clone(), request.clone(), in_flight.clone());
            tokio::spawn(async move { one(&addr, &request, &in_flight).await })
        })
        .collect();
    let mut latencies = Vec::new();
    let mut first_error = None;
    for task in tasks {
        match task.await? {
            Ok(d) => latencies.push(d),
            Err(e) => {
                first_error.get_or_insert_with(|| format!("{e:#}"));
            }
        }
    }
    let elapsed = start.elapsed();
    done.store(true, Ordering::Relaxed);
    sampler.await?;
    latencies.sort();
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)))
            .map(|d| d.as_secs_f64() * 1000.0)
            .unwrap_or(0.0)
    };
    let peak = peak.load(Ordering::Relaxed);
    let report = serde_json::json!({
        "connections": args.connections,
        "max_in_flight": in_flight.max.load(Ordering::Relaxed),
        "ok": latencies.len(),
        "failed": args.connections - latencies.len(),
        "elapsed_ms": elapsed.as_millis() as u64,
        "p50_ms": (pct(0.5) * 10.0).round() / 10.0,
        "p99_ms": (pct(0.99) * 10.0).round() / 10.0,
        "idle_rss_kib": idle,
        "peak_rss_kib": peak,
        "first_error": first_error.unwrap_or_default(),
    });
    println!("{report}");
    Ok(())
}
