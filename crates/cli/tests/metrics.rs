//! Prometheus metrics, scraped by Debian's real `prometheus` server from a host's admin
//! API (with its bearer token), and from `tessera up --metrics`; the figures are checked
//! against the traffic sent.

mod support;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

const TOKEN: &str = "metrics-test-token-0123456789abcdef";

/// A Prometheus server scraping `target` every 200 ms.
struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str, token: Option<&str>) -> Option<Self> {
        if Command::new("prometheus").arg("--version").output().is_err() {
            if std::env::var_os("CI").is_some() {
                panic!("prometheus is missing: .ci/run must install it (apt-get install prometheus)");
            }
            eprintln!("SKIPPED: prometheus is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let auth = token.map(|t| format!("    authorization:\n      type: Bearer\n      credentials: {t}\n")).unwrap_or_default();
        let config = format!("global:\n  scrape_interval: 200ms\n  scrape_timeout: 150ms\nscrape_configs:\n  - job_name: tessera\n{auth}    static_configs:\n      - targets: [\"{target}\"]\n");
        std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Some(Self { child, port, _dir: dir })
    }

    /// The value of `query` (one series), once Prometheus has it.
    fn value(&self, query: &str) -> Option<f64> {
        let url = format!("http://127.0.0.1:{}/api/v1/query?query={}", self.port, percent(query));
        let r = std::panic::catch_unwind(|| request("GET", &url, &[], None)).ok()?;
        let v: serde_json::Value = serde_json::from_str(&r.body).ok()?;
        v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
    }

    /// Waits until `query` equals `expected` (Prometheus scrapes every 200 ms).
    fn wait_for(&self, query: &str, expected: f64) -> Option<f64> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = None;
        while Instant::now() < deadline {
            last = self.value(query);
            if last == Some(expected) {
                break;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        last
    }

    fn target_health(&self) -> String {
        let r = request("GET", &format!("http://127.0.0.1:{}/api/v1/targets", self.port), &[], None);
        r.body
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn percent(s: &str) -> String {
    s.bytes().map(|b| if b.is_ascii_alphanumeric() || b"_-.".contains(&b) { (b as char).to_string() } else { format!("%{b:02X}") }).collect()
}

fn apps_file(dir: &Path, entries: &str) -> std::path::PathBuf {
    std::fs::write(dir.join("apps.toml"), entries).unwrap();
    dir.join("apps.toml")
}

#[test]
fn prometheus_scrapes_a_hosts_apps_with_the_admin_token_and_the_figures_match_the_traffic() {
    let (a, b) = (App::new(GUEST_APP), App::new(GUEST_APP));
    let kv = App::new("spin_manifest_version = 2\n[application]\nname = \"kv\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"spin\"\n[component.spin]\nsource = \"{spin_guest}\"\nkey_value_stores = [\"default\"]\n");
    let dir = tempfile::tempdir().unwrap();
    let apps = apps_file(
        dir.path(),
        &format!(
            "[[app]]\nname = \"a\"\nsource = \"{}\"\npath_prefix = \"/a\"\n\n[[app]]\nname = \"b\"\nsource = \"{}\"\npath_prefix = \"/b\"\n[app.quota]\nmemory = \"16 MiB\"\n\n[[app]]\nname = \"kv\"\nsource = \"{}\"\npath_prefix = \"/kv\"\n",
            a.path().display(),
            b.path().display(),
            kv.path().display()
        ),
    );
    let mut cmd = tessera();
    cmd.env("TESSERA_ADMIN_TOKEN", TOKEN);
    let server = Server::host_with(cmd, &apps, &["--state-dir", dir.path().join("state").to_str().unwrap(), "--admin", "127.0.0.1:0"]).unwrap();
    let admin = server.wait_for_stdout("Admin API on http://");
    let admin = admin.lines().find_map(|l| l.strip_prefix("Admin API on http://")).unwrap().trim().to_string();
    // Without the token the endpoint says nothing.
    assert_eq!(request("GET", &format!("http://{admin}/metrics"), &[], None).status, 401);
    let Some(prometheus) = Prometheus::start(&admin, Some(TOKEN)) else { return };

    for _ in 0..7 {
        assert_eq!(server.get("/a/hello").status, 200);
    }
    for _ in 0..2 {
        assert_eq!(server.get("/b/sleep?ms=20").status, 200);
    }
    assert_eq!(server.get("/b/memory-bomb").status, 500);
    // Host calls by capability: two outbound requests (refused: the app may call no host,
    // yet asked) and key-value calls.
    for _ in 0..2 {
        assert_eq!(server.get("/a/outbound?url=http://127.0.0.1:9/").status, 502);
    }
    assert_eq!(request("PUT", &server.url("/kv/kv/default/greeting"), &[], Some(b"hi")).status, 200);
    assert_eq!(server.get("/kv/kv/default/greeting").body, "hi");

    let got = prometheus.wait_for(r#"tessera_invocations_total{app="a",component="guest",trigger="http",outcome="200"}"#, 7.0);
    assert_eq!(got, Some(7.0), "targets: {}", prometheus.target_health());
    assert_eq!(prometheus.wait_for(r#"tessera_invocations_total{app="b",outcome="200"}"#, 2.0), Some(2.0));
    assert_eq!(prometheus.wait_for(r#"tessera_invocations_total{app="b",outcome="500"}"#, 1.0), Some(1.0));
    assert_eq!(prometheus.wait_for(r#"tessera_limits_hit_total{app="b",component="guest",limit="max_instance_memory"}"#, 1.0), Some(1.0));
    // Latency: both slow requests took 20 ms at least, so at most one sample of b is under 20 ms (the bomb).
    assert_eq!(prometheus.wait_for(r#"tessera_invocation_duration_seconds_count{app="b",outcome="200"}"#, 2.0), Some(2.0));
    let sum = prometheus.value(r#"tessera_invocation_duration_seconds_sum{app="b",outcome="200"}"#).unwrap();
    assert!(sum >= 0.04, "two 20 ms requests took {sum} s in all");
    // Guest CPU and memory were counted; the bomb's peak is at most its 16 MiB quota.
    assert!(prometheus.value(r#"tessera_guest_cpu_seconds_total{app="a"}"#).unwrap() > 0.0);
    let peak = prometheus.value(r#"histogram_quantile(1, tessera_instance_peak_memory_bytes_bucket{app="b"})"#).unwrap();
    assert!(peak > 0.0 && peak <= 16.0 * 1024.0 * 1024.0 * 1.01, "peak {peak}");
    assert_eq!(prometheus.value(r#"tessera_instance_slots_in_use{app="a"}"#), Some(0.0));
    assert_eq!(prometheus.wait_for(r#"tessera_capability_calls_total{app="a",component="guest",capability="outbound_http"}"#, 2.0), Some(2.0));
    let kv_calls = prometheus.value(r#"tessera_capability_calls_total{app="kv",component="spin",capability="key_value"}"#).unwrap_or(0.0);
    assert!(kv_calls >= 4.0, "two opens, a set and a get are {kv_calls} key-value calls");
    assert_eq!(prometheus.value(r#"count(tessera_capability_calls_total{app="b"})"#), None, "b called no capability");
}

#[test]
fn tessera_up_serves_metrics_when_asked() {
    let app = App::new(GUEST_APP);
    let server = app.start(&["--metrics", "127.0.0.1:0"]);
    let out = server.wait_for_stdout("Metrics on http://");
    let url = out.lines().find_map(|l| l.strip_prefix("Metrics on ")).unwrap().trim().to_string();
    for _ in 0..3 {
        assert_eq!(server.get("/hello").status, 200);
    }
    assert_eq!(server.get("/memory-bomb").status, 500);
    let Some(prometheus) = Prometheus::start(url.trim_start_matches("http://").trim_end_matches("/metrics"), None) else { return };
    assert_eq!(prometheus.wait_for(r#"tessera_invocations_total{app="e2e",component="guest",outcome="200"}"#, 3.0), Some(3.0), "{}", prometheus.target_health());
    assert_eq!(prometheus.wait_for(r#"tessera_limits_hit_total{app="e2e",limit="max_instance_memory"}"#, 1.0), Some(1.0));
}
