//! `containerd-shim-tessera-v1`: runs a Spin app in a container as `tessera up` would, for
//! containerd (`ctr run --runtime io.containerd.tessera.v1`) and Kubernetes (a RuntimeClass
//! whose handler is `tessera`). runwasi's `containerd-shim-wasm` does the shim protocol and
//! the container (namespaces, cgroups, the root file system); this file turns what the
//! container gives into an app and hands it to the host library:
//!
//! - a Spin OCI artifact (the locked app layer, one layer per component and per file) is
//!   written out as an app directory, the way `tessera registry pull` does it;
//! - an image of one `application/wasm` component is served on `/...`;
//! - otherwise the root file system's `/spin.toml` is the app (`FROM scratch`, `COPY . /`).
//!
//! SpinKube's contract: the listen address is `SPIN_HTTP_LISTEN_ADDR` (default
//! `0.0.0.0:80`), the runtime config `/runtime-config.toml` when present, `SPIN_VARIABLE_*`
//! from the container's environment. SIGTERM drains in-flight work; the exit status says why
//! the app stopped ([`Stop`]), and a failure to start is written to the task's stderr.

use anyhow::{Context as _, Result};
use containerd_shim_wasm::sandbox::Sandbox;
use containerd_shim_wasm::sandbox::context::{RuntimeContext, Source, WasmLayer};
use containerd_shim_wasm::shim::{Cli, Shim, Version, version};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tessera_engine::EngineSettings;
use tessera_app::{LoadOptions, LoadedApp};
use tessera_engine::Engine;
use tessera_host::AppHost;
use tessera_manifest::Manifest;
use tessera_registry::{CNCF_WASM_LAYER, DATA_LAYER, LOCKED_APP, WASM_LAYER};

/// Where SpinKube puts the runtime config.
const RUNTIME_CONFIG: &str = "/runtime-config.toml";
/// SpinKube's default listen address.
const DEFAULT_LISTEN: &str = "0.0.0.0:80";

mod cleanup;
mod precompile;
mod startup_pages;

struct TesseraShim;

#[derive(Default)]
struct TesseraSandbox;

impl Shim for TesseraShim {
    type Sandbox = TesseraSandbox;

    fn name() -> &'static str {
        "tessera"
    }

    fn version() -> Version {
        version!()
    }

    async fn compiler() -> Option<impl containerd_shim_wasm::shim::Compiler> {
        // The shim library asks once, in the shim daemon, as it creates its first container:
        // the daemon's own start-up pages are dropped once that container is running.
        startup_pages::release_after(DAEMON_SETTLED);
        Some(precompile::Precompiler)
    }

    fn supported_layers_types() -> &'static [&'static str] {
        &[WASM_LAYER, DATA_LAYER, LOCKED_APP, CNCF_WASM_LAYER, "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm"]
    }
}

impl Sandbox for TesseraSandbox {
    /// Any image: one without wasm layers is an app in its root file system.
    async fn can_handle(&self, _ctx: &impl RuntimeContext) -> Result<()> {
        Ok(())
    }

    async fn run_wasi(&self, ctx: &impl RuntimeContext) -> Result<i32> {
        // The container's environment is not the process's: apply it (listen address,
        // SPIN_VARIABLE_*, RUST_LOG) before anything reads it.
        for entry in ctx.envs() {
            if let Some((key, value)) = entry.split_once('=') {
                // SAFETY: the app's threads start later, in `serve`.
                unsafe { std::env::set_var(key, value) };
            }
        }
        let traces = init_tracing();
        let code = match start(ctx) {
            Ok(code) => code,
            Err(Failure { stop, error }) => {
                // The task's stderr is what `kubectl logs` and `ctr run` show.
                eprintln!("Error: {error:#}");
                stop as i32
            }
        };
        // The spans of the last requests are still batched: send them before the task ends.
        if let Some(traces) = traces {
            traces.shutdown();
        }
        Ok(code)
    }
}

/// Why the app stopped, as the task's exit status. A command app's own exit code is passed
/// through; a second SIGTERM or SIGINT during the drain gives 143 or 130.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(i32)]
enum Stop {
    /// The app could not be loaded: its image, manifest, runtime config, a component, or a
    /// `[trust]` refusal (the task's log says which, and how to fix it).
    LoadFailed = 1,
    /// The listen address (`SPIN_HTTP_LISTEN_ADDR`) cannot be bound: taken by another
    /// container of the pod, or not an address of the node.
    CannotListen = 2,
}

/// A failure to start, with the exit status it gives.
struct Failure {
    stop: Stop,
    error: anyhow::Error,
}

trait StopsWith<T> {
    fn stops_with(self, stop: Stop) -> Result<T, Failure>;
}

impl<T, E: Into<anyhow::Error>> StopsWith<T> for Result<T, E> {
    fn stops_with(self, stop: Stop) -> Result<T, Failure> {
        self.map_err(|e| Failure { stop, error: e.into() })
    }
}

/// Makes the app out of what the container gives and serves it on its own thread (the
/// host runs its own runtimes; the shim library's future only waits for it).
fn start(ctx: &impl RuntimeContext) -> Result<i32, Failure> {
    let mut cache_dir = tessera_engine::CompileCache::default_dir();
    let app = match ctx.entrypoint().source {
        Source::Oci(layers) => {
            let mut layers = layers.to_vec();
            // A container of an artifact has no home of its own: the compiled code the
            // precompile hook stored goes into a compile cache of this container.
            let dir = cache_dir.get_or_insert_with(|| scratch_dir().join("tessera-cache")).clone();
            for layer in &mut layers {
                if precompile::unpack(layer, &dir).stops_with(Stop::LoadFailed)? {
                    tracing::info!("layer {}: compiled code from containerd's content store", layer.config.digest());
                }
            }
            AppSource::from_layers(&layers).stops_with(Stop::LoadFailed)?
        }
        Source::File(_) => AppSource::RootFs(tessera_manifest::find_manifest(Path::new("/")).stops_with(Stop::LoadFailed)?),
    };
    let (done, result) = std::sync::mpsc::channel();
    std::thread::Builder::new()
        .name("tessera-app".into())
        .spawn(move || drop(done.send(serve(app, cache_dir))))
        .stops_with(Stop::LoadFailed)?;
    result.recv().context("the app's thread ended without an exit code").stops_with(Stop::LoadFailed)?
}

/// A writable directory for what the shim writes: `$TMPDIR`, else `/tmp`, made when the
/// image has none (an artifact's container starts from an empty root file system).
fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir();
    let _ = std::fs::create_dir_all(&dir);
    dir
}

/// The engine the precompile hook compiles for: an app with the default runtime config.
fn default_engine_settings() -> EngineSettings {
    tessera_host::engine_settings_for(&tessera_manifest::RuntimeConfig::default(), None)
}

/// Where the app comes from, made ready to load.
enum AppSource {
    /// `spin.toml` in the root file system.
    RootFs(PathBuf),
    /// An app written out of image layers into a directory, removed when the app ends.
    Written(PathBuf, #[allow(dead_code)] tempfile::TempDir),
}

impl AppSource {
    /// The app of a Spin OCI artifact, or of a single-component image.
    fn from_layers(layers: &[WasmLayer]) -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("tessera-app-").tempdir_in(scratch_dir()).context("cannot make a directory for the app")?;
        let by_type = |media_type: &str| layers.iter().find(|l| l.config.media_type().to_string() == media_type);
        if let Some(locked) = by_type(LOCKED_APP) {
            let locked = tessera_registry::locked::LockedApp::from_json(&locked.layer)?;
            let manifest = locked.materialize(dir.path(), |digest| {
                layers
                    .iter()
                    .find(|l| l.config.digest().to_string() == digest)
                    .map(|l| l.layer.clone())
                    .with_context(|| format!("the image has no layer {digest} that its locked app names"))
            })?;
            return Ok(Self::Written(manifest, dir));
        }
        let component = layers
            .iter()
            .find(|l| l.layer.starts_with(b"\0asm"))
            .context("the image holds no Spin app: neither a locked app layer nor a component")?;
        let path = dir.path().join("app.wasm");
        std::fs::write(&path, &component.layer)?;
        Ok(Self::Written(path, dir))
    }

    fn manifest(&self) -> Result<Manifest> {
        Ok(match self {
            Self::RootFs(path) => Manifest::from_file(path)?,
            Self::Written(path, _) if path.extension().is_some_and(|e| e == "wasm") => Manifest::for_component(path),
            Self::Written(path, _) => Manifest::from_file(path)?,
        })
    }
}

/// Loads and serves the app until SIGTERM; its exit code.
fn serve(app: AppSource, cache_dir: Option<PathBuf>) -> Result<i32, Failure> {
    let runtime_config = Path::new(RUNTIME_CONFIG);
    let options = LoadOptions {
        runtime_config_file: runtime_config.is_file().then(|| runtime_config.to_path_buf()),
        // The app's directory may be a read-only layer or a temporary one: state goes to
        // .spin in the container's working directory, as for a pulled app.
        state_dir: Some(PathBuf::from(".spin")),
        ..Default::default()
    };
    let load = || -> Result<(AppHost, tokio::runtime::Runtime, usize, std::time::Duration)> {
        let app = LoadedApp::from_manifest(app.manifest()?, &options)?;
        app.create_dirs()?;
        let shutdown_timeout = app.runtime_config.shutdown_timeout;
        let engine = Engine::new(&tessera_host::engine_settings(&app, cache_dir))?;
        let host = AppHost::load(&engine, Arc::new(app))?;
        host.log_loads();
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        let runtime = host.runtime(threads)?;
        Ok((host, runtime, threads, shutdown_timeout))
    };
    let (host, runtime, threads, shutdown_timeout) = load().stops_with(Stop::LoadFailed)?;
    if host.is_command() {
        return runtime.block_on(host.run_command(&[])).stops_with(Stop::LoadFailed);
    }
    let listener = match host.http() {
        Some(_) => {
            let address = std::env::var("SPIN_HTTP_LISTEN_ADDR").unwrap_or_else(|_| DEFAULT_LISTEN.to_string());
            let listener = std::net::TcpListener::bind(&address)
                .with_context(|| format!("cannot listen on {address} (SPIN_HTTP_LISTEN_ADDR): give each app container of the pod its own port"))
                .stops_with(Stop::CannotListen)?;
            Some(listener)
        }
        None => None,
    };
    let addr = listener.as_ref().and_then(|l| l.local_addr().ok());
    let executor = host.executor().clone();
    let code = host
        .serve_until_signal(&runtime, listener, threads, shutdown_timeout, |_| {
            if let Some(addr) = addr {
                println!("Serving http://{addr}");
            }
            startup_pages::release();
            startup_pages::release_when_idle(move || executor.invocations_started(), TASK_IDLE);
        })
        .stops_with(Stop::LoadFailed)?;
    Ok(i32::from(code))
}

/// How long an app serves nothing before the task drops the pages serving touched.
const TASK_IDLE: std::time::Duration = std::time::Duration::from_secs(5);

/// How long after its first container is created the shim daemon has finished starting it
/// (pulling layers, precompiling, creating the task), so its start-up pages can go.
const DAEMON_SETTLED: std::time::Duration = std::time::Duration::from_secs(5);

/// Tessera's log lines on the container's stderr, and its spans over OTLP when the
/// container's environment names a collector (the `OTEL_*` variables `tessera up` reads).
/// Only the subscriber is set: the shim library owns the `log` logger of the process.
fn init_tracing() -> Option<tessera_host::telemetry::Traces> {
    use tracing_subscriber::prelude::*;
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,tessera=info,containerd_shim_tessera_v1=info,async_nats=off"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(false).with_target(false).compact().with_filter(filter);
    let traces = tessera_host::telemetry::Traces::from_env().unwrap_or_else(|e| {
        eprintln!("warning: {e:#}; traces are not exported");
        None
    });
    let subscriber = tracing_subscriber::registry().with(fmt).with(traces.as_ref().map(|t| t.layer()));
    let _ = tracing::subscriber::set_global_default(subscriber);
    traces
}

fn main() {
    cleanup::after_a_dead_shim();
    TesseraShim::run(None);
}
