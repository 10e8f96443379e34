//! Pinned component sources: `source = { url, digest }` and registry packages
//! (`source = { registry, package, version }`), downloaded into the content-addressed
//! blob cache and verified before use. A second load finds them there and downloads
//! nothing (a package's tag is still resolved, one small manifest request).

use crate::blobs::BlobCache;
use crate::oci::{CNCF_WASM_LAYER, RegistryOptions, WASM_LAYER, auth_for, fetch_layer, parse_reference};
use anyhow::{Context as _, Result, bail};
use std::path::PathBuf;
use tessera_app::SourceFetcher;
use tessera_manifest::ComponentSource;

/// Fetches pinned sources into the registry cache (see [`RegistryOptions::cache_dir`]).
#[derive(Debug, Clone)]
pub struct SourceCache {
    options: RegistryOptions,
}

impl SourceCache {
    /// A cache reached with `options` (`insecure` applies to package registries).
    pub fn new(options: RegistryOptions) -> Self {
        Self { options }
    }

    fn blobs(&self) -> Result<BlobCache> {
        Ok(BlobCache { dir: self.options.cache()?.join("blobs") })
    }

    async fn fetch_async(&self, source: &ComponentSource) -> Result<PathBuf> {
        match source {
            ComponentSource::File(path) => Ok(path.clone()),
            ComponentSource::Url { url, digest } => {
                let blobs = self.blobs()?;
                if let Some(path) = blobs.verified(digest)? {
                    return Ok(path);
                }
                let response = reqwest::get(url).await.with_context(|| format!("cannot download {url}"))?;
                if !response.status().is_success() {
                    bail!("downloading {url} answered {}", response.status());
                }
                let size = response.content_length();
                blobs.store(digest, size, url, response.bytes_stream()).await?;
                Ok(blobs.path(digest)?)
            }
            ComponentSource::Package { registry, package, version } => {
                let blobs = self.blobs()?;
                let client = self.options.client();
                let version = &self.resolve_version(&client, registry.as_deref(), package, version).await?;
                let reference = self.package_reference(registry.as_deref(), package, version).await?;
                let auth = auth_for(&reference);
                let (image, _) = client
                    .pull_image_manifest(&reference, &auth)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot find package {package}@{version} at {reference}: {e}"))?;
                let layer = image
                    .layers
                    .iter()
                    .find(|l| l.media_type == CNCF_WASM_LAYER || l.media_type == WASM_LAYER)
                    .with_context(|| format!("{reference} holds no Wasm component layer (`{CNCF_WASM_LAYER}`)"))?;
                fetch_layer(&client, &self.options, &blobs, &reference, layer).await?;
                Ok(blobs.path(&layer.digest)?)
            }
        }
    }

    /// `version` itself when it is exact (`1.2.3`); for a requirement (`>=0.1.0`, `^1`, as
    /// dependencies give them) the highest published version that meets it, read from the
    /// package's tags.
    async fn resolve_version(&self, client: &oci_client::Client, registry: Option<&str>, package: &str, version: &str) -> Result<String> {
        if semver::Version::parse(version).is_ok() {
            return Ok(version.to_string());
        }
        let requirement = semver::VersionReq::parse(version).with_context(|| format!("`{version}` is neither a version nor a version requirement"))?;
        let reference = self.package_reference(registry, package, "latest").await?;
        let tags = client
            .list_tags(&reference, &auth_for(&reference), None, None)
            .await
            .map_err(|e| anyhow::anyhow!("cannot list the versions of {package} at {}/{}: {e}", reference.registry(), reference.repository()))?;
        let best = tags.tags.iter().filter_map(|t| semver::Version::parse(t).ok()).filter(|v| requirement.matches(v)).max();
        match best {
            Some(v) => {
                tracing::info!("package {package}: {version} resolves to {v}");
                Ok(v.to_string())
            }
            None => bail!(
                "no version of {package} meets `{version}` (published: {})",
                if tags.tags.is_empty() { "none".to_string() } else { tags.tags.join(", ") }
            ),
        }
    }

    /// Where `namespace:name@version` lives, found the way `wkg` finds it: the registry
    /// from the source, else from the wkg config; its
    /// `/.well-known/wasm-pkg/registry.json` may point at another OCI registry and add a
    /// namespace prefix; the repository is `<prefix><namespace>/<name>`, the tag the version.
    async fn package_reference(&self, registry: Option<&str>, package: &str, version: &str) -> Result<oci_client::Reference> {
        let (namespace, name) = package.split_once(':').context("package is not namespace:name")?;
        let registry = match registry {
            Some(r) => r.to_string(),
            None => wkg_registry(namespace)?.with_context(|| {
                format!("no registry for package `{package}`: add registry = \"...\" to the source, or set default_registry in the wkg config")
            })?,
        };
        let scheme = if self.options.insecure { "http" } else { "https" };
        let metadata = async {
            let response = reqwest::get(format!("{scheme}://{registry}/.well-known/wasm-pkg/registry.json")).await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            response.json::<serde_json::Value>().await.ok()
        }
        .await;
        let field = |nested: &str, flat: &str| -> Option<String> {
            let m = metadata.as_ref()?;
            m.pointer(&format!("/oci/{nested}")).or_else(|| m.get(flat)).and_then(|v| v.as_str()).map(str::to_string)
        };
        let oci_registry = field("registry", "ociRegistry").unwrap_or_else(|| registry.clone());
        let prefix = field("namespacePrefix", "ociNamespacePrefix").unwrap_or_default();
        parse_reference(&format!("{oci_registry}/{prefix}{namespace}/{name}:{version}"))
    }
}

impl SourceFetcher for SourceCache {
    fn fetch(&self, _id: &str, source: &ComponentSource) -> Result<PathBuf> {
        match source.file() {
            Some(path) => Ok(path.to_path_buf()),
            None => block_on(self.fetch_async(source)),
        }
    }
}

/// Runs `future` to completion on a runtime of its own, on a thread of its own, so callers
/// may be inside or outside an async runtime.
fn block_on<T: Send>(future: impl Future<Output = Result<T>> + Send) -> Result<T> {
    std::thread::scope(|scope| {
        scope
            .spawn(|| tokio::runtime::Builder::new_current_thread().enable_all().build()?.block_on(future))
            .join()
            .unwrap_or_else(|_| Err(anyhow::anyhow!("the download thread panicked")))
    })
}

/// The registry the wkg config (`$WKG_CONFIG_FILE`, else `~/.config/wasm-pkg/config.toml`)
/// names for `namespace`, else its `default_registry`.
fn wkg_registry(namespace: &str) -> Result<Option<String>> {
    let path = match std::env::var_os("WKG_CONFIG_FILE") {
        Some(p) => PathBuf::from(p),
        None => {
            let base = std::env::var_os("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")));
            let Some(base) = base else { return Ok(None) };
            base.join("wasm-pkg").join("config.toml")
        }
    };
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let config: toml::Table = toml::from_str(&text).with_context(|| format!("{} is not valid TOML", path.display()))?;
    let by_namespace = config.get("namespace_registries").and_then(|t| t.get(namespace)).and_then(|v| match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Table(t) => t.get("registry").and_then(|r| r.as_str()).map(str::to_string),
        _ => None,
    });
    Ok(by_namespace.or_else(|| config.get("default_registry").and_then(|v| v.as_str()).map(str::to_string)))
}
