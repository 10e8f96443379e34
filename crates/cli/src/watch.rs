//! `tessera watch`: builds the app, serves it, and on every change to a component's
//! `build.watch` files rebuilds that component and reloads the app without dropping a
//! request (the new version loads in full, then takes new requests; requests in flight
//! finish on the old one). A change to `spin.toml` or to a component's `source` reloads
//! without building. A failed build or load keeps the previous version serving. File
//! events wake the loop; what changed is decided by comparing the files' metadata.

use anyhow::Result;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};
use clap::Parser as _;
use tessera_app::LoadedApp;
use tessera_engine::{CompileCache, Engine};
use tessera_host::{AppHost, ReloadingApp};
use tessera_manifest::{Manifest, find_manifest};

/// Arguments of `tessera watch` (as `spin watch`).
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  tessera watch                         # build, serve, rebuild and reload on changes\n  tessera watch -- --variable greeting=hi -e RUST_LOG=debug   # tessera up's flags after --\n  tessera watch -f examples/hello-rust --listen 127.0.0.1:3001\n  tessera watch --skip-build            # reload when sources change, build nothing")]
pub struct WatchArgs {
    /// The app's manifest or its directory (default: spin.toml here or in a parent directory).
    #[arg(short = 'f', long = "from", value_name = "FILE_OR_DIR")]
    pub from: Option<PathBuf>,
    /// The address to serve HTTP on.
    #[arg(long, value_name = "ADDR", env = "SPIN_HTTP_LISTEN_ADDR", default_value = "127.0.0.1:3000")]
    pub listen: String,
    /// Runtime config file.
    #[arg(long, value_name = "FILE", env = "RUNTIME_CONFIG_FILE")]
    pub runtime_config_file: Option<PathBuf>,
    /// Build nothing: reload when a component's source file or the manifest changes.
    #[arg(long)]
    pub skip_build: bool,
    /// Clear the terminal before each rebuild.
    #[arg(short = 'c', long)]
    pub clear: bool,
    /// How long files must stay unchanged before a rebuild starts, in milliseconds.
    #[arg(short = 'd', long, value_name = "MS", default_value_t = 100)]
    pub debounce: u64,
    /// Where compiled components are cached (default: ~/.cache/tessera/components).
    #[arg(long, value_name = "DIR", env = "TESSERA_CACHE_DIR")]
    pub cache_dir: Option<PathBuf>,
    /// `tessera up`'s flags for each version (--variable, -e, --state-dir, -L, --follow,
    /// -q, -c, --temp, --direct-mounts, ...), after `--`, as `spin watch` passes them on.
    #[arg(last = true, value_name = "UP_ARGS")]
    pub up_args: Vec<String>,
}

/// `tessera up`'s flags, parsed from what follows `--`.
#[derive(clap::Parser)]
#[command(name = "tessera watch --")]
struct UpFlags {
    #[command(flatten)]
    up: crate::up::UpArgs,
}

/// The watched files, each with the component it belongs to (`None`: the whole app).
type Watched = std::collections::BTreeMap<PathBuf, Option<String>>;

/// What the watched files looked like.
type Fingerprint = std::collections::BTreeMap<PathBuf, (Option<SystemTime>, u64)>;

/// What a manifest asks to watch: each component's source file, and each `build.watch`
/// glob with its component and the directory it is relative to (`build.workdir`).
struct Watchlist {
    sources: Vec<PathBuf>,
    globs: Vec<(String, PathBuf, String)>,
}

impl Watchlist {
    fn of(manifest: &Manifest, skip_build: bool) -> Self {
        let mut list = Self { sources: Vec::new(), globs: Vec::new() };
        for (id, component) in &manifest.components {
            if let Some(path) = component.source.file() {
                list.sources.push(manifest.dir.join(path));
            }
            let Some(build) = component.build.as_ref().filter(|_| !skip_build) else { continue };
            let base = build.workdir.as_ref().map_or(manifest.dir.clone(), |w| manifest.dir.join(w));
            for pattern in &build.watch {
                list.globs.push((id.clone(), base.clone(), pattern.clone()));
            }
        }
        list
    }
}

/// The files whose change means something: the manifest and each component's source
/// (a reload), and each component's `build.watch` files (a rebuild of it).
fn watched(manifest_path: &Path, skip_build: bool) -> Watched {
    let mut out = Watched::new();
    out.insert(manifest_path.to_path_buf(), None);
    let Ok(manifest) = Manifest::from_file(manifest_path) else { return out };
    let list = Watchlist::of(&manifest, skip_build);
    for source in list.sources {
        out.insert(source, None);
    }
    for (id, base, pattern) in list.globs {
        let Ok(paths) = glob::glob(&base.join(pattern).to_string_lossy()) else { continue };
        for path in paths.flatten() {
            out.entry(path).or_insert_with(|| Some(id.clone()));
        }
    }
    out
}

/// The directories whose entries can change what [`watched`] finds, each with whether its
/// subdirectories count: the manifest's, each source file's, and the fixed part of each
/// `build.watch` glob (`src` of `src/**/*.rs`, watched with its subdirectories).
fn directories(manifest_path: &Path, skip_build: bool) -> BTreeSet<(PathBuf, bool)> {
    let mut out = BTreeSet::new();
    let parent = |path: &Path| path.parent().map(|dir| (dir.to_path_buf(), false));
    out.extend(parent(manifest_path));
    let Ok(manifest) = Manifest::from_file(manifest_path) else { return out };
    let list = Watchlist::of(&manifest, skip_build);
    out.extend(list.sources.iter().filter_map(|source| parent(source)));
    for (_, base, pattern) in &list.globs {
        let parts: Vec<&std::ffi::OsStr> = Path::new(pattern).iter().collect();
        let fixed = parts.iter().take_while(|p| !p.to_string_lossy().contains(['*', '?', '[', '{'])).count();
        let (dir, recursive) = match parts.len() - fixed {
            // A plain file: its directory.
            0 => (base.join(pattern).parent().map(Path::to_path_buf).unwrap_or(base.clone()), false),
            1 => (parts[..fixed].iter().fold(base.clone(), |d, p| d.join(p)), false),
            _ => (parts[..fixed].iter().fold(base.clone(), |d, p| d.join(p)), true),
        };
        out.insert((dir, recursive));
    }
    // A directory watched with its subdirectories need not be watched without them too.
    let deep: BTreeSet<PathBuf> = out.iter().filter(|(_, recursive)| *recursive).map(|(dir, _)| dir.clone()).collect();
    out.retain(|(dir, recursive)| *recursive || !deep.contains(dir));
    out
}

/// Wakes the watch loop when something changed in the watched directories (the fingerprint
/// then says whether it matters), when the watch is stopping, and every few seconds anyway:
/// a directory made after the watch began, or an event the kernel dropped, is seen then.
struct Wakeups {
    watcher: Option<notify::RecommendedWatcher>,
    /// The directories watched successfully (one that failed, e.g. not made yet, is tried
    /// again on the next round).
    watching: BTreeSet<(PathBuf, bool)>,
    sender: std::sync::mpsc::Sender<()>,
    receiver: std::sync::mpsc::Receiver<()>,
    last_round: std::time::Instant,
}

impl Wakeups {
    /// How often the loop looks without being woken.
    const FALLBACK: Duration = Duration::from_secs(2);
    /// How long the writes of one save take to land before the loop looks.
    const SETTLE: Duration = Duration::from_millis(20);
    /// The shortest time between two looks while events keep coming (a build writing into
    /// a watched tree): each look globs and reads every watched file's metadata.
    const SPACING: Duration = Duration::from_millis(200);

    fn new() -> Self {
        let (sender, receiver) = std::sync::mpsc::channel();
        let wake = sender.clone();
        let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
            // Reads (the loop's own globbing opens directories) change nothing.
            if event.is_ok_and(|e| !matches!(e.kind, notify::EventKind::Access(_))) {
                let _ = wake.send(());
            }
        });
        let watcher = watcher.map_err(|e| eprintln!("Cannot watch for file events ({e}); looking for changes every {} s instead", Self::FALLBACK.as_secs())).ok();
        Self { watcher, watching: BTreeSet::new(), sender, receiver, last_round: std::time::Instant::now() }
    }

    /// Something that wakes the loop from another thread.
    fn sender(&self) -> std::sync::mpsc::Sender<()> {
        self.sender.clone()
    }

    /// Watches exactly `directories` (those that exist; the fallback covers the rest).
    fn watch(&mut self, directories: BTreeSet<(PathBuf, bool)>) {
        let Some(watcher) = self.watcher.as_mut() else { return };
        if directories == self.watching {
            return;
        }
        use notify::Watcher as _;
        for gone in self.watching.difference(&directories).cloned().collect::<Vec<_>>() {
            let _ = watcher.unwatch(&gone.0);
            self.watching.remove(&gone);
        }
        for (dir, recursive) in directories {
            let mode = if recursive { notify::RecursiveMode::Recursive } else { notify::RecursiveMode::NonRecursive };
            if !self.watching.contains(&(dir.clone(), recursive)) && watcher.watch(&dir, mode).is_ok() {
                self.watching.insert((dir, recursive));
            }
        }
    }

    /// Returns after an event (with those that follow it at once) or the fallback delay.
    fn wait(&mut self) {
        let _ = self.receiver.recv_timeout(Self::FALLBACK);
        std::thread::sleep(Self::SETTLE.max(Self::SPACING.saturating_sub(self.last_round.elapsed())));
        while self.receiver.try_recv().is_ok() {}
        self.last_round = std::time::Instant::now();
    }
}

/// The fingerprint of the files a user edits (the manifest and `build.watch` files, not
/// the sources a build writes), to notice a change while a build runs.
fn edited(manifest_path: &Path, skip_build: bool) -> Fingerprint {
    let files: Watched = watched(manifest_path, skip_build).into_iter().filter(|(path, owner)| owner.is_some() || path == manifest_path).collect();
    fingerprint(&files)
}

fn fingerprint(files: &Watched) -> Fingerprint {
    files
        .keys()
        .map(|path| {
            let meta = std::fs::metadata(path).ok();
            (path.clone(), (meta.as_ref().and_then(|m| m.modified().ok()), meta.map_or(0, |m| m.len())))
        })
        .collect()
}

/// The components whose files differ between `before` and `now` (new and removed files
/// count), and whether an app-wide file did.
fn changed(owners: &[&Watched], before: &Fingerprint, now: &Fingerprint) -> (BTreeSet<String>, bool) {
    let (mut components, mut app) = (BTreeSet::new(), false);
    let paths: BTreeSet<&PathBuf> = before.keys().chain(now.keys()).collect();
    for path in paths.into_iter().filter(|p| before.get(*p) != now.get(*p)) {
        match owners.iter().find_map(|o| o.get(path)) {
            Some(Some(id)) => {
                components.insert(id.clone());
            }
            _ => app = true,
        }
    }
    (components, app)
}

fn load(manifest_path: &Path, args: &WatchArgs, up: &crate::up::UpArgs, engine: &mut Option<Engine>, cache_dir: &Option<PathBuf>) -> Result<AppHost> {
    let mut manifest = Manifest::from_file(manifest_path)?;
    if !up.components.is_empty() {
        manifest.retain_components(&up.components)?;
    }
    let mut options = crate::up::load_options(up, &manifest)?;
    if args.runtime_config_file.is_some() {
        options.runtime_config_file = args.runtime_config_file.clone();
    }
    let app = LoadedApp::from_manifest(manifest, &options)?;
    app.create_dirs()?;
    // The engine is made once, from the first version's runtime config.
    let engine = match engine {
        Some(engine) => engine,
        None => engine.insert(Engine::new(&tessera_host::engine_settings(&app, cache_dir.clone()))?),
    };
    AppHost::load(engine, Arc::new(app))
}

pub fn run(args: WatchArgs) -> Result<ExitCode> {
    let manifest_path = match &args.from {
        Some(from) => find_manifest(from)?,
        None => crate::up::manifest_here_or_above()?,
    };
    let up = UpFlags::try_parse_from(std::iter::once("tessera watch --".to_string()).chain(args.up_args.iter().cloned()))?.up;
    anyhow::ensure!(
        up.key_values.is_empty() && up.sqlite.is_empty(),
        "--key-value and --sqlite seed an app once, so watch (which loads it again on every change) does not take them\n  hint: seed with `tessera up --key-value ... --sqlite ...` once, with the same --state-dir, then watch"
    );
    let cache_dir = args.cache_dir.clone().or_else(CompileCache::default_dir);
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().thread_name("tessera-watch").build()?;
    let _tokio = runtime.enter();
    let stopping = Arc::new(AtomicBool::new(false));
    let mut wakeups = Wakeups::new();
    {
        let (stopping, wake) = (stopping.clone(), wakeups.sender());
        runtime.spawn(async move {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            stopping.store(true, Ordering::Relaxed);
            let _ = wake.send(());
        });
    }

    let manifest = Manifest::from_file(&manifest_path)?;
    if !args.skip_build
        && let Err(e) = crate::build::build_components_until(&manifest, |_| true, &|| stopping.load(Ordering::Relaxed))
    {
        if e.is::<crate::build::BuildCancelled>() {
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("Error: {e:#}\nWaiting for a change to build again.");
    }
    let shutdown_timeout = tessera_manifest::RuntimeConfig::default().shutdown_timeout;
    let app = ReloadingApp::new(shutdown_timeout);
    let mut engine = None;
    match load(&manifest_path, &args, &up, &mut engine, &cache_dir) {
        Ok(host) => app.replace(host)?,
        Err(e) => eprintln!("Error: {e:#}\nWaiting for a change to load again."),
    }
    let listener = crate::up::listen(&args.listen)?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let limits = tessera_trigger_http::ListenerLimits::of(&tessera_manifest::RuntimeConfig::default());
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    app.serve_http(limits, listener, threads, stopped)?;
    println!("Serving http://{addr}");
    println!("Watching for changes (Ctrl+C stops)");

    let mut files = watched(&manifest_path, args.skip_build);
    let mut seen = fingerprint(&files);
    let mut version = 1;
    // Components whose build a newer change stopped: built with the next change's.
    let mut unbuilt = BTreeSet::new();
    while !stopping.load(Ordering::Relaxed) {
        wakeups.watch(directories(&manifest_path, args.skip_build));
        wakeups.wait();
        let mut latest = watched(&manifest_path, args.skip_build);
        let mut now = fingerprint(&latest);
        if now == seen {
            continue;
        }
        // Wait for the writes to settle.
        loop {
            std::thread::sleep(Duration::from_millis(args.debounce));
            let again_files = watched(&manifest_path, args.skip_build);
            let again = fingerprint(&again_files);
            if again == now {
                break;
            }
            (latest, now) = (again_files, again);
        }
        let (mut components, app_changed) = changed(&[&latest, &files], &seen, &now);
        components.append(&mut unbuilt);
        (files, seen) = (latest, now);
        if args.clear {
            print!("\x1b[2J\x1b[H");
        }
        if !components.is_empty() {
            let manifest = match Manifest::from_file(&manifest_path) {
                Ok(m) => m,
                Err(e) => {
                    eprintln!("Error: {e}\nThe previous version keeps serving.");
                    continue;
                }
            };
            println!("Rebuilding {} after a change", components.iter().cloned().collect::<Vec<_>>().join(", "));
            // A build that never ends must not hold the watch: a newer edit or Ctrl+C stops it.
            let before = edited(&manifest_path, args.skip_build);
            let cancelled = || stopping.load(Ordering::Relaxed) || edited(&manifest_path, args.skip_build) != before;
            if let Err(e) = crate::build::build_components_until(&manifest, |id| components.contains(id), &cancelled) {
                if e.is::<crate::build::BuildCancelled>() {
                    println!("A change arrived during the build: stopped it, building again");
                    unbuilt = components;
                } else {
                    eprintln!("Error: {e:#}\nThe previous version keeps serving.");
                }
                continue;
            }
        } else if !app_changed {
            continue;
        }
        match load(&manifest_path, &args, &up, &mut engine, &cache_dir).and_then(|host| app.replace(host)) {
            Ok(()) => {
                version += 1;
                println!("Reloaded: version {version} serves http://{addr}; requests in flight finish on the one before");
            }
            Err(e) => eprintln!("Error: {e:#}\nThe previous version keeps serving."),
        }
        // What the build wrote (its output, the source) is not a change of the user's.
        files = watched(&manifest_path, args.skip_build);
        seen = fingerprint(&files);
    }
    eprintln!("Stopping: draining requests in flight");
    let _ = stop.send(true);
    runtime.block_on(app.drain());
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fixed_part_of_each_glob_is_watched_and_deep_globs_with_subdirectories() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path();
        std::fs::write(
            app.join("spin.toml"),
            r#"spin_manifest_version = 2
[application]
name = "w"
[[trigger.http]]
route = "/..."
component = "c"
[component.c]
source = "target/out/c.wasm"
[component.c.build]
command = "make"
workdir = "guest"
watch = ["src/**/*.rs", "Cargo.toml", "lib/*.c", "**/*.h"]
"#,
        )
        .unwrap();
        let manifest = app.join("spin.toml");
        let guest = app.join("guest");
        let expected: BTreeSet<(PathBuf, bool)> = [
            (app.to_path_buf(), false),
            (app.join("target/out"), false),
            (guest.join("src"), true),
            (guest.clone(), true),
            (guest.join("lib"), false),
        ]
        .into_iter()
        .collect();
        // `guest` is watched once, with its subdirectories (for `**/*.h`), not also for `Cargo.toml`.
        assert_eq!(directories(&manifest, false), expected);
        let without_build: BTreeSet<_> = [(app.to_path_buf(), false), (app.join("target/out"), false)].into_iter().collect();
        assert_eq!(directories(&manifest, true), without_build, "--skip-build watches the sources only");
    }

    #[test]
    fn a_write_in_a_watched_directory_wakes_the_loop_and_reading_it_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let mut wakeups = Wakeups::new();
        wakeups.watch([(dir.path().to_path_buf(), false)].into_iter().collect());
        assert!(!wakeups.watching.is_empty(), "the directory is watched");
        let _ = std::fs::read_dir(dir.path()).unwrap().count();
        assert!(wakeups.receiver.recv_timeout(Duration::from_millis(500)).is_err(), "reading a directory is not a change");
        std::fs::write(dir.path().join("lib.rs"), "fn main() {}").unwrap();
        assert!(wakeups.receiver.recv_timeout(Wakeups::FALLBACK * 5).is_ok(), "a write is an event, not a wait for the fallback");
        // A directory that does not exist yet is tried again on the next round.
        let later = dir.path().join("later");
        wakeups.watch([(later.clone(), true)].into_iter().collect());
        assert!(wakeups.watching.is_empty());
        std::fs::create_dir(&later).unwrap();
        wakeups.watch([(later.clone(), true)].into_iter().collect());
        assert_eq!(wakeups.watching, [(later, true)].into_iter().collect());
    }
}
