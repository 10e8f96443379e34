//! `tessera build`: runs each component's `build.command` in its `workdir`.

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;
use tessera_manifest::{Manifest, find_manifest};

/// Arguments of `tessera build`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  tessera build\n  tessera build -c api -c web\n  tessera build --up -- --listen 127.0.0.1:8080 --variable greeting=hi\n  tessera build -f examples/rust-sqlite")]
pub struct BuildArgs {
    /// The app's manifest, or a directory holding spin.toml (or tessera.toml).
    #[arg(short = 'f', long = "from", value_name = "FILE_OR_DIR", default_value = ".")]
    pub from: PathBuf,
    /// Component ID to build. This can be specified multiple times. The default is all
    /// components.
    #[arg(short = 'c', long = "component-id", value_name = "ID")]
    pub component_id: Vec<String>,
    /// Run the application after building (`tessera up`, given the arguments that follow).
    #[arg(short = 'u', long = "up")]
    pub up: bool,
    /// Arguments for `tessera up` (with --up).
    #[arg(requires = "up", trailing_var_arg = true, allow_hyphen_values = true, value_name = "UP_ARGS")]
    pub up_args: Vec<String>,
}

pub fn run(args: &BuildArgs) -> Result<()> {
    let manifest_path = find_manifest(&args.from)?;
    let manifest = Manifest::from_file(&manifest_path)?;
    let unknown: Vec<&str> = args.component_id.iter().filter(|id| !manifest.components.contains_key(id.as_str())).map(String::as_str).collect();
    if !unknown.is_empty() {
        let known: Vec<&str> = manifest.components.keys().map(String::as_str).collect();
        bail!("unknown component(s) {} in {}\n  hint: the app's components are: {}", unknown.join(", "), manifest_path.display(), known.join(", "));
    }
    if args.component_id.is_empty() {
        build_all(&manifest)?;
    } else {
        build_components(&manifest, |id| args.component_id.iter().any(|c| c == id))?;
    }
    if args.up {
        // As `spin build --up` does: this process becomes `tessera up` on the same manifest.
        use std::os::unix::process::CommandExt as _;
        let exe = std::env::current_exe().context("cannot find this program to run `tessera up`")?;
        let error = Command::new(exe).arg("up").arg("-f").arg(&manifest_path).args(&args.up_args).exec();
        return Err(error).context("cannot run `tessera up`");
    }
    Ok(())
}

/// Builds every component with a build command, stopping at the first failure.
pub fn build_all(manifest: &Manifest) -> Result<()> {
    build_components(manifest, |_| true)
}

/// Builds the components `wanted` names that have a build command, stopping at the first
/// failure.
pub fn build_components(manifest: &Manifest, wanted: impl Fn(&str) -> bool) -> Result<()> {
    build_components_until(manifest, wanted, &|| false)
}

/// A build stopped because `cancelled` said so (watch: a newer change, or Ctrl+C).
#[derive(Debug)]
pub struct BuildCancelled;

impl std::fmt::Display for BuildCancelled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the build was stopped")
    }
}

impl std::error::Error for BuildCancelled {}

/// Runs `command` in `workdir`, its output to the terminal; when `cancelled` turns true
/// the command and everything it started are killed and [`BuildCancelled`] is returned.
fn run_command(command: &str, workdir: &Path, cancelled: &dyn Fn() -> bool) -> Result<std::process::ExitStatus> {
    use std::os::unix::process::CommandExt as _;
    // Its own process group, so a kill reaches what the shell started (cargo, rustc, ...).
    let mut child = Command::new("sh").arg("-c").arg(command).current_dir(workdir).process_group(0).spawn()?;
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        if cancelled() {
            // SAFETY: kill(2) with the negated id of the group this child leads.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            return Err(BuildCancelled.into());
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// [`build_components`], stopping (with [`BuildCancelled`]) when `cancelled` turns true.
pub fn build_components_until(manifest: &Manifest, wanted: impl Fn(&str) -> bool, cancelled: &dyn Fn() -> bool) -> Result<()> {
    let mut built = 0;
    for (id, component) in manifest.components.iter().filter(|(id, _)| wanted(id)) {
        let Some(build) = &component.build else {
            println!("Component `{id}` has no build command: skipping");
            continue;
        };
        let workdir = match &build.workdir {
            Some(w) => manifest.dir.join(w),
            None => manifest.dir.clone(),
        };
        for command in &build.commands {
            println!("Building component `{id}` with `{command}`");
            if !workdir.is_dir() {
                bail!("component `{id}`: build.workdir {} is not a directory\n  hint: fix [component.{id}.build] workdir in {}", workdir.display(), manifest.path.display());
            }
            let status = run_command(command, &workdir, cancelled).map_err(|e| match e.downcast::<BuildCancelled>() {
                Ok(cancelled) => cancelled.into(),
                Err(e) => e.context(format!("cannot run the build command of component `{id}`")),
            })?;
            if !status.success() {
                let code = status.code().map_or("a signal".to_string(), |c| format!("exit code {c}"));
                bail!(
                    "the build command of component `{id}` failed with {code}: `{command}` (in {})\n  hint: fix the command or the code it builds, then run `tessera build` again",
                    workdir.display()
                );
            }
        }
        built += 1;
    }
    println!("Finished building {built} component(s)");
    Ok(())
}
