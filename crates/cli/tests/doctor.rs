//! `tessera doctor`: on a machine missing every tool it names each one with its fix and
//! fails; it finds an unbuilt component, a bad runtime config, a taken port and an
//! unusable cache; with the toolchains CI installs, it finds nothing wrong.

mod support;

use support::*;

fn doctor(dir: &std::path::Path, path: Option<&std::path::Path>, args: &[&str]) -> (bool, String) {
    let mut cmd = tessera();
    cmd.current_dir(dir).arg("doctor").args(args);
    if let Some(path) = path {
        cmd.env("PATH", path);
    }
    let out = cmd.output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn a_machine_missing_every_tool_gets_each_fix() {
    let work = tempfile::tempdir().unwrap();
    let empty = tempfile::tempdir().unwrap();
    let (ok, out) = doctor(work.path(), Some(empty.path()), &["--listen", "127.0.0.1:0"]);
    assert!(!ok, "{out}");
    for expected in [
        "PROBLEM  rustup not found",
        "fix: install Rust: https://rustup.rs",
        "PROBLEM  zig not found (template http-c)",
        "fix: pip install ziglang==0.17.0",
        "PROBLEM  wasm-tools not found",
        "fix: cargo install --locked wasm-tools@1.263.0 wit-bindgen-cli@0.63.0",
        "PROBLEM  Python 3.11 or later with venv not found",
        "PROBLEM  Node.js not found (template http-js)",
        "note     no spin.toml here or above",
        "problem(s) found",
    ] {
        assert!(out.contains(expected), "missing `{expected}` in:\n{out}");
    }
}

#[test]
fn app_port_and_cache_problems_are_found_with_their_fixes() {
    let work = tempfile::tempdir().unwrap();
    let out = tessera().current_dir(work.path()).args(["new", "http-rust", "app"]).output().unwrap();
    assert!(out.status.success());
    let app = work.path().join("app");
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken = taken.local_addr().unwrap().to_string();
    std::fs::write(work.path().join("not-a-dir"), "").unwrap();
    let cache = work.path().join("not-a-dir/cache");
    let (ok, out) = doctor(&app, None, &["--listen", &taken, "--cache-dir", cache.to_str().unwrap()]);
    assert!(!ok, "{out}");
    assert!(out.contains("component `app`") && out.contains("does not exist yet") && out.contains("fix: tessera build"), "{out}");
    assert!(out.contains(&format!("PROBLEM  {taken} is in use")) && out.contains("tessera up --listen"), "{out}");
    assert!(out.contains("the compile cache") && out.contains("is not writable") && out.contains("TESSERA_CACHE_DIR"), "{out}");

    // A built app with a runtime config holding an unknown table, then without one.
    std::fs::write(app.join("spin.toml"), std::fs::read_to_string(app.join("spin.toml")).unwrap().replace("source = \"target/wasm32-wasip2/release/app.wasm\"", &format!("source = {:?}", guest("http_guest.wasm").display().to_string()))).unwrap();
    std::fs::write(app.join("rc.toml"), "[key_value_store.default]\ntype = \"redis\"\nurl = \"redis://127.0.0.1:6379\"\n[nosuch]\nx = 1\n").unwrap();
    let (ok, out) = doctor(&app, None, &["--listen", "127.0.0.1:0", "--runtime-config-file", "rc.toml"]);
    assert!(!ok && out.contains("rc.toml:4") && out.contains("nosuch"), "{out}");
    let (ok, out) = doctor(&app, None, &["--listen", "127.0.0.1:0", "--cache-dir", work.path().join("cache").to_str().unwrap()]);
    assert!(out.contains("ok       app `app`") && out.contains("ok       compile cache"), "{out}");
    // CI installs every toolchain, so there nothing is missing.
    if std::env::var_os("CI").is_some() {
        assert!(ok, "{out}");
    }
}
