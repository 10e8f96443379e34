//! Tessera's host library: the lifecycle of one app, whatever its triggers, for the CLI
//! (and next for the containerd shim, many apps in one process and the embedding API).
//!
//! [`AppHost::load`] prepares every component every trigger uses (all load errors happen
//! here, before anything is served); [`AppHost::serve`] starts the HTTP, Redis, MQTT and cron
//! triggers on one executor (one set of backends, one pool of instance slots);
//! [`Serving::drain`] stops taking work and waits for what is in flight;
//! [`AppHost::serve_until_signal`] does all of it until SIGTERM or SIGINT;
//! [`AppHost::run_command`] runs a `[[trigger.command]]` app once.
#![deny(missing_docs)]

pub mod admin;
pub mod archive;
pub mod apps_file;
mod many_apps;
mod reloading;
pub mod telemetry;

pub use many_apps::{AppStatus, HostSettings, ManyApps, Reconciled};
pub use reloading::ReloadingApp;

use anyhow::{Context as _, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tessera_app::LoadedApp;
use tessera_manifest::RuntimeConfig;
use std::path::PathBuf;
use tessera_engine::{Engine, EngineSettings};
use tessera_executor::{Executor, ExecutorOptions, LoadReport};
use tessera_trigger_http::HttpTrigger;
use tessera_triggers::cron::CronTrigger;
use tessera_triggers::messaging::MessagingTrigger;
use tessera_triggers::mqtt::MqttTrigger;
use tessera_triggers::redis::RedisTrigger;
use tokio::sync::watch;

/// The engine an app needs: pool slots for its `max_concurrent_requests` plus room for
/// instances still finishing (a 504's grace period) after their slot was handed on, and
/// memory for its largest `max_instance_memory`.
pub fn engine_settings(app: &LoadedApp, cache_dir: Option<PathBuf>) -> EngineSettings {
    let largest_memory = app.components.values().map(|c| c.limits.max_instance_memory).max();
    settings_for(&app.runtime_config, largest_memory, cache_dir)
}

/// The engine of an app whose runtime config is `runtime_config` and whose components
/// use the config's own limits: what code is compiled for before the app is known (the
/// containerd shim's precompile hook).
pub fn engine_settings_for(runtime_config: &RuntimeConfig, cache_dir: Option<PathBuf>) -> EngineSettings {
    settings_for(runtime_config, None, cache_dir)
}

fn settings_for(rc: &RuntimeConfig, largest_memory: Option<u64>, cache_dir: Option<PathBuf>) -> EngineSettings {
    EngineSettings {
        max_instances: (rc.max_concurrent_requests + (rc.max_concurrent_requests / 8).max(16)).min(u32::MAX as usize) as u32,
        max_instance_memory: largest_memory.unwrap_or(rc.limits.max_instance_memory),
        cache_dir,
        max_wasm_stack: rc.max_wasm_stack as usize,
        consume_fuel: false,
    }
}

/// Data written into an app's stores before it serves (`spin up --key-value`, `--sqlite`).
#[derive(Debug, Default, Clone)]
pub struct Seed {
    /// (store, key, value) set in key-value stores.
    pub key_values: Vec<(String, String, String)>,
    /// (database, SQL) run against SQLite databases, each in one transaction.
    pub sqlite: Vec<(String, String)>,
}

/// One app, loaded and ready to serve.
pub struct AppHost {
    executor: Arc<Executor>,
    http: Option<Arc<HttpTrigger>>,
    redis: RedisTrigger,
    mqtt: MqttTrigger,
    messaging: MessagingTrigger,
    cron: CronTrigger,
    command: Option<Arc<tessera_executor::PreparedComponent>>,
    loads: Vec<LoadReport>,
}

impl AppHost {
    /// Opens the app's backends and prepares every component its triggers use.
    pub fn load(engine: &Engine, app: Arc<LoadedApp>) -> Result<Self> {
        Self::load_with(engine, app, ExecutorOptions::default())
    }

    /// [`AppHost::load`] with executor options of the caller's (metrics).
    pub fn load_with(engine: &Engine, app: Arc<LoadedApp>, options: ExecutorOptions) -> Result<Self> {
        let executor = Arc::new(Executor::new(engine, app.clone(), options)?);
        let manifest = &app.manifest;
        let http = if manifest.http_triggers.is_empty() { None } else { Some(HttpTrigger::new(&executor)?) };
        let redis = RedisTrigger::new(&executor)?;
        let mqtt = MqttTrigger::new(&executor)?;
        let messaging = MessagingTrigger::new(&executor)?;
        let cron = CronTrigger::new(&executor)?;
        let command = match manifest.command_triggers.first() {
            Some(t) => {
                let c = executor.prepare(&t.component)?;
                anyhow::ensure!(
                    tessera_triggers::command::is_command(&c),
                    "component `{}` is used by a [[trigger.command]] but exports no wasi:cli/run; build it as a command (a `fn main` for wasm32-wasip2)",
                    c.id()
                );
                Some(c)
            }
            None => None,
        };
        let loads = executor.load_reports();
        Ok(Self { executor, http, redis, mqtt, messaging, cron, command, loads })
    }

    /// The executor every entry point of the app runs on.
    pub fn executor(&self) -> &Arc<Executor> {
        &self.executor
    }

    /// How each component was loaded.
    pub fn load_reports(&self) -> &[LoadReport] {
        &self.loads
    }

    /// Logs how each component was loaded: compiled, or from the compile cache, and how long it took.
    pub fn log_loads(&self) {
        for load in &self.loads {
            let how = match load.from {
                tessera_engine::CompiledFrom::Cache => "loaded from the compile cache",
                tessera_engine::CompiledFrom::Source => "compiled",
                tessera_engine::CompiledFrom::Shared => "shares the code of the same bytes already loaded",
            };
            tracing::info!("component `{}` ({:.1} MB) {how} in {:.1} ms", load.id, load.size as f64 / 1e6, load.elapsed.as_secs_f64() * 1000.0);
        }
    }

    /// The HTTP trigger, when the app has HTTP routes.
    pub fn http(&self) -> Option<&Arc<HttpTrigger>> {
        self.http.as_ref()
    }

    /// Whether the app is a command (`[[trigger.command]]`), run by [`AppHost::run_command`].
    pub fn is_command(&self) -> bool {
        self.command.is_some()
    }

    /// `(address, channel, components)` of each Redis subscription.
    pub fn redis_subscriptions(&self) -> Vec<(String, String, Vec<String>)> {
        self.redis.subscriptions()
    }

    /// `(broker, topic filter, component)` of each MQTT subscription.
    pub fn mqtt_subscriptions(&self) -> Vec<(String, String, String)> {
        self.mqtt.subscriptions()
    }

    /// `(broker, subject, component)` of each messaging subscription.
    pub fn messaging_subscriptions(&self) -> Vec<(String, String, String)> {
        self.messaging.subscriptions()
    }

    /// `(trigger id, expression, component)` of each cron job.
    pub fn cron_schedules(&self) -> Vec<(String, String, String)> {
        self.cron.schedules()
    }

    /// The async runtime to serve the app on. Redis, MQTT and NATS messages and cron runs are tasks of
    /// it, so an app with either gets `threads` workers and its instances spread over the
    /// cores; otherwise one thread is enough (HTTP has its own serving threads).
    pub fn runtime(&self, threads: usize) -> Result<tokio::runtime::Runtime> {
        let mut builder = if self.redis.is_empty() && self.mqtt.is_empty() && self.messaging.is_empty() && self.cron.is_empty() {
            tokio::runtime::Builder::new_current_thread()
        } else {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(threads.max(1)).thread_name("tessera-triggers");
            b
        };
        builder.enable_all().build().context("cannot start the async runtime")
    }

    /// Runs the command trigger's component once with the process's stdio, `args` after
    /// its id as argv, and the component's own environment and files; returns its exit
    /// code.
    pub async fn run_command(&self, args: &[String]) -> Result<i32> {
        let component = self.command.as_ref().context("the app has no [[trigger.command]]")?;
        let mut wasi = component.capabilities().wasi_builder()?;
        let argv: Vec<&str> = std::iter::once(component.id()).chain(args.iter().map(String::as_str)).collect();
        wasi.inherit_stdio().args(&argv);
        let end = tessera_triggers::command::run(&self.executor, component, component.capabilities().instance_with_wasi(wasi.build())).await?;
        Ok(end.code)
    }

    /// Writes `seed` into the app's stores before it serves: `--key-value` pairs, then
    /// `--sqlite` statements in the order given.
    pub async fn seed(&self, seed: &Seed) -> Result<()> {
        use tessera_capabilities::{key_value::KeyValue, sqlite::Sqlite};
        for (store, key, value) in &seed.key_values {
            self.executor.capability::<KeyValue>().set_initial(store, key, value).await?;
        }
        for (database, sql) in &seed.sqlite {
            self.executor.capability::<Sqlite>().execute_initial(database, sql)?;
        }
        Ok(())
    }

    /// Starts every trigger: HTTP on `listener` (when the app has routes) with `threads`
    /// serving threads, Redis, MQTT and messaging subscriptions and cron jobs as tasks of the current runtime.
    pub fn serve(self, listener: Option<std::net::TcpListener>, threads: usize) -> Result<Serving> {
        let (stop, stopped) = watch::channel(false);
        let mut addr = None;
        if let (Some(http), Some(listener)) = (&self.http, listener) {
            addr = Some(listener.local_addr()?);
            http.clone().serve_per_thread(listener, threads, stopped.clone())?;
        }
        let mut tasks = Vec::new();
        if !self.redis.is_empty() {
            tasks.push(tokio::spawn(self.redis.run(self.executor.clone(), stopped.clone())));
        }
        if !self.mqtt.is_empty() {
            tasks.push(tokio::spawn(self.mqtt.run(self.executor.clone(), stopped.clone())));
        }
        if !self.messaging.is_empty() {
            tasks.push(tokio::spawn(self.messaging.run(self.executor.clone(), stopped.clone())));
        }
        if !self.cron.is_empty() {
            tasks.push(tokio::spawn(self.cron.run(self.executor.clone(), stopped.clone())));
        }
        Ok(Serving { stop, addr, http: self.http, tasks, _executor: self.executor })
    }
}

impl AppHost {
    /// Serves the app on `runtime` until SIGTERM or SIGINT, then drains in-flight work for
    /// up to `shutdown_timeout`: what `tessera up` and the containerd shim do. `announce`
    /// runs once the signals are caught and before serving starts (an early SIGTERM still
    /// drains). Returns the exit code: 0 when drained (also when the deadline cut work
    /// off, which is logged), 130 or 143 when a second signal stops it at once.
    pub fn serve_until_signal(
        self,
        runtime: &tokio::runtime::Runtime,
        listener: Option<std::net::TcpListener>,
        threads: usize,
        shutdown_timeout: Duration,
        announce: impl FnOnce(&AppHost),
    ) -> Result<u8> {
        use tokio::signal::unix::{SignalKind, signal};
        runtime.block_on(async move {
            let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
            let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
            announce(&self);
            let serving = self.serve(listener, threads)?;
            let signal = tokio::select! {
                _ = interrupt.recv() => "SIGINT",
                _ = terminate.recv() => "SIGTERM",
            };
            println!("Shutting down ({signal}): finishing in-flight work for up to {shutdown_timeout:?} (a second signal stops at once)");
            let _ = std::io::Write::flush(&mut std::io::stdout());
            tokio::select! {
                report = serving.drain(shutdown_timeout) => {
                    if report.open_connections > 0 || report.unfinished_tasks > 0 {
                        tracing::warn!(
                            "shutdown_timeout ({shutdown_timeout:?}) passed with {} connection(s) and {} Redis/MQTT/cron task(s) unfinished; they were cut off (raise shutdown_timeout in the runtime config)",
                            report.open_connections, report.unfinished_tasks
                        );
                    } else {
                        tracing::info!("drained in {:.1} ms", report.elapsed.as_secs_f64() * 1000.0);
                    }
                    Ok(0)
                }
                _ = interrupt.recv() => Ok(130),
                _ = terminate.recv() => Ok(143),
            }
        })
    }
}

/// A serving app.
pub struct Serving {
    stop: watch::Sender<bool>,
    addr: Option<SocketAddr>,
    http: Option<Arc<HttpTrigger>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// Keeps the app (its staged `files`, its backends) alive while serving.
    _executor: Arc<Executor>,
}

/// Waits until `open()` connections are 0 or `deadline` passes.
async fn until_closed(open: impl Fn() -> usize, deadline: tokio::time::Instant) {
    while open() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// What a drain left unfinished.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// HTTP connections still open at the deadline.
    pub open_connections: usize,
    /// Redis, MQTT and cron work still running at the deadline.
    pub unfinished_tasks: usize,
    /// How long the drain took.
    pub elapsed: Duration,
}

impl Serving {
    /// The HTTP address, when the app serves HTTP.
    pub fn addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// Stops accepting connections, messages and ticks, lets in-flight requests (their
    /// connections answered and closed), messages and cron runs finish, for up to
    /// `timeout`.
    pub async fn drain(self, timeout: Duration) -> DrainReport {
        let started = Instant::now();
        let _ = self.stop.send(true);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut unfinished_tasks = 0;
        for task in self.tasks {
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                unfinished_tasks += 1;
            }
        }
        let open = || self.http.as_ref().map_or(0, |h| h.open_connections());
        until_closed(open, deadline).await;
        DrainReport { open_connections: open(), unfinished_tasks, elapsed: started.elapsed() }
    }
}
