//! `tessera build`: runs each component's `build.command` in its `workdir`.

use anyhow::{Context as _, Result, bail};
use std::path::PathBuf;
use std::process::Command;
use tessera_manifest::{Manifest, find_manifest};

/// Arguments of `tessera build`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  tessera build\n  tessera build -f examples/rust-sqlite")]
pub struct BuildArgs {
    /// The app's manifest, or a directory holding spin.toml (or tessera.toml).
    #[arg(short = 'f', long = "from", value_name = "FILE_OR_DIR", default_value = ".")]
    pub from: PathBuf,
}

pub fn run(args: &BuildArgs) -> Result<()> {
    let manifest = Manifest::from_file(&find_manifest(&args.from)?)?;
    build_all(&manifest)
}

/// Builds every component with a build command, stopping at the first failure.
pub fn build_all(manifest: &Manifest) -> Result<()> {
    build_components(manifest, |_| true)
}

/// Builds the components `wanted` names that have a build command, stopping at the first
/// failure.
pub fn build_components(manifest: &Manifest, wanted: impl Fn(&str) -> bool) -> Result<()> {
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
            // Output streams straight to the terminal, as the command prints it.
            let status = Command::new("sh")
                .arg("-c")
                .arg(command)
                .current_dir(&workdir)
                .status()
                .with_context(|| format!("cannot run the build command of component `{id}`"))?;
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
