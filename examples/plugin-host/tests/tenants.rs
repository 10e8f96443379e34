//! The plugin-host example end to end: the binary started on a free port, tenants'
//! rules in Rust, JavaScript and Python uploaded over HTTP, checkout events run through
//! them, and a hostile tenant's every attack stopped by its quota while the other tenants
//! keep being answered.

use serde_json::{Value, json};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

struct PluginHost {
    child: Child,
    base: String,
}

impl Drop for PluginHost {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start() -> PluginHost {
    let mut child = Command::new(env!("CARGO_BIN_EXE_plugin-host"))
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let base = line.trim().rsplit(' ').next().unwrap().to_string();
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");
    PluginHost { child, base }
}

fn plugins() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("plugins")
}

fn rust_plugin(name: &str) -> PathBuf {
    let path = plugins().join("target/wasm32-wasip2/release").join(name);
    assert!(path.is_file(), "{} is missing: run scripts/build-guests.sh", path.display());
    path
}

/// A JavaScript or Python plugin: built only by `scripts/build-guests.sh --all` (large).
/// Required in CI; elsewhere a missing one is skipped, loudly.
fn large_plugin(rel: &str) -> Option<PathBuf> {
    let path = plugins().join(rel);
    if path.is_file() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!("{} is missing: CI must build it (scripts/build-guests.sh --all)", path.display());
    }
    eprintln!("SKIPPED {}: not built (scripts/build-guests.sh --all builds it)", path.display());
    None
}

impl PluginHost {
    fn request(&self, method: &str, path: &str, body: &[u8]) -> (u16, Value, Option<String>) {
        let result = ureq::request(method, &format!("{}{path}", self.base)).timeout(Duration::from_secs(30)).send_bytes(body);
        let response = match result {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{method} {path}: {e}"),
        };
        let status = response.status();
        let retry_after = response.header("retry-after").map(str::to_string);
        let text = response.into_string().unwrap();
        (status, serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}")), retry_after)
    }

    fn upload(&self, tenant: &str, plugin: &Path) {
        let (status, body, _) = self.request("PUT", &format!("/tenants/{tenant}/plugin"), &std::fs::read(plugin).unwrap());
        assert_eq!(status, 201, "{body}");
        assert!(body["digest"].as_str().unwrap().starts_with("sha256:"), "{body}");
    }

    fn event(&self, tenant: &str, cart: &Value) -> (u16, Value) {
        let (status, body, _) = self.request("POST", &format!("/tenants/{tenant}/events"), cart.to_string().as_bytes());
        (status, body)
    }
}

fn cart(customer: &str, coupon: Option<&str>, items: &[(&str, u32, u64)]) -> Value {
    let items: Vec<Value> = items.iter().map(|(sku, quantity, price)| json!({ "sku": sku, "quantity": quantity, "unit_price_cents": price })).collect();
    json!({ "customer": customer, "coupon": coupon, "items": items, "discount_cents": 0, "notes": [] })
}

#[test]
fn each_tenants_rule_prices_its_own_events() {
    let host = start();
    host.upload("acme-shoes", &rust_plugin("rust_rules.wasm"));
    let (status, body) = host.event("acme-shoes", &cart("ada", Some("WELCOME"), &[("boot", 2, 7500)]));
    assert_eq!(status, 200, "{body}");
    // $150: 10% of the $50 above $100, 5% for gold (the product's host function), $5 coupon.
    assert_eq!(body["cart"]["discount_cents"], 500 + 750 + 500, "{body}");
    assert_eq!(body["cart"]["notes"], json!(["10% off above $100: -$5.00", "gold member 5%: -$7.50", "coupon WELCOME: -$5.00"]));
    let metering = &body["metering"];
    assert!(metering["instructions"].as_u64().unwrap() > 0 && metering["peak_memory_bytes"].as_u64().unwrap() > 0, "{metering}");

    if let Some(js) = large_plugin("js-rules/js-rules.wasm") {
        host.upload("js-books", &js);
        let (status, body) = host.event("js-books", &cart("grace", Some("SAVE5"), &[("novel", 3, 2000)]));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["cart"]["discount_cents"], 500 + 180, "{body}");
        assert_eq!(body["cart"]["notes"][1], "silver member 3%: -180 cents");
    }
    if let Some(python) = large_plugin("python-rules/python-rules.wasm") {
        host.upload("py-garden", &python);
        let (status, body) = host.event("py-garden", &cart("ada", None, &[("rake", 3, 1500), ("seed", 1, 300)]));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["cart"]["discount_cents"], 1500, "{body}");
        assert_eq!(body["cart"]["notes"], json!(["3 for 2 on rake: -1500 cents", "thank you for being a gold member"]));
    }
    // Tenants do not see each other's rules.
    let (status, body) = host.event("acme-shoes", &cart("grace", Some("SAVE5"), &[("boot", 1, 5000)]));
    assert_eq!((status, body["cart"]["discount_cents"].as_u64()), (200, Some(0)), "{body}");
}

/// Sends acme-shoes events until told to stop; counts answers that were not 200.
fn steady_customer(host: &Arc<PluginHost>, stop: &Arc<AtomicBool>) -> std::thread::JoinHandle<(usize, usize)> {
    let (host, stop) = (host.clone(), stop.clone());
    std::thread::spawn(move || {
        let (mut ok, mut failed) = (0, 0);
        while !stop.load(Ordering::Relaxed) {
            match host.event("acme-shoes", &cart("ada", None, &[("boot", 1, 20_000)])) {
                (200, body) if body["cart"]["discount_cents"] == 2000 => ok += 1,
                _ => failed += 1,
            }
        }
        (ok, failed)
    })
}

#[test]
fn a_hostile_tenant_is_stopped_by_each_quota_while_the_others_keep_answering() {
    let host = Arc::new(start());
    host.upload("acme-shoes", &rust_plugin("rust_rules.wasm"));
    host.upload("mallory", &rust_plugin("hostile.wasm"));
    let stop = Arc::new(AtomicBool::new(false));
    let customer = steady_customer(&host, &stop);

    let attack = |coupon: &str| host.event("mallory", &cart("eve", Some(coupon), &[]));
    for (coupon, quota, limit) in [
        ("loop", "fuel", 11_000_000u64),
        ("flood", "fuel", 11_000_000),
        ("bomb", "memory", 64 << 20),
        ("recurse", "stack", 512 << 10),
        ("huge", "result_size", 20_000),
    ] {
        let (status, body) = attack(coupon);
        assert_eq!(status, 422, "{coupon}: {body}");
        assert_eq!((body["error"]["quota"].as_str(), body["error"]["limit"].as_u64()), (Some(quota), Some(limit)), "{coupon}: {body}");
    }
    let (status, body) = attack("trap");
    assert_eq!(status, 422, "{body}");
    assert!(body["error"]["quota"].is_null() && body["error"]["logs"].as_str().unwrap().contains("mallory's rule panics"), "{body}");
    // Output past the 1 KB log quota is dropped, not an error.
    let (status, body) = attack("shout");
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["logs"].as_str().unwrap().len(), 1000);

    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = customer.join().unwrap();
    assert!(ok > 0 && failed == 0, "acme-shoes during the attacks: {ok} answered, {failed} not");
}

#[test]
fn a_tenant_flooding_events_is_refused_at_its_limit_not_piled_up() {
    let host = Arc::new(start());
    host.upload("acme-shoes", &rust_plugin("rust_rules.wasm"));
    host.upload("mallory", &rust_plugin("hostile.wasm"));
    let stop = Arc::new(AtomicBool::new(false));
    let customer = steady_customer(&host, &stop);

    // Two run at once and sixteen wait: of forty events flooding the host with calls (each
    // lasts until its 11M instructions are spent), those past the line are refused at once.
    let barrier = Arc::new(std::sync::Barrier::new(40));
    let refused = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    let senders: Vec<_> = (0..40)
        .map(|_| {
            let (host, refused, stopped, barrier) = (host.clone(), refused.clone(), stopped.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let (status, body, retry_after) = host.request("POST", "/tenants/mallory/events", cart("eve", Some("flood"), &[]).to_string().as_bytes());
                match status {
                    429 => {
                        assert_eq!(body["error"]["quota"], "concurrency", "{body}");
                        assert_eq!(retry_after.as_deref(), Some("1"));
                        refused.fetch_add(1, Ordering::Relaxed);
                    }
                    422 => {
                        assert_eq!(body["error"]["quota"], "fuel", "{body}");
                        stopped.fetch_add(1, Ordering::Relaxed);
                    }
                    other => panic!("{other}: {body}"),
                }
            })
        })
        .collect();
    for s in senders {
        s.join().unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let (ok, failed) = customer.join().unwrap();
    let (refused, stopped) = (refused.load(Ordering::Relaxed), stopped.load(Ordering::Relaxed));
    assert_eq!(refused + stopped, 40);
    assert!(refused > 0 && stopped >= 2, "{refused} refused, {stopped} run");
    assert!(ok > 0 && failed == 0, "acme-shoes during the flood: {ok} answered, {failed} not");
}

#[test]
fn bad_uploads_and_events_are_refused_with_the_reason() {
    let host = start();
    let (status, body, _) = host.request("PUT", "/tenants/acme-shoes/plugin", b"not wasm");
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("not a WebAssembly component"), "{body}");
    let probe = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/guests/target/wasm32-wasip2/release/probe_plugin.wasm");
    let (status, body, _) = host.request("PUT", "/tenants/acme-shoes/plugin", &std::fs::read(probe).unwrap());
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("does not implement acme:discounts/rules"), "{body}");
    let (status, body) = host.event("acme-shoes", &cart("ada", None, &[]));
    assert_eq!(status, 404);
    assert!(body["error"]["message"].as_str().unwrap().contains("has no plugin"), "{body}");

    host.upload("acme-shoes", &rust_plugin("rust_rules.wasm"));
    let (status, body, _) = host.request("POST", "/tenants/acme-shoes/events", b"{\"customer\": 1}");
    assert_eq!(status, 400);
    assert!(body["error"]["message"].as_str().unwrap().contains("not a cart"), "{body}");
    let big = cart("ada", None, &[("x".repeat(130_000).as_str(), 1, 1)]);
    let (status, body) = host.event("acme-shoes", &big);
    assert_eq!(status, 413);
    assert!(body["error"]["message"].as_str().unwrap().contains("128000 bytes"), "{body}");
}
