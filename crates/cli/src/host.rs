//! `tessera host`: many apps in one process, routed by `Host` header and path prefix, as
//! the apps file lists them (reconciled again on SIGHUP).

use anyhow::{Context as _, Result};
use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;
use tessera_engine::CompileCache;
use tessera_host::{HostSettings, ManyApps, Reconciled};

/// Arguments of `tessera host`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  tessera host --apps apps.toml --listen 0.0.0.0:3000\n  kill -HUP <pid>    # apply changes to apps.toml and to the apps' files\n  TESSERA_ADMIN_TOKEN=$(openssl rand -hex 32) tessera host --admin 127.0.0.1:3001\n  curl -H \"Authorization: Bearer $TOKEN\" -X PUT --data-binary 'source = \"apps/shop\"' http://127.0.0.1:3001/v1/apps/shop")]
pub struct HostArgs {
    /// The apps to serve (see the README's `apps.toml`); read again on SIGHUP.
    #[arg(long, value_name = "FILE")]
    pub apps: Option<PathBuf>,
    /// Serve the admin API (deploy, list, inspect, update, undeploy) on this address; it
    /// needs a token (TESSERA_ADMIN_TOKEN or --admin-token-file).
    #[arg(long, value_name = "ADDR")]
    pub admin: Option<String>,
    /// A file holding the admin API's bearer token.
    #[arg(long, value_name = "FILE", conflicts_with = "admin_token")]
    pub admin_token_file: Option<PathBuf>,
    /// The admin API's bearer token.
    #[arg(long, env = "TESSERA_ADMIN_TOKEN", hide_env_values = true, hide = true)]
    pub admin_token: Option<String>,
    /// The address to serve every app's HTTP on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:3000")]
    pub listen: String,
    /// Where each app's state goes unless its entry says: DIR/<app name>.
    #[arg(long, value_name = "DIR", default_value = ".tessera-host")]
    pub state_dir: PathBuf,
    /// Instance slots of the whole host, split among the apps' quotas.
    #[arg(long, value_name = "N", default_value_t = 1024)]
    pub max_instances: usize,
    /// Instance slots of an app whose entry sets no quota.instances.
    #[arg(long, value_name = "N", default_value_t = 8)]
    pub app_instances: usize,
    /// The most memory any instance may have (a size such as 128MiB); quota.memory may lower it per app.
    #[arg(long, value_name = "SIZE", default_value = "128MiB", value_parser = parse_size)]
    pub max_instance_memory: u64,
    /// How long a replaced version, and every app at shutdown, may take to finish its work.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration)]
    pub shutdown_timeout: Duration,
    /// Where compiled components are cached (default: ~/.cache/tessera/components).
    #[arg(long, value_name = "DIR", env = "TESSERA_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Pull apps from registries over plain HTTP (a local registry).
    #[arg(long)]
    pub insecure: bool,
}

fn parse_size(s: &str) -> Result<u64, String> {
    tessera_manifest::parse_size(s).map_err(|e| e.to_string())
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    tessera_manifest::parse_duration(s).map_err(|e| e.to_string())
}

pub fn run(args: HostArgs) -> Result<ExitCode> {
    anyhow::ensure!(
        args.apps.is_some() || args.admin.is_some(),
        "nothing to serve\n  hint: give --apps FILE (an apps.toml) or --admin ADDR (deploy through the admin API), or both"
    );
    let token = admin_token(&args)?;
    let specs = match &args.apps {
        Some(path) => tessera_host::apps_file::read(path)?,
        None => Vec::new(),
    };
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("tessera-host")
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let host = ManyApps::new(HostSettings {
        state_dir: args.state_dir.clone(),
        max_instances: args.max_instances,
        max_instance_memory: args.max_instance_memory,
        default_app_instances: args.app_instances,
        cache_dir: args.cache_dir.clone().or_else(CompileCache::default_dir),
        registry: tessera_registry::RegistryOptions { insecure: args.insecure, cache_dir: None },
        shutdown_timeout: args.shutdown_timeout,
    })?;
    runtime.block_on(async {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangup = signal(SignalKind::hangup()).context("cannot listen for SIGHUP")?;
        let mut terminate = signal(SignalKind::terminate()).context("cannot listen for SIGTERM")?;
        let mut interrupt = signal(SignalKind::interrupt()).context("cannot listen for SIGINT")?;
        let first = host.reconcile(specs).await;
        report(&first);
        let listener = crate::up::listen(&args.listen)?;
        let addr = listener.local_addr()?;
        let (stop, stopped) = tokio::sync::watch::channel(false);
        host.serve_http(listener, threads, stopped.clone())?;
        if let (Some(address), Some(token)) = (&args.admin, token) {
            let listener = tokio::net::TcpListener::from_std(crate::up::listen(address).context("the admin API's address (--admin)")?)?;
            println!("Admin API on http://{}", listener.local_addr()?);
            tokio::spawn(tessera_host::admin::serve(host.clone(), listener, token, stopped));
        }
        print_apps(&host, addr).await;
        let signal = loop {
            tokio::select! {
                _ = hangup.recv() => match &args.apps {
                    Some(path) => {
                        tracing::info!("SIGHUP: reading {} again", path.display());
                        match tessera_host::apps_file::read(path) {
                            Ok(specs) => report(&host.reconcile(specs).await),
                            Err(e) => tracing::error!("{e}; the apps deployed stay as they are"),
                        }
                    }
                    None => tracing::info!("SIGHUP: no apps file to read (--apps)"),
                },
                _ = interrupt.recv() => break "SIGINT",
                _ = terminate.recv() => break "SIGTERM",
            }
        };
        println!("Shutting down ({signal}): finishing in-flight work for up to {:?}", args.shutdown_timeout);
        let _ = stop.send(true);
        host.drain_all().await;
        anyhow::Ok(())
    })?;
    Ok(ExitCode::SUCCESS)
}

/// The admin API's token: none without --admin; --admin without one is refused.
fn admin_token(args: &HostArgs) -> Result<Option<String>> {
    if args.admin.is_none() {
        return Ok(None);
    }
    let token = match (&args.admin_token_file, &args.admin_token) {
        (Some(path), _) => std::fs::read_to_string(path).with_context(|| format!("cannot read the admin token file {}", path.display()))?,
        (None, Some(token)) => token.clone(),
        (None, None) => anyhow::bail!("--admin needs a token, and none was given\n  hint: set TESSERA_ADMIN_TOKEN or give --admin-token-file FILE (e.g. from `openssl rand -hex 32`)"),
    };
    let token = token.trim().to_string();
    anyhow::ensure!(token.len() >= 16, "the admin token is {} characters; it must have 16 at least\n  hint: make one with `openssl rand -hex 32`", token.len());
    Ok(Some(token))
}

fn report(done: &Reconciled) {
    for (name, why) in &done.failed {
        eprintln!("app `{name}` not deployed: {why}");
    }
    tracing::info!(
        "apps: {} deployed, {} updated, {} unchanged, {} undeployed, {} failed",
        done.deployed.len(),
        done.updated.len(),
        done.unchanged.len(),
        done.undeployed.len(),
        done.failed.len()
    );
}

async fn print_apps(host: &ManyApps, addr: std::net::SocketAddr) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "Serving http://{addr}");
    for app in host.list().await {
        let hosts = if app.hosts.is_empty() { "any host".to_string() } else { app.hosts.join(", ") };
        let _ = writeln!(out, "App {} ({hosts}, under {}):", app.name, app.path_prefix);
        for route in &app.routes {
            let _ = writeln!(out, "  {route}");
        }
    }
    let _ = out.flush();
}
