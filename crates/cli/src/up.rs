//! `tessera up`: load an app and serve its HTTP routes.

use anyhow::{Context as _, Result};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tessera_app::{LoadOptions, LoadedApp};
use tessera_engine::{CompileCache, CompiledFrom, Engine, EngineSettings};
use tessera_manifest::{Manifest, RuntimeConfig, find_manifest};
use tessera_trigger_http::HttpTrigger;

/// Arguments of `tessera up` (the same flags as `spin up`, plus Tessera's own).
#[derive(clap::Args)]
pub struct UpArgs {
    /// The app's manifest, a directory holding spin.toml (or tessera.toml), or a registry
    /// reference (REGISTRY/REPOSITORY:TAG), pulled first.
    #[arg(short = 'f', long = "from", value_name = "FILE_OR_DIR_OR_REF", default_value = ".")]
    pub from: PathBuf,
    /// A registry reference to run, even if a local path has the same name.
    #[arg(long, value_name = "REF", conflicts_with = "from")]
    pub from_registry: Option<String>,
    #[command(flatten)]
    pub registry: crate::registry::Connection,
    /// The address to serve on; use port 0 for any free port.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    pub listen: SocketAddr,
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
}

pub fn run(args: UpArgs) -> Result<()> {
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
    if args.build {
        crate::build::build_all(&Manifest::from_file(&manifest_path)?)?;
    }
    let app = LoadedApp::load(
        &manifest_path,
        &LoadOptions {
            runtime_config_file: args.runtime_config_file.clone(),
            log_dir: args.log_dir.clone(),
            // A pulled app's directory is a shared, immutable cache entry: its state goes
            // to .spin in the current directory, as for an app run from there.
            state_dir: reference.as_ref().map(|_| PathBuf::from(".spin")),
            fetcher: Some(Arc::new(tessera_registry::SourceCache::new(args.registry.options()))),
            artifact_signed_by,
        },
    )?;
    app.create_dirs()?;
    let rc = &app.runtime_config;
    let largest_memory = app
        .components
        .values()
        .map(|c| c.limits.max_instance_memory)
        .max()
        .unwrap_or(rc.limits.max_instance_memory);
    let settings = EngineSettings {
        // Room for instances still finishing (a 504's grace period) after their slot
        // was handed on.
        max_instances: (rc.max_concurrent_requests + (rc.max_concurrent_requests / 8).max(16)).min(u32::MAX as usize) as u32,
        max_instance_memory: largest_memory,
        cache_dir: if args.no_cache { None } else { args.cache_dir.clone().or_else(CompileCache::default_dir) },
        max_wasm_stack: rc.max_wasm_stack as usize,
    };
    raise_open_file_limit(rc.max_connections);
    let engine = Engine::new(&settings)?;
    let trigger = Arc::new(HttpTrigger::new(&engine, &app)?);
    for load in trigger.load_reports() {
        let how = match load.from {
            CompiledFrom::Cache => "loaded from the compile cache",
            CompiledFrom::Source => "compiled",
        };
        tracing::info!(
            "component `{}` ({:.1} MB) {how} in {:.1} ms",
            load.id,
            load.size as f64 / 1e6,
            load.elapsed.as_secs_f64() * 1000.0
        );
    }

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let listener = {
        let _tokio = runtime.enter();
        listen(args.listen).with_context(|| {
            format!(
                "cannot listen on {}\n  hint: is another server using it? pick another address with --listen (port 0 picks a free one)",
                args.listen
            )
        })?
    };
    let addr = listener.local_addr()?;
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    trigger.clone().serve_per_thread(listener, threads)?;
    print_routes(&trigger, addr);

    // Ctrl-C, and SIGTERM as Kubernetes and systemd send it, stop the host cleanly.
    runtime.block_on(async move {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot listen for SIGTERM")?;
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = terminate.recv() => {}
        }
        println!("Shutting down");
        Ok(())
    })
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

/// A listening socket with a backlog deep enough for thousands of clients connecting at
/// once (std's default of 128 makes a burst wait for SYN retries, seconds each).
fn listen(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    let socket = if addr.is_ipv4() { tokio::net::TcpSocket::new_v4()? } else { tokio::net::TcpSocket::new_v6()? };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)?.into_std()
}

/// Connections the kernel queues before `accept` (capped by net.core.somaxconn).
const LISTEN_BACKLOG: u32 = 8192;

fn print_routes(trigger: &HttpTrigger, addr: SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Serving http://{addr}");
    let _ = writeln!(out, "Available Routes:");
    for r in trigger.routes() {
        let wildcard = if r.wildcard { " (wildcard)" } else { "" };
        let _ = writeln!(out, "  {}: http://{addr}{}{wildcard}", r.label, r.path);
    }
    let _ = out.flush();
}
