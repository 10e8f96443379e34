//! `tessera call`: a plugin tried from the command line, WAVE in and out, quotas as flags,
//! metering on stderr or as one JSON object, from a file or a registry reference.

mod support;

use std::process::Output;
use support::*;

const PROBE: &str = "tessera:probe/probe@0.1.0";

fn call(args: &[&str]) -> Output {
    let probe = guest("probe_plugin.wasm");
    let mut cmd = tessera();
    cmd.arg("call").arg(&probe).args(args).env("TESSERA_CACHE_DIR", cache_dir());
    cmd.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn the_result_is_wave_on_stdout_and_the_metering_on_stderr() {
    let out = call(&[&format!(r#"{PROBE}#read-file("/etc/hostname")"#)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    // No file is granted: the guest's own error comes back as a value.
    assert!(text(&out.stdout).starts_with("err("), "{}", text(&out.stdout));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("instructions: ") && stderr.contains("peak memory: ") && stderr.contains("cpu: "), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("a.txt"), "granted").unwrap();
    let out = call(&["--dir", &format!("{}::/data", dir.path().display()), &format!(r#"{PROBE}#read-file("/data/a.txt")"#)]);
    assert_eq!(text(&out.stdout), "ok(\"granted\")\n", "{}", text(&out.stderr));
}

#[test]
fn json_gives_the_result_and_the_metering_as_one_object() {
    let out = call(&["--json", "--env", "TIER=gold", &format!(r#"{PROBE}#env("TIER")"#)]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let object: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(object["result"], "some(\"gold\")");
    assert!(object["instructions"].as_u64().unwrap() > 0, "{object}");
    assert!(object["peak_memory_bytes"].as_u64().unwrap() >= 65536, "{object}");
    assert!(object["wall_ms"].as_f64().unwrap() > 0.0 && object["cpu_ms"].as_f64().is_some(), "{object}");
}

#[test]
fn a_quota_hit_is_an_error_object_naming_the_quota_and_exit_1() {
    let out = call(&["--json", "--fuel", "5000", &format!("{PROBE}#now()")]);
    assert_eq!(out.status.code(), Some(1));
    let object: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(object["error"]["quota"], "fuel", "{object}");
    assert_eq!(object["error"]["limit"], 5000, "{object}");
    assert!(object["error"]["message"].as_str().unwrap().contains("--fuel"), "{object}");

    let out = call(&["--max-result-size", "10", &format!(r#"{PROBE}#read-file("/etc/hostname")"#)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("raise --max-result-size"), "{}", text(&out.stderr));

    let out = call(&["--max-log-size", "8", &format!("{PROBE}#shout(10)")]);
    assert!(out.status.success());
    let stderr = text(&out.stderr);
    assert!(stderr.starts_with("xxxxxxxx\n[12 more bytes of output dropped: raise --max-log-size]"), "{stderr}");
}

#[test]
fn mistakes_are_named() {
    let out = call(&["nope()"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("exports no function `nope`") && stderr.contains(&format!("{PROBE}#now")), "{stderr}");
    let out = tessera().args(["call", "missing.wasm", "f()"]).output().unwrap();
    assert!(text(&out.stderr).contains("missing.wasm: no such file"), "{}", text(&out.stderr));
}

#[test]
fn a_plugin_runs_from_a_registry_reference() {
    let Some(registry) = Registry::start(None) else { return };
    let app = App::new(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"probe\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"probe\"\n[component.probe]\nsource = \"{}\"\n",
        guest("probe_plugin.wasm").display()
    ));
    let reference = format!("{}/plugins/probe:v1", registry.host());
    let home = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| tessera().args(args).env("XDG_CACHE_HOME", home.path()).output().unwrap();
    let pushed = run(&["registry", "push", &reference, "-f", app.path().join("spin.toml").to_str().unwrap(), "-k"]);
    assert!(pushed.status.success(), "{}", text(&pushed.stderr));
    let out = run(&["call", &reference, "--insecure", &format!("{PROBE}#now()")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "(0, 0)\n");
}
