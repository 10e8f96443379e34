//! WASI preview 1 core modules (`_start`), run natively on wasmtime-wasi's preview 1
//! implementation, as `wasmtime run` runs them: exit codes are exact (`proc_exit(33)`
//! gives 33) and arguments and environment pass whole, which the preview 1 component
//! adapter does not manage. The same slots, limits, span and typed failures as components.

use crate::{Executor, InvokeError, Invoked, Limited, Subject, new_store};
use anyhow::{Context as _, Result};
use std::sync::Arc;
use tessera_engine::InstanceLimiter;
use wasmtime::InstancePre;
use wasmtime_wasi::p1::WasiP1Ctx;

/// The data of a preview 1 instance's store.
pub struct Preview1State {
    wasi: WasiP1Ctx,
    limiter: InstanceLimiter,
}

impl Limited for Preview1State {
    fn limiter(&mut self) -> &mut InstanceLimiter {
        &mut self.limiter
    }

    fn max_handles(&self) -> usize {
        // Preview 1 keeps its own descriptor table, without a configurable limit.
        usize::MAX
    }
}

/// A preview 1 module ready to run.
pub struct PreparedModule {
    subject: Subject,
    pre: InstancePre<Preview1State>,
    max_memory: u64,
}

impl Executor {
    /// Compiles (or loads from the cache) component `id`'s bytes as a preview 1 core module
    /// and links preview 1 to it.
    pub fn prepare_preview1(&self, id: &str) -> Result<Arc<PreparedModule>> {
        let loaded = self.app.components.get(id).with_context(|| format!("the app has no component `{id}`"))?;
        let (module, _) = self.engine.load_module(id, &loaded.bytes)?;
        let mut linker = wasmtime::Linker::new(self.engine.module_engine());
        wasmtime_wasi::p1::add_to_linker_async(&mut linker, |s: &mut Preview1State| &mut s.wasi)
            .map_err(anyhow::Error::from)?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("`{id}` imports something other than wasi_snapshot_preview1"))?;
        Ok(Arc::new(PreparedModule { subject: self.subject(id, &loaded.limits), pre, max_memory: loaded.limits.max_instance_memory }))
    }

    /// Runs the module's `_start` once with `wasi` (stdio, arguments, preopens and
    /// environment are the caller's choice); the outcome as for a component's `run`.
    pub async fn run_preview1(&self, module: &Arc<PreparedModule>, wasi: WasiP1Ctx) -> Result<Invoked<()>, InvokeError> {
        let state = Preview1State { wasi, limiter: InstanceLimiter::new(module.max_memory) };
        let store = new_store(self.engine.module_engine(), state, &module.subject.limits);
        let pre = module.pre.clone();
        self.run(
            &module.subject,
            "command",
            store,
            &self.slots,
            move |store| Box::pin(async move { pre.instantiate_async(store).await }),
            |store, instance| {
                Box::pin(async move {
                    let start = instance
                        .get_typed_func::<(), ()>(&mut *store, "_start")
                        .map_err(|_| wasmtime::format_err!("the module exports no `_start` function: it is not a WASI command"))?;
                    start.call_async(&mut *store, ()).await
                })
            },
        )
        .await
    }
}
