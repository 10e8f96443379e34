//! Outbound Redis through the Spin SDK (`fermyon:spin/redis@2.0.0`) against a real
//! `redis-server`, allowed only to the addresses in `allowed_outbound_hosts`.

mod support;

use std::time::{Duration, Instant};
use support::*;

fn op(server: &Server, addr: &str, op: &str, key: &str, body: &str) -> Response {
    request("POST", &server.url(&format!("/redis?addr={addr}&op={op}&key={key}")), &[], Some(body.as_bytes()))
}

#[test]
fn redis_commands_run_against_allowed_addresses_only() {
    let Some(mut redis) = Redis::start() else { return };
    let app = App::new(&format!(
        r#"
spin_manifest_version = 2
[application]
name = "redis"
[[trigger.http]]
route = "/..."
component = "spin"
[component.spin]
source = "{{spin_guest}}"
allowed_outbound_hosts = ["redis://127.0.0.1:{}"]
"#,
        redis.port
    ));
    let server = app.start(&[]);
    let addr = redis.url();
    assert_eq!(op(&server, &addr, "set", "greeting", "hello").body, "OK");
    assert_eq!(op(&server, &addr, "get", "greeting", "").body, "hello");
    assert_eq!(op(&server, &addr, "get", "missing", "").body, "(nil)");
    assert_eq!(op(&server, &addr, "incr", "n", "").body, "1");
    assert_eq!(op(&server, &addr, "incr", "n", "").body, "2");
    assert_eq!(op(&server, &addr, "exec", "", "SADD s a b").body, "int:2");
    assert_eq!(op(&server, &addr, "exec", "", "GET greeting").body, "bin:hello");
    let r = op(&server, &addr, "incr", "greeting", "");
    assert_eq!(r.status, 500, "INCR on text is an error value: {}", r.body);

    // Not in allowed_outbound_hosts: refused before any connection, and logged.
    let other = format!("redis://127.0.0.1:{}", free_port());
    let r = op(&server, &other, "get", "k", "");
    assert_eq!((r.status, r.body.as_str()), (403, "invalid-address"));
    let log = server.wait_for_log("allowed_outbound_hosts in [component.spin]");
    assert!(log.contains(&format!("add \"{other}\" to allowed_outbound_hosts in [component.spin]")), "{log}");

    // Server down: an error value quickly; back up: works again without a restart.
    redis.stop();
    let start = Instant::now();
    let r = op(&server, &addr, "get", "greeting", "");
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(start.elapsed() < Duration::from_secs(8));
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    while op(&server, &addr, "get", "greeting", "").body != "hello" {
        assert!(Instant::now() < deadline, "no recovery");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_wildcard_grant_does_not_reach_loopback_redis() {
    let Some(redis) = Redis::start() else { return };
    let app = App::new(
        r#"
spin_manifest_version = 2
[application]
name = "redis-wild"
[[trigger.http]]
route = "/..."
component = "spin"
[component.spin]
source = "{spin_guest}"
allowed_outbound_hosts = ["redis://*:*"]
"#,
    );
    let server = app.start(&[]);
    let r = op(&server, &redis.url(), "get", "k", "");
    assert_eq!((r.status, r.body.as_str()), (403, "invalid-address"));
    let r = op(&server, &format!("redis://localhost:{}", redis.port), "get", "k", "");
    assert_eq!(r.status, 403, "a name resolving to loopback is refused too");
    assert!(server.log().contains("non-public address"));
}
