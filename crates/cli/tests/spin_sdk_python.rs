//! An app built with the published Python Spin SDK (PyPI `spin-sdk` 5.0) runs unmodified:
//! it exports the WASI 0.3 handler and imports every Spin interface; what Tessera lacks is
//! stubbed, and calling it fails cleanly; key-value and variables work.

mod support;

use support::*;

#[test]
fn the_python_spin_sdk_app_runs_and_missing_interfaces_fail_cleanly() {
    let Some(wasm) = large_guest("tests/guests/python-spin/app.wasm", "tests/guests/python-spin/build.sh") else { return };
    let app = App::new(&format!(
        r#"
spin_manifest_version = 2
[application]
name = "python-sdk"
[variables]
who = {{ default = "world" }}
[[trigger.http]]
route = "/..."
component = "py"
[component.py]
source = "{}"
variables = {{ greeting = "Hello, {{{{ who }}}}!" }}
key_value_stores = ["default"]
"#,
        wasm.display()
    ));
    let server = app.start(&[]);
    let log = server.log();
    assert!(log.contains("imports interfaces Tessera does not provide yet") && log.contains("fermyon:spin/llm@2.0.0") && !log.contains("spin:mqtt") && !log.contains("spin:mysql"), "{log}");
    let r = server.get("/hello");
    assert_eq!((r.status, r.body.as_str()), (200, "Hello from Python!"));
    assert_eq!(server.get("/greeting").body, "Hello, world!");
    // A counter in the default store, through spin:key-value@3.0.0.
    assert_eq!(server.get("/visits").body, "1");
    assert_eq!(server.get("/visits").body, "2");
    drop(server);
    let server = app.start(&[]);
    assert_eq!(server.get("/visits").body, "3", "the count survives a restart");
    // MQTT to a broker the app does not grant: refused, the request gets 500, the log
    // names the key to add.
    let r = server.get("/mqtt");
    assert_eq!(r.status, 500);
    let log = server.wait_for_log("may not connect to mqtt://");
    assert!(log.contains("add \"mqtt://127.0.0.1:1883\" to allowed_outbound_hosts in [component.py]"), "{log}");
    assert_eq!(server.get("/hello").status, 200, "the host keeps serving");
}
