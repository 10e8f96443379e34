//! `tessera`: serve and build Spin-style WebAssembly component apps.

mod build;
mod call;
mod completions;
mod compose;
mod doctor;
mod host;
mod inspect;
mod log_output;
mod new;
mod registry;
mod run;
mod sign;
mod up;
mod up_flags;
mod watch;

use clap::{Parser, Subcommand};
use std::io::IsTerminal as _;
use std::process::ExitCode;

// Every request allocates and frees many small objects on its serving thread; glibc's
// allocator spent about a tenth of request time in malloc/free and consolidation
// (bench/RESULTS.md), mimalloc's thread-local free lists much less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Tessera: a WebAssembly component platform. Runs Spin (spin.toml v2) apps and WASI
/// commands with a fresh sandboxed instance per invocation.
#[derive(Parser)]
#[command(name = "tessera", version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run an app's triggers: HTTP routes, Redis channels, cron jobs (like `spin up`).
    Up(up::UpArgs),
    /// Serve many apps in one process, routed by Host header and path prefix (apps.toml).
    Host(host::HostArgs),
    /// Run a command component, a WASI preview 1 module, or one exported function (like `wasmtime run`).
    Run(run::RunArgs),
    /// Call one function of a plugin component within quotas, and show what it used.
    Call(call::CallArgs),
    /// Run each component's build command (like `spin build`).
    Build(build::BuildArgs),
    /// Push, pull and log in to OCI registries (like `spin registry`).
    Registry(registry::RegistryArgs),
    /// Write a component composed with its dependencies to one file any host runs.
    Compose(compose::ComposeArgs),
    /// Show each component's imports, exports, grants, over-grants, size, digest and signature.
    Inspect(inspect::InspectArgs),
    /// Sign a component, every component of an app, or a registry artifact.
    Sign(sign::SignArgs),
    /// Check the signatures of a component, an app's components, or a registry artifact.
    Verify(sign::VerifyArgs),
    /// Build, serve, and rebuild and reload on every change without dropping a request (like `spin watch`).
    Watch(watch::WatchArgs),
    /// Create an app from a template (like `spin new`).
    New(new::NewArgs),
    /// Add a component from a template to an app (like `spin add`).
    Add(new::AddArgs),
    /// List the templates `new` and `add` take.
    Templates(new::TemplatesArgs),
    /// Check the toolchains, the app, its runtime config, the port and the cache, with a fix for each problem.
    Doctor(doctor::DoctorArgs),
    /// Print a completion script for bash, zsh, fish, elvish or PowerShell.
    Completions(completions::CompletionsArgs),
}

fn main() -> ExitCode {
    // Guest failures carry their wasm backtrace; a host backtrace on each would only be
    // slow noise. Set before any thread starts.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // SAFETY: no other thread exists yet.
        unsafe { std::env::set_var("RUST_LIB_BACKTRACE", "0") };
    }
    let cli = Cli::parse();
    let (log, traces) = init_tracing();
    let done = |r: anyhow::Result<()>| r.map(|()| ExitCode::SUCCESS);
    let result = match cli.command {
        Command::Up(args) => up::run(args),
        Command::Host(args) => host::run(args),
        Command::Run(args) => run::run(args),
        Command::Call(args) => call::run(args),
        Command::Build(args) => done(build::run(&args)),
        Command::Registry(args) => done(registry::run(args)),
        Command::Compose(args) => done(compose::run(args)),
        Command::Inspect(args) => done(inspect::run(args)),
        Command::Sign(args) => done(sign::sign(args)),
        Command::Verify(args) => done(sign::verify(args)),
        Command::Watch(args) => watch::run(args),
        Command::New(args) => done(new::new(&args)),
        Command::Add(args) => done(new::add(&args)),
        Command::Templates(args) => {
            new::list(&args);
            Ok(ExitCode::SUCCESS)
        }
        Command::Doctor(args) => doctor::run(&args),
        Command::Completions(args) => {
            completions::run(&args);
            Ok(ExitCode::SUCCESS)
        }
    };
    if let Some(traces) = traces {
        traces.shutdown();
    }
    log.flush();
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("Error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() -> (log_output::BatchedStderr, Option<tessera_host::telemetry::Traces>) {
    use tracing_subscriber::prelude::*;
    let log = log_output::BatchedStderr::start();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,tessera=info,async_nats=off"));
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(log.clone())
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .compact()
        .with_filter(filter);
    let traces = match tessera_host::telemetry::Traces::from_env() {
        Ok(traces) => traces,
        Err(e) => {
            eprintln!("warning: {e:#}; traces are not exported");
            None
        }
    };
    tracing_subscriber::registry().with(fmt).with(traces.as_ref().map(|t| t.layer())).init();
    (log, traces)
}
