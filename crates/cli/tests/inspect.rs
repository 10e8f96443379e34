//! `tessera inspect` on the examples and on apps that grant too much or too little.

mod support;

use std::path::Path;
use std::process::Command;
use support::*;

fn inspect_json(args: &[&str]) -> serde_json::Value {
    let out = tessera().arg("inspect").args(args).arg("--json").output().unwrap();
    serde_json::from_str(&ok(&out)).unwrap()
}

fn sha256sum(path: &Path) -> String {
    let out = Command::new("sha256sum").arg(path).output().unwrap();
    format!("sha256:{}", &text(&out.stdout)[..64])
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect()
}

#[test]
fn inspect_reports_the_examples_worlds_grants_size_and_digest() {
    let root = repo_root();
    let report = inspect_json(&["-f", root.join("examples/rust-sqlite").to_str().unwrap()]);
    assert_eq!(report["app"], "rust-sqlite");
    let todos = &report["components"][0];
    assert_eq!(todos["id"], "todos");
    let wasm = root.join("examples/rust-sqlite/target/wasm32-wasip2/release/rust_sqlite.wasm");
    assert_eq!(todos["digest"].as_str().unwrap(), sha256sum(&wasm));
    assert_eq!(todos["size"].as_u64().unwrap(), std::fs::metadata(&wasm).unwrap().len());
    assert_eq!(strings(&todos["exports"]), ["wasi:http/incoming-handler@0.2.0"]);
    assert!(strings(&todos["imports"]).contains(&"fermyon:spin/sqlite@2.0.0".to_string()));
    assert_eq!(strings(&todos["grants"]["sqlite_databases"]), ["default"]);
    assert_eq!(todos["over_grants"], serde_json::json!([]));
    assert_eq!(todos["unusable_imports"], serde_json::json!([]));
    assert_eq!(todos["signature"]["kind"], "none");

    // The human form of the committed example says the same.
    let out = ok(&tessera().args(["inspect", "-f"]).arg(root.join("examples/hello-rust")).output().unwrap());
    assert!(out.contains("component `hello`"), "{out}");
    assert!(out.contains("wasi:http/incoming-handler") && out.contains("signature: unsigned") && out.contains("digest:    sha256:"), "{out}");
}

#[test]
fn inspect_names_over_grants_and_imports_nothing_grants() {
    let app = App::new(
        r#"
spin_manifest_version = 2
[application]
name = "audit"
[[trigger.http]]
route = "/..."
component = "web"
[component.web]
source = "{http_guest}"
key_value_stores = ["default"]
sqlite_databases = ["default"]
"#,
    );
    let report = inspect_json(&["-f", app.path().to_str().unwrap()]);
    let web = &report["components"][0];
    // The guest imports no key-value or SQLite interface: both grants are over-grants.
    let over: Vec<&str> = web["over_grants"].as_array().unwrap().iter().map(|o| o["grant"].as_str().unwrap()).collect();
    assert_eq!(over, ["key_value_stores", "sqlite_databases"]);
    // It imports outbound HTTP but may reach no host.
    let unusable = web["unusable_imports"].as_array().unwrap();
    assert!(unusable.iter().any(|u| u["import"].as_str().unwrap().starts_with("wasi:http/outgoing-handler") && u["needs"] == "allowed_outbound_hosts"), "{unusable:?}");

    let text = ok(&tessera().args(["inspect", "-f"]).arg(app.path()).output().unwrap());
    assert!(text.contains("over-grant: key_value_stores is granted but no imported interface uses it"), "{text}");
    assert!(text.contains("unusable import: wasi:http/outgoing-handler"), "{text}");
}

#[test]
fn inspect_shows_signature_status_of_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = dir.path().join("web.wasm");
    std::fs::copy(guest("http_guest.wasm"), &wasm).unwrap();
    let key = dir.path().join("id");
    assert!(Command::new("ssh-keygen").args(["-t", "ed25519", "-q", "-N", "", "-f"]).arg(&key).status().unwrap().success());
    ok(&tessera().args(["sign"]).arg(&wasm).arg("--key").arg(&key).output().unwrap());
    let report = inspect_json(&["-f", wasm.to_str().unwrap(), "--key", key.with_extension("pub").to_str().unwrap()]);
    let c = &report["components"][0];
    assert_eq!(c["signature"]["kind"], "embedded");
    assert_eq!(c["signature"]["verified"]["trusted"], true);
    assert!(c["signature"]["verified"]["key"].as_str().unwrap().starts_with("SHA256:"));
}

#[test]
fn inspect_shows_a_preview1_module_as_the_component_it_becomes() {
    let module = repo_root().join("tests/guests/target/wasm32-wasip1/release/http_guest.wasm");
    let app = App::new(&GUEST_APP.replace("{http_guest}", &module.display().to_string()));
    let report = inspect_json(&["-f", app.path().to_str().unwrap()]);
    let c = &report["components"][0];
    assert_eq!(c["form"], "WASI preview 1 module, made a component at load");
    assert_eq!(strings(&c["exports"]), ["wasi:http/incoming-handler@0.2.12"]);
    assert!(strings(&c["imports"]).iter().any(|i| i.starts_with("wasi:http/outgoing-handler@")), "{c}");
    let plain = App::new(GUEST_APP);
    assert_eq!(inspect_json(&["-f", plain.path().to_str().unwrap()])["components"][0]["form"], "component");
}

#[test]
fn inspect_maps_messaging_and_blob_storage_to_their_grants() {
    let manifest = |grants: &str| {
        format!(
            "spin_manifest_version = 2\n[application]\nname = \"cloud\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n[component.web]\nsource = \"{{cloud_guest}}\"\n{grants}"
        )
    };
    let app = App::new(&manifest(""));
    let report = inspect_json(&["-f", app.path().to_str().unwrap()]);
    let unusable: Vec<(&str, &str)> = report["components"][0]["unusable_imports"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["import"].as_str().unwrap(), u["needs"].as_str().unwrap()))
        .collect();
    assert_eq!(
        unusable,
        [("wasmcloud:messaging/consumer@0.2.0", "allowed_publish_subjects"), ("wasi:blobstore/blobstore@0.2.0-draft", "blob_containers")],
        "only the interfaces that reach something are named"
    );
    let app = App::new(&manifest("allowed_publish_subjects = [\"orders.>\"]\nblob_containers = [\"photos\"]\n"));
    let text = ok(&tessera().args(["inspect", "-f"]).arg(app.path()).output().unwrap());
    assert!(text.contains("allowed_publish_subjects: orders.>") && text.contains("blob_containers: photos"), "{text}");
    assert!(!text.contains("unusable import"), "{text}");
}
