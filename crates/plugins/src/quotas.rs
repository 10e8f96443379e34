//! What one call may use (quotas, each with a default), what it used (metering), and why
//! it returned no value (a typed error naming the quota and its value).

use std::fmt;
use std::time::Duration;
use tessera_executor::{Accounting, Failure, InvokeError, Limit, LimitSettings, Rejected};

/// Limits on one call. [`Quotas::DEFAULT`] applies unless a plugin or a call sets its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quotas {
    /// Wasm instructions (fuel), instantiation included. Ignored when the host does not
    /// meter instructions ([`crate::HostOptions::meter_instructions`]).
    pub instructions: u64,
    /// Bytes of linear memory and tables the instance may hold, together. At most the
    /// host's [`crate::HostOptions::max_memory`].
    pub memory: u64,
    /// Wall-clock time, instantiation included; a guest spinning in a loop is stopped
    /// (within 10 ms of the deadline).
    pub timeout: Duration,
    /// Size of the result: its JSON text for typed calls, its WAVE text for dynamic ones.
    pub result_size: u64,
    /// Bytes of guest output (stdout and stderr together) kept; the rest is dropped and
    /// the call's logs say so. Not an error, as in Shopify's runner.
    pub log_size: u64,
}

impl Quotas {
    /// The defaults: 100M instructions, 64 MiB, 1 s, 1 MiB of result, 4 KiB of logs.
    pub const DEFAULT: Quotas = Quotas {
        instructions: 100_000_000,
        memory: 64 << 20,
        timeout: Duration::from_secs(1),
        result_size: 1 << 20,
        log_size: 4 << 10,
    };

    /// Shopify Functions' limits: 11M instructions, 20 KB of output, 1 KB of logs (with
    /// 64 MiB of memory and a 1 s wall-clock limit of our choosing).
    pub const SHOPIFY: Quotas = Quotas { instructions: 11_000_000, result_size: 20_000, log_size: 1_000, ..Quotas::DEFAULT };
}

impl Default for Quotas {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A quota a call can run into.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Quota {
    /// [`Quotas::instructions`].
    Fuel,
    /// [`Quotas::memory`].
    Memory,
    /// [`Quotas::timeout`] (the limit is in milliseconds).
    Timeout,
    /// [`Quotas::result_size`].
    ResultSize,
    /// The guest stack ([`crate::HostOptions::max_wasm_stack`]): deep recursion.
    Stack,
    /// Host resources (streams, fields, ...) held at once.
    Handles,
    /// The tenant's concurrent calls and waiting line ([`crate::TenantLimits`]).
    Concurrency,
}

impl Quota {
    /// The quota's name in JSON and messages: `fuel`, `memory`, `timeout`, `result_size`,
    /// `stack`, `handles`, `concurrency`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fuel => "fuel",
            Self::Memory => "memory",
            Self::Timeout => "timeout",
            Self::ResultSize => "result_size",
            Self::Stack => "stack",
            Self::Handles => "handles",
            Self::Concurrency => "concurrency",
        }
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What one call used, returned with its result (and with most errors).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Metering {
    /// Wasm instructions executed (fuel), instantiation included; `None` when the host
    /// does not meter instructions.
    pub instructions: Option<u64>,
    /// The most bytes of linear memory and tables the instance held.
    pub peak_memory_bytes: u64,
    /// Wall-clock time from admission to the end.
    pub wall: Duration,
    /// Time on a thread: guest code and the host calls it made, not waits for I/O.
    pub cpu: Duration,
}

impl From<Accounting> for Metering {
    fn from(a: Accounting) -> Self {
        Self { instructions: a.fuel_used, peak_memory_bytes: a.peak_memory, wall: a.wall, cpu: a.cpu }
    }
}

impl fmt::Display for Metering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(n) = self.instructions {
            write!(f, "instructions: {n}, ")?;
        }
        write!(
            f,
            "peak memory: {} bytes, wall: {:.3} ms, cpu: {:.3} ms",
            self.peak_memory_bytes,
            self.wall.as_secs_f64() * 1e3,
            self.cpu.as_secs_f64() * 1e3
        )
    }
}

/// Why a call returned no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It ran into a quota.
    Quota {
        /// Which.
        quota: Quota,
        /// Its value (bytes, instructions, milliseconds, or concurrent calls).
        limit: u64,
    },
    /// The guest trapped (or a host function failed).
    Trap,
    /// The guest called `exit` with this code.
    Exit(i32),
    /// The plugin could not be instantiated (its start code failed).
    Instantiation,
    /// Cancelled through its [`crate::CancellationToken`].
    Cancelled,
    /// The call itself is wrong: no such export, arguments of the wrong type.
    BadCall,
}

/// A call that returned no value: why, in words, what it used until then and its logs.
#[derive(Debug)]
pub struct CallError {
    /// Why, typed.
    pub reason: Reason,
    /// What happened, for people (with the guest backtrace for traps).
    pub message: String,
    /// What it used until it stopped (`None` when it never ran).
    pub metering: Option<Metering>,
    /// What the guest printed until then.
    pub logs: crate::Logs,
}

impl CallError {
    /// The quota hit, if that is why.
    pub fn quota(&self) -> Option<(Quota, u64)> {
        match self.reason {
            Reason::Quota { quota, limit } => Some((quota, limit)),
            _ => None,
        }
    }

    pub(crate) fn bad_call(message: impl Into<String>) -> Self {
        Self { reason: Reason::BadCall, message: message.into(), metering: None, logs: crate::Logs::default() }
    }

    pub(crate) fn from_invoke(error: InvokeError, plugin: &str, tenant: &crate::Tenant, quotas: &Quotas, logs: crate::Logs) -> Self {
        let metering = error.account().map(Metering::from);
        let (reason, message) = match &error {
            InvokeError::Busy(rejected) => {
                let limits = tenant.limits();
                let why = match rejected {
                    Rejected::QueueFull => format!("{} calls are waiting already", limits.max_queued),
                    Rejected::Timeout => format!("no call ended within the queue timeout of {:?}", limits.queue_timeout),
                };
                (
                    Reason::Quota { quota: Quota::Concurrency, limit: limits.max_concurrent as u64 },
                    format!("tenant `{}` runs {} calls at once and {why}: call later, or raise TenantLimits", tenant.name(), limits.max_concurrent),
                )
            }
            InvokeError::Failed { failure, .. } => {
                let reason = match failure {
                    Failure::Timeout { limit } => Reason::Quota { quota: Quota::Timeout, limit: limit.as_millis() as u64 },
                    Failure::Memory { limit, .. } => Reason::Quota { quota: Quota::Memory, limit: *limit },
                    Failure::TableElements { .. } => Reason::Quota { quota: Quota::Memory, limit: quotas.memory },
                    Failure::StackOverflow { limit, .. } => Reason::Quota { quota: Quota::Stack, limit: *limit },
                    Failure::Handles { limit, .. } => Reason::Quota { quota: Quota::Handles, limit: *limit as u64 },
                    Failure::Fuel { budget, .. } => Reason::Quota { quota: Quota::Fuel, limit: *budget },
                    Failure::Exit(code) => Reason::Exit(*code),
                    Failure::Instantiation(_) => Reason::Instantiation,
                    Failure::Trap(_) => Reason::Trap,
                };
                (reason, failure.describe(plugin, &QUOTA_NAMES))
            }
        };
        Self { reason, message, metering, logs }
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for CallError {}

/// How the executor's log lines name the quotas.
pub(crate) const QUOTA_NAMES: LimitSettings = LimitSettings {
    name: |limit| match limit {
        Limit::Memory => "the memory quota",
        Limit::Timeout => "the timeout quota",
        Limit::Stack => "the guest stack",
        Limit::Handles => "the host-resource limit",
        Limit::Fuel => "the instruction quota",
    },
    advice: |limit, _| match limit {
        Limit::Stack => "raise HostOptions::max_wasm_stack".into(),
        Limit::Handles => "a fixed limit".into(),
        _ => "raise it in the plugin's or the call's Quotas".into(),
    },
};
