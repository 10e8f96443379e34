//! `tessera registry push | pull | login`: apps in OCI registries (see tessera-registry).

use anyhow::{Context as _, Result, bail};
use std::io::{IsTerminal as _, Read as _};
use std::path::{Path, PathBuf};
use tessera_manifest::find_manifest;
use tessera_registry::{RegistryOptions, parse_reference};

/// Arguments of `tessera registry`.
#[derive(clap::Args)]
#[command(after_help = "Examples:\n  tessera registry login ghcr.io -u me           # asks for the password\n  tessera registry push ghcr.io/me/app:v1\n  tessera registry pull ghcr.io/me/app:v1\n  tessera up -f ghcr.io/me/app:v1")]
pub struct RegistryArgs {
    #[command(subcommand)]
    command: RegistryCommand,
}

#[derive(clap::Subcommand)]
enum RegistryCommand {
    /// Push an app to a registry, in Spin's artifact format (like `spin registry push`).
    Push {
        /// Where to push: REGISTRY/REPOSITORY:TAG.
        reference: String,
        /// The app's manifest, or a directory holding spin.toml.
        #[arg(short = 'f', long = "from", value_name = "FILE_OR_DIR", default_value = ".")]
        from: PathBuf,
        #[command(flatten)]
        connection: Connection,
    },
    /// Pull an app into the local cache and print the path of its manifest.
    Pull {
        /// What to pull: REGISTRY/REPOSITORY:TAG or REGISTRY/REPOSITORY@sha256:DIGEST.
        reference: String,
        #[command(flatten)]
        connection: Connection,
    },
    /// Store credentials for a registry in the docker config file (like `docker login`).
    Login {
        /// The registry, e.g. ghcr.io or localhost:5000.
        server: String,
        /// User name.
        #[arg(short = 'u', long = "username")]
        username: String,
        /// Read the password from standard input (for scripts). On a terminal, without this
        /// or --password, the password is asked for and not echoed.
        #[arg(long, conflicts_with = "password")]
        password_stdin: bool,
        /// The password (it stays in shell history: prefer the prompt or --password-stdin).
        #[arg(short = 'p', long)]
        password: Option<String>,
        #[command(flatten)]
        connection: Connection,
    },
}

/// How to reach the registry.
#[derive(clap::Args, Clone, Default)]
pub struct Connection {
    /// Use plain HTTP (a local registry without TLS).
    #[arg(short = 'k', long)]
    pub insecure: bool,
    /// Where pulled apps and blobs are kept (default: ~/.cache/tessera/registry).
    #[arg(long, value_name = "DIR", env = "TESSERA_REGISTRY_CACHE")]
    pub registry_cache: Option<PathBuf>,
}

impl Connection {
    pub fn options(&self) -> RegistryOptions {
        RegistryOptions { insecure: self.insecure, cache_dir: self.registry_cache.clone() }
    }
}

pub fn run(args: RegistryArgs) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match args.command {
        RegistryCommand::Push { reference, from, connection } => {
            let manifest = find_manifest(&from)?;
            let reference = parse_reference(&reference)?;
            println!("Pushing app to {reference}");
            let pushed = runtime.block_on(tessera_registry::push(&reference, &manifest, &connection.options()))?;
            println!("Pushed {reference}@{} ({} layers, {} bytes)", pushed.digest, pushed.layers, pushed.bytes);
        }
        RegistryCommand::Pull { reference, connection } => {
            let pulled = runtime.block_on(pull(&reference, &connection))?;
            println!("{}", pulled.manifest.display());
        }
        RegistryCommand::Login { server, username, password_stdin, password, connection } => {
            let password = match password {
                Some(password) => password,
                None if password_stdin || !std::io::stdin().is_terminal() => {
                    if !password_stdin {
                        bail!("give the password on standard input with --password-stdin, e.g. `echo \"$TOKEN\" | tessera registry login {server} -u {username} --password-stdin` (or run the command on a terminal to be asked for it)");
                    }
                    let mut password = String::new();
                    std::io::stdin().read_to_string(&mut password).context("cannot read the password from standard input")?;
                    password.trim_end_matches(['\n', '\r']).to_string()
                }
                None => rpassword::prompt_password(format!("Password for {username} at {server}: ")).context("cannot read the password from the terminal")?,
            };
            if password.is_empty() {
                bail!("the password is empty");
            }
            let path = runtime.block_on(tessera_registry::login(&server, &username, &password, &connection.options()))?;
            println!("Login to {server} succeeded; credentials stored in {}", path.display());
        }
    }
    Ok(())
}

/// Pulls `reference`, downloading only what the cache lacks.
pub async fn pull(reference: &str, connection: &Connection) -> Result<tessera_registry::Pulled> {
    let reference = parse_reference(reference)?;
    let pulled = tessera_registry::pull(&reference, &connection.options()).await?;
    if pulled.downloaded > 0 {
        eprintln!("Pulled {reference}@{} ({} bytes downloaded)", pulled.digest, pulled.downloaded);
    } else {
        eprintln!("Using {reference}@{} from the local cache", pulled.digest);
    }
    Ok(pulled)
}

/// Whether `from` names a registry artifact rather than a local file or directory:
/// it does not exist here and reads as REGISTRY/REPOSITORY[:TAG|@DIGEST].
pub fn looks_like_reference(from: &Path) -> bool {
    from.to_str().is_some_and(|text| tessera_registry::looks_like_reference(text, from.exists()))
}
