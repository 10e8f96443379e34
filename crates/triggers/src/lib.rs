//! Tessera's entry points beyond HTTP, each a thin client of the executor: commands
//! (`tessera run`, `[[trigger.command]]`), Redis messages (`[[trigger.redis]]`), MQTT
//! messages (`[[trigger.mqtt]]`), wasmCloud-style messages (`[[trigger.messaging]]`) and
//! cron ticks (`[[trigger.cron]]`).
#![deny(missing_docs)]

pub mod command;
pub mod cron;
pub mod messaging;
pub mod mqtt;
pub mod redis;

use tessera_executor::{Accounting, InvokeError, Invoked};

/// What an invocation cost, for a message's or tick's outcome line: ` cpu=0.31ms
/// peak_memory=1088KiB` (nothing when it never ran).
pub(crate) fn cost(account: Option<Accounting>) -> String {
    match account {
        Some(a) => format!(" cpu={:.2}ms peak_memory={}KiB", a.cpu.as_secs_f64() * 1000.0, a.peak_memory / 1024),
        None => String::new(),
    }
}

/// Logs the outcome of one message (`kind` is `redis`, `mqtt` or `messaging`, `source` its
/// channel, topic or subject), like an access-log line: `redis orders 42B ok 1.20ms component=worker cpu=...`.
pub(crate) fn log_message(kind: &str, source: &str, size: usize, started: std::time::Instant, component: &str, outcome: Result<Invoked<Result<(), String>>, InvokeError>) {
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    match outcome {
        Ok(invoked) => {
            let cost = cost(Some(invoked.account));
            match invoked.value {
                Ok(()) => tracing::info!(target: "tessera::access", "{kind} {source} {size}B ok {ms:.2}ms component={component}{cost}"),
                Err(e) => tracing::warn!(target: "tessera::access", "{kind} {source} {size}B handler-error({e}) {ms:.2}ms component={component}{cost}"),
            }
        }
        Err(InvokeError::Busy(why)) => tracing::warn!(
            target: "tessera::access",
            "{kind} {source} {size}B dropped ({}) {ms:.2}ms component={component} (raise max_concurrent_requests or max_queued_requests in the runtime config)",
            InvokeError::Busy(why)
        ),
        Err(e) => tracing::warn!(target: "tessera::access", "{kind} {source} {size}B failed ({e}) {ms:.2}ms component={component}{}", cost(e.account())),
    }
}
