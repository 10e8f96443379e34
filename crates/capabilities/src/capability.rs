//! The [`Capability`] trait and the registry of platform capabilities.
//!
//! A capability is one module: a type that implements [`Capability`] (its value is the
//! app-wide state, opened once per app), and one line in [`CAPABILITIES`]. Linking,
//! engine choice, `tessera inspect`'s grant table, configuration per app and component,
//! and per-instance state all come from the registry; the store type does not change.
//!
//! Per-instance state is made the first time a guest calls into the capability, so a
//! request that uses none of them (a hello world) pays one reference count for all.

use crate::{Concurrency, Grant, InstanceState};
use anyhow::Result;
use std::any::{Any, TypeId};
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tessera_app::{LoadedApp, LoadedComponent};
use wasmtime::component::{Linker, ResourceTable};

/// One host capability. The implementing type is its app-wide state (backends opened
/// once and shared by every component and trigger of the app).
pub trait Capability: Sized + Send + Sync + 'static {
    /// Its name in metrics (`key_value`, `sqlite`, ...).
    const NAME: &'static str;
    /// Prefixes of the interfaces it serves (`spin:sqlite/`), for `tessera inspect`.
    const IMPORTS: &'static [&'static str];
    /// The manifest grant without which those interfaces can do nothing.
    const GRANT: Grant;
    /// One component's configured state, shared by all its instances.
    type Component: Send + Sync + 'static;
    /// One instance's state, made on the guest's first call.
    type Instance: Send + 'static;

    /// Adds its interfaces to the engine's linker.
    fn link(linker: &mut Linker<InstanceState>, concurrency: Concurrency) -> Result<()>;
    /// Whether a component importing `interface` must run on the concurrent engine
    /// (the interface is linked only there).
    fn needs_concurrency(interface: &str) -> bool;
    /// Validates the app's grants against the runtime config and opens its backends.
    fn configure_app(app: &LoadedApp) -> Result<Self>;
    /// Prepares one component: its grants, policy and shared connections.
    fn configure_component(&self, app: &LoadedApp, component: &LoadedComponent) -> Result<Self::Component>;
    /// Fresh state for one instance of the component.
    fn instance(component: &Self::Component) -> Self::Instance;
}

/// Every platform capability, in link order. Adding one: its module, and one line here.
static CAPABILITIES: &[&dyn Registered] = &[
    &Registration::<crate::variables::Variables>::NEW,
    &Registration::<crate::key_value::KeyValue>::NEW,
    &Registration::<crate::sqlite::Sqlite>::NEW,
    &Registration::<crate::redis::Redis>::NEW,
    &Registration::<crate::postgres::Postgres>::NEW,
    &Registration::<crate::mqtt::Mqtt>::NEW,
    &Registration::<crate::mysql::Mysql>::NEW,
    &Registration::<crate::messaging::Messaging>::NEW,
    &Registration::<crate::blobstore::Blobstore>::NEW,
];

type AppState = Box<dyn Any + Send + Sync>;
type ComponentState = Box<dyn Any + Send + Sync>;

/// A [`Capability`] with its types erased, so the registry can hold every kind.
trait Registered: Send + Sync {
    fn capability(&self) -> TypeId;
    fn name(&self) -> &'static str;
    fn imports(&self) -> (&'static [&'static str], Grant);
    fn link(&self, linker: &mut Linker<InstanceState>, concurrency: Concurrency) -> Result<()>;
    fn needs_concurrency(&self, interface: &str) -> bool;
    fn configure_app(&self, app: &LoadedApp) -> Result<AppState>;
    fn configure_component(&self, state: &AppState, app: &LoadedApp, component: &LoadedComponent) -> Result<ComponentState>;
    fn instance(&self, component: &ComponentState) -> Box<dyn Any + Send>;
}

struct Registration<C>(PhantomData<fn() -> C>);

impl<C> Registration<C> {
    const NEW: Self = Self(PhantomData);
}

impl<C: Capability> Registered for Registration<C> {
    fn capability(&self) -> TypeId {
        TypeId::of::<C>()
    }
    fn name(&self) -> &'static str {
        C::NAME
    }
    fn imports(&self) -> (&'static [&'static str], Grant) {
        (C::IMPORTS, C::GRANT)
    }
    fn link(&self, linker: &mut Linker<InstanceState>, concurrency: Concurrency) -> Result<()> {
        C::link(linker, concurrency)
    }
    fn needs_concurrency(&self, interface: &str) -> bool {
        C::needs_concurrency(interface)
    }
    fn configure_app(&self, app: &LoadedApp) -> Result<AppState> {
        Ok(Box::new(C::configure_app(app)?))
    }
    fn configure_component(&self, state: &AppState, app: &LoadedApp, component: &LoadedComponent) -> Result<ComponentState> {
        let state = state.downcast_ref::<C>().expect("app state of the registered capability");
        Ok(Box::new(state.configure_component(app, component)?))
    }
    fn instance(&self, component: &ComponentState) -> Box<dyn Any + Send> {
        let component = component.downcast_ref::<C::Component>().expect("component state of the registered capability");
        Box::new(C::instance(component))
    }
}

/// Links every registered capability.
pub(crate) fn link_all(linker: &mut Linker<InstanceState>, concurrency: Concurrency) -> Result<()> {
    CAPABILITIES.iter().try_for_each(|c| c.link(linker, concurrency))
}

/// Whether any registered capability links `interface` only on the concurrent engine.
pub(crate) fn any_needs_concurrency(interface: &str) -> bool {
    CAPABILITIES.iter().any(|c| c.needs_concurrency(interface))
}

/// The registered capabilities' interface prefixes and grants.
pub(crate) fn imports() -> impl Iterator<Item = (&'static [&'static str], Grant)> {
    CAPABILITIES.iter().map(|c| c.imports())
}

/// The registered capabilities' app-wide states, in registry order.
pub(crate) struct AppStates(Vec<AppState>);

impl AppStates {
    pub(crate) fn configure(app: &LoadedApp) -> Result<Self> {
        Ok(Self(CAPABILITIES.iter().map(|c| c.configure_app(app)).collect::<Result<_>>()?))
    }

    pub(crate) fn get<C: Capability>(&self) -> &C {
        let index = index_of::<C>();
        self.0[index].downcast_ref().expect("app state of the registered capability")
    }

    pub(crate) fn component(&self, app: &LoadedApp, component: &LoadedComponent) -> Result<ComponentStates> {
        let states = CAPABILITIES
            .iter()
            .zip(&self.0)
            .map(|(c, state)| c.configure_component(state, app, component))
            .collect::<Result<Vec<_>>>()?;
        let calls = CAPABILITIES.iter().map(|_| AtomicU64::new(0)).collect();
        Ok(ComponentStates { states: states.into(), calls: Arc::new(calls) })
    }
}

/// One component's configured capabilities, in registry order, shared by its instances,
/// and the host calls its instances made into each.
#[derive(Clone)]
pub(crate) struct ComponentStates {
    states: Arc<[ComponentState]>,
    calls: Arc<RegisteredCalls>,
}

impl ComponentStates {
    pub(crate) fn calls(&self) -> &Arc<RegisteredCalls> {
        &self.calls
    }
}

/// Host calls into each registered capability, in registry order.
pub(crate) type RegisteredCalls = Box<[AtomicU64]>;

/// The registered capabilities' names with the calls counted in `calls`.
pub(crate) fn named_calls(calls: &RegisteredCalls) -> impl Iterator<Item = (&'static str, u64)> + '_ {
    CAPABILITIES.iter().zip(calls.iter()).map(|(c, n)| (c.name(), n.load(Ordering::Relaxed)))
}

/// Where `C` is in the registry.
fn index_of<C: Capability>() -> usize {
    CAPABILITIES
        .iter()
        .position(|c| c.capability() == TypeId::of::<C>())
        .expect("only registered capabilities are asked for")
}

/// One instance's capability states, each made on first use.
pub(crate) struct InstanceStates {
    component: ComponentStates,
    made: Vec<Option<Box<dyn Any + Send>>>,
}

impl InstanceStates {
    pub(crate) fn new(component: &ComponentStates) -> Self {
        Self { component: component.clone(), made: Vec::new() }
    }

    /// Capability `C`'s state, for one host call into it (counted).
    fn get<C: Capability>(&mut self) -> &mut C::Instance {
        let index = index_of::<C>();
        self.component.calls[index].fetch_add(1, Ordering::Relaxed);
        if self.made.is_empty() {
            self.made.resize_with(CAPABILITIES.len(), || None);
        }
        let slot = &mut self.made[index];
        let state = slot.get_or_insert_with(|| CAPABILITIES[index].instance(&self.component.states[index]));
        state.downcast_mut().expect("instance state of the registered capability")
    }
}

impl InstanceState {
    /// The resource table and capability `C`'s state for this instance, for `C`'s host
    /// functions (the view they work on).
    pub fn capability<C: Capability>(&mut self) -> (&mut ResourceTable, &mut C::Instance) {
        (&mut self.table, self.capabilities.get::<C>())
    }
}

#[cfg(test)]
mod tests {
    use crate::{Grant, grant_for_import, needs_concurrency};

    #[test]
    fn every_registered_capability_answers_for_its_interfaces() {
        for (interface, grant) in [
            ("fermyon:spin/variables@2.0.0", Grant::Variables),
            ("wasi:config/store@0.2.0-draft-2024-09-27", Grant::Variables),
            ("fermyon:spin/key-value@2.0.0", Grant::KeyValueStores),
            ("wasi:keyvalue/store@0.2.0-draft2", Grant::KeyValueStores),
            ("spin:sqlite/sqlite@3.1.0", Grant::SqliteDatabases),
            ("fermyon:spin/redis@2.0.0", Grant::AllowedOutboundHosts),
            ("spin:postgres/postgres@4.2.0", Grant::AllowedOutboundHosts),
            ("fermyon:spin/mqtt@2.0.0", Grant::AllowedOutboundHosts),
            ("spin:mqtt/mqtt@3.0.0", Grant::AllowedOutboundHosts),
            ("fermyon:spin/mysql@2.0.0", Grant::AllowedOutboundHosts),
            ("spin:mysql/mysql@3.0.0", Grant::AllowedOutboundHosts),
            ("wasi:http/outgoing-handler@0.2.6", Grant::AllowedOutboundHosts),
            ("wasi:filesystem/preopens@0.2.6", Grant::Files),
            ("wasmcloud:messaging/consumer@0.2.0", Grant::AllowedPublishSubjects),
            ("wasi:blobstore/blobstore@0.2.0-draft", Grant::BlobContainers),
        ] {
            assert_eq!(grant_for_import(interface), Some(grant), "{interface}");
        }
        assert_eq!(grant_for_import("wasi:clocks/monotonic-clock@0.2.6"), None);
        // The engine flavour is asked of every registered capability.
        assert!(needs_concurrency("spin:key-value/key-value@3.0.0"));
        assert!(needs_concurrency("spin:postgres/postgres@4.2.0"));
        assert!(!needs_concurrency("spin:postgres/postgres@3.0.0"));
        assert!(needs_concurrency("spin:mqtt/mqtt@3.0.0"));
        assert!(!needs_concurrency("fermyon:spin/mqtt@2.0.0"));
        assert!(needs_concurrency("spin:mysql/mysql@3.0.0"));
        assert!(!needs_concurrency("fermyon:spin/mysql@2.0.0"));
        assert!(!needs_concurrency("fermyon:spin/sqlite@2.0.0"));
    }
}
