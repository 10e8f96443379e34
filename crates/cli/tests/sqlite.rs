//! SQLite databases through the Spin SDK (`fermyon:spin/sqlite@2.0.0` and
//! `spin:sqlite@3.0.0`), on the embedded default file.

mod support;

use support::*;

fn sql(server: &Server, path: &str, statement: &str, params: &str) -> Response {
    let headers: Vec<(&str, &str)> = if params.is_empty() { vec![] } else { vec![("x-params", params)] };
    request("POST", &server.url(path), &headers, Some(statement.as_bytes()))
}

const APP: &str = r#"
spin_manifest_version = 2
[application]
name = "sql"
[[trigger.http]]
route = "/..."
component = "spin"
[component.spin]
source = "{spin_guest}"
sqlite_databases = ["default"]
"#;

#[test]
fn statements_round_trip_and_commits_survive_kill_9() {
    let app = App::new(APP);
    let server = app.start(&[]);
    let r = sql(&server, "/sql/default", "CREATE TABLE todo (id INTEGER PRIMARY KEY, title TEXT NOT NULL, done INTEGER)", "");
    assert_eq!(r.status, 200, "{}", r.body);
    let r = sql(&server, "/sql3/default", "INSERT INTO todo (title, done) VALUES (?, ?)", "write tests|0");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!((r.header("x-rowid"), r.header("x-changes")), (Some("1"), Some("1")));
    sql(&server, "/sql/default", "INSERT INTO todo (title, done) VALUES (?, ?)", "ship it|1");
    let r = sql(&server, "/sql/default", "SELECT id, title, done FROM todo WHERE done = ? OR title LIKE ?", "1|write%");
    assert_eq!(r.body, "id|title|done\n1|write tests|0\n2|ship it|1\n");

    // Bad SQL is an error value with SQLite's message.
    let r = sql(&server, "/sql/default", "SELEC nonsense", "");
    assert_eq!(r.status, 500);
    assert!(r.body.contains("Io") && r.body.contains("syntax error"), "{}", r.body);

    drop(server); // SIGKILL
    assert!(app.path().join(".spin/sqlite_db.db").is_file());
    let again = app.start(&[]);
    let r = sql(&again, "/sql/default", "SELECT count(*) AS n FROM todo", "");
    assert_eq!(r.body, "n\n2\n");
}

#[test]
fn databases_not_granted_are_denied() {
    let app = App::new(APP);
    let server = app.start(&[]);
    assert_eq!(sql(&server, "/sql/other", "SELECT 1", "").status, 403);
    assert_eq!(sql(&server, "/sql3/other", "SELECT 1", "").status, 403);
    let log = server.wait_for_log("sqlite_databases");
    assert!(log.contains("add \"other\" to sqlite_databases in [component.spin]"), "{log}");
}

#[test]
fn named_databases_come_from_the_runtime_config() {
    let app = App::new(&APP.replace(r#"sqlite_databases = ["default"]"#, r#"sqlite_databases = ["default", "audit"]"#));
    let e = match Server::try_start(app.path(), &[]) {
        Ok(_) => panic!("an undefined database must fail at start"),
        Err(e) => e,
    };
    assert!(e.contains("SQLite database `audit`") && e.contains("[sqlite_database.audit]"), "{e}");

    app.write("rc.toml", "[sqlite_database.audit]\ntype = \"spin\"\npath = \"data/audit.db\"\n");
    let rc = app.path().join("rc.toml");
    let server = app.start(&["--runtime-config-file", rc.to_str().unwrap()]);
    assert_eq!(sql(&server, "/sql/audit", "CREATE TABLE t (x)", "").status, 200);
    assert!(app.path().join("data/audit.db").is_file());
    // Separate files: the table is not in the default database.
    assert_eq!(sql(&server, "/sql/default", "SELECT * FROM t", "").status, 500);
}

#[test]
fn the_current_sdk_async_interface_reads_the_same_database() {
    let app = App::new(&format!(
        "{APP}[[trigger.http]]\nroute = \"/v3/...\"\ncomponent = \"spin3\"\n[component.spin3]\nsource = \"{{spin3_guest}}\"\nsqlite_databases = [\"default\"]\n"
    ));
    let server = app.start(&[]);
    sql(&server, "/sql/default", "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)", "");
    sql(&server, "/sql/default", "INSERT INTO notes (body) VALUES (?)", "from v2");
    // spin:sqlite@3.1.0: open-async, execute-async (rows as a stream), then the counters.
    let r = request("POST", &server.url("/v3/sql/default"), &[], Some(b"INSERT INTO notes (body) VALUES ('from v3')"));
    assert_eq!((r.status, r.body.as_str()), (200, "\nrowid=2 changes=1\n"));
    let r = request("POST", &server.url("/v3/sql/default"), &[], Some(b"SELECT id, body FROM notes ORDER BY id"));
    assert_eq!(r.body, "id|body\n1|from v2\n2|from v3\nrowid=0 changes=0\n");
    let r = request("POST", &server.url("/v3/sql/other"), &[], Some(b"SELECT 1"));
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("AccessDenied"), "{}", r.body);
}

#[test]
fn guests_cannot_reach_other_host_files_through_sql() {
    let app = App::new(APP);
    let server = app.start(&[]);
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("stolen.db");
    let attach = format!("ATTACH DATABASE '{}' AS other", target.display());
    let r = sql(&server, "/sql/default", &attach, "");
    assert_eq!(r.status, 500, "{}", r.body);
    let vacuum = format!("VACUUM INTO '{}'", target.display());
    let r = sql(&server, "/sql/default", &vacuum, "");
    assert_eq!(r.status, 500, "{}", r.body);
    assert!(!target.exists(), "no file was written outside the database");
}
