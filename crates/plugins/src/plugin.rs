//! A loaded plugin and its calls: each on a fresh instance, within its quotas, admitted by
//! its tenant's limits, metered, cancellable from any thread.

use crate::quotas::{CallError, Metering, Quota, Quotas, Reason};
use crate::sandbox::{LogSink, Logs, wasi_for_call};
use crate::{Grants, Tenant};
use futures::future::BoxFuture;
use std::any::Any;
use std::sync::Arc;
use tessera_capabilities::InstanceState;
use tessera_engine::InstanceLimiter;
use tessera_executor::exports::{find_func, lookup, split_export};
use tessera_executor::{Executor, LimitsInForce, PreparedComponent};
use tokio_util::sync::CancellationToken;
use wasmtime::Store;
use wasmtime::component::{Instance, Val};

/// A compiled plugin, shared by every load of the same digest and grants.
pub(crate) struct Loaded {
    pub(crate) executor: Executor,
    pub(crate) prepared: Arc<PreparedComponent>,
    pub(crate) digest: String,
}

/// A plugin ready to call. Cheap to clone; calls may run concurrently (each on its own
/// instance), up to its tenant's limits.
#[derive(Clone)]
pub struct Plugin {
    name: Arc<str>,
    loaded: Arc<Loaded>,
    tenant: Tenant,
    quotas: Quotas,
    grants: Arc<Grants>,
    metered: bool,
}

/// Settings of one call beyond the plugin's own.
#[derive(Default)]
pub struct Call {
    quotas: Option<Quotas>,
    extension: Option<Box<dyn Any + Send>>,
    cancel: Option<CancellationToken>,
}

impl Call {
    /// A call with the plugin's quotas.
    pub fn new() -> Self {
        Self::default()
    }

    /// Quotas for this call instead of the plugin's.
    pub fn quotas(mut self, quotas: Quotas) -> Self {
        self.quotas = Some(quotas);
        self
    }

    /// State for the embedder's own host functions, reachable in them through
    /// `InstanceState::extension_mut`.
    pub fn extension(mut self, state: impl Any + Send) -> Self {
        self.extension = Some(Box::new(state));
        self
    }

    /// Stops the call when `token` is cancelled, from any thread (within 10 ms for a
    /// guest spinning in a loop).
    pub fn cancel_on(mut self, token: CancellationToken) -> Self {
        self.cancel = Some(token);
        self
    }
}

/// A call's value with what it used and what the guest printed.
#[derive(Debug)]
pub struct Called<T> {
    /// What the plugin returned.
    pub value: T,
    /// What the call used.
    pub metering: Metering,
    /// What the guest printed.
    pub logs: Logs,
}

impl Plugin {
    pub(crate) fn new(name: String, loaded: Arc<Loaded>, tenant: Tenant, quotas: Quotas, grants: Grants, metered: bool) -> Self {
        Self { name: name.into(), loaded, tenant, quotas, grants: Arc::new(grants), metered }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The digest of its bytes (`sha256:...`).
    pub fn digest(&self) -> &str {
        &self.loaded.digest
    }

    /// Its tenant.
    pub fn tenant(&self) -> &Tenant {
        &self.tenant
    }

    /// Its quotas per call.
    pub fn quotas(&self) -> &Quotas {
        &self.quotas
    }

    /// Whether `other` runs the same compiled code (the same bytes and grants, loaded
    /// while this one was).
    pub fn shares_code_with(&self, other: &Plugin) -> bool {
        Arc::ptr_eq(&self.loaded, &other.loaded)
    }

    /// The compiled component (for `bindgen!`'s `...Pre::new` or type checks).
    pub fn component(&self) -> &wasmtime::component::Component {
        self.loaded.prepared.component()
    }

    /// Calls the plugin through typed bindings: `call` gets a fresh instance and returns
    /// what an export returned (the crate docs show one with `bindgen!`). The result
    /// counts against the result-size quota as JSON text (bindgen's
    /// `additional_derives: [serde::Serialize]` gives WIT types that).
    pub async fn call<T: serde::Serialize + Send + 'static>(
        &self,
        options: Call,
        call: impl for<'a> FnOnce(&'a mut Store<InstanceState>, Instance) -> BoxFuture<'a, wasmtime::Result<T>> + Send + 'static,
    ) -> Result<Called<T>, CallError> {
        self.run(options, call, |value| crate::json_size::json_size(value)).await
    }

    /// Calls the export `name` (`name`, or `iface#name` for a function of an exported
    /// interface) with `args`; returns its results. The result counts as WAVE text.
    pub async fn call_dynamic(&self, options: Call, name: &str, args: Vec<Val>) -> Result<Called<Vec<Val>>, CallError> {
        let (interface, func_name) = split_export(name);
        let ty = find_func(&self.loaded.prepared, interface, func_name).map_err(|e| CallError::bad_call(format!("plugin `{}` {e}", self.name)))?;
        if ty.params().len() != args.len() {
            return Err(CallError::bad_call(format!("`{name}` takes {} arguments, {} given", ty.params().len(), args.len())));
        }
        let results_len = ty.results().len();
        let (interface, func_name) = (interface.map(str::to_string), func_name.to_string());
        self.run(
            options,
            move |store, instance| {
                Box::pin(async move {
                    let func = lookup(&mut *store, &instance, interface.as_deref(), &func_name)?;
                    let mut results = vec![Val::Bool(false); results_len];
                    func.call_async(&mut *store, &args, &mut results).await?;
                    Ok(results)
                })
            },
            |results: &Vec<Val>| results.iter().map(|v| wasm_wave::to_string(v).map(|s| s.len() as u64).unwrap_or(0)).sum(),
        )
        .await
    }

    /// Calls an export written as WAVE text, as `wasmtime run --invoke` takes it:
    /// `apply({total: 100})`; returns each result as WAVE text.
    pub async fn call_wave(&self, options: Call, call: &str) -> Result<Called<Vec<String>>, CallError> {
        let bad = |e: &dyn std::fmt::Display| {
            CallError::bad_call(format!("cannot read `{call}` as a WAVE function call: {e}; write it as 'name(arg1, arg2)', e.g. 'add(1, 2)'"))
        };
        // The name may hold `#` (`iface#name`), which WAVE's grammar has not: it is read
        // apart, the arguments by WAVE.
        let open = call.find('(').ok_or_else(|| bad(&"no `(`"))?;
        let name = call[..open].trim().to_string();
        let args_text = format!("f{}", &call[open..]);
        let parsed = wasm_wave::untyped::UntypedFuncCall::parse(&args_text).map_err(|e| bad(&e))?;
        let (interface, func_name) = split_export(&name);
        let ty = find_func(&self.loaded.prepared, interface, func_name).map_err(|e| CallError::bad_call(format!("plugin `{}` {e}", self.name)))?;
        let params: Vec<_> = ty.params().map(|(_, t)| t).collect();
        let args: Vec<Val> = parsed
            .to_wasm_params::<Val>(params.iter())
            .map_err(|e| CallError::bad_call(format!("the arguments of `{call}` do not fit `{name}`: {e}")))?;
        let called = self.call_dynamic(options, &name, args).await?;
        Ok(Called {
            value: called.value.iter().map(|v| wasm_wave::to_string(v).unwrap_or_else(|e| format!("<{e}>"))).collect(),
            metering: called.metering,
            logs: called.logs,
        })
    }

    /// One call: a fresh instance with the quotas, admitted by the tenant's slots, raced
    /// against cancellation, its result measured.
    async fn run<T: Send + 'static>(
        &self,
        options: Call,
        call: impl for<'a> FnOnce(&'a mut Store<InstanceState>, Instance) -> BoxFuture<'a, wasmtime::Result<T>> + Send + 'static,
        size: impl FnOnce(&T) -> u64,
    ) -> Result<Called<T>, CallError> {
        let quotas = options.quotas.unwrap_or(self.quotas);
        let logs = LogSink::new(quotas.log_size);
        let prepared = &self.loaded.prepared;
        let wasi = wasi_for_call(&self.grants, &logs).map_err(|e| CallError::bad_call(format!("{e:#}")))?;
        let mut state = prepared.capabilities().instance_with_wasi(wasi);
        state.limiter = InstanceLimiter::new(quotas.memory);
        state.extension = options.extension;
        let limits = LimitsInForce {
            timeout: quotas.timeout,
            max_wasm_stack: prepared.limits().max_wasm_stack,
            fuel: self.metered.then_some(quotas.instructions),
        };
        let invoke = self.loaded.executor.invoke_within(prepared, "plugin", state, limits, self.tenant.slots(), call);
        let outcome = match options.cancel {
            Some(token) => tokio::select! {
                outcome = invoke => outcome,
                () = token.cancelled() => {
                    return Err(CallError {
                        reason: Reason::Cancelled,
                        message: format!("the call of plugin `{}` was cancelled", self.name),
                        metering: None,
                        logs: logs.take(),
                    });
                }
            },
            None => invoke.await,
        };
        let invoked = outcome.map_err(|e| CallError::from_invoke(e, &self.name, &self.tenant, &quotas, logs.take()))?;
        let metering = Metering::from(invoked.account);
        let result_size = size(&invoked.value);
        if result_size > quotas.result_size {
            return Err(CallError {
                reason: Reason::Quota { quota: Quota::ResultSize, limit: quotas.result_size },
                message: format!(
                    "plugin `{}` returned {result_size} bytes, more than its result_size quota of {} bytes",
                    self.name, quotas.result_size
                ),
                metering: Some(metering),
                logs: logs.take(),
            });
        }
        Ok(Called { value: invoked.value, metering, logs: logs.take() })
    }
}
