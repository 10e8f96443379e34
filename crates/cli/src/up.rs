//! `tessera up`: load an app and run its triggers (HTTP, Redis, cron; a command app runs
//! once), draining in-flight work on SIGTERM or SIGINT.

use anyhow::{Context as _, Result};
use clap::builder::TypedValueParser as _;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tessera_app::{LoadOptions, LoadedApp};
use tessera_engine::{CompileCache, Engine};
use tessera_host::AppHost;
use tessera_manifest::{Manifest, RuntimeConfig, find_manifest};

/// Arguments of `tessera up` (the same flags as `spin up`, plus Tessera's own).
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  tessera up                                  # spin.toml here or in a parent directory\n  tessera up -f examples/hello-rust --listen 0.0.0.0:3000\n  tessera up --build --variable greeting=hi --key-value motd=hello\n  tessera up --sqlite @migrations.sql -e RUST_LOG=debug\n  tessera up -f ghcr.io/me/app:v1            # pull from a registry and run\n  tessera up -f hello.wasm                    # a bare wasi:http component on /...")]
pub struct UpArgs {
    /// The app's manifest, a directory holding spin.toml (or tessera.toml), a bare
    /// wasi:http component (served on `/...` with nothing granted), or a registry
    /// reference (REGISTRY/REPOSITORY:TAG), pulled first. Default: spin.toml here, or in
    /// the nearest parent directory (up to the repository's root).
    #[arg(short = 'f', long = "from", value_name = "FILE_OR_DIR_OR_REF")]
    pub from: Option<PathBuf>,
    /// A registry reference to run, even if a local path has the same name.
    #[arg(long, value_name = "REF", conflicts_with = "from")]
    pub from_registry: Option<String>,
    #[command(flatten)]
    pub registry: crate::registry::Connection,
    /// The address to serve HTTP on (HOST:PORT, host names allowed); port 0 picks a free port.
    #[arg(long, value_name = "ADDR", env = "SPIN_HTTP_LISTEN_ADDR", default_value = "127.0.0.1:3000")]
    pub listen: String,
    /// Runtime config: state and log locations, limits (see the README).
    #[arg(long, value_name = "FILE", env = "RUNTIME_CONFIG_FILE")]
    pub runtime_config_file: Option<PathBuf>,
    /// Run `tessera build` first.
    #[arg(long, env = "SPIN_ALWAYS_BUILD", value_parser = clap::builder::BoolishValueParser::new())]
    pub build: bool,
    /// Pass an environment variable (KEY=VALUE) to all components of the application.
    #[arg(short = 'e', long = "env", value_name = "KEY=VALUE", value_parser = crate::up_flags::parse_env)]
    pub env: Vec<(String, String)>,
    /// Variable(s) to be passed to the app, over every other source: KEY=VALUE, KEY=@FILE
    /// (the file's text), or @FILE.json / @FILE.toml (a map of names to values).
    #[arg(long, value_name = "KEY=VALUE | KEY=@FILE | @FILE.json | @FILE.toml")]
    pub variable: Vec<String>,
    /// Set a key/value pair (KEY=VALUE) in the application's default store before it
    /// serves (STORE:KEY=VALUE for the app's store named STORE). Can be used multiple times.
    #[arg(long = "key-value", value_name = "KEY=VALUE")]
    pub key_values: Vec<String>,
    /// Run a SQLite statement such as a migration against the default database before the
    /// app serves; @FILE runs a file's statements, @FILE:DATABASE against another database.
    #[arg(long = "sqlite", value_name = "STATEMENT | @FILE[:DATABASE]")]
    pub sqlite: Vec<String>,
    /// The application state directory (key-value and SQLite files, logs); default .spin
    /// beside the manifest. Wins over the runtime config's state_dir.
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Temporary directory for the static assets of the components: where copies of
    /// `files` picked by globs or single files are staged (default: the system's).
    #[arg(long = "temp", value_name = "TMP")]
    pub temp: Option<PathBuf>,
    /// Mount `files` directly from their source rather than copying them to a temporary
    /// directory: directory mappings only (globs, single files and exclude_files are refused).
    #[arg(long)]
    pub direct_mounts: bool,
    /// Where guest output is logged (default: <state dir>/logs); "" logs to no file.
    #[arg(short = 'L', long, value_name = "DIR", env = "SPIN_LOG_DIR", value_parser = clap::builder::OsStringValueParser::new().map(PathBuf::from))]
    pub log_dir: Option<PathBuf>,
    /// Empty the components' log files before starting.
    #[arg(long)]
    pub truncate_logs: bool,
    /// Print output to stdout/stderr only for the given component(s).
    #[arg(long = "follow", value_name = "COMPONENT")]
    pub follow: Vec<String>,
    /// Silence all component output to stdout/stderr (it is still logged to files).
    #[arg(short = 'q', long, visible_alias = "shush", conflicts_with = "follow")]
    pub quiet: bool,
    /// Run only this component's triggers (can be repeated); default: all components.
    #[arg(short = 'c', long = "component-id", value_name = "ID")]
    pub components: Vec<String>,
    /// Where compiled components are cached (default: ~/.cache/tessera/components).
    #[arg(long, value_name = "DIR", env = "TESSERA_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// Compile every component again instead of using the compile cache.
    #[arg(long, visible_alias = "disable-cache", env = "DISABLE_WASMTIME_CACHE", value_parser = clap::builder::BoolishValueParser::new())]
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
        .or_else(|| args.from.as_ref().filter(|f| crate::registry::looks_like_reference(f)).map(|f| f.to_string_lossy().into_owned()));
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
        None => match &args.from {
            Some(from) => find_manifest(from)?,
            None => manifest_here_or_above()?,
        },
    };
    let mut manifest = if tessera_manifest::is_component_file(&manifest_path) {
        anyhow::ensure!(!args.build, "--build needs an app's spin.toml; {} is a component already", manifest_path.display());
        Manifest::for_component(&manifest_path)
    } else {
        Manifest::from_file(&manifest_path)?
    };
    if !args.components.is_empty() {
        manifest.retain_components(&args.components)?;
    }
    let options = load_options(&args, &manifest)?;
    if args.build {
        crate::build::build_all(&manifest)?;
    }
    let app = LoadedApp::from_manifest(
        manifest,
        &LoadOptions {
            // A pulled app's directory is a shared, immutable cache entry: its state goes
            // to .spin in the current directory, as for an app run from there.
            state_dir: reference.as_ref().map(|_| PathBuf::from(".spin")),
            artifact_signed_by,
            ..options
        },
    )?;
    let stores: Vec<String> = app.components.values().flat_map(|c| c.key_value_stores.iter().map(|(label, _)| label.clone())).collect();
    let seed = tessera_host::Seed { key_values: crate::up_flags::key_values(&args.key_values, &stores)?, sqlite: crate::up_flags::sqlite(&args.sqlite)? };
    let leftovers = NewStateFiles::before(&[&app.state_dir, &app.log_dir]);
    app.create_dirs()?;
    print_state_summary(&app);
    let descriptions: BTreeMap<String, String> = app.manifest.components.iter().filter_map(|(id, c)| Some((id.clone(), c.description.clone()?))).collect();
    // Set once serving starts: a start that fails before leaves no state files behind.
    let started = AtomicBool::new(false);
    let serve = || -> Result<ExitCode> {
        if args.truncate_logs && app.guest_output.to_files {
            for id in app.components.keys() {
                for stream in ["stdout", "stderr"] {
                    let path = tessera_capabilities::logging::log_file(&app.log_dir, id, stream);
                    if path.exists() {
                        std::fs::File::create(&path).with_context(|| format!("--truncate-logs: cannot empty {}", path.display()))?;
                    }
                }
            }
        }
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
        runtime.block_on(host.seed(&seed))?;
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
    let code = host.serve_until_signal(&runtime, listener, threads, shutdown_timeout, |host| {
        started.store(true, Ordering::Relaxed);
        print_triggers(host, addr, &descriptions)
    })?;
    Ok(ExitCode::from(code))
    };
    let result = serve();
    if result.is_err() && !started.load(Ordering::Relaxed) {
        leftovers.remove();
    }
    result
}

/// How `args` asks for `manifest`'s app to be loaded (shared by `up` and `watch`).
pub(crate) fn load_options(args: &UpArgs, manifest: &Manifest) -> Result<LoadOptions> {
    let guest_output = tessera_app::GuestOutput {
        to_files: args.log_dir.as_ref().is_none_or(|d| !d.as_os_str().is_empty()),
        follow: if args.quiet {
            tessera_app::Follow::Nothing
        } else if args.follow.is_empty() {
            tessera_app::Follow::All
        } else {
            tessera_app::Follow::Only(args.follow.iter().cloned().collect())
        },
    };
    if let tessera_app::Follow::Only(ids) = &guest_output.follow
        && let Some(unknown) = ids.iter().find(|id| !manifest.components.contains_key(*id))
    {
        anyhow::bail!("--follow {unknown}: the app has no component `{unknown}`\n  hint: name one of: {}", manifest.components.keys().cloned().collect::<Vec<_>>().join(", "));
    }
    Ok(LoadOptions {
        runtime_config_file: args.runtime_config_file.clone(),
        log_dir: args.log_dir.clone().filter(|d| !d.as_os_str().is_empty()),
        fetcher: Some(Arc::new(tessera_registry::SourceCache::new(args.registry.options()))),
        variable_overrides: crate::up_flags::variables(&args.variable)?,
        environment: args.env.iter().cloned().collect(),
        state_dir_override: args.state_dir.clone(),
        guest_output,
        files_mounts: tessera_app::FilesMounts { staging_dir: args.temp.clone(), direct: args.direct_mounts },
        ..LoadOptions::default()
    })
}

/// The files and directories a start adds under the state and log directories, so a start
/// that fails before serving can take them away again.
struct NewStateFiles {
    /// The outermost directories that did not exist.
    new_dirs: Vec<PathBuf>,
    /// Directories that existed, with the names they held.
    existing: Vec<(PathBuf, BTreeSet<std::ffi::OsString>)>,
}

impl NewStateFiles {
    fn before(dirs: &[&Path]) -> Self {
        let mut out = Self { new_dirs: Vec::new(), existing: Vec::new() };
        for dir in dirs {
            if dir.exists() {
                let names = std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| e.file_name()).collect();
                out.existing.push((dir.to_path_buf(), names));
            } else if let Some(outermost) = dir.ancestors().take_while(|a| !a.as_os_str().is_empty() && !a.exists()).last() {
                out.new_dirs.push(outermost.to_path_buf());
            }
        }
        out
    }

    fn remove(&self) {
        for dir in &self.new_dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
        for (dir, names) in &self.existing {
            for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
                if !names.contains(&entry.file_name()) {
                    let _ = if entry.path().is_dir() { std::fs::remove_dir_all(entry.path()) } else { std::fs::remove_file(entry.path()) };
                }
            }
        }
    }
}

/// Where guest output and the default stores go, as Spin says it at start-up.
fn print_state_summary(app: &LoadedApp) {
    // `.spin/logs/`, not `./.spin/logs/`, for an app in the current directory.
    let shown = |path: PathBuf| path.strip_prefix(".").map(Path::to_path_buf).unwrap_or(path).display().to_string();
    if app.guest_output.to_files {
        eprintln!("Logging component stdio to \"{}/\"", shown(app.log_dir.clone()));
    }
    let uses = |label: &str, grants: fn(&tessera_app::LoadedComponent) -> &Vec<(String, tessera_manifest::Location)>| app.components.values().any(|c| grants(c).iter().any(|(l, _)| l == label));
    let rc = &app.runtime_config;
    if uses("default", |c| &c.key_value_stores) && !rc.key_value_stores.contains_key("default") {
        eprintln!("Storing default key-value data to \"{}\".", shown(app.state_dir.join("sqlite_key_value.db")));
    }
    if uses("default", |c| &c.sqlite_databases) && !rc.sqlite_databases.contains_key("default") {
        eprintln!("Storing default SQLite data to \"{}\".", shown(app.state_dir.join("sqlite_db.db")));
    }
}

/// `spin.toml` (or `tessera.toml`) in the current directory, else in the nearest parent
/// directory, as Spin searches: up to the root of a Git repository or 20 levels.
pub(crate) fn manifest_here_or_above() -> Result<PathBuf> {
    let here = Path::new(".");
    if let Ok(found) = find_manifest(here) {
        return Ok(found);
    }
    let mut dir = here.to_path_buf();
    for distance in 1..20 {
        if dir.join(".git").exists() {
            break;
        }
        dir = dir.join("..");
        if !dir.is_dir() {
            break;
        }
        if let Ok(found) = find_manifest(&dir) {
            let shown = std::fs::canonicalize(&found).unwrap_or_else(|_| found.clone());
            let parent = if distance == 1 { "parent".to_string() } else { format!("{distance} levels up") };
            eprintln!("No 'spin.toml' in current directory.\nUsing '{}' from {parent} directory ({})", found.file_name().unwrap_or_default().to_string_lossy(), shown.display());
            return Ok(found);
        }
    }
    find_manifest(here).map_err(Into::into)
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

fn print_triggers(host: &AppHost, addr: Option<SocketAddr>, descriptions: &BTreeMap<String, String>) {
    let mut out = std::io::stdout().lock();
    if let (Some(http), Some(addr)) = (host.http(), addr) {
        let _ = writeln!(out, "Serving http://{addr}");
        let _ = writeln!(out, "Available Routes:");
        for r in http.routes() {
            let wildcard = if r.wildcard { " (wildcard)" } else { "" };
            let _ = writeln!(out, "  {}: http://{addr}{}{wildcard}", r.label, r.path);
            if let Some(description) = descriptions.get(&r.label) {
                let _ = writeln!(out, "    {description}");
            }
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
