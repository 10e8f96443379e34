//! The shim under a real containerd (Debian's), started by the test as root with its own
//! root, state and socket directories: an image whose root file system holds `spin.toml`
//! and its component is imported with `ctr image import`, run with `ctr run --runtime
//! io.containerd.tessera.v1 --net-host`, answers requests, and drains on SIGTERM.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// containerd, or `None` (loudly) outside CI when it cannot run here.
struct Containerd {
    dir: tempfile::TempDir,
    child: Child,
}

impl Containerd {
    fn start() -> Option<Self> {
        let root = unsafe { geteuid() } == 0;
        let installed = Command::new("containerd").arg("--version").output().is_ok_and(|o| o.status.success());
        if !root || !installed {
            let why = if root { "containerd is not installed" } else { "the test is not root" };
            if std::env::var_os("CI").is_some() {
                panic!("{why}: CI must run the shim's tests (.ci/run installs containerd and runs as root)");
            }
            eprintln!("SKIPPED: {why}");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(
            d.join("config.toml"),
            format!(
                "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n[grpc]\n  address = \"{0}/containerd.sock\"\n",
                d.display()
            ),
        )
        .unwrap();
        // containerd finds `containerd-shim-tessera-v1` on its PATH.
        let shim_dir = Path::new(env!("CARGO_BIN_EXE_containerd-shim-tessera-v1")).parent().unwrap().to_path_buf();
        let path = format!("{}:{}", shim_dir.display(), std::env::var("PATH").unwrap_or_default());
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(d.join("config.toml"))
            .env("PATH", path)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        let this = Self { dir, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !this.ctr(&["version"]).status.success() {
            assert!(Instant::now() < deadline, "containerd did not start: {}", this.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(this)
    }

    fn ctr_command(&self) -> Command {
        let mut cmd = Command::new("ctr");
        cmd.arg("--address").arg(self.dir.path().join("containerd.sock"));
        cmd
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        self.ctr_command().args(args).output().unwrap()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// Builds an image of `app`'s files as its root file system and imports it as `name`.
    fn import_rootfs_image(&self, app: &Path, name: &str) {
        let tar = self.dir.path().join("image.tar");
        let made = Command::new("python3").arg(repo_root().join("crates/shim/tests/make_image.py")).arg(app).arg(name).arg(&tar).status().unwrap();
        assert!(made.success());
        let out = self.ctr(&["image", "import", "--all-platforms", tar.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

unsafe extern "C" {
    fn geteuid() -> u32;
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.split(' ').nth(1)?.parse().ok()?;
    Some((status, text.split("\r\n\r\n").nth(1).unwrap_or("").to_string()))
}

/// An image whose root file system holds `spin.toml` (`manifest`) and `files`, imported
/// into `containerd`; its name.
fn import_app(containerd: &Containerd, files: &[(&str, &[u8])], manifest: &str) -> String {
    let app = tempfile::tempdir().unwrap();
    for (name, bytes) in files {
        std::fs::write(app.path().join(name), bytes).unwrap();
    }
    std::fs::write(app.path().join("spin.toml"), manifest).unwrap();
    let image = format!("docker.io/tessera/app-{}-{}:rootfs", std::process::id(), free_port());
    containerd.import_rootfs_image(app.path(), &image);
    image
}

/// A task of the shim serving an app image, with its output in a file.
struct Task<'a> {
    containerd: &'a Containerd,
    id: String,
    port: u16,
    run: Child,
    output: PathBuf,
}

impl<'a> Task<'a> {
    /// `ctr run`s `image` listening on a free port; `extra` are more `ctr run` options.
    fn run(containerd: &'a Containerd, image: &str, extra: &[&str]) -> Self {
        let port = free_port();
        // The shim library keeps container state outside containerd's root: unique names.
        let id = format!("app-{}-{port}", std::process::id());
        let listen = format!("SPIN_HTTP_LISTEN_ADDR=127.0.0.1:{port}");
        let output = containerd.dir.path().join(format!("{id}.out"));
        let file = std::fs::File::create(&output).unwrap();
        let run = containerd
            .ctr_command()
            .args(["run", "--rm", "--runtime", "io.containerd.tessera.v1", "--net-host", "--env", &listen])
            .args(extra)
            .args([image, &id, "/"])
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        Self { containerd, id, port, run, output }
    }

    /// Waits until the app answers `path`.
    fn ready(self, path: &str) -> Self {
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(self.port, path).is_none() {
            assert!(Instant::now() < deadline, "no answer on port {}: {}\n{}", self.port, self.output(), self.containerd.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        self
    }

    /// Imports an image of `wasm` as `app.wasm` with `manifest` and runs it until it
    /// answers `ready`.
    fn start(containerd: &'a Containerd, wasm: &Path, manifest: &str, ready: &str) -> Self {
        let image = import_app(containerd, &[("app.wasm", &std::fs::read(wasm).unwrap())], manifest);
        Self::run(containerd, &image, &[]).ready(ready)
    }

    fn output(&self) -> String {
        std::fs::read_to_string(&self.output).unwrap_or_default()
    }

    /// Waits for a task that stops by itself; its exit status and output.
    fn exit(mut self) -> (std::process::ExitStatus, String) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.run.try_wait().unwrap() {
                return (status, self.output());
            }
            assert!(Instant::now() < deadline, "the task did not stop: {}", self.output());
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `ctr task kill` with SIGTERM; the task's exit status and output.
    fn terminate(self) -> (std::process::ExitStatus, String) {
        let killed = self.containerd.ctr(&["task", "kill", "--signal", "SIGTERM", &self.id]);
        assert!(killed.status.success(), "{}", String::from_utf8_lossy(&killed.stderr));
        self.exit()
    }
}

const ONE_COMPONENT: &str = "spin_manifest_version = 2\n[application]\nname = \"app\"\n[[trigger.http]]\nroute = \"/...\"\ncomponent = \"app\"\n[component.app]\nsource = \"app.wasm\"\n";

fn hello_wasm() -> PathBuf {
    repo_root().join("examples/hello-rust/hello_rust.wasm")
}

fn http_guest() -> PathBuf {
    let guest = repo_root().join("tests/guests/target/wasm32-wasip2/release/http_guest.wasm");
    assert!(guest.is_file(), "run scripts/build-guests.sh first: {} is missing", guest.display());
    guest
}

#[test]
fn a_root_file_system_app_serves_under_ctr_run_and_drains_on_sigterm() {
    let Some(containerd) = Containerd::start() else { return };
    let task = Task::start(&containerd, &hello_wasm(), ONE_COMPONENT, "/hello");
    let (status, body) = get(task.port, "/hello").unwrap();
    // The body arrives chunked.
    assert!(status == 200 && body.contains("Hello from Tessera! You asked for /hello\n"), "{status} {body}");
    let (status, printed) = task.terminate();
    assert!(printed.contains("Shutting down (SIGTERM)") && printed.contains("GET /hello 200"), "{printed}");
    assert!(status.success(), "the task exits 0 after draining: {status:?}\n{printed}");
}

#[test]
fn a_trap_and_a_memory_bomb_do_not_end_the_task_and_sigterm_lets_slow_requests_finish() {
    let Some(containerd) = Containerd::start() else { return };
    let task = Task::start(&containerd, &http_guest(), ONE_COMPONENT, "/hello");
    assert_eq!(get(task.port, "/trap").map(|(s, _)| s), Some(500));
    assert_eq!(get(task.port, "/memory-bomb").map(|(s, _)| s), Some(500));
    let (status, body) = get(task.port, "/hello").unwrap();
    assert!(status == 200 && body.contains("Hello from Tessera"), "{status} {body}");

    // A rolling update's SIGTERM while requests are in flight: every one is answered.
    let port = task.port;
    let slow: Vec<_> = (0..4).map(|_| std::thread::spawn(move || get(port, "/sleep?ms=1500"))).collect();
    std::thread::sleep(Duration::from_millis(400));
    let (status, printed) = task.terminate();
    for request in slow {
        assert_eq!(request.join().unwrap().map(|(s, _)| s), Some(200), "a request in flight was cut off\n{printed}");
    }
    assert!(printed.contains("GET /trap 500") && printed.contains("GET /memory-bomb 500"), "{printed}");
    assert!(printed.contains("Shutting down (SIGTERM)") && printed.matches("GET /sleep?ms=1500 200").count() == 4, "{printed}");
    assert!(status.success(), "{status:?}\n{printed}");
}

#[test]
fn two_app_containers_of_one_pod_serve_on_their_own_ports_and_a_taken_port_stops_the_third() {
    let Some(containerd) = Containerd::start() else { return };
    // What the kubelet's CRI calls give every container of a pod: the shim library runs
    // them in one shim process.
    let pod = format!("io.kubernetes.cri.sandbox-id=pod-{}", std::process::id());
    let hello = import_app(&containerd, &[("app.wasm", &std::fs::read(hello_wasm()).unwrap())], ONE_COMPONENT);
    let guest = import_app(&containerd, &[("app.wasm", &std::fs::read(http_guest()).unwrap())], ONE_COMPONENT);
    let first = Task::run(&containerd, &hello, &["--annotation", &pod]).ready("/");
    let second = Task::run(&containerd, &guest, &["--annotation", &pod]).ready("/hello");
    assert_ne!(first.port, second.port);
    assert!(get(first.port, "/x").unwrap().1.contains("You asked for /x"));
    assert_eq!(get(second.port, "/trap").map(|(s, _)| s), Some(500));

    // A third on the first one's port cannot listen: it stops with status 2, saying why.
    let listen = format!("SPIN_HTTP_LISTEN_ADDR=127.0.0.1:{}", first.port);
    let third = Task::run(&containerd, &hello, &["--annotation", &pod, "--env", &listen]);
    let (status, printed) = third.exit();
    assert_eq!(status.code(), Some(2), "{printed}");
    assert!(printed.contains(&format!("cannot listen on 127.0.0.1:{}", first.port)) && printed.contains("its own port"), "{printed}");

    // Stopping one leaves the other serving.
    let (status, printed) = first.terminate();
    assert!(status.success(), "{printed}");
    assert!(get(second.port, "/hello").unwrap().1.contains("Hello from Tessera"));
    assert!(second.terminate().0.success());
}

#[test]
fn under_trust_an_unsigned_or_tampered_image_does_not_start_and_its_log_says_why() {
    let Some(containerd) = Containerd::start() else { return };
    let keys = tempfile::tempdir().unwrap();
    let key = keys.path().join("release");
    let made = Command::new("ssh-keygen").args(["-t", "ed25519", "-q", "-N", "", "-C", "release", "-f"]).arg(&key).status().expect("ssh-keygen (openssh-client)");
    assert!(made.success());
    let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
    let policy = format!("[trust]\nkeys = [\"{}\"]\n", public.trim());
    let secret = tessera_signing::SecretKey::from_file(&key).unwrap();
    let unsigned = std::fs::read(hello_wasm()).unwrap();
    let tessera_signing::Signed::Embedded(signed) = tessera_signing::component::sign(&unsigned, &secret).unwrap() else { panic!("Ed25519 signs inside") };
    let mut tampered = signed.clone();
    let at = tampered.windows(6).position(|w| w == b"handle").expect("an export name");
    tampered[at] = b'H';

    for (component, reason) in [(&unsigned, "it is not signed"), (&tampered, "it was changed after it was signed")] {
        let image = import_app(&containerd, &[("app.wasm", component), ("runtime-config.toml", policy.as_bytes())], ONE_COMPONENT);
        let (status, printed) = Task::run(&containerd, &image, &[]).exit();
        assert_eq!(status.code(), Some(1), "{printed}");
        assert!(printed.contains("Error: ") && printed.contains("[trust] refuses component `app`") && printed.contains(reason), "{printed}");
    }

    let image = import_app(&containerd, &[("app.wasm", &signed), ("runtime-config.toml", policy.as_bytes())], ONE_COMPONENT);
    let task = Task::run(&containerd, &image, &[]).ready("/");
    let (status, printed) = task.terminate();
    assert!(status.success() && printed.contains("component `app` is signed by trusted key SHA256:"), "{printed}");
}
