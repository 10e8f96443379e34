//! Tessera's host capabilities. Each is one module with the same lifecycle (the idea of
//! Spin's factors), the [`Capability`] trait:
//!
//! 1. `link` once per engine: add its WIT interfaces to the shared linker (and say which
//!    of them need component-model concurrency, `needs_concurrency`);
//! 2. `configure_app` once per app: validate grants, open backends;
//!    `configure_component` once per component: its grants and shared state;
//! 3. `instance` per invocation, on the guest's first call: the small per-instance state.
//!
//! Adding a capability means its module and one line in the registry
//! (`capability::CAPABILITIES`). The WASI base ([`wasi_cli`] with [`logging`] for guest
//! output, and [`outbound_http`]'s hooks) is part of every store instead, because
//! wasmtime's `WasiView` and `WasiHttpView` need those contexts as fields.
//!
//! Host calls log inside the invocation's tracing span (set by the executor), which names
//! the app, component, trigger and invocation id; no request id is passed in by hand.
#![deny(missing_docs)]

pub mod blobstore;
mod capability;
mod grants;
pub mod key_value;
pub mod logging;
pub mod messaging;
pub mod mqtt;
pub mod mysql;
pub mod name_lookup;
pub mod network;
pub mod outbound_http;
pub mod postgres;
pub mod redis;
pub mod sqlite;
pub mod trace_context;
pub mod variables;
pub mod wasi_cli;

use anyhow::Result;
use std::sync::Arc;
use tessera_app::{LoadedApp, LoadedComponent};
use tessera_engine::InstanceLimiter;
use wasmtime::component::{Linker, ResourceTable};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

pub use capability::Capability;

/// The data of one instance's store: every capability's per-instance state.
pub struct InstanceState {
    /// Resources handed to the guest.
    pub table: ResourceTable,
    /// Memory accounting over all memories and tables.
    pub limiter: InstanceLimiter,
    /// `wasi:cli`, `wasi:filesystem`, ... ([`wasi_cli`]).
    pub wasi: WasiCtx,
    /// `wasi:http` types.
    pub http: WasiHttpCtx,
    /// Outbound HTTP policy ([`outbound_http`]).
    pub outbound: outbound_http::InstanceHooks,
    /// Every registered [`Capability`]'s state (see [`InstanceState::capability`]).
    capabilities: capability::InstanceStates,
    /// Which names `wasi:sockets/ip-name-lookup` resolves (none when `None`).
    pub name_lookups: Option<network::NameLookups>,
    /// State of host interfaces an entry point or embedder links itself (see
    /// `tessera_executor::ExecutorOptions::link`), so they need no field here.
    pub extension: Option<Box<dyn std::any::Any + Send>>,
}

impl InstanceState {
    /// The entry point's or embedder's own state, if it is a `T`.
    pub fn extension_mut<T: 'static>(&mut self) -> Option<&mut T> {
        self.extension.as_mut()?.downcast_mut()
    }

    /// Publishes the instance's peak memory to `peak_memory` (for the access log). Log
    /// lines of host calls name their invocation through its tracing span.
    pub fn publish_peak_memory(&mut self, peak_memory: std::sync::Arc<std::sync::atomic::AtomicU64>) {
        self.limiter.publish_peak_to(peak_memory);
    }
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for InstanceState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

/// Whether a linker serves the engine with component-model concurrency (see
/// `tessera_engine::Engine`): host functions that take the store or return streams and
/// futures exist only there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Concurrency {
    /// WASI 0.2 and the Spin interfaces without async functions.
    Off,
    /// Everything, WASI 0.3 included.
    On,
}

/// Adds every capability's interfaces to `linker`. Everything Tessera knows is linked for
/// every component; grants are checked when a capability is used.
pub fn link(linker: &mut Linker<InstanceState>, concurrency: Concurrency) -> Result<()> {
    wasi_cli::link(linker, concurrency)?;
    outbound_http::link(linker, concurrency)?;
    capability::link_all(linker, concurrency)
}

/// Whether a component importing or exporting `interface` must run on the concurrent
/// engine, because that interface is only linked there.
pub fn needs_concurrency(interface: &str) -> bool {
    wasi_cli::needs_concurrency(interface)
        || outbound_http::needs_concurrency(interface)
        || capability::any_needs_concurrency(interface)
}

/// The manifest grant without which an imported interface can do nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grant {
    /// `allowed_outbound_hosts` (outbound HTTP, sockets, Redis, PostgreSQL, MySQL, MQTT).
    AllowedOutboundHosts,
    /// `key_value_stores`.
    KeyValueStores,
    /// `sqlite_databases`.
    SqliteDatabases,
    /// `files`.
    Files,
    /// `variables` (component configuration).
    Variables,
    /// `allowed_publish_subjects` (`wasmcloud:messaging`).
    AllowedPublishSubjects,
    /// `blob_containers` (`wasi:blobstore`).
    BlobContainers,
}

impl Grant {
    /// The manifest key.
    pub fn key(self) -> &'static str {
        match self {
            Self::AllowedOutboundHosts => "allowed_outbound_hosts",
            Self::KeyValueStores => "key_value_stores",
            Self::SqliteDatabases => "sqlite_databases",
            Self::Files => "files",
            Self::Variables => "variables",
            Self::AllowedPublishSubjects => "allowed_publish_subjects",
            Self::BlobContainers => "blob_containers",
        }
    }
}

/// Which grant an imported interface needs, for `tessera inspect` (interface prefixes
/// each capability module declares).
pub fn grant_for_import(interface: &str) -> Option<Grant> {
    let base = [(outbound_http::IMPORTS, Grant::AllowedOutboundHosts), (wasi_cli::FILE_IMPORTS, Grant::Files)];
    base.into_iter()
        .chain(capability::imports())
        .find(|(prefixes, _)| prefixes.iter().any(|p| interface.starts_with(p)))
        .map(|(_, g)| g)
}

/// Capability state of a whole app, built once: backends shared by its components.
pub struct AppCapabilities {
    registered: capability::AppStates,
    local_services: outbound_http::LocalServicesSlot,
}

impl AppCapabilities {
    /// Opens the app's backends and checks every grant names one that exists.
    pub fn configure(app: &LoadedApp) -> Result<Self> {
        // Clients that build their TLS settings from rustls's process-wide provider
        // (mysql_async, async-nats) would panic at the handshake: rustls cannot pick one
        // itself when both of its backends are linked, as here. A no-op after the first app.
        let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
        Ok(Self { registered: capability::AppStates::configure(app)?, local_services: Default::default() })
    }

    /// Where service-chaining requests of every component go (the HTTP entry point); set
    /// once, later calls are ignored.
    pub fn serve_locally(&self, services: std::sync::Weak<dyn outbound_http::LocalServices>) {
        let _ = self.local_services.set(services);
    }

    /// The app-wide state of capability `C` (the messaging trigger takes the app's broker).
    pub fn get<C: Capability>(&self) -> &C {
        self.registered.get::<C>()
    }

    /// Prepares one component's capabilities.
    pub fn component(&self, app: &LoadedApp, component: &LoadedComponent) -> Result<ComponentCapabilities> {
        Ok(ComponentCapabilities {
            id: component.id.as_str().into(),
            max_instance_memory: component.limits.max_instance_memory,
            max_resource_handles: component.limits.max_resource_handles as usize,
            wasi_cli: wasi_cli::ComponentState::configure(component)?,
            logging: logging::ComponentState::configure(app, component)?,
            outbound_http: outbound_http::ComponentState::configure(component, self.local_services.clone(), app.runtime_config.max_chain_depth),
            registered: self.registered.component(app, component)?,
        })
    }
}

/// Counters of the host calls one component's instances made into each capability
/// (outbound HTTP requests among them), shared with the component.
#[derive(Clone)]
pub struct CapabilityCalls {
    registered: Arc<capability::RegisteredCalls>,
    outbound_http: Arc<std::sync::atomic::AtomicU64>,
}

impl CapabilityCalls {
    /// Each capability's name (`key_value`, `sqlite`, `outbound_http`, ...) with the calls
    /// made into it so far.
    pub fn counts(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        let outbound = self.outbound_http.load(std::sync::atomic::Ordering::Relaxed);
        capability::named_calls(&self.registered).chain(std::iter::once(("outbound_http", outbound)))
    }
}

/// One component's configured capabilities, shared by all its instances.
pub struct ComponentCapabilities {
    id: Arc<str>,
    max_instance_memory: u64,
    max_resource_handles: usize,
    wasi_cli: wasi_cli::ComponentState,
    logging: logging::ComponentState,
    outbound_http: outbound_http::ComponentState,
    registered: capability::ComponentStates,
}

impl ComponentCapabilities {
    /// The component id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The host calls this component's instances make, by capability, read when asked.
    pub fn calls(&self) -> CapabilityCalls {
        CapabilityCalls { registered: self.registered.calls().clone(), outbound_http: self.outbound_http.requests_asked() }
    }

    /// Fresh per-instance state for one request.
    pub fn instance(&self) -> Result<InstanceState> {
        let (stdout, stderr) = self.logging.instance();
        Ok(self.instance_with_wasi(self.wasi_cli.instance(stdout, stderr)?))
    }

    /// The component's WASI configuration (environment, mounts, no network) for an entry
    /// point to complete with its own stdio and arguments.
    pub fn wasi_builder(&self) -> Result<wasmtime_wasi::WasiCtxBuilder> {
        self.wasi_cli.builder()
    }

    /// Fresh per-instance state with an entry point's own WASI context (`tessera run`
    /// gives the process's stdio, arguments, `--dir` and `--env`).
    pub fn instance_with_wasi(&self, wasi: WasiCtx) -> InstanceState {
        let mut table = ResourceTable::new();
        table.set_max_capacity(self.max_resource_handles);
        InstanceState {
            table,
            limiter: InstanceLimiter::new(self.max_instance_memory),
            wasi,
            http: WasiHttpCtx::new(),
            outbound: self.outbound_http.instance(),
            capabilities: capability::InstanceStates::new(&self.registered),
            name_lookups: self.wasi_cli.name_lookups(),
            extension: None,
        }
    }
}
