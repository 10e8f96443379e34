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
    let app = App::spin_sdks("pg", &format!("postgres://127.0.0.1:{}", postgres.port));
    let server = app.start(&[]);
    let addr = postgres.url();
    let r = pg(&server, &addr, "execute", "CREATE TABLE pets (id BIGINT PRIMARY KEY, name TEXT, age INT)", "");
    assert_eq!((r.status, r.body.as_str()), (200, "0\n"), "{}", r.body);
    let r = pg(&server, &addr, "execute", "INSERT INTO pets VALUES ($1, $2, 3), ($3, $4, NULL)", "1|rex|2|tom");
    assert_eq!(r.body, "2\n", "{}", r.body);
    let r = pg(&server, &addr, "query", "SELECT id, name, age FROM pets WHERE id >= $1 ORDER BY id", "1");
    assert_eq!(r.body, "id:DbDataType::Int64|name:DbDataType::Str|age:DbDataType::Int32\n1|rex|3\n2|tom|null\n", "{}", r.body);
    // The older interfaces (spin:postgres@3.0.0 and fermyon:spin/postgres@2.0.0, Spin SDK
    // 5.2) read the same table.
    for route in ["pg3", "pg2"] {
        let r = request("POST", &server.url(&format!("/{route}?addr={addr}&mode=query")), &[("x-params", "2")], Some(b"SELECT name, age FROM pets WHERE id = $1"));
        assert_eq!((r.status, r.body.as_str()), (200, "name|age\ntom|null\n"), "{route}: {}", r.body);
    }
    let r = request("POST", &server.url(&format!("/pg2?addr={addr}&mode=execute")), &[("x-params", "3|ann")], Some(b"INSERT INTO pets VALUES ($1, $2, 1)"));
    assert_eq!((r.status, r.body.as_str()), (200, "1\n"), "{}", r.body);
    let r = pg(&server, &addr, "execute", "DELETE FROM pets WHERE id = $1", "3");
    assert_eq!(r.body, "1\n");
    let r = pg(&server, &addr, "query", "SELECT nonsense FROM pets", "");
    assert_eq!(r.status, 500);
    assert!(r.body.contains("nonsense"), "{}", r.body);

    // Not in allowed_outbound_hosts: refused before connecting, and logged.
    let other = format!("postgres://postgres@127.0.0.1:{}/postgres", free_port());
    let r = pg(&server, &other, "query", "SELECT 1", "");
    assert_eq!(r.status, 502);
    assert!(r.body.contains("not permitted"), "{}", r.body);
    assert!(server.wait_for_log("allowed_outbound_hosts in [component.v3]").contains("add \"postgres://127.0.0.1:"));

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

fn pg_app(postgres: &Postgres) -> App {
    App::new(&format!(
        r#"
spin_manifest_version = 2
[application]
name = "pg"
[[trigger.http]]
route = "/v3/..."
component = "spin3"
[component.spin3]
source = "{{spin3_guest}}"
allowed_outbound_hosts = ["postgres://127.0.0.1:{port}"]
"#,
        port = postgres.port
    ))
}

#[test]
fn numeric_ranges_arrays_and_intervals_round_trip() {
    let Some(postgres) = Postgres::start() else { return };
    let app = pg_app(&postgres);
    let server = app.start(&[]);
    let addr = postgres.url();
    let r = pg(&server, &addr, "execute", "CREATE TABLE t (price NUMERIC(10,2), prices NUMERIC[], r4 INT4RANGE, r8 INT8RANGE, rn NUMRANGE, span INTERVAL)", "");
    assert_eq!(r.body, "0\n");
    let params = "dec:12.50|decs:1.5,2|int4range:1,5|int8range:10,|numrange:0.5,1.5|interval:1500000,3,2";
    let r = pg(&server, &addr, "execute", "INSERT INTO t VALUES ($1, $2, $3, $4, $5, $6)", params);
    assert_eq!(r.body, "1\n", "{}", r.body);
    // PostgreSQL's own text of what was stored: the parameters arrived as the types meant.
    let r = pg(&server, &addr, "query", "SELECT price::text, prices::text, r4::text, r8::text, rn::text, span::text FROM t", "");
    assert_eq!(r.body.lines().nth(1), Some("12.50|{1.5,2}|[1,5)|[10,)|[0.5,1.5)|2 mons 3 days 00:00:01.5"), "{}", r.body);
    // And read back as values.
    let r = pg(&server, &addr, "query", "SELECT price, price * 3 AS tripled, prices, r4, r8, rn, span, 'empty'::int4range AS nothing FROM t", "");
    let lines: Vec<&str> = r.body.lines().collect();
    assert_eq!(
        lines[0],
        "price:DbDataType::Decimal|tripled:DbDataType::Decimal|prices:DbDataType::ArrayDecimal|r4:DbDataType::RangeInt32|r8:DbDataType::RangeInt64|rn:DbDataType::RangeDecimal|span:DbDataType::Interval|nothing:DbDataType::RangeInt32",
        "{}",
        r.body
    );
    assert_eq!(
        lines[1].replace("DbValue::", ""),
        "Decimal(\"12.50\")|Decimal(\"37.50\")|ArrayDecimal([Some(\"1.5\"), Some(\"2\")])|RangeInt32((Some((1, RangeBoundKind::Inclusive)), Some((5, RangeBoundKind::Exclusive))))|RangeInt64((Some((10, RangeBoundKind::Inclusive)), None))|RangeDecimal((Some((\"0.5\", RangeBoundKind::Inclusive)), Some((\"1.5\", RangeBoundKind::Exclusive))))|Interval(Interval { micros: 1500000, days: 3, months: 2 })|RangeInt32((None, None))",
        "{}",
        r.body
    );
    // A decimal that is not one is the parameter's error.
    let r = pg(&server, &addr, "execute", "INSERT INTO t (price) VALUES ($1)", "dec:twelve");
    assert!(r.status == 500 && r.body.contains("BadParameter") && r.body.contains("`twelve` is not a decimal"), "{}", r.body);
}

#[test]
fn a_result_larger_than_the_instance_memory_is_refused_and_the_host_stays_up() {
    let Some(postgres) = Postgres::start() else { return };
    let app = pg_app(&postgres);
    let server = app.start_with_runtime_config("max_instance_memory = \"32MiB\"\n");
    let addr = postgres.url();
    let r = pg(&server, &addr, "query", "SELECT repeat('x', 1048576) FROM generate_series(1, 64)", "");
    assert!(r.status == 500 && r.body.contains("larger than the instance's memory limit"), "{} {}", r.status, r.body);
    assert_eq!(pg(&server, &addr, "query", "SELECT 1::int AS one", "").body, "one:DbDataType::Int32\n1\n");
}

#[test]
fn sslmode_require_connects_with_tls_verified_against_the_builder_s_ca_root() {
    let Some((postgres, ca)) = Postgres::start_tls() else { return };
    let app = App::new(&format!(
        r#"
spin_manifest_version = 2
[application]
name = "pg-tls"
[[trigger.http]]
route = "/v3/..."
component = "spin3"
[component.spin3]
source = "{{spin3_guest}}"
allowed_outbound_hosts = ["postgres://127.0.0.1:{port}"]
files = [{{ source = "ca.pem", destination = "/ca.pem" }}, {{ source = "bad.pem", destination = "/bad.pem" }}]
"#,
        port = postgres.port
    ));
    app.write("ca.pem", &ca).write("bad.pem", "not a certificate\n");
    let server = app.start(&[]);
    let ssl = "SELECT ssl::text AS ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";
    let tls_addr = format!("{}?sslmode=require", postgres.url());
    let with_ca = |ca: &str| request("POST", &server.url(&format!("/v3/pg?addr={tls_addr}&mode=query&ca={ca}")), &[], Some(ssl.as_bytes()));
    let r = with_ca("/ca.pem");
    assert_eq!((r.status, r.body.as_str()), (200, "ssl:DbDataType::Str\ntrue\n"), "{}", r.body);
    // Without the CA root the server's certificate is not trusted.
    let r = pg(&server, &tls_addr, "query", ssl, "");
    assert!(r.status == 502 && r.body.contains("ConnectionFailed") && r.body.to_lowercase().contains("certificate"), "{}", r.body);
    // A CA root that is no certificate is refused by the builder.
    let r = with_ca("/bad.pem");
    assert!(r.status == 502 && r.body.contains("holds no certificate"), "{}", r.body);
    // Without sslmode=require the connection is plain.
    assert_eq!(pg(&server, &postgres.url(), "query", ssl, "").body, "ssl:DbDataType::Str\nfalse\n");
}
