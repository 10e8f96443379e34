//! `tessera host`: many apps in one process, routed by Host header and path prefix, each
//! with its own state, variables, `[trust]` policy and quota; the apps file reconciled on
//! SIGHUP with no request failing while an app is replaced.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use support::*;

/// An app of the HTTP test guest on every path.
fn http_app() -> App {
    App::new(GUEST_APP)
}

/// An app of the Spin SDK guest with the default key-value store and a required variable.
fn spin_app() -> App {
    App::new(
        "spin_manifest_version = 2\n[application]\nname = \"kv\"\n[variables]\ngreeting = { required = true }\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"spin\"\n[component.spin]\nsource = \"{spin_guest}\"\nkey_value_stores = [\"default\"]\nvariables = { greeting = \"{{ greeting }}\" }\n",
    )
}

fn get_from(server: &Server, host: &str, path: &str) -> Response {
    request("GET", &server.url(path), &[("host", host)], None)
}

fn write_apps(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("apps.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn dir_of(app: &App) -> String {
    app.path().display().to_string()
}

#[test]
fn apps_are_routed_by_host_header_and_path_prefix() {
    let (web, api) = (http_app(), http_app());
    let dir = tempfile::tempdir().unwrap();
    let apps = write_apps(
        dir.path(),
        &format!("[[app]]\nname = \"web\"\nsource = \"{}\"\npath_prefix = \"/web\"\n\n[[app]]\nname = \"api\"\nsource = \"{}\"\nhosts = [\"api.test\"]\n", dir_of(&web), dir_of(&api)),
    );
    let server = Server::host(&apps, &["--state-dir", dir.path().join("state").to_str().unwrap()]).unwrap();
    let out = server.stdout.lock().unwrap().clone();
    assert!(out.contains("App web (any host, under /web):") && out.contains("App api (api.test, under /):"), "{out}");
    // The two apps run the same bytes: the second shares the first one's compiled code.
    let log = server.log();
    assert!(log.contains("component `guest` (") && log.contains("shares the code of the same bytes already loaded"), "{log}");

    // Under its prefix the app is served as if alone at `/`: the prefix is stripped (as a
    // reverse proxy's strip-prefix does) and `x-forwarded-prefix` says where it is mounted.
    let r = server.get("/web/headers?q=1");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("spin-path-info: /headers") && r.body.contains("x-forwarded-prefix: /web"), "{}", r.body);
    assert!(r.body.contains(&format!("spin-full-url: http://{}/headers?q=1", server.addr)), "{}", r.body);
    assert_eq!(server.get("/web").status, 200, "the prefix alone is the app's `/`");
    // Whole segments only: /webshop is not under /web.
    let r = server.get("/webshop");
    assert_eq!(r.status, 404, "{}", r.body);
    assert!(r.body.contains("no app serves host") && r.body.contains("/webshop"), "{}", r.body);

    // By Host header, any case and port; the named host wins over the any-host app.
    for host in ["api.test", "API.test:8080"] {
        let r = get_from(&server, host, "/hello");
        assert_eq!(r.status, 200, "{host}: {}", r.body);
    }
    let r = get_from(&server, "api.test", "/headers");
    assert!(r.body.contains("spin-base-path: /\n") || r.body.contains("spin-base-path: /\r"), "{}", r.body);
    assert_eq!(get_from(&server, "other.test", "/hello").status, 404);
}

#[test]
fn each_app_has_its_own_state_variables_and_trust() {
    let (a, b, c) = (spin_app(), spin_app(), http_app());
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    let out = std::process::Command::new("ssh-keygen").args(["-t", "ed25519", "-q", "-N", "", "-f"]).arg(&key).output().expect("ssh-keygen (openssh-client)");
    assert!(out.status.success());
    std::fs::write(dir.path().join("trust.toml"), format!("[trust]\nkeys = [\"{}.pub\"]\n", key.display())).unwrap();
    let apps = write_apps(
        dir.path(),
        &format!(
            "[[app]]\nname = \"a\"\nsource = \"{}\"\npath_prefix = \"/a\"\nvariables = {{ greeting = \"from a\" }}\n\n\
             [[app]]\nname = \"b\"\nsource = \"{}\"\npath_prefix = \"/b\"\nvariables = {{ greeting = \"from b\" }}\n\n\
             [[app]]\nname = \"c\"\nsource = \"{}\"\npath_prefix = \"/c\"\nruntime_config = \"trust.toml\"\n",
            dir_of(&a),
            dir_of(&b),
            dir_of(&c)
        ),
    );
    // A variable in the host's environment reaches no app: each has its own values.
    let mut cmd = tessera();
    cmd.env("SPIN_VARIABLE_GREETING", "from the environment");
    let state = dir.path().join("state");
    let server = Server::host_with(cmd, &apps, &["--state-dir", state.to_str().unwrap()]).unwrap();
    assert_eq!(server.get("/a/variables/greeting").body, "from a");
    assert_eq!(server.get("/b/variables/greeting").body, "from b");

    // Each app's default store is its own file under <state-dir>/<app>.
    assert_eq!(request("PUT", &server.url("/a/kv/default/k"), &[], Some(b"only a")).status, 200);
    assert_eq!(server.get("/a/kv/default/k").body, "only a");
    assert_eq!(server.get("/b/kv/default/k").status, 404);
    assert!(state.join("a").exists() && state.join("b").exists(), "state dirs per app");

    // `c`'s [trust] refuses its unsigned component: it is not deployed, the others serve.
    let log = server.wait_for_log("app `c` not deployed");
    assert!(log.contains("app `c` not deployed") && log.contains("[trust] refuses component `guest`"), "{log}");
    assert_eq!(server.get("/c/hello").status, 404);
    assert_eq!(server.get("/a/variables/greeting").status, 200);
}

#[test]
fn a_tenant_at_its_quota_waits_for_its_own_slots() {
    let (noisy, quiet) = (http_app(), http_app());
    let dir = tempfile::tempdir().unwrap();
    let apps = write_apps(
        dir.path(),
        &format!(
            "[[app]]\nname = \"noisy\"\nsource = \"{}\"\npath_prefix = \"/noisy\"\n[app.quota]\ninstances = 1\nqueued = 0\nmemory = \"16 MiB\"\n\n\
             [[app]]\nname = \"quiet\"\nsource = \"{}\"\npath_prefix = \"/quiet\"\n\n\
             [[app]]\nname = \"greedy\"\nsource = \"{}\"\npath_prefix = \"/greedy\"\n[app.quota]\ninstances = 5000\n",
            dir_of(&noisy),
            dir_of(&quiet),
            dir_of(&quiet)
        ),
    );
    let server = Server::host(&apps, &["--state-dir", dir.path().join("state").to_str().unwrap(), "--max-instances", "64"]).unwrap();
    let log = server.wait_for_log("app `greedy` not deployed");
    assert!(log.contains("asks for 5000 instance slots") && log.contains("raise --max-instances"), "{log}");

    let slow = {
        let url = server.url("/noisy/sleep?ms=1500");
        std::thread::spawn(move || request("GET", &url, &[], None))
    };
    std::thread::sleep(Duration::from_millis(300));
    // The noisy app's one slot is taken and it may queue none: 503 for it alone.
    let r = server.get("/noisy/hello");
    assert_eq!(r.status, 503, "{}", r.body);
    let r = server.get("/quiet/hello");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(slow.join().unwrap().status, 200);

    // Its memory quota holds its instances to 16 MiB; the other app keeps the host's 128.
    assert_eq!(server.get("/noisy/memory-bomb").status, 500);
    let log = server.wait_for_log("max_instance_memory is 16777216");
    assert!(log.contains("hit its memory limit") && log.contains("max_instance_memory is 16777216"), "{log}");
    assert_eq!(server.get("/quiet/memory-bomb").status, 500);
    // Access-log lines name the app (its path is as the app saw it, without the prefix).
    server.wait_for_log_lines("GET /memory-bomb 500", 2);
    let log = server.log();
    let line = log.lines().find(|l| l.contains("GET /memory-bomb 500") && l.contains("app=quiet")).expect("access log line");
    let peak: u64 = line.split("peak_memory=").nth(1).unwrap().split("KiB").next().unwrap().parse().unwrap();
    assert!(peak > 100 * 1024, "the quiet app's instance grew past the noisy app's quota: {line}");
}

#[test]
fn sighup_reconciles_the_apps_file_and_updates_drop_no_request() {
    let (greeter, web) = (spin_app(), http_app());
    let dir = tempfile::tempdir().unwrap();
    let entry = |greeting: &str| format!("[[app]]\nname = \"greeter\"\nsource = \"{}\"\nvariables = {{ greeting = \"{greeting}\" }}\n", dir_of(&greeter));
    let web_entry = format!("\n[[app]]\nname = \"web\"\nsource = \"{}\"\npath_prefix = \"/web\"\n", dir_of(&web));
    let apps = write_apps(dir.path(), &entry("v1"));
    let server = Server::host(&apps, &["--state-dir", dir.path().join("state").to_str().unwrap()]).unwrap();
    assert_eq!(server.get("/variables/greeting").body, "v1");
    assert_eq!(server.get("/web/hello").status, 404);

    // Load from four clients for the whole test; every answer must be 200.
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(Mutex::new(Vec::new())));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (url, stop, answered, failed) = (server.url("/variables/greeting"), stop.clone(), answered.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = request("GET", &url, &[], None);
                    if r.status == 200 {
                        answered.fetch_add(1, Ordering::Relaxed);
                    } else {
                        failed.lock().unwrap().push(format!("{}: {}", r.status, r.body));
                    }
                }
            })
        })
        .collect();

    // Add an app and change another's variables: the new version takes over.
    write_apps(dir.path(), &(entry("v2") + &web_entry));
    server.signal("HUP");
    let log = server.wait_for_log("apps: 1 deployed, 1 updated");
    assert_eq!(server.get("/variables/greeting").body, "v2");
    assert_eq!(server.get("/web/hello").status, 200);
    assert!(log.contains("app `greeter`: version 2 serves; version 1 drains"), "{log}");

    // A request in flight on the old version finishes there while the update happens.
    let slow = {
        let url = server.url("/web/sleep?ms=1500");
        std::thread::spawn(move || request("GET", &url, &[], None))
    };
    std::thread::sleep(Duration::from_millis(200));
    std::fs::write(web.path().join("spin.toml"), std::fs::read_to_string(web.path().join("spin.toml")).unwrap() + "\n").unwrap();
    server.signal("HUP");
    server.wait_for_log("app `web`: version 2 serves");
    assert_eq!(slow.join().unwrap().status, 200, "the in-flight request on the old version");

    // A broken file changes nothing; removing an entry undeploys the app.
    write_apps(dir.path(), "[[app]]\nname = \"Bad Name\"\nsource = \"x\"\n");
    server.signal("HUP");
    let log = server.wait_for_log("the apps deployed stay as they are");
    assert!(log.contains("apps.toml:2:8"), "{log}");
    assert_eq!(server.get("/web/hello").status, 200);
    write_apps(dir.path(), &entry("v2"));
    server.signal("HUP");
    server.wait_for_log("app `web`: no longer in the apps file; undeployed");
    assert_eq!(server.get("/web/hello").status, 404);

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let failed = failed.lock().unwrap();
    assert!(failed.is_empty(), "{} of {} requests failed during the updates: {:?}", failed.len(), answered.load(Ordering::Relaxed) + failed.len(), &failed[..failed.len().min(5)]);
    assert!(answered.load(Ordering::Relaxed) > 50, "the clients were answered throughout");
}

use std::sync::Mutex;

const TOKEN: &str = "0123456789abcdef0123456789abcdef";

fn admin(server: &Server) -> String {
    let out = server.wait_for_stdout("Admin API on http://");
    let line = out.lines().find_map(|l| l.strip_prefix("Admin API on http://")).expect("the admin API's address");
    format!("http://{}", line.trim())
}

/// A host of `apps` with its state in `state` and the admin API on, and that API's URL.
fn host_with_admin(apps: &Path, state: &Path) -> (Server, String) {
    let mut cmd = tessera();
    cmd.env("TESSERA_ADMIN_TOKEN", TOKEN);
    let server = Server::host_with(cmd, apps, &["--state-dir", state.to_str().unwrap(), "--admin", "127.0.0.1:0"]).unwrap();
    let admin = admin(&server);
    (server, admin)
}

fn call(admin: &str, method: &str, path: &str, body: Option<&str>, extra: &[(&str, &str)]) -> Response {
    let auth = format!("Bearer {TOKEN}");
    let mut headers = vec![("authorization", auth.as_str())];
    headers.extend_from_slice(extra);
    request(method, &format!("{admin}{path}"), &headers, body.map(str::as_bytes))
}

#[test]
fn the_admin_api_deploys_lists_updates_and_undeploys_behind_its_token() {
    let (site, api) = (http_app(), spin_app());
    let dir = tempfile::tempdir().unwrap();
    let apps = write_apps(dir.path(), &format!("[[app]]\nname = \"site\"\nsource = \"{}\"\n", dir_of(&site)));
    let (server, admin) = host_with_admin(&apps, &dir.path().join("state"));

    // No token, a wrong one: 401, and nothing is told.
    let r = request("GET", &format!("{admin}/v1/apps"), &[], None);
    assert_eq!((r.status, r.header("www-authenticate")), (401, Some("Bearer")), "{}", r.body);
    let r = request("GET", &format!("{admin}/v1/apps"), &[("authorization", "Bearer 0123456789abcdef0123456789abcdeX")], None);
    assert_eq!(r.status, 401);
    assert!(!r.body.contains("site"), "{}", r.body);

    // Deploy from a directory.
    let entry = |greeting: &str| format!("source = \"{}\"\npath_prefix = \"/api\"\nvariables = {{ greeting = \"{greeting}\" }}\n", dir_of(&api));
    let r = call(&admin, "PUT", "/v1/apps/api", Some(&entry("one")), &[]);
    assert_eq!(r.status, 201, "{}", r.body);
    assert!(r.body.contains("\"version\": 1"), "{}", r.body);
    assert_eq!(server.get("/api/variables/greeting").body, "one");
    let r = call(&admin, "GET", "/v1/apps", None, &[]);
    assert!(r.body.contains("\"name\": \"api\"") && r.body.contains("\"name\": \"site\""), "{}", r.body);
    let r = call(&admin, "GET", "/v1/apps/api", None, &[]);
    assert!(r.status == 200 && r.body.contains("\"path_prefix\": \"/api\""), "{}", r.body);
    assert_eq!(call(&admin, "GET", "/v1/apps/nope", None, &[]).status, 404);

    // An update, as JSON: version 2 serves.
    let json = format!("{{\"source\": \"{}\", \"path_prefix\": \"/api\", \"variables\": {{\"greeting\": \"two\"}}}}", dir_of(&api));
    let r = call(&admin, "PUT", "/v1/apps/api", Some(&json), &[("content-type", "application/json")]);
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"version\": 2"), "{}", r.body);
    assert_eq!(server.get("/api/variables/greeting").body, "two");

    // A bad entry names its line; a route another app serves, and an app that does not
    // load, are refused and the deployed version keeps serving.
    let r = call(&admin, "PUT", "/v1/apps/api", Some(&format!("source = \"{}\"\npath_prefix = \"api\"\n", dir_of(&api))), &[]);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("PUT /v1/apps/api:2:15") && r.body.contains("not a path"), "{}", r.body);
    let r = call(&admin, "PUT", "/v1/apps/api", Some(&format!("source = \"{}\"\n", dir_of(&api))), &[]);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("which app `site` serves"), "{}", r.body);
    let r = call(&admin, "PUT", "/v1/apps/api", Some(&format!("source = \"{}\"\npath_prefix = \"/api\"\n", dir_of(&api))), &[]);
    assert_eq!(r.status, 422, "{}", r.body);
    assert!(r.body.contains("greeting") && r.body.contains("keeps serving"), "{}", r.body);
    assert_eq!(server.get("/api/variables/greeting").body, "two");

    // Reconciling the apps file leaves an app deployed through the API alone.
    server.signal("HUP");
    server.wait_for_log("1 unchanged, 0 undeployed");
    assert_eq!(server.get("/api/variables/greeting").status, 200);

    let r = call(&admin, "DELETE", "/v1/apps/api", None, &[]);
    assert_eq!(r.status, 204, "{}", r.body);
    // Its paths fall through to the app on `/` again.
    let r = server.get("/api/variables/greeting");
    assert!(r.status == 200 && r.body.contains("/api/variables/greeting") && r.body != "two", "{}", r.body);
    assert_eq!(call(&admin, "DELETE", "/v1/apps/api", None, &[]).status, 404);
    assert_eq!(server.get("/hello").status, 200, "the file's app serves on");
}

#[test]
fn the_admin_api_needs_a_token_to_listen() {
    let site = http_app();
    let dir = tempfile::tempdir().unwrap();
    let apps = write_apps(dir.path(), &format!("[[app]]\nname = \"site\"\nsource = \"{}\"\n", dir_of(&site)));
    let err = Server::host(&apps, &["--admin", "127.0.0.1:0"]).err().expect("no token, no start");
    assert!(err.contains("--admin needs a token") && err.contains("TESSERA_ADMIN_TOKEN"), "{err}");
    let mut cmd = tessera();
    cmd.env("TESSERA_ADMIN_TOKEN", "short");
    let err = Server::host_with(cmd, &apps, &["--admin", "127.0.0.1:0"]).err().expect("a short token is refused");
    assert!(err.contains("16 at least"), "{err}");
}

#[test]
fn hostile_admin_requests_are_refused_with_a_reason_and_change_nothing() {
    let site = http_app();
    let dir = tempfile::tempdir().unwrap();
    let apps = write_apps(dir.path(), &format!("[[app]]\nname = \"site\"\nsource = \"{}\"\n", dir_of(&site)));
    let (server, admin) = host_with_admin(&apps, &dir.path().join("state"));

    // A body past 64 KiB, bytes that are not text, a name that is not one, a path escape.
    let huge = format!("source = \"{}\"\n# {}\n", dir_of(&site), "x".repeat(100 << 10));
    let r = call(&admin, "PUT", "/v1/apps/big", Some(&huge), &[]);
    assert_eq!(r.status, 413, "{}", r.body);
    let r = request("PUT", &format!("{admin}/v1/apps/bin"), &[("authorization", &format!("Bearer {TOKEN}"))], Some(&[0xff, 0xfe, 0x00]));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = call(&admin, "PUT", "/v1/apps/Not_A_Name", Some(&format!("source = \"{}\"\npath_prefix = \"/n\"\n", dir_of(&site))), &[]);
    assert!(r.status == 400 && r.body.contains("is not allowed"), "{}", r.body);
    let r = call(&admin, "PUT", "/v1/apps/..%2F..%2Fetc", Some(&format!("source = \"{}\"\npath_prefix = \"/e\"\n", dir_of(&site))), &[]);
    assert_eq!(r.status, 400, "{}", r.body);
    let r = call(&admin, "PUT", "/v1/apps/x", Some("source = \"../../../../nonexistent\"\npath_prefix = \"/x\"\n"), &[]);
    assert!(r.status == 400 && r.body.contains("does not exist"), "{}", r.body);
    let r = call(&admin, "PUT", "/v1/apps/named", Some(&format!("name = \"other\"\nsource = \"{}\"\n", dir_of(&site))), &[]);
    assert!(r.status == 400 && r.body.contains("sent for `named`"), "{}", r.body);
    assert_eq!(call(&admin, "POST", "/v1/apps", None, &[]).status, 404);
    assert_eq!(call(&admin, "GET", "/v1/apps/a/b", None, &[]).status, 404);

    // A flood of wrong tokens: each refused, nothing deployed, the host serving.
    let floods: Vec<_> = (0..8)
        .map(|i| {
            let url = format!("{admin}/v1/apps");
            std::thread::spawn(move || (0..25).all(|_| request("GET", &url, &[("authorization", &format!("Bearer wrong-{i}-0123456789abcdef"))], None).status == 401))
        })
        .collect();
    assert!(floods.into_iter().all(|f| f.join().unwrap()));
    let r = call(&admin, "GET", "/v1/apps", None, &[]);
    assert!(r.body.contains("\"site\"") && !r.body.contains("\"big\"") && !r.body.contains("\"x\""), "{}", r.body);
    assert_eq!(server.get("/hello").status, 200);
}

/// An archive entry as written: path, kind, contents.
type Entry<'a> = (&'a str, tar::EntryType, &'a [u8]);

/// A tar.gz of `entries` as written: paths and kinds are not checked, as a hostile
/// client's are not.
fn tar_gz(entries: &[Entry<'_>]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(*kind);
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
        if *kind == tar::EntryType::Symlink {
            header.set_link_name("/etc/passwd").unwrap();
        }
        header.set_cksum();
        builder.append(&header, *data).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &builder.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

fn put_archive(admin: &str, path: &str, archive: &[u8]) -> Response {
    let auth = format!("Bearer {TOKEN}");
    request("PUT", &format!("{admin}{path}"), &[("authorization", auth.as_str()), ("content-type", "application/gzip")], Some(archive))
}

fn unpacked_archives(state: &Path) -> usize {
    std::fs::read_dir(state.join(".archives")).map_or(0, |d| d.count())
}

/// Waits up to 5 s for `count` unpacked archives (old versions drain first).
fn wait_for_unpacked(state: &Path, count: usize) -> bool {
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while unpacked_archives(state) != count {
        if std::time::Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

#[test]
fn apps_deploy_from_an_archive_and_hostile_archives_are_refused() {
    let site = http_app();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let apps = write_apps(dir.path(), &format!("[[app]]\nname = \"site\"\nsource = \"{}\"\n", dir_of(&site)));
    let (server, admin) = host_with_admin(&apps, &state);

    // The app's folder as `tar czf shop.tar.gz shop/` makes it: the manifest names its
    // component by a path relative to itself.
    let manifest = GUEST_APP.replace("{http_guest}", "guest.wasm");
    let wasm = std::fs::read(guest("http_guest.wasm")).unwrap();
    let archive = tar_gz(&[("shop/", tar::EntryType::Directory, b""), ("shop/spin.toml", tar::EntryType::Regular, manifest.as_bytes()), ("shop/guest.wasm", tar::EntryType::Regular, &wasm)]);
    let r = put_archive(&admin, "/v1/apps/shop?path_prefix=/shop&instances=2", &archive);
    assert_eq!(r.status, 201, "{}", r.body);
    let status: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!((status["path_prefix"].as_str(), status["instances"].as_u64()), (Some("/shop"), Some(2)), "{}", r.body);
    let r = server.get("/shop/hello");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(unpacked_archives(&state), 1);

    // A new version: the old unpacked copy goes once it has drained; undeploying removes the last.
    assert_eq!(put_archive(&admin, "/v1/apps/shop?path_prefix=/shop", &archive).status, 200);
    assert_eq!(server.get("/shop/hello").status, 200);
    assert!(wait_for_unpacked(&state, 1), "{} unpacked archives after an update", unpacked_archives(&state));
    assert_eq!(call(&admin, "DELETE", "/v1/apps/shop", None, &[]).status, 204);
    assert!(wait_for_unpacked(&state, 0), "{} unpacked archives after undeploying", unpacked_archives(&state));

    // Hostile archives: each refused by name, nothing written outside, nothing deployed.
    let cases: [(&[Entry<'_>], &str); 4] = [
        (&[("spin.toml", tar::EntryType::Regular, manifest.as_bytes()), ("../../escaped", tar::EntryType::Regular, b"x")], "points outside"),
        (&[("/tmp/escaped-absolute", tar::EntryType::Regular, b"x")], "points outside"),
        (&[("spin.toml", tar::EntryType::Regular, manifest.as_bytes()), ("guest.wasm", tar::EntryType::Symlink, b"")], "symbolic link"),
        (&[("readme", tar::EntryType::Regular, b"no manifest")], "no spin.toml"),
    ];
    for (entries, reason) in cases {
        let r = put_archive(&admin, "/v1/apps/evil?path_prefix=/evil", &tar_gz(entries));
        assert!(r.status == 400 && r.body.contains(reason), "{reason}: {} {}", r.status, r.body);
    }
    assert!(!state.join("escaped").exists() && !dir.path().join("escaped").exists() && !Path::new("/tmp/escaped-absolute").exists());
    let r = put_archive(&admin, "/v1/apps/evil?path_prefix=/evil", b"\x1f\x8bnot gzip at all");
    assert!(r.status == 400 && r.body.contains("not a readable tar"), "{}", r.body);
    let r = put_archive(&admin, "/v1/apps/evil?source=/etc", &archive);
    assert!(r.status == 400 && r.body.contains("unknown query key `source`"), "{}", r.body);
    // An archive whose app does not load: 422, and its files are gone.
    let broken = tar_gz(&[("spin.toml", tar::EntryType::Regular, manifest.as_bytes())]);
    let r = put_archive(&admin, "/v1/apps/evil?path_prefix=/evil", &broken);
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(unpacked_archives(&state), 0, "refused archives left files behind");
    let r = call(&admin, "GET", "/v1/apps", None, &[]);
    assert!(!r.body.contains("\"evil\""), "{}", r.body);
    assert_eq!(server.get("/hello").status, 200, "the file's app serves on");
}
