//! Component dependencies end to end: an HTTP component whose `tessera:calc` import is
//! satisfied by another component at load, each dependency form, deny by default, and the
//! errors a user sees.

mod support;

use support::*;

/// `api` (an HTTP component importing `tessera:calc/calculator`) with `GREETING` in its
/// environment, its dependency written as `DEPENDENCY`.
const COMPOSED: &str = r#"spin_manifest_version = 2
[application]
name = "composed"
[[trigger.http]]
route = "/..."
component = "api"
[component.api]
source = "{calc_user_guest}"
environment = { GREETING = "hello from api" }
[component.api.dependencies]
DEPENDENCY
[component.calc]
source = "{calc_guest}"
"#;

fn app_with(dependency: &str) -> App {
    App::new(&COMPOSED.replace("DEPENDENCY", dependency))
}

#[test]
fn a_dependency_satisfies_the_import_in_every_local_form() {
    for dependency in [
        r#""tessera:calc" = { path = "calc.wasm" }"#,
        r#""tessera:calc/calculator" = { component = "calc" }"#,
        r#""tessera:calc/calculator@0.1.0" = { component = "calc", export = "tessera:calc/calculator@0.1.0" }"#,
    ] {
        let app = app_with(dependency);
        std::fs::copy(guest("calc_guest.wasm"), app.path().join("calc.wasm")).unwrap();
        let server = app.start(&[]);
        let r = server.get("/add?a=2&b=40");
        assert_eq!((r.status, r.body.as_str()), (200, "42\n"), "{dependency}");
        assert_eq!(server.get("/env").body, "hello from api\n", "the parent keeps its own environment");
    }
}

#[test]
fn a_dependency_gets_no_capability_of_its_parent_unless_it_inherits_it() {
    let app = app_with(r#""tessera:calc" = { component = "calc" }"#);
    let server = app.start(&[]);
    // Denied: the dependency's environment is empty, and the log says how to allow it.
    assert_eq!(server.get("/greeting").body, "no greeting\n");
    let log = server.wait_for_log("denied (allow it");
    assert!(
        log.contains("dependency `tessera:calc` of component `api` called `wasi:cli/environment@0.2.12#get-environment`: denied (allow it with inherit_configuration = [\"environment\"] on the dependency)"),
        "{log}"
    );
    assert_eq!(server.get("/env").body, "hello from api\n");
    // A flood of denied calls is refused every time but logged only at powers of two.
    assert_eq!(server.get("/count-greetings?n=20000").body, "0\n");
    let log = server.wait_for_log("(16384 times so far)");
    let lines = log.lines().filter(|l| l.contains("#get-environment`: denied")).count();
    assert!(lines <= 18, "{lines} log lines for 20,001 denied calls");
    drop(server);

    for inherit in [r#"inherit_configuration = ["environment"]"#, "inherit_configuration = true"] {
        let app = app_with(&format!(r#""tessera:calc" = {{ component = "calc", {inherit} }}"#));
        let server = app.start(&[]);
        assert_eq!(server.get("/greeting").body, "hello from api\n", "{inherit}");
    }
    let all = COMPOSED
        .replace("[component.api.dependencies]", "dependencies_inherit_configuration = true\n[component.api.dependencies]")
        .replace("DEPENDENCY", r#""tessera:calc" = { component = "calc" }"#);
    let server = App::new(&all).start(&[]);
    assert_eq!(server.get("/greeting").body, "hello from api\n");
}

#[test]
fn a_denied_store_answers_the_interface_s_own_access_denied_error() {
    let granted = |dependency: &str| {
        App::new(&COMPOSED.replace("environment = {", "key_value_stores = [\"default\"]\nenvironment = {").replace("DEPENDENCY", dependency))
    };
    let app = granted(r#""tessera:calc" = { component = "calc" }"#);
    let server = app.start(&[]);
    assert_eq!(server.get("/kv").body, "error: access-denied\n", "the parent's store is not the dependency's");
    let log = server.wait_for_log("fermyon:spin/key-value@2.0.0#[static]store.open`: denied");
    assert!(log.contains("inherit_configuration = [\"key_value_stores\"]"), "{log}");
    drop(server);

    let app = granted(r#""tessera:calc" = { component = "calc", inherit_configuration = ["key_value_stores"] }"#);
    let server = app.start(&[]);
    assert_eq!(server.get("/kv").body, "stored by the dependency\n", "inherited: it uses the parent's grant");
}

/// `tessera compose` on `app` (component `api`) into `out.wasm` beside it; its stdout.
fn compose_to_file(app: &App) -> (std::path::PathBuf, String) {
    let output = app.path().join("out.wasm");
    let out = tessera().args(["compose", "-c", "api", "-o"]).arg(&output).arg("-f").arg(app.path()).output().unwrap();
    (output, ok(&out))
}

/// Serves `wasm` alone (no dependencies) as `api`, with the same grants.
fn serve_alone(wasm: &std::path::Path) -> (App, Server) {
    let manifest = format!(
        "spin_manifest_version = 2\n[application]\nname = \"alone\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"api\"\n[component.api]\nsource = \"{}\"\nkey_value_stores = [\"default\"]\nenvironment = {{ GREETING = \"hello from api\" }}\n",
        wasm.display()
    );
    let app = App::new(&manifest);
    let server = app.start(&[]);
    (app, server)
}

#[test]
fn compose_writes_one_component_that_refuses_like_the_host_without_tessera() {
    let app = App::new(&COMPOSED.replace("environment = {", "key_value_stores = [\"default\"]\nenvironment = {").replace("DEPENDENCY", r#""tessera:calc" = { component = "calc" }"#));
    let (output, printed) = compose_to_file(&app);
    assert!(printed.contains("tessera:calc/calculator@0.1.0 <- tessera:calc"), "{printed}");
    assert!(printed.contains("denied: wasi:cli/environment@0.2.12 of dependency `tessera:calc` is refused (inherit_configuration = [\"environment\"] allows it)"), "{printed}");
    // Nothing in it is Tessera's own: no private imports, and the denied store is inside.
    let out = tessera().arg("inspect").arg("-f").arg(&output).arg("--json").output().unwrap();
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let imports: Vec<&str> = report["components"][0]["imports"].as_array().unwrap().iter().map(|i| i.as_str().unwrap()).collect();
    assert!(!imports.iter().any(|i| i.starts_with("tessera-denied") || i.starts_with("fermyon:spin/key-value")), "{imports:?}");
    assert_eq!(report["components"][0]["exports"], serde_json::json!(["wasi:http/incoming-handler@0.2.12"]));

    // Loaded back as a component of its own, with the parent's grants: the dependency
    // still gets none of them, and its refusals are the interfaces' own.
    let (_alone, server) = serve_alone(&output);
    assert_eq!(server.get("/add?a=2&b=40").body, "42\n");
    assert_eq!(server.get("/greeting").body, "no greeting\n");
    assert_eq!(server.get("/kv").body, "error: access-denied\n");
    assert_eq!(server.get("/env").body, "hello from api\n", "the parent keeps its own environment");
}

#[test]
fn compose_refuses_what_it_cannot_write_and_leaves_no_partial_file() {
    let app = app_with(r#""tessera:calc" = { component = "calc" }"#);
    let missing_dir = app.path().join("no-such-dir/out.wasm");
    let out = tessera().args(["compose", "-c", "api", "-o"]).arg(&missing_dir).arg("-f").arg(app.path()).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot write to"), "{}", String::from_utf8_lossy(&out.stderr));
    let target = app.path().join("x.wasm");
    let out = tessera().args(["compose", "-c", "calc", "-o"]).arg(&target).arg("-f").arg(app.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("component `calc` has no dependencies"), "{err}");
    let out = tessera().args(["compose", "-c", "nope", "-o"]).arg(&target).arg("-f").arg(app.path()).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("the app has no component `nope`"), "{err}");
    assert!(!target.exists());
}

#[test]
fn a_composed_python_dependency_runs_outside_tessera_s_host_refusals() {
    let Some(wasm) = large_guest("tests/guests/python-calc/calc.wasm", "tests/guests/python-calc/build.sh") else { return };
    // Its runtime reads the environment and preopens at start: a stand-in that trapped
    // would break it; these answer empty lists.
    let dependency = format!(r#""tessera:calc" = {{ path = "{}" }}"#, wasm.display());
    let app = App::new(&COMPOSED.replace("environment = {", "key_value_stores = [\"default\"]\nenvironment = {").replace("DEPENDENCY", &dependency));
    let (output, printed) = compose_to_file(&app);
    assert!(printed.contains("denied: wasi:filesystem/preopens@0.2.9"), "{printed}");
    let (_alone, server) = serve_alone(&output);
    assert_eq!(server.get("/add?a=2&b=40").body, "42\n");
    assert_eq!(server.get("/greeting").body, "no greeting\n");
    assert!(server.get("/kv").body.contains("AccessDenied"));
}

fn up_error(dependency: &str) -> String {
    let app = app_with(dependency);
    match Server::try_start(app.path(), &[]) {
        Ok(_) => panic!("tessera up should have refused {dependency}"),
        Err(e) => e,
    }
}

#[test]
fn dependencies_that_do_not_fit_are_load_errors_at_their_place() {
    let e = up_error(r#""tessera:calculus" = { component = "calc" }"#);
    assert!(e.contains("spin.toml:11:22") && e.contains("dependency `tessera:calculus` matches none of the component's imports") && e.contains("tessera:calc/calculator@0.1.0"), "{e}");
    let e = up_error(r#""tessera:calc/calculator" = { component = "calc", export = "tessera:calc/abacus" }"#);
    assert!(e.contains("spin.toml:11:29") && e.contains("does not export `tessera:calc/abacus`"), "{e}");
    let e = up_error(r#""tessera:calc/calculator" = { path = "missing.wasm" }"#);
    assert!(e.contains("spin.toml:11:29") && e.contains("cannot read dependency `tessera:calc/calculator`"), "{e}");
    let e = up_error(r#""tessera:calc" = ">=0.1.0""#);
    assert!(e.contains("spin.toml:11:18") && e.contains("no registry for package `tessera:calc`: add registry = "), "{e}");
}

#[test]
fn inspect_shows_who_satisfies_which_import_and_what_each_dependency_may_use() {
    let app = app_with(r#""tessera:calc" = { component = "calc", inherit_configuration = ["files"] }"#);
    let out = tessera().arg("inspect").arg("-f").arg(app.path()).arg("--json").output().unwrap();
    let report: serde_json::Value = serde_json::from_str(&ok(&out)).unwrap();
    let api = report["components"].as_array().unwrap().iter().find(|c| c["id"] == "api").unwrap();
    let dependency = &api["dependencies"][0];
    assert_eq!(dependency["key"], "tessera:calc");
    assert_eq!(dependency["source"], "component calc");
    assert_eq!(dependency["satisfies"], serde_json::json!(["tessera:calc/calculator@0.1.0"]));
    assert_eq!(dependency["inherits"], serde_json::json!(["files"]));
    assert_eq!(
        dependency["denied"],
        serde_json::json!([
            { "interface": "fermyon:spin/key-value@2.0.0", "allowed_by": "key_value_stores" },
            { "interface": "wasi:cli/environment@0.2.12", "allowed_by": "environment" },
        ])
    );

    let out = tessera().arg("inspect").arg("-f").arg(app.path()).output().unwrap();
    let text = ok(&out);
    assert!(text.contains("tessera:calc (component calc) satisfies tessera:calc/calculator@0.1.0"), "{text}");
    assert!(text.contains("denied: wasi:cli/environment@0.2.12 (inherit_configuration = [\"environment\"] allows it)"), "{text}");
}

#[test]
fn a_python_dependency_with_sockets_and_files_loads_and_is_denied_cleanly() {
    let Some(wasm) = large_guest("tests/guests/python-calc/calc.wasm", "tests/guests/python-calc/build.sh") else { return };
    // componentize-py's runtime imports wasi:sockets and wasi:filesystem, whose resources
    // Spin's deny adapter gives a second identity (spin#2969); here they load.
    let (_app, server) = serve_with_store(&wasm);
    assert_eq!(server.get("/add?a=2&b=40").body, "42\n");
    assert_eq!(server.get("/greeting").body, "no greeting\n");
    let kv = server.get("/kv").body;
    assert!(kv.contains("AccessDenied"), "the store's own access-denied error reaches Python: {kv}");
    let log = server.wait_for_log("store.open`: denied");
    assert!(log.contains("called `wasi:cli/environment@0.2.9#get-environment`: denied"), "{log}");
}

#[test]
fn a_javascript_dependency_loads_and_is_denied_cleanly() {
    let Some(wasm) = large_guest("tests/guests/js-calc/calc.wasm", "tests/guests/js-calc/build.sh") else { return };
    // componentize-js imports outgoing HTTP and files besides the store.
    let (_app, server) = serve_with_store(&wasm);
    assert_eq!(server.get("/add?a=2&b=40").body, "42\n");
    assert_eq!(server.get("/kv").body, "error: access-denied\n", "the store's own access-denied error reaches JavaScript");
    let log = server.wait_for_log("store.open`: denied");
    assert!(log.contains("inherit_configuration = [\"key_value_stores\"]"), "{log}");
}

/// The app with the `default` store granted to `api` and `wasm` as its dependency, served
/// (the app's directory lives as long as the returned `App`).
fn serve_with_store(wasm: &std::path::Path) -> (App, Server) {
    let dependency = format!(r#""tessera:calc" = {{ path = "{}" }}"#, wasm.display());
    let app = App::new(&COMPOSED.replace("environment = {", "key_value_stores = [\"default\"]\nenvironment = {").replace("DEPENDENCY", &dependency));
    let server = app.start(&[]);
    (app, server)
}
