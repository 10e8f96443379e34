//! Tessera's executor: the life of an instance, the same for every entry point (HTTP,
//! Redis, cron, command triggers and `tessera run`).
//!
//! - [`Executor::new`] configures each capability once per app (its backends are opened
//!   once and shared by every trigger) and sizes the process-wide instance slots.
//! - [`Executor::prepare`] compiles a component (or loads it from the compile cache),
//!   picks the engine flavour, stubs interfaces Tessera lacks and pre-instantiates it.
//! - [`PreparedComponent::store`] makes a fresh store with every limit; [`Executor::invoke`]
//!   runs one invocation on it inside one tracing span, bounded by the slots and the time
//!   limit, and returns a typed [`Failure`] that each entry point maps its own way.
#![deny(missing_docs)]

mod accounting;
pub mod exports;
mod failure;
pub mod metrics;
mod preview1;
mod slots;
mod stubs;

pub use accounting::{Accounting, SharedCpu};
pub use failure::{Failure, Limit, LimitSettings, LimitsInForce, RUNTIME_CONFIG_LIMITS};
pub use preview1::{PreparedModule, Preview1State};
pub use slots::{InstanceSlots, Rejected};

use anyhow::{Context as _, Result};
use futures::future::BoxFuture;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tessera_app::LoadedApp;
use accounting::OnCpu;
use tessera_capabilities::{AppCapabilities, ComponentCapabilities, Concurrency, InstanceState};
use tessera_engine::{CompiledFrom, Engine, InstanceLimiter};
use tessera_manifest::ComponentLimits;
use wasmtime::Store;
use wasmtime::component::{Component, Instance, InstancePre, Linker};

/// How one component was loaded, for reporting start-up cost.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Component id.
    pub id: String,
    /// Size of the component in bytes.
    pub size: usize,
    /// Compiled now or loaded from the cache.
    pub from: CompiledFrom,
    /// Time to compile or load, and pre-instantiate.
    pub elapsed: Duration,
}

/// Adds an entry point's or embedder's own host interfaces to a linker (their state goes
/// in [`InstanceState::extension`]); called once per engine flavour.
pub type LinkExtension = Arc<dyn Fn(&mut Linker<InstanceState>, Concurrency) -> Result<()> + Send + Sync>;

/// Settings of an executor beyond the app's own.
#[derive(Clone)]
pub struct ExecutorOptions {
    /// How log lines name the limits and where to raise them.
    pub limits: LimitSettings,
    /// An instruction budget per invocation (the engine must meter fuel).
    pub fuel: Option<u64>,
    /// Host interfaces of the caller's own, linked beside the capabilities'.
    pub link: Option<LinkExtension>,
    /// Log each failed invocation as an error. An embedder that gets every failure as a
    /// value (and may see millions of quota hits a day) logs them at debug level instead.
    pub log_failures: bool,
    /// Where the app's invocations, slots and limits hit are counted (Prometheus).
    pub metrics: Option<Arc<metrics::AppMetrics>>,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        Self { limits: RUNTIME_CONFIG_LIMITS, fuel: None, link: None, log_failures: true, metrics: None }
    }
}

/// Runs the components of one app.
pub struct Executor {
    engine: Engine,
    app: Arc<LoadedApp>,
    capabilities: AppCapabilities,
    linkers: Arc<Mutex<Linkers>>,
    prepared: Mutex<BTreeMap<String, Arc<PreparedComponent>>>,
    slots: Arc<InstanceSlots>,
    next_invocation: AtomicU64,
    options: ExecutorOptions,
}

impl Executor {
    /// Opens the app's backends (once, for every trigger) and sizes its instance slots
    /// from the runtime config.
    pub fn new(engine: &Engine, app: Arc<LoadedApp>, options: ExecutorOptions) -> Result<Self> {
        let capabilities = AppCapabilities::configure(&app)?;
        let rc = &app.runtime_config;
        let slots = Arc::new(InstanceSlots::new(rc.max_concurrent_requests, rc.max_queued_requests, rc.queue_timeout));
        if let Some(metrics) = &options.metrics {
            metrics.watch_slots(&slots);
        }
        Ok(Self {
            engine: engine.clone(),
            app,
            capabilities,
            // Without an embedder's extension every app links the same host functions: one
            // set per engine keeps them warm in the CPU's caches whichever app runs.
            linkers: if options.link.is_none() { engine.per_engine() } else { Arc::default() },
            prepared: Mutex::default(),
            slots,
            next_invocation: AtomicU64::new(1),
            options,
        })
    }

    /// The app.
    pub fn app(&self) -> &Arc<LoadedApp> {
        &self.app
    }

    /// The app-wide state of capability `C` (a trigger reaching the app's broker).
    pub fn capability<C: tessera_capabilities::Capability>(&self) -> &C {
        self.capabilities.get::<C>()
    }

    /// Sends the service-chaining requests of every component to `services` (the HTTP
    /// entry point calls this once it exists).
    pub fn serve_locally(&self, services: std::sync::Weak<dyn tessera_capabilities::outbound_http::LocalServices>) {
        self.capabilities.serve_locally(services);
    }

    /// Where the app's metrics are recorded, when they are.
    pub fn metrics(&self) -> Option<&Arc<metrics::AppMetrics>> {
        self.options.metrics.as_ref()
    }

    /// The instance slots every entry point of this executor shares.
    pub fn slots(&self) -> &Arc<InstanceSlots> {
        &self.slots
    }

    /// A new invocation id, unique in this executor.
    pub fn next_invocation_id(&self) -> u64 {
        self.next_invocation.fetch_add(1, Ordering::Relaxed)
    }

    /// Invocations started so far (of every entry point).
    pub fn invocations_started(&self) -> u64 {
        self.next_invocation.load(Ordering::Relaxed) - 1
    }

    /// Compiles (or loads from the cache) and pre-instantiates component `id`, once; later
    /// calls return the same component.
    pub fn prepare(&self, id: &str) -> Result<Arc<PreparedComponent>> {
        if let Some(p) = self.prepared.lock().unwrap_or_else(|e| e.into_inner()).get(id) {
            return Ok(p.clone());
        }
        let loaded = self
            .app
            .components
            .get(id)
            .with_context(|| format!("the app has no component `{id}`"))?;
        let started = Instant::now();
        let (component, from) = self.engine.load_component(id, &loaded.bytes, tessera_capabilities::needs_concurrency)?;
        let capabilities = self
            .capabilities
            .component(&self.app, loaded)
            .with_context(|| format!("cannot configure component `{id}`"))?;
        let concurrency = if self.engine.is_concurrent(&component) { Concurrency::On } else { Concurrency::Off };
        let mut linker = self.linkers.lock().unwrap_or_else(|e| e.into_inner()).get(&component, concurrency, self.options.link.as_ref())?;
        for denied in &loaded.denied {
            stubs::deny_instance(&mut linker, &component, id, denied)?;
        }
        let (pre, stubbed) = stubs::instantiate_pre_with_stubs(&linker, &component)
            .with_context(|| format!("component `{id}` imports something Tessera does not provide"))?;
        if !stubbed.is_empty() {
            tracing::warn!(
                "component `{id}` imports interfaces Tessera does not provide yet; calls to them fail: {}",
                stubbed.join(", ")
            );
        }
        let prepared = Arc::new(PreparedComponent {
            subject: self.subject(id, &loaded.limits),
            component,
            pre,
            concurrency,
            capabilities,
            component_limits: loaded.limits,
            load: LoadReport { id: id.to_string(), size: loaded.bytes.len(), from, elapsed: started.elapsed() },
        });
        if let Some(metrics) = &self.options.metrics {
            metrics.watch_calls(&prepared);
        }
        self.prepared.lock().unwrap_or_else(|e| e.into_inner()).insert(id.to_string(), prepared.clone());
        Ok(prepared)
    }

    fn subject(&self, id: &str, limits: &ComponentLimits) -> Subject {
        Subject {
            id: id.into(),
            app: self.app.manifest.application.name.as_str().into(),
            limits: LimitsInForce { timeout: limits.request_timeout, max_wasm_stack: self.app.runtime_config.max_wasm_stack, fuel: self.options.fuel },
            settings: self.options.limits,
            log_failures: self.options.log_failures,
            metrics: self.options.metrics.clone(),
        }
    }

    /// How each component prepared so far was loaded, in id order.
    pub fn load_reports(&self) -> Vec<LoadReport> {
        self.prepared.lock().unwrap_or_else(|e| e.into_inner()).values().map(|p| p.load.clone()).collect()
    }

    /// Runs one invocation of `component` for `trigger`: waits for an instance slot,
    /// instantiates a fresh store, runs `call` within the component's time limit inside
    /// one span, logs a failure naming the limit to raise, and returns the call's value or
    /// the typed failure.
    pub async fn invoke<T: Send + 'static>(
        &self,
        component: &Arc<PreparedComponent>,
        trigger: &'static str,
        call: impl for<'a> FnOnce(&'a mut Store<InstanceState>, Instance) -> BoxFuture<'a, wasmtime::Result<T>> + Send + 'static,
    ) -> Result<Invoked<T>, InvokeError> {
        let state = component
            .capabilities
            .instance()
            .map_err(|e| InvokeError::Failed { failure: component.failed(Failure::Instantiation(wasmtime::Error::from_anyhow(e))), account: None })?;
        self.invoke_with_state(component, trigger, state, call).await
    }

    /// [`Executor::invoke`] on a store holding `state` (made by the component's
    /// capabilities, possibly with the entry point's own WASI context).
    pub async fn invoke_with_state<T: Send + 'static>(
        &self,
        component: &Arc<PreparedComponent>,
        trigger: &'static str,
        state: InstanceState,
        call: impl for<'a> FnOnce(&'a mut Store<InstanceState>, Instance) -> BoxFuture<'a, wasmtime::Result<T>> + Send + 'static,
    ) -> Result<Invoked<T>, InvokeError> {
        self.invoke_within(component, trigger, state, component.subject.limits, &self.slots, call).await
    }

    /// [`Executor::invoke_with_state`] under the caller's own limits and instance slots
    /// instead of the component's: an embedder's per-call quotas and per-tenant
    /// concurrency. The memory limit is the one `state`'s limiter holds.
    pub async fn invoke_within<T: Send + 'static>(
        &self,
        component: &Arc<PreparedComponent>,
        trigger: &'static str,
        state: InstanceState,
        limits: LimitsInForce,
        slots: &InstanceSlots,
        call: impl for<'a> FnOnce(&'a mut Store<InstanceState>, Instance) -> BoxFuture<'a, wasmtime::Result<T>> + Send + 'static,
    ) -> Result<Invoked<T>, InvokeError> {
        let pre = component.pre.clone();
        let store = new_store(pre.engine(), state, &limits);
        let subject = Subject { limits, ..component.subject.clone() };
        self.run(&subject, trigger, store, slots, move |store| Box::pin(async move { pre.instantiate_async(store).await }), call).await
    }

    /// The life of one invocation, whatever the instance's kind: a slot, one span, the
    /// time limit, the cost, and a failure classified and logged.
    pub(crate) async fn run<D: Limited, I: Send + 'static, T: Send + 'static>(
        &self,
        subject: &Subject,
        trigger: &'static str,
        mut store: Store<D>,
        slots: &InstanceSlots,
        instantiate: impl for<'a> FnOnce(&'a mut Store<D>) -> BoxFuture<'a, wasmtime::Result<I>> + Send + 'static,
        call: impl for<'a> FnOnce(&'a mut Store<D>, I) -> BoxFuture<'a, wasmtime::Result<T>> + Send + 'static,
    ) -> Result<Invoked<T>, InvokeError> {
        let arrived = Instant::now();
        let admitted = slots.admit().await;
        if let Some(metrics) = &subject.metrics {
            metrics.slot_wait(arrived.elapsed());
            if let Err(why) = admitted {
                metrics.refused(&subject.id, if why == Rejected::QueueFull { "max_queued_requests" } else { "queue_timeout" });
                metrics.invocation(metrics::InvocationRecord { component: &subject.id, trigger, outcome: "busy", duration: arrived.elapsed(), cpu: None, peak_memory: None });
            }
        }
        let _permit = admitted.map_err(InvokeError::Busy)?;
        let span = subject.span(trigger, self.next_invocation_id());
        let metrics = subject.metrics.clone().map(|m| (m, subject.id.clone()));
        let started = Instant::now();
        let subject = subject.clone();
        let run = async move {
            let peak = store.data_mut().limiter().peak_handle();
            let mut cpu = Duration::ZERO;
            let instance = match OnCpu::new(std::pin::pin!(instantiate(&mut store)), &mut cpu).await {
                Ok(i) => i,
                Err(e) => {
                    let account = Accounting { wall: started.elapsed(), cpu, ..Accounting::default() };
                    return Err((subject.failed(Failure::Instantiation(e)), account));
                }
            };
            let call = call(&mut store, instance);
            let result = tokio::time::timeout(subject.limits.timeout, OnCpu::new(std::pin::pin!(call), &mut cpu)).await;
            let fuel_used = subject.limits.fuel.map(|budget| budget.saturating_sub(store.get_fuel().unwrap_or(0)));
            let account = Accounting { wall: started.elapsed(), cpu, peak_memory: peak.load(Ordering::Relaxed), fuel_used };
            let (error, timed_out) = match result {
                Ok(Ok(value)) => return Ok(Invoked { value, account }),
                Ok(Err(e)) => (e, false),
                Err(_elapsed) => (wasmtime::format_err!("stopped at its deadline"), true),
            };
            let data = store.data_mut();
            let failure = Failure::classify(error, data.limiter().hit(), data.max_handles(), &subject.limits, timed_out);
            Err((subject.failed(failure), account))
        };
        let result = tracing::Instrument::instrument(run, span).await;
        if let Some((metrics, component)) = metrics {
            let (outcome, account) = match &result {
                Ok(invoked) => ("ok", Some(&invoked.account)),
                Err((_, account)) => ("failed", Some(account)),
            };
            let record = metrics::InvocationRecord {
                component: &component,
                trigger,
                outcome,
                duration: arrived.elapsed(),
                cpu: account.map(|a| a.cpu),
                peak_memory: account.map(|a| a.peak_memory),
            };
            metrics.invocation(record);
        }
        match result {
            Ok(invoked) => Ok(invoked),
            Err((failure, account)) => Err(InvokeError::Failed { failure, account: Some(account) }),
        }
    }
}

/// What the executor needs of a store's data, whatever kind of instance it serves.
pub(crate) trait Limited: Send + 'static {
    /// The instance's memory accounting.
    fn limiter(&mut self) -> &mut InstanceLimiter;
    /// The most host resources it may hold (for naming that limit).
    fn max_handles(&self) -> usize;
}

impl Limited for InstanceState {
    fn limiter(&mut self) -> &mut InstanceLimiter {
        &mut self.limiter
    }

    fn max_handles(&self) -> usize {
        self.table.max_capacity()
    }
}

/// A fresh store holding `data` with every limit: memory accounting, an epoch deadline
/// that yields every tick (so a time limit can stop a spinning guest) and the fuel budget.
pub(crate) fn new_store<D: Limited>(engine: &wasmtime::Engine, data: D, limits: &LimitsInForce) -> Store<D> {
    let mut store = Store::new(engine, data);
    store.limiter(|d| d.limiter());
    store.epoch_deadline_async_yield_and_update(1);
    store.set_epoch_deadline(1);
    if let Some(fuel) = limits.fuel {
        // Metering is an engine setting; a store of an unmetered engine refuses fuel.
        let _ = store.set_fuel(fuel);
    }
    store
}

/// Who an invocation runs for: what its span, its limits and its log lines name.
#[derive(Clone)]
pub(crate) struct Subject {
    id: Arc<str>,
    app: Arc<str>,
    limits: LimitsInForce,
    settings: LimitSettings,
    log_failures: bool,
    metrics: Option<Arc<metrics::AppMetrics>>,
}

impl Subject {
    fn span(&self, trigger: &'static str, id: u64) -> tracing::Span {
        // `otel.*` name and kind the span when traces are exported (Spin's names, Tessera's
        // prefix); recorded only then, so log lines keep to the four fields.
        let span = tracing::info_span!(
            "invocation",
            app = %self.app,
            component = %self.id,
            trigger = %trigger,
            id,
            "otel.name" = tracing::field::Empty,
            "otel.kind" = tracing::field::Empty
        );
        if !tessera_capabilities::trace_context::is_on() {
            return span;
        }
        let name = match trigger {
            "http" => "tessera_trigger_http.handle_http_request",
            "redis" => "tessera_trigger_redis.handle_message",
            "mqtt" => "tessera_trigger_mqtt.handle_message",
            "messaging" => "tessera_trigger_messaging.handle_message",
            "cron" => "tessera_trigger_cron.handle_cron_event",
            _ => "tessera.invoke",
        };
        span.record("otel.name", name);
        span.record("otel.kind", "server");
        span
    }

    /// Logs `failure` (a non-zero exit is the command's own business, not logged) and
    /// returns it.
    fn failed(&self, failure: Failure) -> Failure {
        if matches!(failure, Failure::Exit(_)) {
            return failure;
        }
        let reason = failure.describe(&self.id, &self.settings);
        if self.log_failures {
            tracing::error!("{reason}");
        } else {
            tracing::debug!("{reason}");
        }
        if let Some(metrics) = &self.metrics {
            if let Some(limit) = failure.limit() {
                metrics.limit_hit(&self.id, (self.settings.name)(limit));
            }
            metrics.failure(&self.id, reason);
        }
        failure
    }
}

/// A successful invocation's value and cost.
#[derive(Debug)]
pub struct Invoked<T> {
    /// What the call returned.
    pub value: T,
    /// What it cost.
    pub account: Accounting,
}

/// Why [`Executor::invoke`] did not return a value.
#[derive(Debug)]
pub enum InvokeError {
    /// No instance slot within the queue's bounds.
    Busy(Rejected),
    /// The instance failed (already logged).
    Failed {
        /// Why.
        failure: Failure,
        /// What it cost until then.
        account: Option<Accounting>,
    },
}

impl InvokeError {
    /// The failure, when the instance ran.
    pub fn failure(&self) -> Option<&Failure> {
        match self {
            Self::Failed { failure, .. } => Some(failure),
            Self::Busy(_) => None,
        }
    }

    /// What the invocation cost until it failed, when it got as far as running.
    pub fn account(&self) -> Option<Accounting> {
        match self {
            Self::Failed { account, .. } => *account,
            Self::Busy(_) => None,
        }
    }
}

impl std::fmt::Display for InvokeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Busy(Rejected::QueueFull) => f.write_str("every instance slot is busy and the queue is full"),
            Self::Busy(Rejected::Timeout) => f.write_str("no instance slot freed up within queue_timeout"),
            Self::Failed { failure, .. } => write!(f, "{failure}"),
        }
    }
}

impl std::error::Error for InvokeError {}

/// A component ready to instantiate: compiled, linked and pre-instantiated, with its
/// configured capabilities.
pub struct PreparedComponent {
    subject: Subject,
    /// Shared with every other load of the same bytes (see `Engine::load_component`).
    component: Arc<Component>,
    pre: InstancePre<InstanceState>,
    concurrency: Concurrency,
    capabilities: ComponentCapabilities,
    component_limits: ComponentLimits,
    load: LoadReport,
}

impl PreparedComponent {
    /// The component id.
    pub fn id(&self) -> &str {
        &self.subject.id
    }

    /// The compiled component.
    pub fn component(&self) -> &Component {
        &self.component
    }

    /// The pre-instantiated component.
    pub fn instance_pre(&self) -> &InstancePre<InstanceState> {
        &self.pre
    }

    /// Whether it runs on the concurrent engine.
    pub fn concurrency(&self) -> Concurrency {
        self.concurrency
    }

    /// Its limits from the runtime config.
    pub fn component_limits(&self) -> &ComponentLimits {
        &self.component_limits
    }

    /// The limits its instances run under.
    pub fn limits(&self) -> &LimitsInForce {
        &self.subject.limits
    }

    /// How it was loaded.
    pub fn load_report(&self) -> &LoadReport {
        &self.load
    }

    /// The component's capabilities.
    pub fn capabilities(&self) -> &ComponentCapabilities {
        &self.capabilities
    }

    /// One span for one invocation; everything logged while it runs carries these fields.
    pub fn span(&self, trigger: &'static str, id: u64) -> tracing::Span {
        self.subject.span(trigger, id)
    }

    /// A fresh store with every limit (see [`PreparedComponent::store_with`]).
    pub fn store(&self) -> Result<Store<InstanceState>> {
        Ok(self.store_with(self.capabilities.instance()?))
    }

    /// A fresh store holding `state` (built by [`ComponentCapabilities`], possibly with an
    /// entry point's own WASI context), with memory accounting, an epoch deadline that
    /// yields every tick (so a time limit can stop a spinning guest) and the fuel budget.
    pub fn store_with(&self, state: InstanceState) -> Store<InstanceState> {
        new_store(self.pre.engine(), state, &self.subject.limits)
    }

    /// Logs `failure` (a non-zero exit is the command's own business, not logged) and
    /// returns it.
    pub fn failed(&self, failure: Failure) -> Failure {
        self.subject.failed(failure)
    }

    /// Classifies and logs how an instance ended, for entry points that drive the store
    /// themselves (HTTP's handler).
    pub fn report(&self, result: Result<(), wasmtime::Error>, state: &InstanceState, timed_out: bool) -> Option<Failure> {
        let error = result.err()?;
        let failure = Failure::classify(error, state.limiter.hit(), state.table.max_capacity(), &self.subject.limits, timed_out);
        Some(self.failed(failure))
    }
}

/// One linker per engine flavour, built the first time a component needs it.
#[derive(Default)]
struct Linkers {
    plain: Option<Linker<InstanceState>>,
    concurrent: Option<Linker<InstanceState>>,
}

impl Linkers {
    fn get(&mut self, component: &Component, concurrency: Concurrency, extension: Option<&LinkExtension>) -> Result<Linker<InstanceState>> {
        let slot = match concurrency {
            Concurrency::Off => &mut self.plain,
            Concurrency::On => &mut self.concurrent,
        };
        if slot.is_none() {
            let mut linker = Linker::new(component.engine());
            tessera_capabilities::link(&mut linker, concurrency)?;
            if let Some(link) = extension {
                link(&mut linker, concurrency)?;
            }
            *slot = Some(linker);
        }
        Ok(slot.clone().expect("just built"))
    }
}
