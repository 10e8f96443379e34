//! Why an instance ended badly, as a typed value every entry point maps its own way (HTTP
//! 500/504, a logged Redis or cron failure, an exit code for `tessera run`). Nothing here
//! looks at error message text.

use std::fmt;
use std::time::Duration;
use tessera_engine::LimitHit;
use wasmtime::component::ResourceTableError;

/// A limit an instance can run into, for naming the setting that raises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// Memories and tables together (`max_instance_memory`, `--max-memory`).
    Memory,
    /// Wall-clock time (`request_timeout`, `--timeout`).
    Timeout,
    /// Guest stack (`max_wasm_stack`, `--max-wasm-stack`).
    Stack,
    /// Host resources held at once (`max_resource_handles`).
    Handles,
    /// Instruction budget (`--fuel`).
    Fuel,
}

/// How an entry point names its limits in log lines: the setting as users write it, and
/// where to raise it.
#[derive(Debug, Clone, Copy)]
pub struct LimitSettings {
    /// The setting's name (`max_instance_memory`, `--max-memory`).
    pub name: fn(Limit) -> &'static str,
    /// How to raise it for a component (`raise it in the runtime config, ...`).
    pub advice: fn(Limit, &str) -> String,
}

/// The runtime-config keys, as `tessera up` names them.
pub const RUNTIME_CONFIG_LIMITS: LimitSettings = LimitSettings {
    name: |limit| match limit {
        Limit::Memory => "max_instance_memory",
        Limit::Timeout => "request_timeout",
        Limit::Stack => "max_wasm_stack",
        Limit::Handles => "max_resource_handles",
        Limit::Fuel => "the instruction budget",
    },
    advice: |limit, component| match limit {
        Limit::Stack => "raise max_wasm_stack in the runtime config".into(),
        Limit::Fuel => "raise the instruction budget".into(),
        other => format!("raise {} in the runtime config, globally or under [component.{component}]", (RUNTIME_CONFIG_LIMITS.name)(other)),
    },
};

/// Why an invocation failed.
#[derive(Debug)]
pub enum Failure {
    /// Ran past its time limit and was stopped.
    Timeout {
        /// The limit.
        limit: Duration,
    },
    /// Memories and tables together would have exceeded the memory limit.
    Memory {
        /// The limit in bytes.
        limit: u64,
        /// What the instance asked to hold in total.
        requested: u64,
        /// The trap or error it ended with, with its guest backtrace.
        cause: wasmtime::Error,
    },
    /// A table would have grown past the most elements a table may hold.
    TableElements {
        /// The most elements a table may hold.
        limit: usize,
        /// The trap or error it ended with.
        cause: wasmtime::Error,
    },
    /// Recursion deeper than the guest stack allows.
    StackOverflow {
        /// The stack limit in bytes.
        limit: u64,
        /// The trap, with its guest backtrace.
        cause: wasmtime::Error,
    },
    /// More host resources (fields, streams, pollables, ...) held at once than allowed.
    Handles {
        /// The limit.
        limit: usize,
        /// The error it ended with.
        cause: wasmtime::Error,
    },
    /// The instruction budget ran out.
    Fuel {
        /// The budget.
        budget: u64,
        /// The trap, with its guest backtrace.
        cause: wasmtime::Error,
    },
    /// The guest called WASI `exit` with a non-zero code.
    Exit(i32),
    /// The component could not be instantiated.
    Instantiation(wasmtime::Error),
    /// A trap, or an error the guest or a host call ended with; its Debug form has the
    /// guest backtrace.
    Trap(wasmtime::Error),
}

/// What classification needs beside the error: the instance's limits.
#[derive(Debug, Clone, Copy)]
pub struct LimitsInForce {
    /// Wall-clock limit.
    pub timeout: Duration,
    /// Guest stack in bytes.
    pub max_wasm_stack: u64,
    /// Instruction budget, when metered.
    pub fuel: Option<u64>,
}

impl Failure {
    /// Classifies how an instance ended with `error`. `timed_out` says the caller stopped
    /// it at its deadline.
    /// `hit` is the limit the instance's memory accounting recorded, `max_handles` its
    /// host-resource limit.
    pub fn classify(error: wasmtime::Error, hit: Option<LimitHit>, max_handles: usize, limits: &LimitsInForce, timed_out: bool) -> Self {
        if timed_out {
            return Self::Timeout { limit: limits.timeout };
        }
        match hit {
            Some(LimitHit::Memory { limit, requested }) => return Self::Memory { limit, requested, cause: error },
            Some(LimitHit::TableElements { limit }) => return Self::TableElements { limit, cause: error },
            None => {}
        }
        if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
            return Self::Exit(exit.0);
        }
        match error.downcast_ref::<wasmtime::Trap>() {
            Some(wasmtime::Trap::StackOverflow) => return Self::StackOverflow { limit: limits.max_wasm_stack, cause: error },
            Some(wasmtime::Trap::OutOfFuel) => return Self::Fuel { budget: limits.fuel.unwrap_or(0), cause: error },
            _ => {}
        }
        let table_full = error
            .chain()
            .any(|cause| matches!(cause.downcast_ref::<ResourceTableError>(), Some(ResourceTableError::Full)));
        if table_full {
            return Self::Handles { limit: max_handles, cause: error };
        }
        Self::Trap(error)
    }

    /// The limit this failure ran into, if it is one.
    pub fn limit(&self) -> Option<Limit> {
        match self {
            Self::Timeout { .. } => Some(Limit::Timeout),
            Self::Memory { .. } | Self::TableElements { .. } => Some(Limit::Memory),
            Self::StackOverflow { .. } => Some(Limit::Stack),
            Self::Handles { .. } => Some(Limit::Handles),
            Self::Fuel { .. } => Some(Limit::Fuel),
            Self::Exit(_) | Self::Instantiation(_) | Self::Trap(_) => None,
        }
    }

    /// A whole log line for component `component`: what happened, the setting with its
    /// value, and how to raise it; the guest backtrace for traps.
    pub fn describe(&self, component: &str, settings: &LimitSettings) -> String {
        let name = settings.name;
        let advice = |limit| (settings.advice)(limit, component);
        match self {
            Self::Timeout { limit } => format!(
                "component `{component}` ran past {} ({limit:?}) and was stopped ({})",
                name(Limit::Timeout),
                advice(Limit::Timeout)
            ),
            Self::Memory { limit, requested, cause } => format!(
                "component `{component}` hit its memory limit: it asked for {requested} bytes of memory and tables, {} is {limit} ({}): {cause:?}",
                name(Limit::Memory),
                advice(Limit::Memory)
            ),
            Self::TableElements { limit, cause } => format!(
                "component `{component}` grew a table past {limit} elements, the most a table may hold (a fixed engine limit; tables also count against {}): {cause:?}",
                name(Limit::Memory)
            ),
            Self::StackOverflow { limit, cause } => format!(
                "component `{component}` overflowed its stack: {} is {limit} bytes ({}): {cause:?}",
                name(Limit::Stack),
                advice(Limit::Stack)
            ),
            Self::Handles { limit, cause } => format!(
                "component `{component}` held more than {} ({limit}) host resources (fields, streams, pollables, ...) at once and was stopped ({}): {cause:?}",
                name(Limit::Handles),
                advice(Limit::Handles)
            ),
            Self::Fuel { budget, cause } => format!(
                "component `{component}` used up its instruction budget: {} is {budget} ({}): {cause:?}",
                name(Limit::Fuel),
                advice(Limit::Fuel)
            ),
            Self::Exit(code) => format!("component `{component}` exited with code {code}"),
            Self::Instantiation(e) => format!("component `{component}` could not be instantiated: {e:?}"),
            Self::Trap(e) => format!("component `{component}` failed: {e:?}"),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout { limit } => write!(f, "timed out after {limit:?}"),
            Self::Memory { limit, requested, .. } => write!(f, "memory limit: asked for {requested} bytes, the limit is {limit}"),
            Self::TableElements { limit, .. } => write!(f, "a table grew past {limit} elements"),
            Self::StackOverflow { limit, .. } => write!(f, "stack overflow (limit {limit} bytes)"),
            Self::Handles { limit, .. } => write!(f, "more than {limit} host resources at once"),
            Self::Fuel { budget, .. } => write!(f, "instruction budget of {budget} used up"),
            Self::Exit(code) => write!(f, "exited with code {code}"),
            Self::Instantiation(e) => write!(f, "instantiation failed: {e}"),
            Self::Trap(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Failure {}
