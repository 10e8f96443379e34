//! `tessera new`, `add` and `templates list`: each template (Rust, C, Python, JavaScript)
//! makes an app that `tessera build` builds and `tessera up` serves, outside the repository, components added to an app serve beside
//! it, and bad names, unknown templates and taken directories are refused with nothing
//! written.

mod support;

use std::path::{Path, PathBuf};
use support::*;

fn run_in(dir: &Path, args: &[&str]) -> std::process::Output {
    tessera().current_dir(dir).args(args).output().unwrap()
}

fn ok(out: &std::process::Output) -> String {
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    text
}

fn failed(out: &std::process::Output) -> String {
    assert!(!out.status.success(), "should have failed: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Builds the app (or component) at `dir` into a target directory shared by this test's
/// builds (`dir/target` links to it, where the manifest looks), so dependencies compile once.
fn build(app: &Path, component_dir: &Path) {
    let shared: PathBuf = repo_root().join("target/template-builds");
    std::fs::create_dir_all(&shared).unwrap();
    std::os::unix::fs::symlink(&shared, component_dir.join("target")).unwrap();
    ok(&run_in(app, &["build"]));
}

fn up(app: &Path) -> Server {
    let mut cmd = tessera();
    cmd.current_dir(app).args(["up", "--listen", "127.0.0.1:0", "--cache-dir"]).arg(cache_dir());
    Server::launch(cmd).unwrap()
}

#[test]
fn templates_make_apps_that_build_and_serve_and_add_puts_components_beside() {
    let work = tempfile::tempdir().unwrap();
    let listed = ok(&run_in(work.path(), &["templates", "list"]));
    for id in ["http-rust", "spin-sdk-rust", "redis-rust", "cron-rust"] {
        assert!(listed.lines().any(|l| l.starts_with(id)), "{listed}");
    }

    let created = ok(&run_in(work.path(), &["new", "http-rust", "hello"]));
    assert!(created.contains("cd hello && tessera up --build"), "{created}");
    let app = work.path().join("hello");
    for file in ["spin.toml", "Cargo.toml", "src/lib.rs", "README.md", ".gitignore"] {
        let text = std::fs::read_to_string(app.join(file)).unwrap();
        assert!(!text.contains("{{project-name"), "{file} kept a placeholder: {text}");
    }
    assert!(std::fs::read_to_string(app.join("Cargo.toml")).unwrap().contains("name = \"hello\""));
    build(&app, &app);
    let e = failed(&run_in(&app, &["build", "-c", "nope"]));
    assert!(e.contains("unknown component(s) nope") && e.contains("components are: hello"), "{e}");
    // `build -c ID --up -- UP_ARGS`, as Spin's: builds that one, then serves.
    let mut cmd = tessera();
    cmd.current_dir(&app).args(["build", "-c", "hello", "--up", "--", "--listen", "127.0.0.1:0", "--cache-dir"]).arg(cache_dir());
    let server = Server::launch(cmd).unwrap();
    let r = server.get("/greet");
    assert_eq!((r.status, r.body.as_str()), (200, "Hello from hello! You asked for /greet\n"));
    drop(server);

    // The README's walk-through ends with a push: log in, push, and another machine serves it.
    if let Some(registry) = Registry::start(Some(("me", "secret"))) {
        let machine = Machine::new();
        ok(&machine.run_with_stdin(&["registry", "login", &registry.host(), "-u", "me", "--password-stdin", "-k"], "secret\n"));
        let reference = format!("{}/me/hello:v1", registry.host());
        ok(&machine.run(&["registry", "push", &reference, "-f", app.to_str().unwrap(), "-k"]));
        let elsewhere = Machine::new();
        ok(&elsewhere.run_with_stdin(&["registry", "login", &registry.host(), "-u", "me", "--password-stdin", "-k"], "secret\n"));
        let server = Server::start_with(elsewhere.command(), Path::new(&reference), &["-k"]);
        let r = server.get("/pulled");
        assert_eq!((r.status, r.body.as_str()), (200, "Hello from hello! You asked for /pulled\n"));
    }

    // A Spin SDK component and a cron job added to the app: under their own folders,
    // the HTTP one under /api/.
    ok(&run_in(&app, &["add", "spin-sdk-rust", "api"]));
    ok(&run_in(&app, &["add", "cron-rust", "tick"]));
    let manifest = std::fs::read_to_string(app.join("spin.toml")).unwrap();
    assert!(manifest.contains("route = \"/api/...\"") && manifest.contains("workdir = \"tick\"") && manifest.contains("description = \"An HTTP component in Rust\""), "{manifest}");
    std::os::unix::fs::symlink(repo_root().join("target/template-builds"), app.join("tick/target")).unwrap();
    build(&app, &app.join("api"));
    let server = up(&app);
    assert_eq!(server.get("/api/hello/ada").body, "api got /api/hello/ada\n");
    assert_eq!(server.get("/other").status, 200, "the first component still serves the rest");
    server.wait_for_stdout("[tick] tick ran at");

    // A new app from each other template builds; redis-rust serves its channel.
    let Some(redis) = Redis::start() else { return };
    ok(&run_in(work.path(), &["new", "-t", "redis-rust", "listener"]));
    let listener = work.path().join("listener");
    build(&listener, &listener);
    let mut cmd = tessera();
    cmd.current_dir(&listener).args(["up", "--variable", &format!("redis_address={}", redis.url()), "--cache-dir"]).arg(cache_dir());
    let server = Server::launch(cmd).unwrap();
    while redis.publish("messages", &["hello"]) == 0 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    server.wait_for_stdout("[listener] listener got: hello");
}

/// Whether `program args` runs; outside CI a missing tool skips the test, loudly.
fn tool_runs(program: &str, args: &[&str], install: &str) -> bool {
    if std::process::Command::new(program).args(args).output().is_ok_and(|o| o.status.success()) {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{program} is missing: .ci/run must install it ({install})");
    }
    eprintln!("SKIPPED: {program} is not installed; run {install}");
    false
}

#[test]
fn c_python_and_javascript_templates_build_and_serve() {
    let install = "scripts/install-toolchains.sh";
    let Some(_) = large_guest("examples/hello-js/node_modules/@bytecodealliance/componentize-js/src/cli.js", install) else { return };
    if !tool_runs("python3", &["-m", "ziglang", "version"], install) || !tool_runs("wit-bindgen", &["--version"], install) || !tool_runs("wasm-tools", &["--version"], install) {
        return;
    }
    // One venv with the pinned Python tools and the JS example's node_modules serve every
    // app here, as build-guests does for the examples.
    let venv = std::process::Command::new(repo_root().join("scripts/python-spin-venv.sh")).output().unwrap();
    assert!(venv.status.success(), "{}", String::from_utf8_lossy(&venv.stderr));
    let venv = String::from_utf8(venv.stdout).unwrap().trim().to_string();
    let work = tempfile::tempdir().unwrap();
    for (template, name) in [("http-c", "c-app"), ("http-python", "py-app"), ("http-js", "js-app"), ("spin-sdk-python", "spin-py")] {
        ok(&run_in(work.path(), &["new", template, name]));
        let app = work.path().join(name);
        for file in ["build.sh", "README.md", ".gitignore"] {
            assert!(!std::fs::read_to_string(app.join(file)).unwrap().contains("{{project-name"), "{template}: {file} kept a placeholder");
        }
        if template == "http-js" {
            std::os::unix::fs::symlink(repo_root().join("examples/hello-js/node_modules"), app.join("node_modules")).unwrap();
        }
        // `up --build` as a new user runs it: built, then served at once.
        let mut cmd = tessera();
        cmd.current_dir(&app).env("VIRTUAL_ENV", &venv).args(["up", "--build", "--listen", "127.0.0.1:0", "--cache-dir"]).arg(cache_dir());
        let server = Server::launch(cmd).unwrap_or_else(|e| panic!("{template}: {e}"));
        let r = server.get("/hello/there?x=1");
        let path = if template == "http-js" { "/hello/there" } else { "/hello/there?x=1" };
        assert_eq!((r.status, r.body.as_str()), (200, format!("Hello from {name}! You asked for {path}\n").as_str()), "{template}");
    }

    // Added to an existing app, a Python component gets its WIT in its own folder.
    ok(&run_in(&work.path().join("c-app"), &["add", "http-python", "py"]));
    let app = work.path().join("c-app");
    assert!(app.join("py/wit/deps/http.wit").is_file() && app.join("py/build.sh").is_file());
    let mut cmd = tessera();
    cmd.current_dir(&app).env("VIRTUAL_ENV", &venv).args(["up", "--build", "--listen", "127.0.0.1:0", "--cache-dir"]).arg(cache_dir());
    let server = Server::launch(cmd).unwrap();
    assert_eq!(server.get("/py/x").body, "Hello from py! You asked for /py/x\n");
    assert_eq!(server.get("/other").body, "Hello from c-app! You asked for /other\n");
}

#[test]
fn bad_names_unknown_templates_and_taken_directories_are_refused() {
    let work = tempfile::tempdir().unwrap();
    let e = failed(&run_in(work.path(), &["new", "http-go", "x"]));
    assert!(e.contains("no template `http-go`") && e.contains("http-rust"), "{e}");
    for bad in ["Bad_Name", "1app", "a--b", "../escape"] {
        let e = failed(&run_in(work.path(), &["new", "http-rust", bad]));
        assert!(e.contains("cannot name an app"), "{bad}: {e}");
    }
    std::fs::create_dir(work.path().join("taken")).unwrap();
    std::fs::write(work.path().join("taken/keep.txt"), "mine").unwrap();
    let e = failed(&run_in(work.path(), &["new", "http-rust", "taken"]));
    assert!(e.contains("already exists and is not empty"), "{e}");
    assert_eq!(std::fs::read_dir(work.path().join("taken")).unwrap().count(), 1, "files were written into the taken directory");
    assert_eq!(std::fs::read_dir(work.path()).unwrap().count(), 1, "something was left beside it");

    ok(&run_in(work.path(), &["new", "http-rust", "app"]));
    let app = work.path().join("app");
    let before = std::fs::read_to_string(app.join("spin.toml")).unwrap();
    let e = failed(&run_in(&app, &["add", "http-rust", "app"]));
    assert!(e.contains("already has a component `app`"), "{e}");
    std::fs::create_dir(app.join("docs")).unwrap();
    let e = failed(&run_in(&app, &["add", "http-rust", "docs"]));
    assert!(e.contains("already exists"), "{e}");
    assert_eq!(std::fs::read_to_string(app.join("spin.toml")).unwrap(), before, "a refused add changed the manifest");
    let e = failed(&run_in(work.path(), &["add", "http-rust", "x"]));
    assert!(e.contains("spin.toml"), "{e}");
}
