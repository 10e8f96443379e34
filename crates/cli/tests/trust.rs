//! Signatures and the `[trust]` policy end to end: keys made by ssh-keygen and openssl,
//! `tessera sign`/`verify` on files and on registry artifacts, and `tessera up` refusing
//! unsigned, tampered and untrusted components while accepting trusted ones.

mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use support::*;

fn keygen(dir: &Path, name: &str, kind: &[&str]) -> PathBuf {
    let key = dir.join(name);
    let out = Command::new("ssh-keygen").args(kind).args(["-q", "-N", "", "-C", name, "-f"]).arg(&key).output().expect("ssh-keygen (openssh-client)");
    assert!(out.status.success(), "{}", text(&out.stderr));
    key
}

fn openssl_p256(dir: &Path, name: &str) -> PathBuf {
    let key = dir.join(format!("{name}.pem"));
    let run = |args: &[&str]| assert!(Command::new("openssl").args(args).current_dir(dir).status().expect("openssl").success());
    run(&["genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", &format!("{name}.pem")]);
    run(&["pkey", "-pubout", "-in", &format!("{name}.pem"), "-out", &format!("{name}.pub.pem")]);
    key
}

/// An app whose component is a copy of the test guest, with a runtime config trusting `keys`.
fn app(keys: &[&Path]) -> App {
    let app = App::new(
        "spin_manifest_version = 2\n[application]\nname = \"signed\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n[component.web]\nsource = \"web.wasm\"\n",
    );
    std::fs::copy(guest("http_guest.wasm"), app.path().join("web.wasm")).unwrap();
    let list: Vec<String> = keys.iter().map(|k| format!("\"{}\"", k.display())).collect();
    app.write("trust.toml", &format!("[trust]\nkeys = [{}]\n", list.join(", ")));
    app
}

fn up_error(app: &App) -> String {
    let out = tessera().args(["up", "--listen", "127.0.0.1:0", "--runtime-config-file", "trust.toml"]).current_dir(app.path()).output().unwrap();
    assert!(!out.status.success(), "up should refuse: {}", text(&out.stdout));
    text(&out.stderr)
}

fn tessera_ok(dir: &Path, args: &[&str]) -> String {
    ok(&tessera().args(args).current_dir(dir).output().unwrap())
}

#[test]
fn up_refuses_unsigned_tampered_and_untrusted_components_and_accepts_trusted_ones() {
    let keys = tempfile::tempdir().unwrap();
    let trusted = keygen(keys.path(), "trusted", &["-t", "ed25519"]);
    let stranger = keygen(keys.path(), "stranger", &["-t", "ed25519"]);
    let trusted_pub = trusted.with_extension("pub");
    let app = app(&[&trusted_pub]);

    // Unsigned: refused, naming the component, the reason and the policy's file.
    let err = up_error(&app);
    assert!(err.contains("[trust] refuses component `web`") && err.contains("it is not signed"), "{err}");
    assert!(err.contains("trust.toml:1:1") && err.contains("tessera sign"), "{err}");

    // Signed by a key not on the list: refused.
    tessera_ok(app.path(), &["sign", "web.wasm", "--key", stranger.to_str().unwrap()]);
    let err = up_error(&app);
    assert!(err.contains("signed by a key that is not trusted"), "{err}");

    // Signed by the trusted key: served.
    let signed = tessera_ok(app.path(), &["sign", "web.wasm", "--key", trusted.to_str().unwrap()]);
    assert!(signed.contains("Ed25519") && signed.contains("embedded"), "{signed}");
    let verified = tessera_ok(app.path(), &["verify", "web.wasm", "--key", trusted_pub.to_str().unwrap()]);
    assert!(verified.contains("signed by trusted key SHA256:"), "{verified}");
    let rc = app.path().join("trust.toml");
    let server = Server::start(app.path(), &["--runtime-config-file", rc.to_str().unwrap()]);
    assert_eq!(server.get("/hello").body, "Hello from Tessera\n");
    assert!(server.log().contains("component `web` is signed by trusted key SHA256:"), "{}", server.log());
    drop(server);

    // One byte changed after signing (inside a name, so the component stays valid): refused.
    let path = app.path().join("web.wasm");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(6).position(|w| w == b"handle").expect("an export name");
    bytes[at] = b'H';
    std::fs::write(&path, &bytes).unwrap();
    let err = up_error(&app);
    assert!(err.contains("changed after it was signed") && err.contains("trusted key SHA256:"), "{err}");
    let out = tessera().args(["verify", "web.wasm", "--key", trusted_pub.to_str().unwrap()]).current_dir(app.path()).output().unwrap();
    assert!(!out.status.success() && text(&out.stderr).contains("changed after it was signed"), "{}", text(&out.stderr));
}

#[test]
fn a_p256_key_signs_detached_and_an_app_is_signed_at_once() {
    let keys = tempfile::tempdir().unwrap();
    let key = openssl_p256(keys.path(), "release");
    let public = keys.path().join("release.pub.pem");
    let app = app(&[&public]);
    let out = tessera_ok(app.path(), &["sign", ".", "--key", key.to_str().unwrap()]);
    assert!(out.contains("component `web`") && out.contains("P-256") && out.contains("web.wasm.sig"), "{out}");
    let rc = app.path().join("trust.toml");
    let server = Server::start(app.path(), &["--runtime-config-file", rc.to_str().unwrap()]);
    assert_eq!(server.get("/hello").body, "Hello from Tessera\n");
}

#[test]
fn a_signed_registry_artifact_is_trusted_and_a_moved_tag_is_not() {
    let Some(registry) = Registry::start(None) else { return };
    let keys = tempfile::tempdir().unwrap();
    let key = openssl_p256(keys.path(), "ci");
    let public = keys.path().join("ci.pub.pem");
    let stranger = keygen(keys.path(), "stranger", &["-t", "ed25519"]);
    let app = app(&[&public]);
    let reference = format!("{}/trust/app:v1", registry.host());
    let machine = Machine::new();
    ok(&machine.run(&["registry", "push", &reference, "-f", app.path().to_str().unwrap(), "-k"]));
    let rc = app.path().join("trust.toml");
    let up = |machine: &Machine| {
        machine.command().args(["up", "-k", "--listen", "127.0.0.1:0", "--runtime-config-file"]).arg(&rc).arg("-f").arg(&reference).output().unwrap()
    };

    // Unsigned artifact, unsigned component: refused.
    let out = up(&machine);
    assert!(!out.status.success() && text(&out.stderr).contains("it is not signed"), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("has no signature"), "{}", text(&out.stderr));

    // Signed artifact (cosign's layout): verify names the key; up serves it.
    let signed = ok(&machine.run(&["sign", &reference, "--key", key.to_str().unwrap(), "-k"]));
    assert!(signed.contains(".sig"), "{signed}");
    let verified = ok(&machine.run(&["verify", &reference, "--key", public.to_str().unwrap(), "-k"]));
    assert!(verified.contains("signed by trusted key SHA256:"), "{verified}");
    let out = machine.run(&["verify", &reference, "--key", stranger.with_extension("pub").to_str().unwrap(), "-k"]);
    assert!(!out.status.success() && text(&out.stderr).contains("none of the trusted keys"), "{}", text(&out.stderr));
    let server = Server::start_with(machine.command(), Path::new(&reference), &["-k", "--runtime-config-file", rc.to_str().unwrap()]);
    assert_eq!(server.get("/hello").body, "Hello from Tessera\n");
    assert!(server.log().contains("is signed by trusted key"), "{}", server.log());
    drop(server);

    // The tag moved to other content: the signature is for the old digest, so refused.
    let other = App::new("spin_manifest_version = 2\n[application]\nname = \"other\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n[component.web]\nsource = \"web.wasm\"\nenvironment = { X = \"1\" }\n");
    std::fs::copy(guest("http_guest.wasm"), other.path().join("web.wasm")).unwrap();
    ok(&machine.run(&["registry", "push", &reference, "-f", other.path().to_str().unwrap(), "-k"]));
    let out = up(&Machine::new());
    assert!(!out.status.success() && text(&out.stderr).contains("[trust] refuses component `web`"), "{}", text(&out.stderr));
}

#[test]
fn a_dependency_must_be_signed_by_a_trusted_key_too() {
    let keys = tempfile::tempdir().unwrap();
    let trusted = keygen(keys.path(), "trusted", &["-t", "ed25519"]);
    let app = App::new(
        "spin_manifest_version = 2\n[application]\nname = \"signed\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"api\"\n[component.api]\nsource = \"api.wasm\"\n[component.api.dependencies]\n\"tessera:calc\" = { path = \"calc.wasm\" }\n",
    );
    std::fs::copy(guest("calc_user_guest.wasm"), app.path().join("api.wasm")).unwrap();
    std::fs::copy(guest("calc_guest.wasm"), app.path().join("calc.wasm")).unwrap();
    app.write("trust.toml", &format!("[trust]\nkeys = [\"{}\"]\n", trusted.with_extension("pub").display()));

    tessera_ok(app.path(), &["sign", "api.wasm", "--key", trusted.to_str().unwrap()]);
    let err = up_error(&app);
    assert!(err.contains("[trust] refuses component `api` dependency `tessera:calc`") && err.contains("it is not signed"), "{err}");

    tessera_ok(app.path(), &["sign", "calc.wasm", "--key", trusted.to_str().unwrap()]);
    let rc = app.path().join("trust.toml");
    let server = Server::start(app.path(), &["--runtime-config-file", rc.to_str().unwrap()]);
    assert_eq!(server.get("/add?a=20&b=22").body, "42\n");
    assert!(server.log().contains("dependency `tessera:calc` of component `api` is signed by trusted key SHA256:"), "{}", server.log());
}
