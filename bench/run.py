#!/usr/bin/env python3
"""Tessera's benchmark suite: one command, peers side by side, results in bench/RESULTS.md.

    python3 bench/run.py                 # everything (installs peers by name, builds, runs)
    python3 bench/run.py --only hello    # some scenarios: hello instantiate startup python
                                         #   idle concurrent kv cpu
    python3 bench/run.py --duration 3 --rounds 2

Peers are installed by name: wrk (Debian), `cargo install wasmtime-cli --version 48.0.8`,
the guests' toolchains by scripts/install-toolchains.sh, and a native hyper server built from bench/src/bin/native-hello.rs. Every server runs on a
loopback port of its own, load comes from wrk in a separate process, and peers are measured
in alternating rounds (A B A B) in the same run; each figure is the median over rounds.
Only the standard library is used, so it runs on a fresh machine's python3.
"""

import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WASMTIME_VERSION = "48.0.8"
TESSERA = ROOT / "target/release/tessera"
NATIVE = ROOT / "target/release/native-hello"
NATIVE_SUBSCRIBER = ROOT / "target/release/native-subscriber"
COMMAND_GUEST = ROOT / "tests/guests/target/wasm32-wasip2/release/command_guest.wasm"
REDIS_GUEST = ROOT / "tests/guests/target/wasm32-wasip2/release/redis_guest.wasm"
HOLD_OPEN = ROOT / "target/release/hold-open"
SCENARIOS = ["hello", "instantiate", "startup", "python", "idle", "concurrent", "kv", "cpu", "run", "redis", "compose", "containerd", "plugins", "host", "metrics"]
SHIM = ROOT / "target/release/containerd-shim-tessera-v1"
# native-hello linked statically, for an image of that one file (runc's peer).
STATIC_TARGET = subprocess.run(["rustc", "-vV"], capture_output=True, text=True).stdout.split("host: ")[1].split()[0]
NATIVE_STATIC = ROOT / f"target/static/{STATIC_TARGET}/release/native-hello"

# Targets from issue 4, checked in the results table.
TARGET_VS_WASMTIME = 4.0
TARGET_VS_NATIVE = 0.60
TARGET_INSTANTIATE_P50_US = 10.0
TARGET_IDLE_MIB = 2.0
TARGET_CONCURRENT_GIB = 2.0
TARGET_CPU_RATIO = 1.3
# Issue 15: pod start within 2x of a native container's, idle app container under 10 MiB.
TARGET_POD_START_VS_RUNC = 2.0
TARGET_CONTAINER_MIB = 10.0
# Issue 16: a plugin call (fresh instance, 1 KB in and out) under 10 µs at p50 and at least
# twice as fast as Extism's.
TARGET_PLUGIN_CALL_P50_US = 10.0
TARGET_PLUGIN_VS_EXTISM = 2.0
PLUGIN_GUESTS = ROOT / "bench/guests/plugin"
# Issue 18: under 1 MiB per idle app beyond compiled code in one host of many, latency
# within 10% of a one-app host; metrics cost under 3% of hello-world throughput.
TARGET_HOST_APP_MIB = 1.0
TARGET_HOST_LATENCY_RATIO = 1.10
TARGET_METRICS_COST = 0.03


def log(msg):
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


def run(cmd, **kw):
    log("$ " + " ".join(str(c) for c in cmd))
    return subprocess.run([str(c) for c in cmd], check=True, **kw)


def wasmtime_bin():
    return shutil.which("wasmtime") or str(Path.home() / ".cargo/bin/wasmtime")


# ---------------------------------------------------------------- set-up


def install_peers():
    if not shutil.which("wrk") or not shutil.which("redis-server"):
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run(["apt-get", "update", "-qq"], env=env)
        run(["apt-get", "install", "-y", "-qq", "wrk", "redis-server"], env=env)
    # The guests' toolchains (Rust wasm target, wasm-tools, zig, componentize-py), as CI has them.
    run([ROOT / "scripts/install-toolchains.sh"])
    try:
        version = subprocess.run([wasmtime_bin(), "--version"], capture_output=True, text=True).stdout
    except OSError:
        version = ""
    if WASMTIME_VERSION not in version:
        run(["cargo", "install", "--locked", "wasmtime-cli", "--version", WASMTIME_VERSION])


def build():
    run(["cargo", "build", "--release", "--locked", "-p", "tessera", "-p", "tessera-bench", "--bins"], cwd=ROOT)
    run([ROOT / "scripts/build-guests.sh"], cwd=ROOT)
    run([ROOT / "examples/hello-c/build.sh"])
    run([ROOT / "bench/guests/sha256-c/build.sh"])
    run([ROOT / "bench/guests/sleep/build.sh"])
    run(["cargo", "build", "--locked", "--release", "--target", "wasm32-wasip2", "-q"], cwd=ROOT / "bench/guests/kv-rust")
    if not (ROOT / "examples/hello-python/app.wasm").exists():
        run([ROOT / "examples/hello-python/build.sh"])


def machine():
    cpu = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True)
    wrk_version = (wrk.stdout + wrk.stderr).split("[")[0].strip()
    rev = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, cwd=ROOT).stdout.strip()
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": mem,
        "kernel": platform.release(),
        "wrk": wrk_version,
        "wasmtime": subprocess.run([wasmtime_bin(), "--version"], capture_output=True, text=True).stdout.strip()
        if Path(wasmtime_bin()).exists() else "not installed",
        "commit": rev + ("+changes" if dirty else ""),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


# ---------------------------------------------------------------- servers


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_get(port, path="/", timeout=2.0):
    """Status of a GET, or None if nothing answers yet."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
            data = b""
            while chunk := s.recv(65536):
                data += chunk
        m = re.match(rb"HTTP/1\.1 (\d+)", data)
        return int(m.group(1)) if m else None
    except OSError:
        return None


class Server:
    """A server process on a loopback port, stopped on exit."""

    def __init__(self, name, cmd, port, env=None, cwd=None):
        self.name, self.port = name, port
        self.log = tempfile.TemporaryFile()
        self.started = time.monotonic()
        self.proc = subprocess.Popen([str(c) for c in cmd], stdout=self.log, stderr=subprocess.STDOUT,
                                     env=env, cwd=cwd)

    def wait_ready(self, path="/", timeout=600):
        """Waits for the first 200 and returns seconds since the process started."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"{self.name} exited: {self.log.read().decode(errors='replace')[-2000:]}")
            if http_get(self.port, path, timeout=5) == 200:
                return time.monotonic() - self.started
            time.sleep(0.002)
        raise RuntimeError(f"{self.name} did not answer 200 on {path} within {timeout}s")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def tessera(manifest_dir, port, cache_dir, runtime_config=None, state_dir=None):
    cmd = [TESSERA, "up", "-f", manifest_dir, "--listen", f"127.0.0.1:{port}", "--cache-dir", cache_dir]
    if runtime_config:
        cmd += ["--runtime-config-file", runtime_config]
    return Server("tessera", cmd, port, cwd=state_dir)


def wasmtime_serve(wasm, port, cache=False):
    # -S cli: Rust, Python and JS components import wasi:cli beyond the proxy world.
    cmd = [wasmtime_bin(), "serve", "-O", "pooling-allocator", "-S", "cli", "--addr", f"127.0.0.1:{port}"]
    cmd += ["-C", "cache=y" if cache else "cache=n", wasm]
    return Server("wasmtime serve", cmd, port)


class NativeTuned:
    """The native server's other SHA-256 route, built with -O3 -march=native."""

    def __init__(self, server):
        self.name, self.port = "native hyper, -O3 -march=native", server.port


def native(port):
    return Server("native hyper", [NATIVE, "--listen", f"127.0.0.1:{port}"], port)


# ---------------------------------------------------------------- measuring


def parse_duration_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def wrk(port, path, duration, connections=32, threads=1):
    cmd = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", f"http://127.0.0.1:{port}{path}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {p: parse_duration_ms(v) for p, v in re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M)}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    socket_errors = re.search(r"Socket errors: (.*)", out)
    if errors or socket_errors:
        raise RuntimeError(f"wrk saw errors against port {port}{path}:\n{out}")
    return {"rps": rps, "p50_ms": lat["50"], "p99_ms": lat["99"], "command": " ".join(cmd[:-1])}


def alternate(servers, path, duration, rounds, connections=32, paths=None):
    """wrk against each server in turn (A B C A B C ...); medians and raw rounds per server.
    `paths` overrides the path for some servers, by name."""
    paths = paths or {}
    for s in servers:
        wrk(s.port, paths.get(s.name, path), 1, connections)  # warm-up
    raw = {s.name: [] for s in servers}
    for r in range(rounds):
        for s in servers:
            result = wrk(s.port, paths.get(s.name, path), duration, connections)
            log(f"round {r + 1}: {s.name}: {result['rps']:.0f} req/s p50 {result['p50_ms']:.3f} ms p99 {result['p99_ms']:.3f} ms")
            raw[s.name].append(result)
    return {
        name: {
            "rps": statistics.median(x["rps"] for x in runs),
            "p50_ms": statistics.median(x["p50_ms"] for x in runs),
            "p99_ms": statistics.median(x["p99_ms"] for x in runs),
            "raw_rps": [round(x["rps"]) for x in runs],
            "command": runs[0]["command"],
        }
        for name, runs in raw.items()
    }


def smaps_split(pid):
    """Resident KiB of a process: total, read-only file mappings (executable, libraries,
    compiled components: shared with the page cache, the same for any number of apps), and
    the rest (heap, stacks, wasm memories, writable data), which is what an app costs."""
    total = code = 0
    current = None
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
            path = fields[5] if len(fields) > 5 else ""
            current = path.startswith("/") and "w" not in fields[1]
        elif fields and fields[0] == "Rss:":
            kib = int(fields[1])
            total += kib
            if current:
                code += kib
    return {"rss_kib": total, "code_kib": code, "beyond_code_kib": total - code}


# ---------------------------------------------------------------- scenarios


def scenario_hello(args, results):
    guests = [("C", ROOT / "examples/hello-c", ROOT / "examples/hello-c/hello_c.wasm"),
              ("Rust", ROOT / "examples/hello-rust", ROOT / "examples/hello-rust/hello_rust.wasm")]
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        for label, app, wasm in guests:
            with tessera(app, free_port(), cache) as t, wasmtime_serve(wasm, free_port()) as w, native(free_port()) as n:
                for s in (t, w, n):
                    s.wait_ready()
                out[label] = alternate([t, w, n], "/", args.duration, args.rounds)
    results["hello"] = out


def scenario_instantiate(args, results):
    out_file = ROOT / "target/bench/instantiate.json"
    # As the tessera binary does: no host backtrace captured for every guest error.
    env = dict(os.environ, TESSERA_BENCH_OUT=str(out_file), RUST_LIB_BACKTRACE="0")
    cmd = ["cargo", "bench", "--locked", "-p", "tessera-bench", "--bench", "instantiate", "--",
           "--warm-up-time", "1", "--measurement-time", str(max(2, args.duration))]
    run(cmd, cwd=ROOT, env=env)
    results["instantiate"] = {"rows": json.loads(out_file.read_text()), "command": " ".join(cmd)}


def first_200_alternating(make_servers, rounds):
    """Process start to first 200, per server kind, alternating; medians in ms."""
    raw = {}
    for _ in range(rounds):
        for name, make in make_servers:
            with make() as s:
                raw.setdefault(name, []).append(s.wait_ready() * 1000)
    return {name: {"ms": statistics.median(v), "raw_ms": [round(x, 1) for x in v]} for name, v in raw.items()}


def warm_caches(app, wasm, cache):
    """Starts Tessera (with `cache`) and `wasmtime serve` (with its own cache) once, so
    the next starts load compiled code instead of compiling."""
    for first in (tessera(app, free_port(), cache), wasmtime_serve(wasm, free_port(), cache=True)):
        with first as s:
            s.wait_ready()


def scenario_startup(args, results):
    app, wasm = ROOT / "examples/hello-rust", ROOT / "examples/hello-rust/hello_rust.wasm"
    warm_cache = tempfile.mkdtemp()
    cold_caches = tempfile.mkdtemp()
    try:
        warm_caches(app, wasm, warm_cache)

        def cold_tessera():
            cache = tempfile.mkdtemp(dir=cold_caches)  # a new, empty cache
            return tessera(app, free_port(), cache)

        out = first_200_alternating([
            ("tessera, cache cold", cold_tessera),
            ("wasmtime serve, no cache", lambda: wasmtime_serve(wasm, free_port())),
            ("tessera, cache warm", lambda: tessera(app, free_port(), warm_cache)),
            ("wasmtime serve, cache warm", lambda: wasmtime_serve(wasm, free_port(), cache=True)),
            ("native hyper", lambda: native(free_port())),
        ], args.rounds * 2 + 1)
        results["startup"] = out
    finally:
        shutil.rmtree(warm_cache, ignore_errors=True)
        shutil.rmtree(cold_caches, ignore_errors=True)


def scenario_python(args, results):
    app, wasm = ROOT / "examples/hello-python", ROOT / "examples/hello-python/app.wasm"
    cache = tempfile.mkdtemp()
    try:
        warm_caches(app, wasm, cache)
        out = first_200_alternating([
            ("tessera, cache warm", lambda: tessera(app, free_port(), cache)),
            ("wasmtime serve, cache warm", lambda: wasmtime_serve(wasm, free_port(), cache=True)),
        ], args.rounds + 1)
        # The first request alone, once the server listens.
        first = {}
        for _ in range(args.rounds + 1):
            for name, make in [("tessera", lambda: tessera(app, free_port(), cache)),
                               ("wasmtime serve", lambda: wasmtime_serve(wasm, free_port(), cache=True))]:
                with make() as s:
                    while socket_listening(s.port) is False:
                        time.sleep(0.002)
                    start = time.monotonic()
                    status = http_get(s.port, "/", timeout=60)
                    assert status == 200, f"{name} answered {status}"
                    first.setdefault(name, []).append((time.monotonic() - start) * 1000)
        results["python"] = {
            "size_mb": round(wasm.stat().st_size / 1e6, 1),
            "start_to_first_200": out,
            "first_request": {k: {"ms": statistics.median(v), "raw_ms": [round(x, 1) for x in v]} for k, v in first.items()},
        }
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def socket_listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def scenario_idle(args, results):
    """Resident memory once an app has served and gone idle, compile caches warm (the
    steady state: compiling leaves allocator memory behind that a warm start never uses)."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        for label, app, wasm in [("hello-rust", ROOT / "examples/hello-rust", ROOT / "examples/hello-rust/hello_rust.wasm"),
                                 ("hello-c", ROOT / "examples/hello-c", ROOT / "examples/hello-c/hello_c.wasm")]:
            warm_caches(app, wasm, cache)
            with tessera(app, free_port(), cache) as t, wasmtime_serve(wasm, free_port(), cache=True) as w, \
                    native(free_port()) as n:
                for s in (t, w, n):
                    s.wait_ready()
                    for _ in range(100):
                        http_get(s.port)
                time.sleep(1.5)
                out[label] = {
                    "tessera": smaps_split(t.proc.pid),
                    "wasmtime serve": smaps_split(w.proc.pid),
                    "native hyper": smaps_split(n.proc.pid),
                }
    results["idle"] = out


def scenario_concurrent(args, results):
    n = args.connections
    # One descriptor per connection in each process (client and server), plus room.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n + 2048
    if want > hard:
        raise RuntimeError(f"{n} connections need an open-file limit of {want}; the hard limit is {hard} (raise it, or pass --connections)")
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
    with tempfile.TemporaryDirectory() as tmp:
        rc = Path(tmp) / "runtime-config.toml"
        rc.write_text(f"max_concurrent_requests = {n}\nmax_queued_requests = {n}\nrequest_timeout = \"30s\"\n")
        app = ROOT / "bench/guests/sleep"
        with tessera(app, free_port(), tmp, runtime_config=rc) as t:
            t.wait_ready("/?ms=0")
            for _ in range(50):
                http_get(t.port, "/?ms=0")
            time.sleep(1)
            cmd = [HOLD_OPEN, "--addr", f"127.0.0.1:{t.port}", "--path", "/?ms=1000", "--connections", n, "--pid", t.proc.pid]
            out = json.loads(run(cmd, capture_output=True, text=True).stdout)
            out["command"] = f"hold-open --path /?ms=1000 --connections {n}"
    results["concurrent"] = out


def scenario_kv(args, results):
    with tempfile.TemporaryDirectory() as tmp:
        with tessera(ROOT / "bench/guests/kv-rust", free_port(), tmp, state_dir=tmp) as t, \
                tessera(ROOT / "examples/hello-rust", free_port(), tmp) as h:
            t.name = "tessera kv"
            h.name = "tessera hello-rust"
            t.wait_ready()
            h.wait_ready()
            results["kv"] = alternate([t, h], "/", args.duration, args.rounds)


def scenario_cpu(args, results):
    with tempfile.TemporaryDirectory() as cache:
        wasm = ROOT / "bench/guests/sha256-c/sha256_c.wasm"
        with tessera(ROOT / "bench/guests/sha256-c", free_port(), cache) as t, \
                wasmtime_serve(wasm, free_port()) as w, native(free_port()) as n:
            for s in (t, w, n):
                s.wait_ready()
            # Same answer from all three: the same C code.
            answers = set()
            for s in (t, w, n):
                with socket.create_connection(("127.0.0.1", s.port)) as c:
                    c.sendall(b"GET /sha256 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    data = b""
                    while chunk := c.recv(65536):
                        data += chunk
                digest = re.search(rb"[0-9a-f]{64}", data.split(b"\r\n\r\n", 1)[1])
                answers.add(digest.group(0) if digest else data)
            if len(answers) != 1:
                raise RuntimeError(f"the hosts disagree on the SHA-256: {answers}")
            # One request at a time: the time per request is the work itself, whatever
            # thread each host runs it on.
            tuned = NativeTuned(n)
            results["cpu"] = alternate([t, w, n, tuned], "/sha256", args.duration, args.rounds, connections=1,
                                       paths={tuned.name: "/sha256-tuned"})
            results["cpu"]["digest"] = answers.pop().decode()


# ---------------------------------------------------------------- report


def scenario_run(args, results):
    """`tessera run` vs `wasmtime run`: process start to exit of a hello command, compile
    caches warm, alternating."""
    cache = tempfile.mkdtemp()
    try:
        commands = {
            "tessera run": [TESSERA, "run", "--cache-dir", cache, COMMAND_GUEST, "hello"],
            # -S http: the guest imports wasi:http (its `http` mode), as Tessera links it.
            "wasmtime run": [wasmtime_bin(), "run", "-S", "http", "-C", "cache=y", COMMAND_GUEST, "hello"],
        }
        for cmd in commands.values():  # warm both compile caches
            subprocess.run([str(c) for c in cmd], check=True, capture_output=True)
        raw = {name: [] for name in commands}
        for _ in range(args.rounds * 10):
            for name, cmd in commands.items():
                started = time.monotonic()
                out = subprocess.run([str(c) for c in cmd], check=True, capture_output=True, text=True)
                raw[name].append((time.monotonic() - started) * 1000)
                assert "hello from a command" in out.stdout, out.stdout
        results["run"] = {
            name: {"ms": statistics.median(v), "raw_ms": [round(x, 1) for x in v[:10]],
                   "command": " ".join(str(c) for c in commands[name])}
            for name, v in raw.items()
        }
    finally:
        shutil.rmtree(cache, ignore_errors=True)


GUESTS = ROOT / "tests/guests/target/wasm32-wasip2/release"
CALL_SIZES = [20, 2048, 20480]

COMPOSE_APP = """spin_manifest_version = 2
[application]
name = "composed"
[[trigger.http]]
route = "/..."
component = "api"
[[trigger.http]]
route = "/svc/..."
component = "echo"
[component.api]
source = "{guests}/calc_user_guest.wasm"
allowed_outbound_hosts = ["http://echo.spin.internal", "http://127.0.0.1:*"]
[component.api.dependencies]
"tessera:calc" = {{ path = "{guests}/calc_guest.wasm" }}
[component.echo]
source = "{guests}/http_guest.wasm"
"""


def guest_ns_per_call(port, path):
    """The guest's own timing of a loop of calls: `N ns per call (...)`."""
    with socket.create_connection(("127.0.0.1", port), timeout=120) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    m = re.search(rb"(\d+) ns per call", data)
    if not m:
        raise RuntimeError(f"{path}: {data[-300:]!r}")
    return int(m.group(1))


def scenario_compose(args, results):
    """Composition: one cross-component call through a composed import against the same
    call made as an in-process HTTP hop (service chaining) and as a loopback HTTP request,
    each timed by the calling guest over a loop; the composed app's req/s against
    `wasmtime serve` on `tessera compose`'s output; load time with the cache cold and warm."""
    out = {"calls": {}, "load": {}}
    with tempfile.TemporaryDirectory() as tmp:
        app = Path(tmp) / "app"
        app.mkdir()
        (app / "spin.toml").write_text(COMPOSE_APP.format(guests=GUESTS))
        # Each hop loop sends thousands of requests from one instance.
        rc = Path(tmp) / "runtime-config.toml"
        rc.write_text("max_outbound_requests = 1000000\n")
        cache = Path(tmp) / "cache"
        # Load time: the composed component compiled (cold), then from the compile cache.
        for label in ("cold", "warm"):
            port = free_port()
            with tessera(app, port, cache) as t:
                t.wait_ready("/add?a=1&b=2")
                t.log.seek(0)
                text = t.log.read().decode(errors="replace")
            m = re.search(r"component `api` \(([\d.]+ [kM]B)\) (compiled in|loaded from the compile cache in) ([\d.]+) ms", text)
            out["load"][label] = {"ms": float(m.group(3)), "how": m.group(2), "size": m.group(1)} if m else {"ms": None, "how": text[-300:]}
        port = free_port()
        with tessera(app, port, cache, runtime_config=rc) as t:
            t.wait_ready("/add?a=1&b=2")
            for size in CALL_SIZES:
                n_call, n_hop = 200_000 if size < 10_000 else 20_000, 2_000
                row = {}
                for name, path in (
                    ("composed import", f"/echo-loop?n={n_call}&size={size}"),
                    ("service chaining (in process)", f"/hop-loop?n={n_hop}&size={size}&to=http://echo.spin.internal/echo"),
                    ("loopback HTTP", f"/hop-loop?n={n_hop}&size={size}&to=http://127.0.0.1:{port}/svc/echo"),
                ):
                    runs = [guest_ns_per_call(port, path) for _ in range(max(3, args.rounds))]
                    row[name] = {"ns": statistics.median(runs), "raw_ns": runs}
                    log(f"compose: {size} B, {name}: {statistics.median(runs)} ns per call {runs}")
                out["calls"][size] = row
        composed = Path(tmp) / "composed.wasm"
        run([TESSERA, "compose", "-f", app, "-c", "api", "-o", composed])
        with tessera(app, free_port(), cache) as t, wasmtime_serve(composed, free_port()) as w:
            for s in (t, w):
                s.wait_ready("/add?a=1&b=2")
            out["rps"] = alternate([t, w], "/add?a=1&b=2", args.duration, args.rounds)
        # The polyglot example: a JavaScript front end calling the Rust calculator.
        calculator = ROOT / "examples/calculator"
        if not (calculator / "frontend/frontend.wasm").exists():
            run([calculator / "frontend/build.sh"])
        composed = Path(tmp) / "calculator.wasm"
        run([TESSERA, "compose", "-f", calculator, "-c", "frontend", "-o", composed])
        with tessera(calculator, free_port(), cache) as t, wasmtime_serve(composed, free_port(), cache=True) as w:
            for s in (t, w):
                s.wait_ready("/add?a=1&b=2")
            out["polyglot_rps"] = alternate([t, w], "/add?a=1&b=2", args.duration, args.rounds)
    results["compose"] = out


class Containerd:
    """containerd (Debian's) run as root with its own root, state and socket, the shim on its
    PATH; runc is its default runtime."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="bench-containerd-"))
        config = self.dir / "config.toml"
        config.write_text(f'version = 2\nroot = "{self.dir}/root"\nstate = "{self.dir}/state"\n'
                          f'[grpc]\n  address = "{self.dir}/containerd.sock"\n')
        env = dict(os.environ, PATH=f"{SHIM.parent}:{os.environ['PATH']}")
        self.log = open(self.dir / "containerd.log", "w")
        self.proc = subprocess.Popen(["containerd", "--config", str(config)], stdout=self.log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 30
        while subprocess.run(self.ctr_cmd("version"), capture_output=True).returncode != 0:
            if time.monotonic() > deadline:
                raise RuntimeError("containerd did not start: " + (self.dir / "containerd.log").read_text()[-2000:])
            time.sleep(0.1)

    def ctr_cmd(self, *args):
        return ["ctr", "--address", str(self.dir / "containerd.sock"), *[str(a) for a in args]]

    def ctr(self, *args):
        return subprocess.run(self.ctr_cmd(*args), check=True, capture_output=True, text=True).stdout

    def image(self, files, name, entrypoint, platform):
        """Imports an image whose one layer holds `files` (name -> path)."""
        with tempfile.TemporaryDirectory() as d:
            for dest, src in files.items():
                shutil.copy2(src, Path(d) / dest)
            tar = self.dir / "image.tar"
            run(["python3", ROOT / "scripts/oci-image.py", d, name, tar, entrypoint, platform])
            self.ctr("image", "import", "--all-platforms", tar)

    def run(self, id, image, port, tessera_cache=None, detach=False):
        """`ctr run` of a Tessera app image (with a compile cache directory mounted, or
        none) or of the native image, on the host's network; the ctr process."""
        cmd = self.ctr_cmd("run", "--net-host", *(["--detach"] if detach else ["--rm"]))
        if tessera_cache is None:
            cmd += [image, id, "/native-hello", "--listen", f"127.0.0.1:{port}"]
        else:
            cmd += ["--runtime", "io.containerd.tessera.v1", "--env", f"SPIN_HTTP_LISTEN_ADDR=127.0.0.1:{port}"]
            if tessera_cache:
                cmd += ["--mount", f"type=bind,src={tessera_cache},dst=/cache,options=rbind:rw", "--env", "TESSERA_CACHE_DIR=/cache"]
            cmd += [image, id, "/"]
        return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def remove(self, id, proc=None):
        subprocess.run(self.ctr_cmd("task", "kill", "--signal", "SIGKILL", id), capture_output=True)
        if proc:
            proc.wait(30)
        deadline = time.monotonic() + 30
        while subprocess.run(self.ctr_cmd("task", "delete", id), capture_output=True).returncode == 0 or \
                id in self.ctr("task", "ls"):
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        subprocess.run(self.ctr_cmd("container", "delete", id), capture_output=True)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(30)
        shutil.rmtree(self.dir, ignore_errors=True)


def wait_200(port, started, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if http_get(port, "/", timeout=5) == 200:
            return time.monotonic() - started
        time.sleep(0.002)
    raise RuntimeError(f"nothing answered 200 on port {port} within {timeout}s")


def pss_kib(pid):
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def container_pids(containerd, ids):
    """The shim and task processes of containers `ids`: what each container costs the node."""
    ids = set(ids)
    pids = set()
    for line in containerd.ctr("task", "ls").splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 2 and fields[0] in ids:
            pids.add(int(fields[1]))
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith((b"containerd-shim-tessera-v1", b"containerd-shim-runc-v2")) and \
                str(containerd.dir).encode() in b" ".join(argv):
            pids.add(int(proc.name))
    # The Tessera task runs in a process cloned from the shim: counted once.
    return sorted(pids)


def scenario_containerd(args, results):
    if os.geteuid() != 0 or not shutil.which("containerd"):
        log("SKIPPED containerd: needs root and containerd (apt-get install containerd runc)")
        return
    if not args.no_setup or not SHIM.exists() or not NATIVE_STATIC.exists():
        run(["cargo", "build", "--release", "--locked", "-p", "tessera-shim"], cwd=ROOT)
        run(["cargo", "build", "--release", "--locked", "-p", "tessera-bench", "--bin", "native-hello",
             "--target", STATIC_TARGET, "--target-dir", ROOT / "target/static"],
            cwd=ROOT, env=dict(os.environ, RUSTFLAGS="-C target-feature=+crt-static"))
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    containerd = Containerd()
    caches = Path(tempfile.mkdtemp(prefix="bench-cache-"))
    out = {}
    try:
        wasm = ROOT / "examples/hello-rust/hello_rust.wasm"
        containerd.image({"spin.toml": ROOT / "examples/hello-rust/spin.toml", "hello_rust.wasm": wasm},
                         "docker.io/bench/tessera-hello:1", "/", "wasip1/wasm")
        containerd.image({"native-hello": NATIVE_STATIC}, "docker.io/bench/native-hello:1", "/native-hello", f"linux/{arch}")
        warm = caches / "warm"
        warm.mkdir()
        counter = iter(range(1_000_000))

        def start(kind, detach=False):
            id, port = f"bench-{next(counter)}", free_port()
            if kind == "runc":
                proc = containerd.run(id, "docker.io/bench/native-hello:1", port, detach=detach)
            else:
                cache = warm if kind == "warm" else Path(tempfile.mkdtemp(dir=caches))
                proc = containerd.run(id, "docker.io/bench/tessera-hello:1", port, tessera_cache=cache, detach=detach)
            return id, port, proc

        # The warm cache gets its compiled component from a first container.
        id, port, proc = start("warm")
        wait_200(port, time.monotonic())
        containerd.remove(id, proc)

        kinds = [("tessera shim, compile cache cold", "cold"), ("tessera shim, compile cache warm", "warm"),
                 ("runc + native hyper (static)", "runc")]
        raw = {name: [] for name, _ in kinds}
        for _ in range(args.rounds * 2 + 1):
            for name, kind in kinds:
                started = time.monotonic()
                id, port, proc = start(kind)
                raw[name].append(wait_200(port, started) * 1000)
                containerd.remove(id, proc)
        out["start_ms"] = {name: {"ms": statistics.median(v), "raw_ms": [round(x, 1) for x in v]} for name, v in raw.items()}
        log(f"start to first 200: {out['start_ms']}")

        memory = {}
        for count in (1, 10, 50):
            for name, kind in (("tessera shim (cache warm)", "warm"), ("runc + native hyper (static)", "runc")):
                running = []
                for _ in range(count):
                    id, port, proc = start(kind, detach=True)
                    proc.wait(60)
                    running.append((id, port))
                for id, port in running:
                    wait_200(port, time.monotonic())
                # Idle: the shim daemon drops its start-up pages 5 s after creating its
                # first container, the task what serving touched after 5 s without a
                # request (crates/shim/src/main.rs); both sides wait the same.
                time.sleep(8)
                pids = container_pids(containerd, [id for id, _ in running])
                total = sum(pss_kib(p) for p in pids)
                memory.setdefault(str(count), {})[name] = {"per_container_kib": round(total / count), "processes": len(pids)}
                log(f"{count} x {name}: {total / count / 1024:.1f} MiB PSS per container ({len(pids)} processes)")
                for id, _ in running:
                    containerd.remove(id)
        out["memory"] = memory
    finally:
        containerd.stop()
        shutil.rmtree(caches, ignore_errors=True)
    results["containerd"] = out


def host_apps(dir, count):
    """`count` copies of hello-c and hello-rust (alternating) under distinct names, and an
    apps file serving each under /app-N."""
    entries = []
    for i in range(count):
        example = ROOT / ("examples/hello-c" if i % 2 == 0 else "examples/hello-rust")
        app = dir / f"app-{i}"
        app.mkdir()
        for f in example.iterdir():
            if f.suffix in (".toml", ".wasm") and f.name != "Cargo.toml":
                shutil.copy(f, app / f.name)
        entries.append(f'[[app]]\nname = "app-{i}"\nsource = "{app}"\npath_prefix = "/app-{i}"\n[app.quota]\ninstances = 2\n')
    (dir / "apps.toml").write_text("\n".join(entries))
    return dir / "apps.toml"


def latency_samples(port, paths, start, count):
    """Milliseconds of `count` sequential GETs on one kept-alive connection, cycling `paths`
    from index `start`."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    out = []
    for i in range(start, start + count):
        path = paths[i % len(paths)]
        started = time.perf_counter()
        conn.request("GET", path)
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"GET {path}: {r.status}")
        out.append((time.perf_counter() - started) * 1000)
    conn.close()
    return out


def percentiles(samples):
    samples = sorted(samples)
    return {"p50_ms": samples[len(samples) // 2], "p99_ms": samples[int(len(samples) * 0.99)]}


def scenario_host(args, results):
    """Density: N small apps in one `tessera host` against one `tessera up` per app (Spin's
    model: one process per app; 50 sampled and projected), same machine, same run."""
    import random
    count = args.host_apps
    out = {"apps": count}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        cache = tmp / "cache"
        big, one = tmp / "many", tmp / "one"
        big.mkdir(), one.mkdir()
        apps_file = host_apps(big, count)
        one_file = host_apps(one, 2)  # one hello-c, one hello-rust: the same mix
        # Warm the compile cache: every copy has the same bytes, so one compile each.
        def host(apps, port):
            return Server("tessera host", [TESSERA, "host", "--apps", apps, "--listen", f"127.0.0.1:{port}", "--cache-dir", cache,
                                           "--state-dir", tmp / f"state-{port}", "--max-instances", str(2 * count + 16)], port, cwd=tmp)
        with host(one_file, free_port()) as h:
            h.wait_ready("/app-0/")
        with host(one_file, free_port()) as single, host(apps_file, free_port()) as many:
            ready_one = single.wait_ready("/app-0/")
            ready_many = many.wait_ready(f"/app-{count - 1}/")
            paths = [f"/app-{i}/" for i in range(count)]
            random.seed(7)
            random.shuffle(paths)
            for p in paths:
                http_get(many.port, p)
            for i in range(100):
                http_get(single.port, f"/app-{i % 2}/")
            time.sleep(1.5)
            m_many, m_one = smaps_split(many.proc.pid), smaps_split(single.proc.pid)
            per_app_kib = (m_many["beyond_code_kib"] - m_one["beyond_code_kib"]) / (count - 2)
            code_per_app_kib = (m_many["code_kib"] - m_one["code_kib"]) / (count - 2)
            # Alternating rounds, so a slow spell of this noisy machine hits both sides.
            many_ms, one_ms = [], []
            for r in range(8):
                many_ms += latency_samples(many.port, paths, r * 500, 500)
                one_ms += latency_samples(single.port, ["/app-0/", "/app-1/"], 0, 500)
            lat_many, lat_one = percentiles(many_ms), percentiles(one_ms)
            out["one_host"] = {
                "deploy_ms_per_app": round((ready_many - ready_one) * 1000 / (count - 2), 3),
                "startup_s": round(ready_many, 2),
                "rss_kib": m_many["rss_kib"],
                "beyond_code_kib_per_app": round(per_app_kib, 1),
                "code_kib_per_app": round(code_per_app_kib, 1),
                "latency_random_app": lat_many,
                "latency_one_app_host": lat_one,
            }
            log(f"host of {count}: {per_app_kib / 1024:.2f} MiB per idle app beyond code, {code_per_app_kib / 1024:.2f} MiB code; "
                f"deploy {out['one_host']['deploy_ms_per_app']} ms/app; p50 {lat_many['p50_ms']:.3f} vs one-app {lat_one['p50_ms']:.3f} ms")
        # One `tessera up` per app: 50 of them, projected to `count`.
        sample = min(50, count)
        servers = [tessera(big / f"app-{i}", free_port(), cache, state_dir=big / f"app-{i}") for i in range(sample)]
        try:
            for s in servers:
                s.wait_ready()
            time.sleep(1.5)
            pss = sum(pss_kib(s.proc.pid) for s in servers) / sample
            rss = sum(smaps_split(s.proc.pid)["rss_kib"] for s in servers) / sample
        finally:
            for s in servers:
                s.stop()
        out["process_per_app"] = {"sampled": sample, "pss_kib_per_app": round(pss), "rss_kib_per_app": round(rss),
                                  "projected_gib": round(pss * count / 1024 / 1024, 2)}
        log(f"one process per app: {pss / 1024:.1f} MiB PSS each, {pss * count / 1024 / 1024:.2f} GiB for {count}")
    results["host"] = out


class OtlpSink:
    """An OTLP/HTTP collector that takes every export and counts it (the traces' receiver)."""

    def __init__(self):
        import http.server
        import threading
        sink = self
        self.requests, self.bytes = 0, 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                sink.requests += 1
                sink.bytes += len(body)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()


def scenario_metrics(args, results):
    """Hello-world throughput with telemetry off, metrics on (`tessera up --metrics`) and
    traces exported over OTLP (every request sampled), same run."""
    app = ROOT / "examples/hello-rust"
    sink = OtlpSink()
    with tempfile.TemporaryDirectory() as cache:
        off = tessera(app, free_port(), cache)
        port = free_port()
        on = Server("tessera, metrics on", [TESSERA, "up", "-f", app, "--listen", f"127.0.0.1:{port}", "--cache-dir", cache,
                                             "--metrics", f"127.0.0.1:{free_port()}"], port)
        port = free_port()
        env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{sink.port}", OTEL_TRACES_SAMPLER="always_on")
        traced = Server("tessera, traces on", [TESSERA, "up", "-f", app, "--listen", f"127.0.0.1:{port}", "--cache-dir", cache], port, env=env)
        port = free_port()
        env = dict(env, OTEL_TRACES_SAMPLER="traceidratio", OTEL_TRACES_SAMPLER_ARG="0.01")
        sampled = Server("tessera, traces 1%", [TESSERA, "up", "-f", app, "--listen", f"127.0.0.1:{port}", "--cache-dir", cache], port, env=env)
        with off, on, traced, sampled:
            for s in (off, on, traced, sampled):
                s.wait_ready()
            results["metrics"] = alternate([off, on, traced, sampled], "/", args.duration, args.rounds)
    sink.stop()
    results["metrics"]["otlp_exports"] = {"requests": sink.requests, "bytes": sink.bytes}


def redis_publish(port, channel, messages):
    """Publishes every message on `channel`, pipelined; returns the subscribers of the last."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        out = b"".join(b"*3\r\n$7\r\nPUBLISH\r\n$%d\r\n%s\r\n$%d\r\n%s\r\n" % (len(channel), channel.encode(), len(m), m.encode()) for m in messages)
        s.sendall(out)
        data, replies = b"", 0
        while replies < len(messages):
            data += s.recv(1 << 16)
            replies = data.count(b"\r\n")
        return int(data.split(b"\r\n")[-2].lstrip(b":"))


def count_lines(path, prefix):
    try:
        return sum(1 for line in path.read_bytes().splitlines() if line.startswith(prefix))
    except OSError:
        return 0


def scenario_plugins(args, results):
    """Per-call cost of Tessera's embedding API against a hand-written wasmtime host and
    Extism (bench/src/bin/plugin-calls.rs), all in one process."""
    component = PLUGIN_GUESTS / "target/wasm32-wasip2/release/plugin_component.wasm"
    module = PLUGIN_GUESTS / "target/wasm32-unknown-unknown/release/plugin_extism.wasm"
    if not args.no_setup or not component.exists() or not module.exists():
        run(["rustup", "target", "add", "wasm32-wasip2", "wasm32-unknown-unknown"])
        run(["cargo", "build", "--locked", "--release", "-q", "-p", "plugin-component", "--target", "wasm32-wasip2"], cwd=PLUGIN_GUESTS)
        run(["cargo", "build", "--locked", "--release", "-q", "-p", "plugin-extism", "--target", "wasm32-unknown-unknown"], cwd=PLUGIN_GUESTS)
    cmd = ["cargo", "run", "--locked", "--release", "-q", "-p", "tessera-bench", "--features", "extism", "--bin", "plugin-calls", "--",
           component, module]
    out = run(cmd, cwd=ROOT, capture_output=True, text=True, env=dict(os.environ, RUST_LIB_BACKTRACE="0")).stdout
    results["plugins"] = dict(json.loads(out), command=" ".join(str(c) for c in cmd[:12]))


def report_host(h, targets):
    one, per = h["one_host"], h["process_per_app"]
    beyond = one["beyond_code_kib_per_app"] / 1024
    ratio = one["latency_random_app"]["p50_ms"] / one["latency_one_app_host"]["p50_ms"]
    lines = [f"## Many apps in one host: {h['apps']:,} apps", "",
             "Copies of hello-c and hello-rust under distinct names in one `tessera host` (`apps.toml`, each under "
             "`/app-N`), against a host of two (one of each) and against one `tessera up` process per app (Spin's model; "
             f"{per['sampled']} sampled, projected), compile cache warm, same run.", "",
             "| | figure |", "| --- | ---: |",
             f"| resident memory per idle app beyond compiled code | {beyond:.2f} MiB |",
             f"| compiled code mapped per app (page cache) | {one['code_kib_per_app'] / 1024:.2f} MiB |",
             f"| deploy time per app (start to all serving) | {one['deploy_ms_per_app']:.2f} ms |",
             f"| host resident memory, all loaded and idle | {one['rss_kib'] / 1024:.0f} MiB |",
             f"| p50 / p99 to a random app, all loaded | {one['latency_random_app']['p50_ms']:.3f} / {one['latency_random_app']['p99_ms']:.3f} ms |",
             f"| p50 / p99 in a host of two apps | {one['latency_one_app_host']['p50_ms']:.3f} / {one['latency_one_app_host']['p99_ms']:.3f} ms |",
             f"| one process per app: PSS each | {per['pss_kib_per_app'] / 1024:.1f} MiB ({per['projected_gib']} GiB for {h['apps']:,}) |", ""]
    targets.append((f"idle app in a host of {h['apps']:,} < {TARGET_HOST_APP_MIB:.0f} MiB beyond compiled code", f"{beyond:.2f} MiB", beyond < TARGET_HOST_APP_MIB))
    targets.append((f"latency to a random app of {h['apps']:,} within {TARGET_HOST_LATENCY_RATIO - 1:.0%} of a one-app host (p50)", f"{ratio:.2f}x", ratio <= TARGET_HOST_LATENCY_RATIO))
    return lines


def report_plugins(p, targets):
    lines = ["## Plugins: one call per event on a fresh instance (in process)", "",
             f"`{p['command']}`: the same logic (bench/guests/plugin: reverse {p['input_bytes']} bytes and flip their "
             "case) as a component and as an Extism module (extism 1.30, extism-pdk 1.4), called one after "
             "another, peers alternating in rounds. \"Fresh instance\" peers instantiate for every call; "
             "Extism's usual mode keeps one instance across calls.", "",
             "| host | p50 µs | p99 µs | calls |", "| --- | ---: | ---: | ---: |"]
    for name, r in p["per_call"].items():
        lines.append(f"| {name} | {r['p50_us']:.2f} | {r['p99_us']:.2f} | {r['calls']} |")
    t = p["per_call"]["tessera (instructions metered)"]["p50_us"]
    e = p["per_call"]["extism, fresh instance"]["p50_us"]
    k = p["per_call"]["extism, instance kept"]["p50_us"]
    w = p["per_call"]["wasmtime, hand-written host"]["p50_us"]
    lines += ["", f"Tessera (metered) is {e / t:.1f}x faster than Extism with a fresh instance, {k / t:.1f}x its kept "
              f"instance, and takes {t / w:.2f}x the time of the hand-written wasmtime host.", ""]
    targets.append((f"plugin call p50 < {TARGET_PLUGIN_CALL_P50_US:.0f} µs (fresh instance, 1 KB in and out)", f"{t:.2f} µs", t < TARGET_PLUGIN_CALL_P50_US))
    targets.append((f"plugin call ≥ {TARGET_PLUGIN_VS_EXTISM:.0f}x faster than Extism (fresh instance)", f"{e / t:.1f}x", e / t >= TARGET_PLUGIN_VS_EXTISM))
    m = p["metering"]
    base = m["wasmtime, neither"]["ms"]
    lines += [f"Metering: one call sorting {p['work_n']:,} pseudo-random numbers (CPU-bound), median of alternating calls.", "",
              "| host | ms | ÷ wasmtime with neither |", "| --- | ---: | ---: |"]
    for name, r in m.items():
        lines.append(f"| {name} | {r['ms']:.2f} | {r['ms'] / base:.2f}x |")
    fuel = m["tessera, instructions metered"]["ms"] / m["tessera, epochs only"]["ms"]
    epochs = m["wasmtime, epochs only"]["ms"] / base
    lines += ["", f"Within one host: counting instructions costs {fuel:.2f}x the time of epochs alone (Tessera); "
              f"epochs cost {epochs:.2f}x the time of neither (wasmtime)."]
    tn = p["tenants"]
    lines += ["", f"{tn['tenants']:,} tenants, each with a plugin of its own bytes ({tn['component_bytes']:,}-byte component, "
              f"compiled apart): loaded in {tn['load_s']:.1f} s, {tn['memory_per_plugin_kib']:.0f} KiB of resident memory per "
              f"loaded plugin, {tn['calls_per_s_round_robin']:,.0f} calls/s calling them in turn on one thread.", ""]
    return lines


def scenario_redis(args, results):
    """Messages handled per second through the Redis trigger (a Spin SDK component writing
    each message to its log) vs a native tokio subscriber writing each to a file; the same
    redis-server, the same pipelined publisher, alternating."""
    n = 20_000
    port = free_port()
    work = Path(tempfile.mkdtemp())
    redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not socket_listening(port):
            time.sleep(0.01)
        app = work / "app"
        app.mkdir()
        (app / "spin.toml").write_text(f"""spin_manifest_version = 2
[application]
name = "redis-bench"
[[trigger.redis]]
address = "redis://127.0.0.1:{port}"
channel = "bench"
component = "sub"
[component.sub]
source = "{REDIS_GUEST}"
""")
        subscribers = {
            "tessera (redis trigger)": (lambda: [TESSERA, "up", "-f", app, "--cache-dir", work / "cache"], app / ".spin/logs/sub_stdout.txt"),
            "native tokio subscriber": (lambda: [NATIVE_SUBSCRIBER, "--address", f"redis://127.0.0.1:{port}", "--channel", "bench",
                                                 "--out", work / "native.txt"], work / "native.txt"),
        }
        raw = {name: [] for name in subscribers}
        for r in range(args.rounds + 1):
            # One subscriber at a time, alternating; round 0 warms the compile cache.
            for name, (cmd, out) in subscribers.items():
                proc = subprocess.Popen([str(c) for c in cmd()], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                try:
                    deadline = time.monotonic() + 120
                    while redis_publish(port, "bench", ["warm"]) < 1:
                        assert time.monotonic() < deadline and proc.poll() is None, f"{name} did not subscribe"
                        time.sleep(0.05)
                    base = count_lines(out, b"message: m")
                    started = time.monotonic()
                    redis_publish(port, "bench", [f"m{r}-{i}" for i in range(n)])
                    while count_lines(out, b"message: m") - base < n:
                        assert time.monotonic() - started < 300, f"{name} handled too few messages"
                        time.sleep(0.005)
                    rate = n / (time.monotonic() - started)
                    if r > 0:
                        raw[name].append(rate)
                        log(f"round {r}: {name}: {rate:.0f} messages/s")
                finally:
                    proc.terminate()
                    proc.wait()
        results["redis"] = {name: {"per_s": statistics.median(v), "raw": [round(x) for x in v]} for name, v in raw.items()}
    finally:
        redis.terminate()
        redis.wait()
        shutil.rmtree(work, ignore_errors=True)


def report_compose(c, targets):
    lines = ["## Composition: a call across components", "",
             "`tests/guests/calc-user-guest` calls `echo: func(s: string) -> string` of its dependency "
             "(`tests/guests/calc-guest`, composed at load) in a loop and times it with the monotonic clock "
             "(`/echo-loop?n=N&size=S`); the same exchange as HTTP (`/hop-loop`: a POST of S bytes answered "
             "with them) goes to `http_guest` by service chaining (`http://echo.spin.internal`, in process) "
             "and over a loopback socket to the same Tessera. ns per call, median of runs [runs].", "",
             "| size | composed import | service chaining | loopback HTTP | loopback ÷ import |",
             "| ---: | ---: | ---: | ---: | ---: |"]
    for size, row in c["calls"].items():
        imp, hop, loop = (row[k]["ns"] for k in ("composed import", "service chaining (in process)", "loopback HTTP"))
        raw = lambda k: row[k]["raw_ns"]
        lines.append(f"| {int(size):,} B | {imp:,} {raw('composed import')} | {hop:,} {raw('service chaining (in process)')} | {loop:,} {raw('loopback HTTP')} | {loop / imp:,.0f}x |")
        if int(size) == 20:
            targets.append(("one composed call at 20 B < 200 ns", f"{imp} ns", imp < 200))
            targets.append(("composed call ≥ 100x cheaper than a loopback HTTP hop (20 B)", f"{loop / imp:,.0f}x", loop / imp >= 100))
    lines.append("")
    def versus_wasmtime(title, r):
        rows = [title, "", "| host | req/s | p50 ms | p99 ms |", "| --- | ---: | ---: | ---: |"]
        rows += [f"| {name} | {x['rps']:.0f} {x['raw_rps']} | {x['p50_ms']:.3f} | {x['p99_ms']:.3f} |" for name, x in r.items()]
        return rows + ["", f"Tessera ÷ `wasmtime serve`: {r['tessera']['rps'] / r['wasmtime serve']['rps']:.2f}x.", ""]

    lines += versus_wasmtime("Requests/s of the composed app (`GET /add?a=1&b=2`, one call across) against `wasmtime serve` "
                             "on `tessera compose`'s output:", c["rps"])
    if "polyglot_rps" in c:
        lines += versus_wasmtime("The polyglot example `examples/calculator` (a JavaScript front end calling the Rust calculator, "
                                 "`GET /add?a=1&b=2`), the same way:", c["polyglot_rps"])
    load = c["load"]
    lines += ["Load of the composed component (" + str(load["cold"].get("size", "?")) + "), as `tessera up` logs it: "
              f"cache cold {load['cold']['ms']} ms ({load['cold']['how']}), warm {load['warm']['ms']} ms ({load['warm']['how']}).", ""]
    return lines


def verdict(ok):
    return "met" if ok else "**missed**"


def report(results, meta, argv):
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `{argv}` on {meta['date']} at commit {meta['commit']}.",
        "",
        f"Machine: {meta['cpu']}, {meta['cores']} cores, {meta['memory_gib']} GiB, Linux {meta['kernel']}; "
        f"{meta['wrk']}; {meta['wasmtime']}. Tessera and the native server are release builds. "
        "Figures are medians over alternating rounds (raw rounds in brackets); load from wrk on loopback.",
        "",
    ]
    targets = []
    if "hello" in results:
        lines += ["## Hello world: throughput and latency", "",
                  f"`{next(iter(results['hello'].values()))['tessera']['command']}`, same host, peers alternating.", "",
                  "| guest | host | req/s | p50 ms | p99 ms | Tessera ÷ host |",
                  "| --- | --- | ---: | ---: | ---: | ---: |"]
        for guest, hosts in results["hello"].items():
            t = hosts["tessera"]["rps"]
            for name, r in hosts.items():
                ratio = "" if name == "tessera" else f"{t / r['rps']:.2f}x"
                lines.append(f"| {guest} | {name} | {r['rps']:.0f} {r['raw_rps']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {ratio} |")
            vs_w = t / hosts["wasmtime serve"]["rps"]
            vs_n = t / hosts["native hyper"]["rps"]
            targets.append((f"{guest} hello throughput ≥ {TARGET_VS_WASMTIME:.0f}x wasmtime serve", f"{vs_w:.2f}x", vs_w >= TARGET_VS_WASMTIME))
            targets.append((f"{guest} hello throughput ≥ {TARGET_VS_NATIVE:.0%} of native hyper", f"{vs_n:.0%}", vs_n >= TARGET_VS_NATIVE))
        lines.append("")
    if "compose" in results:
        lines += report_compose(results["compose"], targets)
    if "instantiate" in results:
        lines += ["## Instantiation per request (in process, criterion)", "",
                  f"`{results['instantiate']['command']}`: a pre-instantiated component to a ready instance "
                  "(a fresh store with the request's capabilities and an instantiated component), and the "
                  "whole cycle including tearing it down.", "",
                  "| guest | measure | p50 µs | p99 µs | samples |", "| --- | --- | ---: | ---: | ---: |"]
        for row in results["instantiate"]["rows"]:
            lines.append(f"| {row['guest']} | {row['measure']} | {row['p50_us']:.2f} | {row['p99_us']:.2f} | {row['samples']} |")
            if row["measure"] == "instantiate":
                targets.append((f"{row['guest']} instantiation p50 < {TARGET_INSTANTIATE_P50_US:.0f} µs", f"{row['p50_us']:.2f} µs", row["p50_us"] < TARGET_INSTANTIATE_P50_US))
        lines.append("")
    if "startup" in results:
        lines += ["## Cold start: process start to first 200 (hello-rust)", "",
                  "| host | ms |", "| --- | ---: |"]
        for name, r in results["startup"].items():
            lines.append(f"| {name} | {r['ms']:.1f} {r['raw_ms']} |")
        lines.append("")
    if "python" in results:
        p = results["python"]
        lines += [f"## Large component: hello-python ({p['size_mb']} MB), compile cache warm", "",
                  "| host | process start to first 200, ms | first request once listening, ms |", "| --- | ---: | ---: |"]
        for name in ("tessera", "wasmtime serve"):
            a = p["start_to_first_200"][f"{name}, cache warm"]
            b = p["first_request"][name]
            lines.append(f"| {name} | {a['ms']:.1f} {a['raw_ms']} | {b['ms']:.1f} {b['raw_ms']} |")
        lines.append("")
    if "idle" in results:
        lines += ["## Resident memory of an idle app (after 100 requests, compile caches warm)", "",
                  "From /proc/PID/smaps. \"Code\" is every read-only mapping of a file: the executable, "
                  "shared libraries and (Tessera) the compiled component mapped from its cache; the rest "
                  "(heap, thread stacks, wasm memories, writable data) is what the app costs beyond its code.", "",
                  "| app | host | RSS KiB | code KiB | beyond code KiB |", "| --- | --- | ---: | ---: | ---: |"]
        for app, hosts in results["idle"].items():
            for name, r in hosts.items():
                lines.append(f"| {app} | {name} | {r['rss_kib']} | {r['code_kib']} | {r['beyond_code_kib']} |")
            beyond = hosts["tessera"]["beyond_code_kib"] / 1024
            targets.append((f"{app} idle beyond compiled code < {TARGET_IDLE_MIB:.0f} MiB", f"{beyond:.2f} MiB", beyond < TARGET_IDLE_MIB))
        lines.append("")
    if "concurrent" in results:
        c = results["concurrent"]
        grown_kib = c["peak_rss_kib"] - c["idle_rss_kib"]
        per_request_kib = grown_kib / max(1, c["max_in_flight"])
        projected_gib = (c["idle_rss_kib"] + per_request_kib * c["connections"]) / 1024 / 1024
        lines += ["## Many requests waiting at once", "",
                  f"`{c['command']}` against bench/guests/sleep (each request waits 1 s in the guest, "
                  "one connection each, all sent at once).", "",
                  "| requests | most in flight at once | answered 200 | failed | all done in ms | p50 ms | p99 ms | idle RSS MiB | peak RSS MiB | per in-flight request KiB |",
                  "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
                  f"| {c['connections']} | {c['max_in_flight']} | {c['ok']} | {c['failed']} | {c['elapsed_ms']} | {c['p50_ms']} | {c['p99_ms']} | "
                  f"{c['idle_rss_kib'] / 1024:.1f} | {c['peak_rss_kib'] / 1024:.1f} | {per_request_kib:.1f} |", "",
                  f"Connection set-up spreads the requests out, so at most {c['max_in_flight']} were in the guest at once; "
                  f"per in-flight request = (peak - idle) / that number, and all {c['connections']} at once would take "
                  f"about {projected_gib:.2f} GiB.", ""]
        targets.append((f"{c['connections']} concurrent waiting requests < {TARGET_CONCURRENT_GIB:.0f} GiB",
                        f"{c['peak_rss_kib'] / 1024 / 1024:.2f} GiB at {c['max_in_flight']} in flight, {projected_gib:.2f} GiB projected to {c['connections']}; {c['ok']} answered",
                        projected_gib < TARGET_CONCURRENT_GIB and c["failed"] == 0))
    if "kv" in results:
        k = results["kv"]
        lines += ["## Key-value read + write per request (embedded SQLite store)", "",
                  f"`{k['tessera kv']['command']}`; each request opens the default store, reads one key and writes "
                  "another (SQLite WAL, synchronous=FULL: every write is on disk before the answer).", "",
                  "| guest | req/s | p50 ms | p99 ms |", "| --- | ---: | ---: | ---: |"]
        for name, r in k.items():
            lines.append(f"| {name} | {r['rps']:.0f} {r['raw_rps']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} |")
        lines.append("")
    if "cpu" in results:
        c = results["cpu"]
        lines += ["## CPU-bound: SHA-256 of 1 MiB per request, the same C code", "",
                  f"`{c['tessera']['command']}` (one request at a time); all hosts answer {c['digest'][:16]}…. "
                  "The guest is bench/guests/sha256-c/sha256.c built by zig's clang -O2 for wasm32-wasi; "
                  "\"native hyper\" runs the same file built by gcc -O2 for generic x86-64 (the same "
                  "optimisation level and a portable target, as the wasm build), the last row by gcc -O3 "
                  "-march=native (every instruction this CPU has). The target is checked against the first.", "",
                  "| host | req/s | p50 ms | p99 ms | time per request ÷ native -O2 |", "| --- | ---: | ---: | ---: | ---: |"]
        nat = c["native hyper"]["rps"]
        for name in ("tessera", "wasmtime serve", "native hyper", "native hyper, -O3 -march=native"):
            r = c[name]
            lines.append(f"| {name} | {r['rps']:.1f} {r['raw_rps']} | {r['p50_ms']:.3f} | {r['p99_ms']:.3f} | {nat / r['rps']:.2f}x |")
        ratio = nat / c["tessera"]["rps"]
        targets.append((f"CPU-bound guest within {TARGET_CPU_RATIO}x native (gcc -O2)", f"{ratio:.2f}x", ratio <= TARGET_CPU_RATIO))
        ratio_tuned = c["native hyper, -O3 -march=native"]["rps"] / c["tessera"]["rps"]
        targets.append((f"CPU-bound guest within {TARGET_CPU_RATIO}x native (gcc -O3 -march=native)", f"{ratio_tuned:.2f}x", ratio_tuned <= TARGET_CPU_RATIO))
        lines.append("")
    if "plugins" in results:
        lines += report_plugins(results["plugins"], targets)
    if "host" in results:
        lines += report_host(results["host"], targets)
    if "metrics" in results:
        m = results["metrics"]
        off, on = m["tessera"]["rps"], m["tessera, metrics on"]["rps"]
        cost = 1 - on / off
        lines += ["## Metrics: their cost on hello-world throughput", "",
                  "hello-rust under `tessera up`, without and with `--metrics`, wrk rounds alternating.", "",
                  "| | req/s | rounds |", "| --- | ---: | --- |",
                  f"| metrics off | {off:,.0f} | {m['tessera']['raw_rps']} |",
                  f"| metrics on | {on:,.0f} | {m['tessera, metrics on']['raw_rps']} |", ""]
        targets.append((f"metrics cost < {TARGET_METRICS_COST:.0%} of hello throughput", f"{cost:.1%}", cost < TARGET_METRICS_COST))
        if "tessera, traces on" in m:
            traced = m["tessera, traces on"]["rps"]
            exports = m.get("otlp_exports", {})
            sampled = m["tessera, traces 1%"]["rps"]
            lines[-1:-1] = [f"| traces on, every request sampled, OTLP to a local collector | {traced:,.0f} | {m['tessera, traces on']['raw_rps']} |",
                            f"| traces on, 1% sampled (`traceidratio`) | {sampled:,.0f} | {m['tessera, traces 1%']['raw_rps']} |"]
            lines += [f"Traces cost {1 - traced / off:.1%} of hello-world throughput with every request sampled, "
                      f"{1 - sampled / off:.1%} with 1% sampled; the collector took "
                      f"{exports.get('requests', 0)} exports ({exports.get('bytes', 0) / 1e6:.1f} MB). The batch exporter "
                      "drops spans when its queue (2,048) is full rather than slow requests down.", ""]
    if "containerd" in results:
        c = results["containerd"]
        lines += ["## Kubernetes: containers under containerd", "",
                  "containerd (Debian's) started by the benchmark runs `examples/hello-rust` as an image whose root holds "
                  "`spin.toml` and the component (runtime `io.containerd.tessera.v1`, the node's compile cache "
                  "bind-mounted, empty for a cold start) and an image of `native-hello` linked statically "
                  "(containerd's default runc shim), with `ctr run --net-host`. Start = `ctr run` to the first 200; "
                  "median of alternating rounds [rounds].", "",
                  "| container | start ms |", "| --- | ---: |"]
        for name, r in c["start_ms"].items():
            lines.append(f"| {name} | {r['ms']:.1f} {r['raw_ms']} |")
        runc = c["start_ms"]["runc + native hyper (static)"]["ms"]
        warm = c["start_ms"]["tessera shim, compile cache warm"]["ms"]
        lines += ["", f"Tessera (cache warm) ÷ runc: {warm / runc:.2f}x.", "",
                  "Memory per running container: proportional set size (PSS, so a shared binary counts once "
                  "across containers) of its shim process and its task process, idle 8 s after one request.", "",
                  "| containers | tessera shim (cache warm) MiB | runc + native hyper MiB |", "| ---: | ---: | ---: |"]
        for count, row in c["memory"].items():
            t, n = row["tessera shim (cache warm)"], row["runc + native hyper (static)"]
            lines.append(f"| {count} | {t['per_container_kib'] / 1024:.1f} | {n['per_container_kib'] / 1024:.1f} |")
        lines.append("")
        targets.append((f"pod start within {TARGET_POD_START_VS_RUNC:.0f}x of runc + native (cache warm)", f"{warm / runc:.2f}x",
                        warm / runc <= TARGET_POD_START_VS_RUNC))
        per_app = max(row["tessera shim (cache warm)"]["per_container_kib"] for row in c["memory"].values()) / 1024
        targets.append((f"idle app container < {TARGET_CONTAINER_MIB:.0f} MiB (shim + instance)", f"{per_app:.1f} MiB (worst of 1/10/50)",
                        per_app < TARGET_CONTAINER_MIB))
    if targets:
        head = ["## Targets", "", "| target | measured | |", "| --- | ---: | --- |"]
        head += [f"| {name} | {value} | {verdict(ok)} |" for name, value, ok in targets]
        head += ["", "Where the time goes, the levers tried and why a target is missed: see the analysis at the end."]
        lines[6:6] = head + [""]
    if "run" in results:
        r = results["run"]
        t, w = r["tessera run"]["ms"], r["wasmtime run"]["ms"]
        lines += ["## `tessera run`: process start to exit of a hello command (compile caches warm)", "",
                  "| runner | ms | command |", "| --- | ---: | --- |"]
        for name, x in r.items():
            lines.append(f"| {name} | {x['ms']:.1f} {x['raw_ms']} | `{x['command']}` |")
        lines += ["", f"Tessera ÷ wasmtime: {t / w:.2f}x the time.", ""]
    if "redis" in results:
        r = results["redis"]
        lines += ["## Redis trigger: messages handled per second (20,000 pipelined, alternating rounds)", "",
                  "| subscriber | messages/s |", "| --- | ---: |"]
        for name, x in r.items():
            lines.append(f"| {name} | {x['per_s']:.0f} {x['raw']} |")
        if len(r) == 2:
            t, n = r["tessera (redis trigger)"]["per_s"], r["native tokio subscriber"]["per_s"]
            lines += ["", f"Tessera: {t / n:.0%} of the native subscriber (a fresh instance per message)."]
        lines.append("")
    # The hand-written part: profiles, levers tried, what a missed target would take.
    lines += [(ROOT / "bench/analysis.md").read_text()]
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(SCENARIOS), help="comma-separated scenarios")
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per peer")
    parser.add_argument("--connections", type=int, default=10_000, help="requests held open at once")
    parser.add_argument("--no-setup", action="store_true", help="skip installing peers and building")
    parser.add_argument("--host-apps", type=int, default=1000, help="apps in the density scenario")
    parser.add_argument("--out", default=str(ROOT / "bench/RESULTS.md"))
    parser.add_argument("--report-only", action="store_true",
                        help="only write the report again from the last run's target/bench/results.json")
    args = parser.parse_args()
    only = [s for s in args.only.split(",") if s]
    unknown = set(only) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; pick from {', '.join(SCENARIOS)}")
    saved = ROOT / "target/bench/results.json"
    if args.report_only:
        run_info = json.loads(saved.read_text())
        results, meta, argv = run_info["results"], run_info["machine"], run_info["command"]
    else:
        if not args.no_setup:
            install_peers()
            build()
        results = {}
        for name in only:
            log(f"== {name}")
            globals()[f"scenario_{name}"](args, results)
        meta = machine()
        argv = "python3 bench/run.py" + ("" if sys.argv[1:] == [] else " " + " ".join(sys.argv[1:]))
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(json.dumps({"results": results, "machine": meta, "command": argv}, indent=1))
    text = report(results, meta, argv)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
