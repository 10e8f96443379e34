//! Tessera's engine layer: one `wasmtime::Engine` per process, shared by every app, with
//! the pooling allocator, an on-disk compile cache, epoch-based timeouts and per-instance
//! memory accounting. It knows nothing of HTTP or of any capability.
#![deny(missing_docs)]

mod compile_cache;
mod epoch;
mod limiter;

pub use compile_cache::{CompileCache, CompiledFrom};
pub use limiter::{InstanceLimiter, LimitHit};

use anyhow::{Context as _, Result, bail};
use std::path::PathBuf;
use std::sync::Arc;
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
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            max_instances: 1000,
            max_instance_memory: 128 << 20,
            cache_dir: CompileCache::default_dir(),
        }
    }
}

/// The shared engine. Cheap to clone.
#[derive(Clone)]
pub struct Engine {
    inner: wasmtime::Engine,
    cache: Option<Arc<CompileCache>>,
    _epoch: Arc<epoch::EpochTicker>,
}

impl Engine {
    /// Builds the engine and starts its epoch ticker.
    pub fn new(settings: &EngineSettings) -> Result<Self> {
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .wasm_component_model_async(true)
            .epoch_interruption(true)
            .memory_init_cow(true);
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling_config(settings)));
        let inner = wasmtime::Engine::new(&config)
            .map_err(anyhow::Error::from)
            .context("cannot create the Wasmtime engine")?;
        let cache = settings
            .cache_dir
            .as_ref()
            .map(|dir| Arc::new(CompileCache::new(dir.clone(), &inner)));
        let epoch = Arc::new(epoch::EpochTicker::start(inner.clone(), EPOCH_TICK));
        Ok(Self {
            inner,
            cache,
            _epoch: epoch,
        })
    }

    /// The Wasmtime engine.
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner
    }

    /// Compiles `bytes` (or loads them from the cache). `name` is used in errors.
    pub fn load_component(&self, name: &str, bytes: &[u8]) -> Result<(Component, CompiledFrom)> {
        check_is_component(name, bytes)?;
        match &self.cache {
            Some(cache) => cache.load(&self.inner, bytes),
            None => Component::new(&self.inner, bytes)
                .map(|c| (c, CompiledFrom::Source))
                .map_err(anyhow::Error::from),
        }
        .with_context(|| format!("cannot compile component `{name}`"))
    }

    /// Number of epoch ticks in `timeout`, at least one.
    pub fn ticks(timeout: Duration) -> u64 {
        (timeout.as_millis() / EPOCH_TICK.as_millis()).max(1) as u64
    }
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

/// Address space all linear memory slots together may reserve.
const MEMORY_RESERVATION_BUDGET: u64 = 64 << 40;

/// Dirty bytes of a linear memory reset in place rather than released, per pool slot.
const KEEP_RESIDENT_MEMORY: usize = 16 << 20;
/// Dirty bytes of a table reset in place rather than released, per pool slot.
const KEEP_RESIDENT_TABLE: usize = 1 << 20;

fn check_is_component(name: &str, bytes: &[u8]) -> Result<()> {
    if bytes.starts_with(b"\0asm") {
        if wasmparser::Parser::is_core_wasm(bytes) {
            bail!(
                "`{name}` is a core WebAssembly module, not a component; build it for \
                 wasm32-wasip2, or wrap it with `wasm-tools component new --adapt`"
            );
        }
        if wasmparser::Parser::is_component(bytes) {
            return Ok(());
        }
    }
    // Component text (WAT) is accepted for tests and tiny fixtures.
    if std::str::from_utf8(bytes).is_ok_and(|s| s.trim_start().starts_with('(')) {
        return Ok(());
    }
    bail!("`{name}` is not a WebAssembly component (it does not start with `\\0asm`)")
}
