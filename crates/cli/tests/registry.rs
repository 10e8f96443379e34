//! Apps in a real OCI registry (Debian's `docker-registry`, CNCF distribution) on a
//! loopback port: push, pull, run from a reference, tampering, basic auth.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use support::*;

/// A `tessera` command with its own registry cache and docker config, as on a clean machine.
struct Machine {
    cache: tempfile::TempDir,
    docker: tempfile::TempDir,
    work: tempfile::TempDir,
}

impl Machine {
    fn new() -> Self {
        Self { cache: tempfile::tempdir().unwrap(), docker: tempfile::tempdir().unwrap(), work: tempfile::tempdir().unwrap() }
    }

    fn command(&self) -> Command {
        let mut cmd = tessera();
        cmd.env("TESSERA_REGISTRY_CACHE", self.cache.path())
            .env("DOCKER_CONFIG", self.docker.path())
            .current_dir(self.work.path());
        cmd
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write as _;
        let mut child = self.command().args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    fn serve(&self, reference: &str) -> Server {
        Server::start_with(self.command(), Path::new(reference), &["-k"])
    }

    fn files_in_cache(&self) -> Vec<PathBuf> {
        let mut out = Vec::new();
        let mut stack = vec![self.cache.path().to_path_buf()];
        while let Some(d) = stack.pop() {
            for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
                if e.path().is_dir() { stack.push(e.path()) } else { out.push(e.path()) }
            }
        }
        out
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn ok(out: &Output) -> String {
    assert!(out.status.success(), "tessera failed:\nstdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

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
    let digest = {
        use std::fmt::Write as _;
        let hash = sha256(&wasm);
        let mut hex = String::new();
        for b in hash {
            write!(hex, "{b:02x}").unwrap();
        }
        format!("sha256:{hex}")
    };
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

    let out = machine.run_with_stdin(&["registry", "login", &registry.host(), "-u", "ada", "--password-stdin", "-k"], "s3cret\n");
    ok(&out);
    let config = std::fs::read_to_string(machine.docker.path().join("config.json")).unwrap();
    assert!(config.contains(&registry.host()), "{config}");

    ok(&machine.run(&["registry", "push", &reference, "-f", manifest, "-k"]));
    let server = machine.serve(&reference);
    assert_eq!(server.get("/read?path=/static/small.txt").body, "small file\n");
}

/// SHA-256, so the test names the blob the way the registry does.
fn sha256(data: &[u8]) -> [u8; 32] {
    let out = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().and_then(|mut c| {
        use std::io::Write as _;
        c.stdin.take().unwrap().write_all(data)?;
        c.wait_with_output()
    });
    let hex = text(&out.unwrap().stdout);
    let mut bytes = [0u8; 32];
    for (i, b) in bytes.iter_mut().enumerate() {
        *b = u8::from_str_radix(&hex[i * 2..i * 2 + 2], 16).unwrap();
    }
    bytes
}
