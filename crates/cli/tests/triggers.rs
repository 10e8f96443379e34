//! Triggers beyond HTTP in one `tessera up` process, as a user runs them: Redis (with a
//! real `redis-server`, restarted under the app), cron, command apps, bare components,
//! listen addresses and graceful shutdown.

mod support;

use std::time::{Duration, Instant};
use support::*;

fn redis_app(redis: &Redis, extra: &str) -> App {
    App::new(&format!(
        r#"
spin_manifest_version = 2
[application]
name = "redis-app"
[application.trigger.redis]
address = "{{{{ redis_url }}}}"
[variables]
redis_url = {{ default = "{url}" }}
channel = {{ default = "messages" }}
[[trigger.redis]]
channel = "{{{{ channel }}}}"
component = "first"
[[trigger.redis]]
channel = "messages"
address = "{url}"
component = "second"
[component.first]
source = "{{redis_guest}}"
[component.second]
source = "{{redis_guest}}"
{extra}
"#,
        url = redis.url()
    ))
}

fn count(text: &str, needle: &str) -> usize {
    text.matches(needle).count()
}

/// Waits until `f` holds, for up to `seconds`.
fn eventually(seconds: u64, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[test]
fn every_component_on_a_channel_gets_each_message() {
    let Some(redis) = Redis::start() else { return };
    let app = redis_app(&redis, "");
    let server = app.start(&[]);
    let stdout = server.wait_for_stdout("Redis channels:");
    assert!(stdout.contains(&format!("{}/messages: [first,second]", redis.url())), "{stdout}");
    assert!(eventually(10, || redis.publish("messages", &["ping"]) >= 1), "the trigger never subscribed");
    let out = server.wait_for_stdout("[second] message: ping");
    assert!(out.contains("[first] message: ping") && out.contains("[second] message: ping"), "{out}");
    let log = server.wait_for_log("redis messages 4B ok");
    assert!(log.contains("component=first") && log.contains("component=second"), "one outcome line per component: {log}");
}

#[test]
fn a_spin_sdk_7_component_gets_messages_through_spin_redis_3() {
    let Some(redis) = Redis::start() else { return };
    let app = App::new(&format!(
        r#"
spin_manifest_version = 2
[application]
name = "v3"
[[trigger.redis]]
address = "{}"
channel = "events"
component = "sub"
[component.sub]
source = "{{redis3_guest}}"
"#,
        redis.url()
    ));
    let server = app.start(&[]);
    assert!(eventually(10, || redis.publish("events", &["hello"]) >= 1));
    server.wait_for_stdout("[sub] v3 message: hello");
    redis.publish("events", &["fail"]);
    let log = server.wait_for_log("handler-error");
    assert!(log.contains("failing on purpose"), "the guest's error is logged: {log}");
}

#[test]
fn the_subscription_survives_a_redis_restart() {
    let Some(mut redis) = Redis::start() else { return };
    let app = redis_app(&redis, "");
    let server = app.start(&[]);
    assert!(eventually(10, || redis.publish("messages", &["before"]) >= 1));
    server.wait_for_stdout("[first] message: before");
    redis.stop();
    let log = server.wait_for_log("reconnecting to");
    assert!(log.contains("Redis trigger:"), "{log}");
    redis.restart();
    let log = server.wait_for_log("reconnected to");
    assert!(log.contains("subscribed again"), "{log}");
    assert!(eventually(10, || redis.publish("messages", &["after"]) >= 1), "not subscribed again");
    let out = server.wait_for_stdout("[first] message: after");
    assert!(out.contains("[first] message: after"), "{out}");
}

#[test]
fn hostile_redis_handlers_are_contained_and_named() {
    let Some(redis) = Redis::start() else { return };
    let app = redis_app(&redis, "");
    let server = app.start_with_runtime_config("request_timeout = \"1s\"\n");
    assert!(eventually(10, || redis.publish("messages", &["warm"]) >= 1));
    server.wait_for_stdout("[second] message: warm");

    redis.publish("messages", &["trap"]);
    let log = server.wait_for_log("redis messages 4B failed");
    assert!(log.contains("trapping on purpose") || log.contains("unreachable"), "the trap is logged with its cause: {log}");

    redis.publish("messages", &["hang"]);
    let log = server.wait_for_log("ran past request_timeout (1s)");
    assert!(log.contains("component `first` ran past request_timeout (1s)"), "the limit to raise is named: {log}");

    redis.publish("messages", &["fail"]);
    server.wait_for_log("handler-error");

    // A flood: every message is handled, none is lost, the host stays up.
    let flood: Vec<String> = (0..300).map(|i| format!("n{i}")).collect();
    let flood_refs: Vec<&str> = flood.iter().map(String::as_str).collect();
    redis.publish("messages", &flood_refs);
    let all = eventually(60, || count(&server.stdout.lock().unwrap(), "[first] message: n") >= 300);
    assert!(all, "handled {} of 300", count(&server.stdout.lock().unwrap(), "[first] message: n"));
    redis.publish("messages", &["still-here"]);
    server.wait_for_stdout("[first] message: still-here");
}

#[test]
fn a_redis_component_without_the_export_is_a_load_error() {
    let Some(redis) = Redis::start() else { return };
    let app = App::new(&format!(
        r#"
spin_manifest_version = 2
[application]
name = "wrong"
[[trigger.redis]]
address = "{}"
channel = "c"
component = "web"
[component.web]
source = "{{http_guest}}"
"#,
        redis.url()
    ));
    let err = Server::try_start(app.path(), &[]).err().expect("must not start");
    assert!(err.contains("component `web`") && err.contains("fermyon:spin/inbound-redis"), "{err}");

    let no_address = App::new(
        r#"
spin_manifest_version = 2
[application]
name = "wrong"
[[trigger.redis]]
channel = "c"
component = "r"
[component.r]
source = "{redis_guest}"
"#,
    );
    let err = Server::try_start(no_address.path(), &[]).err().expect("must not start");
    assert!(err.contains("spin.toml:5:1") && err.contains("no `address`"), "{err}");
}

fn cron_app(expression: &str, environment: &str) -> App {
    App::new(&format!(
        r#"
spin_manifest_version = 2
[application]
name = "cron-app"
[[trigger.cron]]
id = "every-second"
component = "ticker"
cron_expression = "{expression}"
[component.ticker]
source = "{{cron_guest}}"
environment = {{ {environment} }}
"#
    ))
}

#[test]
fn cron_jobs_run_on_their_schedule() {
    let app = cron_app("* * * * * *", "");
    let server = app.start(&[]);
    let stdout = server.wait_for_stdout("[ticker] tick");
    assert!(stdout.contains("every-second: \"* * * * * *\" -> ticker"), "{stdout}");
    assert!(eventually(10, || count(&server.stdout.lock().unwrap(), "[ticker] tick ") >= 3), "{}", server.stdout.lock().unwrap());
    // Each tick's timestamp is its scheduled second.
    let stdout = server.stdout.lock().unwrap().clone();
    let stamps: Vec<u64> = stdout.lines().filter_map(|l| l.strip_prefix("[ticker] tick ")).filter_map(|t| t.trim().parse().ok()).collect();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    assert!(stamps.windows(2).all(|w| w[1] > w[0]) && stamps.iter().all(|s| now.abs_diff(*s) < 30), "{stamps:?}");
    assert!(server.log().contains("cron every-second ok"), "{}", server.log());
}

#[test]
fn a_tick_is_skipped_while_the_previous_run_goes_on() {
    let app = cron_app("* * * * * *", "SLEEP_MS = \"2500\"");
    let server = app.start(&[]);
    let log = server.wait_for_log("skipped: the previous run of component `ticker` is still going");
    assert!(log.contains("skipped"), "{log}");
}

/// The `cpu=...ms` figure of the first whole outcome line holding `what`.
fn cpu_ms(server: &Server, what: &str) -> f64 {
    let mut line = None;
    let found = eventually(15, || {
        let log = server.log();
        line = log.split_inclusive('\n').find(|l| l.contains(what) && l.ends_with('\n')).map(str::to_string);
        line.is_some()
    });
    assert!(found, "no `{what}` line in {}", server.log());
    let line = line.unwrap();
    let figure = line.split(" cpu=").nth(1).and_then(|r| r.split("ms").next()).unwrap_or_else(|| panic!("no cpu= in {line}"));
    figure.parse().unwrap()
}

#[test]
fn each_run_reports_its_cpu_time_not_its_waiting() {
    // 300 ms of sleeping and 300 ms of spinning take the same wall time; only one is CPU.
    let app = cron_app("* * * * * *", "SLEEP_MS = \"300\"");
    let server = app.start(&[]);
    let sleeping = cpu_ms(&server, "cron every-second ok");
    assert!(sleeping < 100.0, "a 300 ms sleep counted {sleeping} ms of CPU");
    drop(server);

    let app = cron_app("* * * * * *", "SPIN_MS = \"300\"");
    let server = app.start(&[]);
    let spinning = cpu_ms(&server, "cron every-second ok");
    // Not all of it: the moments between an epoch yield and the next poll are not on CPU.
    assert!(spinning >= 200.0, "300 ms of spinning counted {spinning} ms of CPU");
}

#[test]
fn a_spinning_cron_handler_is_stopped_at_request_timeout_and_the_schedule_goes_on() {
    let app = cron_app("* * * * * *", "SPIN_MS = \"forever\"");
    let server = app.start_with_runtime_config("request_timeout = \"1s\"\n");
    let log = server.wait_for_log("ran past request_timeout (1s)");
    assert!(log.contains("component `ticker` ran past request_timeout (1s)"), "the limit to raise is named: {log}");
    // Stopped, not abandoned: it was on the CPU until its deadline, and later ticks run
    // (and are stopped) too.
    let stopped = cpu_ms(&server, "cron every-second failed");
    assert!(stopped >= 800.0, "a guest spinning for 1 s counted {stopped} ms of CPU");
    assert!(eventually(15, || count(&server.log(), "cron every-second failed") >= 3), "{}", server.log());
}

#[test]
fn a_bad_cron_expression_is_a_load_error_at_its_place() {
    let app = cron_app("*/5 * * * *", "");
    let err = Server::try_start(app.path(), &[]).err().expect("must not start");
    assert!(err.contains("spin.toml:8:19") && err.contains("5 fields") && err.contains("seconds first"), "{err}");
}

#[test]
fn an_app_mixes_http_redis_and_cron_in_one_process() {
    let Some(redis) = Redis::start() else { return };
    let app = App::new(&format!(
        r#"
spin_manifest_version = 2
[application]
name = "mixed"
[[trigger.http]]
route = "/..."
component = "web"
[[trigger.redis]]
address = "{}"
channel = "jobs"
component = "worker"
[[trigger.cron]]
component = "ticker"
cron_expression = "* * * * * *"
[component.web]
source = "{{http_guest}}"
[component.worker]
source = "{{redis_guest}}"
[component.ticker]
source = "{{cron_guest}}"
"#,
        redis.url()
    ));
    let server = app.start(&[]);
    assert_eq!(server.get("/hello").status, 200);
    assert!(eventually(10, || redis.publish("jobs", &["mixed"]) >= 1));
    server.wait_for_stdout("[worker] message: mixed");
    let out = server.wait_for_stdout("[ticker] tick");
    assert!(out.contains("[ticker] tick"), "{out}");
}

#[test]
fn unknown_trigger_types_are_refused_by_name() {
    let app = App::new(
        r#"
spin_manifest_version = 2
[application]
name = "unknown"
[[trigger.kafka]]
component = "x"
[component.x]
source = "{http_guest}"
"#,
    );
    let err = Server::try_start(app.path(), &[]).err().expect("must not start");
    assert!(err.contains("kafka") && err.contains("spin.toml:5"), "{err}");
}

#[test]
fn a_command_app_runs_once_with_the_arguments_after_the_separator() {
    let app = App::new(
        r#"
spin_manifest_version = 2
[application]
name = "cmd"
[[trigger.command]]
component = "tool"
[component.tool]
source = "{command_guest}"
environment = { GREETING = "hi" }
"#,
    );
    let out = tessera().args(["up", "-f"]).arg(app.path()).args(["--", "hello", "a b"]).env("TESSERA_CACHE_DIR", cache_dir()).output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello from a command\na b\nargv0=tool\n");
    let out = tessera().args(["up", "-f"]).arg(app.path()).args(["--", "env", "GREETING"]).output().unwrap();
    assert_eq!(text(&out.stdout), "hi\n");
    let out = tessera().args(["up", "-f"]).arg(app.path()).args(["--", "exit", "5"]).output().unwrap();
    assert_eq!(out.status.code(), Some(5));
}

#[test]
fn a_bare_component_is_served_on_every_path_with_nothing_granted() {
    let wasm = guest("http_guest.wasm");
    let server = Server::start(&wasm, &[]);
    assert!(server.stdout.lock().unwrap().contains("http-guest: http://"), "{}", server.stdout.lock().unwrap());
    assert_eq!(server.get("/hello").status, 200);
    assert_eq!(server.get("/any/path").status, 200);
    let env = server.get("/env");
    assert_eq!(env.body.trim(), "", "no environment: {}", env.body);
    let read = server.get("/read?path=/etc/passwd");
    assert_ne!(read.status, 200, "no files: {}", read.body);
    let upstream = upstream("secret");
    let out = server.get(&format!("/outbound?url=http://{upstream}/"));
    assert_ne!(out.status, 200, "no outbound HTTP: {}", out.body);
}

#[test]
fn listen_takes_host_names_and_spin_http_listen_addr() {
    let app = App::new(GUEST_APP);
    let server = app.start(&["--listen", "localhost:0"]);
    assert!(server.addr.ip().is_loopback(), "{}", server.addr);
    assert_eq!(server.get("/hello").status, 200);

    let port = free_port();
    let mut cmd = tessera();
    cmd.args(["up", "-f"]).arg(app.path()).env("SPIN_HTTP_LISTEN_ADDR", format!("127.0.0.1:{port}")).env("TESSERA_CACHE_DIR", cache_dir());
    let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped()).spawn().unwrap();
    let served = eventually(60, || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    let _ = child.kill();
    let _ = child.wait();
    assert!(served, "SPIN_HTTP_LISTEN_ADDR was not honoured");

    let bad = Server::try_start(app.path(), &["--listen", "no-port-here"]).err().expect("must not start");
    assert!(bad.contains("no-port-here") || bad.contains("listen"), "{bad}");
}

#[test]
fn sigterm_drains_in_flight_requests_refuses_new_ones_and_exits_zero() {
    let app = App::new(GUEST_APP);
    let mut server = app.start(&[]);
    let addr = server.addr;
    let slow: Vec<_> = (0..5)
        .map(|_| {
            let url = format!("http://{addr}/sleep?ms=1500");
            std::thread::spawn(move || request("GET", &url, &[], None))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(400));
    server.signal("TERM");
    assert!(server.wait_for_stdout("Shutting down (SIGTERM)").contains("Shutting down"));
    std::thread::sleep(Duration::from_millis(100));
    assert!(std::net::TcpStream::connect(addr).is_err(), "new connections must be refused while draining");
    for s in slow {
        let r = s.join().unwrap();
        assert_eq!(r.status, 200, "an in-flight request was cut off: {}", r.body);
    }
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits after draining");
    assert!(status.success(), "exit status {status}");
}

#[test]
fn a_second_signal_stops_at_once() {
    let app = App::new(GUEST_APP);
    let mut server = app.start(&[]);
    let url = server.url("/sleep?ms=20000");
    let _slow = std::thread::spawn(move || request("GET", &url, &[], None));
    std::thread::sleep(Duration::from_millis(300));
    server.signal("TERM");
    server.wait_for_stdout("Shutting down");
    let started = Instant::now();
    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(5)).expect("a second signal exits at once");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(!status.success(), "cut short is not a clean exit: {status}");
}

#[test]
fn shutdown_waits_for_a_cron_run_in_progress() {
    let app = cron_app("* * * * * *", "SLEEP_MS = \"3000\"");
    let mut server = app.start(&[]);
    // A skipped tick means the first run (3 s long, its line printed at its end) is going.
    server.wait_for_log("still going");
    assert_eq!(count(&server.stdout.lock().unwrap(), "[ticker] tick"), 0);
    server.signal("TERM");
    let status = server.wait_exit(Duration::from_secs(10)).expect("exits");
    assert!(status.success(), "{status}");
    std::thread::sleep(Duration::from_millis(100));
    let ticks = count(&server.stdout.lock().unwrap(), "[ticker] tick");
    assert_eq!(ticks, 1, "the run in progress finished before the exit, and no new one started");
}
