//! Tessera's entry points beyond HTTP, each a thin client of the executor: commands
//! (`tessera run`, `[[trigger.command]]`), Redis messages (`[[trigger.redis]]`) and cron
//! ticks (`[[trigger.cron]]`).
#![deny(missing_docs)]

pub mod command;
pub mod cron;
pub mod redis;
