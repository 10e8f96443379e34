//! `tessera sign` and `tessera verify`: signatures on component files, on every component
//! of an app, and on registry artifacts (see tessera-signing for the formats).

use anyhow::{Context as _, Result, bail};
use std::path::{Path, PathBuf};
use tessera_manifest::{Manifest, find_manifest};
use tessera_signing::{PublicKey, SecretKey, Signed, component};

/// Arguments of `tessera sign`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  tessera sign app.wasm --key release.pem\n  tessera sign . --key ~/.ssh/id_ed25519\n  tessera sign ghcr.io/me/app:v1 --key release.pem")]
pub struct SignArgs {
    /// A component file (.wasm), an app (its spin.toml or directory: every local component
    /// is signed), or a registry reference (REGISTRY/REPOSITORY:TAG).
    target: String,
    /// The private key: Ed25519 or ECDSA P-256, PEM or OpenSSH.
    #[arg(long, value_name = "FILE")]
    key: PathBuf,
    #[command(flatten)]
    registry: crate::registry::Connection,
}

/// Arguments of `tessera verify`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  tessera verify app.wasm --key release.pub.pem\n  tessera verify ghcr.io/me/app:v1 --key release.pub.pem")]
pub struct VerifyArgs {
    /// A component file (.wasm), an app, or a registry reference.
    target: String,
    /// A public key to accept (repeatable): PEM or OpenSSH, Ed25519 or P-256.
    #[arg(long = "key", value_name = "FILE", required = true)]
    keys: Vec<PathBuf>,
    #[command(flatten)]
    registry: crate::registry::Connection,
}

/// What a command argument names.
pub(crate) enum Target {
    Component(PathBuf),
    App(PathBuf),
    Artifact(String),
}

pub(crate) fn target(text: &str) -> Result<Target> {
    let path = Path::new(text);
    if crate::registry::looks_like_reference(path) {
        return Ok(Target::Artifact(text.to_string()));
    }
    if path.is_file() && path.extension().is_some_and(|e| e == "wasm") {
        return Ok(Target::Component(path.to_path_buf()));
    }
    if path.exists() {
        return Ok(Target::App(find_manifest(path)?));
    }
    bail!("`{text}` is not a file, an app directory or a registry reference (REGISTRY/REPOSITORY:TAG)")
}

/// The local component files of the app at `manifest`.
fn app_components(manifest: &Path) -> Result<Vec<(String, PathBuf)>> {
    let manifest = Manifest::from_file(manifest)?;
    Ok(manifest
        .components
        .iter()
        .filter_map(|(id, c)| match c.source.file() {
            Some(path) => Some((id.clone(), path.to_path_buf())),
            None => {
                eprintln!("skipping component `{id}`: its source `{}` is downloaded, sign it where it is published", c.source);
                None
            }
        })
        .collect())
}

pub fn sign(args: SignArgs) -> Result<()> {
    let key = SecretKey::from_file(&args.key)?;
    let fingerprint = key.public().fingerprint();
    let files = match target(&args.target)? {
        Target::Artifact(reference) => {
            let reference = tessera_registry::parse_reference(&reference)?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let signed = runtime.block_on(tessera_registry::sign_artifact(&reference, &key, &args.registry.options()))?;
            println!("Signed {reference}@{} with {} key {fingerprint}; signature stored at {}", signed.digest, key.public().algorithm(), signed.signature_reference);
            return Ok(());
        }
        Target::Component(path) => vec![(String::new(), path)],
        Target::App(manifest) => app_components(&manifest)?,
    };
    for (id, path) in files {
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let label = if id.is_empty() { path.display().to_string() } else { format!("component `{id}` ({})", path.display()) };
        match component::sign(&bytes, &key).with_context(|| format!("cannot sign {label}"))? {
            Signed::Embedded(signed) => {
                write_atomically(&path, &signed)?;
                println!("Signed {label} with Ed25519 key {fingerprint} (signature embedded, wasmsign2 format)");
            }
            Signed::Detached(signature) => {
                let sig_path = tessera_app::signature_path(&path);
                write_atomically(&sig_path, format!("{signature}\n").as_bytes())?;
                println!("Signed {label} with P-256 key {fingerprint} (detached signature {})", sig_path.display());
            }
        }
    }
    Ok(())
}

pub fn verify(args: VerifyArgs) -> Result<()> {
    let keys = args.keys.iter().map(|k| PublicKey::from_file(k)).collect::<Result<Vec<_>>>()?;
    let files = match target(&args.target)? {
        Target::Artifact(reference) => {
            let reference = tessera_registry::parse_reference(&reference)?;
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            let verified = runtime.block_on(tessera_registry::verify_artifact(&reference, &keys, &args.registry.options()))?;
            println!("Verified {reference}@{}: signed by trusted key {}", verified.digest, verified.key);
            return Ok(());
        }
        Target::Component(path) => vec![(path.display().to_string(), path)],
        Target::App(manifest) => app_components(&manifest)?.into_iter().map(|(id, p)| (format!("component `{id}`"), p)).collect(),
    };
    let mut refused = 0;
    for (label, path) in files {
        let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        let detached = std::fs::read_to_string(tessera_app::signature_path(&path)).ok();
        match component::check(&bytes, detached.as_deref(), &keys) {
            Ok(t) => println!("Verified {label}: signed by trusted key {} ({})", t.key, t.how),
            Err(reason) => {
                eprintln!("Refused {label}: {reason}");
                refused += 1;
            }
        }
    }
    if refused > 0 {
        bail!("{refused} component(s) failed verification");
    }
    Ok(())
}

/// Replaces `path` by way of a temporary file, so a failure leaves the old content.
fn write_atomically(path: &Path, data: &[u8]) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, data)?;
    tmp.persist(path).map_err(|e| e.error).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
