//! The hostile-guest suite: components that attack the host. Each attack must be stopped
//! by a named limit, the client must get a clear status, the log must name the limit, and
//! a well-behaved route of the same host must keep answering at its normal latency while
//! the attack runs. Run with `--nocapture` to see the latency figures docs/security.md
//! reports.

mod support;

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};
use support::*;

/// The smallest attacks, as component text: the core function named by the route loops,
/// grows memory or a table without end, or recurses without end.
const CORE_ATTACKS: &str = r#"(component
  (import "wasi:http/types@0.2.0" (instance $types
    (export "incoming-request" (type (sub resource)))
    (export "response-outparam" (type (sub resource)))))
  (alias export $types "incoming-request" (type $request))
  (alias export $types "response-outparam" (type $outparam))
  (core module $attack
    (table $t 1 funcref)
    (memory 1)
    (func $recurse (param i32 i32) local.get 0 local.get 1 call $recurse)
    (func (export "loop") (param i32 i32) (loop $again br $again))
    (func (export "memory") (param i32 i32)
      (loop $again (br_if $again (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
      unreachable)
    (func (export "table") (param i32 i32)
      (loop $again (br_if $again (i32.ne (table.grow $t (ref.null func) (i32.const 4096)) (i32.const -1))))
      unreachable)
    (func (export "recurse") (param i32 i32) local.get 0 local.get 1 call $recurse))
  (core instance $i (instantiate $attack))
  (func $handle (param "request" (own $request)) (param "response-out" (own $outparam))
    (canon lift (core func $i "ATTACK")))
  (instance $handler (export "handle" (func $handle)))
  (export "wasi:http/incoming-handler@0.2.0" (instance $handler)))
"#;

const LIMITS: &str = r#"
request_timeout = "2s"
max_instance_memory = "32MiB"
max_response_body_size = "8MiB"
max_outbound_requests = 50
max_resource_handles = 1000
"#;

/// An app with one route per attack, a well-behaved `/ok/...` route beside them, and the
/// limits above.
fn hostile_app(allowed_for_attacks: &str) -> App {
    let mut manifest = String::from(
        r#"
spin_manifest_version = 2
[application]
name = "hostile"
[[trigger.http]]
route = "/ok/..."
component = "ok"
[component.ok]
source = "{http_guest}"
[[trigger.http]]
route = "/attack/..."
component = "attack"
[component.attack]
source = "{hostile_guest}"
"#,
    );
    manifest.push_str(&format!("allowed_outbound_hosts = {allowed_for_attacks}\n"));
    for attack in ["loop", "memory", "table", "recurse"] {
        manifest.push_str(&format!("[[trigger.http]]\nroute = \"/{attack}\"\ncomponent = \"{attack}\"\n[component.{attack}]\nsource = \"{attack}.wat\"\n"));
    }
    let app = App::new(&manifest);
    for attack in ["loop", "memory", "table", "recurse"] {
        app.write(&format!("{attack}.wat"), &CORE_ATTACKS.replace("ATTACK", attack));
    }
    app
}

fn start(app: &App) -> Server {
    app.start_with_runtime_config(LIMITS)
}

/// Latencies of the well-behaved route, in milliseconds.
struct Latency {
    median: f64,
    max: f64,
    count: usize,
}

fn latencies(samples: &mut [f64]) -> Latency {
    samples.sort_by(f64::total_cmp);
    Latency { median: samples[samples.len() / 2], max: *samples.last().unwrap(), count: samples.len() }
}

/// Runs `attack` while a client calls the well-behaved route over and over; returns the
/// attack's result after checking every such call answered 200 at its normal latency.
fn while_healthy_route_answers<R: Send + 'static>(server: &Server, name: &str, attack: impl FnOnce() -> R + Send + 'static) -> R {
    let ok_url = server.url("/ok/hello");
    let mut baseline: Vec<f64> = (0..20)
        .map(|_| {
            let t = Instant::now();
            assert_eq!(request("GET", &ok_url, &[], None).status, 200);
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    let baseline = latencies(&mut baseline);
    let attacker = std::thread::spawn(attack);
    let mut during = Vec::new();
    while !attacker.is_finished() {
        let t = Instant::now();
        let r = request("GET", &ok_url, &[], None);
        assert_eq!(r.status, 200, "{name}: the well-behaved route failed during the attack: {}", r.body);
        during.push(t.elapsed().as_secs_f64() * 1000.0);
        std::thread::sleep(Duration::from_millis(5));
    }
    let result = attacker.join().unwrap();
    assert!(!during.is_empty(), "{name}: the attack ended before the well-behaved route was called");
    let during = latencies(&mut during);
    println!(
        "{name}: well-behaved route median {:.1} ms (max {:.1}) over {} calls during the attack, {:.1} ms (max {:.1}) before",
        during.median, during.max, during.count, baseline.median, baseline.max
    );
    // Generous bounds: a host that stalled behind the attack would take seconds.
    assert!(during.median < baseline.median * 10.0 + 20.0, "{name}: median {:.1} ms during vs {:.1} ms before", during.median, baseline.median);
    assert!(during.max < 1000.0, "{name}: a well-behaved request took {:.1} ms during the attack", during.max);
    result
}

fn get(url: String) -> Response {
    request("GET", &url, &[], None)
}

#[test]
fn an_infinite_loop_is_stopped_at_request_timeout() {
    let app = hostile_app("[]");
    let server = start(&app);
    let url = server.url("/loop");
    let r = while_healthy_route_answers(&server, "infinite loop", move || get(url));
    assert_eq!(r.status, 504, "{}\n{}", r.body, server.log());
    assert!(r.body.contains("request_timeout is 2s"), "{}", r.body);
    assert!(server.wait_for_log("did not finish within request_timeout (2s)").contains("did not finish within request_timeout (2s)"));
}

#[test]
fn a_memory_bomb_is_stopped_at_max_instance_memory() {
    let app = hostile_app("[]");
    let server = start(&app);
    let url = server.url("/memory");
    let r = while_healthy_route_answers(&server, "memory bomb", move || get(url));
    assert_eq!(r.status, 500, "{}", r.body);
    let log = server.wait_for_log("max_instance_memory is");
    assert!(log.contains("component `memory` hit its memory limit") && log.contains("max_instance_memory is 33554432"), "{log}");
}

#[test]
fn a_table_growth_bomb_is_stopped() {
    let app = hostile_app("[]");
    let server = start(&app);
    let url = server.url("/table");
    let r = while_healthy_route_answers(&server, "table growth bomb", move || get(url));
    assert_eq!(r.status, 500, "{}", r.body);
    let log = server.wait_for_log("component `table` grew a table past");
    assert!(log.contains("elements, the most a table may hold"), "{log}");
}

#[test]
fn deep_recursion_is_stopped_at_max_wasm_stack() {
    let app = hostile_app("[]");
    let server = start(&app);
    let url = server.url("/recurse");
    let r = while_healthy_route_answers(&server, "stack overflow", move || get(url));
    assert_eq!(r.status, 500, "{}", r.body);
    let log = server.wait_for_log("overflowed its stack");
    assert!(log.contains("component `recurse` overflowed its stack: max_wasm_stack is 524288 bytes"), "{log}");
}

/// Reads a raw HTTP/1.1 response to a GET of `path`; returns the head and how many body
/// bytes arrived before the connection ended, and whether the body ended properly.
fn raw_get(addr: SocketAddr, path: &str) -> (String, u64, bool) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut all = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
        }
    }
    let split = all.windows(4).position(|w| w == b"\r\n\r\n").map(|i| i + 4).unwrap_or(all.len());
    let head = String::from_utf8_lossy(&all[..split]).into_owned();
    let body = &all[split..];
    // A complete chunked body ends with the zero-size chunk.
    let complete = body.ends_with(b"\r\n0\r\n\r\n");
    (head, body.len() as u64, complete)
}

#[test]
fn a_huge_response_body_is_cut_off_at_max_response_body_size() {
    let app = hostile_app("[]");
    let server = start(&app);
    let addr = server.addr;
    let (head, received, complete) = while_healthy_route_answers(&server, "huge response body", move || raw_get(addr, "/attack/huge-body?mib=100"));
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!complete, "a cut-off body must not look complete to the client");
    assert!((8 << 20..9 << 20).contains(&received), "received {received} bytes");
    assert!(server.wait_for_log("over max_response_body_size").contains("component `attack` sent a response body over max_response_body_size (8388608 bytes); it was cut off"));

    // A body declared too large up front gets a clear 502 before anything is sent.
    let r = server.get("/attack/huge-declared");
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.body.contains("68719476736 bytes) is over max_response_body_size (8388608 bytes)"), "{}", r.body);
}

#[test]
fn an_endless_response_is_stopped_at_request_timeout() {
    let app = hostile_app("[]");
    let server = app.start_with_runtime_config(&LIMITS.replace("\"8MiB\"", "\"100GiB\""));
    let addr = server.addr;
    let started = Instant::now();
    let (head, received, complete) = while_healthy_route_answers(&server, "endless response", move || raw_get(addr, "/attack/endless"));
    let took = started.elapsed();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(!complete && received > 0, "the endless body must be cut off, not ended cleanly");
    assert!(took >= Duration::from_secs(2) && took < Duration::from_secs(6), "{took:?}");
    assert!(server.wait_for_log("ran past request_timeout").contains("component `attack` ran past request_timeout (2s) and was stopped"));
}

/// A loopback HTTP server answering every request 200 and counting them.
fn counting_upstream() -> (SocketAddr, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    canned_server("200 OK", "", b"ok".to_vec())
}

#[test]
fn thousands_of_outbound_requests_are_stopped_at_max_outbound_requests() {
    let (up, reached) = counting_upstream();
    let app = hostile_app(&format!("[\"http://127.0.0.1:{}\"]", up.port()));
    let server = start(&app);
    let url = server.url(&format!("/attack/outbound-flood?n=5000&url=http://127.0.0.1:{}/", up.port()));
    let r = while_healthy_route_answers(&server, "outbound flood", move || get(url));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body.trim(), "sent=5000 ok=50 refused=4950 first_error=ErrorCode::HttpRequestDenied");
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 50, "only max_outbound_requests reached the upstream");
    assert!(server.log().contains("component `attack` made more than max_outbound_requests (50) outbound requests"));
    // The limit is per request: the next request may send again.
    let again = server.get(&format!("/attack/outbound-flood?n=1&url=http://127.0.0.1:{}/", up.port()));
    assert_eq!(again.body.trim(), "sent=1 ok=1 refused=0 first_error=none");
}

#[test]
fn resource_handle_floods_are_stopped_at_max_resource_handles() {
    let app = hostile_app("[]");
    let server = start(&app);
    for kind in ["fields", "pollables", "streams"] {
        let url = server.url(&format!("/attack/handle-flood?kind={kind}"));
        let r = while_healthy_route_answers(&server, &format!("{kind} flood"), move || get(url));
        assert_eq!(r.status, 500, "{kind}: {}", r.body);
        let log = server.wait_for_log("max_resource_handles (1000)");
        assert!(log.contains("component `attack` held more than max_resource_handles (1000) host resources"), "{kind}: {log}");
    }
    let count = server.wait_for_log_lines("held more than max_resource_handles", 3);
    assert_eq!(count, 3, "one log line per flood");
}

#[test]
fn reads_outside_the_mounted_files_fail() {
    let app = App::new(
        r#"
spin_manifest_version = 2
[application]
name = "files"
[[trigger.http]]
route = "/..."
component = "reader"
[component.reader]
source = "{http_guest}"
files = [{ source = "mounted", destination = "/data" }]
"#,
    );
    app.write("mounted/inside.txt", "inside\n").write("secret.txt", "SECRET\n").write("mounted/sub/x.txt", "x\n");
    let dir = app.path().join("mounted");
    std::os::unix::fs::symlink("../secret.txt", dir.join("relative-link")).unwrap();
    std::os::unix::fs::symlink(app.path().join("secret.txt"), dir.join("absolute-link")).unwrap();
    std::os::unix::fs::symlink("/etc", dir.join("etc-link")).unwrap();
    std::os::unix::fs::symlink("sub/../../secret.txt", dir.join("sneaky-link")).unwrap();
    let server = app.start(&[]);
    assert_eq!(server.get("/read?path=/data/inside.txt").body, "inside\n");
    let attempts = [
        "/data/../secret.txt",
        "/data/sub/../../secret.txt",
        "/data/./../secret.txt",
        "../secret.txt",
        "/data/%2e%2e/secret.txt",
        "/data/relative-link",
        "/data/absolute-link",
        "/data/etc-link/passwd",
        "/data/sneaky-link",
        "/etc/passwd",
        "//etc/passwd",
        "/proc/self/environ",
        &app.path().join("secret.txt").display().to_string(),
    ];
    for path in attempts {
        let r = server.get(&format!("/read?path={path}"));
        assert_eq!(r.status, 404, "{path} must not be readable: {}", r.body);
        assert!(!r.body.contains("SECRET") && !r.body.contains("root:"), "{path}: {}", r.body);
    }
    let listing = server.get("/list?path=/data").body;
    assert!(!listing.contains("secret"), "{listing}");
}

/// A loopback HTTP server answering every request with a redirect to `location`.
fn redirector(location: String) -> SocketAddr {
    canned_server("302 Found", &format!("Location: {location}\r\n"), Vec::new()).0
}

#[test]
fn outbound_to_internal_addresses_is_refused_in_every_form() {
    let (internal, reached) = counting_upstream();
    let port = internal.port();
    let redirect = redirector(format!("http://127.0.0.1:{port}/admin"));
    // The redirector is allowed by name; `*://*:*` names no internal address.
    let app = hostile_app(&format!("[\"*://*:*\", \"http://127.0.0.1:{}\"]", redirect.port()));
    let server = start(&app);

    let r = server.get(&format!("/attack/follow?url=http://127.0.0.1:{}/", redirect.port()));
    assert_eq!(r.status, 502, "redirect to loopback: {}", r.body);
    assert!(r.body.contains(&format!("error at http://127.0.0.1:{port}/admin: ErrorCode::DestinationIpProhibited")), "{}", r.body);

    let forms = [
        format!("http://127.0.0.1:{port}/"),
        format!("http://127.1:{port}/"),
        format!("http://2130706433:{port}/"),
        format!("http://0x7f000001:{port}/"),
        format!("http://0177.0.0.1:{port}/"),
        format!("http://0.0.0.0:{port}/"),
        format!("http://localhost:{port}/"),
        format!("http://LOCALHOST.:{port}/"),
        "http://169.254.169.254/latest/meta-data/".to_string(),
        "http://[fd00:ec2::254]/latest/meta-data/".to_string(),
        format!("http://[::1]:{port}/"),
        format!("http://[::]:{port}/"),
        format!("http://[::ffff:127.0.0.1]:{port}/"),
        format!("http://[::ffff:7f00:1]:{port}/"),
        "http://[::ffff:169.254.169.254]/".to_string(),
        format!("http://[::127.0.0.1]:{port}/"),
        "http://[fe80::1]/".to_string(),
        "http://[64:ff9b::a9fe:a9fe]/".to_string(),
        "http://[2002:a9fe:a9fe::1]/".to_string(),
        "http://10.0.0.1/".to_string(),
        "http://192.168.1.1/".to_string(),
        "http://100.64.0.1/".to_string(),
    ];
    for url in &forms {
        let r = server.get(&format!("/attack/follow?url={url}"));
        assert_eq!(r.status, 502, "{url}: {}", r.body);
        assert!(r.body.contains("DestinationIpProhibited") || r.body.contains("DnsError"), "{url}: {}", r.body);
    }
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0, "no form reached the internal server");
    let log = server.log();
    assert!(log.contains("it resolves to the non-public address 127.0.0.1"), "{log}");
    assert!(log.contains("non-public address 169.254.169.254"), "{log}");
    println!("internal-address forms refused: {} (plus a redirect to loopback)", forms.len());
}

/// Names that resolve to internal addresses, through a hosts file of the test's own:
/// the host runs in a private mount namespace where that file is bind-mounted over
/// /etc/hosts (needs root, as in CI).
#[test]
fn dns_names_resolving_to_internal_addresses_are_refused() {
    if !is_root() || std::process::Command::new("unshare").arg("--version").output().is_err() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root with unshare");
        eprintln!("SKIPPED: needs root and unshare to give the host its own /etc/hosts");
        return;
    }
    let (internal, reached) = counting_upstream();
    let port = internal.port();
    let app = hostile_app("[\"*://*:*\"]");
    app.write("hosts", "127.0.0.1 localhost\n127.0.0.1 evil.example\n169.254.169.254 metadata.example\n::1 evil6.example\n10.1.2.3 intranet.example\n");
    let hosts = app.path().join("hosts");
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c", "mount --bind \"$0\" /etc/hosts && exec \"$@\""])
        .arg(&hosts)
        .arg(env!("CARGO_BIN_EXE_tessera"))
        .env("RUST_LOG", "warn,tessera=info")
        .env_remove("RUST_BACKTRACE");
    let rc = app.runtime_config(LIMITS);
    let server = Server::start_with(cmd, app.path(), &["--runtime-config-file", rc.to_str().unwrap()]);
    for (name, ip) in [("evil.example", "127.0.0.1"), ("metadata.example", "169.254.169.254"), ("evil6.example", "::1"), ("intranet.example", "10.1.2.3")] {
        let r = server.get(&format!("/attack/follow?url=http://{name}:{port}/"));
        assert_eq!(r.status, 502, "{name}: {}", r.body);
        assert!(r.body.contains("DestinationIpProhibited"), "{name}: {}", r.body);
        let log = server.wait_for_log(&format!("non-public address {ip}"));
        assert!(log.contains(&format!("http://{name}:{port}: it resolves to the non-public address {ip}")), "{name}: {log}");
    }
    assert_eq!(reached.load(std::sync::atomic::Ordering::SeqCst), 0);
}
