//! `tessera call`: try a plugin without writing a host. One call of one export, WAVE text
//! in and out (as `wasmtime run --invoke`), on tessera-plugins with its quotas as flags
//! and its metering on stderr (or one JSON object with `--json`).

use anyhow::{Context as _, Result, bail};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;
use tessera_manifest::{parse_duration, parse_size};
use tessera_plugins::{Call, CallError, Clocks, Grants, HostOptions, PluginHost, PluginOptions, PublicKey, Quotas, Reason, Source};

/// Arguments of `tessera call`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  tessera call rules.wasm 'evaluate(\"order-7\")'\n  tessera call ghcr.io/me/rules:v1 'score(3)' --fuel 1000000 --max-memory 16MiB")]
pub struct CallArgs {
    /// The plugin: a component file, or a registry reference (registry/repository:tag).
    #[arg(value_name = "COMPONENT")]
    pub component: String,
    /// The call in WAVE: 'name(arg, ...)', or 'iface#name(...)' for a function of an
    /// exported interface, e.g. 'add(1, 2)' or 'acme:discounts/rules#apply({total: 100})'.
    #[arg(value_name = "CALL")]
    pub call: String,
    /// Instruction quota (fuel).
    #[arg(long, value_name = "N", default_value_t = Quotas::DEFAULT.instructions, value_parser = parse_count)]
    pub fuel: u64,
    /// Memory quota: linear memories and tables together.
    #[arg(long, value_name = "SIZE", default_value = "64MiB", value_parser = parse_size)]
    pub max_memory: u64,
    /// Wall-clock quota; a loop is stopped.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Result quota: the size of the result's WAVE text.
    #[arg(long, value_name = "SIZE", default_value = "1MiB", value_parser = parse_size)]
    pub max_result_size: u64,
    /// Guest output kept (stdout and stderr, shown on stderr); the rest is dropped.
    #[arg(long, value_name = "SIZE", default_value = "4KiB", value_parser = parse_size)]
    pub max_log_size: u64,
    /// Print one JSON object on stdout: the result and the metering, or the error.
    #[arg(long)]
    pub json: bool,
    /// Grant an environment variable.
    #[arg(long = "env", value_name = "NAME=VALUE")]
    pub envs: Vec<String>,
    /// Grant a host directory, read-only, at GUEST (default: the same path).
    #[arg(long = "dir", value_name = "HOST[::GUEST]")]
    pub dirs: Vec<String>,
    /// Grant outbound HTTP to destinations matching PATTERN (`allowed_outbound_hosts`
    /// syntax: `https://api.example.com`).
    #[arg(long = "allow-outbound", value_name = "PATTERN")]
    pub allow_outbound: Vec<String>,
    /// The host's clocks instead of clocks fixed at the Unix epoch.
    #[arg(long)]
    pub real_clocks: bool,
    /// Refuse the plugin unless it is signed by this public key (repeatable).
    #[arg(long = "trust-key", value_name = "FILE")]
    pub trust_keys: Vec<PathBuf>,
    /// Pull over plain HTTP (a local registry).
    #[arg(long)]
    pub insecure: bool,
    /// Where compiled components are cached (default: ~/.cache/tessera/components).
    #[arg(long, value_name = "DIR", env = "TESSERA_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
}

fn parse_count(s: &str) -> Result<u64, String> {
    s.replace('_', "").parse().map_err(|_| format!("`{s}` is not a whole number of instructions"))
}

pub fn run(args: CallArgs) -> Result<ExitCode> {
    let quotas = Quotas {
        instructions: args.fuel,
        memory: args.max_memory,
        timeout: args.timeout,
        result_size: args.max_result_size,
        log_size: args.max_log_size,
    };
    let source = if Path::new(&args.component).exists() {
        Source::File(PathBuf::from(&args.component))
    } else if args.component.contains('/') && !args.component.ends_with(".wasm") {
        Source::Registry(args.component.clone())
    } else {
        bail!("{}: no such file (give a component file, or a registry reference such as localhost:5000/rules:1)", args.component);
    };
    let trusted_keys = if args.trust_keys.is_empty() {
        None
    } else {
        Some(args.trust_keys.iter().map(|k| PublicKey::from_file(k).with_context(|| format!("--trust-key {}", k.display()))).collect::<Result<Vec<_>>>()?)
    };
    let options = PluginOptions { quotas, grants: grants(&args)?, trusted_keys, ..PluginOptions::default() };
    let host = PluginHost::new(HostOptions {
        max_instances: 4,
        max_memory: args.max_memory,
        cache_dir: args.cache_dir.clone().or_else(tessera_engine::CompileCache::default_dir),
        registry: tessera_registry::RegistryOptions { insecure: args.insecure, cache_dir: None },
        ..HostOptions::default()
    })?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let outcome = runtime.block_on(async {
        let plugin = host.load(source, options).await?;
        anyhow::Ok(plugin.call_wave(Call::new(), &args.call).await)
    })?;
    match outcome {
        Ok(called) => {
            show_logs(&called.logs);
            let m = called.metering;
            if args.json {
                let result = called.value.first().cloned();
                let object = json!({
                    "result": result,
                    "instructions": m.instructions,
                    "peak_memory_bytes": m.peak_memory_bytes,
                    "wall_ms": m.wall.as_secs_f64() * 1e3,
                    "cpu_ms": m.cpu.as_secs_f64() * 1e3,
                });
                println!("{object}");
            } else {
                for result in &called.value {
                    println!("{result}");
                }
                eprintln!("{m}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            show_logs(&error.logs);
            let message = explain(&error);
            if args.json {
                let mut object = json!({ "kind": kind(&error.reason), "message": message });
                if let Some((quota, limit)) = error.quota() {
                    object["quota"] = json!(quota.name());
                    object["limit"] = json!(limit);
                }
                println!("{}", json!({ "error": object }));
            } else {
                eprintln!("Error: {message}");
                if let Some(m) = error.metering {
                    eprintln!("{m}");
                }
            }
            Ok(ExitCode::FAILURE)
        }
    }
}

/// What happened: for a quota, the flag that raises it; otherwise the library's message
/// (with the guest backtrace of a trap).
fn explain(error: &CallError) -> String {
    use tessera_plugins::Quota;
    match error.quota() {
        Some((Quota::Fuel, n)) => format!("the call used up its {n} instructions: raise --fuel"),
        Some((Quota::Memory, n)) => format!("the call needed more than {n} bytes of memory: raise --max-memory"),
        Some((Quota::Timeout, ms)) => format!("the call ran past {ms} ms and was stopped: raise --timeout"),
        Some((Quota::ResultSize, n)) => format!("the result is larger than {n} bytes: raise --max-result-size"),
        Some((Quota::Stack, n)) => format!("the call recursed past the {n}-byte guest stack"),
        _ => error.message.clone(),
    }
}

/// The guest's output on stderr, ending with a newline, and what was dropped.
fn show_logs(logs: &tessera_plugins::Logs) {
    eprint!("{}", logs.text);
    if !logs.text.is_empty() && !logs.text.ends_with('\n') {
        eprintln!();
    }
    if logs.dropped > 0 {
        eprintln!("[{} more bytes of output dropped: raise --max-log-size]", logs.dropped);
    }
}

fn kind(reason: &Reason) -> &'static str {
    match reason {
        Reason::Quota { .. } => "quota",
        Reason::Trap => "trap",
        Reason::Exit(_) => "exit",
        Reason::Instantiation => "instantiation",
        Reason::Cancelled => "cancelled",
        Reason::BadCall => "bad_call",
    }
}

fn grants(args: &CallArgs) -> Result<Grants> {
    let mut grants = Grants { clocks: if args.real_clocks { Clocks::Real } else { Clocks::default() }, ..Grants::default() };
    for env in &args.envs {
        let (name, value) = env.split_once('=').with_context(|| format!("--env {env}: write NAME=VALUE"))?;
        grants.environment.insert(name.into(), value.into());
    }
    for dir in &args.dirs {
        let (host, guest) = dir.split_once("::").unwrap_or((dir, dir));
        if !Path::new(host).is_dir() {
            bail!("--dir {dir}: {host} is not a directory");
        }
        grants.files.push((host.into(), guest.into()));
    }
    grants.allowed_outbound_hosts = args.allow_outbound.clone();
    Ok(grants)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        call: CallArgs,
    }

    #[test]
    fn the_flags_defaults_are_the_librarys() {
        let cli = Cli::parse_from(["tessera", "p.wasm", "f()"]);
        let a = cli.call;
        let flags = Quotas { instructions: a.fuel, memory: a.max_memory, timeout: a.timeout, result_size: a.max_result_size, log_size: a.max_log_size };
        assert_eq!(flags, Quotas::DEFAULT);
    }
}
