//! Key-value stores through the Spin SDK (`fermyon:spin/key-value@2.0.0`) and
//! `wasi:keyvalue`, on the embedded SQLite default and on a real Redis.

mod support;

use std::time::{Duration, Instant};
use support::*;

fn app(extra_component_keys: &str) -> App {
    App::new(&format!(
        r#"
spin_manifest_version = 2
[application]
name = "kv"
[[trigger.http]]
route = "/..."
component = "spin"
[[trigger.http]]
route = "/other/..."
component = "other"
[component.spin]
source = "{{spin_guest}}"
{extra_component_keys}
[component.other]
source = "{{http_guest}}"
"#
    ))
}

fn put(server: &Server, path: &str, body: &[u8]) -> Response {
    request("PUT", &server.url(path), &[], Some(body))
}

#[test]
fn embedded_default_store_round_trips_any_bytes_and_survives_kill_9() {
    let app = app(r#"key_value_stores = ["default"]"#);
    let server = app.start(&[]);
    assert_eq!(put(&server, "/kv/default/bin%2Fkey%20%E2%9C%93", b"unicode key").status, 200);
    assert_eq!(server.get("/kv/default/bin%2Fkey%20%E2%9C%93").body, "unicode key");
    assert_eq!(put(&server, "/kv/default/plain", b"hello").status, 200);
    assert_eq!(server.get("/kv/default/plain").body, "hello");
    assert_eq!(server.get("/kv/default/missing").status, 404);
    // The Spin SDK router hands the key over as it came in the path.
    assert_eq!(server.get("/kv/default").body, "bin%2Fkey%20%E2%9C%93\nplain");
    assert_eq!(request("DELETE", &server.url("/kv/default/plain"), &[], None).status, 200);
    assert_eq!(server.get("/kv/default/plain").status, 404);
    assert_eq!(put(&server, "/kv/default/durable", b"acknowledged").status, 200);

    // SIGKILL, no shutdown: the acknowledged write is on disk where Spin keeps it.
    drop(server);
    assert!(app.path().join(".spin/sqlite_key_value.db").is_file());
    let again = app.start(&[]);
    assert_eq!(again.get("/kv/default/durable").body, "acknowledged");
    assert_eq!(again.get("/kv/default/bin%2Fkey%20%E2%9C%93").body, "unicode key");
}

#[test]
fn binary_values_come_back_byte_for_byte() {
    let app = app(r#"key_value_stores = ["default"]"#);
    let server = app.start(&[]);
    let value: Vec<u8> = (0..=255u8).rev().collect();
    assert_eq!(put(&server, "/wasi-kv/default/bytes", &value).status, 200);
    // Read back over a raw socket: the body is not UTF-8.
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    write!(s, "GET /kv/default/bytes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let body_at = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let body = &raw[body_at..];
    // The guest's response is chunked: find the value inside.
    assert!(body.windows(value.len()).any(|w| w == &value[..]), "value not returned intact");
}

#[test]
fn stores_not_granted_are_denied_and_logged() {
    let app = app(r#"key_value_stores = ["default"]"#);
    let server = app.start(&[]);
    let r = server.get("/kv/secret/x");
    assert_eq!((r.status, r.body.as_str()), (403, "access-denied"));
    assert_eq!(server.get("/wasi-kv/secret/x").status, 403);
    let log = server.wait_for_log("key_value_stores");
    assert!(log.contains("add \"secret\" to key_value_stores in [component.spin]"), "{log}");

    let ungranted = self::app("");
    let server = ungranted.start(&[]);
    assert_eq!(server.get("/kv/default/x").status, 403, "no grant, no store");
}

#[test]
fn a_grant_of_an_undefined_store_fails_at_start() {
    let app = app(r#"key_value_stores = ["default", "cache"]"#);
    let e = match Server::try_start(app.path(), &[]) {
        Ok(_) => panic!("up should fail"),
        Err(e) => e,
    };
    assert!(e.contains("spin.toml:13:32") && e.contains("key-value store `cache`") && e.contains("[key_value_store.cache]"), "{e}");
}

#[test]
fn over_limit_values_are_refused_not_truncated() {
    let app = app(r#"key_value_stores = ["default"]"#);
    app.write("rc.toml", "max_request_body_size = \"32MiB\"\nmax_instance_memory = \"256MiB\"\n");
    let rc = app.path().join("rc.toml");
    let server = app.start(&["--runtime-config-file", rc.to_str().unwrap()]);
    assert_eq!(put(&server, "/kv/default/big", b"small").status, 200);
    let huge = vec![b'x'; (16 << 20) + 1];
    let r = put(&server, "/kv/default/big", &huge);
    assert_eq!(r.status, 500, "{}", &r.body[..r.body.len().min(200)]);
    assert!(r.body.contains("limited to 16777216 bytes"), "{}", r.body);
    assert_eq!(server.get("/kv/default/big").body, "small", "the old value is intact");
    let long_key = "k".repeat(5000);
    let r = put(&server, &format!("/kv/default/{long_key}"), b"v");
    assert!(r.status == 500 && r.body.contains("keys are limited"), "{}", r.body);
}

fn concurrent_increments(server: &Server, store: &str) {
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let url = server.url(&format!("/wasi-kv-incr/{store}/counter"));
            std::thread::spawn(move || {
                for _ in 0..10 {
                    let r = request("POST", &url, &[], Some(b""));
                    assert_eq!(r.status, 200, "{}", r.body);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(request("POST", &server.url(&format!("/wasi-kv-incr/{store}/counter")), &[], Some(b"")).body, "81", "no lost update");

    let threads: Vec<_> = (0..6)
        .map(|_| {
            let url = server.url(&format!("/wasi-kv-cas/{store}/appended"));
            std::thread::spawn(move || {
                for _ in 0..5 {
                    assert_eq!(request("POST", &url, &[], Some(b"")).status, 200);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(server.get(&format!("/wasi-kv/{store}/appended")).body, "x".repeat(30), "compare-and-swap loses nothing");
    let r = request("POST", &server.url(&format!("/wasi-kv-batch/{store}")), &[], Some(b""));
    assert_eq!(r.body, "a=1\nb=2\nc=-\n");
}

#[test]
fn atomics_and_batch_on_the_embedded_store() {
    let app = app(r#"key_value_stores = ["default"]"#);
    let server = app.start(&[]);
    concurrent_increments(&server, "default");
}

#[test]
fn redis_and_sqlite_behind_the_same_app_and_redis_outages() {
    let Some(mut redis) = Redis::start() else { return };
    let app = app(r#"key_value_stores = ["default", "cache"]"#);
    app.write("rc.toml", &format!("[key_value_store.cache]\ntype = \"redis\"\nurl = \"{}\"\n", redis.url()));
    let rc = app.path().join("rc.toml");
    let server = app.start(&["--runtime-config-file", rc.to_str().unwrap()]);

    assert_eq!(put(&server, "/kv/cache/k", b"in redis").status, 200);
    assert_eq!(put(&server, "/kv/default/k", b"in sqlite").status, 200);
    assert_eq!(server.get("/kv/cache/k").body, "in redis");
    assert_eq!(server.get("/kv/default/k").body, "in sqlite");
    concurrent_increments(&server, "cache");

    // Redis down: an error value, quickly, and the rest of the app is unaffected.
    redis.stop();
    let start = Instant::now();
    let r = server.get("/kv/cache/k");
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(r.body.contains("redis"), "{}", r.body);
    assert!(start.elapsed() < Duration::from_secs(8), "{:?}", start.elapsed());
    assert_eq!(server.get("/kv/default/k").body, "in sqlite");

    // Back up: the host reconnects by itself (AOF kept the data).
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = server.get("/kv/cache/k");
        if r.status == 200 {
            assert_eq!(r.body, "in redis");
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {}", r.body);
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn runtime_config_errors_point_at_the_table() {
    let app = app(r#"key_value_stores = ["default"]"#);
    app.write("rc.toml", "\n[key_value_store.default]\ntype = \"azure_cosmos\"\n");
    let rc = app.path().join("rc.toml");
    let e = match Server::try_start(app.path(), &["--runtime-config-file", rc.to_str().unwrap()]) {
        Ok(_) => panic!("up should fail"),
        Err(e) => e,
    };
    assert!(e.contains("rc.toml:2:1") && e.contains("`azure_cosmos` is not supported yet"), "{e}");
}

#[test]
fn the_current_sdk_async_interface_shares_the_same_stores() {
    let app = App::new(
        r#"
spin_manifest_version = 2
[application]
name = "kv3"
[[trigger.http]]
route = "/..."
component = "spin"
[[trigger.http]]
route = "/v3/..."
component = "spin3"
[component.spin]
source = "{spin_guest}"
key_value_stores = ["default"]
[component.spin3]
source = "{spin3_guest}"
key_value_stores = ["default"]
"#,
    );
    let server = app.start(&[]);
    // Written through fermyon:spin/key-value@2.0.0, read through spin:key-value@3.0.0.
    assert_eq!(put(&server, "/kv/default/shared", b"one store").status, 200);
    let r = server.get("/v3/kv/default/shared");
    assert_eq!((r.status, r.body.as_str()), (200, "one store"));
    assert_eq!(request("PUT", &server.url("/v3/kv/default/from-v3"), &[], Some(b"async")).status, 200);
    assert_eq!(server.get("/kv/default/from-v3").body, "async");
    // get-keys streams the keys.
    assert_eq!(server.get("/v3/kv/default").body, "from-v3\nshared");
    assert_eq!(server.get("/v3/kv/default/missing").status, 404);
    assert_eq!(server.get("/v3/kv/other/x").status, 403);
}

#[test]
fn a_plain_wasi_keyvalue_and_config_guest_works_on_both_backends() {
    let Some(redis) = Redis::start() else { return };
    let app = App::new(
        r#"
spin_manifest_version = 2
[application]
name = "plain-wasi"
[variables]
region = { default = "eu-west" }
[[trigger.http]]
route = "/..."
component = "plain"
[component.plain]
source = "{wasi_guest}"
key_value_stores = ["default", "cache"]
variables = { region = "{{ region }}" }
"#,
    );
    app.write("rc.toml", &format!("[key_value_store.cache]\ntype = \"redis\"\nurl = \"{}\"\n", redis.url()));
    let rc = app.path().join("rc.toml");
    let server = app.start(&["--runtime-config-file", rc.to_str().unwrap()]);
    assert_eq!(server.get("/config/region").body, "eu-west");
    assert_eq!(server.get("/config/missing").status, 404);
    for bucket in ["default", "cache"] {
        assert_eq!(server.get(&format!("/count/{bucket}/hits")).body, "1");
        assert_eq!(server.get(&format!("/count/{bucket}/hits")).body, "2");
        assert_eq!(server.get(&format!("/get/{bucket}/hits")).body, "2", "counters read back as decimal text");
    }
    assert_eq!(server.get("/count/secret/hits").status, 403);
}
