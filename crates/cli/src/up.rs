//! `tessera up`: load an app and run its triggers (HTTP, Redis, cron; a command app runs
//! once), draining in-flight work on SIGTERM or SIGINT.

use anyhow::{Context as _, Result};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use tessera_app::{LoadOptions, LoadedApp};
use tessera_engine::{CompileCache, Engine};
use tessera_host::AppHost;
use tessera_manifest::{Manifest, RuntimeConfig, find_manifest};

/// Arguments of `tessera up` (the same flags as `spin up`, plus Tessera's own).
#[derive(clap::Args)]
pub struct UpArgs {
    /// The app's manifest, a directory holding spin.toml (or tessera.toml), a bare
    /// wasi:http component (served on `/...` with nothing granted), or a registry
    /// reference (REGISTRY/REPOSITORY:TAG), pulled first.
    #[arg(short = 'f', long = "from", value_name = "FILE_OR_DIR_OR_REF", default_value = ".")]
    pub from: PathBuf,
    /// A registry reference to run, even if a local path has the same name.
    #[arg(long, value_name = "REF", conflicts_with = "from")]
    pub from_registry: Option<String>,
    #[command(flatten)]
    pub registry: crate::registry::Connection,
    /// The address to serve HTTP on (HOST:PORT, host names allowed); port 0 picks a free port.
    #[arg(long, value_name = "ADDR", env = "SPIN_HTTP_LISTEN_ADDR", default_value = "127.0.0.1:3000")]
    pub listen: String,
    /// Runtime config: state and log locations, limits (see the README).
    #[arg(long, value_name = "FILE")]
    pub runtime_config_file: Option<PathBuf>,
    /// Run `tessera build` first.
    #[arg(long)]
    pub build: bool,
    /// Where guest output is logged (default: .spin/logs beside the manifest).
    #[arg(long, value_name = "DIR")]
    pub log_dir: Option<PathBuf>,
    /// Where compiled components are cached (default: ~/.cache/tessera/components).
    #[arg(long, value_name = "DIR", env = "TESSERA_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile every component again instead of using the compile cache.
    #[arg(long)]
    pub no_cache: bool,
    /// Serve Prometheus metrics on this address (GET /metrics), per component: requests by
    /// status, latency, guest CPU, peak memory, slot waits, limits hit.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,
    /// Arguments for a `[[trigger.command]]` app (after `--`); argv[0] is the component id.
    #[arg(last = true, value_name = "ARGS")]
    pub args: Vec<String>,
}

pub fn run(args: UpArgs) -> Result<ExitCode> {
    let reference = args
        .from_registry
        .clone()
        .or_else(|| crate::registry::looks_like_reference(&args.from).then(|| args.from.to_string_lossy().into_owned()));
    if args.build && reference.is_some() {
        anyhow::bail!("--build builds local sources; an app from a registry is already built");
    }
    let mut artifact_signed_by = None;
    let manifest_path = match &reference {
        Some(r) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let pulled = runtime.block_on(crate::registry::pull(r, &args.registry))?;
            artifact_signed_by = runtime.block_on(artifact_trust(r, &pulled.digest, args.runtime_config_file.as_deref(), &args.registry))?;
            pulled.manifest
        }
        None => find_manifest(&args.from)?,
    };
    let manifest = if tessera_manifest::is_component_file(&manifest_path) {
        anyhow::ensure!(!args.build, "--build needs an app's spin.toml; {} is a component already", manifest_path.display());
        Manifest::for_component(&manifest_path)
    } else {
        Manifest::from_file(&manifest_path)?
    };
    if args.build {
        crate::build::build_all(&manifest)?;
    }
    let app = LoadedApp::from_manifest(
        manifest,
        &LoadOptions {
            runtime_config_file: args.runtime_config_file.clone(),
            runtime_config: None,
            log_dir: args.log_dir.clone(),
            // A pulled app's directory is a shared, immutable cache entry: its state goes
            // to .spin in the current directory, as for an app run from there.
            state_dir: reference.as_ref().map(|_| PathBuf::from(".spin")),
            fetcher: Some(Arc::new(tessera_registry::SourceCache::new(args.registry.options()))),
            artifact_signed_by,
            variables: None,
        },
    )?;
    app.create_dirs()?;
    let rc = &app.runtime_config;
    let cache_dir = if args.no_cache { None } else { args.cache_dir.clone().or_else(CompileCache::default_dir) };
    let settings = tessera_host::engine_settings(&app, cache_dir);
    raise_open_file_limit(rc.max_connections);
    let shutdown_timeout = rc.shutdown_timeout;
    let engine = Engine::new(&settings)?;
    let metrics = args.metrics.as_ref().map(|_| Arc::new(tessera_executor::metrics::Metrics::default()));
    let options = tessera_executor::ExecutorOptions { metrics: metrics.as_ref().map(|m| m.for_app(&app.manifest.application.name)), ..Default::default() };
    let host = AppHost::load_with(&engine, Arc::new(app), options)?;
    host.log_loads();

    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let runtime = host.runtime(threads)?;
    if host.is_command() {
        let code = runtime.block_on(host.run_command(&args.args))?;
        return Ok(ExitCode::from(code.clamp(0, 255) as u8));
    }
    anyhow::ensure!(
        args.args.is_empty(),
        "arguments after `--` are for an app with a [[trigger.command]]; this app has none\n  hint: remove them"
    );
    let listener = match host.http() {
        Some(_) => {
            let _tokio = runtime.enter();
            Some(listen(&args.listen)?)
        }
        None => None,
    };
    let addr = listener.as_ref().and_then(|l| l.local_addr().ok());
    if let (Some(address), Some(metrics)) = (&args.metrics, metrics) {
        let _tokio = runtime.enter();
        let listener = tokio::net::TcpListener::from_std(listen(address).context("the metrics address (--metrics)")?)?;
        println!("Metrics on http://{}/metrics", listener.local_addr()?);
        runtime.spawn(tessera_host::admin::serve_metrics(metrics, listener));
    }
    let code = host.serve_until_signal(&runtime, listener, threads, shutdown_timeout, |host| print_triggers(host, addr))?;
    Ok(ExitCode::from(code))
}

/// Under a `[trust]` policy, the trusted key whose signature on the pulled artifact
/// verifies; without one each component must carry its own signature.
async fn artifact_trust(reference: &str, digest: &str, runtime_config: Option<&Path>, connection: &crate::registry::Connection) -> Result<Option<String>> {
    let Some(path) = runtime_config else { return Ok(None) };
    let Some(table) = RuntimeConfig::from_file(path)?.trust else { return Ok(None) };
    let policy = tessera_signing::TrustPolicy::from_table(&table)?;
    let reference = tessera_registry::parse_reference(reference)?;
    let pinned = tessera_registry::parse_reference(&format!("{}/{}@{digest}", reference.registry(), reference.repository()))?;
    match tessera_registry::verify_artifact(&pinned, &policy.keys, &connection.options()).await {
        Ok(signed) => {
            tracing::info!("artifact {reference}@{digest} is signed by trusted key {}", signed.key);
            Ok(Some(signed.key))
        }
        Err(e) => {
            tracing::warn!("artifact signature not accepted ({e:#}); each component must carry its own trusted signature");
            Ok(None)
        }
    }
}

/// Raises the soft limit on open files to the hard limit, so `max_connections` clients can
/// be served; warns when even that is too low.
fn raise_open_file_limit(max_connections: usize) {
    // Files the host itself keeps open: logs, databases, the compile cache, listeners.
    const OWN_FILES: u64 = 256;
    let wanted = max_connections as u64 + OWN_FILES;
    match rlimit::increase_nofile_limit(wanted) {
        Ok(got) if got < wanted => tracing::warn!(
            "the open-file limit is {got}, below max_connections ({max_connections}) + {OWN_FILES}; connections past it are refused by the system (raise `ulimit -n` or lower max_connections)"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!("cannot raise the open-file limit: {e}"),
    }
}

/// Listens on `address` (`HOST:PORT`, the host a name or an IP), as `--listen` and
/// `SPIN_HTTP_LISTEN_ADDR` give it.
pub(crate) fn listen(address: &str) -> Result<std::net::TcpListener> {
    let hint = "hint: is another server using it? pick another address with --listen or SPIN_HTTP_LISTEN_ADDR (port 0 picks a free one)";
    let addrs: Vec<SocketAddr> = std::net::ToSocketAddrs::to_socket_addrs(address)
        .with_context(|| format!("cannot use `{address}` as the listen address\n  hint: write HOST:PORT, e.g. 127.0.0.1:3000, localhost:3000 or 0.0.0.0:80"))?
        .collect();
    // A name may resolve to IPv6 and IPv4 addresses; IPv4 first, as clients try it.
    let addr = addrs.iter().find(|a| a.is_ipv4()).or(addrs.first()).copied().with_context(|| format!("`{address}` resolves to no address"))?;
    bind(addr).with_context(|| format!("cannot listen on {addr} (from `{address}`)\n  {hint}"))
}

/// A listening socket with a backlog deep enough for thousands of clients connecting at
/// once (std's default of 128 makes a burst wait for SYN retries, seconds each).
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)?.into_std()
}

/// Connections the kernel queues before `accept` (capped by net.core.somaxconn).
const LISTEN_BACKLOG: u32 = 8192;

fn print_triggers(host: &AppHost, addr: Option<SocketAddr>) {
    let mut out = std::io::stdout().lock();
    if let (Some(http), Some(addr)) = (host.http(), addr) {
        let _ = writeln!(out, "Serving http://{addr}");
        let _ = writeln!(out, "Available Routes:");
        for r in http.routes() {
            let wildcard = if r.wildcard { " (wildcard)" } else { "" };
            let _ = writeln!(out, "  {}: http://{addr}{}{wildcard}", r.label, r.path);
        }
    }
    let subscriptions = host.redis_subscriptions();
    if !subscriptions.is_empty() {
        let _ = writeln!(out, "Redis channels:");
        for (address, channel, components) in subscriptions {
            let _ = writeln!(out, "  {address}/{channel}: [{}]", components.join(","));
        }
    }
    let topics = host.mqtt_subscriptions();
    if !topics.is_empty() {
        let _ = writeln!(out, "MQTT topics:");
        for (broker, filter, component) in topics {
            let _ = writeln!(out, "  {broker} {filter}: [{component}]");
        }
    }
    let subjects = host.messaging_subscriptions();
    if !subjects.is_empty() {
        let _ = writeln!(out, "Messaging subjects:");
        for (broker, subject, component) in subjects {
            let _ = writeln!(out, "  {broker} {subject}: [{component}]");
        }
    }
    let schedules = host.cron_schedules();
    if !schedules.is_empty() {
        let _ = writeln!(out, "Cron jobs (UTC):");
        for (id, expression, component) in schedules {
            let _ = writeln!(out, "  {id}: \"{expression}\" -> {component}");
        }
    }
    let _ = out.flush();
}
