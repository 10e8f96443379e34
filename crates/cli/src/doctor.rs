//! `tessera doctor`: checks what building and serving apps needs here (the toolchain of
//! each template language, the app's manifest and runtime config, the port, the compile
//! cache) and prints the fix for each problem found.

use anyhow::Result;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use tessera_app::{LoadOptions, LoadedApp};

/// Arguments of `tessera doctor`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  tessera doctor\n  tessera doctor -f examples/python-kv --runtime-config-file examples/python-kv/redis.toml\n  tessera doctor --listen 127.0.0.1:8080")]
pub struct DoctorArgs {
    /// The app to check: its spin.toml or directory (default: spin.toml here or in the
    /// nearest parent directory, if any).
    #[arg(short = 'f', long = "from", value_name = "FILE_OR_DIR")]
    pub from: Option<PathBuf>,
    /// The runtime config `tessera up` would get.
    #[arg(long, value_name = "FILE", env = "RUNTIME_CONFIG_FILE")]
    pub runtime_config_file: Option<PathBuf>,
    /// The address `tessera up` would serve on.
    #[arg(long, value_name = "ADDR", env = "SPIN_HTTP_LISTEN_ADDR", default_value = "127.0.0.1:3000")]
    pub listen: String,
    /// The compile cache `tessera up` would use.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,
}

/// What one check found.
enum Finding {
    Ok(String),
    /// Worth knowing, not a problem.
    Note(String),
    Problem { what: String, fix: String },
}

/// The output of `program args`, if it ran and succeeded.
fn output_of(program: &str, args: &[&str]) -> Option<String> {
    let out = Command::new(program).args(args).output().ok().filter(|o| o.status.success())?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

fn tool(name: &str, program: &str, args: &[&str], needed_by: &str, fix: &str) -> Finding {
    match output_of(program, args) {
        // Some tools print their name with their version, some only the version.
        Some(version) if first_line(&version).starts_with(name) => Finding::Ok(format!("{} ({needed_by})", first_line(&version))),
        Some(version) => Finding::Ok(format!("{name} {} ({needed_by})", first_line(&version))),
        None => Finding::Problem { what: format!("{name} not found ({needed_by})"), fix: fix.to_string() },
    }
}

fn toolchains() -> Vec<Finding> {
    let rust_templates = "templates http-rust, spin-sdk-rust, redis-rust, cron-rust";
    let rust = match output_of("rustup", &["target", "list", "--installed"]) {
        None => Finding::Problem { what: format!("rustup not found ({rust_templates}, and http-c's pinned tools)"), fix: "install Rust: https://rustup.rs".into() },
        Some(targets) if targets.lines().any(|t| t.trim() == "wasm32-wasip2") => Finding::Ok(format!("Rust target wasm32-wasip2 ({rust_templates})")),
        Some(_) => Finding::Problem { what: format!("the Rust target wasm32-wasip2 is not installed ({rust_templates})"), fix: "rustup target add wasm32-wasip2".into() },
    };
    let c_tools = "cargo install --locked wasm-tools@1.263.0 wit-bindgen-cli@0.63.0";
    let python = match output_of("python3", &["-c", "import sys, venv, ensurepip; print(sys.version.split()[0]); assert sys.version_info >= (3, 11)"]) {
        Some(version) => Finding::Ok(format!("Python {version} with venv (templates http-python, spin-sdk-python; http-c runs zig through it)")),
        None => Finding::Problem {
            what: "Python 3.11 or later with venv not found (templates http-python, spin-sdk-python, http-c)".into(),
            fix: "install Python 3.11+ (Debian: apt install python3 python3-venv)".into(),
        },
    };
    let componentize_py = match output_of("componentize-py", &["--version"]) {
        Some(version) => Finding::Ok(format!("{} on PATH", first_line(&version))),
        None => Finding::Note("componentize-py is not on PATH: the Python templates' builds install it (pinned) into the active virtualenv or the app's .venv".into()),
    };
    let node = match output_of("node", &["--version"]) {
        Some(version) if version.trim_start_matches('v').split('.').next().and_then(|m| m.parse::<u32>().ok()).is_some_and(|m| m >= 18) => match output_of("npm", &["--version"]) {
            Some(npm) => Finding::Ok(format!("Node.js {version} and npm {npm} (template http-js; its build runs npm install for componentize-js 0.23)")),
            None => Finding::Problem { what: "npm not found (template http-js installs componentize-js with it)".into(), fix: "install npm (Debian: apt install npm)".into() },
        },
        Some(version) => Finding::Problem { what: format!("Node.js {version} is too old for componentize-js (template http-js)"), fix: "install Node.js 18 or later: https://nodejs.org".into() },
        None => Finding::Problem { what: "Node.js not found (template http-js)".into(), fix: "install Node.js 18 or later (Debian: apt install nodejs npm)".into() },
    };
    vec![
        rust,
        tool("zig", "python3", &["-m", "ziglang", "version"], "template http-c", "pip install ziglang==0.17.0"),
        tool("wasm-tools", "wasm-tools", &["--version"], "template http-c", c_tools),
        tool("wit-bindgen", "wit-bindgen", &["--version"], "template http-c", c_tools),
        python,
        componentize_py,
        node,
    ]
}

/// The app here (or named), loaded as `tessera up` would load it, without starting it.
fn app(args: &DoctorArgs) -> Vec<Finding> {
    let path = match &args.from {
        Some(from) => tessera_manifest::find_manifest(from).map_err(anyhow::Error::from),
        None => crate::up::manifest_here_or_above(),
    };
    let Ok(path) = path else {
        if args.from.is_none() {
            return vec![Finding::Note("no spin.toml here or above: the app checks are skipped (-f names one)".into())];
        }
        let error = path.unwrap_err();
        return vec![Finding::Problem { what: format!("{error:#}"), fix: "-f names an app's spin.toml or its directory".into() }];
    };
    let mut findings = Vec::new();
    if let Some(file) = &args.runtime_config_file
        && let Err(e) = tessera_manifest::RuntimeConfig::from_file(file)
    {
        findings.push(Finding::Problem { what: e.to_string(), fix: format!("edit {}", file.display()) });
    }
    let manifest = match tessera_manifest::Manifest::from_file(&path) {
        Ok(m) => m,
        Err(e) => {
            findings.push(Finding::Problem { what: e.to_string(), fix: format!("edit {}", path.display()) });
            return findings;
        }
    };
    for (id, component) in &manifest.components {
        if let tessera_manifest::ComponentSource::File(file) = &component.source
            && !file.is_file()
        {
            let fix = if component.build.is_some() { "tessera build (or tessera up --build)".to_string() } else { format!("fix [component.{id}] source in {}", path.display()) };
            findings.push(Finding::Problem { what: format!("component `{id}`: {} does not exist yet", file.display()), fix });
        }
    }
    // Loading needs every source; what is wrong so far would only be said again.
    if !findings.is_empty() {
        return findings;
    }
    let options = LoadOptions { runtime_config_file: args.runtime_config_file.clone(), ..LoadOptions::default() };
    match LoadedApp::from_manifest(manifest, &options) {
        Ok(app) => {
            let config = args.runtime_config_file.as_ref().map_or("no runtime config".to_string(), |f| format!("runtime config {}", f.display()));
            findings.push(Finding::Ok(format!("app `{}` ({}): {} component(s), {config}", app.manifest.application.name, path.display(), app.components.len())));
        }
        Err(e) => findings.push(Finding::Problem { what: format!("{e:#}"), fix: "the error above names the file and the key to change".into() }),
    }
    findings
}

fn port(listen: &str) -> Finding {
    match std::net::TcpListener::bind(listen) {
        Ok(_) => Finding::Ok(format!("{listen} is free to serve on")),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => Finding::Problem {
            what: format!("{listen} is in use by another program"),
            fix: "stop that program, or serve elsewhere: tessera up --listen 127.0.0.1:3001 (or SPIN_HTTP_LISTEN_ADDR)".into(),
        },
        Err(e) => Finding::Problem { what: format!("cannot listen on {listen}: {e}"), fix: "give --listen HOST:PORT with an address of this machine".into() },
    }
}

fn directory_size(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir).into_iter().flatten().flatten().map(|e| match e.metadata() {
        Ok(m) if m.is_dir() => directory_size(&e.path()),
        Ok(m) => m.len(),
        Err(_) => 0,
    }).sum()
}

fn cache(dir: Option<PathBuf>) -> Finding {
    let Some(dir) = dir.or_else(tessera_engine::CompileCache::default_dir) else {
        return Finding::Problem { what: "no compile cache: neither TESSERA_CACHE_DIR, XDG_CACHE_HOME nor HOME is set".into(), fix: "set TESSERA_CACHE_DIR, or pass --cache-dir to tessera up".into() };
    };
    let writable = std::fs::create_dir_all(&dir).and_then(|()| tempfile::tempfile_in(&dir).map(drop));
    match writable {
        Ok(()) => Finding::Ok(format!("compile cache {} ({:.1} MiB)", dir.display(), directory_size(&dir) as f64 / 1048576.0)),
        Err(e) => Finding::Problem {
            what: format!("the compile cache {} is not writable: {e}", dir.display()),
            fix: "make it writable, or point TESSERA_CACHE_DIR (or tessera up --cache-dir) at a writable directory".into(),
        },
    }
}

pub fn run(args: &DoctorArgs) -> Result<ExitCode> {
    let sections = [("Toolchains", toolchains()), ("App", app(args)), ("Serving", vec![port(&args.listen), cache(args.cache_dir.clone())])];
    let mut problems = 0;
    for (title, findings) in sections {
        println!("{title}");
        for finding in findings {
            match finding {
                Finding::Ok(what) => println!("  ok       {what}"),
                Finding::Note(what) => println!("  note     {what}"),
                Finding::Problem { what, fix } => {
                    problems += 1;
                    let mut lines = what.lines();
                    println!("  PROBLEM  {}", lines.next().unwrap_or(""));
                    for line in lines {
                        println!("           {line}");
                    }
                    println!("           fix: {fix}");
                }
            }
        }
    }
    if problems == 0 {
        println!("No problems found");
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{problems} problem(s) found");
        Ok(ExitCode::FAILURE)
    }
}
