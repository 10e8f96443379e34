//! `tessera run` as a user runs it: a `wasi:cli/command` component and a WASI preview 1
//! module, exit codes as `wasmtime run` gives them, stdio, arguments, `--dir`, `--env`,
//! deny-by-default networking, limits that name their flag, `--invoke`, and hostile
//! commands (loops, memory, recursion, output floods, escapes), each contained.

mod support;

use std::io::Write as _;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn run(args: &[&str]) -> Output {
    tessera().arg("run").args(args).env("TESSERA_CACHE_DIR", cache_dir()).output().unwrap()
}

fn command() -> String {
    guest("command_guest.wasm").display().to_string()
}

fn code(out: &Output) -> i32 {
    out.status.code().expect("exited, not killed")
}

fn stderr(out: &Output) -> String {
    text(&out.stderr)
}

#[test]
fn a_command_gets_its_arguments_and_argv0() {
    let c = command();
    let out = run(&[&c, "hello", "one", "two words"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(text(&out.stdout), "hello from a command\none\ntwo words\nargv0=command_guest.wasm\n", "argv[0] is the file name, as with wasmtime run");
    // `--` separates tessera's flags from the command's, as with `wasmtime run`.
    let out = run(&["--max-memory", "64MiB", &c, "--", "hello", "--not-a-flag"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(text(&out.stdout).contains("\n--not-a-flag\n"), "{}", text(&out.stdout));
}

#[test]
fn a_wasi_0_3_command_runs_through_wasi_cli_run_0_3() {
    let c = guest("p3_command_guest.wasm").display().to_string();
    let out = run(&[&c, "one", "two"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(text(&out.stdout), "hello from a WASI 0.3 command\none\ntwo\n");
    assert_eq!(code(&run(&[&c, "fail"])), 1, "`run` returning Err gives 1");
}

#[test]
fn exit_codes_are_those_of_wasmtime_run() {
    let c = command();
    assert_eq!(code(&run(&[&c, "exit", "7"])), 7);
    assert_eq!(code(&run(&[&c, "exit", "0"])), 0);
    // `std::process::exit` of Rust's wasm32-wasip2 std calls `exit(err)`, which carries no
    // code: 1, as under `wasmtime run`.
    assert_eq!(code(&run(&[&c, "exit-std", "7"])), 1);
    let failed = run(&[&c, "fail"]);
    assert_eq!(code(&failed), 1, "`run` returning Err gives 1: {}", stderr(&failed));
    let trapped = run(&[&c, "panic"]);
    assert_eq!(code(&trapped), 134, "{}", stderr(&trapped));
    let log = stderr(&trapped);
    assert!(log.contains("panicking on purpose"), "the guest's own message: {log}");
    assert!(log.contains("wasm backtrace") && log.contains("unreachable"), "the trap and its guest backtrace: {log}");
}

#[test]
fn stdin_is_the_process_stdin() {
    let mut child = tessera()
        .args(["run", &command(), "stdin"])
        .env("TESSERA_CACHE_DIR", cache_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"piped in\nsecond line\n").unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(text(&out.stdout), "piped in\nsecond line\n");
}

#[test]
fn only_the_environment_given_is_visible() {
    let c = command();
    let out = tessera()
        .args(["run", "--env", "GIVEN=yes", "--env", "FROM_HOST", &c, "env-count"])
        .env("TESSERA_CACHE_DIR", cache_dir())
        .env("FROM_HOST", "host value")
        .env("SECRET_OF_THE_HOST", "nope")
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "2\n", "{}", stderr(&out));
    let out = tessera()
        .args(["run", "--env", "FROM_HOST", &c, "env", "FROM_HOST"])
        .env("TESSERA_CACHE_DIR", cache_dir())
        .env("FROM_HOST", "host value")
        .output()
        .unwrap();
    assert_eq!(text(&out.stdout), "host value\n");
    let hidden = tessera().args(["run", &c, "env", "SECRET_OF_THE_HOST"]).env("SECRET_OF_THE_HOST", "nope").output().unwrap();
    assert_eq!(text(&hidden.stdout), "unset\n");
    let inherited = tessera().args(["run", "--inherit-env", &c, "env", "SECRET_OF_THE_HOST"]).env("SECRET_OF_THE_HOST", "seen").output().unwrap();
    assert_eq!(text(&inherited.stdout), "seen\n");
}

#[test]
fn dirs_are_preopened_read_write_or_read_only_and_nothing_else_is_visible() {
    let c = command();
    let host = tempfile::tempdir().unwrap();
    std::fs::write(host.path().join("in.txt"), "from the host\n").unwrap();
    let dir = host.path().display().to_string();

    let out = run(&["--dir", &format!("{dir}::/data"), &c, "cat", "/data/in.txt"]);
    assert_eq!(text(&out.stdout), "from the host\n", "{}", stderr(&out));
    let out = run(&["--dir", &format!("{dir}::/data"), &c, "write", "/data/out.txt", "written"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(host.path().join("out.txt")).unwrap(), "written");

    // Read-only: reads work, writes fail and change nothing.
    let out = run(&["--dir", &format!("{dir}::/data::ro"), &c, "cat", "/data/in.txt"]);
    assert_eq!(text(&out.stdout), "from the host\n");
    let out = run(&["--dir", &format!("{dir}::/data::ro"), &c, "write", "/data/in.txt", "overwritten"]);
    assert_eq!(code(&out), 2, "a write to a read-only dir must fail: {}", stderr(&out));
    assert_eq!(std::fs::read_to_string(host.path().join("in.txt")).unwrap(), "from the host\n");

    // Escapes: `..` out of the preopen, an absolute path, a symlink pointing out.
    std::os::unix::fs::symlink("/etc", host.path().join("etc-link")).unwrap();
    for path in ["/data/../../etc/passwd", "/etc/passwd", "/data/etc-link/passwd"] {
        let out = run(&["--dir", &format!("{dir}::/data"), &c, "cat", path]);
        assert_eq!(code(&out), 2, "{path} must not be readable: {}", text(&out.stdout));
        assert!(!text(&out.stdout).contains("root:"), "{path} leaked the host's file");
    }
    let out = run(&[&c, "ls", "/"]);
    assert_eq!(code(&out), 2, "no directory is visible without --dir: {}", text(&out.stdout));

    let missing = run(&["--dir", "/no/such/dir", &c, "hello"]);
    assert_eq!(code(&missing), 1);
    assert!(stderr(&missing).contains("--dir /no/such/dir") && stderr(&missing).contains("not a directory"), "{}", stderr(&missing));
}

#[test]
fn the_network_is_denied_unless_allowed() {
    let c = command();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    std::thread::spawn(move || for _ in listener.incoming() {});

    let denied = run(&[&c, "tcp", &addr]);
    assert_eq!(code(&denied), 3, "TCP is off by default: {}", text(&denied.stdout));
    // A wildcard does not reach loopback: private addresses must be named.
    let wildcard = run(&["--allow-outbound", "*://*:*", &c, "tcp", &addr]);
    assert_eq!(code(&wildcard), 3, "{}", text(&wildcard.stdout));
    assert!(stderr(&wildcard).contains(&format!("--allow-outbound tcp://{addr}")), "the log names the flag: {}", stderr(&wildcard));
    let allowed = run(&["--allow-outbound", &format!("tcp://{addr}"), &c, "tcp", &addr]);
    assert_eq!(text(&allowed.stdout), "connected\n", "{}", stderr(&allowed));
    // The explicit opt-out, as `wasmtime run -S inherit-network`.
    let inherited = run(&["--inherit-network", &c, "tcp", &addr]);
    assert_eq!(text(&inherited.stdout), "connected\n", "{}", stderr(&inherited));

    let upstream = upstream("hi");
    let url = format!("http://{upstream}/");
    let denied = run(&[&c, "http", &url]);
    assert_eq!(code(&denied), 3, "{}", text(&denied.stdout));
    assert!(text(&denied.stderr).contains("HttpRequestDenied") || text(&denied.stderr).contains("denied"), "{}", stderr(&denied));
    let allowed = run(&["--allow-outbound", &format!("http://{upstream}"), &c, "http", &url]);
    assert_eq!(text(&allowed.stdout), "status 200\n", "{}", stderr(&allowed));

    let bad = run(&["--allow-outbound", "example.com", &c, "hello"]);
    assert_eq!(code(&bad), 1);
    assert!(stderr(&bad).contains("--allow-outbound example.com") && stderr(&bad).contains("no scheme"), "{}", stderr(&bad));
}

#[test]
fn hostile_commands_are_stopped_and_the_limit_is_named() {
    let c = command();
    let started = Instant::now();
    let spin = run(&["--timeout", "1s", &c, "loop"]);
    assert_eq!(code(&spin), 134, "{}", stderr(&spin));
    assert!(started.elapsed() < Duration::from_secs(20), "a spinning command must be stopped at --timeout");
    assert!(stderr(&spin).contains("ran past --timeout (1s) and was stopped"), "{}", stderr(&spin));

    let memory = run(&["--max-memory", "64MiB", &c, "alloc"]);
    assert_eq!(code(&memory), 134, "{}", stderr(&memory));
    assert!(stderr(&memory).contains("hit its memory limit") && stderr(&memory).contains("--max-memory is 67108864"), "{}", stderr(&memory));

    let recursion = run(&[&c, "recurse"]);
    assert_eq!(code(&recursion), 134, "{}", stderr(&recursion));
    assert!(stderr(&recursion).contains("overflowed its stack: --max-wasm-stack is 524288 bytes"), "{}", stderr(&recursion));

    let fuel = run(&["--fuel", "5000000", &c, "loop"]);
    assert_eq!(code(&fuel), 134, "{}", stderr(&fuel));
    assert!(stderr(&fuel).contains("used up its instruction budget: --fuel is 5000000"), "{}", stderr(&fuel));

    // Output without end is stopped by the time limit like any other spin; the host's
    // stdout is not held open after it.
    let flood = tessera()
        .args(["run", "--timeout", "2s", &c, "flood"])
        .env("TESSERA_CACHE_DIR", cache_dir())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(code(&flood), 134, "{}", stderr(&flood));
    assert!(stderr(&flood).contains("--timeout"), "{}", stderr(&flood));
}

#[test]
fn fuel_used_is_reported() {
    let out = run(&["--fuel", "10000000000", &command(), "hello"]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let line = stderr(&out).lines().find(|l| l.starts_with("fuel: ")).map(str::to_string).unwrap_or_default();
    let used: u64 = line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(used > 1000 && used < 10_000_000_000, "{line}");
}

const ADDER: &str = r#"(component
    (core module $m
        (func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add))
    (core instance $i (instantiate $m))
    (func (export "add") (param "a" u32) (param "b" u32) (result u32) (canon lift (core func $i "add"))))"#;

#[test]
fn invoke_calls_an_export_with_wave_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let adder = dir.path().join("adder.wasm");
    std::fs::write(&adder, wat::parse_str(ADDER).unwrap()).unwrap();
    let adder = adder.display().to_string();
    let out = run(&["--invoke", "add(40, 2)", &adder]);
    assert_eq!(text(&out.stdout), "42\n", "{}", stderr(&out));
    let missing = run(&["--invoke", "sub(1, 2)", &adder]);
    assert_eq!(code(&missing), 1);
    assert!(stderr(&missing).contains("no function `sub`") && stderr(&missing).contains("add"), "{}", stderr(&missing));
    let wrong = run(&["--invoke", "add(\"x\", 2)", &adder]);
    assert_eq!(code(&wrong), 1);
    assert!(stderr(&wrong).contains("do not fit"), "{}", stderr(&wrong));
    let syntax = run(&["--invoke", "add(1,", &adder]);
    assert_eq!(code(&syntax), 1);
    assert!(stderr(&syntax).contains("WAVE"), "{}", stderr(&syntax));
}

/// A WASI preview 1 command: writes a line with `fd_write`, exits with `proc_exit(7)`.
const PREVIEW1: &str = r#"(module
    (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
    (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
    (memory (export "memory") 1)
    (data (i32.const 16) "hello from preview 1\n")
    (func (export "_start")
        (i32.store (i32.const 0) (i32.const 16))
        (i32.store (i32.const 4) (i32.const 21))
        (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
        (call $proc_exit (i32.const 7))))"#;

#[test]
fn a_preview1_module_runs_with_its_exact_exit_code_and_is_compiled_once() {
    let dir = tempfile::tempdir().unwrap();
    let cache = tempfile::tempdir().unwrap();
    let module = dir.path().join("old.wasm");
    std::fs::write(&module, wat::parse_str(PREVIEW1).unwrap()).unwrap();
    for _ in 0..2 {
        let out = tessera().args(["run"]).arg(&module).env("TESSERA_CACHE_DIR", cache.path()).output().unwrap();
        assert_eq!(code(&out), 7, "proc_exit(7) gives 7, as under wasmtime run: {}", stderr(&out));
        assert_eq!(text(&out.stdout), "hello from preview 1\n");
    }
    let compiled: Vec<_> = std::fs::read_dir(cache.path()).unwrap().flatten().collect();
    assert_eq!(compiled.len(), 1, "compiled once, then loaded from the cache: {compiled:?}");
    // Limits hold for modules too.
    let spin = wat::parse_str(r#"(module (memory (export "memory") 1) (func (export "_start") (loop br 0)))"#).unwrap();
    std::fs::write(&module, spin).unwrap();
    let out = tessera().args(["run", "--timeout", "1s"]).arg(&module).env("TESSERA_CACHE_DIR", cache.path()).output().unwrap();
    assert_eq!(code(&out), 134, "{}", stderr(&out));
    assert!(stderr(&out).contains("ran past --timeout (1s)"), "{}", stderr(&out));
    let invoke = tessera().args(["run", "--invoke", "f()"]).arg(&module).output().unwrap();
    assert_eq!(code(&invoke), 1);
    assert!(stderr(&invoke).contains("preview 1 module"), "{}", stderr(&invoke));
}

#[test]
fn the_compile_cache_is_the_one_up_uses() {
    let cache = tempfile::tempdir().unwrap();
    let out = tessera().args(["run", &command(), "hello"]).env("TESSERA_CACHE_DIR", cache.path()).output().unwrap();
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let entries: Vec<String> = std::fs::read_dir(cache.path()).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert!(entries.iter().any(|e| e.ends_with(".cwasm")), "{entries:?}");
}

#[test]
fn a_component_that_is_not_a_command_is_refused_clearly() {
    let out = run(&[&guest("http_guest.wasm").display().to_string()]);
    assert_eq!(code(&out), 1);
    let log = stderr(&out);
    assert!(log.contains("exports no wasi:cli/run") && log.contains("wasi:http/incoming-handler"), "{log}");
    let missing = run(&["/no/such/file.wasm"]);
    assert_eq!(code(&missing), 1);
    assert!(stderr(&missing).contains("cannot read /no/such/file.wasm"), "{}", stderr(&missing));
}
