//! `tessera watch`: a change to a component's source rebuilds and reloads it while clients
//! keep calling, with no request failing; a change that does not build keeps the last
//! version serving and says why.

mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use support::*;

#[test]
fn a_change_rebuilds_and_reloads_without_a_failed_request() {
    let work = tempfile::tempdir().unwrap();
    let out = tessera().current_dir(work.path()).args(["new", "http-rust", "live"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let app = work.path().join("live");
    // Dependencies compile once for every test that builds a template.
    let shared = repo_root().join("target/template-builds");
    std::fs::create_dir_all(&shared).unwrap();
    std::os::unix::fs::symlink(&shared, app.join("target")).unwrap();
    // Built once first, without the start-up timeout (another test may hold the shared
    // target directory); watch's own first build then finds nothing to do.
    let built = tessera().current_dir(&app).arg("build").output().unwrap();
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));

    let mut cmd = tessera();
    cmd.current_dir(&app).args(["watch", "--listen", "127.0.0.1:0", "--cache-dir"]).arg(cache_dir());
    let mut server = Server::launch(cmd).unwrap();
    assert!(server.get("/x").body.starts_with("Hello from live!"));

    // Clients call for the whole test; every answer must be a 200.
    let stop = Arc::new(AtomicBool::new(false));
    let (answered, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (url, stop, answered, failed) = (server.url("/x"), stop.clone(), answered.clone(), failed.clone());
            std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let r = request("GET", &url, &[], None);
                    answered.fetch_add(1, Ordering::Relaxed);
                    if r.status != 200 {
                        failed.fetch_add(1, Ordering::Relaxed);
                        eprintln!("failed: {} {}", r.status, r.body);
                    }
                }
            })
        })
        .collect();

    let source = app.join("src/lib.rs");
    let code = std::fs::read_to_string(&source).unwrap();
    std::fs::write(&source, code.replace("Hello from", "Howdy from")).unwrap();
    let deadline = Instant::now() + Duration::from_secs(300);
    while !server.get("/x").body.starts_with("Howdy from live!") {
        assert!(Instant::now() < deadline, "no reload: {}", server.stderr.lock().unwrap());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(server.stdout.lock().unwrap().contains("Reloaded: version 2"));

    // Code that does not compile: the error is shown, version 2 keeps serving.
    std::fs::write(&source, "this is not rust").unwrap();
    let log = server.wait_for_log("The previous version keeps serving.");
    assert!(log.contains("the build command of component `live` failed"), "{log}");
    assert!(server.get("/x").body.starts_with("Howdy from live!"));

    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    assert!(answered.load(Ordering::Relaxed) > 20, "too few requests to tell");
    assert_eq!(failed.load(Ordering::Relaxed), 0, "requests failed during the reload");
    assert!(server.terminate().success());
}

#[test]
fn a_build_that_never_ends_is_stopped_by_the_next_change_and_by_ctrl_c_and_up_flags_apply() {
    let app = App::new(
        r#"spin_manifest_version = 2
[application]
name = "stuck"
[[trigger.http]]
route = "/..."
component = "guest"
[component.guest]
source = "{http_guest}"
[component.guest.build]
command = "if grep -q hang marker.txt; then echo $$ > build.pid; exec sleep 600; fi"
watch = ["marker.txt"]
"#,
    );
    app.write("marker.txt", "quick\n");
    let mut cmd = tessera();
    cmd.current_dir(app.path()).args(["watch", "--listen", "127.0.0.1:0", "--cache-dir"]).arg(cache_dir()).args(["--", "-e", "FROM_WATCH=yes"]);
    let mut server = Server::launch(cmd).unwrap();
    assert_eq!(server.get("/hello").status, 200);
    assert!(server.get("/env").body.contains("FROM_WATCH=yes"), "up's flags after -- reach each version");
    let bad = tessera().current_dir(app.path()).args(["watch", "--listen", "127.0.0.1:0", "--", "--no-such-flag"]).output().unwrap();
    let e = String::from_utf8_lossy(&bad.stderr);
    assert!(!bad.status.success() && e.contains("--no-such-flag"), "{e}");

    // The build hangs; the running version keeps serving.
    app.write("marker.txt", "hang\n");
    let pid_file = app.path().join("build.pid");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pid_file.exists() {
        assert!(Instant::now() < deadline, "the hanging build never started: {}", server.stdout.lock().unwrap());
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let hung = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
    assert!(Path::new(&format!("/proc/{hung}")).exists());
    assert_eq!(server.get("/hello").status, 200, "the old version serves during the build");

    // The next edit stops it (the process is gone) and builds again, which reloads.
    std::fs::remove_file(&pid_file).unwrap();
    app.write("marker.txt", "quick again\n");
    server.wait_for_stdout("A change arrived during the build: stopped it, building again");
    server.wait_for_stdout("Reloaded: version 2");
    assert!(!Path::new(&format!("/proc/{hung}")).exists(), "the stopped build's process {hung} still runs");

    // Ctrl+C during a hanging build stops the watch at once, and the build with it.
    app.write("marker.txt", "hang\n");
    let deadline = Instant::now() + Duration::from_secs(30);
    while !pid_file.exists() {
        assert!(Instant::now() < deadline, "the second hanging build never started");
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(200));
    let hung = std::fs::read_to_string(&pid_file).unwrap().trim().to_string();
    server.signal("INT");
    let status = server.wait_exit(Duration::from_secs(10)).expect("watch did not stop during a hanging build");
    assert!(status.success(), "{status:?}");
    assert!(!Path::new(&format!("/proc/{hung}")).exists(), "the hanging build outlived the watch");
}
