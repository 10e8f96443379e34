//! Tessera's engine layer: one engine per process (two `wasmtime::Engine`s, see
//! [`Engine`]), shared by every app, with the pooling allocator, an on-disk compile
//! cache, epoch-based timeouts and per-instance memory accounting. It knows nothing of HTTP or of any capability.
#![deny(missing_docs)]

mod adapt;
mod compile_cache;
mod epoch;
mod limiter;
mod shared;

pub use adapt::module_to_component;
pub use compile_cache::{CompileCache, CompiledFrom};
pub use limiter::{InstanceLimiter, LimitHit};

use anyhow::{Context as _, Result, bail};
use std::path::PathBuf;
use sha2::{Digest as _, Sha256};
use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;
use wasmtime::component::Component;
use wasmtime::{Config, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances; timeouts are enforced to within this interval.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Settings that shape the shared engine.
#[derive(Debug, Clone)]
pub struct EngineSettings {
    /// Instances that may exist at once (pool slots).
    pub max_instances: u32,
    /// The largest `max_instance_memory` of any component served (bytes).
    pub max_instance_memory: u64,
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Stack a guest may use (bytes); deeper recursion traps with a stack overflow.
    pub max_wasm_stack: usize,
    /// Meter instructions (fuel), so a store can be given a budget; it costs every guest
    /// some speed, so only `tessera run --fuel` asks for it.
    pub consume_fuel: bool,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            max_instances: 1000,
            max_instance_memory: 128 << 20,
            cache_dir: CompileCache::default_dir(),
            max_wasm_stack: 512 << 10,
            consume_fuel: false,
        }
    }
}

/// The shared engine. Cheap to clone.
///
/// It holds two Wasmtime engines, because Wasmtime's component-model concurrency (which
/// WASI 0.3 and Spin's async interfaces need) is an engine-wide setting that makes every
/// call into and out of a guest go through its task machinery. WASI 0.2 components run on
/// an engine without it: about 15% more hello-world requests per second (bench/RESULTS.md).
/// The concurrent engine is created the first time a component needs it.
#[derive(Clone)]
pub struct Engine {
    plain: Arc<Flavor>,
    concurrent: Arc<OnceLock<Arc<Flavor>>>,
    settings: EngineSettings,
    /// What higher layers build once per engine rather than once per app, by type.
    per_engine: Arc<Mutex<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>>,
}

/// One Wasmtime engine with its compile cache, its loaded components and epoch ticker.
struct Flavor {
    inner: wasmtime::Engine,
    cache: Option<CompileCache>,
    loaded: shared::SharedLoads<Component>,
    _epoch: epoch::EpochTicker,
}

impl Flavor {
    fn new(settings: &EngineSettings, concurrency: bool) -> Result<Self> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .concurrency_support(concurrency)
            .wasm_component_model_async(concurrency)
            .epoch_interruption(true)
            .consume_fuel(settings.consume_fuel)
            .memory_init_cow(true)
            .max_wasm_stack(settings.max_wasm_stack)
            // Host calls made from guest code run on the same fiber stack, above the guest's.
            .async_stack_size(settings.max_wasm_stack + HOST_STACK);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config(settings)));
        let inner = wasmtime::Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("cannot create the Wasmtime engine")?;
        let cache = settings.cache_dir.as_ref().map(|dir| CompileCache::new(dir.clone(), &inner));
        let epoch = epoch::EpochTicker::start(inner.clone(), EPOCH_TICK);
        Ok(Self { inner, cache, loaded: Default::default(), _epoch: epoch })
    }

    fn load(&self, bytes: &[u8]) -> Result<(Arc<Component>, CompiledFrom)> {
        let digest = Sha256::digest(bytes).into();
        self.loaded.get_or_load(digest, || match &self.cache {
            Some(cache) => cache.load(&self.inner, bytes, &digest),
            None => Component::new(&self.inner, bytes)
                .map(|c| (c, CompiledFrom::Source))
                .map_err(anyhow::Error::from),
        })
    }

    fn load_module(&self, bytes: &[u8]) -> Result<(wasmtime::Module, CompiledFrom)> {
        match &self.cache {
            Some(cache) => cache.load_module(&self.inner, bytes),
            None => wasmtime::Module::new(&self.inner, bytes)
                .map(|m| (m, CompiledFrom::Source))
                .map_err(anyhow::Error::from),
        }
    }
}

impl Engine {
    /// Builds the engine for WASI 0.2 components and starts its epoch ticker.
    pub fn new(settings: &EngineSettings) -> Result<Self> {
        Ok(Self {
            plain: Arc::new(Flavor::new(settings, false)?),
            concurrent: Arc::new(OnceLock::new()),
            settings: settings.clone(),
            per_engine: Arc::default(),
        })
    }

    /// The one `T` of this engine, made on first use: state every app on the engine can
    /// share (the executor's linkers, whose host functions are then the same for all).
    pub fn per_engine<T: Default + Send + Sync + 'static>(&self) -> Arc<T> {
        let mut map = self.per_engine.lock().unwrap_or_else(|e| e.into_inner());
        let value = map.entry(TypeId::of::<T>()).or_insert_with(|| Arc::new(T::default()));
        value.clone().downcast().expect("stored under its own type id")
    }

    fn concurrent(&self) -> Result<&Flavor> {
        if let Some(flavor) = self.concurrent.get() {
            return Ok(flavor);
        }
        let flavor = Arc::new(Flavor::new(&self.settings, true)?);
        // Another thread may have won the race; its engine is kept and this one dropped.
        Ok(self.concurrent.get_or_init(|| flavor))
    }

    /// Whether `component` runs with component-model concurrency (see [`Engine`]), so
    /// its linker needs the concurrent host functions.
    pub fn is_concurrent(&self, component: &Component) -> bool {
        !wasmtime::Engine::same(component.engine(), &self.plain.inner)
    }

    /// Compiles `bytes` (or loads them from the cache); while any caller holds the result,
    /// loading the same bytes again returns the same code. `name` is used in errors. A WASI
    /// preview 1 core module is made a component first (see `adapt`).
    /// `needs_concurrency` is asked about each top-level import and export name; a
    /// component with any such name, or one using component-model async itself, is
    /// compiled for the concurrent engine.
    pub fn load_component(
        &self,
        name: &str,
        bytes: &[u8],
        needs_concurrency: impl Fn(&str) -> bool,
    ) -> Result<(Arc<Component>, CompiledFrom)> {
        let adapted;
        let bytes = if is_core_module(bytes) {
            adapted = adapt::module_to_component(name, bytes)?;
            &adapted[..]
        } else {
            check_is_component(name, bytes)?;
            bytes
        };
        let result = if top_level_names(bytes).iter().any(|n| needs_concurrency(n)) {
            self.concurrent()?.load(bytes)
        } else {
            // A component using async lifts, streams or futures fails validation on the
            // plain engine; the concurrent one accepts it (or gives the error to show).
            self.plain.load(bytes).or_else(|plain_error| {
                tracing::debug!("`{name}` needs component-model concurrency: {plain_error:#}");
                self.concurrent()?.load(bytes)
            })
        };
        result.with_context(|| format!("cannot compile component `{name}`"))
    }

    /// Compiles a core module (or loads it from the cache), for WASI preview 1 programs;
    /// it runs on the engine without component-model concurrency.
    pub fn load_module(&self, name: &str, bytes: &[u8]) -> Result<(wasmtime::Module, CompiledFrom)> {
        self.plain.load_module(bytes).with_context(|| format!("cannot compile module `{name}`"))
    }

    /// The engine core modules run on.
    pub fn module_engine(&self) -> &wasmtime::Engine {
        &self.plain.inner
    }

    /// Number of epoch ticks in `timeout`, at least one.
    pub fn ticks(timeout: Duration) -> u64 {
        (timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
    }
}

/// Whether `bytes` is a core WebAssembly module (not a component).
pub fn is_core_module(bytes: &[u8]) -> bool {
    wasmparser::Parser::is_core_wasm(bytes)
}

/// The names a component imports and exports at its top level (not those of components
/// and modules nested in it): its world as the host sees it. Empty for component text,
/// which is only parsed on compile.
pub fn world_names(bytes: &[u8]) -> (Vec<String>, Vec<String>) {
    use wasmparser::{Parser, Payload};
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    let mut depth = 0usize;
    for payload in Parser::new(0).parse_all(bytes) {
        let Ok(payload) = payload else { break };
        match payload {
            Payload::ModuleSection { .. } | Payload::ComponentSection { .. } => depth += 1,
            Payload::End(_) if depth == 0 => break,
            Payload::End(_) => depth -= 1,
            Payload::ComponentImportSection(reader) if depth == 0 => {
                imports.extend(reader.into_iter().flatten().map(|i| i.name.name.to_string()));
            }
            Payload::ComponentExportSection(reader) if depth == 0 => {
                exports.extend(reader.into_iter().flatten().map(|e| e.name.name.to_string()));
            }
            _ => {}
        }
    }
    (imports, exports)
}

fn top_level_names(bytes: &[u8]) -> Vec<String> {
    let (mut names, exports) = world_names(bytes);
    names.extend(exports);
    names
}

fn pooling_config(settings: &EngineSettings) -> PoolingAllocationConfig {
    let instances = settings.max_instances.max(1);
    // Each memory slot reserves 4 GiB of address space plus guard regions (so wasm needs
    // no bounds checks); the slots must fit the 128 TiB of user address space.
    let slot = (4u64 << 30) + (64u64 << 20);
    let memories = instances.saturating_mul(4).min((MEMORY_RESERVATION_BUDGET / slot) as u32);
    let mut pool = PoolingAllocationConfig::new();
    // Components built by componentize-py and componentize-js hold many core instances,
    // memories and large tables; the per-component limits are sized for them.
    pool.total_component_instances(instances)
        .total_core_instances(instances.saturating_mul(16))
        .total_memories(memories)
        .total_tables(instances.saturating_mul(4))
        .total_stacks(instances)
        .max_core_instances_per_component(64)
        .max_memories_per_component(16)
        .max_tables_per_component(16)
        .max_core_instance_size(16 << 20)
        .max_component_instance_size(4 << 20)
        .table_elements(200_000)
        .max_memory_size(settings.max_instance_memory as usize)
        // Reset only the pages an instance dirtied, by copying and zeroing, instead of
        // `madvise`: every madvise forces a TLB shootdown on all cores running the host,
        // which dominated per-request cost (see bench/RESULTS.md).
        .pagemap_scan(wasmtime::Enabled::Auto)
        .linear_memory_keep_resident(KEEP_RESIDENT_MEMORY)
        .table_keep_resident(KEEP_RESIDENT_TABLE);
    pool
}

/// Stack left for host functions above the guest's `max_wasm_stack` (Wasmtime's default
/// margin).
const HOST_STACK: usize = 1536 << 10;

/// Address space the linear memory slots of one engine may reserve; two engines together
/// stay well inside the 128 TiB of user address space.
const MEMORY_RESERVATION_BUDGET: u64 = 48 << 40;

/// Dirty bytes of a linear memory reset in place rather than released, per pool slot.
const KEEP_RESIDENT_MEMORY: usize = 16 << 20;
/// Dirty bytes of a table reset in place rather than released, per pool slot.
const KEEP_RESIDENT_TABLE: usize = 1 << 20;

fn check_is_component(name: &str, bytes: &[u8]) -> Result<()> {
    if bytes.starts_with(b"\0asm") && wasmparser::Parser::is_component(bytes) {
        return Ok(());
    }
    // Component text (WAT) is accepted for tests and tiny fixtures.
    if std::str::from_utf8(bytes).is_ok_and(|s| s.trim_start().starts_with('(')) {
        return Ok(());
    }
    bail!("`{name}` is not a WebAssembly component (it does not start with `\\0asm`)")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn engine() -> Engine {
        let settings = EngineSettings { max_instances: 4, cache_dir: None, ..EngineSettings::default() };
        Engine::new(&settings).unwrap()
    }

    fn load(engine: &Engine, text: &str) -> Arc<Component> {
        let bytes = wat::parse_str(text).unwrap();
        engine.load_component("test", &bytes, |name| name.ends_with("@0.3.0")).unwrap().0
    }

    #[test]
    fn components_go_to_the_engine_their_interfaces_need() {
        let engine = engine();
        let plain = load(&engine, r#"(component (import "wasi:cli/stdin@0.2.0" (instance)))"#);
        assert!(!engine.is_concurrent(&plain));
        let concurrent = load(&engine, r#"(component (import "wasi:cli/stdin@0.3.0" (instance)))"#);
        assert!(engine.is_concurrent(&concurrent));
        // Only the component's own imports count, not those of components nested in it.
        let nested = load(&engine, r#"(component (component (import "wasi:cli/stdin@0.3.0" (instance))))"#);
        assert!(!engine.is_concurrent(&nested));
    }

    #[test]
    fn the_same_bytes_share_one_compiled_component_while_held() {
        let engine = engine();
        let bytes = wat::parse_str(r#"(component (import "wasi:cli/stdin@0.2.0" (instance)))"#).unwrap();
        let load = || engine.load_component("app", &bytes, |_| false).unwrap();
        let (first, from) = load();
        assert_eq!(from, CompiledFrom::Source);
        let (second, from) = load();
        assert_eq!(from, CompiledFrom::Shared);
        assert!(Arc::ptr_eq(&first, &second), "a second app of the same bytes runs the same code");
        drop((first, second));
        assert_eq!(load().1, CompiledFrom::Source, "code nobody holds is freed, not kept");
    }

    #[test]
    fn a_component_using_async_itself_goes_to_the_concurrent_engine() {
        let engine = engine();
        let text = r#"(component
            (core module $m
                (func (export "f") (result i32) i32.const 0)
                (func (export "cb") (param i32 i32 i32) (result i32) i32.const 0))
            (core instance $i (instantiate $m))
            (func (export "f") async (canon lift (core func $i "f") async (callback (core func $i "cb"))))
        )"#;
        assert!(engine.is_concurrent(&load(&engine, text)));
    }
}
