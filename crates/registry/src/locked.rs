//! Spin's locked app (`spin_lock_version` 0 and 1): the JSON document a registry artifact
//! carries to describe the app. Built from a manifest on push; on pull it is written back
//! out as an app directory with a `spin.toml`, so a pulled app loads exactly like a local one.

use anyhow::{Context as _, Result, bail};
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::{Component as PathPart, Path, PathBuf};
use crate::blobs::digest_of;
use tessera_app::{ComponentFiles, SourceFetcher};
use tessera_manifest::{HttpTarget, Manifest, Route};

/// Files of at most this many bytes are written into the locked app itself, as Spin does.
pub const INLINE_MAX: usize = 128;

/// The locked app document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockedApp {
    /// 0 when no host requirements are given, else 1.
    pub spin_lock_version: u32,
    /// Fields a host must understand or refuse the app.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub must_understand: Vec<String>,
    /// Application metadata: name, version, description, authors, trigger settings.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// Features the app needs from its host.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub host_requirements: Map<String, Value>,
    /// Application variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, LockedVariable>,
    /// Triggers, each with its type and type-specific settings.
    pub triggers: Vec<LockedTrigger>,
    /// Components.
    pub components: Vec<LockedComponent>,
}

/// An application variable.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockedVariable {
    /// What it is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Its default; a variable without one is required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<String>,
    /// Whether the value must not be logged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub secret: bool,
}

/// A trigger.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockedTrigger {
    /// Unique within the app.
    pub id: String,
    /// `http`, `redis`, ...
    pub trigger_type: String,
    /// For HTTP: `route`, `component`, `executor`, `static_response`.
    pub trigger_config: Value,
}

/// A component.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockedComponent {
    /// Unique within the app.
    pub id: String,
    /// Grants and descriptive fields: `allowed_outbound_hosts`, `key_value_stores`,
    /// `databases` (SQLite), `description`.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub metadata: Map<String, Value>,
    /// The Wasm bytes.
    pub source: LockedSource,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Files the guest may read, each at its guest path.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<ContentPath>,
    /// Component variables (templates over application variables).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub config: BTreeMap<String, String>,
    /// Component dependencies, by manifest key. Tessera (like Spin since 3.x) pushes
    /// components composed, so this is empty in what it writes; older artifacts have them.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub dependencies: BTreeMap<String, LockedDependency>,
    /// Features this component needs from its host.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub host_requirements: Map<String, Value>,
}

/// A dependency as Spin locks it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockedDependency {
    /// Its component's bytes.
    pub source: LockedSource,
    /// The export to use, if not the import's own name.
    #[serde(default)]
    pub export: Option<String>,
    /// What of its parent's configuration it may use.
    #[serde(default)]
    pub inherit: LockedInherit,
}

/// `inherit_configuration` as Spin locks it (`"All"` or `{ "Some": [keys] }`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum LockedInherit {
    /// Everything.
    All,
    /// These keys only (none: deny all).
    Some(Vec<String>),
}

impl Default for LockedInherit {
    fn default() -> Self {
        Self::Some(Vec::new())
    }
}

/// Where a component's bytes are.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockedSource {
    /// `application/wasm`.
    pub content_type: String,
    /// The content.
    #[serde(flatten)]
    pub content: ContentRef,
}

/// A file at a guest path.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContentPath {
    /// The content.
    #[serde(flatten)]
    pub content: ContentRef,
    /// Where the guest sees it.
    pub path: String,
}

/// Content by digest (a registry layer), inline bytes, or a local URL.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContentRef {
    /// A `file://` URL (local locked apps only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// The bytes, base64.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inline: Option<String>,
    /// `sha256:<hex>` of the bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
}


/// A locked app and the blobs its digests name.
pub struct LockedWithBlobs {
    /// The document.
    pub locked: LockedApp,
    /// Component bytes, by digest, in component order.
    pub components: Vec<(String, Vec<u8>)>,
    /// File contents above [`INLINE_MAX`], by digest, each once.
    pub files: Vec<(String, Vec<u8>)>,
}

impl LockedApp {
    /// Locks the app of `manifest`: reads every component and file it names. A component
    /// with dependencies is locked composed with them (as Spin pushes it), so any host runs
    /// it without a composer.
    pub fn from_manifest(manifest: &Manifest, sources: std::sync::Arc<dyn SourceFetcher>) -> Result<LockedWithBlobs> {
        let mut metadata = Map::new();
        let app = &manifest.application;
        metadata.insert("name".into(), app.name.clone().into());
        if let Some(v) = &app.version {
            metadata.insert("version".into(), v.clone().into());
        }
        if let Some(d) = &app.description {
            metadata.insert("description".into(), d.clone().into());
        }
        if !app.authors.is_empty() {
            metadata.insert("authors".into(), app.authors.clone().into());
        }
        metadata.insert("trigger".into(), serde_json::json!({ "type": "http", "base": manifest.http_base }));
        metadata.insert("triggers".into(), serde_json::json!({ "http": { "base": manifest.http_base } }));

        let variables = manifest
            .variables
            .iter()
            .map(|(name, v)| {
                let locked = LockedVariable {
                    description: v.description.clone(),
                    default: if v.required { None } else { v.default.clone() },
                    secret: v.secret,
                };
                (name.clone(), locked)
            })
            .collect();

        let triggers = manifest
            .http_triggers
            .iter()
            .map(|t| {
                let mut config = Map::new();
                config.insert(
                    "route".into(),
                    match &t.route {
                        Route::Path(p) => Value::from(p.clone()),
                        Route::Private => serde_json::json!({ "private": true }),
                    },
                );
                match &t.target {
                    HttpTarget::Component(id) => {
                        config.insert("component".into(), id.clone().into());
                    }
                    HttpTarget::Static(s) => {
                        config.insert(
                            "static_response".into(),
                            serde_json::json!({ "status_code": s.status_code, "headers": s.headers, "body": s.body }),
                        );
                    }
                }
                LockedTrigger { id: t.id.clone(), trigger_type: "http".into(), trigger_config: Value::Object(config) }
            })
            .collect();

        let mut blobs = Vec::new();
        let mut file_blobs: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut components = Vec::new();
        for (id, c) in &manifest.components {
            let bytes = if c.dependencies.is_empty() && c.middleware.is_empty() {
                let path = sources.fetch(id, &c.source)?;
                std::fs::read(&path).with_context(|| format!("component `{id}`: cannot read source {}; build it first (`tessera build`)", path.display()))?
            } else {
                let options = tessera_app::LoadOptions { fetcher: Some(sources.clone()), ..Default::default() };
                tessera_app::compose_for_other_hosts(manifest, id, &options)?
            };
            let digest = digest_of(&bytes);
            let mut metadata = Map::new();
            if let Some(d) = &c.description {
                metadata.insert("description".into(), d.clone().into());
            }
            let hosts: Vec<String> = c.allowed_outbound_hosts.iter().map(|(t, _)| t.to_string()).collect();
            metadata.insert("allowed_outbound_hosts".into(), hosts.into());
            let kv: Vec<String> = c.key_value_stores.iter().map(|(s, _)| s.clone()).collect();
            metadata.insert("key_value_stores".into(), kv.into());
            let dbs: Vec<String> = c.sqlite_databases.iter().map(|(s, _)| s.clone()).collect();
            metadata.insert("databases".into(), dbs.into());

            let mut files = Vec::new();
            let resolved = ComponentFiles::resolve(manifest, c)?;
            for mount in &resolved.mounts {
                for (host, rel) in walk_files(&mount.host_path)? {
                    let data = std::fs::read(&host).with_context(|| format!("cannot read {}", host.display()))?;
                    let guest = format!("{}/{}", mount.guest_path.trim_end_matches('/'), rel);
                    let content = if data.len() <= INLINE_MAX {
                        ContentRef { inline: Some(base64::engine::general_purpose::STANDARD.encode(&data)), ..Default::default() }
                    } else {
                        let digest = digest_of(&data);
                        file_blobs.entry(digest.clone()).or_insert(data);
                        ContentRef { digest: Some(digest), ..Default::default() }
                    };
                    files.push(ContentPath { content, path: guest });
                }
            }
            components.push(LockedComponent {
                id: id.clone(),
                metadata,
                source: LockedSource {
                    content_type: "application/wasm".into(),
                    content: ContentRef { digest: Some(digest.clone()), ..Default::default() },
                },
                env: c.environment.clone(),
                files,
                config: c.variables.iter().map(|(k, t)| (k.clone(), t.to_string())).collect(),
                dependencies: BTreeMap::new(),
                host_requirements: Map::new(),
            });
            blobs.push((digest, bytes));
        }
        Ok(LockedWithBlobs {
            locked: LockedApp {
                spin_lock_version: 0,
                must_understand: Vec::new(),
                metadata,
                host_requirements: Map::new(),
                variables,
                triggers,
                components,
            },
            components: blobs,
            files: file_blobs.into_iter().collect(),
        })
    }

    /// Parses a locked app, refusing requirements Tessera cannot meet.
    pub fn from_json(bytes: &[u8]) -> Result<Self> {
        let locked: LockedApp = serde_json::from_slice(bytes).context("the artifact's locked app is not valid JSON of Spin's locked app format")?;
        if locked.spin_lock_version > 1 {
            bail!("the artifact's locked app is version {}; Tessera reads versions 0 and 1", locked.spin_lock_version);
        }
        let required: Vec<&String> = locked
            .host_requirements
            .iter()
            .chain(locked.components.iter().flat_map(|c| c.host_requirements.iter()))
            .filter(|(_, v)| v.as_str() != Some("optional"))
            .map(|(k, _)| k)
            .collect();
        if !required.is_empty() {
            bail!("the app requires host features Tessera does not have: {required:?}");
        }
        Ok(locked)
    }

    /// Writes the app out as a directory Tessera loads like any other: `spin.toml`, one
    /// `.wasm` per component and each component's files under `files/<id>/`. `blob` gives
    /// the bytes of a digest (already verified against it).
    pub fn materialize(&self, dir: &Path, mut blob: impl FnMut(&str) -> Result<Vec<u8>>) -> Result<PathBuf> {
        let mut doc = toml::Table::new();
        doc.insert("spin_manifest_version".into(), 2.into());
        let mut application = toml::Table::new();
        let name = self.metadata.get("name").and_then(Value::as_str).unwrap_or("app");
        application.insert("name".into(), name.into());
        for key in ["version", "description"] {
            if let Some(v) = self.metadata.get(key).and_then(Value::as_str) {
                application.insert(key.into(), v.into());
            }
        }
        if let Some(authors) = self.metadata.get("authors").and_then(Value::as_array) {
            let authors: Vec<toml::Value> = authors.iter().filter_map(Value::as_str).map(Into::into).collect();
            application.insert("authors".into(), authors.into());
        }
        let base = self
            .metadata
            .get("trigger")
            .and_then(|t| t.get("base"))
            .or_else(|| self.metadata.get("triggers").and_then(|t| t.get("http")).and_then(|h| h.get("base")))
            .and_then(Value::as_str);
        if let Some(base) = base.filter(|b| *b != "/") {
            let mut http = toml::Table::new();
            http.insert("base".into(), base.into());
            let mut trigger = toml::Table::new();
            trigger.insert("http".into(), http.into());
            application.insert("trigger".into(), trigger.into());
        }
        doc.insert("application".into(), application.into());

        let mut variables = toml::Table::new();
        for (name, v) in &self.variables {
            let mut t = toml::Table::new();
            match &v.default {
                Some(d) => t.insert("default".into(), d.clone().into()),
                None => t.insert("required".into(), true.into()),
            };
            if v.secret {
                t.insert("secret".into(), true.into());
            }
            if let Some(d) = &v.description {
                t.insert("description".into(), d.clone().into());
            }
            variables.insert(name.clone(), t.into());
        }
        if !variables.is_empty() {
            doc.insert("variables".into(), variables.into());
        }

        let mut http_triggers = Vec::new();
        for t in &self.triggers {
            if t.trigger_type != "http" {
                bail!("the app has a `{}` trigger (`{}`); Tessera serves only HTTP triggers so far", t.trigger_type, t.id);
            }
            let config = t.trigger_config.as_object().context("an HTTP trigger's config is not an object")?;
            let mut table = toml::Table::new();
            for (key, value) in config {
                match key.as_str() {
                    "route" | "component" | "static_response" | "executor" => {
                        table.insert(key.clone(), json_to_toml(value)?);
                    }
                    other => tracing::warn!("trigger `{}`: setting `{other}` is not understood and ignored", t.id),
                }
            }
            http_triggers.push(toml::Value::Table(table));
        }
        let mut triggers = toml::Table::new();
        triggers.insert("http".into(), http_triggers.into());
        doc.insert("trigger".into(), triggers.into());

        let mut components = toml::Table::new();
        for c in &self.components {
            check_id(&c.id)?;
            let mut table = toml::Table::new();
            if !c.dependencies.is_empty() {
                let mut dependencies = toml::Table::new();
                for (n, (key, dependency)) in c.dependencies.iter().enumerate() {
                    let digest = dependency.source.content.digest.as_deref().with_context(|| format!("component `{}`: dependency `{key}` has no source digest", c.id))?;
                    let file = format!("{}-dependency-{}.wasm", c.id, n + 1);
                    std::fs::write(dir.join(&file), blob(digest)?).with_context(|| format!("cannot write {}", dir.join(&file).display()))?;
                    let mut entry = toml::Table::new();
                    entry.insert("path".into(), file.into());
                    if let Some(export) = &dependency.export {
                        entry.insert("export".into(), export.clone().into());
                    }
                    match &dependency.inherit {
                        LockedInherit::All => {
                            entry.insert("inherit_configuration".into(), true.into());
                        }
                        LockedInherit::Some(keys) if !keys.is_empty() => {
                            entry.insert("inherit_configuration".into(), toml::Value::try_from(keys)?);
                        }
                        LockedInherit::Some(_) => {}
                    }
                    dependencies.insert(key.clone(), entry.into());
                }
                table.insert("dependencies".into(), dependencies.into());
            }
            let source_digest = c.source.content.digest.as_deref().with_context(|| format!("component `{}` has no source digest", c.id))?;
            let wasm = dir.join(format!("{}.wasm", c.id));
            std::fs::write(&wasm, blob(source_digest)?).with_context(|| format!("cannot write {}", wasm.display()))?;
            table.insert("source".into(), format!("{}.wasm", c.id).into());
            if let Some(d) = c.metadata.get("description").and_then(Value::as_str) {
                table.insert("description".into(), d.into());
            }
            for (meta, key) in [("allowed_outbound_hosts", "allowed_outbound_hosts"), ("key_value_stores", "key_value_stores"), ("databases", "sqlite_databases")] {
                if let Some(list) = c.metadata.get(meta).and_then(Value::as_array).filter(|l| !l.is_empty()) {
                    table.insert(key.into(), json_to_toml(&Value::Array(list.clone()))?);
                }
            }
            if !c.env.is_empty() {
                table.insert("environment".into(), toml::Value::try_from(&c.env)?);
            }
            if !c.config.is_empty() {
                table.insert("variables".into(), toml::Value::try_from(&c.config)?);
            }
            if !c.files.is_empty() {
                let root = dir.join("files").join(&c.id);
                std::fs::create_dir_all(&root)?;
                for f in &c.files {
                    let rel = safe_relative(&f.path).with_context(|| format!("component `{}`: file path `{}` is not a plain path under /", c.id, f.path))?;
                    let data = match (&f.content.inline, &f.content.digest) {
                        (Some(inline), _) => base64::engine::general_purpose::STANDARD
                            .decode(inline)
                            .with_context(|| format!("component `{}`: inline file `{}` is not base64", c.id, f.path))?,
                        (None, Some(digest)) => blob(digest)?,
                        (None, None) => bail!("component `{}`: file `{}` has neither inline content nor a digest", c.id, f.path),
                    };
                    let path = root.join(&rel);
                    if let Some(parent) = path.parent() {
                        std::fs::create_dir_all(parent)?;
                    }
                    std::fs::write(&path, data).with_context(|| format!("cannot write {}", path.display()))?;
                }
                let mount = serde_json::json!([{ "source": format!("files/{}", c.id), "destination": "/" }]);
                table.insert("files".into(), json_to_toml(&mount)?);
            }
            components.insert(c.id.clone(), table.into());
        }
        doc.insert("component".into(), components.into());
        let manifest = dir.join("spin.toml");
        std::fs::write(&manifest, toml::to_string(&doc)?).with_context(|| format!("cannot write {}", manifest.display()))?;
        Ok(manifest)
    }
}

/// Component ids become file names: only the kebab-case Spin allows.
fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty() && id.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if !ok {
        bail!("component id `{id}` is not kebab-case; refusing to use it as a file name");
    }
    Ok(())
}

/// `/a/b.txt` -> `a/b.txt`; `None` for anything that could leave the directory.
fn safe_relative(guest: &str) -> Option<PathBuf> {
    let rel = Path::new(guest.trim_start_matches('/'));
    let mut out = PathBuf::new();
    for part in rel.components() {
        match part {
            PathPart::Normal(p) => out.push(p),
            PathPart::CurDir => {}
            _ => return None,
        }
    }
    (!out.as_os_str().is_empty()).then_some(out)
}

/// Every file under `dir`, with its path relative to `dir` (`/`-separated), in order.
fn walk_files(dir: &Path) -> Result<Vec<(PathBuf, String)>> {
    let mut out: Vec<(PathBuf, String)> = tessera_app::walk(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .into_iter()
        .map(|path| {
            let rel = path.strip_prefix(dir).unwrap_or(&path).to_string_lossy().replace('\\', "/");
            (path, rel)
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

fn json_to_toml(value: &Value) -> Result<toml::Value> {
    toml::Value::try_from(value).context("a locked app value has no TOML form")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guest_paths_cannot_leave_the_files_directory() {
        assert_eq!(safe_relative("/a/b.txt"), Some(PathBuf::from("a/b.txt")));
        assert_eq!(safe_relative("./a"), Some(PathBuf::from("a")));
        assert_eq!(safe_relative("/../etc/passwd"), None);
        assert_eq!(safe_relative("a/../../x"), None);
        assert_eq!(safe_relative("/"), None);
    }

    #[test]
    fn reads_a_locked_app_written_by_spin() {
        let json = br#"{
          "spin_lock_version": 1,
          "metadata": { "name": "hi", "trigger": { "type": "http" }, "origin": "file:///x/spin.toml" },
          "triggers": [ { "id": "trigger-hello", "trigger_type": "http",
                          "trigger_config": { "component": "hello", "route": "/hello/..." } } ],
          "components": [ { "id": "hello",
                            "metadata": { "allowed_outbound_hosts": [], "key_value_stores": ["default"] },
                            "source": { "content_type": "application/wasm", "digest": "sha256:00" },
                            "files": [ { "inline": "aGk=", "path": "/a.txt" } ] } ]
        }"#;
        let locked = LockedApp::from_json(json).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let manifest = locked
            .materialize(dir.path(), |d| {
                assert_eq!(d, "sha256:00");
                Ok(b"wasm".to_vec())
            })
            .unwrap();
        let text = std::fs::read_to_string(manifest).unwrap();
        assert!(text.contains("route = \"/hello/...\""), "{text}");
        assert!(text.contains("key_value_stores = [\"default\"]"), "{text}");
        assert_eq!(std::fs::read(dir.path().join("files/hello/a.txt")).unwrap(), b"hi");
        assert_eq!(std::fs::read(dir.path().join("hello.wasm")).unwrap(), b"wasm");
    }

    #[test]
    fn refuses_host_requirements_it_cannot_meet() {
        let json = br#"{ "spin_lock_version": 1, "host_requirements": { "local_service_chaining": "required" },
                         "triggers": [], "components": [] }"#;
        let e = LockedApp::from_json(json).unwrap_err().to_string();
        assert!(e.contains("local_service_chaining"), "{e}");
    }
}
