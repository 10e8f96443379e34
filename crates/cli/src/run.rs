//! `tessera run`: run a `wasi:cli/command` component (WASI 0.2 or 0.3) or a WASI preview 1
//! module (natively, as `wasmtime run` does) once, on the same executor and compile cache
//! as `up`, deny by default and with limits.

use anyhow::{Context as _, Result, bail};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;
use tessera_capabilities::network::{NameLookups, SocketGrants};
use tessera_app::{LoadOptions, LoadedApp};
use tessera_engine::{CompileCache, Engine, EngineSettings};
use tessera_executor::{Executor, ExecutorOptions, Limit, LimitSettings};
use tessera_manifest::allowed_hosts::{AllowedHost, AllowedHosts};
use tessera_manifest::template::Template;
use tessera_manifest::{Location, Manifest, RuntimeConfig, parse_duration, parse_size};
use tessera_triggers::command;
use wasmtime_wasi::{FsPerms, WasiCtxBuilder};

/// Arguments of `tessera run` (`wasmtime run`'s, plus read-only dirs, an outbound
/// allow-list and limits).
#[derive(clap::Args)]
#[command(trailing_var_arg = true)]
#[command(after_help = "Examples:\n  tessera run tool.wasm --dir .::/work -- --input /work/data.txt\n  tessera run lib.wasm --invoke 'add(1, 2)'\n  tessera run fetch.wasm --allow-outbound https://api.example.com --timeout 5s")]
pub struct RunArgs {
    /// The component (`wasi:cli/run`) or WASI preview 1 module (`_start`) to run.
    #[arg(value_name = "COMPONENT.wasm")]
    pub component: PathBuf,
    /// Arguments for the command; argv[0] is COMPONENT's file name.
    #[arg(value_name = "ARGS", allow_hyphen_values = true, num_args = 0..)]
    pub args: Vec<String>,
    /// Preopen a host directory at GUEST (default: the same path), read-only with `::ro`.
    #[arg(long = "dir", value_name = "HOST[::GUEST][::ro]")]
    pub dirs: Vec<String>,
    /// Set an environment variable; NAME alone passes the host's value.
    #[arg(long = "env", value_name = "NAME[=VALUE]")]
    pub envs: Vec<String>,
    /// Pass every host environment variable.
    #[arg(long)]
    pub inherit_env: bool,
    /// Allow outgoing HTTP and TCP/UDP sockets matching PATTERN (`allowed_outbound_hosts`
    /// syntax: `https://api.example.com`, `tcp://127.0.0.1:6379`, `*://*:*`); loopback and
    /// private addresses need a pattern that names them.
    #[arg(long = "allow-outbound", value_name = "PATTERN")]
    pub allow_outbound: Vec<String>,
    /// All of the host's network, private addresses and listening sockets included (as
    /// `wasmtime run -S inherit-network`); only for commands you trust.
    #[arg(long, conflicts_with = "allow_outbound")]
    pub inherit_network: bool,
    /// Memories and tables the instance may hold, together.
    #[arg(long, value_name = "SIZE", default_value = "1GiB", value_parser = parse_size)]
    pub max_memory: u64,
    /// Wall-clock limit (e.g. 30s, 5m); a guest spinning in a loop is stopped.
    #[arg(long, value_name = "DURATION", default_value = "none", value_parser = parse_limit)]
    pub timeout: OrNone<Duration>,
    /// Stack the guest may use; deeper recursion traps.
    #[arg(long, value_name = "SIZE", default_value = "512KiB", value_parser = parse_size)]
    pub max_wasm_stack: u64,
    /// Instruction budget (fuel); the run reports how much it used.
    #[arg(long, value_name = "INSTRUCTIONS", default_value = "none", value_parser = parse_count)]
    pub fuel: OrNone<u64>,
    /// Call one exported function instead of `wasi:cli/run`, WAVE-encoded: 'add(1, 2)'.
    #[arg(long, value_name = "CALL")]
    pub invoke: Option<String>,
    /// Where compiled components are cached (default: ~/.cache/tessera/components, as `up`).
    #[arg(long, value_name = "DIR", env = "TESSERA_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile again instead of using the compile cache.
    #[arg(long)]
    pub no_cache: bool,
}

/// A limit that may be `none` (clap reads `Option` fields as optional flags, hence a type).
#[derive(Debug, Clone, Copy)]
pub struct OrNone<T>(Option<T>);

fn parse_limit(s: &str) -> Result<OrNone<Duration>, String> {
    if s == "none" { Ok(OrNone(None)) } else { parse_duration(s).map(|d| OrNone(Some(d))) }
}

fn parse_count(s: &str) -> Result<OrNone<u64>, String> {
    if s == "none" {
        return Ok(OrNone(None));
    }
    s.replace('_', "").parse().map(|n| OrNone(Some(n))).map_err(|_| format!("`{s}` is not a whole number of instructions (or `none`)"))
}

/// `run`'s limits are its flags.
const FLAG_LIMITS: LimitSettings = LimitSettings {
    name: |limit| match limit {
        Limit::Memory => "--max-memory",
        Limit::Timeout => "--timeout",
        Limit::Stack => "--max-wasm-stack",
        Limit::Handles => "the host-resource limit",
        Limit::Fuel => "--fuel",
    },
    advice: |limit, _| match limit {
        Limit::Handles => format!("a fixed limit of {MAX_RESOURCE_HANDLES} for commands"),
        other => format!("raise it with {}", (FLAG_LIMITS.name)(other)),
    },
};

/// Most host resources (streams, fields, pollables, ...) a command may hold at once.
const MAX_RESOURCE_HANDLES: u32 = 4096;
/// Effectively no wall-clock limit.
const NO_TIMEOUT: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

pub fn run(args: RunArgs) -> Result<ExitCode> {
    let path = &args.component;
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let cache_dir = if args.no_cache { None } else { args.cache_dir.clone().or_else(CompileCache::default_dir) };
    // Guest output goes to the terminal, not to log files: nothing is kept.
    let scratch = tempfile::tempdir().context("cannot make a scratch directory")?;
    let mut manifest = Manifest::for_component(path);
    manifest.http_triggers.clear();
    let id = manifest.components.keys().next().expect("one component").clone();
    let component = manifest.components.get_mut(&id).expect("just made");
    let preview1 = tessera_engine::is_core_module(&bytes);
    if preview1 && args.invoke.is_some() {
        bail!("--invoke calls a component's exports; {} is a WASI preview 1 module (run it without --invoke)", path.display());
    }
    let patterns: Vec<String> = if args.inherit_network {
        // Every name, and every IPv4 address by network so private ones are named too.
        ["*://*:*", "*://0.0.0.0/0:*"].map(String::from).to_vec()
    } else {
        args.allow_outbound.clone()
    };
    let allowed = outbound_patterns(&patterns)?;
    for pattern in &patterns {
        let template = Template::parse(pattern).map_err(|e| anyhow::anyhow!("--allow-outbound {pattern}: {e}"))?;
        component.allowed_outbound_hosts.push((template, Location::default()));
    }

    let mut rc = RuntimeConfig::default();
    rc.limits.max_instance_memory = args.max_memory;
    rc.limits.request_timeout = args.timeout.0.unwrap_or(NO_TIMEOUT);
    rc.limits.max_resource_handles = MAX_RESOURCE_HANDLES;
    rc.max_wasm_stack = args.max_wasm_stack;
    rc.max_concurrent_requests = 1;
    let app = LoadedApp::from_manifest(
        manifest,
        &LoadOptions {
            runtime_config: Some(rc),
            state_dir: Some(scratch.path().to_path_buf()),
            log_dir: Some(scratch.path().to_path_buf()),
            ..LoadOptions::default()
        },
    )?;
    let engine = Engine::new(&EngineSettings {
        max_instances: 4,
        max_instance_memory: args.max_memory,
        cache_dir,
        max_wasm_stack: args.max_wasm_stack as usize,
        consume_fuel: args.fuel.0.is_some(),
    })?;
    let executor = Executor::new(&engine, Arc::new(app), ExecutorOptions { limits: FLAG_LIMITS, fuel: args.fuel.0, ..ExecutorOptions::default() })?;

    let mut wasi = WasiCtxBuilder::new();
    // argv[0] is the file name, as `wasmtime run` passes it.
    let argv0 = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| path.display().to_string());
    let argv: Vec<String> = std::iter::once(argv0).chain(args.args.iter().cloned()).collect();
    wasi.inherit_stdio().args(&argv);
    if args.inherit_env {
        wasi.inherit_env();
    }
    for env in &args.envs {
        // NAME alone passes the host's value, and nothing when the host has none.
        match env.split_once('=') {
            Some((name, value)) => {
                wasi.env(name, value);
            }
            None => {
                if let Ok(value) = std::env::var(env) {
                    wasi.env(env, value);
                }
            }
        }
    }
    for dir in &args.dirs {
        let (host, guest, perms) = parse_dir(dir)?;
        wasi.preopened_dir(&host, &guest, perms)
            .map_err(anyhow::Error::from)
            .with_context(|| format!("--dir {dir}: cannot open {}\n  hint: the host directory must exist", host.display()))?;
    }
    let name_lookups = if args.inherit_network {
        wasi.inherit_network().allow_tcp(true).allow_udp(true);
        Some(NameLookups::Any)
    } else {
        allowed.map(|allowed| allow_sockets(&mut wasi, allowed))
    };

    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    if preview1 {
        let module = executor.prepare_preview1(&id)?;
        let end = runtime.block_on(command::run_preview1(&executor, &module, wasi.build_p1()));
        report_fuel(args.fuel.0, end.account.and_then(|a| a.fuel_used));
        return Ok(exit(end.code));
    }
    let component = executor.prepare(&id)?;
    let mut state = component.capabilities().instance_with_wasi(wasi.build());
    state.name_lookups = name_lookups;
    match &args.invoke {
        Some(call) => {
            let outcome = runtime.block_on(command::invoke(&executor, &component, state, call))?;
            match outcome {
                Ok(invoked) => {
                    for result in &invoked.results {
                        println!("{result}");
                    }
                    report_fuel(args.fuel.0, invoked.account.fuel_used);
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    report_fuel(args.fuel.0, e.account().and_then(|a| a.fuel_used));
                    Ok(exit(command::exit_code(&e)))
                }
            }
        }
        None => {
            let end = runtime.block_on(command::run(&executor, &component, state))?;
            report_fuel(args.fuel.0, end.account.and_then(|a| a.fuel_used));
            Ok(exit(end.code))
        }
    }
}

fn exit(code: i32) -> ExitCode {
    // A Unix exit status is one byte, as `wasmtime run` gives it.
    ExitCode::from((code & 0xff) as u8)
}

fn report_fuel(budget: Option<u64>, used: Option<u64>) {
    if let (Some(budget), Some(used)) = (budget, used) {
        eprintln!("fuel: {used} of {budget} instructions used");
    }
}

/// `HOST[::GUEST][::ro]`.
fn parse_dir(spec: &str) -> Result<(PathBuf, String, FsPerms)> {
    let mut parts: Vec<&str> = spec.split("::").collect();
    let read_only = parts.len() > 1 && parts.last() == Some(&"ro");
    if read_only {
        parts.pop();
    }
    let (host, guest) = match parts.as_slice() {
        [host] => (*host, *host),
        [host, guest] => (*host, *guest),
        _ => bail!("--dir {spec}: write HOST, HOST::GUEST, HOST::ro or HOST::GUEST::ro"),
    };
    if host.is_empty() || guest.is_empty() {
        bail!("--dir {spec}: the host and guest paths must not be empty");
    }
    let host = PathBuf::from(host);
    if !host.is_dir() {
        bail!("--dir {spec}: {} is not a directory\n  hint: create it, or fix the path", host.display());
    }
    let perms = if read_only { FsPerms::ReadOnly } else { FsPerms::ReadWrite };
    Ok((host, guest.to_string(), perms))
}

/// Checks every `--allow-outbound` pattern; `None` when there is none.
fn outbound_patterns(patterns: &[String]) -> Result<Option<AllowedHosts>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    for p in patterns {
        AllowedHost::parse(p).map_err(|e| anyhow::anyhow!("--allow-outbound {p}: {e}"))?;
    }
    Ok(Some(AllowedHosts::parse(patterns).map_err(anyhow::Error::msg)?))
}

/// TCP and UDP for addresses the patterns allow (private ones only when named), as Spin
/// checks sockets, and lookups of the names they name; listening is refused.
fn allow_sockets(wasi: &mut WasiCtxBuilder, allowed: AllowedHosts) -> NameLookups {
    wasi.allow_tcp(true).allow_udp(true);
    let advice: tessera_capabilities::network::SocketAdvice = Arc::new(|target| format!("to allow it, add --allow-outbound {target}"));
    let grants = Arc::new(SocketGrants::new(Arc::new(allowed), Arc::from("the command"), advice));
    wasi.socket_addr_check(tessera_capabilities::network::socket_check(grants.clone()));
    NameLookups::Granted(grants)
}
