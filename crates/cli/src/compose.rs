//! `tessera compose`: writes a component composed with its dependencies to one file that
//! any host runs (`wasmtime serve`, Spin, ...). Denied capabilities are satisfied inside it
//! by stand-ins that refuse as the host would (see `tessera_compose::self_contained`).

use anyhow::{Context as _, Result, bail};
use std::path::PathBuf;
use tessera_manifest::Manifest;

/// Arguments of `tessera compose`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  tessera compose -o composed.wasm\n  tessera compose -f examples/calculator -c frontend -o frontend.wasm")]
pub struct ComposeArgs {
    /// The app: its spin.toml or the directory holding it.
    #[arg(short = 'f', long = "from", value_name = "FILE_OR_DIR", default_value = ".")]
    from: PathBuf,
    /// The component to compose (default: the app's only component with dependencies).
    #[arg(short = 'c', long = "component", value_name = "ID")]
    component: Option<String>,
    /// Where to write the composed component.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: PathBuf,
    #[command(flatten)]
    registry: crate::registry::Connection,
}

pub fn run(args: ComposeArgs) -> Result<()> {
    let manifest = Manifest::from_file(&tessera_manifest::find_manifest(&args.from)?)?;
    let id = match args.component {
        Some(id) => id,
        None => {
            let composed: Vec<&String> = manifest.components.iter().filter(|(_, c)| !c.dependencies.is_empty() || !c.middleware.is_empty()).map(|(id, _)| id).collect();
            match composed.as_slice() {
                [one] => one.to_string(),
                [] => bail!("no component of this app has dependencies or middleware: each source is already a whole program"),
                many => bail!("several components have dependencies ({}); name one with -c ID", many.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")),
            }
        }
    };
    let options = tessera_app::LoadOptions {
        fetcher: Some(std::sync::Arc::new(tessera_registry::SourceCache::new(args.registry.options()))),
        ..Default::default()
    };
    let component = manifest.components.get(&id).with_context(|| format!("the app has no component `{id}`"))?;
    if component.dependencies.is_empty() && component.middleware.is_empty() {
        bail!("component `{id}` has no dependencies: its source is already the whole program");
    }
    let composed = tessera_app::compose_component(&manifest, &id, &options)?;
    let bytes = tessera_compose::self_contained(&composed).with_context(|| format!("cannot write component `{id}` for other hosts"))?;
    // Written beside the target and renamed, so a failure leaves no partial file.
    let output = &args.output;
    let dir = output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(std::path::Path::new("."));
    let mut temp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write to {}", dir.display()))?;
    std::io::Write::write_all(&mut temp, &bytes).with_context(|| format!("cannot write {}", output.display()))?;
    temp.persist(output).with_context(|| format!("cannot write {}", output.display()))?;
    println!("Wrote {} ({} bytes): component `{id}` with {} dependenc{}", output.display(), bytes.len(), composed.satisfied.len(), if composed.satisfied.len() == 1 { "y" } else { "ies" });
    for (import, key) in &composed.satisfied {
        println!("  {import} <- {key}");
    }
    for denied in &composed.denied {
        println!("  denied: {} of dependency `{}` is refused (inherit_configuration = [\"{}\"] allows it)", denied.interface, denied.dependency, denied.inherit_key);
    }
    Ok(())
}
