//! The shim under a real containerd (Debian's), started by the test as root with its own
//! root, state and socket directories: an image whose root file system holds `spin.toml`
//! and its component is imported with `ctr image import`, run with `ctr run --runtime
//! io.containerd.tessera.v1 --net-host`, answers requests, and drains on SIGTERM. A Spin
//! OCI artifact, which this containerd (1.6.20) cannot unpack (containerd#9142), is imported
//! without unpacking and run through the containerd API, as the shim reads its layers.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// What the CRI plugin needs here besides the `tessera` runtime, which the node installer
/// (deploy/kubernetes/installer/install.sh) adds: the pause image is one the test builds,
/// and these machines refuse a negative oom_score_adj even to root (the kubelet asks -998
/// for a pod sandbox), so scores are kept at containerd's own, as rootless nodes do.
const CRI_CONFIG: &str = r#"[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "docker.io/tessera/pause:test"
  restrict_oom_score_adj = true
"#;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// containerd, or `None` (loudly) outside CI when it cannot run here.
struct Containerd {
    dir: tempfile::TempDir,
    child: Child,
}

impl Containerd {
    /// containerd with the shim on its PATH (for `ctr run --runtime`).
    fn start() -> Option<Self> {
        Self::start_with(|_, config| {
            let shim_dir = Path::new(env!("CARGO_BIN_EXE_containerd-shim-tessera-v1")).parent().unwrap().to_path_buf();
            (config.to_path_buf(), shim_dir)
        })
    }

    /// containerd on a node set up by the node installer: the shim in the node's
    /// /usr/local/bin and the `tessera` runtime in its config, for the CRI plugin.
    fn start_node() -> Option<Self> {
        Self::start_with(|d, config| {
            let host = d.join("host");
            std::fs::create_dir_all(host.join("etc/containerd")).unwrap();
            std::fs::copy(config, host.join("etc/containerd/config.toml")).unwrap();
            let assets = d.join("assets");
            std::fs::create_dir_all(&assets).unwrap();
            std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_containerd-shim-tessera-v1"), assets.join("containerd-shim-tessera-v1")).unwrap();
            for snippet in ["config-1.x.toml", "config-2.x.toml"] {
                std::fs::copy(repo_root().join("deploy/kubernetes/containerd").join(snippet), assets.join(snippet)).unwrap();
            }
            let out = Command::new(repo_root().join("deploy/kubernetes/installer/install.sh"))
                .env("HOST_ROOT", &host)
                .env("ASSETS", &assets)
                .env("RESTART", "no")
                .output()
                .unwrap();
            assert!(out.status.success(), "install.sh: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            (host.join("etc/containerd/config.toml"), host.join("usr/local/bin"))
        })
    }

    /// Starts containerd as root with its own directories; `node` turns the base config
    /// into the one containerd runs with and names the directory that holds the shim.
    fn start_with(node: impl FnOnce(&Path, &Path) -> (PathBuf, PathBuf)) -> Option<Self> {
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
        let base = d.join("config.toml");
        std::fs::write(
            &base,
            format!(
                "version = 2\nroot = \"{0}/root\"\nstate = \"{0}/state\"\n[grpc]\n  address = \"{0}/containerd.sock\"\n{1}[plugins.\"io.containerd.grpc.v1.cri\".registry]\n  config_path = \"{0}/certs.d\"\n",
                d.display(),
                CRI_CONFIG
            ),
        )
        .unwrap();
        let (config, shim_dir) = node(d, &base);
        // containerd finds `containerd-shim-tessera-v1` on its PATH.
        let path = format!("{}:{}", shim_dir.display(), std::env::var("PATH").unwrap_or_default());
        let log = std::fs::File::create(d.join("containerd.log")).unwrap();
        let child = Command::new("containerd")
            .arg("--config")
            .arg(config)
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

    /// `containerd --version`'s version number.
    fn version(&self) -> String {
        let out = Command::new("containerd").arg("--version").output().unwrap();
        String::from_utf8_lossy(&out.stdout).split_whitespace().nth(2).unwrap_or("").trim_start_matches('v').to_string()
    }

    /// Whether this containerd unpacks images made only of wasm layers: 1.6.25 and later
    /// 1.6 releases, 1.7.7 and later (containerd#9142).
    fn unpacks_wasm_layers(&self) -> bool {
        let version = self.version();
        let numbers: Vec<u32> = version.split(|c: char| !c.is_ascii_digit()).filter(|p| !p.is_empty()).take(3).filter_map(|p| p.parse().ok()).collect();
        match numbers[..] {
            [1, 6, patch, ..] => patch >= 25,
            [1, 7, patch, ..] => patch >= 7,
            [1, minor, ..] => minor > 7,
            [major, ..] => major > 1,
            _ => false,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default()
    }

    /// Builds an image of `app`'s files as its root file system and imports it as `name`.
    fn import_rootfs_image(&self, app: &Path, name: &str) {
        self.import_image(app, name, "default", &["/", "wasip1/wasm"]);
    }

    /// [`Containerd::import_rootfs_image`] into containerd `namespace`, with the entry
    /// point and platform in `config` (`scripts/oci-image.py`'s last arguments).
    fn import_image(&self, dir: &Path, name: &str, namespace: &str, config: &[&str]) {
        let tar = self.dir.path().join("image.tar");
        let made = Command::new("python3").arg(repo_root().join("scripts/oci-image.py")).arg(dir).arg(name).arg(&tar).args(config).status().unwrap();
        assert!(made.success());
        let out = self.ctr(&["--namespace", namespace, "image", "import", "--all-platforms", tar.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Containerd {
    /// Imports an image of `layers` (media type, bytes) and `config` as `name` without
    /// unpacking it: containerd before 1.6.25/1.7.7 cannot unpack an image made only of
    /// wasm layers, and the shim does not need it to.
    fn import_wasm_image(&self, name: &str, config: &[u8], layers: &[(&str, &[u8])]) {
        use serde_json::json;
        let layout = self.dir.path().join(format!("layout-{}", free_port()));
        let blobs = layout.join("blobs/sha256");
        std::fs::create_dir_all(&blobs).unwrap();
        let blob = |media_type: &str, bytes: &[u8]| {
            let digest = tessera_registry::digest_of(bytes);
            std::fs::write(blobs.join(digest.trim_start_matches("sha256:")), bytes).unwrap();
            json!({"mediaType": media_type, "digest": digest, "size": bytes.len()})
        };
        let layers: Vec<_> = layers.iter().map(|(media_type, bytes)| blob(media_type, bytes)).collect();
        let config = blob("application/vnd.oci.image.config.v1+json", config);
        let manifest = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "config": config, "layers": layers});
        let mut manifest = blob("application/vnd.oci.image.manifest.v1+json", manifest.to_string().as_bytes());
        manifest["annotations"] = json!({"io.containerd.image.name": name});
        manifest["platform"] = json!({"architecture": "wasm", "os": "wasip1"});
        std::fs::write(layout.join("index.json"), json!({"schemaVersion": 2, "manifests": [manifest]}).to_string()).unwrap();
        std::fs::write(layout.join("oci-layout"), r#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        let tar = layout.with_extension("tar");
        assert!(Command::new("tar").arg("-C").arg(&layout).arg("-cf").arg(&tar).arg(".").status().unwrap().success());
        let out = self.ctr(&["image", "import", "--no-unpack", "--all-platforms", tar.to_str().unwrap()]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }

    /// Runs `image` (imported without unpacking) as container `id` through the API and
    /// waits until it answers `ready`.
    fn run_unpacked<'a>(&'a self, image: &str, id: &str, ready: &str) -> Task<'a> {
        let port = free_port();
        self.create_container(id, image, &[format!("SPIN_HTTP_LISTEN_ADDR=127.0.0.1:{port}")]);
        Task::start_created(self, id, port).ready(ready)
    }

    /// Creates container `id` of `image` through the containerd API, with no root file
    /// system snapshot (a wasm-only image has none) and the host's network; `env` is added
    /// to its environment.
    fn create_container(&self, id: &str, image: &str, env: &[String]) {
        use containerd_client::services::v1::{Container, CreateContainerRequest, container::Runtime};
        use containerd_client::with_namespace;
        use tonic::Request;
        let spec = self.ctr(&["oci", "spec"]);
        let mut spec: serde_json::Value = serde_json::from_slice(&spec.stdout).unwrap();
        spec["process"]["args"] = serde_json::json!(["/"]);
        spec["process"]["env"] = serde_json::json!(env);
        spec["linux"]["cgroupsPath"] = format!("/default/{id}").into();
        spec["linux"]["namespaces"].as_array_mut().unwrap().retain(|n| n["type"] != "network");
        let container = Container {
            id: id.to_string(),
            image: image.to_string(),
            runtime: Some(Runtime { name: "io.containerd.tessera.v1".into(), options: None }),
            spec: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Spec".into(),
                value: serde_json::to_vec(&spec).unwrap(),
            }),
            ..Default::default()
        };
        let socket = self.dir.path().join("containerd.sock");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let client = containerd_client::Client::from_path(&socket).await.unwrap();
            let request = with_namespace!(CreateContainerRequest { container: Some(container) }, "default");
            client.containers().create(request).await.unwrap();
        });
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

    /// `ctr task start`s container `id`, made by [`Containerd::create_container`] with
    /// `SPIN_HTTP_LISTEN_ADDR` on `port`.
    fn start_created(containerd: &'a Containerd, id: &str, port: u16) -> Self {
        let output = containerd.dir.path().join(format!("{id}.out"));
        let file = std::fs::File::create(&output).unwrap();
        let run = containerd.ctr_command().args(["task", "start", id]).stdout(file.try_clone().unwrap()).stderr(file).stdin(Stdio::null()).spawn().unwrap();
        Self { containerd, id: id.to_string(), port, run, output }
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

/// Spans a collector received: name and kind.
type ReceivedSpans = std::sync::Arc<std::sync::Mutex<Vec<(String, i32)>>>;

/// An OTLP/HTTP collector (POST /v1/traces, protobuf) and the spans it receives.
fn otlp_collector() -> (std::net::SocketAddr, ReceivedSpans) {
    use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
    use prost_otlp::Message as _;
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let spans = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let into = spans.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let into = into.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut length = 0;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') && name.eq_ignore_ascii_case("content-length") {
                            length = value.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    if let Ok(request) = ExportTraceServiceRequest::decode(body.as_slice()) {
                        let found = request.resource_spans.into_iter().flat_map(|r| r.scope_spans).flat_map(|s| s.spans);
                        into.lock().unwrap().extend(found.map(|span| (span.name, span.kind)));
                    }
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n");
                }
            });
        }
    });
    (addr, spans)
}

#[test]
fn a_pod_sends_its_spans_to_the_collector_its_environment_names() {
    use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
    let Some(containerd) = Containerd::start() else { return };
    let (collector, spans) = otlp_collector();
    let image = import_app(&containerd, &[("app.wasm", &std::fs::read(hello_wasm()).unwrap())], ONE_COMPONENT);
    let endpoint = format!("OTEL_EXPORTER_OTLP_ENDPOINT=http://{collector}");
    let task = Task::run(&containerd, &image, &["--env", &endpoint]).ready("/hello");
    for _ in 0..3 {
        assert_eq!(get(task.port, "/hello").map(|(status, _)| status), Some(200));
    }
    // SIGTERM ends the task; the spans still batched are sent before it exits.
    let (status, printed) = task.terminate();
    assert!(status.success(), "{printed}");
    let spans = spans.lock().unwrap();
    let served = spans.iter().filter(|(name, kind)| name == "tessera_trigger_http.handle_http_request" && *kind == SpanKind::Server as i32).count();
    assert!(served >= 3, "a server span per request (the ready probes add more): {spans:?}\n{printed}");
}

#[test]
fn a_shim_killed_with_sigkill_leaves_no_container_running_and_no_state_behind() {
    let Some(containerd) = Containerd::start() else { return };
    let task = Task::start(&containerd, &hello_wasm(), ONE_COMPONENT, "/hello");
    let state = Path::new("/run/containerd/tessera/default").join(&task.id);
    assert!(state.join("state.json").is_file(), "the shim library keeps the container's state at {}", state.display());
    // The shim serving this task (containerd started it with `-id <id>`).
    let found = Command::new("pgrep").args(["-f", &format!("containerd-shim-tessera-v1 .*-id {} ", task.id)]).output().unwrap();
    let pids: Vec<String> = String::from_utf8_lossy(&found.stdout).split_whitespace().map(String::from).collect();
    assert!(!pids.is_empty(), "no shim process for {}", task.id);
    for pid in &pids {
        assert!(Command::new("kill").args(["-9", pid]).status().unwrap().success());
    }
    // containerd notices, runs the shim's `delete` action, and `ctr run --rm` ends; the
    // container's process (it serves the app) is gone with its state.
    let port = task.port;
    let _ = task.exit();
    let deadline = Instant::now() + Duration::from_secs(30);
    while state.exists() || get(port, "/hello").is_some() {
        assert!(Instant::now() < deadline, "left behind: state at {} exists: {}, app answers: {}\n{}", state.display(), state.exists(), get(port, "/hello").is_some(), containerd.log());
        std::thread::sleep(Duration::from_millis(100));
    }
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

#[test]
fn a_spin_artifact_runs_from_its_layers_and_the_next_pod_reuses_the_compiled_code() {
    let Some(containerd) = Containerd::start() else { return };
    // The artifact exactly as `tessera registry push` sends it: component, file and
    // locked-app layers.
    let app = tempfile::tempdir().unwrap();
    std::fs::copy(http_guest(), app.path().join("app.wasm")).unwrap();
    std::fs::write(app.path().join("motd.txt"), "served from a +data layer\n").unwrap();
    let manifest = ONE_COMPONENT.replace("source = \"app.wasm\"\n", "source = \"app.wasm\"\nfiles = [\"motd.txt\"]\n");
    std::fs::write(app.path().join("spin.toml"), manifest).unwrap();
    let artifact = tessera_registry::artifact(&app.path().join("spin.toml"), &Default::default()).unwrap();
    let layers: Vec<_> = artifact.layers.iter().map(|l| (l.media_type.as_str(), &l.data[..])).collect();
    let image = format!("docker.io/tessera/artifact-{}:v1", std::process::id());
    containerd.import_wasm_image(&image, &artifact.config.data, &layers);

    for pod in 0..2 {
        let id = format!("artifact-{}-{pod}", std::process::id());
        let task = containerd.run_unpacked(&image, &id, "/hello");
        let (status, body) = get(task.port, "/read?path=/motd.txt").unwrap();
        assert!(status == 200 && body.contains("served from a +data layer"), "{status} {body}");
        let (status, printed) = task.terminate();
        assert!(status.success(), "{printed}");
        // The shim's precompile hook compiled the component before the first container;
        // both start from containerd's copy instead of compiling.
        assert!(printed.contains("compiled code from containerd's content store"), "{printed}");
        assert!(printed.contains("component `app`") && printed.contains("loaded from the compile cache"), "{printed}");
        assert!(containerd.ctr(&["containers", "rm", &id]).status.success());
    }
    let content = String::from_utf8(containerd.ctr(&["content", "ls"]).stdout).unwrap();
    assert!(content.contains("runwasi.io/precompiled/tessera/"), "the compiled component is kept in containerd's content store:\n{content}");
    // The shim library logs each compile into containerd's log: one for two pods.
    let log = containerd.log();
    assert_eq!(log.matches("precompiling layers for image").count(), 1, "{log}");
}

#[test]
fn an_image_of_one_wasm_component_is_served_on_every_path() {
    let Some(containerd) = Containerd::start() else { return };
    let component = std::fs::read(hello_wasm()).unwrap();
    let image = format!("docker.io/tessera/component-{}:v1", std::process::id());
    let config = br#"{"architecture":"wasm","os":"wasip1"}"#;
    containerd.import_wasm_image(&image, config, &[("application/wasm", &component)]);
    let task = containerd.run_unpacked(&image, &format!("component-{}", std::process::id()), "/");
    let (status, body) = get(task.port, "/any/path").unwrap();
    assert!(status == 200 && body.contains("You asked for /any/path"), "{status} {body}");
    assert!(task.terminate().0.success());
}

#[test]
fn a_root_file_system_app_compiles_once_with_a_node_cache_mounted() {
    let Some(containerd) = Containerd::start() else { return };
    // What deploy/kubernetes does with a hostPath volume: the node's compile cache,
    // shared by every pod of the node.
    let cache = tempfile::tempdir().unwrap();
    let mount = format!("type=bind,src={},dst=/var/cache/tessera,options=rbind:rw", cache.path().display());
    let image = import_app(&containerd, &[("app.wasm", &std::fs::read(hello_wasm()).unwrap())], ONE_COMPONENT);
    let mut how = Vec::new();
    for _ in 0..2 {
        let task = Task::run(&containerd, &image, &["--mount", &mount, "--env", "TESSERA_CACHE_DIR=/var/cache/tessera"]).ready("/");
        let (status, printed) = task.terminate();
        assert!(status.success(), "{printed}");
        let report = printed.lines().find(|l| l.contains("component `app` (")).unwrap_or_else(|| panic!("no load report: {printed}"));
        how.push(if report.contains(") compiled in") { "compiled" } else { "cached" });
    }
    assert_eq!(how, ["compiled", "cached"]);
    assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 1, "one compiled component in the node's cache");
}

/// The kubelet's side of containerd's CRI plugin, on a node set up by the installer.
struct Kubelet<'a> {
    containerd: &'a Containerd,
    runtime: tokio::runtime::Runtime,
    cri: k8s_cri::v1::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel>,
    images: k8s_cri::v1::image_service_client::ImageServiceClient<tonic::transport::Channel>,
    logs: tempfile::TempDir,
}

/// A running pod of one app container.
struct Pod {
    sandbox: String,
    container: String,
    port: u16,
}

impl<'a> Kubelet<'a> {
    /// Connects to `containerd`'s CRI and imports the pod sandbox's pause container, built
    /// from source: a Linux executable, which the shim library runs as an ordinary container.
    fn new(containerd: &'a Containerd) -> Self {
        let pause = tempfile::tempdir().unwrap();
        let built = Command::new("cc").args(["-static", "-Os", "-o"]).arg(pause.path().join("pause")).arg(repo_root().join("crates/shim/tests/pause.c")).status().expect("cc");
        assert!(built.success(), "cannot build the pause container (cc -static needs libc6-dev)");
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            other => other,
        };
        containerd.import_image(pause.path(), "docker.io/tessera/pause:test", "k8s.io", &["/pause", &format!("linux/{arch}")]);
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let channel = runtime.block_on(containerd_client::connect(containerd.dir.path().join("containerd.sock"))).unwrap();
        Self {
            containerd,
            runtime,
            cri: k8s_cri::v1::runtime_service_client::RuntimeServiceClient::new(channel.clone()),
            images: k8s_cri::v1::image_service_client::ImageServiceClient::new(channel),
            logs: tempfile::tempdir().unwrap(),
        }
    }

    /// PullImage, as for a pod whose image is not on the node.
    fn pull(&mut self, image: &str) -> Result<String, tonic::Status> {
        use k8s_cri::v1::*;
        let request = PullImageRequest { image: Some(ImageSpec { image: image.into(), ..Default::default() }), ..Default::default() };
        self.runtime.block_on(self.images.pull_image(request)).map(|r| r.into_inner().image_ref)
    }

    /// RunPodSandbox on runtime handler `tessera` with the node's network, then
    /// CreateContainer and StartContainer of `image` as spin-operator's Deployment makes it
    /// (command `/`, SPIN_HTTP_LISTEN_ADDR, `env`); waits until it answers `ready`.
    fn run_pod(&mut self, name: &str, image: &str, env: &[(&str, &str)], ready: &str) -> Pod {
        use k8s_cri::v1::*;
        let port = free_port();
        let pod = PodSandboxConfig {
            metadata: Some(PodSandboxMetadata { name: name.into(), uid: format!("uid-{name}-{}", std::process::id()), namespace: "default".into(), attempt: 0 }),
            log_directory: self.logs.path().join(name).display().to_string(),
            linux: Some(LinuxPodSandboxConfig {
                security_context: Some(LinuxSandboxSecurityContext {
                    namespace_options: Some(NamespaceOption { network: NamespaceMode::Node as i32, ..Default::default() }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        };
        let log = self.containerd.log();
        let sandbox = self
            .runtime
            .block_on(self.cri.run_pod_sandbox(RunPodSandboxRequest { config: Some(pod.clone()), runtime_handler: "tessera".into() }))
            .unwrap_or_else(|e| panic!("RunPodSandbox: {e}\n{log}"))
            .into_inner()
            .pod_sandbox_id;
        let mut envs = vec![KeyValue { key: "SPIN_HTTP_LISTEN_ADDR".into(), value: format!("127.0.0.1:{port}") }];
        envs.extend(env.iter().map(|(k, v)| KeyValue { key: k.to_string(), value: v.to_string() }));
        let container = ContainerConfig {
            metadata: Some(ContainerMetadata { name: "app".into(), attempt: 0 }),
            image: Some(ImageSpec { image: image.into(), ..Default::default() }),
            command: vec!["/".into()],
            envs,
            log_path: "app.log".into(),
            ..Default::default()
        };
        let request = CreateContainerRequest { pod_sandbox_id: sandbox.clone(), config: Some(container), sandbox_config: Some(pod) };
        let created = self.runtime.block_on(self.cri.create_container(request));
        let container = created.unwrap_or_else(|e| panic!("CreateContainer: {e}\n{}", self.containerd.log())).into_inner().container_id;
        let started = self.runtime.block_on(self.cri.start_container(StartContainerRequest { container_id: container.clone() }));
        started.unwrap_or_else(|e| panic!("StartContainer: {e}\n{}", self.containerd.log()));
        let deadline = Instant::now() + Duration::from_secs(60);
        while get(port, ready).is_none() {
            assert!(Instant::now() < deadline, "the pod does not answer: {}", self.containerd.log());
            std::thread::sleep(Duration::from_millis(100));
        }
        Pod { sandbox, container, port }
    }

    /// StopContainer (SIGTERM, SIGKILL after the grace period) and the pod's removal; the
    /// container's exit code and its log (what `kubectl logs` shows).
    fn stop(&mut self, pod: Pod, name: &str) -> (i32, String) {
        use k8s_cri::v1::*;
        let id = pod.container;
        self.runtime.block_on(self.cri.stop_container(StopContainerRequest { container_id: id.clone(), timeout: 10 })).unwrap();
        let status = self.runtime.block_on(self.cri.container_status(ContainerStatusRequest { container_id: id.clone(), verbose: false }));
        let status = status.unwrap().into_inner().status.unwrap();
        assert_eq!(status.state, ContainerState::ContainerExited as i32);
        let log = std::fs::read_to_string(self.logs.path().join(name).join("app.log")).unwrap();
        self.runtime.block_on(self.cri.remove_container(RemoveContainerRequest { container_id: id })).unwrap();
        self.runtime.block_on(self.cri.stop_pod_sandbox(StopPodSandboxRequest { pod_sandbox_id: pod.sandbox.clone() })).unwrap();
        self.runtime.block_on(self.cri.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: pod.sandbox })).unwrap();
        (status.exit_code, log)
    }
}

#[test]
fn the_kubelets_cri_calls_run_an_app_pod_on_the_tessera_runtime_handler() {
    let Some(containerd) = Containerd::start_node() else { return };
    let mut kubelet = Kubelet::new(&containerd);
    // A Spin SDK app whose variable a SpinApp's `variables` (SPIN_VARIABLE_*) fills in.
    let app = tempfile::tempdir().unwrap();
    let guest = repo_root().join("tests/guests/target/wasm32-wasip2/release/spin_guest.wasm");
    std::fs::copy(&guest, app.path().join("app.wasm")).unwrap_or_else(|e| panic!("{}: {e} (run scripts/build-guests.sh)", guest.display()));
    let manifest = ONE_COMPONENT.replace("[[trigger.http]]", "[variables]\ntoken = { required = true }\n[[trigger.http]]") + "variables = { token = \"{{ token }}\" }\n";
    std::fs::write(app.path().join("spin.toml"), manifest).unwrap();
    let image = "docker.io/tessera/cri-app:v1";
    containerd.import_image(app.path(), image, "k8s.io", &["/", "wasip1/wasm"]);

    let pod = kubelet.run_pod("hello", image, &[("SPIN_VARIABLE_TOKEN", "from-the-pod-spec")], "/variables/token");
    let (status, body) = get(pod.port, "/variables/token").unwrap();
    assert!(status == 200 && body.contains("from-the-pod-spec"), "{status} {body}");
    // Stopped as the kubelet stops it: drains and exits 0, its output in the pod log.
    let (code, log) = kubelet.stop(pod, "hello");
    assert_eq!(code, 0, "{log}");
    assert!(log.contains("GET /variables/token 200") && log.contains("Shutting down (SIGTERM)"), "{log}");
}

#[test]
fn a_spin_app_pushed_to_a_registry_is_pulled_through_the_cri_and_served() {
    let Some(containerd) = Containerd::start_node() else { return };
    let Some(registry) = Registry::start(&containerd) else { return };
    let mut kubelet = Kubelet::new(&containerd);

    // The root-file-system form, pushed as any image is (here by ctr; docker or buildah
    // build it from `FROM scratch` + `COPY . /`): every containerd pulls and runs it.
    let app = tempfile::tempdir().unwrap();
    std::fs::copy(hello_wasm(), app.path().join("app.wasm")).unwrap();
    std::fs::write(app.path().join("spin.toml"), ONE_COMPONENT).unwrap();
    let rootfs = format!("127.0.0.1:{}/tessera/hello:rootfs", registry.port);
    containerd.import_rootfs_image(app.path(), &rootfs);
    let pushed = containerd.ctr(&["image", "push", "--plain-http", &rootfs]);
    assert!(pushed.status.success(), "{}", String::from_utf8_lossy(&pushed.stderr));
    kubelet.pull(&rootfs).unwrap_or_else(|e| panic!("PullImage {rootfs}: {e}\n{}", containerd.log()));
    let pod = kubelet.run_pod("rootfs", &rootfs, &[], "/");
    assert!(get(pod.port, "/from-the-registry").unwrap().1.contains("You asked for /from-the-registry"));
    assert_eq!(kubelet.stop(pod, "rootfs").0, 0);

    // The Spin artifact as `tessera registry push` writes it. containerd before 1.6.25 /
    // 1.7.7 cannot unpack an image of wasm layers (containerd#9142), so PullImage fails
    // there; a newer one pulls it and the pod serves it.
    let artifact = format!("127.0.0.1:{}/tessera/hello:artifact", registry.port);
    let reference = tessera_registry::parse_reference(&artifact).unwrap();
    let options = tessera_registry::RegistryOptions { insecure: true, ..Default::default() };
    tokio::runtime::Runtime::new().unwrap().block_on(tessera_registry::push(&reference, &app.path().join("spin.toml"), &options)).unwrap();
    match kubelet.pull(&artifact) {
        Err(e) if !containerd.unpacks_wasm_layers() => {
            assert!(e.message().contains("mismatched image rootfs and manifest layers"), "{e}");
            eprintln!("containerd {} cannot unpack a Spin artifact (containerd#9142): {}", containerd.version(), e.message());
        }
        Err(e) => panic!("PullImage {artifact}: {e}\n{}", containerd.log()),
        Ok(_) => {
            let pod = kubelet.run_pod("artifact", &artifact, &[], "/");
            assert!(get(pod.port, "/from-an-artifact").unwrap().1.contains("You asked for /from-an-artifact"));
            assert_eq!(kubelet.stop(pod, "artifact").0, 0);
        }
    }
}

/// A CNCF distribution registry (Debian's `docker-registry`) on a free loopback port, which
/// `containerd`'s CRI reaches over plain HTTP.
struct Registry {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    fn start(containerd: &Containerd) -> Option<Self> {
        if Command::new("docker-registry").arg("--version").output().is_err() {
            if std::env::var_os("CI").is_some() {
                panic!("docker-registry is missing: .ci/run must install it");
            }
            eprintln!("SKIPPED: docker-registry is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = format!("version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n", dir.path().display());
        std::fs::write(dir.path().join("config.yml"), config).unwrap();
        let child = Command::new("docker-registry").arg("serve").arg(dir.path().join("config.yml")).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "docker-registry did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
        // The CRI's registry hosts (config_path in the base config): plain HTTP.
        let hosts = containerd.dir.path().join(format!("certs.d/127.0.0.1:{port}"));
        std::fs::create_dir_all(&hosts).unwrap();
        let server = format!("http://127.0.0.1:{port}");
        std::fs::write(hosts.join("hosts.toml"), format!("server = \"{server}\"\n[host.\"{server}\"]\n  capabilities = [\"pull\", \"resolve\", \"push\"]\n")).unwrap();
        Some(Self { child, port, _dir: dir })
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
