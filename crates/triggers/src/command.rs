//! Commands: components exporting `wasi:cli/run` (0.3 tried first, then 0.2) and WASI
//! preview 1 modules, run once with exit codes as `wasmtime run` gives them, and
//! `--invoke` of any exported function with WAVE-encoded arguments. `tessera run` and
//! `[[trigger.command]]` both use this.

use anyhow::{Result, bail};
use std::sync::Arc;
use tessera_executor::exports::{find_func, list, lookup, split_export};
use tessera_executor::{Accounting, Executor, Failure, InvokeError, PreparedComponent, PreparedModule};
use wasmtime::component::Val;

/// The exit code of a trap or a limit hit (`wasmtime run` gives 134, as SIGABRT would).
pub const TRAP_EXIT_CODE: i32 = 134;

/// How a command ended.
#[derive(Debug)]
pub struct CommandEnd {
    /// The process exit code.
    pub code: i32,
    /// What the run cost, when it got as far as running.
    pub account: Option<Accounting>,
}

/// Whether `component` exports `wasi:cli/run` (0.2.x or 0.3.0).
pub fn is_command(component: &PreparedComponent) -> bool {
    exports(component).iter().any(|e| e.starts_with("wasi:cli/run@0.2.") || e == "wasi:cli/run@0.3.0")
}

fn exports(component: &PreparedComponent) -> Vec<String> {
    let c = component.component();
    c.component_type().exports(c.engine()).map(|(name, _)| name.to_string()).collect()
}

/// Runs `wasi:cli/run` once on a fresh instance with `state` (its WASI context's stdio,
/// arguments, preopens and environment are the caller's choice:
/// `ComponentCapabilities::instance_with_wasi`).
pub async fn run(executor: &Executor, component: &Arc<PreparedComponent>, state: tessera_capabilities::InstanceState) -> Result<CommandEnd> {
    if !is_command(component) {
        bail!(
            "component `{}` exports no wasi:cli/run (it exports {}); build it as a command (a `fn main` for wasm32-wasip2), or call one of its functions with --invoke",
            component.id(),
            list(&exports(component))
        );
    }
    let outcome = executor
        .invoke_with_state(component, "command", state, |store, instance| {
            Box::pin(async move {
                if let Ok(command) = wasmtime_wasi::p3::bindings::Command::new(&mut *store, &instance) {
                    store.run_concurrent(async move |accessor| command.wasi_cli_run().call_run(accessor).await).await?
                } else {
                    let command = wasmtime_wasi::p2::bindings::Command::new(&mut *store, &instance)?;
                    command.wasi_cli_run().call_run(&mut *store).await
                }
            })
        })
        .await;
    Ok(match outcome {
        Ok(invoked) => CommandEnd { code: if invoked.value.is_ok() { 0 } else { 1 }, account: Some(invoked.account) },
        Err(e) => CommandEnd { code: exit_code(&e), account: e.account() },
    })
}

/// Runs a WASI preview 1 module's `_start` once (see [`run`]).
pub async fn run_preview1(executor: &Executor, module: &Arc<PreparedModule>, wasi: wasmtime_wasi::p1::WasiP1Ctx) -> CommandEnd {
    match executor.run_preview1(module, wasi).await {
        Ok(invoked) => CommandEnd { code: 0, account: Some(invoked.account) },
        Err(e) => CommandEnd { code: exit_code(&e), account: e.account() },
    }
}

/// The exit code for an invocation that did not return: `exit(n)` gives n, a trap or a
/// limit 134, anything else (no slot, instantiation) 1.
pub fn exit_code(error: &InvokeError) -> i32 {
    match error.failure() {
        Some(Failure::Exit(code)) => *code,
        Some(f) if f.limit().is_some() => TRAP_EXIT_CODE,
        Some(Failure::Trap(_)) => TRAP_EXIT_CODE,
        Some(_) | None => 1,
    }
}

/// Calls the exported function `call` names (`name(arg, ...)` in WAVE, as `wasmtime run
/// --invoke` takes it; `iface#name(...)` or `iface/name(...)` for one in an exported
/// interface) and returns its results as WAVE text, one per result.
pub async fn invoke(
    executor: &Executor,
    component: &Arc<PreparedComponent>,
    state: tessera_capabilities::InstanceState,
    call: &str,
) -> Result<std::result::Result<Invoked, InvokeError>> {
    let parsed = wasm_wave::untyped::UntypedFuncCall::parse(call)
        .map_err(|e| anyhow::anyhow!("cannot read `{call}` as a WAVE function call: {e}\n  hint: write it as 'name(arg1, arg2)', e.g. 'add(1, 2)' or 'greet(\"world\")'"))?;
    let name = parsed.name().to_string();
    let (interface, func_name) = split_export(&name);
    let ty = find_func(component, interface, func_name).map_err(|e| anyhow::anyhow!("component `{}` {e}", component.id()))?;
    let params: Vec<wasmtime::component::Type> = ty.params().map(|(_, t)| t).collect();
    let args: Vec<Val> = parsed
        .to_wasm_params::<Val>(params.iter())
        .map_err(|e| anyhow::anyhow!("the arguments of `{call}` do not fit `{name}`: {e}"))?;
    let results_len = ty.results().len();
    let (interface, func_name) = (interface.map(str::to_string), func_name.to_string());
    let outcome = executor
        .invoke_with_state(component, "invoke", state, move |store, instance| {
            Box::pin(async move {
                let func = lookup(&mut *store, &instance, interface.as_deref(), &func_name)?;
                let mut results = vec![Val::Bool(false); results_len];
                func.call_async(&mut *store, &args, &mut results).await?;
                Ok(results)
            })
        })
        .await;
    Ok(outcome.map(|invoked| Invoked {
        results: invoked.value.iter().map(|v| wasm_wave::to_string(v).unwrap_or_else(|e| format!("<{e}>"))).collect(),
        account: invoked.account,
    }))
}

/// The WAVE results of an `--invoke` call.
#[derive(Debug)]
pub struct Invoked {
    /// Each result as WAVE text.
    pub results: Vec<String>,
    /// What the call cost.
    pub account: Accounting,
}
