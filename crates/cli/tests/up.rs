//! End to end: the real `tessera` binary serving apps on ephemeral ports.

mod support;

use std::time::{Duration, Instant};
use support::*;

#[test]
fn routes_and_spin_headers_match_spin() {
    let app = App::new(
        r#"
spin_manifest_version = 2
[application]
name = "routing"
[application.trigger.http]
base = "/api"
[[trigger.http]]
route = "/..."
component = "catch-all"
[[trigger.http]]
route = "/users/:id/headers"
component = "users"
[[trigger.http]]
route = "/files/..."
component = "files"
[[trigger.http]]
route = "/exact/headers"
component = "files"
[[trigger.http]]
route = "/health"
static_response = { status_code = 201, headers = { x-static = "yes" }, body = "ok" }
[[trigger.http]]
route = { private = true }
component = "hidden"
[component.catch-all]
source = "{http_guest}"
[component.users]
source = "{http_guest}"
[component.files]
source = "{http_guest}"
[component.hidden]
source = "{http_guest}"
"#,
    );
    let server = app.start(&[]);
    let out = server.stdout.lock().unwrap().clone();
    let base = format!("http://{}", server.addr);
    assert!(out.contains(&format!("  users: {base}/api/users/:id/headers\n")), "{out}");
    assert!(out.contains(&format!("  files: {base}/api/files (wildcard)\n")), "{out}");
    assert!(out.contains(&format!("  catch-all: {base}/api (wildcard)\n")), "{out}");
    assert!(!out.contains("hidden"), "private routes are not served: {out}");

    // A parameter route beats the catch-all; Spin's headers come with it.
    let r = request("GET", &server.url("/api/users/42/headers?x=1"), &[("spin-path-match-admin", "forged")], None);
    assert_eq!(r.status, 200);
    let h = &r.body;
    assert!(h.contains("spin-path-match-id: 42\n"), "{h}");
    assert!(h.contains("spin-matched-route: /api/users/:id/headers\n"), "{h}");
    assert!(h.contains("spin-raw-component-route: /users/:id/headers\n"), "{h}");
    assert!(h.contains("spin-component-route: /users/:id/headers\n"), "{h}");
    assert!(h.contains("spin-base-path: /api\n"), "{h}");
    assert!(h.contains(&format!("spin-full-url: http://{}/api/users/42/headers?x=1\n", server.addr)), "{h}");
    assert!(h.contains("spin-path-info: \n"), "{h}");
    assert!(h.contains("spin-client-addr: 127.0.0.1:"), "{h}");
    assert!(!h.contains("forged"), "client-sent spin-* headers are dropped: {h}");

    // Wildcards report the rest of the path; exact beats wildcard.
    let r = server.get("/api/files/a/b/headers");
    assert!(r.body.contains("spin-path-info: /a/b/headers\n"), "{}", r.body);
    assert!(r.body.contains("spin-component-route: /files\n"), "{}", r.body);
    let r = server.get("/api/exact/headers");
    assert!(r.body.contains("spin-matched-route: /api/exact/headers\n"), "{}", r.body);

    let r = server.get("/api/health");
    assert_eq!((r.status, r.body.as_str(), r.header("x-static")), (201, "ok", Some("yes")));

    // Outside the base path nothing matches.
    let r = server.get("/users/42/headers");
    assert_eq!(r.status, 404);
    assert!(r.body.contains("no route matches /users/42/headers"));
}

#[test]
fn files_and_environment_are_isolated() {
    let app = App::new(
        r#"
spin_manifest_version = 2
[application]
name = "isolation"
[[trigger.http]]
route = "/..."
component = "guest"
[component.guest]
source = "{http_guest}"
files = ["static/**/*", { source = "assets", destination = "/data" }]
exclude_files = ["static/private.txt"]
environment = { GREETING = "hi", MODE = "test" }
"#,
    );
    app.write("static/hello.txt", "hello file\n")
        .write("static/private.txt", "excluded\n")
        .write("assets/a.txt", "asset a\n")
        .write("outside.txt", "not mounted\n");
    std::os::unix::fs::symlink("/etc/passwd", app.path().join("static/passwd-link")).unwrap();
    let server = app.start(&[]);

    assert_eq!(server.get("/read?path=/static/hello.txt").body, "hello file\n");
    assert_eq!(server.get("/read?path=/data/a.txt").body, "asset a\n");
    for path in ["/etc/passwd", "/outside.txt", "/static/private.txt", "/static/passwd-link", "/data/../outside.txt", "/data/../../etc/passwd"] {
        let r = server.get(&format!("/read?path={path}"));
        assert_eq!(r.status, 404, "{path} must not be readable, got {}", r.body);
    }
    let r = server.get("/write?path=/static/hello.txt");
    assert_eq!(r.status, 403, "mounts are read-only: {}", r.body);

    let env = server.get("/env").body;
    let mut lines: Vec<&str> = env.lines().collect();
    lines.sort();
    assert_eq!(lines, ["GREETING=hi", "MODE=test"], "only `environment` reaches the guest");
}

#[test]
fn a_wildcard_grant_does_not_open_sockets_to_loopback() {
    let up = upstream("never reached");
    let app = App::new(&GUEST_APP.replace("source = \"{http_guest}\"", "source = \"{http_guest}\"\nallowed_outbound_hosts = [\"*://*:*\"]"));
    let server = app.start(&[]);
    let r = server.get(&format!("/connect?addr={up}"));
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.starts_with("error: "), "{}", r.body);
}

#[test]
fn oversized_header_sections_get_431() {
    let app = App::new(GUEST_APP);
    let server = app.start(&[]);
    let big = "x".repeat(100 << 10);
    let r = request("GET", &server.url("/hello"), &[("x-big", &big)], None);
    assert_eq!(r.status, 431);
    let fine = "y".repeat(4 << 10);
    assert_eq!(request("GET", &server.url("/hello"), &[("x-fine", &fine)], None).status, 200);
}

#[test]
fn outbound_http_follows_allowed_outbound_hosts() {
    let up = upstream("upstream says hi");
    let manifest = format!(
        r#"
spin_manifest_version = 2
[application]
name = "outbound"
[variables]
upstream_port = {{ default = "{port}" }}
[[trigger.http]]
route = "/allowed/..."
component = "allowed"
[[trigger.http]]
route = "/wide/..."
component = "wide"
[[trigger.http]]
route = "/none/..."
component = "none"
[component.allowed]
source = "{{http_guest}}"
allowed_outbound_hosts = ["http://127.0.0.1:{{{{ upstream_port }}}}"]
[component.wide]
source = "{{http_guest}}"
allowed_outbound_hosts = ["*://*:*"]
[component.none]
source = "{{http_guest}}"
"#,
        port = up.port()
    );
    let app = App::new(&manifest);
    let server = app.start(&[]);
    let url = format!("http://127.0.0.1:{}/x", up.port());

    let r = server.get(&format!("/allowed/outbound?url={url}"));
    assert_eq!((r.status, r.body.as_str()), (200, "upstream says hi"));

    let r = server.get(&format!("/none/outbound?url={url}"));
    assert_eq!(r.status, 502);
    assert!(r.body.contains("HttpRequestDenied"), "{}", r.body);
    let log = server.wait_for_log("allowed_outbound_hosts in [component.none]");
    assert!(log.contains(&format!("add \"http://127.0.0.1:{}\" to allowed_outbound_hosts in [component.none]", up.port())), "{log}");

    // `*://*:*` does not name loopback, metadata or private addresses.
    for target in [url.clone(), "http://169.254.169.254/latest".into(), "http://[::1]:9/".into(), "http://10.1.2.3/".into()] {
        let r = server.get(&format!("/wide/outbound?url={target}"));
        assert_eq!(r.status, 502, "{target}: {}", r.body);
        assert!(r.body.contains("DestinationIpProhibited"), "{target}: {}", r.body);
    }
    let r = server.get("/wide/outbound?url=http://localhost:1/");
    assert!(r.body.contains("DestinationIpProhibited"), "names resolving to loopback are refused: {}", r.body);
    assert!(server.log().contains("non-public address"));
}

#[test]
fn a_memory_bomb_hits_the_instance_limit_and_the_host_keeps_serving() {
    let app = App::new(GUEST_APP);
    app.write("rc.toml", "max_instance_memory = \"24MiB\"\n");
    let rc = app.path().join("rc.toml");
    let server = app.start(&["--runtime-config-file", rc.to_str().unwrap()]);
    let r = server.get("/memory-bomb");
    assert_eq!(r.status, 500);
    assert!(r.body.contains("request id: "), "{}", r.body);
    let log = server.wait_for_log("hit its memory limit");
    assert!(log.contains("max_instance_memory is 25165824"), "{log}");
    assert!(log.contains("wasm backtrace"), "{log}");
    assert_eq!(server.get("/hello").status, 200);
    let access = server.wait_for_log("GET /memory-bomb 500");
    let line = access.lines().find(|l| l.contains("GET /memory-bomb 500")).expect("access log line");
    let peak: u64 = line.split("peak_memory=").nth(1).unwrap().split("KiB").next().unwrap().parse().unwrap();
    assert!(peak > 16 * 1024 && peak <= 24 * 1024, "peak {peak} KiB: {line}");
}

#[test]
fn a_spinning_guest_is_stopped_at_request_timeout() {
    stops_a_spinning_guest(App::new(GUEST_APP), "/spin", "/hello");
}

#[test]
fn a_spinning_wasi_0_3_handler_is_stopped_at_request_timeout() {
    stops_a_spinning_guest(App::new(P3_APP), "/p3/spin", "/p3/hello");
}

/// `spin` loops forever under a 1 s request_timeout: it gets a 504 at the deadline, `other`
/// is served meanwhile, and the instance is really gone afterwards.
fn stops_a_spinning_guest(app: App, spin: &str, other: &str) {
    app.write("rc.toml", "request_timeout = \"1s\"\n");
    let rc = app.path().join("rc.toml");
    let server = app.start(&["--runtime-config-file", rc.to_str().unwrap()]);
    let url = server.url(spin);
    let spinner = std::thread::spawn(move || {
        let start = Instant::now();
        (request("GET", &url, &[], None), start.elapsed())
    });
    std::thread::sleep(Duration::from_millis(200));
    // Other requests are answered while one instance spins.
    let start = Instant::now();
    assert_eq!(server.get(other).status, 200);
    assert!(start.elapsed() < Duration::from_millis(500));
    let (r, took) = spinner.join().unwrap();
    assert_eq!(r.status, 504, "{}", r.body);
    assert!(r.body.contains("request_timeout") && r.body.contains("request id"), "{}", r.body);
    assert!(took >= Duration::from_millis(950) && took < Duration::from_secs(5), "{took:?}");
    // Log lines are written in batches: wait for this one rather than race the writer.
    let log = server.wait_for_log("did not finish within request_timeout");
    assert!(log.contains("did not finish within request_timeout (1s); its instance was stopped"), "{log}");
    // The instance really is gone: the host stops burning CPU.
    std::thread::sleep(Duration::from_millis(600));
    let before = server.cpu_ticks();
    std::thread::sleep(Duration::from_secs(1));
    let used = server.cpu_ticks() - before;
    assert!(used < 30, "the host used {used} ticks in the second after the timeout: the guest still runs");
}

#[test]
fn a_trap_answers_500_with_a_request_id_and_logs_the_backtrace() {
    let app = App::new(GUEST_APP);
    let server = app.start(&[]);
    let r = server.get("/trap");
    assert_eq!(r.status, 500);
    let id = r.body.split("request id: ").nth(1).unwrap().trim().to_string();
    let log = server.wait_for_log("wasm trap");
    // The instance's log event ends with its invocation span: app, component, trigger, id.
    let event = log.split("component `guest` failed").nth(1).unwrap_or_default();
    assert!(event.contains(&format!("app=e2e component=guest trigger=http id={id}\n")), "{log}");
    assert!(log.contains("wasm backtrace") && log.contains("unreachable"), "{log}");
    assert!(log.contains("[guest] the guest trapped on purpose"), "guest stderr is prefixed: {log}");
    assert_eq!(server.get("/hello").status, 200);
}

#[test]
fn large_bodies_round_trip_and_oversized_ones_get_413() {
    let app = App::new(GUEST_APP);
    app.write("rc.toml", "max_request_body_size = \"6MiB\"\n");
    let rc = app.path().join("rc.toml");
    let server = app.start(&["--runtime-config-file", rc.to_str().unwrap()]);
    let body: Vec<u8> = (0..5 << 20).map(|i| b'a' + (i % 26) as u8).collect();
    let r = server.post("/echo", &body);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("x-body-length"), Some("5242880"));
    assert_eq!(r.body.as_bytes(), &body[..]);
    // Declared too large: refused before any of it is read.
    let mut stream = std::net::TcpStream::connect(server.addr).unwrap();
    use std::io::{Read as _, Write as _};
    write!(stream, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n", 7 << 20).unwrap();
    let mut head = [0u8; 512];
    let n = stream.read(&mut head).unwrap();
    let head = String::from_utf8_lossy(&head[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
    assert!(head.contains("max_request_body_size"), "{head}");
    // Streamed without a length: cut off at the limit, the guest sees a body error.
    let r = request("POST", &server.url("/echo"), &[("transfer-encoding", "chunked")], Some(&vec![b'y'; 7 << 20]));
    assert!(r.body.len() <= 6 << 20, "no more than the limit reaches the guest");
}

#[test]
fn concurrent_slow_requests_queue_instead_of_failing() {
    let app = App::new(GUEST_APP);
    app.write("rc.toml", "max_concurrent_requests = 4\nmax_queued_requests = 100\nqueue_timeout = \"30s\"\n");
    let rc = app.path().join("rc.toml");
    let server = app.start(&["--runtime-config-file", rc.to_str().unwrap()]);
    let start = Instant::now();
    let handles: Vec<_> = (0..24)
        .map(|_| {
            let url = server.url("/sleep?ms=300");
            std::thread::spawn(move || request("GET", &url, &[], None).status)
        })
        .collect();
    let statuses: Vec<u16> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert!(statuses.iter().all(|s| *s == 200), "every request waits its turn: {statuses:?}");
    // 24 requests, 4 at a time, 300 ms each: at least six rounds.
    assert!(start.elapsed() >= Duration::from_millis(1700), "{:?}", start.elapsed());
}

#[test]
fn a_full_queue_answers_503_with_retry_after() {
    let app = App::new(GUEST_APP);
    app.write("rc.toml", "max_concurrent_requests = 1\nmax_queued_requests = 1\nqueue_timeout = \"10s\"\n");
    let rc = app.path().join("rc.toml");
    let server = app.start(&["--runtime-config-file", rc.to_str().unwrap()]);
    let handles: Vec<_> = (0..6)
        .map(|_| {
            let url = server.url("/sleep?ms=800");
            std::thread::spawn(move || {
                let r = request("GET", &url, &[], None);
                (r.status, r.header("retry-after").map(str::to_string))
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let ok = results.iter().filter(|(s, _)| *s == 200).count();
    let busy: Vec<_> = results.iter().filter(|(s, _)| *s == 503).collect();
    assert!(ok >= 2, "the running and the queued request succeed: {results:?}");
    assert!(!busy.is_empty(), "the rest are turned away: {results:?}");
    assert!(busy.iter().all(|(_, r)| r.as_deref() == Some("1")), "{results:?}");
}

#[test]
fn the_spin_sdk_router_example_runs_unmodified() {
    let example = repo_root().join("examples/spin-rust-router");
    let wasm = example.join("target/wasm32-wasip2/release/spin_rust_router.wasm");
    assert!(wasm.is_file(), "run scripts/build-guests.sh first: {} is missing", wasm.display());
    let server = Server::start(&example, &["--log-dir", tempfile::tempdir().unwrap().path().to_str().unwrap()]);
    let r = server.get("/hello/Ada");
    assert_eq!((r.status, r.body.as_str()), (200, "Hello, Ada!\n"));
    assert_eq!(server.get("/files/a/b.txt").body, "file: a/b.txt\n");
    assert_eq!(server.get("/elsewhere").status, 404);
}

const P3_APP: &str = r#"
spin_manifest_version = 2
[application]
name = "p3"
[[trigger.http]]
route = "/p3/..."
component = "p3"
[component.p3]
source = "{p3_guest}"
"#;

#[test]
fn a_wasi_0_3_handler_is_served() {
    let app = App::new(P3_APP);
    let server = app.start(&[]);
    let r = server.get("/p3/some/path");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, "hello from WASI 0.3: path=/p3/some/path path-info=/some/path\n");
    let access = server.wait_for_log("GET /p3/some/path 200");
    assert!(access.lines().any(|l| l.contains("GET /p3/some/path 200") && l.contains("component=p3 cpu=")), "{access}");

    // A WASI 0.3 instance logs inside its invocation span too: the failure names the
    // request it served.
    let r = server.get("/p3/trap");
    assert_eq!(r.status, 500, "{}", r.body);
    let id = r.body.split("request id: ").nth(1).unwrap().trim().to_string();
    let log = server.wait_for_log("wasm trap");
    let event = log.split("component `p3` failed").nth(1).unwrap_or_default();
    assert!(event.contains(&format!("app=p3 component=p3 trigger=http id={id}\n")), "{log}");
    assert!(log.contains("[p3] the WASI 0.3 guest traps on purpose"), "{log}");
    assert_eq!(server.get("/p3/again").status, 200);
}

#[test]
fn the_access_log_shows_the_cpu_time_of_each_instance() {
    let app = App::new(GUEST_APP);
    let server = app.start(&[]);
    assert_eq!(server.get("/burn?ms=300").status, 200);
    assert_eq!(server.get("/sleep?ms=300").status, 200);
    let cpu_ms = |path: &str| -> f64 {
        let log = server.wait_for_log(&format!("GET {path} 200"));
        let line = log.lines().find(|l| l.contains(&format!("GET {path} 200"))).expect("access log line");
        line.split("cpu=").nth(1).unwrap().split("ms").next().unwrap().parse().unwrap()
    };
    // Computing counts; waiting on a timer does not.
    let burned = cpu_ms("/burn?ms=300");
    assert!(burned >= 200.0, "300 ms of computing counted {burned} ms of CPU");
    let slept = cpu_ms("/sleep?ms=300");
    assert!(slept < 100.0, "300 ms of sleeping counted {slept} ms of CPU");
}

#[test]
fn guest_output_goes_to_the_terminal_and_the_log_files() {
    let app = App::new(GUEST_APP);
    let server = app.start(&[]);
    assert_eq!(server.get("/hello").status, 200);
    let log = server.wait_for_log("[guest] a line on stderr");
    assert!(log.contains("[guest] a line on stderr\n"), "{log}");
    let out = server.wait_for_stdout("[guest] hello handler called for /hello");
    assert!(out.contains("[guest] hello handler called for /hello\n"), "{out}");
    let stdout_file = app.path().join(".spin/logs/guest_stdout.txt");
    assert_eq!(std::fs::read_to_string(&stdout_file).unwrap(), "hello handler called for /hello\n");
    assert!(std::fs::read_to_string(app.path().join(".spin/logs/guest_stderr.txt")).unwrap().contains("a line on stderr"));
    let access = server.wait_for_log("GET /hello 200");
    assert!(access.lines().any(|l| l.contains("GET /hello 200") && l.contains("component=guest") && l.contains("peak_memory=") && l.contains("ms")), "{access}");
}

#[test]
fn the_compile_cache_makes_the_second_start_skip_compilation() {
    let app = App::new(GUEST_APP);
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().to_str().unwrap();
    let first = app.start(&["--cache-dir", cache_arg]);
    assert!(first.log().contains("compiled in"), "{}", first.log());
    drop(first);
    let second = app.start(&["--cache-dir", cache_arg]);
    assert!(second.log().contains("loaded from the compile cache"), "{}", second.log());
    assert_eq!(second.get("/hello").status, 200);
    // A damaged entry is compiled again, not trusted.
    for entry in std::fs::read_dir(cache.path()).unwrap() {
        std::fs::write(entry.unwrap().path(), b"garbage").unwrap();
    }
    drop(second);
    let third = app.start(&["--cache-dir", cache_arg]);
    assert!(third.log().contains("compiled in"), "{}", third.log());
    assert_eq!(third.get("/hello").status, 200);
}

fn up_error(manifest: &str, files: &[(&str, &[u8])]) -> String {
    let app = App::new(manifest);
    for (name, bytes) in files {
        std::fs::write(app.path().join(name), bytes).unwrap();
    }
    match Server::try_start(app.path(), &[]) {
        Ok(_) => panic!("tessera up should have failed"),
        Err(e) => e,
    }
}

#[test]
fn components_that_cannot_serve_http_are_refused_at_load() {
    let manifest = "spin_manifest_version = 2\n[application]\nname = \"bad\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"c\"\n[component.c]\nsource = \"c.wasm\"\n";
    // A core module no adapter can serve names what it imports.
    let foreign = wat::parse_str(r#"(module (import "env" "host_log" (func (param i32))) (memory (export "memory") 1))"#).unwrap();
    let e = up_error(manifest, &[("c.wasm", &foreign)]);
    assert!(e.contains("core module that cannot be made a component") && e.contains("it imports: env::host_log") && e.contains("wasm32-wasip2"), "{e}");
    let empty_component = b"\0asm\x0d\0\x01\0";
    let e = up_error(manifest, &[("c.wasm", empty_component)]);
    assert!(e.contains("exports neither wasi:http/incoming-handler@0.2.x nor wasi:http/handler@0.3.0"), "{e}");
    let e = up_error(manifest, &[]);
    assert!(e.contains("spin.toml:8:10") && e.contains("cannot read source `") && e.contains("tessera build"), "{e}");
}

#[test]
fn manifest_errors_name_file_line_and_column() {
    let e = up_error("spin_manifest_version = 2\n[application]\nname = \"x\"\n[[trigger.http]]\nroute = \"/\"\ncomponent = \"c\"\ncomponentt = 1\n", &[]);
    assert!(e.contains("spin.toml:7:1: unknown field `componentt`") && e.contains("hint:"), "{e}");
}

#[test]
fn variables_fill_templates_and_secrets_stay_secret() {
    let manifest = r#"
spin_manifest_version = 2
[application]
name = "vars"
[variables]
api_token = { required = true, secret = true }
[[trigger.http]]
route = "/..."
component = "guest"
[component.guest]
source = "{http_guest}"
variables = { token = "{{ api_token }}" }
"#;
    let e = up_error(manifest, &[]);
    assert!(e.contains("variable `api_token` is required") && e.contains("SPIN_VARIABLE_API_TOKEN"), "{e}");
    let app = App::new(manifest);
    // An address in use makes `up` fail after loading the app and printing what it prints.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut cmd = tessera();
    let out = cmd
        .args(["up", "-f"])
        .arg(app.path())
        .args(["--listen", &taken.local_addr().unwrap().to_string()])
        .env("SPIN_VARIABLE_API_TOKEN", "hunter2-secret")
        .output()
        .unwrap();
    let all = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(all.contains("cannot listen on"), "{all}");
    assert!(!all.contains("hunter2-secret"), "{all}");
}

#[test]
fn build_runs_commands_and_stops_at_the_first_failure() {
    let app = App::new(
        r#"
spin_manifest_version = 2
[application]
name = "build"
[[trigger.http]]
route = "/a/..."
component = "a"
[[trigger.http]]
route = "/b/..."
component = "b"
[component.a]
source = "a.wasm"
build = { command = "echo building-a > built.txt", workdir = "a-src" }
[component.b]
source = "b.wasm"
build = { command = ["echo first-b", "exit 3", "echo never"] }
"#,
    );
    std::fs::create_dir(app.path().join("a-src")).unwrap();
    let out = tessera().args(["build", "-f"]).arg(app.path()).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(std::fs::read_to_string(app.path().join("a-src/built.txt")).unwrap(), "building-a\n");
    assert!(stdout.contains("first-b") && !stdout.contains("never"), "{stdout}");
    assert!(stderr.contains("component `b` failed with exit code 3: `exit 3`"), "{stderr}");
}

#[test]
fn up_build_builds_before_serving() {
    let app = App::new(&GUEST_APP.replace("source = \"{http_guest}\"", "source = \"out/guest.wasm\"\nbuild = { command = \"mkdir -p out && cp {http_guest} out/guest.wasm\" }"));
    let server = app.start(&["--build"]);
    assert_eq!(server.get("/hello").status, 200);
}

#[test]
fn help_and_version() {
    let out = tessera().arg("--version").output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("tessera "));
    for sub in ["up", "build"] {
        let out = tessera().args([sub, "--help"]).output().unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("--from"));
    }
    // Every subcommand's help ends with examples.
    for sub in ["up", "host", "run", "call", "build", "registry", "compose", "inspect", "sign", "verify", "completions"] {
        let out = tessera().args([sub, "--help"]).output().unwrap();
        let help = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && help.contains("Examples:\n  tessera "), "{sub}: {help}");
    }
}

#[test]
fn shell_completions_complete_subcommands_and_flags() {
    let bin = tessera().get_program().to_owned();
    let script = tessera().args(["completions", "bash"]).output().unwrap();
    assert!(script.status.success());
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("tessera.bash"), &script.stdout).unwrap();
    // bash itself completes with the script, as a user's shell would.
    let complete = |words: &str, current: usize| {
        let program = format!(
            "source {}; COMP_WORDS=({words}); COMP_CWORD={current}; COMP_LINE='{words}'; COMP_POINT=${{#COMP_LINE}}; _tessera tessera; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            dir.path().join("tessera.bash").display()
        );
        let path = format!("{}:{}", std::path::Path::new(&bin).parent().unwrap().display(), std::env::var("PATH").unwrap_or_default());
        let out = std::process::Command::new("bash").args(["-c", &program]).env("PATH", path).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().map(str::to_string).collect::<Vec<_>>()
    };
    assert!(complete("tessera u", 1).contains(&"up".to_string()), "{:?}", complete("tessera u", 1));
    let flags = complete("tessera up --key", 2);
    assert!(flags.contains(&"--key-value".to_string()), "{flags:?}");
    let zsh = tessera().args(["completions", "zsh"]).output().unwrap();
    assert!(String::from_utf8_lossy(&zsh.stdout).starts_with("#compdef tessera"));
    let fish = tessera().args(["completions", "fish"]).output().unwrap();
    assert!(String::from_utf8_lossy(&fish.stdout).contains("complete -c tessera"));
    let bad = tessera().args(["completions", "tcsh"]).output().unwrap();
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("bash"));
}

#[test]
fn sigterm_stops_the_host_cleanly() {
    let app = App::new(GUEST_APP);
    let mut server = app.start(&[]);
    assert_eq!(server.get("/hello").status, 200);
    let status = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(server.wait_for_stdout("Shutting down").contains("Shutting down"));
}

#[test]
fn a_wasi_preview1_module_is_adapted_at_load_and_served() {
    // http-guest built for wasm32-wasip1: a core module with wit-bindgen's component-type
    // sections, as older Spin SDKs build them.
    let module = repo_root().join("tests/guests/target/wasm32-wasip1/release/http_guest.wasm");
    assert!(module.is_file(), "{} is missing: run scripts/build-guests.sh", module.display());
    let bytes = std::fs::read(&module).unwrap();
    assert!(bytes.starts_with(b"\0asm\x01\0\0\0"), "not a core module");
    let app = App::new(&GUEST_APP.replace("{http_guest}", &module.display().to_string()));
    let cache = tempfile::tempdir().unwrap();
    let cache_arg = cache.path().to_str().unwrap();
    let server = app.start(&["--cache-dir", cache_arg]);
    let r = server.get("/hello");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(server.get("/env").status, 200);
    drop(server);
    // The adapted component's compiled code is cached like any component's.
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "cwasm")).count(), 1);
    let again = app.start(&["--cache-dir", cache_arg]);
    assert_eq!(again.get("/hello").status, 200);
}

/// A Spin SDK app with the default key-value store and database and a required variable.
const SEEDED_APP: &str = "spin_manifest_version = 2\n[application]\nname = \"seeded\"\n[variables]\ngreeting = { required = true }\n\
    [[trigger.http]]\nroute = \"/...\"\ncomponent = \"spin\"\n[component.spin]\nsource = \"{spin_guest}\"\n\
    key_value_stores = [\"default\"]\nsqlite_databases = [\"default\"]\nvariables = { greeting = \"{{ greeting }}\" }\n";

#[test]
fn spin_up_flags_seed_stores_set_variables_and_move_state() {
    let app = App::new(SEEDED_APP);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("greeting.txt"), "from a file").unwrap();
    std::fs::write(dir.path().join("migrate.sql"), "CREATE TABLE notes(body TEXT); INSERT INTO notes VALUES ('migrated');").unwrap();
    let state = dir.path().join("state");
    let mut cmd = tessera();
    // --variable wins over the environment, as in Spin.
    cmd.env("SPIN_VARIABLE_GREETING", "from the environment");
    let greeting = format!("greeting=@{}", dir.path().join("greeting.txt").display());
    let migrate = format!("@{}", dir.path().join("migrate.sql").display());
    let server = Server::start_with(
        cmd,
        app.path(),
        &[
            "--variable", &greeting,
            "--key-value", "motd=hello", "--key-value", "user:1=alice",
            "--sqlite", &migrate, "--sqlite", "INSERT INTO notes VALUES ('inline')",
            "--state-dir", state.to_str().unwrap(),
            "-L", "",
        ],
    );
    assert_eq!(server.get("/variables/greeting").body, "from a file");
    assert_eq!(server.get("/kv/default/motd").body, "hello");
    assert_eq!(server.get("/kv/default/user:1").body, "alice", "a colon is part of the key, as in Spin");
    let r = request("POST", &server.url("/sql/default"), &[], Some(b"SELECT body FROM notes ORDER BY rowid"));
    assert_eq!(r.body, "body\nmigrated\ninline\n", "{}", r.body);
    // State went to --state-dir; -L "" logged to no file.
    assert!(state.join("sqlite_key_value.db").is_file() && state.join("sqlite_db.db").is_file());
    assert!(!app.path().join(".spin").exists(), "state or logs beside the manifest");
    assert!(!state.join("logs").exists(), "-L \"\" still wrote log files");
}

#[test]
fn spin_up_flags_that_cannot_be_applied_stop_the_start_with_the_reason() {
    let app = App::new(SEEDED_APP);
    let start = |extra: &[&str]| Server::try_start(app.path(), &[&["--variable", "greeting=hi"], extra].concat()).err().expect("the start should fail");
    let e = start(&["--sqlite", "CREATE TABLE a(x); NOT SQL AT ALL"]);
    assert!(e.contains("--sqlite") && e.contains("none was applied"), "{e}");
    let e = start(&["--key-value", "no-equals-sign"]);
    assert!(e.contains("--key-value no-equals-sign") && e.contains("KEY=VALUE"), "{e}");
    let e = start(&["--variable", "@vars.yaml"]);
    assert!(e.contains(".json or .toml"), "{e}");
    let e = start(&["-c", "nope"]);
    assert!(e.contains("no component `nope`") && e.contains("spin"), "{e}");
    let e = start(&["--follow", "nope"]);
    assert!(e.contains("--follow nope") && e.contains("no component"), "{e}");
    let e = Server::try_start(app.path(), &["-e", "=x"]).err().unwrap();
    assert!(e.contains("KEY=VALUE"), "{e}");
    // The failed --sqlite left no table behind: the next start creates it again.
    let server = app.start(&["--variable", "greeting=hi", "--sqlite", "CREATE TABLE a(x)"]);
    assert_eq!(server.get("/variables/greeting").body, "hi");
}

#[test]
fn env_quiet_follow_and_component_id_as_in_spin_up() {
    let app = App::new(
        "spin_manifest_version = 2\n[application]\nname = \"two\"\n\
         [[trigger.http]]\nroute = \"/a/...\"\ncomponent = \"a\"\n[[trigger.http]]\nroute = \"/b/...\"\ncomponent = \"b\"\n\
         [component.a]\nsource = \"{http_guest}\"\nenvironment = { A = \"from the manifest\" }\n[component.b]\nsource = \"{http_guest}\"\n",
    );
    // -e reaches every component and wins over the manifest's environment.
    let server = app.start(&["-e", "A=from the flag", "-e", "B=x=y", "--follow", "b"]);
    for path in ["/a/env", "/b/env"] {
        let body = server.get(path).body;
        assert!(body.contains("A=from the flag\n") && body.contains("B=x=y\n"), "{path}: {body}");
    }
    // --follow b: only b's lines reach the terminal; both are in the log files.
    server.get("/a/hello");
    server.get("/b/hello");
    server.wait_for_stdout("[b] hello handler called for /b/hello");
    assert!(!server.stdout.lock().unwrap().contains("[a] "), "{}", server.stdout.lock().unwrap());
    assert!(std::fs::read_to_string(app.path().join(".spin/logs/a_stdout.txt")).unwrap().contains("/a/hello"));
    drop(server);

    // -q: no guest line on the terminal. --truncate-logs empties the files first.
    let server = app.start(&["-q", "--truncate-logs"]);
    assert!(std::fs::read_to_string(app.path().join(".spin/logs/a_stdout.txt")).unwrap().is_empty(), "--truncate-logs");
    server.get("/a/hello");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while !std::fs::read_to_string(app.path().join(".spin/logs/a_stdout.txt")).unwrap().contains("/a/hello") {
        assert!(std::time::Instant::now() < deadline, "the log file did not get the line");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(!server.stdout.lock().unwrap().contains("[a] "), "-q printed guest output");
    drop(server);

    // -c a: only a's triggers run.
    let server = app.start(&["-c", "a"]);
    assert_eq!(server.get("/a/hello").status, 200);
    assert_eq!(server.get("/b/hello").status, 404);
    let out = server.stdout.lock().unwrap().clone();
    assert!(out.contains("a: http://") && !out.contains("b: http://"), "{out}");
}

#[test]
fn the_manifest_is_found_in_a_parent_directory_as_spin_finds_it() {
    let app = App::new(GUEST_APP);
    let sub = app.path().join("src/deeper");
    std::fs::create_dir_all(&sub).unwrap();
    let mut cmd = tessera();
    cmd.current_dir(&sub).args(["up", "--listen", "127.0.0.1:0", "--cache-dir"]).arg(cache_dir());
    let server = Server::launch(cmd).unwrap();
    assert_eq!(server.get("/hello").status, 200);
    let log = server.stderr.lock().unwrap().clone();
    assert!(log.contains("No 'spin.toml' in current directory.") && log.contains("from 2 levels up directory"), "{log}");
    // Not past a repository's root.
    let repo = tempfile::tempdir().unwrap();
    std::fs::write(repo.path().join("spin.toml"), "not read").unwrap();
    std::fs::create_dir_all(repo.path().join("project/.git")).unwrap();
    let out = tessera().current_dir(repo.path().join("project")).args(["up", "--listen", "127.0.0.1:0"]).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("no spin.toml"), "{err}");
}

#[test]
fn a_version_1_manifest_runs_as_spin_runs_it() {
    let app = App::new(
        "spin_manifest_version = \"1\"\nname = \"old\"\nversion = \"1.0.0\"\ntrigger = { type = \"http\", base = \"/\" }\n\
         [variables]\nwho = { default = \"v1\" }\n\
         [[component]]\nid = \"hello_guest\"\nsource = \"{http_guest}\"\nenvironment = { WHO = \"env\" }\nconfig = { who = \"{{ who }}\" }\n\
         [component.trigger]\nroute = \"/...\"\n",
    );
    let server = app.start(&[]);
    assert_eq!(server.get("/hello").status, 200);
    assert!(server.get("/env").body.contains("WHO=env\n"));
    let out = server.stdout.lock().unwrap().clone();
    assert!(out.contains("hello-guest: http://"), "the id became kebab-case as in Spin: {out}");
    // Errors in a version 1 manifest say so.
    let e = up_error("spin_manifest_version = \"1\"\nname = \"old\"\ntrigger = { type = \"http\" }\n[[component]]\nid = \"x\"\nsource = \"x.wasm\"\n", &[]);
    assert!(e.contains("manifest version 1") && e.contains("component `x` has no `trigger` table"), "{e}");
}

#[test]
fn start_up_says_where_state_goes_and_a_failed_start_leaves_none() {
    let app = App::new(
        r#"spin_manifest_version = 2
[application]
name = "summary"
[[trigger.http]]
route = "/..."
component = "guest"
[component.guest]
source = "{spin_guest}"
description = "Greets and keeps visits"
key_value_stores = ["default"]
sqlite_databases = ["default"]
"#,
    );
    let server = app.start(&[]);
    let log = server.log();
    assert!(log.contains("Logging component stdio to \"") && log.contains(".spin/logs/\""), "{log}");
    assert!(log.contains("Storing default key-value data to \"") && log.contains(".spin/sqlite_key_value.db\"."), "{log}");
    assert!(log.contains("Storing default SQLite data to \"") && log.contains(".spin/sqlite_db.db\"."), "{log}");
    let stdout = server.wait_for_stdout("Greets and keeps visits");
    assert!(stdout.contains(" (wildcard)\n    Greets and keeps visits\n"), "the route's description follows it: {stdout}");
    drop(server);
    std::fs::remove_dir_all(app.path().join(".spin")).unwrap();

    // The port is taken: the start fails after the stores were opened, and takes them away.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = app.up_to_end(&["--listen", &taken.local_addr().unwrap().to_string()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("cannot listen on"), "{stderr}");
    assert!(!app.path().join(".spin").exists(), "a failed start left {:?}", std::fs::read_dir(app.path().join(".spin")).map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>()));

    // A state directory that was there keeps what it had, and gains nothing.
    std::fs::create_dir(app.path().join(".spin")).unwrap();
    std::fs::write(app.path().join(".spin/keep.txt"), "mine").unwrap();
    let out = app.up_to_end(&["--listen", &taken.local_addr().unwrap().to_string()]);
    assert!(!out.status.success());
    let left: Vec<_> = std::fs::read_dir(app.path().join(".spin")).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(left, vec![std::ffi::OsString::from("keep.txt")]);
}

#[test]
fn start_errors_name_file_line_and_column_before_the_hint() {
    let app = App::new(
        r#"spin_manifest_version = 2
[application]
name = "located"
[variables]
token = { required = true }
[[trigger.http]]
route = "/..."
component = "guest"
[component.guest]
source = "{http_guest}"
"#,
    );
    let up = |extra: &[&str]| {
        let out = app.up_to_end(extra);
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = up(&[]);
    let cause = e.find("spin.toml:5:1:").unwrap_or_else(|| panic!("{e}"));
    assert!(e[cause..].contains("variable `token` is required but has no value\n  hint: set SPIN_VARIABLE_TOKEN"), "{e}");
    app.write("rc.toml", "max_queued_requests = 4\n\n[component.gust]\nmax_instance_memory = \"10MiB\"\n");
    let e = up(&["--variable", "token=x", "--runtime-config-file", "rc.toml"]);
    assert!(e.contains("rc.toml:3:1: the runtime config sets limits for component `gust`") && e.contains("hint: rename [component.gust] to one of the app's components (guest)"), "{e}");
    assert!(!app.path().join(".spin").exists(), "a failed start left state behind");
}

#[test]
fn temp_stages_copies_and_direct_mounts_take_directories_only() {
    let app = App::new(
        r#"spin_manifest_version = 2
[application]
name = "mounts"
[[trigger.http]]
route = "/..."
component = "guest"
[component.guest]
source = "{http_guest}"
files = ["static/*.txt", { source = "assets", destination = "/data" }]
"#,
    );
    app.write("static/hello.txt", "hello file\n").write("assets/a.txt", "asset a\n");
    let temp = tempfile::tempdir().unwrap();
    let server = app.start(&["--temp", temp.path().to_str().unwrap()]);
    assert_eq!(server.get("/read?path=/static/hello.txt").body, "hello file\n");
    let staged: Vec<_> = std::fs::read_dir(temp.path()).unwrap().flatten().collect();
    assert_eq!(staged.len(), 1, "the globbed file is staged under --temp");
    drop(server);

    let out = app.up_to_end(&["--direct-mounts"]);
    let e = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && e.contains("spin.toml:9:") && e.contains("only directory mounts work with --direct-mounts"), "{e}");

    // Directory mappings alone: mounted from their source, read-only, nothing copied.
    std::fs::write(app.path().join("spin.toml"), std::fs::read_to_string(app.path().join("spin.toml")).unwrap().replace("\"static/*.txt\", ", "")).unwrap();
    let temp = tempfile::tempdir().unwrap();
    let server = app.start(&["--direct-mounts", "--temp", temp.path().to_str().unwrap()]);
    std::fs::write(app.path().join("assets/a.txt"), "changed at the source\n").unwrap();
    assert_eq!(server.get("/read?path=/data/a.txt").body, "changed at the source\n");
    assert_eq!(server.get("/write?path=/data/a.txt").status, 403);
    assert_eq!(std::fs::read_dir(temp.path()).unwrap().count(), 0, "nothing staged");
}
