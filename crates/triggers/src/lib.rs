//! Tessera's entry points beyond HTTP, each a thin client of the executor: commands
//! (`tessera run`, `[[trigger.command]]`), Redis messages (`[[trigger.redis]]`), MQTT
//! messages (`[[trigger.mqtt]]`) and cron ticks (`[[trigger.cron]]`).
#![deny(missing_docs)]

pub mod command;
pub mod cron;
pub mod mqtt;
pub mod redis;

use tessera_executor::Accounting;

/// What an invocation cost, for a message's or tick's outcome line: ` cpu=0.31ms
/// peak_memory=1088KiB` (nothing when it never ran).
pub(crate) fn cost(account: Option<Accounting>) -> String {
    match account {
        Some(a) => format!(" cpu={:.2}ms peak_memory={}KiB", a.cpu.as_secs_f64() * 1000.0, a.peak_memory / 1024),
        None => String::new(),
    }
}
