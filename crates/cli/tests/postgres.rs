//! Outbound PostgreSQL through the current Spin SDK (`spin:postgres@4.2.0`) against a real
//! server, allowed only to the addresses in `allowed_outbound_hosts`.

mod support;

use std::time::{Duration, Instant};
use support::*;

fn pg(server: &Server, addr: &str, mode: &str, statement: &str, params: &str) -> Response {
    let headers: Vec<(&str, &str)> = if params.is_empty() { vec![] } else { vec![("x-params", params)] };
    request("POST", &server.url(&format!("/v3/pg?addr={addr}&mode={mode}")), &headers, Some(statement.as_bytes()))
}

#[test]
fn queries_run_against_allowed_addresses_and_survive_an_outage() {
    let Some(mut postgres) = Postgres::start() else { return };
    let app = App::new(&format!(
        r#"
spin_manifest_version = 2
[application]
name = "pg"
[[trigger.http]]
route = "/v3/..."
component = "spin3"
[[trigger.http]]
route = "/..."
component = "spin"
[component.spin3]
source = "{{spin3_guest}}"
allowed_outbound_hosts = ["postgres://127.0.0.1:{port}"]
[component.spin]
source = "{{spin_guest}}"
allowed_outbound_hosts = ["postgres://127.0.0.1:{port}"]
"#,
        port = postgres.port
    ));
    let server = app.start(&[]);
    let addr = postgres.url();
    let r = pg(&server, &addr, "execute", "CREATE TABLE pets (id BIGINT PRIMARY KEY, name TEXT, age INT)", "");
    assert_eq!((r.status, r.body.as_str()), (200, "0\n"), "{}", r.body);
    let r = pg(&server, &addr, "execute", "INSERT INTO pets VALUES ($1, $2, 3), ($3, $4, NULL)", "1|rex|2|tom");
    assert_eq!(r.body, "2\n", "{}", r.body);
    let r = pg(&server, &addr, "query", "SELECT id, name, age FROM pets WHERE id >= $1 ORDER BY id", "1");
    assert_eq!(r.body, "id:DbDataType::Int64|name:DbDataType::Str|age:DbDataType::Int32\n1|rex|3\n2|tom|null\n", "{}", r.body);
    // The older interface (spin:postgres@3.0.0, Spin SDK 5.2) reads the same table.
    let r = request("POST", &server.url(&format!("/pg3?addr={addr}&mode=query")), &[("x-params", "2")], Some(b"SELECT name, age FROM pets WHERE id = $1"));
    assert_eq!((r.status, r.body.as_str()), (200, "name|age\ntom|null\n"), "{}", r.body);
    let r = pg(&server, &addr, "query", "SELECT nonsense FROM pets", "");
    assert_eq!(r.status, 500);
    assert!(r.body.contains("nonsense"), "{}", r.body);

    // Not in allowed_outbound_hosts: refused before connecting, and logged.
    let other = format!("postgres://postgres@127.0.0.1:{}/postgres", free_port());
    let r = pg(&server, &other, "query", "SELECT 1", "");
    assert_eq!(r.status, 502);
    assert!(r.body.contains("not permitted"), "{}", r.body);
    assert!(server.wait_for_log("allowed_outbound_hosts in [component.spin3]").contains("add \"postgres://127.0.0.1:"));

    // Down: an error value, quickly; back: the host reconnects by itself.
    postgres.stop();
    let start = Instant::now();
    let r = pg(&server, &addr, "query", "SELECT 1", "");
    assert!(r.status >= 500, "{}", r.body);
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    postgres.restart();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let r = pg(&server, &addr, "query", "SELECT name FROM pets WHERE id = $1", "1");
        if r.status == 200 {
            assert_eq!(r.body, "name:DbDataType::Str\nrex\n");
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {}", r.body);
        std::thread::sleep(Duration::from_millis(300));
    }
}
