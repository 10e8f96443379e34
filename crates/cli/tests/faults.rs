//! Faults under load: Redis and PostgreSQL killed and restarted, the embedded store's disk
//! full, the host killed with SIGKILL in the middle of a write burst. Afterwards every
//! acknowledged write is there, nothing is half-written, and the host recovered by itself.
//! Run with `--nocapture` for the figures docs/security.md reports.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::*;

const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "faults"
[[trigger.http]]
route = "/v3/..."
component = "spin3"
[[trigger.http]]
route = "/..."
component = "spin"
[component.spin]
source = "{spin_guest}"
key_value_stores = ["default"]
[component.spin3]
source = "{spin3_guest}"
allowed_outbound_hosts = ["postgres://127.0.0.1:*"]
"#;

/// The value written under `key`: long enough that a torn write would show, and naming its
/// key so a value under the wrong key would too.
fn value_for(key: &str) -> String {
    format!("{key}:{}:end", "v".repeat(2000))
}

/// What a write burst did.
#[derive(Default)]
struct Burst {
    /// Keys whose write was acknowledged (200).
    acknowledged: Vec<String>,
    /// Keys whose write failed or was cut off: each may be absent or whole, never torn.
    unacknowledged: Vec<String>,
}

/// `writers` threads call `write(key)` until `stop` is set; `write` answers whether the
/// host acknowledged the write.
fn write_burst(writers: usize, stop: Arc<AtomicBool>, write: Arc<dyn Fn(&str) -> bool + Send + Sync>) -> std::thread::JoinHandle<Burst> {
    std::thread::spawn(move || {
        let burst = Arc::new(Mutex::new(Burst::default()));
        let threads: Vec<_> = (0..writers)
            .map(|w| {
                let (stop, write, burst) = (stop.clone(), write.clone(), burst.clone());
                std::thread::spawn(move || {
                    let mut i = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let key = format!("w{w}-{i}");
                        let ok = write(&key);
                        let mut b = burst.lock().unwrap();
                        if ok { b.acknowledged.push(key) } else { b.unacknowledged.push(key) }
                        i += 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        Arc::try_unwrap(burst).ok().unwrap().into_inner().unwrap()
    })
}

/// A request that reports a connection cut by a dying host as a failed write.
fn try_request(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> Option<(u16, String)> {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(20)).build();
    let mut req = agent.request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    match req.send_bytes(body) {
        Ok(r) => Some((r.status(), r.into_string().unwrap_or_default())),
        Err(ureq::Error::Status(s, r)) => Some((s, r.into_string().unwrap_or_default())),
        Err(_) => None,
    }
}

/// Checks the burst against what `read(key)` finds now: every acknowledged write whole,
/// every other one absent or whole.
fn check_nothing_lost(name: &str, burst: &Burst, read: impl Fn(&str) -> Option<String>) {
    assert!(burst.acknowledged.len() > 20, "{name}: too few writes were acknowledged to tell anything: {}", burst.acknowledged.len());
    for key in &burst.acknowledged {
        assert_eq!(read(key).as_deref(), Some(value_for(key).as_str()), "{name}: acknowledged write {key} lost or torn");
    }
    let mut present = 0;
    for key in &burst.unacknowledged {
        if let Some(v) = read(key) {
            assert_eq!(v, value_for(key), "{name}: unacknowledged write {key} is torn");
            present += 1;
        }
    }
    println!(
        "{name}: {} writes acknowledged, all present and whole; {} failed during the fault ({present} of them landed whole, none torn)",
        burst.acknowledged.len(),
        burst.unacknowledged.len()
    );
}

fn kv_put(server_url: &str, store: &str, key: &str) -> bool {
    matches!(try_request("PUT", &format!("{server_url}/kv/{store}/{key}"), &[], value_for(key).as_bytes()), Some((200, _)))
}

fn kv_get(server: &Server, store: &str, key: &str) -> Option<String> {
    let r = server.get(&format!("/kv/{store}/{key}"));
    (r.status == 200).then_some(r.body)
}

#[test]
fn redis_killed_and_restarted_under_load_loses_no_acknowledged_write() {
    let Some(mut redis) = Redis::start() else { return };
    let app = App::new(&APP.replace(r#"key_value_stores = ["default"]"#, r#"key_value_stores = ["default", "cache"]"#));
    let server = app.start_with_runtime_config(&format!("[key_value_store.cache]\ntype = \"redis\"\nurl = \"{}\"\n", redis.url()));
    let stop = Arc::new(AtomicBool::new(false));
    let url = server.url("");
    let burst = write_burst(4, stop.clone(), Arc::new(move |key: &str| kv_put(&url, "cache", key)));
    std::thread::sleep(Duration::from_millis(1500));
    redis.stop(); // SIGKILL
    let down = Instant::now();
    // While Redis is down, writes fail fast and the embedded store keeps working.
    let r = request("PUT", &server.url("/kv/cache/during"), &[], Some(b"x"));
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(down.elapsed() < Duration::from_secs(5), "a write to a dead Redis took {:?}", down.elapsed());
    assert_eq!(request("PUT", &server.url("/kv/default/during"), &[], Some(b"x")).status, 200);
    std::thread::sleep(Duration::from_millis(1000));
    redis.restart();
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, Ordering::Relaxed);
    let burst = burst.join().unwrap();
    check_nothing_lost("redis killed under load", &burst, |k| kv_get(&server, "cache", k));
    assert!(!burst.unacknowledged.is_empty(), "the outage was not seen by the writers");
    assert_eq!(request("PUT", &server.url("/kv/cache/after"), &[], Some(b"y")).status, 200, "the host reconnected by itself");
}

fn pg(server_url: &str, addr: &str, mode: &str, statement: &str, params: &str) -> Option<(u16, String)> {
    let headers: Vec<(&str, &str)> = if params.is_empty() { vec![] } else { vec![("x-params", params)] };
    try_request("POST", &format!("{server_url}/v3/pg?addr={addr}&mode={mode}"), &headers, statement.as_bytes())
}

#[test]
fn postgres_killed_and_restarted_under_load_loses_no_acknowledged_write() {
    let Some(mut postgres) = Postgres::start() else { return };
    let app = App::new(APP);
    let server = app.start_with_runtime_config("");
    let (url, addr) = (server.url(""), postgres.url());
    assert_eq!(pg(&url, &addr, "execute", "CREATE TABLE writes (k TEXT PRIMARY KEY, v TEXT NOT NULL)", "").map(|r| r.0), Some(200));
    let stop = Arc::new(AtomicBool::new(false));
    let write = {
        let (url, addr) = (url.clone(), addr.clone());
        Arc::new(move |key: &str| {
            let params = format!("{key}|{}", value_for(key));
            matches!(pg(&url, &addr, "execute", "INSERT INTO writes VALUES ($1, $2)", &params), Some((200, _)))
        })
    };
    let burst = write_burst(4, stop.clone(), write);
    std::thread::sleep(Duration::from_millis(1500));
    postgres.stop(); // immediate: the server processes die without a checkpoint
    std::thread::sleep(Duration::from_millis(1000));
    postgres.restart(); // crash recovery from the WAL
    std::thread::sleep(Duration::from_millis(2500));
    stop.store(true, Ordering::Relaxed);
    let burst = burst.join().unwrap();
    assert!(!burst.unacknowledged.is_empty(), "the outage was not seen by the writers");
    check_nothing_lost("postgres killed under load", &burst, |k| {
        let (status, body) = pg(&url, &addr, "query", "SELECT v FROM writes WHERE k = $1", k)?;
        assert_eq!(status, 200, "{body}");
        body.lines().nth(1).map(str::to_string)
    });
}

/// The embedded store's directory on a 1 MiB tmpfs (needs root, as in CI).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    fn mount() -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(dir.path())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(std::env::var_os("CI").is_none(), "CI runs as root and can mount a tmpfs");
            eprintln!("SKIPPED: cannot mount a tmpfs (needs root)");
            return None;
        }
        Some(Self { dir })
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_refuses_writes_cleanly_and_recovers_without_repair() {
    let Some(disk) = SmallDisk::mount() else { return };
    let app = App::new(APP);
    let rc = format!("state_dir = \"{}\"\n", disk.dir.path().display());
    let server = app.start_with_runtime_config(&rc);
    // Room to free later.
    std::fs::write(disk.dir.path().join("filler"), vec![0u8; 300 << 10]).unwrap();
    let url = server.url("");
    let mut burst = Burst::default();
    let mut first_error = None;
    for i in 0..2000 {
        let key = format!("k{i}");
        match try_request("PUT", &format!("{url}/kv/default/{key}"), &[], value_for(&key).as_bytes()) {
            Some((200, _)) => burst.acknowledged.push(key),
            Some((status, body)) => {
                first_error.get_or_insert((status, body));
                burst.unacknowledged.push(key);
                if burst.unacknowledged.len() >= 20 {
                    break;
                }
            }
            None => panic!("the host dropped a connection on a full disk"),
        }
    }
    let (status, body) = first_error.expect("the 1 MiB disk never filled");
    assert_eq!(status, 500, "{body}");
    assert!(body.to_lowercase().contains("full"), "the error names the cause: {body}");
    assert!(server.log().to_lowercase().contains("full"), "the log names the cause: {}", server.log());
    // Reads go on while the disk is full.
    check_nothing_lost("disk full", &burst, |k| kv_get(&server, "default", k));
    // Space freed: writes succeed again, with no restart and no repair.
    std::fs::remove_file(disk.dir.path().join("filler")).unwrap();
    let r = request("PUT", &server.url("/kv/default/after"), &[], Some(value_for("after").as_bytes()));
    assert_eq!(r.status, 200, "{}", r.body);
    burst.acknowledged.push("after".into());
    // And after a SIGKILL the database opens as it was, intact.
    drop(server);
    let db = disk.dir.path().join("sqlite_key_value.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    drop(conn);
    let again = app.start_with_runtime_config(&rc);
    check_nothing_lost("disk full, then SIGKILL", &burst, |k| kv_get(&again, "default", k));
}

#[test]
fn sigkill_in_a_write_burst_loses_no_acknowledged_write() {
    let app = App::new(APP);
    let server = app.start_with_runtime_config("");
    let stop = Arc::new(AtomicBool::new(false));
    let url = server.url("");
    let burst = write_burst(8, stop.clone(), Arc::new(move |key: &str| kv_put(&url, "default", key)));
    std::thread::sleep(Duration::from_millis(2000));
    drop(server); // SIGKILL, with writes in flight
    stop.store(true, Ordering::Relaxed);
    let burst = burst.join().unwrap();
    let db = app.path().join(".spin/sqlite_key_value.db");
    let conn = rusqlite::Connection::open(&db).unwrap();
    let integrity: String = conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap();
    assert_eq!(integrity, "ok");
    drop(conn);
    let again = app.start_with_runtime_config("");
    check_nothing_lost("SIGKILL in a write burst", &burst, |k| kv_get(&again, "default", k));
}
