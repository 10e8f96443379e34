//! The examples under `examples/` served as a new user would serve them.

mod support;

use support::*;

/// The example's component, or `None` (with a loud note) when it was not built here.
/// Under CI every example must be built (`scripts/test.sh --all`).
fn built(example: &str, file: &str) -> Option<std::path::PathBuf> {
    let path = repo_root().join("examples").join(example).join(file);
    if path.is_file() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!("{} is missing: CI must build every example (scripts/build-guests.sh --all)", path.display());
    }
    eprintln!("SKIPPED: {} is not built; run scripts/build-guests.sh --all", path.display());
    None
}

fn serve_example(example: &str) -> Server {
    let logs = tempfile::tempdir().unwrap();
    let server = Server::start(&repo_root().join("examples").join(example), &["--log-dir", logs.path().to_str().unwrap()]);
    std::mem::forget(logs);
    server
}

#[test]
fn hello_rust_serves_from_its_committed_binary() {
    let server = serve_example("hello-rust");
    let r = server.get("/hello");
    assert_eq!((r.status, r.body.as_str()), (200, "Hello from Tessera! You asked for /hello\n"));
    assert!(server.stdout.lock().unwrap().contains(&format!("  hello: http://{} (wildcard)", server.addr)));
}

#[test]
fn hello_python_serves() {
    if built("hello-python", "app.wasm").is_none() {
        return;
    }
    let server = serve_example("hello-python");
    let r = server.get("/hi");
    assert_eq!((r.status, r.body.as_str()), (200, "Hello from Python on Tessera! You asked for /hi\n"));
    let out = server.wait_for_stdout("[hello] python handling /hi");
    assert!(out.contains("[hello] python handling /hi\n"), "{out}");
    // A second start maps the cached machine code instead of compiling 18 MB again.
    drop(server);
    let again = serve_example("hello-python");
    assert!(again.log().contains("loaded from the compile cache"), "{}", again.log());
    assert_eq!(again.get("/again").status, 200);
}

#[test]
fn hello_js_serves() {
    if built("hello-js", "app.wasm").is_none() {
        return;
    }
    let server = serve_example("hello-js");
    let r = server.get("/hi");
    assert_eq!((r.status, r.body.as_str()), (200, "Hello from JavaScript on Tessera! You asked for /hi\n"));
}

#[test]
fn hello_c_serves() {
    if built("hello-c", "hello_c.wasm").is_none() {
        return;
    }
    let server = serve_example("hello-c");
    let r = server.get("/hi");
    assert_eq!((r.status, r.body.as_str()), (200, "Hello from C on Tessera!\n"));
}

#[test]
fn python_kv_keeps_todos_in_the_default_store_and_on_redis() {
    if built("python-kv", "app.wasm").is_none() {
        return;
    }
    // Copy the app so its .spin state starts empty.
    let dir = tempfile::tempdir().unwrap();
    for f in ["spin.toml", "app.wasm", "redis.toml"] {
        std::fs::copy(repo_root().join("examples/python-kv").join(f), dir.path().join(f)).unwrap();
    }
    let server = Server::start(dir.path(), &[]);
    assert_eq!(request("POST", &server.url("/todos"), &[], Some(b"write the docs")).status, 201);
    request("POST", &server.url("/todos"), &[], Some(b"ship it"));
    assert_eq!(server.get("/todos").body, "1. write the docs\n2. ship it\n");
    assert_eq!(request("POST", &server.url("/todos"), &[], Some(b"")).status, 400);
    assert!(dir.path().join(".spin/sqlite_key_value.db").is_file());
    drop(server);

    // The same app on Redis, by changing only the runtime config.
    let Some(redis) = Redis::start() else { return };
    std::fs::write(dir.path().join("redis.toml"), format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{}\"\n", redis.url())).unwrap();
    let rc = dir.path().join("redis.toml");
    let server = Server::start(dir.path(), &["--runtime-config-file", rc.to_str().unwrap()]);
    assert_eq!(server.get("/todos").body, "", "a fresh Redis holds no todos");
    request("POST", &server.url("/todos"), &[], Some(b"on redis"));
    assert_eq!(server.get("/visits").body, "1\n");
    assert_eq!(server.get("/todos").body, "1. on redis\n");
}

#[test]
fn rust_sqlite_keeps_todos_in_the_default_database() {
    let wasm = repo_root().join("examples/rust-sqlite/target/wasm32-wasip2/release/rust_sqlite.wasm");
    assert!(wasm.is_file(), "run scripts/build-guests.sh first: {} is missing", wasm.display());
    let dir = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(repo_root().join("examples/rust-sqlite/spin.toml"))
        .unwrap()
        .replace("target/wasm32-wasip2/release/rust_sqlite.wasm", &wasm.display().to_string());
    std::fs::write(dir.path().join("spin.toml"), manifest).unwrap();
    std::fs::copy(repo_root().join("examples/rust-sqlite/elsewhere.toml"), dir.path().join("elsewhere.toml")).unwrap();
    let server = Server::start(dir.path(), &[]);
    assert_eq!(request("POST", &server.url("/todos"), &[], Some(b"write the docs")).status, 201);
    request("POST", &server.url("/todos"), &[], Some(b"ship it"));
    assert_eq!(request("POST", &server.url("/todos/1/done"), &[], Some(b"")).status, 200);
    assert_eq!(server.get("/todos").body, "1. [x] write the docs\n2. [ ] ship it\n");
    assert!(dir.path().join(".spin/sqlite_db.db").is_file());
    drop(server);
    let rc = dir.path().join("elsewhere.toml");
    let server = Server::start(dir.path(), &["--runtime-config-file", rc.to_str().unwrap()]);
    assert_eq!(server.get("/todos").body, "", "a new database file");
    assert!(dir.path().join("data/todos.db").is_file());
}

#[test]
fn users_api_is_a_rust_api_on_a_python_database_that_survives_a_restart() {
    let Some(db) = built("users-api", "db/db.wasm") else { return };
    let api = repo_root().join("examples/users-api/api/target/wasm32-wasip2/release/users_api.wasm");
    assert!(api.is_file(), "run scripts/build-guests.sh first: {} is missing", api.display());
    // The example's manifest as it is, its sources found where they were built.
    let dir = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(repo_root().join("examples/users-api/spin.toml"))
        .unwrap()
        .replace("api/target/wasm32-wasip2/release/users_api.wasm", &api.display().to_string())
        .replace("db/db.wasm", &db.display().to_string());
    std::fs::write(dir.path().join("spin.toml"), manifest).unwrap();
    let json = [("content-type", "application/json")];
    let server = Server::start(dir.path(), &[]);
    let r = request("POST", &server.url("/users"), &json, Some(br#"{"email": "ada@example.com"}"#));
    assert_eq!((r.status, r.body.as_str(), r.header("location")), (201, r#"{"id":1}"#, Some("/users/1")));
    let r = request("POST", &server.url("/users"), &json, Some(br#"{"email": "ada@example.com"}"#));
    assert_eq!((r.status, r.body.as_str()), (400, r#"{"error":"`ada@example.com` is taken"}"#));
    let r = request("POST", &server.url("/users"), &json, Some(br#"{"email": "not an address"}"#));
    assert_eq!(r.status, 400);
    assert_eq!(server.get("/users/2").status, 404);
    drop(server);

    let server = Server::start(dir.path(), &[]);
    let r = server.get("/users/1");
    assert_eq!(r.status, 200);
    let user: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!((user["id"].as_u64(), user["email"].as_str()), (Some(1), Some("ada@example.com")));
    assert!(user["created_at"].as_str().is_some_and(|t| t.len() == 20 && t.ends_with('Z')), "{user}");
    assert!(dir.path().join(".spin/sqlite_db.db").is_file(), "the parent's default database");

    // Without the inherited grant the Python database gets SQLite's own access-denied.
    drop(server);
    let manifest = std::fs::read_to_string(dir.path().join("spin.toml")).unwrap().replace(", inherit_configuration = [\"sqlite_databases\"]", "");
    std::fs::write(dir.path().join("spin.toml"), manifest).unwrap();
    let server = Server::start(dir.path(), &[]);
    let r = server.get("/users/1");
    assert_eq!(r.status, 404);
    assert!(r.body.contains("the database is unavailable") && r.body.contains("AccessDenied"), "{}", r.body);
    server.wait_for_log("inherit_configuration = [\"sqlite_databases\"]");
}

#[test]
fn calculator_is_a_javascript_front_end_calling_rust() {
    let Some(_) = built("calculator", "frontend/frontend.wasm") else { return };
    let calculator = repo_root().join("examples/calculator/calculator/target/wasm32-wasip2/release/calculator.wasm");
    assert!(calculator.is_file(), "run scripts/build-guests.sh first: {} is missing", calculator.display());
    let server = serve_example("calculator");
    assert_eq!(server.get("/add?a=2&b=40").body, "42\n");
    assert_eq!(server.get("/add?a=-5&b=3").body, "-2\n");
    assert_eq!(server.get("/multiply?a=6&b=7").body, "42\n");
    // The calculator's `result` error crosses as an exception with its message.
    let r = server.get("/multiply?a=65536&b=65536");
    assert_eq!((r.status, r.body.as_str()), (422, "65536 × 65536 does not fit in 32 bits\n"));
    assert_eq!(server.get("/add?a=x&b=1").status, 400);
}

#[test]
fn http_middleware_lets_only_bearers_of_the_token_reach_the_python_app() {
    let Some(_) = built("http-middleware", "app/app.wasm") else { return };
    let auth = repo_root().join("examples/http-middleware/auth/target/wasm32-wasip2/release/auth_middleware.wasm");
    assert!(auth.is_file(), "run scripts/build-guests.sh first: {} is missing", auth.display());
    let server = serve_example("http-middleware");
    let r = server.get("/hi");
    assert_eq!((r.status, r.body.as_str(), r.header("www-authenticate")), (401, "missing or wrong bearer token\n", Some("Bearer")));
    let r = request("GET", &server.url("/hi"), &[("authorization", "Bearer let-me-in")], None);
    assert_eq!((r.status, r.body.as_str()), (200, "Hello, authenticated caller! You asked for /hi\n"));
    let r = request("GET", &server.url("/hi"), &[("authorization", "Bearer guess"), ("x-authenticated", "yes")], None);
    assert_eq!(r.status, 401, "a forged mark does not get past the middleware");
    drop(server);

    // Without the inherited environment the middleware has no token: it refuses everyone.
    let dir = tempfile::tempdir().unwrap();
    let example = repo_root().join("examples/http-middleware");
    let manifest = std::fs::read_to_string(example.join("spin.toml"))
        .unwrap()
        .replace(", inherit_configuration = [\"environment\"]", "")
        .replace("source = \"app/", &format!("source = \"{}/app/", example.display()))
        .replace("source = \"auth/", &format!("source = \"{}/auth/", example.display()));
    std::fs::write(dir.path().join("spin.toml"), manifest).unwrap();
    let server = Server::start(dir.path(), &[]);
    let r = request("GET", &server.url("/hi"), &[("authorization", "Bearer let-me-in")], None);
    assert_eq!(r.status, 401);
    let log = server.wait_for_log("get-environment`: denied");
    assert!(log.contains("dependency `middleware[0]` of component `hello`") && log.contains("inherit_configuration = [\"environment\"]"), "{log}");
}
