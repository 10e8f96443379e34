//! The host, built once per process: the engine (pooling allocator, compile cache,
//! instruction metering), tenants with their concurrency limits, and plugins loaded from
//! bytes, files or registries, checked against trusted keys when asked, and compiled once
//! per digest.

use crate::plugin::{Loaded, Plugin};
use crate::{Grants, Quotas};
use anyhow::{Context as _, Result, bail};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;
use tessera_app::{LoadOptions, LoadedApp};
use tessera_engine::{CompileCache, Engine, EngineSettings};
use tessera_executor::{Executor, ExecutorOptions, InstanceSlots, LinkExtension};
use tessera_manifest::template::Template;
use tessera_manifest::{Location, Manifest, RuntimeConfig};
use tessera_signing::PublicKey;

/// How the host is built. The defaults suit a service running untrusted plugins.
#[derive(Clone)]
pub struct HostOptions {
    /// Instances that may run at once, over all tenants (the pool's slots).
    pub max_instances: u32,
    /// The most memory any call's quota may allow (each pool slot's size).
    pub max_memory: u64,
    /// Guest stack; deeper recursion is stopped with the `stack` quota.
    pub max_wasm_stack: usize,
    /// Count instructions, so calls have an instruction quota and report what they used.
    /// Costs guest code some speed (see bench/RESULTS.md); off, only time bounds a loop.
    pub meter_instructions: bool,
    /// Where compiled plugins are cached across restarts (`None`: compile in memory only).
    pub cache_dir: Option<PathBuf>,
    /// Where plugin files and tenants' stores are kept (default: a temporary directory
    /// removed with the host).
    pub state_dir: Option<PathBuf>,
    /// The embedder's own host functions, linked for every plugin (see the crate docs).
    pub link: Option<LinkExtension>,
    /// How registry references are pulled.
    pub registry: tessera_registry::RegistryOptions,
}

impl Default for HostOptions {
    fn default() -> Self {
        Self {
            max_instances: 1000,
            max_memory: 256 << 20,
            max_wasm_stack: 512 << 10,
            meter_instructions: true,
            cache_dir: CompileCache::default_dir(),
            state_dir: None,
            link: None,
            registry: Default::default(),
        }
    }
}

/// Runs plugins. Build one per process and share it (cheap to clone).
#[derive(Clone)]
pub struct PluginHost(Arc<HostInner>);

struct HostInner {
    engine: Engine,
    options: HostOptions,
    state_dir: PathBuf,
    _temporary: Option<tempfile::TempDir>,
    /// Plugins by what makes two loads the same (digest, grants, state), while loaded.
    loaded: Mutex<HashMap<LoadKey, Weak<Loaded>>>,
}

#[derive(Clone, PartialEq, Eq, Hash)]
struct LoadKey {
    digest: String,
    grants: Grants,
    state_dir: Option<PathBuf>,
}

/// Where a plugin comes from.
#[derive(Debug, Clone)]
pub enum Source {
    /// A component's bytes.
    Bytes(Vec<u8>),
    /// A component file; `FILE.sig` beside it is its detached signature, if any.
    File(PathBuf),
    /// A registry reference (`registry/repository:tag`) to a single component or an app of
    /// one component, as `tessera registry push` writes them.
    Registry(String),
}

/// How one plugin is loaded.
#[derive(Debug, Clone, Default)]
pub struct PluginOptions {
    /// Its name in logs and errors (default: from the file or reference, else its digest).
    pub name: Option<String>,
    /// The tenant whose concurrency limits and state it shares (default: a tenant of its own
    /// with [`TenantLimits::default`]).
    pub tenant: Option<Tenant>,
    /// Quotas for each call (a call may set its own).
    pub quotas: Quotas,
    /// What it may reach beyond computing (nothing by default).
    pub grants: Grants,
    /// When set, the plugin must be signed by one of these keys (an embedded or detached
    /// signature on the component, or a signature on its registry artifact), as `[trust]`.
    pub trusted_keys: Option<Vec<PublicKey>>,
}

/// How many calls of one tenant run at once, and how many wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TenantLimits {
    /// Calls running at once.
    pub max_concurrent: usize,
    /// Calls waiting for one of those; more are refused at once.
    pub max_queued: usize,
    /// How long a call may wait before it is refused.
    pub queue_timeout: Duration,
}

impl Default for TenantLimits {
    fn default() -> Self {
        Self { max_concurrent: 4, max_queued: 64, queue_timeout: Duration::from_secs(1) }
    }
}

/// One customer: its concurrency limits and its state directory, shared by its plugins.
#[derive(Clone)]
pub struct Tenant(Arc<TenantInner>);

struct TenantInner {
    name: String,
    limits: TenantLimits,
    slots: InstanceSlots,
    state_dir: PathBuf,
}

impl std::fmt::Debug for Tenant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenant").field("name", &self.0.name).field("limits", &self.0.limits).finish()
    }
}

impl Tenant {
    /// Its name.
    pub fn name(&self) -> &str {
        &self.0.name
    }

    /// Its limits.
    pub fn limits(&self) -> TenantLimits {
        self.0.limits
    }

    pub(crate) fn slots(&self) -> &InstanceSlots {
        &self.0.slots
    }
}

impl PluginHost {
    /// Builds the engine. Fails when `max_memory` or the pool cannot be had.
    pub fn new(options: HostOptions) -> Result<Self> {
        let engine = Engine::new(&EngineSettings {
            max_instances: options.max_instances,
            max_instance_memory: options.max_memory,
            cache_dir: options.cache_dir.clone(),
            max_wasm_stack: options.max_wasm_stack,
            consume_fuel: options.meter_instructions,
        })?;
        let (state_dir, temporary) = match &options.state_dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).with_context(|| format!("cannot create the plugin state directory {}", dir.display()))?;
                (dir.clone(), None)
            }
            None => {
                let dir = tempfile::Builder::new().prefix("tessera-plugins-").tempdir().context("cannot create a temporary state directory")?;
                (dir.path().to_path_buf(), Some(dir))
            }
        };
        Ok(Self(Arc::new(HostInner { engine, options, state_dir, _temporary: temporary, loaded: Mutex::default() })))
    }

    /// A tenant named `name` (letters, digits, `-` and `_`: it names its state directory).
    pub fn tenant(&self, name: &str, limits: TenantLimits) -> Result<Tenant> {
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            bail!("tenant name `{name}`: use letters, digits, `-` and `_` only");
        }
        if limits.max_concurrent == 0 {
            bail!("tenant `{name}`: max_concurrent must be at least 1");
        }
        Ok(Tenant(Arc::new(TenantInner {
            name: name.to_string(),
            limits,
            slots: InstanceSlots::new(limits.max_concurrent, limits.max_queued, limits.queue_timeout),
            state_dir: self.0.state_dir.join("tenants").join(name),
        })))
    }

    /// Loads a plugin: reads or pulls it, checks its signature when `trusted_keys` is set,
    /// and compiles it (once per digest and grants; the same bytes loaded again, by any
    /// tenant without state of its own, share the compiled code).
    pub async fn load(&self, source: Source, options: PluginOptions) -> Result<Plugin> {
        let host = &self.0;
        if options.quotas.memory > host.options.max_memory {
            bail!(
                "the plugin's memory quota ({} bytes) is above the host's max_memory ({} bytes): lower the quota or raise HostOptions::max_memory",
                options.quotas.memory,
                host.options.max_memory
            );
        }
        let read = self.read(source, options.trusted_keys.as_deref()).await?;
        let bytes = read.bytes;
        let digest = tessera_registry::digest_of(&bytes);
        let name = options.name.clone().or(read.name).unwrap_or_else(|| format!("plugin-{}", &digest[7..19]));
        if let Some(keys) = &options.trusted_keys
            && !read.artifact_signed
        {
            tessera_signing::component::check(&bytes, read.detached_signature.as_deref(), keys)
                .map_err(|reason| anyhow::anyhow!("plugin `{name}` is refused: {reason}; sign it with `tessera sign` and a trusted key"))?;
        }
        let tenant = match options.tenant.clone() {
            Some(t) => t,
            None => self.tenant(&file_safe(&name), TenantLimits::default())?,
        };
        let key = LoadKey {
            digest: digest.clone(),
            grants: options.grants.clone(),
            state_dir: options.grants.keeps_state().then(|| tenant.0.state_dir.clone()),
        };
        let cached = host.loaded.lock().unwrap_or_else(|e| e.into_inner()).get(&key).and_then(Weak::upgrade);
        let loaded = match cached {
            Some(loaded) => loaded,
            None => {
                let loaded = Arc::new(self.compile(&name, &bytes, &digest, &key)?);
                let mut map = host.loaded.lock().unwrap_or_else(|e| e.into_inner());
                map.retain(|_, weak| weak.strong_count() > 0);
                map.insert(key, Arc::downgrade(&loaded));
                loaded
            }
        };
        Ok(Plugin::new(name, loaded, tenant, options.quotas, options.grants, host.options.meter_instructions))
    }

    /// The plugin's bytes, taken from `source` (a registry artifact's signature is checked
    /// against `trusted_keys` before it is pulled).
    async fn read(&self, source: Source, trusted_keys: Option<&[PublicKey]>) -> Result<Read> {
        match source {
            Source::Bytes(bytes) => Ok(Read { bytes, name: None, detached_signature: None, artifact_signed: false }),
            Source::File(path) => {
                let bytes = std::fs::read(&path).with_context(|| format!("cannot read plugin {}", path.display()))?;
                let detached_signature = std::fs::read_to_string(tessera_app::signature_path(&path)).ok();
                Ok(Read { bytes, name: Some(name_of(&path)), detached_signature, artifact_signed: false })
            }
            Source::Registry(reference) => {
                let parsed = tessera_registry::parse_reference(&reference)?;
                let options = &self.0.options.registry;
                if let Some(keys) = trusted_keys {
                    tessera_registry::verify_artifact(&parsed, keys, options).await.with_context(|| format!("plugin {reference} is refused"))?;
                }
                let pulled = tessera_registry::pull(&parsed, options).await?;
                let manifest = Manifest::from_file(&pulled.manifest)?;
                let [component] = manifest.components.values().collect::<Vec<_>>()[..] else {
                    bail!("{reference} is an app of {} components; a plugin is one component", manifest.components.len());
                };
                let path = component.source.file().context("the pulled component has no local file")?;
                let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
                let name = parsed.repository().rsplit('/').next().unwrap_or("plugin").to_string();
                Ok(Read { bytes, name: Some(name), detached_signature: None, artifact_signed: trusted_keys.is_some() })
            }
        }
    }

    /// Compiles (or loads from the compile cache) and pre-instantiates, on an executor of
    /// its own whose app is the one component with its grants.
    fn compile(&self, name: &str, bytes: &[u8], digest: &str, key: &LoadKey) -> Result<Loaded> {
        let host = &self.0;
        // One directory per digest; the file is named after the plugin that loaded it
        // first, so log lines name it.
        let dir = host.state_dir.join("components").join(digest.replace(':', "-"));
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join(format!("{}.wasm", file_safe(name)));
        if !path.is_file() {
            // Written whole under another name first, so a crash leaves no half file.
            let staging = tempfile::NamedTempFile::new_in(&dir)?;
            std::fs::write(staging.path(), bytes)?;
            staging.persist(&path).map_err(|e| e.error).with_context(|| format!("cannot write {}", path.display()))?;
        }
        let mut manifest = Manifest::for_component(&path);
        manifest.http_triggers.clear();
        let id = manifest.components.keys().next().expect("one component").clone();
        let component = manifest.components.get_mut(&id).expect("just made");
        let grants = &key.grants;
        let at = Location::default;
        for host_pattern in &grants.allowed_outbound_hosts {
            let template = Template::parse(host_pattern).map_err(|e| anyhow::anyhow!("allowed_outbound_hosts `{host_pattern}`: {e}"))?;
            component.allowed_outbound_hosts.push((template, at()));
        }
        component.key_value_stores = grants.key_value_stores.iter().map(|s| (s.clone(), at())).collect();
        component.sqlite_databases = grants.sqlite_databases.iter().map(|s| (s.clone(), at())).collect();
        for (name, value) in &grants.variables {
            component.variables.insert(name.clone(), Template::literal(value));
        }
        let mut runtime_config = RuntimeConfig::default();
        runtime_config.limits.max_instance_memory = host.options.max_memory;
        runtime_config.max_wasm_stack = host.options.max_wasm_stack as u64;
        let state_dir = key.state_dir.clone().unwrap_or_else(|| host.state_dir.join("stateless"));
        let app = LoadedApp::from_manifest(
            manifest,
            &LoadOptions {
                runtime_config: Some(runtime_config),
                log_dir: Some(host.state_dir.join("logs")),
                state_dir: Some(state_dir),
                ..LoadOptions::default()
            },
        )?;
        let executor = Executor::new(
            &host.engine,
            Arc::new(app),
            ExecutorOptions { limits: crate::quotas::QUOTA_NAMES, fuel: None, link: host.options.link.clone(), log_failures: false, metrics: None },
        )?;
        let prepared = executor.prepare(&id)?;
        Ok(Loaded { executor, prepared, digest: digest.to_string() })
    }
}

/// `name` with only letters, digits, `-` and `_` (a file name and component id).
fn file_safe(name: &str) -> String {
    let safe: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    if safe.trim_matches('-').is_empty() { "plugin".into() } else { safe }
}

/// A plugin as read from its source.
struct Read {
    bytes: Vec<u8>,
    /// Its name from the file or reference.
    name: Option<String>,
    /// `FILE.sig` beside a file source.
    detached_signature: Option<String>,
    /// The registry artifact's signature was verified by a trusted key.
    artifact_signed: bool,
}

fn name_of(path: &Path) -> String {
    path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "plugin".into())
}
