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
