//! The soak test: mixed well-behaved and hostile traffic against one host, checking that
//! no well-behaved request is lost or misrouted and that resident memory stays flat.
//!
//! It runs for 20 seconds with the other tests (which check only for a gross leak, as such
//! a short run is mostly warm-up); the 10-minute soak, which requires flat memory, is
//!
//!     SOAK_SECONDS=600 cargo test -p tessera --test soak -- --nocapture
//!
//! and prints the figures docs/security.md reports.

mod support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "soak"
[[trigger.http]]
route = "/good/..."
component = "good"
[component.good]
source = "{http_guest}"
[[trigger.http]]
route = "/kv/..."
component = "kv"
[component.kv]
source = "{spin_guest}"
key_value_stores = ["default"]
[[trigger.http]]
route = "/bad/..."
component = "bad"
[component.bad]
source = "{http_guest}"
"#;

const LIMITS: &str = r#"
request_timeout = "1s"
header_read_timeout = "2s"
max_request_header_size = "16KiB"
[component.bad]
max_instance_memory = "16MiB"
"#;

#[derive(Default)]
struct Tally {
    good: AtomicU64,
    hostile: AtomicU64,
}

fn soak_duration() -> Duration {
    let secs = std::env::var("SOAK_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(20);
    Duration::from_secs(secs)
}

/// One well-behaved request of several kinds, each checked for the answer its route gives.
fn good_request(server_url: &str, client: usize, n: u64) -> Result<(), String> {
    let check = |what: &str, r: Response, status: u16, body: &str| {
        if r.status == status && r.body == body { Ok(()) } else { Err(format!("{what}: expected {status} {body:?}, got {} {:?}", r.status, r.body)) }
    };
    match n % 4 {
        0 => check("hello", request("GET", &format!("{server_url}/good/hello"), &[], None), 200, "Hello from Tessera\n"),
        1 => {
            let body = format!("client {client} request {n} {}", "b".repeat((n % 5000) as usize));
            check("echo", request("POST", &format!("{server_url}/good/echo"), &[], Some(body.as_bytes())), 200, &body)
        }
        2 => {
            let path = format!("/good/c{client}/n{n}");
            check("path", request("GET", &format!("{server_url}{path}?q={n}"), &[], None), 200, &format!("path: {path}\n"))
        }
        _ => {
            let key = format!("c{client}-{}", n % 50);
            let value = format!("{key}={n}");
            check("kv put", request("PUT", &format!("{server_url}/kv/default/{key}"), &[], Some(value.as_bytes())), 200, "stored")?;
            check("kv get", request("GET", &format!("{server_url}/kv/default/{key}"), &[], None), 200, &value)
        }
    }
}

/// One hostile request; answers whether it was contained with the expected status.
fn hostile_request(server: &Server, n: u64) -> Result<(), String> {
    let expect = |what: &str, got: u16, want: u16| if got == want { Ok(()) } else { Err(format!("{what}: expected {want}, got {got}")) };
    match n % 6 {
        0 => expect("spin", server.get("/bad/spin").status, 504),
        1 => expect("memory bomb", server.get("/bad/memory-bomb").status, 500),
        2 => expect("trap", server.get("/bad/trap").status, 500),
        3 => expect("big header", request("GET", &server.url("/bad/hello"), &[("x-big", &"h".repeat(32 << 10))], None).status, 431),
        4 => {
            let mut s = TcpStream::connect(server.addr).map_err(|e| e.to_string())?;
            s.write_all(b"G@T / HTTP/1.1\r\n\r\n").map_err(|e| e.to_string())?;
            let mut buf = [0u8; 64];
            let n = s.read(&mut buf).map_err(|e| e.to_string())?;
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.starts_with("HTTP/1.1 400") { Ok(()) } else { Err(format!("garbage: {text}")) }
        }
        _ => {
            // Slowloris: a header byte every 500 ms until the host hangs up.
            let mut s = TcpStream::connect(server.addr).map_err(|e| e.to_string())?;
            let start = Instant::now();
            for b in b"GET /good/hello HTTP/1.1\r\nX-Slow: ".iter().chain(std::iter::repeat(&b'a')) {
                if s.write_all(&[*b]).is_err() {
                    break;
                }
                if start.elapsed() > Duration::from_secs(10) {
                    return Err("a slowloris connection stayed open past 10 s".into());
                }
                std::thread::sleep(Duration::from_millis(500));
            }
            Ok(())
        }
    }
}

#[test]
fn mixed_traffic_loses_nothing_and_memory_stays_flat() {
    let duration = soak_duration();
    let app = App::new(APP);
    let server = Arc::new(app.start_with_runtime_config(LIMITS));
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    let failures = Arc::new(Mutex::new(Vec::<String>::new()));

    let mut clients = Vec::new();
    for client in 0..4 {
        let (url, stop, tally, failures) = (server.url(""), stop.clone(), tally.clone(), failures.clone());
        clients.push(std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                match good_request(&url, client, n) {
                    Ok(()) => tally.good.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        failures.lock().unwrap().push(e);
                        0
                    }
                };
                n += 1;
            }
        }));
    }
    for attacker in 0..2u64 {
        let (server, stop, tally, failures) = (server.clone(), stop.clone(), tally.clone(), failures.clone());
        clients.push(std::thread::spawn(move || {
            let mut n = attacker * 3;
            while !stop.load(Ordering::Relaxed) {
                match hostile_request(&server, n) {
                    Ok(()) => tally.hostile.fetch_add(1, Ordering::Relaxed),
                    Err(e) => {
                        failures.lock().unwrap().push(format!("hostile: {e}"));
                        0
                    }
                };
                n += 1;
            }
        }));
    }

    // Resident memory, sampled through the run.
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < duration {
        std::thread::sleep(Duration::from_secs(1));
        samples.push(server.rss_kib());
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let failures = failures.lock().unwrap();
    let (good, hostile) = (tally.good.load(Ordering::Relaxed), tally.hostile.load(Ordering::Relaxed));
    // Warm-up (pool slots, caches) is the first fifth; then compare the first and last quarters.
    let steady = &samples[samples.len() / 5..];
    let quarter = (steady.len() / 4).max(1);
    let early = *steady[..quarter].iter().max().unwrap();
    let late = *steady[steady.len() - quarter..].iter().max().unwrap();
    println!(
        "soak {:?}: {good} well-behaved requests, all answered right; {hostile} hostile requests, all contained; {} failures; resident memory {} MiB early, {} MiB late (max {} MiB)",
        duration,
        failures.len(),
        early / 1024,
        late / 1024,
        samples.iter().max().unwrap() / 1024
    );
    let series: Vec<String> = samples.iter().step_by((samples.len() / 10).max(1)).map(|k| (k / 1024).to_string()).collect();
    println!("resident memory through the run, MiB: {}", series.join(" "));
    assert!(failures.is_empty(), "{} requests went wrong, first: {:?}", failures.len(), &failures[..failures.len().min(5)]);
    assert!(good > 100 && hostile > 6, "too little traffic: {good} good, {hostile} hostile");
    if duration >= Duration::from_secs(120) {
        assert!(late <= early + early / 10 + 16 * 1024, "resident memory grew from {early} KiB to {late} KiB");
    } else {
        // A short run is mostly warm-up (pool slots are first touched as requests land on
        // them); it catches only a gross leak. Flatness is the long run's verdict.
        assert!(late <= early * 2, "resident memory more than doubled, from {early} KiB to {late} KiB");
    }
}
