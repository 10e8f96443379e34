//! Runs the real `tessera` binary on an ephemeral port and talks to it over HTTP.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A large guest built only by `scripts/build-guests.sh --all` (`rel` from the repository
/// root, made by the script `build`): its path, or `None` after saying the test is
/// skipped. In CI a missing one fails the test.
#[allow(dead_code)]
pub fn large_guest(rel: &str, build: &str) -> Option<PathBuf> {
    let wasm = repo_root().join(rel);
    if wasm.is_file() {
        return Some(wasm);
    }
    if std::env::var_os("CI").is_some() {
        panic!("{} is missing: CI must build it (scripts/build-guests.sh --all)", wasm.display());
    }
    eprintln!("SKIPPED: {} is not built; run {build}", wasm.display());
    None
}

/// A guest built by `scripts/build-guests.sh`.
pub fn guest(file: &str) -> PathBuf {
    let candidates = [
        repo_root().join("tests/guests/target/wasm32-wasip2/release").join(file),
        repo_root().join("examples").join(file),
    ];
    for c in &candidates {
        if c.is_file() {
            return c.clone();
        }
    }
    panic!("guest {file} is missing: run scripts/build-guests.sh first (looked in {candidates:?})");
}

/// An app serving every path with `http-guest`.
pub const GUEST_APP: &str = r#"
spin_manifest_version = 2
[application]
name = "e2e"
[[trigger.http]]
route = "/..."
component = "guest"
[component.guest]
source = "{http_guest}"
"#;

/// A temporary app directory with a manifest.
pub struct App {
    pub dir: tempfile::TempDir,
}

impl App {
    /// An app `name` serving the Spin SDK guests, SDK 5.2's (`fermyon:spin@2.0.0`) as
    /// component `v2` on `/...` and SDK 7's (`spin:*@3.0.0`) as `v3` on `/v3/...`, each
    /// allowed to call `allowed` (an `allowed_outbound_hosts` entry).
    pub fn spin_sdks(name: &str, allowed: &str) -> Self {
        Self::new(&format!(
            r#"spin_manifest_version = 2
[application]
name = "{name}"
[[trigger.http]]
route = "/..."
component = "v2"
[[trigger.http]]
route = "/v3/..."
component = "v3"
[component.v2]
source = "{{spin_guest}}"
allowed_outbound_hosts = ["{allowed}"]
[component.v3]
source = "{{spin3_guest}}"
allowed_outbound_hosts = ["{allowed}"]
"#
        ))
    }

    pub fn new(manifest: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let manifest = manifest
            .replace("{http_guest}", &guest("http_guest.wasm").display().to_string())
            .replace("{hostile_guest}", &guest("hostile_guest.wasm").display().to_string())
            .replace("{p3_guest}", &guest("p3_guest.wasm").display().to_string())
            .replace("{middleware_guest}", &guest("middleware_guest.wasm").display().to_string())
            .replace("{spin_guest}", &guest("spin_guest.wasm").display().to_string())
            .replace("{spin3_guest}", &guest("spin3_guest.wasm").display().to_string())
            .replace("{wasi_guest}", &guest("wasi_guest.wasm").display().to_string())
            .replace("{command_guest}", &guest("command_guest.wasm").display().to_string())
            .replace("{redis_guest}", &guest("redis_guest.wasm").display().to_string())
            .replace("{redis3_guest}", &guest("redis3_guest.wasm").display().to_string())
            .replace("{cron_guest}", &guest("cron_guest.wasm").display().to_string())
            .replace("{mqtt_guest}", &guest("mqtt_guest.wasm").display().to_string())
            .replace("{calc_guest}", &guest("calc_guest.wasm").display().to_string())
            .replace("{calc_user_guest}", &guest("calc_user_guest.wasm").display().to_string())
            .replace("{cloud_guest}", &guest("cloud_guest.wasm").display().to_string());
        std::fs::write(dir.path().join("spin.toml"), manifest).unwrap();
        Self { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, contents: &str) -> &Self {
        let p = self.dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, contents).unwrap();
        self
    }

    pub fn start(&self, extra: &[&str]) -> Server {
        Server::start(self.path(), extra)
    }

    /// Runs `tessera up` in the app's directory to its end (a start expected to fail),
    /// with `extra` flags and `--listen 127.0.0.1:0` unless `extra` gives one.
    pub fn up_to_end(&self, extra: &[&str]) -> Output {
        let mut cmd = tessera();
        cmd.current_dir(self.path()).arg("up").args(extra).arg("--cache-dir").arg(cache_dir());
        if !extra.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        cmd.output().unwrap()
    }

    /// Writes `rc` as the app's runtime config (`rc.toml`) and returns its path.
    pub fn runtime_config(&self, rc: &str) -> PathBuf {
        self.write("rc.toml", rc);
        self.path().join("rc.toml")
    }

    /// Starts `tessera up` with `rc` as its runtime config.
    pub fn start_with_runtime_config(&self, rc: &str) -> Server {
        let path = self.runtime_config(rc);
        self.start(&["--runtime-config-file", path.to_str().unwrap()])
    }
}

/// The shared compile cache of this test run.
pub fn cache_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tessera-test-cache-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub fn tessera() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tessera"));
    cmd.env("RUST_LOG", "warn,tessera=info").env_remove("RUST_BACKTRACE");
    // No wkg config of the machine's: a package registry is only what a test names.
    cmd.env("WKG_CONFIG_FILE", "/nonexistent/tessera-tests/wkg-config.toml");
    cmd
}

/// A running `tessera up`.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub stdout: Arc<Mutex<String>>,
    pub stderr: Arc<Mutex<String>>,
}

fn capture(stream: impl Read + Send + 'static, into: Arc<Mutex<String>>, first_line_tx: Option<std::sync::mpsc::Sender<String>>) {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            if let Some(tx) = &first_line_tx {
                let _ = tx.send(line.clone());
            }
            let mut s = into.lock().unwrap();
            s.push_str(&line);
            s.push('\n');
        }
    });
}

impl Server {
    pub fn start(dir: &Path, extra: &[&str]) -> Self {
        Self::try_start(dir, extra).unwrap_or_else(|e| panic!("tessera up failed to start: {e}"))
    }

    /// Starts `tessera up` from a prepared command (e.g. with environment variables set).
    pub fn start_with(cmd: Command, dir: &Path, extra: &[&str]) -> Self {
        Self::try_start_with(cmd, dir, extra).unwrap_or_else(|e| panic!("tessera up failed to start: {e}"))
    }

    /// Starts `tessera up`; on failure returns what it printed.
    pub fn try_start(dir: &Path, extra: &[&str]) -> Result<Self, String> {
        Self::try_start_with(tessera(), dir, extra)
    }

    fn try_start_with(mut cmd: Command, dir: &Path, extra: &[&str]) -> Result<Self, String> {
        cmd.args(["up", "-f"]).arg(dir);
        if !extra.contains(&"--listen") {
            cmd.args(["--listen", "127.0.0.1:0"]);
        }
        if !extra.contains(&"--cache-dir") {
            cmd.arg("--cache-dir").arg(cache_dir());
        }
        cmd.args(extra);
        Self::launch(cmd)
    }

    /// Starts `tessera host --apps APPS_FILE` on a free port.
    pub fn host(apps_file: &Path, extra: &[&str]) -> Result<Self, String> {
        Self::host_with(tessera(), apps_file, extra)
    }

    /// Starts `tessera host` from a prepared command (e.g. with environment variables set).
    pub fn host_with(mut cmd: Command, apps_file: &Path, extra: &[&str]) -> Result<Self, String> {
        cmd.args(["host", "--apps"]).arg(apps_file).args(["--listen", "127.0.0.1:0", "--cache-dir"]).arg(cache_dir());
        cmd.args(extra);
        Self::launch(cmd)
    }

    /// Runs `cmd` and waits for its `Serving` line.
    pub fn launch(mut cmd: Command) -> Result<Self, String> {
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        capture(child.stdout.take().unwrap(), stdout.clone(), Some(tx));
        capture(child.stderr.take().unwrap(), stderr.clone(), None);
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            match rx.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    if let Some(addr) = line.strip_prefix("Serving http://") {
                        // Let the route lines arrive too.
                        std::thread::sleep(Duration::from_millis(50));
                        return Ok(Self { child, addr: addr.trim().parse().unwrap(), stdout, stderr });
                    }
                    // An app without HTTP routes prints its Redis channels, MQTT topics or cron jobs.
                    if line.starts_with("Redis channels:") || line.starts_with("MQTT topics:") || line.starts_with("Cron jobs") {
                        std::thread::sleep(Duration::from_millis(50));
                        return Ok(Self { child, addr: "0.0.0.0:0".parse().unwrap(), stdout, stderr });
                    }
                }
                Err(_) => {
                    if let Ok(Some(status)) = child.try_wait() {
                        std::thread::sleep(Duration::from_millis(100));
                        return Err(format!("exited with {status}: {}", stderr.lock().unwrap()));
                    }
                }
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        Err(format!("no `Serving` line within 120 s: {}", stderr.lock().unwrap()))
    }

    /// Sends SIGTERM and waits for the process to exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        self.signal("TERM");
        self.child.wait().unwrap()
    }

    /// Sends signal `name` (`TERM`, `INT`, ...) without waiting.
    pub fn signal(&self, name: &str) {
        let _ = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status();
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// CPU time (user + system) the server process has used, in clock ticks.
    pub fn cpu_ticks(&self) -> u64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let after_name = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = after_name.split(' ').collect();
        // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
        fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
    }

    /// The server's resident memory, in KiB.
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS in /proc/PID/status");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// Whether the server process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn get(&self, path: &str) -> Response {
        request("GET", &self.url(path), &[], None)
    }

    pub fn post(&self, path: &str, body: &[u8]) -> Response {
        request("POST", &self.url(path), &[], Some(body))
    }

    /// The host's log so far.
    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until the log (stderr) contains `needle`.
    pub fn wait_for_log(&self, needle: &str) -> String {
        wait_for(&self.stderr, needle)
    }

    /// Waits until `count` lines of the log contain `needle` (or 10 s pass), and returns that count.
    pub fn wait_for_log_lines(&self, needle: &str, count: usize) -> usize {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let seen = self.log().lines().filter(|line| line.contains(needle)).count();
            if seen >= count || Instant::now() > deadline {
                return seen;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Waits until stdout (where guest stdout goes) contains `needle`.
    pub fn wait_for_stdout(&self, needle: &str) -> String {
        wait_for(&self.stdout, needle)
    }
}

fn wait_for(text: &Mutex<String>, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = text.lock().unwrap().clone();
        if log.contains(needle) || Instant::now() > deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Response {
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(60)).build();
    let mut req = agent.request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let result = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    let resp = match result {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{method} {url}: {e}"),
    };
    let status = resp.status();
    // A header sent several times comes back once, its values joined by ", ".
    let mut names = resp.headers_names();
    names.dedup();
    let headers = names
        .into_iter()
        .map(|n| {
            let v = resp.all(&n).join(", ");
            (n, v)
        })
        .collect();
    let body = resp.into_string().unwrap_or_default();
    Response { status, headers, body }
}

/// A loopback HTTP server answering every request with the same `status`, `headers` and
/// `body`; it counts the connections it served.
pub fn canned_server(status: &str, headers: &str, body: Vec<u8>) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counter = count.clone();
    let head = format!("HTTP/1.1 {status}\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    let response: Arc<Vec<u8>> = Arc::new([head.into_bytes(), body].concat());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            counter.fetch_add(1, Ordering::SeqCst);
            let response = response.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let _ = stream.read(&mut buf);
                let _ = stream.write_all(&response);
            });
        }
    });
    (addr, count)
}

/// A plain HTTP server on an ephemeral loopback port answering every request with `body`.
pub fn upstream(body: &'static str) -> SocketAddr {
    canned_server("200 OK", "", body.as_bytes().to_vec()).0
}

/// A `redis-server` of our own on a free loopback port; `None` (after a loud note) when
/// Redis is not installed outside CI. Under CI it must be there (`.ci/run` installs it).
pub struct Redis {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
}

impl Redis {
    pub fn start() -> Option<Self> {
        if Command::new("redis-server").arg("--version").output().is_err() {
            if std::env::var_os("CI").is_some() {
                panic!("redis-server is missing: .ci/run must install it (apt-get install redis-server)");
            }
            eprintln!("SKIPPED: redis-server is not installed");
            return None;
        }
        let port = free_port();
        let mut redis = Self { child: None, port, dir: tempfile::tempdir().unwrap() };
        redis.restart();
        Some(redis)
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Publishes each of `messages` on `channel` (pipelined) and returns how many
    /// subscribers received the last one.
    pub fn publish(&self, channel: &str, messages: &[&str]) -> i64 {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let mut out = Vec::new();
        for m in messages {
            out.extend(format!("*3\r\n$7\r\nPUBLISH\r\n${}\r\n{channel}\r\n${}\r\n{m}\r\n", channel.len(), m.len()).into_bytes());
        }
        stream.write_all(&out).unwrap();
        let mut reader = BufReader::new(stream);
        let mut last = 0;
        for _ in messages {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            last = line.trim().trim_start_matches(':').parse().unwrap_or(-1);
        }
        last
    }

    /// Stops the server (its data is kept on disk for `restart`).
    pub fn stop(&mut self) {
        kill_child(&mut self.child);
    }

    /// Starts the server again on the same port, and waits until it answers.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes", "--appendfsync", "always"])
            .arg("--dir")
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_until_listening(self.port, Duration::from_secs(10), || "redis-server did not start".into());
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether the tests run as root (as in CI), which some fault and isolation tests need.
pub fn is_root() -> bool {
    Command::new("id").arg("-u").output().map(|o| o.stdout == b"0\n").unwrap_or(false)
}

/// A loopback port free right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A PostgreSQL server of our own (initdb in a temporary directory, trust auth) on a free
/// loopback port; `None` (after a loud note) when PostgreSQL is not installed outside CI.
/// Run as the `postgres` user when the tests run as root, as PostgreSQL requires.
pub struct Postgres {
    pub port: u16,
    bin: PathBuf,
    dir: tempfile::TempDir,
    as_root: bool,
    /// Server settings beyond the defaults (`-c ssl=on ...`).
    settings: String,
}

impl Postgres {
    pub fn start() -> Option<Self> {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .ok()
            .and_then(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).filter(|p| p.join("initdb").is_file()).max());
        let Some(bin) = bin else {
            if std::env::var_os("CI").is_some() {
                panic!("PostgreSQL is missing: .ci/run must install it (apt-get install postgresql)");
            }
            eprintln!("SKIPPED: PostgreSQL is not installed");
            return None;
        };
        let as_root = is_root();
        let mut pg = Self { port: free_port(), bin, dir: tempfile::tempdir().unwrap(), as_root, settings: String::new() };
        if as_root {
            let ok = Command::new("chown").args(["-R", "postgres:postgres"]).arg(pg.dir.path()).status().unwrap().success();
            assert!(ok, "cannot hand the data directory to the postgres user");
        }
        let data = pg.dir.path().join("data");
        let status = pg
            .command("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "initdb failed");
        pg.restart();
        Some(pg)
    }

    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        if self.as_root {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server at once (its data stays for `restart`).
    pub fn stop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Starts the server (again) and waits until it accepts connections.
    pub fn restart(&mut self) {
        let options = format!("-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off{}", self.port, self.dir.path().display(), self.settings);
        let status = self
            .command("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-o", &options, "-l"])
            .arg(self.dir.path().join("log"))
            .args(["-w", "start"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success(), "postgres did not start: {}", std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default());
    }
}

impl Postgres {
    /// A server that also speaks TLS, with a certificate for 127.0.0.1 signed by a CA of
    /// its own; returns it and the CA's PEM text.
    pub fn start_tls() -> Option<(Self, String)> {
        let mut pg = Self::start()?;
        let d = pg.dir.path().to_path_buf();
        test_certificates(&d);
        Command::new("chmod").arg("600").arg(d.join("server.key")).status().unwrap();
        if pg.as_root {
            Command::new("chown").args(["postgres:postgres"]).arg(d.join("server.key")).arg(d.join("server.pem")).status().unwrap();
        }
        pg.stop();
        pg.settings = format!(" -c ssl=on -c ssl_cert_file={} -c ssl_key_file={}", d.join("server.pem").display(), d.join("server.key").display());
        pg.restart();
        let ca = std::fs::read_to_string(d.join("ca.pem")).unwrap();
        Some((pg, ca))
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes a test CA (`ca.pem`) and a server certificate it signed for 127.0.0.1
/// (`server.pem`, `server.key`) into `dir`, with `openssl`.
pub fn test_certificates(dir: &Path) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=Tessera test CA"]);
    openssl(&["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"]);
    std::fs::write(dir.join("san.ext"), "subjectAltName=IP:127.0.0.1\n").unwrap();
    openssl(&["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext"]);
}

/// A CNCF distribution registry (Debian's `docker-registry`) of our own on a free loopback
/// port, storing into a temporary directory; with `auth`, it asks for HTTP basic auth.
/// `None` (after a loud note) when it is not installed outside CI.
pub struct Registry {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Registry {
    pub fn start(auth: Option<(&str, &str)>) -> Option<Self> {
        if Command::new("docker-registry").arg("--version").output().is_err() {
            if std::env::var_os("CI").is_some() {
                panic!("docker-registry is missing: .ci/run must install it (apt-get install docker-registry apache2-utils)");
            }
            eprintln!("SKIPPED: docker-registry is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: 127.0.0.1:{port}\n",
            dir.path().join("data").display()
        );
        if let Some((user, password)) = auth {
            let out = Command::new("htpasswd").args(["-Bbn", user, password]).output().expect("htpasswd (apache2-utils) is needed for registry auth tests");
            let htpasswd = dir.path().join("htpasswd");
            std::fs::write(&htpasswd, out.stdout).unwrap();
            config.push_str(&format!("auth:\n  htpasswd:\n    realm: tessera-test\n    path: {}\n", htpasswd.display()));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_until_listening(port, Duration::from_secs(20), || "docker-registry did not start".into());
        Some(Self { child, port, dir })
    }

    /// `127.0.0.1:PORT`.
    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Where the registry keeps the blob with `digest` (`sha256:<hex>`).
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.strip_prefix("sha256:").unwrap();
        self.dir.path().join("data/docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `tessera` command with its own registry cache and docker config, as on a clean machine.
pub struct Machine {
    pub cache: tempfile::TempDir,
    pub docker: tempfile::TempDir,
    pub work: tempfile::TempDir,
}

impl Machine {
    pub fn new() -> Self {
        Self { cache: tempfile::tempdir().unwrap(), docker: tempfile::tempdir().unwrap(), work: tempfile::tempdir().unwrap() }
    }

    pub fn command(&self) -> Command {
        let mut cmd = tessera();
        cmd.env("TESSERA_REGISTRY_CACHE", self.cache.path())
            .env("DOCKER_CONFIG", self.docker.path())
            .current_dir(self.work.path());
        cmd
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        use std::io::Write as _;
        let mut child = self.command().args(args).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        child.wait_with_output().unwrap()
    }

    pub fn serve(&self, reference: &str) -> Server {
        Server::start_with(self.command(), Path::new(reference), &["-k"])
    }

    pub fn files_in_cache(&self) -> Vec<PathBuf> {
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

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn ok(out: &Output) -> String {
    assert!(out.status.success(), "tessera failed:\nstdout: {}\nstderr: {}", text(&out.stdout), text(&out.stderr));
    text(&out.stdout)
}

/// A `mosquitto` broker of our own on a free loopback port that takes only the user
/// [`Mosquitto::USER`] with [`Mosquitto::PASSWORD`]; `None` (after a loud note) when
/// mosquitto is not installed outside CI. Clients are Debian's `mosquitto_pub` and
/// `mosquitto_sub`.
pub struct Mosquitto {
    child: Option<Child>,
    pub port: u16,
    /// A second listener with TLS (`start_tls`), certified by `dir/ca.pem`.
    pub tls_port: Option<u16>,
    pub dir: tempfile::TempDir,
}

impl Mosquitto {
    pub const USER: &str = "tessera";
    pub const PASSWORD: &str = "s3cret";

    pub fn start() -> Option<Self> {
        let installed = ["mosquitto", "mosquitto_pub", "mosquitto_sub", "mosquitto_passwd"]
            .iter()
            .all(|tool| Command::new("sh").arg("-c").arg(format!("command -v {tool}")).stdout(Stdio::null()).status().is_ok_and(|s| s.success()));
        if !installed {
            if std::env::var_os("CI").is_some() {
                panic!("mosquitto is missing: .ci/run must install it (apt-get install mosquitto mosquitto-clients)");
            }
            eprintln!("SKIPPED: mosquitto is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let passwd = dir.path().join("passwd");
        let ok = Command::new("mosquitto_passwd").args(["-c", "-b"]).arg(&passwd).args([Self::USER, Self::PASSWORD]).status().unwrap().success();
        assert!(ok, "mosquitto_passwd failed");
        let port = free_port();
        // Running as root, mosquitto would switch to its own user, who cannot read our files.
        let user = if is_root() { "user root\n" } else { "" };
        let config = format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\npersistence false\n{user}log_dest stderr\n",
            passwd.display()
        );
        std::fs::write(dir.path().join("mosquitto.conf"), config).unwrap();
        let mut broker = Self { child: None, port, tls_port: None, dir };
        broker.restart();
        Some(broker)
    }

    /// A broker with a TLS listener too (`mqtts://127.0.0.1:tls_port`), its certificate
    /// signed by the test CA at `dir/ca.pem`.
    pub fn start_tls() -> Option<Self> {
        let mut broker = Self::start()?;
        let d = broker.dir.path().to_path_buf();
        test_certificates(&d);
        let tls_port = free_port();
        let mut config = std::fs::read_to_string(d.join("mosquitto.conf")).unwrap();
        config.push_str(&format!(
            "listener {tls_port} 127.0.0.1\ncafile {}\ncertfile {}\nkeyfile {}\n",
            d.join("ca.pem").display(),
            d.join("server.pem").display(),
            d.join("server.key").display()
        ));
        std::fs::write(d.join("mosquitto.conf"), config).unwrap();
        broker.tls_port = Some(tls_port);
        broker.restart();
        wait_until_listening(tls_port, Duration::from_secs(10), || "mosquitto's TLS listener did not start".into());
        Some(broker)
    }

    /// `mqtt://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }

    /// Stops the broker at once.
    pub fn stop(&mut self) {
        kill_child(&mut self.child);
    }

    /// Starts the broker (again) on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(self.dir.path().join("mosquitto.conf"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(self.dir.path().join("log")).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let log = self.dir.path().join("log");
        wait_until_listening(self.port, Duration::from_secs(10), || format!("mosquitto did not start: {}", std::fs::read_to_string(&log).unwrap_or_default()));
    }

    /// Publishes `payload` on `topic` as the broker's user.
    pub fn publish(&self, topic: &str, payload: &str, qos: u8) {
        let status = Command::new("mosquitto_pub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-u", Self::USER, "-P", Self::PASSWORD])
            .args(["-t", topic, "-m", payload, "-q", &qos.to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "mosquitto_pub failed");
    }

    /// A subscriber to `filter` that has received a first message (so it is surely
    /// subscribed before the test publishes).
    pub fn subscribe(&self, filter: &str, probe_topic: &str) -> Subscriber {
        let mut child = Command::new("mosquitto_sub")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-u", Self::USER, "-P", Self::PASSWORD])
            .args(["-t", filter, "-v", "-q", "2"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let lines = Arc::new(Mutex::new(Vec::new()));
        let out = child.stdout.take().unwrap();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let subscriber = Subscriber { child, lines };
        let deadline = Instant::now() + Duration::from_secs(10);
        while subscriber.lines().is_empty() {
            assert!(Instant::now() < deadline, "mosquitto_sub did not subscribe to {filter}");
            self.publish(probe_topic, "probe", 0);
            std::thread::sleep(Duration::from_millis(100));
        }
        subscriber.lines.lock().unwrap().clear();
        subscriber
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A running `mosquitto_sub -v`: the `topic payload` lines it printed.
pub struct Subscriber {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Subscriber {
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits up to 10 s for `count` lines and returns those there are.
    pub fn wait_for(&self, count: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.lines().len() < count && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        self.lines()
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A MariaDB server of our own (`mariadb-install-db` into a temporary directory) on a free
/// loopback port, with database `app` and user [`Mariadb::USER`] / [`Mariadb::PASSWORD`];
/// `None` (after a loud note) when MariaDB is not installed outside CI.
pub struct Mariadb {
    child: Option<Child>,
    pub port: u16,
    /// Server options beyond the defaults (`start_tls`'s certificate).
    extra: Vec<String>,
    dir: tempfile::TempDir,
}

impl Mariadb {
    pub const USER: &str = "tessera";
    pub const PASSWORD: &str = "s3cret";

    pub fn start() -> Option<Self> {
        let installed = ["mariadbd", "mariadb-install-db", "mariadb"]
            .iter()
            .all(|tool| Command::new("sh").arg("-c").arg(format!("command -v {tool} || test -x /usr/sbin/{tool}")).stdout(Stdio::null()).status().is_ok_and(|s| s.success()));
        if !installed {
            if std::env::var_os("CI").is_some() {
                panic!("MariaDB is missing: .ci/run must install it (apt-get install mariadb-server mariadb-client)");
            }
            eprintln!("SKIPPED: MariaDB is not installed");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        // A temporary directory of its own: servers bootstrapping at once in the shared /tmp
        // lost each other's temporary tables (`Unknown table 'mysql.tmp_proxies_priv'`).
        std::fs::create_dir(dir.path().join("tmp")).unwrap();
        let out = Command::new("mariadb-install-db")
            .args(["--no-defaults", "--auth-root-authentication-method=normal", "--skip-test-db"])
            .arg(format!("--datadir={}", dir.path().join("data").display()))
            .arg(format!("--tmpdir={}", dir.path().join("tmp").display()))
            .args(if is_root() { &["--user=root"][..] } else { &[][..] })
            .output()
            .unwrap();
        assert!(out.status.success(), "mariadb-install-db failed: {}", String::from_utf8_lossy(&out.stderr));
        let mut db = Self { child: None, port: free_port(), extra: Vec::new(), dir };
        db.restart();
        let setup = format!(
            "CREATE USER '{u}'@'%' IDENTIFIED BY '{p}'; CREATE DATABASE app; GRANT ALL ON app.* TO '{u}'@'%';",
            u = Self::USER,
            p = Self::PASSWORD
        );
        db.sql(&setup);
        Some(db)
    }

    /// A server that also speaks TLS, with a certificate for 127.0.0.1 signed by a test CA
    /// that no system trusts.
    pub fn start_tls() -> Option<Self> {
        let mut db = Self::start()?;
        let d = db.dir.path().to_path_buf();
        test_certificates(&d);
        db.extra = ["ca.pem", "server.pem", "server.key"]
            .iter()
            .zip(["--ssl-ca", "--ssl-cert", "--ssl-key"])
            .map(|(file, option)| format!("{option}={}", d.join(file).display()))
            .collect();
        db.restart();
        Some(db)
    }

    /// `mysql://USER:PASSWORD@127.0.0.1:PORT/app`.
    pub fn url(&self) -> String {
        format!("mysql://{}:{}@127.0.0.1:{}/app", Self::USER, Self::PASSWORD, self.port)
    }

    /// Runs `statements` as root over the server's socket.
    pub fn sql(&self, statements: &str) -> String {
        let out = Command::new("mariadb")
            .args(["--no-defaults", "-u", "root", "-N", "-B"])
            .arg(format!("--socket={}", self.dir.path().join("sock").display()))
            .args(["-e", statements])
            .output()
            .unwrap();
        assert!(out.status.success(), "mariadb failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Kills the server at once (`kill -9`; its data stays for `restart`).
    pub fn kill(&mut self) {
        kill_child(&mut self.child);
    }

    /// Starts the server (again) on the same port and waits until it answers.
    pub fn restart(&mut self) {
        self.kill();
        let d = self.dir.path();
        let mut cmd = Command::new("mariadbd");
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", d.join("data").display()))
            .arg(format!("--socket={}", d.join("sock").display()))
            .arg(format!("--pid-file={}", d.join("pid").display()))
            .arg(format!("--tmpdir={}", d.join("tmp").display()))
            .arg(format!("--port={}", self.port))
            .args(["--bind-address=127.0.0.1", "--skip-log-bin", "--innodb-buffer-pool-size=16M", "--skip-name-resolve"])
            .args(&self.extra);
        if is_root() {
            cmd.arg("--user=root");
        }
        let child = cmd.stdout(Stdio::null()).stderr(std::fs::File::create(d.join("log")).unwrap()).spawn().unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new("mariadb")
                .args(["--no-defaults", "-u", "root"])
                .arg(format!("--socket={}", d.join("sock").display()))
                .args(["-e", "SELECT 1"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "mariadbd did not start: {}", std::fs::read_to_string(d.join("log")).unwrap_or_default());
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Kills a server the tests started, if it runs, and reaps it.
fn kill_child(child: &mut Option<Child>) {
    if let Some(mut c) = child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
}

/// Waits until something accepts TCP connections on loopback `port`; fails with
/// `why()` after `timeout`.
fn wait_until_listening(port: u16, timeout: Duration, why: impl Fn() -> String) {
    let deadline = Instant::now() + timeout;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "{}", why());
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A NATS server of our own on a free loopback port, with a login; `None` (after a loud
/// note) when nats-server is not installed outside CI.
pub struct Nats {
    child: Option<Child>,
    pub port: u16,
    /// Server options beyond the defaults (`start_tls`'s certificate).
    extra: Vec<String>,
    pub dir: tempfile::TempDir,
}

impl Nats {
    pub const USER: &str = "tessera";
    pub const PASSWORD: &str = "n4ts";

    pub fn start() -> Option<Self> {
        if Command::new("nats-server").arg("--version").output().is_err() {
            if std::env::var_os("CI").is_some() {
                panic!("nats-server is missing: .ci/run must install it (apt-get install nats-server)");
            }
            eprintln!("SKIPPED: nats-server is not installed");
            return None;
        }
        let mut nats = Self { child: None, port: free_port(), extra: Vec::new(), dir: tempfile::tempdir().unwrap() };
        nats.restart();
        Some(nats)
    }

    /// A server that requires TLS, with a certificate for 127.0.0.1 signed by the test CA
    /// at `dir/ca.pem`.
    pub fn start_tls() -> Option<Self> {
        let mut nats = Self::start()?;
        let d = nats.dir.path().to_path_buf();
        test_certificates(&d);
        nats.extra = vec!["--tls".into(), "--tlscert".into(), d.join("server.pem").display().to_string(), "--tlskey".into(), d.join("server.key").display().to_string()];
        nats.restart();
        Some(nats)
    }

    /// `nats://USER:PASSWORD@127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://{}:{}@127.0.0.1:{}", Self::USER, Self::PASSWORD, self.port)
    }

    /// Stops the server at once.
    pub fn stop(&mut self) {
        kill_child(&mut self.child);
    }

    /// Starts the server (again) on the same port and waits until it accepts connections.
    pub fn restart(&mut self) {
        self.stop();
        let log = self.dir.path().join("log");
        let child = Command::new("nats-server")
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string(), "--user", Self::USER, "--pass", Self::PASSWORD])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        self.child = Some(child);
        wait_until_listening(self.port, Duration::from_secs(10), || format!("nats-server did not start: {}", std::fs::read_to_string(&log).unwrap_or_default()));
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        self.stop();
    }
}
