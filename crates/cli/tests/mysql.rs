//! Outbound MySQL through the Spin SDKs (`fermyon:spin/mysql@2.0.0` from SDK 5.2,
//! `spin:mysql@3.0.0` from SDK 7) against a real MariaDB, allowed only to the servers in
//! `allowed_outbound_hosts`.

mod support;

use std::time::{Duration, Instant};
use support::*;

fn app(db: &Mariadb) -> App {
    App::spin_sdks("mysql", &format!("mysql://127.0.0.1:{}", db.port))
}

/// Runs `statement` through the guest at `route` (`/mysql` for SDK 5.2, `/v3/mysql` for 7).
fn sql(server: &Server, route: &str, address: &str, mode: &str, statement: &str, params: &str) -> Response {
    let headers = [("x-mysql-address", address), ("x-params", params)];
    request("POST", &server.url(&format!("{route}?mode={mode}")), &headers, Some(statement.as_bytes()))
}

const TABLE: &str = "CREATE TABLE pets (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(40) NOT NULL, age TINYINT UNSIGNED, \
    weight DOUBLE, born DATE, seen DATETIME(3), price DECIMAL(8,2), photo VARBINARY(8), legs BIGINT UNSIGNED, notes TEXT)";

#[test]
fn spin_sdk_components_query_mysql_with_every_column_type() {
    let Some(db) = Mariadb::start() else { return };
    let app = app(&db);
    let server = app.start(&[]);
    let url = db.url();
    for route in ["/mysql", "/v3/mysql"] {
        let r = sql(&server, route, &url, "execute", "DROP TABLE IF EXISTS pets", "");
        assert_eq!(r.body, "done", "{route}");
        assert_eq!(sql(&server, route, &url, "execute", TABLE, "").body, "done", "{route}");
        let insert = "INSERT INTO pets (name, age, weight, born, seen, price, photo, legs, notes) VALUES (?, ?, 4.5, '2020-02-29', '2024-05-06 07:08:09.123', 12.50, X'CAFE', 18446744073709551615, ?)";
        assert_eq!(sql(&server, route, &url, "execute", insert, "Rex|7|null").body, "done", "{route}");
        assert_eq!(sql(&server, route, &url, "execute", insert, "Tom|12|indoor cat").body, "done", "{route}");
        let r = sql(&server, route, &url, "query", "SELECT id, name, age, weight, born, seen, price, photo, legs, notes FROM pets WHERE age > ? ORDER BY id", "5");
        assert_eq!(r.status, 200, "{route}: {}", r.body);
        let lines: Vec<&str> = r.body.lines().collect();
        assert_eq!(
            lines[0],
            "id:Int32|name:Str|age:Uint8|weight:Floating64|born:Str|seen:Str|price:Str|photo:Binary|legs:Uint64|notes:Str",
            "{route}"
        );
        assert_eq!(lines[1], "1|Rex|7|4.5|2020-02-29|2024-05-06 07:08:09.123000|12.50|bin:cafe|18446744073709551615|null", "{route}");
        assert_eq!(lines[2], "2|Tom|12|4.5|2020-02-29|2024-05-06 07:08:09.123000|12.50|bin:cafe|18446744073709551615|indoor cat", "{route}");
        assert_eq!(lines.len(), 3, "{route}");
        // The server's own error, with its code.
        let r = sql(&server, route, &url, "query", "SELECT * FROM missing", "");
        assert!(r.status == 500 && r.body.contains("QueryFailed") && r.body.contains("MySQL error 1146"), "{route}: {}", r.body);
    }
    assert_eq!(db.sql("SELECT COUNT(*) FROM app.pets").trim(), "2", "the writes reached the server");

    // Not granted: refused before any connection, and the log names the entry to add.
    let other = format!("mysql://{}:{}@127.0.0.1:{}/app", Mariadb::USER, Mariadb::PASSWORD, free_port());
    for route in ["/mysql", "/v3/mysql"] {
        let r = sql(&server, route, &other, "query", "SELECT 1", "");
        assert!(r.status == 502 && r.body.contains("ConnectionFailed") && r.body.contains("is not permitted by allowed_outbound_hosts"), "{route}: {}", r.body);
    }
    server.wait_for_log_lines("may not connect to mysql://", 2);
    let log = server.log();
    assert!(log.contains("to allowed_outbound_hosts in [component.v2]") && log.contains("[component.v3]"), "{log}");
    // A wrong password and a malformed address are connection failures that say so.
    let wrong = url.replace(Mariadb::PASSWORD, "wrong");
    let r = sql(&server, "/mysql", &wrong, "query", "SELECT 1", "");
    assert!(r.status == 502 && r.body.contains("Access denied"), "{}", r.body);
    let r = sql(&server, "/v3/mysql", "postgres://127.0.0.1/app", "query", "SELECT 1", "");
    assert!(r.status == 502 && r.body.contains("write it as mysql://"), "{}", r.body);
}

#[test]
fn a_mysql_server_killed_and_restarted_under_the_app_is_used_again() {
    let Some(mut db) = Mariadb::start() else { return };
    let app = app(&db);
    let server = app.start(&[]);
    let url = db.url();
    for route in ["/mysql", "/v3/mysql"] {
        assert_eq!(sql(&server, route, &url, "query", "SELECT 41 + 1 AS answer", "").body, "answer:Int32\n42\n", "{route}");
    }
    db.kill();
    let started = Instant::now();
    let r = sql(&server, "/mysql", &url, "query", "SELECT 1", "");
    assert!(r.status == 502 && r.body.contains("cannot connect"), "{} {}", r.status, r.body);
    assert!(started.elapsed() < Duration::from_secs(8), "a dead server is an error within seconds");
    db.restart();
    // Pooled connections died with the server: the first request after it is back works.
    for route in ["/mysql", "/v3/mysql"] {
        let r = sql(&server, route, &url, "query", "SELECT 41 + 1 AS answer", "");
        assert_eq!(r.body, "answer:Int32\n42\n", "{route}");
    }
}

#[test]
fn a_result_larger_than_the_instance_memory_is_refused_and_the_host_stays_up() {
    let Some(db) = Mariadb::start() else { return };
    let app = app(&db);
    let server = app.start_with_runtime_config("max_instance_memory = \"32MiB\"\n");
    let url = db.url();
    // 64 rows of 1 MiB: twice the limit.
    let huge = "SELECT REPEAT('x', 1048576) FROM seq_1_to_64";
    for route in ["/mysql", "/v3/mysql"] {
        let r = sql(&server, route, &url, "query", huge, "");
        assert!(r.status == 500 && r.body.contains("larger than the instance's memory limit"), "{route}: {} {}", r.status, r.body);
        // The connection was drained and goes back to the pool usable.
        assert_eq!(sql(&server, route, &url, "query", "SELECT 1 AS one", "").body, "one:Int32\n1\n", "{route}");
    }
}

#[test]
fn an_instance_holding_every_pooled_connection_gets_a_clear_error_and_the_pool_recovers() {
    let Some(db) = Mariadb::start() else { return };
    let app = app(&db);
    let server = app.start_with_runtime_config("request_timeout = \"30s\"\n");
    let url = db.url();
    // 31 held plus the query's own: all 32 of the component's connections, which works.
    let headers = [("x-mysql-address", url.as_str()), ("x-params", "")];
    let post = |held: usize| request("POST", &server.url(&format!("/mysql?mode=query&held={held}")), &headers, Some(b"SELECT 7 AS n"));
    assert_eq!(post(31).body, "n:Int32\n7\n");
    // One more waits for a free connection, and after 5 s says why there is none.
    let started = Instant::now();
    let r = post(32);
    assert_eq!(r.status, 502, "{}", r.body);
    assert!(r.body.contains("all 32 of this component's connections are open (close those no longer used)"), "{}", r.body);
    assert!(started.elapsed() >= Duration::from_secs(5) && started.elapsed() < Duration::from_secs(15));
    // The connections went back to the pool with the instance: the next request is served.
    assert_eq!(sql(&server, "/mysql", &url, "query", "SELECT 8 AS n", "").body, "n:Int32\n8\n");
}

#[test]
fn ssl_mode_required_connects_with_tls_and_verifies_the_certificate() {
    let Some(db) = Mariadb::start_tls() else { return };
    let app = app(&db);
    let server = app.start(&[]);
    let url = db.url();
    // Without ssl-mode the connection is plain, as in Spin.
    assert_eq!(sql(&server, "/mysql", &url, "query", "SELECT 1 AS n", "").body, "n:Int32\n1\n");
    // With it, the handshake is TLS and the server's certificate must be trusted; the test
    // CA is not, so both SDKs get connection-failed naming the certificate.
    for route in ["/mysql", "/v3/mysql"] {
        let r = sql(&server, route, &format!("{url}?ssl-mode=REQUIRED"), "query", "SELECT 1 AS n", "");
        assert!(r.status == 502 && r.body.to_lowercase().contains("certificate"), "{route}: {} {}\n{}", r.status, r.body, server.log());
    }
    // A server without TLS is refused under ssl-mode=REQUIRED rather than used in plain.
    let Some(plain) = Mariadb::start() else { return };
    let r = sql(&server, "/mysql", &format!("{}?ssl-mode=REQUIRED", plain.url()), "query", "SELECT 1", "");
    assert_eq!(r.status, 502, "{}", r.body);
}
