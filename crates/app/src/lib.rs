//! Tessera's app layer: resolves what a manifest names into a [`LoadedApp`] the engine can
//! run: component bytes, file mounts staged read-only, variable values and rendered
//! grants. Every error names the manifest place to fix.
#![deny(missing_docs)]

mod files;
mod variables;

pub use files::{ComponentFiles, FilesMounts, Mount, walk};

/// Tessera's own cache directory (`$XDG_CACHE_HOME/tessera`, else `~/.cache/tessera`),
/// shared by the compile cache and the registry cache.
pub fn cache_home() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("tessera"))
}
pub use variables::Variables;

use anyhow::{Context as _, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tessera_manifest::allowed_hosts::AllowedHosts;
use tessera_signing::TrustPolicy;
use tessera_manifest::{ComponentLimits, ComponentSource, Location, Manifest, ManifestError, RuntimeConfig};

/// An app ready to run.
#[derive(Debug)]
pub struct LoadedApp {
    /// The validated manifest.
    pub manifest: Manifest,
    /// The runtime config (defaults when no file was given).
    pub runtime_config: RuntimeConfig,
    /// Where the app keeps state (`.spin` beside the manifest by default).
    pub state_dir: PathBuf,
    /// Where guest output is written (`<state_dir>/logs` by default).
    pub log_dir: PathBuf,
    /// Where guest output goes besides [`LoadedApp::log_dir`].
    pub guest_output: GuestOutput,
    /// Application variable values.
    pub variables: Variables,
    /// Components by id.
    pub components: BTreeMap<String, LoadedComponent>,
    /// Holds staged `files` copies until the app is dropped.
    _staging: Option<tempfile::TempDir>,
}

/// Where guest stdout and stderr go (`spin up`'s `--log-dir ""`, `--follow`, `-q`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GuestOutput {
    /// Appended to `<log_dir>/<component>_stdout.txt` and `_stderr.txt`.
    pub to_files: bool,
    /// Which components' lines are printed on the terminal, prefixed with their id.
    pub follow: Follow,
}

impl Default for GuestOutput {
    fn default() -> Self {
        Self { to_files: true, follow: Follow::All }
    }
}

/// Which components' output is printed on the terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Follow {
    /// Every component's (the default).
    All,
    /// Only these components' (`--follow ID`).
    Only(std::collections::BTreeSet<String>),
    /// None (`-q`).
    Nothing,
}

impl Follow {
    /// Whether `component`'s output is printed.
    pub fn includes(&self, component: &str) -> bool {
        match self {
            Follow::All => true,
            Follow::Only(ids) => ids.contains(component),
            Follow::Nothing => false,
        }
    }
}

/// One component with everything resolved.
#[derive(Debug)]
pub struct LoadedComponent {
    /// The component id.
    pub id: String,
    /// The file the bytes were read from (for a pinned source, its verified cached copy).
    pub source: PathBuf,
    /// The component's bytes.
    pub bytes: Vec<u8>,
    /// Read-only directories to preopen for the guest.
    pub mounts: Vec<Mount>,
    /// `environment`.
    pub environment: BTreeMap<String, String>,
    /// `allowed_outbound_hosts`, rendered and parsed.
    pub allowed_outbound_hosts: AllowedHosts,
    /// `variables` (component configuration), rendered.
    pub config: BTreeMap<String, String>,
    /// Limits from the runtime config.
    pub limits: ComponentLimits,
    /// `key_value_stores` grants, with where each is written.
    pub key_value_stores: Vec<(String, Location)>,
    /// `sqlite_databases` grants, with where each is written.
    pub sqlite_databases: Vec<(String, Location)>,
    /// `allowed_publish_subjects` grants (NATS subject patterns).
    pub allowed_publish_subjects: Vec<(String, Location)>,
    /// `blob_containers` grants.
    pub blob_containers: Vec<(String, Location)>,
    /// Capability imports of its dependencies that the host must refuse (see
    /// tessera-compose); empty without dependencies.
    pub denied: Vec<tessera_compose::DeniedImport>,
}

/// Downloads components whose `source` is a URL or a registry package, verifies them and
/// returns the path of the verified local copy (tessera-registry implements it with a
/// content-addressed cache).
pub trait SourceFetcher: Send + Sync {
    /// The local file holding `source` for component `id`: a file source as it is, a
    /// download as its verified copy.
    fn fetch(&self, id: &str, source: &ComponentSource) -> Result<PathBuf>;
}

/// Where to find things when loading.
#[derive(Clone, Default)]
pub struct LoadOptions {
    /// `--runtime-config-file`.
    pub runtime_config_file: Option<PathBuf>,
    /// A runtime config built by the caller (`tessera run` from its flags), used when no
    /// file is given.
    pub runtime_config: Option<RuntimeConfig>,
    /// `--log-dir`.
    pub log_dir: Option<PathBuf>,
    /// Where state goes when the runtime config does not say (default: `.spin` beside the
    /// manifest).
    pub state_dir: Option<PathBuf>,
    /// Fetches `{ url, digest }` and registry package sources; without one they are refused.
    pub fetcher: Option<std::sync::Arc<dyn SourceFetcher>>,
    /// The fingerprint of the trusted key whose signature on the registry artifact this app
    /// was pulled from was verified: under `[trust]` it vouches for every component in it.
    pub artifact_signed_by: Option<String>,
    /// Variable values given by a host of many apps, in place of the process environment
    /// (`SPIN_VARIABLE_*` would otherwise be shared by every app).
    pub variables: Option<BTreeMap<String, String>>,
    /// Variable values that win over every other source (`spin up --variable`).
    pub variable_overrides: BTreeMap<String, String>,
    /// Added to every component's `environment`, replacing its own value
    /// (`spin up -e KEY=VALUE`).
    pub environment: BTreeMap<String, String>,
    /// The state directory, over the runtime config's `state_dir` (`--state-dir`).
    pub state_dir_override: Option<PathBuf>,
    /// Where guest output goes.
    pub guest_output: GuestOutput,
    /// How `files` are mounted (`spin up --temp`, `--direct-mounts`).
    pub files_mounts: files::FilesMounts,
}

impl std::fmt::Debug for LoadOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoadOptions")
            .field("runtime_config_file", &self.runtime_config_file)
            .field("runtime_config", &self.runtime_config)
            .field("log_dir", &self.log_dir)
            .field("state_dir", &self.state_dir)
            .field("fetcher", &self.fetcher.is_some())
            .field("artifact_signed_by", &self.artifact_signed_by)
            .field("variables", &self.variables.as_ref().map(|v| v.keys().collect::<Vec<_>>()))
            .field("variable_overrides", &self.variable_overrides.keys().collect::<Vec<_>>())
            .field("environment", &self.environment.keys().collect::<Vec<_>>())
            .field("state_dir_override", &self.state_dir_override)
            .field("guest_output", &self.guest_output)
            .field("files_mounts", &self.files_mounts)
            .finish()
    }
}

/// The local file holding a component's Wasm: the `source` path itself, or the verified
/// download of a pinned source.
fn local_source(manifest: &Manifest, id: &str, source: &ComponentSource, at: Location, options: &LoadOptions) -> Result<PathBuf> {
    if let Some(path) = source.file() {
        return Ok(path.to_path_buf());
    }
    let Some(fetcher) = &options.fetcher else {
        return Err(located(manifest, at, format!("component `{id}`: this host cannot download `{source}`"), "download the component and point `source` at the file"));
    };
    fetcher
        .fetch(id, source)
        .map_err(|e| located(manifest, at, format!("component `{id}`: cannot fetch `{source}`: {e:#}"), "check the source's url or package, version and digest"))
}

/// Where a component's detached signature is looked for: `FILE.wasm.sig`.
pub fn signature_path(component: &Path) -> PathBuf {
    let mut name = component.as_os_str().to_owned();
    name.push(".sig");
    PathBuf::from(name)
}

/// Composes component `id` of `manifest` with its dependencies as loading does (without
/// the trust policy), for tools that show the result (`tessera inspect`).
pub fn compose_component(manifest: &Manifest, id: &str, options: &LoadOptions) -> Result<tessera_compose::Composed> {
    let component = manifest.components.get(id).with_context(|| format!("the app has no component `{id}`"))?;
    let source = local_source(manifest, id, &component.source, component.source_location, options)?;
    let bytes = std::fs::read(&source).with_context(|| format!("component `{id}`: cannot read source `{}`", source.display()))?;
    compose_dependencies(manifest, id, component, &bytes, options, None)
}

/// Component `id` composed with its dependencies as one component any host runs (denied
/// capabilities satisfied inside it, see `tessera_compose::self_contained`): what
/// `tessera registry push` publishes for a component with dependencies, as Spin does.
pub fn compose_for_other_hosts(manifest: &Manifest, id: &str, options: &LoadOptions) -> Result<Vec<u8>> {
    let composed = compose_component(manifest, id, options)?;
    tessera_compose::self_contained(&composed).with_context(|| format!("component `{id}` cannot be composed for other hosts"))
}

/// Composes component `id` (its bytes `parent`) with its dependencies, then wraps it in
/// its HTTP middleware; each is read from its file, another component's source or a
/// pinned download, and checked against the trust policy like any component.
fn compose_dependencies(
    manifest: &Manifest,
    id: &str,
    component: &tessera_manifest::Component,
    parent: &[u8],
    options: &LoadOptions,
    trust: Option<&TrustPolicy>,
) -> Result<tessera_compose::Composed> {
    let mut resolved = Vec::new();
    for dependency in &component.dependencies {
        resolved.push((dependency, read_dependency(manifest, id, &dependency.name.to_string(), dependency, options, trust)?));
    }
    let dependencies: Vec<tessera_compose::Dependency<'_>> = resolved
        .iter()
        .map(|(d, bytes)| tessera_compose::Dependency { name: &d.name, bytes, export: d.export.as_deref(), inherit: &d.inherit })
        .collect();
    let locate = |e: tessera_compose::ComposeError, entries: &[(String, Location)]| {
        use tessera_compose::ComposeError as E;
        let key = match &e {
            E::Unmatched { key, .. } | E::MissingExport { key, .. } | E::Mismatch { key, .. } => Some(key.clone()),
            E::Invalid { dependency, .. } => dependency.clone(),
            E::Conflict { keys, .. } => keys.last().cloned(),
            E::Middleware { key, .. } => key.clone(),
            E::Encode(_) => None,
        };
        let at = key.and_then(|k| entries.iter().find(|(name, _)| *name == k)).map_or(component.source_location, |(_, at)| *at);
        let hint = match e {
            tessera_compose::ComposeError::Middleware { key: None, .. } => "build the component as a WASI 0.3 handler (e.g. wasip3's `http::service::export!`), or drop the trigger's middleware",
            tessera_compose::ComposeError::Middleware { .. } => "point the entry at a middleware component (the wasi:http/middleware world)",
            _ => "fix the dependency's key, `export` or component so that it provides what the import asks for",
        };
        located(manifest, at, format!("component `{id}`: {e}"), hint)
    };
    let mut composed = if dependencies.is_empty() {
        tessera_compose::Composed { bytes: parent.to_vec(), denied: Vec::new(), satisfied: Vec::new() }
    } else {
        let entries: Vec<(String, Location)> = component.dependencies.iter().map(|d| (d.name.to_string(), d.location)).collect();
        tessera_compose::compose(id, parent, &dependencies).map_err(|e| locate(e, &entries))?
    };
    if !component.middleware.is_empty() {
        let mut layers = Vec::new();
        for (i, layer) in component.middleware.iter().enumerate() {
            layers.push((layer, read_dependency(manifest, id, &format!("middleware[{i}]"), layer, options, trust)?));
        }
        let middleware: Vec<tessera_compose::Dependency<'_>> = layers
            .iter()
            .map(|(d, bytes)| tessera_compose::Dependency { name: &d.name, bytes, export: None, inherit: &d.inherit })
            .collect();
        let entries: Vec<(String, Location)> = component.middleware.iter().enumerate().map(|(i, d)| (format!("middleware[{i}]"), d.location)).collect();
        let wrapped = tessera_compose::wrap_in_middleware(id, &composed.bytes, composed.denied, &middleware).map_err(|e| locate(e, &entries))?;
        composed = tessera_compose::Composed { satisfied: [composed.satisfied, wrapped.satisfied].concat(), ..wrapped };
    }
    for (import, key) in &composed.satisfied {
        tracing::debug!("component `{id}`: import `{import}` is satisfied by `{key}`");
    }
    Ok(composed)
}

/// The bytes of dependency (or middleware) `key`, checked against the trust policy.
fn read_dependency(
    manifest: &Manifest,
    id: &str,
    key: &str,
    dependency: &tessera_manifest::dependencies::Dependency,
    options: &LoadOptions,
    trust: Option<&TrustPolicy>,
) -> Result<Vec<u8>> {
    use tessera_manifest::dependencies::DependencySource;
    let path = match &dependency.source {
        DependencySource::Path(path) => manifest.dir.join(path),
        DependencySource::Component(other) => {
            let other_component = &manifest.components[other];
            local_source(manifest, other, &other_component.source, dependency.location, options)?
        }
        DependencySource::Url { url, digest } => {
            let source = ComponentSource::Url { url: url.clone(), digest: digest.clone() };
            local_source(manifest, &format!("{id}` dependency `{key}"), &source, dependency.location, options)?
        }
        DependencySource::Registry { version, registry, package } => {
            let package = match (package, &dependency.name) {
                (Some(p), _) => p.clone(),
                (None, tessera_manifest::dependencies::DependencyName::Package(p)) => p.package.clone(),
                (None, tessera_manifest::dependencies::DependencyName::Plain(_)) => {
                    return Err(located(manifest, dependency.location, format!("component `{id}`: dependency `{key}` names no package to fetch"), "add package = \"ns:pkg\""));
                }
            };
            let source = ComponentSource::Package { registry: registry.clone(), package, version: version.clone() };
            local_source(manifest, &format!("{id}` dependency `{key}"), &source, dependency.location, options)?
        }
    };
    let bytes = std::fs::read(&path).map_err(|e| {
        located(manifest, dependency.location, format!("component `{id}`: cannot read dependency `{key}` from `{}`: {e}", path.display()), "build the dependency first, or fix its path")
    })?;
    if let Some(policy) = trust {
        let detached = std::fs::read_to_string(signature_path(&path)).ok();
        let trusted = policy
            .check(&bytes, detached.as_deref(), options.artifact_signed_by.as_deref())
            .map_err(|reason| policy.refusal(&format!("{id}` dependency `{key}"), &path, &reason))?;
        tracing::info!("dependency `{key}` of component `{id}` is signed by trusted key {} ({})", trusted.key, trusted.how);
    }
    Ok(bytes)
}

/// An error at a place in the app's manifest.
pub(crate) fn located(m: &Manifest, at: Location, message: String, hint: &str) -> anyhow::Error {
    ManifestError::at(&m.path, at, message, hint).into()
}

impl LoadedApp {
    /// Loads the app whose manifest is at `manifest_path`.
    pub fn load(manifest_path: &Path, options: &LoadOptions) -> Result<Self> {
        Self::from_manifest(Manifest::from_file(manifest_path)?, options)
    }

    /// Loads the app `manifest` describes (read from a file, or made for a bare
    /// component by [`Manifest::for_component`]).
    pub fn from_manifest(manifest: Manifest, options: &LoadOptions) -> Result<Self> {
        let runtime_config = match (&options.runtime_config_file, &options.runtime_config) {
            (Some(path), _) => RuntimeConfig::from_file(path)?,
            (None, Some(rc)) => rc.clone(),
            (None, None) => RuntimeConfig::default(),
        };
        for id in runtime_config.component_limits.keys() {
            if !manifest.components.contains_key(id) {
                let message = format!("the runtime config sets limits for component `{id}`, which the manifest does not define");
                let known: Vec<&str> = manifest.components.keys().map(String::as_str).collect();
                let hint = format!("rename [component.{id}] to one of the app's components ({}), or remove it", known.join(", "));
                return Err(match (&options.runtime_config_file, runtime_config.component_locations.get(id)) {
                    (Some(file), Some(at)) => ManifestError::at(file, *at, message, &hint).into(),
                    _ => anyhow::anyhow!("{message}\n  hint: {hint}"),
                });
            }
        }
        let state_dir = options
            .state_dir_override
            .clone()
            .or_else(|| runtime_config.state_dir.clone())
            .or_else(|| options.state_dir.clone())
            .unwrap_or_else(|| manifest.dir.join(".spin"));
        let log_dir = options
            .log_dir
            .clone()
            .or_else(|| runtime_config.log_dir.clone())
            .unwrap_or_else(|| state_dir.join("logs"));
        let given_by_name = |given: &BTreeMap<String, String>, key: &str| {
            let name = key.strip_prefix("TESSERA_VARIABLE_").or_else(|| key.strip_prefix("SPIN_VARIABLE_"))?;
            given.get(&name.to_ascii_lowercase()).cloned()
        };
        for name in options.variable_overrides.keys().filter(|n| !manifest.variables.contains_key(&n.to_ascii_lowercase())) {
            tracing::warn!("--variable {name}: the app declares no variable `{name}` (it is ignored)");
        }
        let overrides: BTreeMap<String, String> = options.variable_overrides.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect();
        let variables = Variables::resolve_with(&manifest, &runtime_config.variables_providers, |key| {
            given_by_name(&overrides, key).or_else(|| match &options.variables {
                Some(given) => given_by_name(given, key),
                None => std::env::var(key).ok(),
            })
        })?;
        let trust = runtime_config.trust.as_ref().map(TrustPolicy::from_table).transpose()?;

        let mut staging = None;
        let mut components = BTreeMap::new();
        for (id, c) in &manifest.components {
            let source = local_source(&manifest, id, &c.source, c.source_location, options)?;
            let bytes = std::fs::read(&source).map_err(|e| {
                located(
                    &manifest,
                    c.source_location,
                    format!("component `{id}`: cannot read source `{}`: {e}", source.display()),
                    "build the component first (`tessera build`, or `tessera up --build`), or fix `source`",
                )
            })?;
            if let Some(policy) = &trust {
                let detached = std::fs::read_to_string(signature_path(&source)).ok();
                let trusted = policy
                    .check(&bytes, detached.as_deref(), options.artifact_signed_by.as_deref())
                    .map_err(|reason| policy.refusal(id, &source, &reason))?;
                tracing::info!("component `{id}` is signed by trusted key {} ({})", trusted.key, trusted.how);
            }
            let (bytes, denied) = if c.dependencies.is_empty() && c.middleware.is_empty() {
                (bytes, Vec::new())
            } else {
                let composed = compose_dependencies(&manifest, id, c, &bytes, options, trust.as_ref())?;
                (composed.bytes, composed.denied)
            };
            let mounts = files::mounts(&manifest, c, &mut staging, &options.files_mounts)?;
            let mut rendered = Vec::new();
            for (template, at) in &c.allowed_outbound_hosts {
                let host = template.render(variables.values()).map_err(|e| located(&manifest, *at, e, "give the variable a value"))?;
                rendered.push((host, *at));
            }
            let mut allowed = Vec::new();
            for (host, at) in &rendered {
                tessera_manifest::allowed_hosts::AllowedHost::parse(host).map_err(|e| {
                    located(&manifest, *at, format!("invalid allowed_outbound_hosts entry after variables were filled in: {e}"), "check the variable's value")
                })?;
                allowed.push(host.clone());
            }
            let allowed_outbound_hosts = AllowedHosts::parse(&allowed).map_err(anyhow::Error::msg)?;
            let mut config = BTreeMap::new();
            for (key, template) in &c.variables {
                let value = template.render(variables.values()).map_err(anyhow::Error::msg)?;
                config.insert(key.clone(), value);
            }
            components.insert(
                id.clone(),
                LoadedComponent {
                    id: id.clone(),
                    source,
                    bytes,
                    mounts,
                    environment: c.environment.clone().into_iter().chain(options.environment.clone()).collect(),
                    allowed_outbound_hosts,
                    config,
                    limits: runtime_config.limits_for(id),
                    key_value_stores: c.key_value_stores.clone(),
                    sqlite_databases: c.sqlite_databases.clone(),
                    allowed_publish_subjects: c.allowed_publish_subjects.clone(),
                    blob_containers: c.blob_containers.clone(),
                    denied,
                },
            );
        }
        Ok(Self {
            manifest,
            runtime_config,
            state_dir,
            log_dir,
            guest_output: options.guest_output.clone(),
            variables,
            components,
            _staging: staging,
        })
    }

    /// Creates the state and log directories.
    pub fn create_dirs(&self) -> Result<()> {
        let log_dir = self.guest_output.to_files.then_some(&self.log_dir);
        for dir in std::iter::once(&self.state_dir).chain(log_dir) {
            std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        }
        Ok(())
    }
}
