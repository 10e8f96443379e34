//! Many apps in one process (`tessera host`): one engine and instance pool, one HTTP
//! listener, and each app with its own state, runtime config, variables, `[trust]` policy
//! and quota.
//!
//! Each request is routed by its `Host` header and path prefix to the version of an app
//! deployed now. A request holds the version it was routed to, so an update swaps the
//! routing table and the old version drains by itself: its in-flight requests finish on
//! it while new ones go to the new version, and no request fails.

use crate::apps_file::{AppSource, AppSpec, normalize_host};
use crate::{AppHost, Serving};
use anyhow::{Context as _, Result};
use hyper::body::Incoming;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime};
use tessera_app::{LoadOptions, LoadedApp};
use tessera_engine::{Engine, EngineSettings};
use tessera_manifest::{Manifest, find_manifest};
use tessera_trigger_http::{Frontend, HttpTrigger, ListenerLimits, ResponseBody};

/// How the host is set up (`tessera host`'s flags).
#[derive(Debug, Clone)]
pub struct HostSettings {
    /// Where an app's state goes when its entry gives no `state_dir`: `<state_dir>/<name>`.
    pub state_dir: PathBuf,
    /// Instance slots of the shared pool, split among the apps' quotas.
    pub max_instances: usize,
    /// The most memory any instance may have; an app's quota may only lower it.
    pub max_instance_memory: u64,
    /// Instance slots of an app whose entry sets no `quota.instances`.
    pub default_app_instances: usize,
    /// Where compiled components are cached.
    pub cache_dir: Option<PathBuf>,
    /// How apps from registries are pulled.
    pub registry: tessera_registry::RegistryOptions,
    /// How long an old version, or every app at shutdown, may take to finish its work.
    pub shutdown_timeout: Duration,
}

/// What the host knows of a deployed app, for listing and inspecting.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AppStatus {
    /// Its name.
    pub name: String,
    /// Where it came from.
    pub source: String,
    /// `Host` headers it answers (empty: any).
    pub hosts: Vec<String>,
    /// The path its routes live under.
    pub path_prefix: String,
    /// Deployments of this name so far (1 for the first).
    pub version: u64,
    /// Instance slots it has.
    pub instances: usize,
    /// Requests that may wait for a slot.
    pub queued: usize,
    /// Its state directory.
    pub state_dir: PathBuf,
    /// Its HTTP routes, `component: path`.
    pub routes: Vec<String>,
    /// Its components' ids.
    pub components: Vec<String>,
    /// Seconds since the Unix epoch when this version was deployed.
    pub deployed_at: u64,
}

/// What a reconciliation did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reconciled {
    /// Apps deployed for the first time.
    pub deployed: Vec<String>,
    /// Apps replaced by a new version.
    pub updated: Vec<String>,
    /// Apps left as they were.
    pub unchanged: Vec<String>,
    /// Apps removed.
    pub undeployed: Vec<String>,
    /// Apps that could not be (re)deployed, with the reason; an old version keeps serving.
    pub failed: Vec<(String, String)>,
}

/// One deployed version of an app.
struct Deployed {
    spec: AppSpec,
    /// Listed in the apps file (reconciliation owns it), rather than deployed through the
    /// admin API (reconciliation leaves it alone unless the file names it).
    from_file: bool,
    /// Its manifest, components and runtime config.
    files: Vec<PathBuf>,
    /// What they looked like when loaded, to see whether a reload changes anything.
    fingerprint: Vec<(u64, Option<SystemTime>)>,
    status: AppStatus,
    http: Option<Arc<HttpTrigger>>,
    serving: Serving,
    /// The unpacked archive it was deployed from, removed once this version has drained.
    _unpacked: Option<tempfile::TempDir>,
}

/// Where requests go: apps by host (`""` for any) and path prefix. A lookup costs one hash
/// probe per path segment, however many apps there are.
#[derive(Default)]
struct RoutingTable {
    by_host: HashMap<String, HashMap<String, RouteEntry>>,
}

#[derive(Clone)]
struct RouteEntry {
    prefix: String,
    http: Arc<HttpTrigger>,
}

impl RoutingTable {
    /// Apps naming the host first, then apps for any host; the longest prefix first.
    fn route(&self, host: &str, path: &str) -> Option<&RouteEntry> {
        [host, ""].into_iter().filter_map(|h| self.by_host.get(h)).find_map(|prefixes| prefixes_of(path).find_map(|p| prefixes.get(p)))
    }
}

/// `/a/b/c`, `/a/b`, `/a`, `/`: the prefixes a path is under, at segment boundaries.
fn prefixes_of(path: &str) -> impl Iterator<Item = &str> {
    let path = path.trim_end_matches('/');
    let mut end = Some(path.len());
    std::iter::from_fn(move || {
        let at = end?;
        let prefix = if at == 0 { "/" } else { &path[..at] };
        end = if at == 0 { None } else { Some(path[..at].rfind('/').unwrap_or(0)) };
        Some(prefix)
    })
}

/// Many apps served by one process.
pub struct ManyApps {
    engine: Engine,
    settings: HostSettings,
    routes: RwLock<Arc<RoutingTable>>,
    /// Deployments are made one at a time.
    apps: tokio::sync::Mutex<BTreeMap<String, Deployed>>,
    versions: std::sync::Mutex<BTreeMap<String, u64>>,
    open_connections: Arc<AtomicUsize>,
    next_unrouted: AtomicU64,
    metrics: Arc<tessera_executor::metrics::Metrics>,
}

impl ManyApps {
    /// A host with no apps yet.
    pub fn new(settings: HostSettings) -> Result<Arc<Self>> {
        anyhow::ensure!(settings.max_instances >= 1, "--max-instances must be at least 1");
        let engine = Engine::new(&EngineSettings {
            // Room beyond the slots for instances finishing after a 504 handed theirs on.
            max_instances: (settings.max_instances + (settings.max_instances / 8).max(16)).min(u32::MAX as usize) as u32,
            max_instance_memory: settings.max_instance_memory,
            cache_dir: settings.cache_dir.clone(),
            ..EngineSettings::default()
        })?;
        Ok(Arc::new(Self {
            engine,
            settings,
            routes: RwLock::new(Arc::default()),
            apps: tokio::sync::Mutex::default(),
            versions: std::sync::Mutex::default(),
            open_connections: Arc::default(),
            next_unrouted: AtomicU64::new(1),
            metrics: Arc::default(),
        }))
    }

    /// Serves HTTP for every app on `listener` with `threads` serving threads until `stop`
    /// turns true.
    pub fn serve_http(self: &Arc<Self>, listener: std::net::TcpListener, threads: usize, stop: tokio::sync::watch::Receiver<bool>) -> Result<()> {
        let limits = ListenerLimits::of(&tessera_manifest::RuntimeConfig::default());
        tessera_trigger_http::serve_per_thread(self.clone(), limits, self.open_connections.clone(), listener, threads, stop)
    }

    /// Every app's metrics.
    pub fn metrics(&self) -> &Arc<tessera_executor::metrics::Metrics> {
        &self.metrics
    }

    /// Client connections open now.
    pub fn open_connections(&self) -> usize {
        self.open_connections.load(Ordering::Relaxed)
    }

    /// Deploys `spec` (the admin API), or replaces the version deployed under its name. The
    /// new version is loaded in full before it takes any request; on failure the old one
    /// keeps serving.
    pub async fn deploy(self: &Arc<Self>, spec: AppSpec) -> Result<AppStatus> {
        self.deploy_unpacked(spec, None).await
    }

    /// Deploys `spec`, whose source is the archive unpacked in `unpacked` (see
    /// [`ManyApps::archive_dir`]); the directory goes when this version is replaced or
    /// undeployed and has drained, or at once if the app does not load.
    pub async fn deploy_unpacked(self: &Arc<Self>, spec: AppSpec, unpacked: Option<tempfile::TempDir>) -> Result<AppStatus> {
        let mut apps = self.apps.lock().await;
        self.deploy_locked(&mut apps, spec, false, unpacked).await
    }

    /// Where archives sent to the admin API are unpacked.
    pub fn archive_dir(&self) -> PathBuf {
        self.settings.state_dir.join(".archives")
    }

    async fn deploy_locked(self: &Arc<Self>, apps: &mut BTreeMap<String, Deployed>, spec: AppSpec, from_file: bool, unpacked: Option<tempfile::TempDir>) -> Result<AppStatus> {
        let name = spec.name.clone();
        let keys = crate::apps_file::route_keys(&spec);
        if let Some((other, key)) = apps.values().filter(|d| d.spec.name != name).find_map(|d| {
            crate::apps_file::route_keys(&d.spec).into_iter().find(|k| keys.contains(k)).map(|k| (d.spec.name.clone(), k))
        }) {
            anyhow::bail!(
                "app `{name}` would serve {}, which app `{other}` serves\n  hint: give `{name}` another path_prefix or hosts",
                crate::apps_file::describe_route(&key)
            );
        }
        let others: usize = apps.iter().filter(|(n, _)| **n != name).map(|(_, d)| d.status.instances).sum();
        let this = self.clone();
        // Compiling may take seconds: off the runtime's threads.
        let (host, files, spec, instances) = tokio::task::spawn_blocking(move || {
            let (host, files, instances) = this.load(&spec, others)?;
            anyhow::Ok((host, files, spec, instances))
        })
        .await
        .context("loading the app panicked")??;
        let fingerprint = fingerprint_of(&files);
        let version = {
            let mut versions = self.versions.lock().expect("versions");
            let v = versions.entry(name.clone()).or_insert(0);
            *v += 1;
            *v
        };
        let http = host.http().cloned();
        if let Some(http) = &http {
            http.label_app(&name);
        }
        let status = AppStatus {
            name: name.clone(),
            source: match &spec.source {
                AppSource::Local(p) => p.display().to_string(),
                AppSource::Registry(r) => r.clone(),
            },
            hosts: spec.hosts.clone(),
            path_prefix: spec.path_prefix.clone(),
            version,
            instances,
            queued: host.executor.app().runtime_config.max_queued_requests,
            state_dir: host.executor.app().state_dir.clone(),
            routes: http.as_ref().map(|h| h.routes().iter().map(|r| format!("{}: {}{}", r.label, r.path, if r.wildcard { "/..." } else { "" })).collect()).unwrap_or_default(),
            components: host.executor.app().components.keys().cloned().collect(),
            deployed_at: SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        };
        host.log_loads();
        let serving = host.serve(None, 1)?;
        let old = apps.insert(name.clone(), Deployed { spec, from_file, files, fingerprint, status: status.clone(), http, serving, _unpacked: unpacked });
        self.publish_routes(apps);
        match old {
            Some(old) => {
                tracing::info!("app `{name}`: version {version} serves; version {} drains", old.status.version);
                self.retire(old);
            }
            None => tracing::info!("app `{name}`: deployed, serving under {}{}", hosts_label(&status.hosts), status.path_prefix),
        }
        Ok(status)
    }

    /// Removes an app: new requests no longer reach it, and what it is doing finishes.
    pub async fn undeploy(self: &Arc<Self>, name: &str) -> Result<()> {
        let mut apps = self.apps.lock().await;
        let old = apps.remove(name).with_context(|| format!("no app is named `{name}`"))?;
        self.publish_routes(&apps);
        tracing::info!("app `{name}`: undeployed; its work in progress finishes");
        self.metrics.remove_app(name);
        self.retire(old);
        Ok(())
    }

    /// The apps deployed now.
    pub async fn list(&self) -> Vec<AppStatus> {
        self.apps.lock().await.values().map(|d| d.status.clone()).collect()
    }

    /// One deployed app.
    pub async fn inspect(&self, name: &str) -> Option<AppStatus> {
        self.apps.lock().await.get(name).map(|d| d.status.clone())
    }

    /// Makes the apps of the apps file those of `specs`: new ones deployed, changed ones
    /// (their entry, manifest or components) updated, ones no longer listed undeployed.
    /// Apps deployed through the admin API are left alone unless `specs` names them. One
    /// app's failure leaves the others' changes made and its own old version serving.
    pub async fn reconcile(self: &Arc<Self>, specs: Vec<AppSpec>) -> Reconciled {
        let mut apps = self.apps.lock().await;
        let mut done = Reconciled::default();
        let wanted: Vec<String> = specs.iter().map(|s| s.name.clone()).collect();
        let dropped: Vec<String> = apps.iter().filter(|(n, d)| d.from_file && !wanted.contains(n)).map(|(n, _)| n.clone()).collect();
        for name in dropped {
            let old = apps.remove(&name).expect("listed");
            self.publish_routes(&apps);
            tracing::info!("app `{name}`: no longer in the apps file; undeployed");
            self.retire(old);
            done.undeployed.push(name);
        }
        for spec in specs {
            let name = spec.name.clone();
            let existed = match apps.get_mut(&name) {
                // A registry app changes with its entry (a new tag or digest).
                Some(d) if d.spec == spec && fingerprint_of(&d.files) == d.fingerprint => {
                    d.from_file = true;
                    done.unchanged.push(name);
                    continue;
                }
                Some(_) => true,
                None => false,
            };
            match self.deploy_locked(&mut apps, spec, true, None).await {
                Ok(_) if existed => done.updated.push(name),
                Ok(_) => done.deployed.push(name),
                Err(e) => {
                    tracing::error!("app `{name}`: {e:#}{}", if existed { " (the version deployed before keeps serving)" } else { "" });
                    done.failed.push((name, format!("{e:#}")));
                }
            }
        }
        done
    }

    /// Stops every app once the listener is closed (`serve_http`'s `stop`): lets the
    /// client connections end, then in-flight messages and cron runs finish, each for up
    /// to the shutdown timeout.
    pub async fn drain_all(&self) {
        let timeout = self.settings.shutdown_timeout;
        crate::until_closed(|| self.open_connections(), tokio::time::Instant::now() + timeout).await;
        let apps = std::mem::take(&mut *self.apps.lock().await);
        *self.routes.write().expect("routes") = Arc::default();
        let mut drains = tokio::task::JoinSet::new();
        for app in apps.into_values() {
            drains.spawn(app.serving.drain(timeout));
        }
        drains.join_all().await;
    }

    /// Loads an app as `spec` says: its own options, variables and quota, on the shared engine.
    fn load(&self, spec: &AppSpec, instances_taken: usize) -> Result<(AppHost, Vec<PathBuf>, usize)> {
        let name = &spec.name;
        let manifest_path = match &spec.source {
            AppSource::Local(path) => find_manifest(path)?,
            AppSource::Registry(reference) => {
                let reference = tessera_registry::parse_reference(reference)?;
                let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
                runtime.block_on(tessera_registry::pull(&reference, &self.settings.registry))?.manifest
            }
        };
        let manifest = if tessera_manifest::is_component_file(&manifest_path) {
            Manifest::for_component(&manifest_path)
        } else {
            Manifest::from_file(&manifest_path)?
        };
        let options = LoadOptions {
            runtime_config_file: spec.runtime_config.clone(),
            state_dir: Some(spec.state_dir.clone().unwrap_or_else(|| self.settings.state_dir.join(name))),
            fetcher: Some(Arc::new(tessera_registry::SourceCache::new(self.settings.registry.clone()))),
            variables: Some(spec.variables.clone()),
            ..Default::default()
        };
        let mut app = LoadedApp::from_manifest(manifest, &options)?;
        let rc = &mut app.runtime_config;
        rc.max_concurrent_requests = spec.quota.instances.unwrap_or(self.settings.default_app_instances);
        if let Some(queued) = spec.quota.queued {
            rc.max_queued_requests = queued;
        }
        let instances = rc.max_concurrent_requests;
        let free = self.settings.max_instances.saturating_sub(instances_taken);
        anyhow::ensure!(
            instances <= free,
            "app `{name}` asks for {instances} instance slots, and {free} of the host's {} are free\n  hint: lower quota.instances of `{name}` in the apps file, or raise --max-instances",
            self.settings.max_instances
        );
        let memory_cap = spec.quota.memory.unwrap_or(self.settings.max_instance_memory);
        for component in app.components.values_mut() {
            let limit = &mut component.limits.max_instance_memory;
            *limit = (*limit).min(memory_cap);
            anyhow::ensure!(
                *limit <= self.settings.max_instance_memory,
                "component `{}` of app `{name}` may use {} MiB per instance, over the host's --max-instance-memory ({} MiB)\n  hint: lower its max_instance_memory, set quota.memory of `{name}`, or raise --max-instance-memory",
                component.id,
                *limit >> 20,
                self.settings.max_instance_memory >> 20
            );
        }
        app.create_dirs()?;
        let mut files = vec![manifest_path.clone()];
        files.extend(app.components.values().map(|c| c.source.clone()));
        files.extend(spec.runtime_config.clone());
        let options = tessera_executor::ExecutorOptions { metrics: Some(self.metrics.for_app(name)), ..Default::default() };
        let host = AppHost::load_with(&self.engine, Arc::new(app), options).with_context(|| format!("app `{name}`"))?;
        Ok((host, files, instances))
    }

    fn publish_routes(&self, apps: &BTreeMap<String, Deployed>) {
        let mut table = RoutingTable::default();
        for deployed in apps.values() {
            let Some(http) = &deployed.http else { continue };
            for (host, prefix) in crate::apps_file::route_keys(&deployed.spec) {
                table.by_host.entry(host).or_default().insert(prefix.clone(), RouteEntry { prefix, http: http.clone() });
            }
        }
        *self.routes.write().expect("routes") = Arc::new(table);
    }

    /// Lets an old version finish its work in the background; its requests in flight hold
    /// it until they end.
    fn retire(&self, old: Deployed) {
        let timeout = self.settings.shutdown_timeout;
        let name = old.spec.name.clone();
        let version = old.status.version;
        tokio::spawn(async move {
            let report = old.serving.drain(timeout).await;
            if report.unfinished_tasks > 0 {
                tracing::warn!("app `{name}` version {version}: {} task(s) unfinished after {timeout:?}", report.unfinished_tasks);
            }
        });
    }
}

impl Frontend for ManyApps {
    async fn answer(&self, req: hyper::Request<Incoming>, client: SocketAddr, local: SocketAddr, framing_conflict: bool) -> hyper::Response<ResponseBody> {
        let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).map(normalize_host).unwrap_or_default();
        let routed = {
            let table = self.routes.read().expect("routes").clone();
            table.route(&host, req.uri().path()).map(|e| (e.http.clone(), e.prefix.clone()))
        };
        match routed {
            Some((http, prefix)) => {
                let mut req = req;
                let path = req.uri().path_and_query().map_or("/", |p| p.as_str());
                if let Some(stripped) = strip_prefix(path, &prefix).and_then(|p| p.parse().ok()) {
                    *req.uri_mut() = stripped;
                    if let Ok(value) = http::HeaderValue::from_str(&prefix) {
                        req.headers_mut().insert("x-forwarded-prefix", value);
                    }
                }
                http.handle(req, client, local, framing_conflict).await
            }
            None => {
                let id = self.next_unrouted.fetch_add(1, Ordering::Relaxed);
                tracing::info!("unrouted request {id}: no app serves host `{host}` path {}", req.uri().path());
                tessera_trigger_http::text_response(404, &format!("no app serves host `{host}` path {}\n", req.uri().path()))
            }
        }
    }
}

/// `path_and_query` as the app mounted at `prefix` sees it (`None` at the root: unchanged).
fn strip_prefix(path_and_query: &str, prefix: &str) -> Option<String> {
    if prefix == "/" {
        return None;
    }
    let rest = path_and_query.strip_prefix(prefix)?;
    Some(if rest.starts_with('/') { rest.to_string() } else { format!("/{rest}") })
}

fn hosts_label(hosts: &[String]) -> String {
    if hosts.is_empty() { "any host, path ".into() } else { format!("{}, path ", hosts.join(", ")) }
}

/// Size and modification time of each file (a gone file has neither).
fn fingerprint_of(files: &[PathBuf]) -> Vec<(u64, Option<SystemTime>)> {
    files
        .iter()
        .map(|path| {
            let meta = std::fs::metadata(path).ok();
            (meta.as_ref().map_or(0, |m| m.len()), meta.and_then(|m| m.modified().ok()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_whole_segments() {
        assert_eq!(prefixes_of("/shop/cart/").collect::<Vec<_>>(), ["/shop/cart", "/shop", "/"]);
        assert_eq!(prefixes_of("/").collect::<Vec<_>>(), ["/"]);
        assert_eq!(prefixes_of("/shopping").collect::<Vec<_>>(), ["/shopping", "/"]);
        assert_eq!(strip_prefix("/shop/cart?x=1", "/shop").as_deref(), Some("/cart?x=1"));
        assert_eq!(strip_prefix("/shop?x=1", "/shop").as_deref(), Some("/?x=1"));
        assert_eq!(strip_prefix("/shop", "/"), None);
    }
}
