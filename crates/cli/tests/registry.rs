//! Apps in a real OCI registry (Debian's `docker-registry`, CNCF distribution) on a
//! loopback port: push, pull, run from a reference, tampering, basic auth.

mod support;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use support::*;

const BIG: usize = 5000;

/// An app with an inline-sized file, a file pushed as its own layer and an environment.
fn app_with_files() -> App {
    let app = App::new(
        r#"
spin_manifest_version = 2
[application]
name = "files"
version = "1.2.3"
[[trigger.http]]
route = "/..."
component = "web"
[component.web]
source = "{http_guest}"
files = ["static/*"]
environment = { GREETING = "hello from the registry" }
"#,
    );
    app.write("static/small.txt", "small file\n");
    app.write("static/big.txt", &"0123456789".repeat(BIG / 10));
    app
}

#[test]
fn a_pushed_app_runs_from_its_reference_alone_with_identical_bytes() {
    let Some(registry) = Registry::start(None) else { return };
    let app = app_with_files();
    let reference = format!("{}/tessera/files:v1", registry.host());
    let pusher = Machine::new();
    let pushed = ok(&pusher.run(&["registry", "push", &reference, "-f", app.path().to_str().unwrap(), "-k"]));
    assert!(pushed.contains(&format!("Pushed {reference}@sha256:")), "{pushed}");

    // A second machine: nothing but the reference.
    let puller = Machine::new();
    let manifest = PathBuf::from(ok(&puller.run(&["registry", "pull", &reference, "-k"])).trim());
    let dir = manifest.parent().unwrap();
    assert_eq!(std::fs::read(dir.join("web.wasm")).unwrap(), std::fs::read(guest("http_guest.wasm")).unwrap());
    assert_eq!(std::fs::read(dir.join("files/web/static/big.txt")).unwrap(), std::fs::read(app.path().join("static/big.txt")).unwrap());
    assert_eq!(std::fs::read(dir.join("files/web/static/small.txt")).unwrap(), b"small file\n");

    let runner = Machine::new();
    let server = runner.serve(&reference);
    assert_eq!(server.get("/read?path=/static/small.txt").body, "small file\n");
    assert_eq!(server.get("/read?path=/static/big.txt").body.len(), BIG);
    assert!(server.get("/env").body.contains("GREETING=hello from the registry"));
    drop(server);

    // A second start downloads nothing.
    let again = runner.serve(&reference);
    assert!(again.stderr.lock().unwrap().contains("from the local cache"), "{}", again.stderr.lock().unwrap());
    assert_eq!(again.get("/read?path=/static/small.txt").status, 200);
}

#[test]
fn a_tampered_blob_is_refused_and_nothing_of_it_is_kept() {
    let Some(registry) = Registry::start(None) else { return };
    let app = app_with_files();
    let reference = format!("{}/tessera/tampered:v1", registry.host());
    ok(&Machine::new().run(&["registry", "push", &reference, "-f", app.path().to_str().unwrap(), "-k"]));

    let wasm = std::fs::read(guest("http_guest.wasm")).unwrap();
    let digest = digest(&wasm);
    let blob = registry.blob_path(&digest);
    let mut evil = wasm.clone();
    evil[100] ^= 0xff;
    std::fs::write(&blob, &evil).unwrap();

    let machine = Machine::new();
    let out = machine.run(&["registry", "pull", &reference, "-k"]);
    assert!(!out.status.success());
    let err = text(&out.stderr);
    assert!(err.to_lowercase().contains("digest"), "{err}");
    assert!(!machine.files_in_cache().iter().any(|f| f.to_string_lossy().contains(&digest[7..])), "{:?}", machine.files_in_cache());
    assert!(!machine.files_in_cache().iter().any(|f| f.ends_with("spin.toml")), "no half-written app: {:?}", machine.files_in_cache());

    let out = machine.command().args(["up", "-f", &reference, "-k", "--listen", "127.0.0.1:0"]).output().unwrap();
    assert!(!out.status.success(), "a tampered app must not start");
}

#[test]
fn an_unreachable_registry_is_explained_without_advising_what_was_given() {
    let machine = Machine::new();
    let closed = format!("127.0.0.1:{}/tessera/app:v1", free_port());
    let out = machine.run(&["registry", "pull", &closed]);
    assert!(!out.status.success() && text(&out.stderr).contains("add --insecure"), "{}", text(&out.stderr));
    let out = machine.run(&["registry", "pull", &closed, "-k"]);
    let err = text(&out.stderr);
    assert!(!out.status.success() && !err.contains("add --insecure") && err.contains("is the registry running"), "{err}");
}

#[test]
fn a_registry_with_basic_auth_needs_a_login() {
    let Some(registry) = Registry::start(Some(("ada", "s3cret"))) else { return };
    let app = app_with_files();
    let reference = format!("{}/tessera/private:v1", registry.host());
    let machine = Machine::new();
    let manifest = app.path().to_str().unwrap();

    let out = machine.run(&["registry", "push", &reference, "-f", manifest, "-k"]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("tessera registry login"), "{}", text(&out.stderr));

    let out = machine.run_with_stdin(&["registry", "login", &registry.host(), "-u", "ada", "--password-stdin", "-k"], "wrong\n");
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("refused user `ada`"), "{}", text(&out.stderr));

    // On a terminal the password is asked for and not echoed (`script` gives the login a
    // terminal and types for the user).
    let login = format!("{} registry login {} -u ada -k", tessera().get_program().to_string_lossy(), registry.host());
    let mut script = Command::new("script");
    script.args(["-qec", &login, "/dev/null"]).env("DOCKER_CONFIG", machine.docker.path()).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = script.spawn().expect("script (util-linux)");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
        stdin.write_all(b"s3cret\n").unwrap();
        std::thread::sleep(std::time::Duration::from_millis(500));
    }
    let out = child.wait_with_output().unwrap();
    let shown = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(out.status.success() && shown.contains("Password for ada at") && shown.contains("Login to"), "{shown}");
    assert!(!shown.contains("s3cret"), "the password was echoed: {shown}");
    std::fs::remove_file(machine.docker.path().join("config.json")).unwrap();

    let out = machine.run_with_stdin(&["registry", "login", &registry.host(), "-u", "ada", "--password-stdin", "-k"], "s3cret\n");
    ok(&out);
    let config = std::fs::read_to_string(machine.docker.path().join("config.json")).unwrap();
    assert!(config.contains(&registry.host()), "{config}");

    ok(&machine.run(&["registry", "push", &reference, "-f", manifest, "-k"]));
    let server = machine.serve(&reference);
    assert_eq!(server.get("/read?path=/static/small.txt").body, "small file\n");
}

/// `sha256:<hex>` of `data`, computed by coreutils so the test does not share Tessera's code.
fn digest(data: &[u8]) -> String {
    let out = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().and_then(|mut c| {
        use std::io::Write as _;
        c.stdin.take().unwrap().write_all(data)?;
        c.wait_with_output()
    });
    format!("sha256:{}", &text(&out.unwrap().stdout)[..64])
}

/// Pushes an artifact by hand (OCI distribution API), as another tool would.
fn push_raw(registry: &Registry, repo: &str, tag: &str, config: (&str, &[u8]), layers: &[(&str, &[u8])]) {
    let base = format!("http://{}", registry.host());
    let blob = |data: &[u8]| {
        let r = ureq::post(&format!("{base}/v2/{repo}/blobs/uploads/")).call().unwrap();
        let location = r.header("location").unwrap().to_string();
        let url = if location.starts_with("http") { location } else { format!("{base}{location}") };
        let sep = if url.contains('?') { '&' } else { '?' };
        let d = digest(data);
        ureq::put(&format!("{url}{sep}digest={d}")).set("content-type", "application/octet-stream").send_bytes(data).unwrap();
        serde_json::json!({ "digest": d, "size": data.len() })
    };
    let mut config_desc = blob(config.1);
    config_desc["mediaType"] = config.0.into();
    let layers: Vec<_> = layers
        .iter()
        .map(|(media, data)| {
            let mut d = blob(data);
            d["mediaType"] = (*media).into();
            d
        })
        .collect();
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": config_desc,
        "layers": layers,
    });
    ureq::put(&format!("{base}/v2/{repo}/manifests/{tag}"))
        .set("content-type", "application/vnd.oci.image.manifest.v1+json")
        .send_string(&manifest.to_string())
        .unwrap();
}

#[test]
fn the_older_spin_shape_and_a_single_cncf_component_run() {
    let Some(registry) = Registry::start(None) else { return };
    let wasm = std::fs::read(guest("http_guest.wasm")).unwrap();

    // Older Spin: the locked app is the manifest's config.
    let locked = serde_json::json!({
        "spin_lock_version": 0,
        "metadata": { "name": "old" },
        "triggers": [ { "id": "t", "trigger_type": "http", "trigger_config": { "route": "/...", "component": "old" } } ],
        "components": [ { "id": "old", "source": { "content_type": "application/wasm", "digest": digest(&wasm) },
                          "files": [ { "inline": "b2xkIGZpbGUK", "path": "/f.txt" } ] } ]
    })
    .to_string();
    push_raw(&registry, "spin/old", "v1", ("application/vnd.fermyon.spin.application.v1+config", locked.as_bytes()), &[("application/vnd.wasm.content.layer.v1+wasm", &wasm)]);
    let machine = Machine::new();
    let server = machine.serve(&format!("{}/spin/old:v1", registry.host()));
    assert_eq!(server.get("/hello").body, "Hello from Tessera\n");
    assert_eq!(server.get("/read?path=/f.txt").body, "old file\n");
    drop(server);

    // CNCF Wasm OCI artifact: one component, served on `/...`.
    push_raw(&registry, "cncf/hello", "v1", ("application/vnd.wasm.config.v0+json", b"{}"), &[("application/wasm", &wasm)]);
    let server = machine.serve(&format!("{}/cncf/hello:v1", registry.host()));
    assert_eq!(server.get("/any/hello").body, "Hello from Tessera\n");
}

/// Serves `data` at every path on a loopback port and counts the requests.
fn file_server(data: Vec<u8>) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    let (addr, count) = canned_server("200 OK", "", data);
    (format!("http://{addr}/hello.wasm"), count)
}

fn app_with_source(source: &str) -> App {
    App::new(&format!(
        "spin_manifest_version = 2\n[application]\nname = \"pinned\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"web\"\n[component.web]\nsource = {source}\n"
    ))
}

#[test]
fn a_url_source_is_verified_cached_and_a_mismatch_keeps_nothing() {
    let wasm = std::fs::read(guest("http_guest.wasm")).unwrap();
    let (url, downloads) = file_server(wasm.clone());
    let machine = Machine::new();

    let good = app_with_source(&format!("{{ url = \"{url}\", digest = \"{}\" }}", digest(&wasm)));
    let server = Server::start_with(machine.command(), good.path(), &[]);
    assert_eq!(server.get("/hello").body, "Hello from Tessera\n");
    drop(server);
    assert_eq!(downloads.load(std::sync::atomic::Ordering::SeqCst), 1);
    // The second start finds the component in the cache and downloads nothing.
    let server = Server::start_with(machine.command(), good.path(), &[]);
    assert_eq!(server.get("/hello").body, "Hello from Tessera\n");
    drop(server);
    assert_eq!(downloads.load(std::sync::atomic::Ordering::SeqCst), 1);

    // A digest that does not match what the URL serves: refused, and nothing of it kept.
    let wrong = digest(b"something else");
    let bad = app_with_source(&format!("{{ url = \"{url}\", digest = \"{wrong}\" }}"));
    let other = Machine::new();
    let out = other.command().args(["up", "-f"]).arg(bad.path()).output().unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("expected {wrong}, downloaded {}", digest(&wasm))), "{err}");
    assert!(err.contains("nothing was kept") && err.contains("spin.toml:8:"), "{err}");
    assert_eq!(other.files_in_cache(), Vec::<PathBuf>::new());
}

#[test]
fn a_registry_package_source_runs() {
    let Some(registry) = Registry::start(None) else { return };
    let wasm = std::fs::read(guest("http_guest.wasm")).unwrap();
    push_raw(&registry, "acme/hello", "1.0.0", ("application/vnd.wasm.config.v0+json", b"{}"), &[("application/wasm", &wasm)]);
    let app = app_with_source(&format!("{{ registry = \"{}\", package = \"acme:hello\", version = \"1.0.0\" }}", registry.host()));
    let machine = Machine::new();
    let server = Server::start_with(machine.command(), app.path(), &["-k"]);
    assert_eq!(server.get("/hello").body, "Hello from Tessera\n");
    drop(server);
    let cached = machine.files_in_cache();
    assert!(cached.iter().any(|p| p.ends_with(&digest(&wasm)[7..])), "{cached:?}");

    let missing = app_with_source(&format!("{{ registry = \"{}\", package = \"acme:hello\", version = \"9.9.9\" }}", registry.host()));
    let out = machine.command().args(["up", "-k", "-f"]).arg(missing.path()).output().unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success() && err.contains("acme:hello@9.9.9") && err.contains("acme/hello:9.9.9"), "{err}");
}

#[test]
fn a_url_dependency_is_verified_cached_and_a_mismatch_keeps_nothing() {
    let calc = std::fs::read(guest("calc_guest.wasm")).unwrap();
    let (url, downloads) = file_server(calc.clone());
    let with_dependency = |digest: &str| {
        App::new(&format!(
            "spin_manifest_version = 2\n[application]\nname = \"composed\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"api\"\n[component.api]\nsource = \"{{calc_user_guest}}\"\n[component.api.dependencies]\n\"tessera:calc\" = {{ url = \"{url}\", digest = \"{digest}\" }}\n"
        ))
    };
    let machine = Machine::new();
    let good = with_dependency(&digest(&calc));
    for _ in 0..2 {
        let server = Server::start_with(machine.command(), good.path(), &[]);
        assert_eq!(server.get("/add?a=1&b=2").body, "3\n");
    }
    assert_eq!(downloads.load(std::sync::atomic::Ordering::SeqCst), 1, "the second start reads the dependency from the cache");

    let wrong = digest(b"something else");
    let other = Machine::new();
    let out = other.command().args(["up", "-f"]).arg(with_dependency(&wrong).path()).output().unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("spin.toml:10:18: component `api` dependency `tessera:calc`: cannot fetch") && err.contains(&format!("expected {wrong}, downloaded {}", digest(&calc))) && err.contains("nothing was kept"), "{err}");
    assert_eq!(other.files_in_cache(), Vec::<PathBuf>::new());
}

/// `api` importing `tessera:calc`, satisfied by component `calc`, with a store granted.
const COMPOSED_APP: &str = r#"spin_manifest_version = 2
[application]
name = "composed"
[[trigger.http]]
route = "/..."
component = "api"
[component.api]
source = "{calc_user_guest}"
key_value_stores = ["default"]
environment = { GREETING = "hello from api" }
[component.api.dependencies]
"tessera:calc" = { component = "calc" }
[component.calc]
source = "{calc_guest}"
"#;

#[test]
fn an_app_with_dependencies_is_pushed_composed_and_runs_from_its_reference() {
    let Some(registry) = Registry::start(None) else { return };
    let app = App::new(COMPOSED_APP);
    let reference = format!("{}/tessera/composed:v1", registry.host());
    ok(&Machine::new().run(&["registry", "push", &reference, "-f", app.path().to_str().unwrap(), "-k"]));

    // As Spin pushes it: one component holding its dependency, no dependencies left.
    let puller = Machine::new();
    let manifest = PathBuf::from(ok(&puller.run(&["registry", "pull", &reference, "-k"])).trim());
    let text = std::fs::read_to_string(&manifest).unwrap();
    assert!(!text.contains("dependencies"), "{text}");
    let pulled = std::fs::read(manifest.parent().unwrap().join("api.wasm")).unwrap();
    assert_ne!(pulled, std::fs::read(guest("calc_user_guest.wasm")).unwrap(), "the pushed component is the composed one");

    let server = Machine::new().serve(&reference);
    assert_eq!(server.get("/add?a=2&b=40").body, "42\n");
    // The dependency still gets nothing of its parent's.
    assert_eq!(server.get("/greeting").body, "no greeting\n");
    assert_eq!(server.get("/kv").body, "error: access-denied\n");
    assert_eq!(server.get("/env").body, "hello from api\n");
}

#[test]
fn an_artifact_with_locked_dependencies_runs_composed_at_load() {
    let Some(registry) = Registry::start(None) else { return };
    let (api, calc) = (std::fs::read(guest("calc_user_guest.wasm")).unwrap(), std::fs::read(guest("calc_guest.wasm")).unwrap());
    // What a Spin that did not compose at push wrote: the dependency as a locked source.
    let locked = serde_json::json!({
        "spin_lock_version": 0,
        "metadata": { "name": "deps" },
        "triggers": [ { "id": "t", "trigger_type": "http", "trigger_config": { "route": "/...", "component": "api" } } ],
        "components": [ {
            "id": "api",
            "source": { "content_type": "application/wasm", "digest": digest(&api) },
            "env": { "GREETING": "hello from api" },
            "dependencies": { "tessera:calc": {
                "source": { "content_type": "application/wasm", "digest": digest(&calc) },
                "export": null,
                "inherit": { "Some": ["environment"] }
            } }
        } ]
    })
    .to_string();
    push_raw(
        &registry,
        "spin/deps",
        "v1",
        ("application/vnd.oci.image.config.v1+json", b"{}"),
        &[("application/vnd.wasm.content.layer.v1+wasm", &api), ("application/vnd.wasm.content.layer.v1+wasm", &calc), ("application/vnd.fermyon.spin.application.v1+config", locked.as_bytes())],
    );
    let server = Machine::new().serve(&format!("{}/spin/deps:v1", registry.host()));
    assert_eq!(server.get("/add?a=2&b=40").body, "42\n");
    assert_eq!(server.get("/greeting").body, "hello from api\n", "inherit = Some([environment]) is kept");
}

#[test]
fn a_registry_dependency_resolves_its_version_requirement_to_the_highest_match() {
    let Some(registry) = Registry::start(None) else { return };
    let calc = std::fs::read(guest("calc_guest.wasm")).unwrap();
    for tag in ["0.1.0", "0.2.0", "1.0.0", "not-a-version"] {
        push_raw(&registry, "tessera/calc", tag, ("application/vnd.wasm.config.v0+json", b"{}"), &[("application/wasm", &calc)]);
    }
    let with_dependency = |dependency: &str| {
        App::new(&format!(
            "spin_manifest_version = 2\n[application]\nname = \"composed\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"api\"\n[component.api]\nsource = \"{{calc_user_guest}}\"\n[component.api.dependencies]\n{dependency}\n"
        ))
    };
    let machine = Machine::new();
    let app = with_dependency(&format!("\"tessera:calc\" = {{ version = \">=0.1.0, <1.0.0\", registry = \"{}\" }}", registry.host()));
    let server = Server::start_with(machine.command(), app.path(), &["-k"]);
    assert_eq!(server.get("/add?a=2&b=40").body, "42\n");
    assert!(server.stderr.lock().unwrap().contains("package tessera:calc: >=0.1.0, <1.0.0 resolves to 0.2.0"), "{}", server.stderr.lock().unwrap());
    drop(server);

    // The short form takes its registry from the wkg config, as Spin's does.
    let config = app.path().join("wkg.toml");
    std::fs::write(&config, format!("default_registry = \"{}\"\n", registry.host())).unwrap();
    let short = with_dependency("\"tessera:calc\" = \"^0.1\"");
    let mut command = machine.command();
    command.env("WKG_CONFIG_FILE", &config);
    let server = Server::start_with(command, short.path(), &["-k"]);
    assert_eq!(server.get("/add?a=1&b=2").body, "3\n");
    assert!(server.stderr.lock().unwrap().contains("^0.1 resolves to 0.1.0"));
    drop(server);

    let none = with_dependency(&format!("\"tessera:calc\" = {{ version = \">=2\", registry = \"{}\" }}", registry.host()));
    let out = machine.command().args(["up", "-k", "-f"]).arg(none.path()).output().unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success() && err.contains("spin.toml:10:18") && err.contains("no version of tessera:calc meets `>=2` (published: "), "{err}");
}
