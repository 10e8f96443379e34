//! Push and pull apps as OCI artifacts in Spin 4.1's layout, with a content-addressed
//! local cache, and registry credentials from the docker config file.

use crate::blobs::{BlobCache, Progress, digest_of};
use crate::locked::{ContentPath, ContentRef, LockedApp, LockedComponent, LockedSource, LockedTrigger};
use anyhow::{Context as _, Result, bail};
use oci_client::client::{ClientConfig, ClientProtocol, Config, ImageLayer};
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tessera_manifest::Manifest;

/// A component's bytes.
pub const WASM_LAYER: &str = "application/vnd.wasm.content.layer.v1+wasm";
/// A file given to a component (larger than the inline limit).
pub const DATA_LAYER: &str = "application/vnd.wasm.content.layer.v1+data";
/// The locked app: the last layer (Spin 4.1), or the manifest's config (older Spin).
pub const LOCKED_APP: &str = "application/vnd.fermyon.spin.application.v1+config";
/// The config blob Spin 4.1 writes.
pub const IMAGE_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
/// A single component pushed with the CNCF Wasm OCI artifact layout.
pub const CNCF_WASM_LAYER: &str = "application/wasm";

/// How to reach a registry.
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    /// Plain HTTP instead of HTTPS (a local registry).
    pub insecure: bool,
    /// Where pulled blobs and apps are kept; `None` for the default cache directory.
    pub cache_dir: Option<PathBuf>,
}

impl RegistryOptions {
    pub(crate) fn client(&self) -> Client {
        Client::new(ClientConfig {
            protocol: if self.insecure { ClientProtocol::Http } else { ClientProtocol::Https },
            ..Default::default()
        })
    }

    pub(crate) fn cache(&self) -> Result<PathBuf> {
        if let Some(dir) = &self.cache_dir {
            return Ok(dir.clone());
        }
        let home = tessera_app::cache_home()
            .context("cannot find a cache directory: set HOME, XDG_CACHE_HOME or TESSERA_REGISTRY_CACHE")?;
        Ok(home.join("registry"))
    }
}

/// Whether `text` names a registry artifact (`REGISTRY/REPOSITORY:TAG`, the registry a
/// host name, address or `localhost`) rather than a local path; `exists` says whether a
/// path of that name exists, which wins.
pub fn looks_like_reference(text: &str, exists: bool) -> bool {
    if exists || !text.contains('/') || text.starts_with('.') || text.starts_with('/') {
        return false;
    }
    let registry = text.split('/').next().unwrap_or("");
    (registry.contains('.') || registry.contains(':') || registry == "localhost") && parse_reference(text).is_ok()
}

/// Parses `REF` (`registry/repository:tag` or `@sha256:...`), explaining the form on error.
pub fn parse_reference(reference: &str) -> Result<Reference> {
    reference.parse::<Reference>().with_context(|| {
        format!("`{reference}` is not a registry reference; write it as REGISTRY/REPOSITORY:TAG, e.g. localhost:5000/hello:v1")
    })
}

/// Credentials for `reference`'s registry from the docker config file (written by
/// `tessera registry login` or `docker login`), or anonymous.
pub fn auth_for(reference: &Reference) -> RegistryAuth {
    match docker_credential::get_credential(reference.resolve_registry()) {
        Ok(docker_credential::DockerCredential::UsernamePassword(user, password)) => RegistryAuth::Basic(user, password),
        Ok(docker_credential::DockerCredential::IdentityToken(token)) => RegistryAuth::Bearer(token),
        Err(_) => RegistryAuth::Anonymous,
    }
}

/// What a push sent.
#[derive(Debug)]
pub struct Pushed {
    /// The manifest's digest: `REF@digest` names exactly this artifact.
    pub digest: String,
    /// Layers sent (components, files, the locked app).
    pub layers: usize,
    /// Bytes in all layers.
    pub bytes: usize,
}

/// A Spin OCI artifact: what `push` uploads.
pub struct Artifact {
    /// One layer per distinct component and file, then the locked app.
    pub layers: Vec<ImageLayer>,
    /// The image config (`architecture: wasm`).
    pub config: Config,
    /// The image manifest naming them.
    pub manifest: OciImageManifest,
}

/// The artifact of the app at `manifest_path`, laid out as `spin registry push` does:
/// one `+wasm` layer per distinct component, one `+data` layer per distinct file, the
/// locked app, and a config whose architecture is `wasm`.
pub fn artifact(manifest_path: &Path, options: &RegistryOptions) -> Result<Artifact> {
    let manifest = Manifest::from_file(manifest_path)?;
    let locked = LockedApp::from_manifest(&manifest, std::sync::Arc::new(crate::SourceCache::new(options.clone())))?;
    let locked_json = serde_json::to_vec_pretty(&locked.locked)?;
    let mut layers = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (digest, bytes) in &locked.components {
        if seen.insert(digest.clone()) {
            layers.push(ImageLayer::new(bytes.clone(), WASM_LAYER.into(), None));
        }
    }
    for (digest, bytes) in &locked.files {
        if seen.insert(digest.clone()) {
            layers.push(ImageLayer::new(bytes.clone(), DATA_LAYER.into(), None));
        }
    }
    layers.push(ImageLayer::new(locked_json.clone(), LOCKED_APP.into(), None));
    let config = serde_json::json!({
        "architecture": "wasm",
        "os": "Wasip1",
        "config": { "Labels": { "com.fermyon.spin.lockedAppDigest": digest_of(&locked_json) } },
    });
    let config = Config::new(serde_json::to_vec(&config)?, IMAGE_CONFIG.into(), None);
    let app = &manifest.application;
    let mut annotations = BTreeMap::new();
    annotations.insert("org.opencontainers.image.title".to_string(), app.name.clone());
    annotations.insert(
        "org.opencontainers.image.created".to_string(),
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    );
    if let Some(v) = &app.version {
        annotations.insert("org.opencontainers.image.version".to_string(), v.clone());
    }
    if let Some(d) = &app.description {
        annotations.insert("org.opencontainers.image.description".to_string(), d.clone());
    }
    let manifest = OciImageManifest::build(&layers, &config, Some(annotations));
    Ok(Artifact { layers, config, manifest })
}

/// Pushes the app of `manifest_path` to `reference` in Spin 4.1's layout.
pub async fn push(reference: &Reference, manifest_path: &Path, options: &RegistryOptions) -> Result<Pushed> {
    let Artifact { layers, config, manifest: image_manifest } = artifact(manifest_path, options)?;
    let bytes: usize = layers.iter().map(|l| l.data.len()).sum();
    let count = layers.len();
    let client = options.client();
    let auth = auth_for(reference);
    client
        .auth(reference, &auth, oci_client::RegistryOperation::Push)
        .await
        .map_err(|e| explain(e, reference, "push to", options.insecure))?;
    // Blob by blob, so that a large app shows its progress.
    let progress = Progress::new(&format!("Pushing {reference}"), Some(bytes as u64));
    for layer in &layers {
        push_blob(&client, options, reference, &layer.data, &layer.sha256_digest(), &progress).await?;
    }
    progress.finish();
    push_blob(&client, options, reference, &config.data, &config.sha256_digest(), &Progress::new("", None)).await?;
    client
        .push_manifest(reference, &oci_client::manifest::OciManifest::Image(image_manifest))
        .await
        .map_err(|e| explain(e, reference, "push the manifest to", options.insecure))?;
    let digest = client
        .fetch_manifest_digest(reference, &auth)
        .await
        .map_err(|e| explain(e, reference, "read back", options.insecure))?;
    Ok(Pushed { digest, layers: count, bytes })
}

/// Uploads one blob in chunks, advancing `progress` as each chunk is sent.
async fn push_blob(client: &Client, options: &RegistryOptions, reference: &Reference, data: &[u8], digest: &str, progress: &Progress) -> Result<()> {
    use futures::StreamExt as _;
    const CHUNK: usize = 1 << 20;
    let chunks: Vec<bytes::Bytes> = data.chunks(CHUNK).map(bytes::Bytes::copy_from_slice).collect();
    let progress = progress.clone();
    let stream = futures::stream::iter(chunks).map(move |chunk| {
        progress.advance(chunk.len() as u64);
        Ok::<_, oci_client::errors::OciDistributionError>(chunk)
    });
    client
        .push_blob_stream(reference, stream, digest, Some(data.len() as u64))
        .await
        .map_err(|e| explain(e, reference, "push a blob to", options.insecure))?;
    Ok(())
}

/// Downloads `layer` into the cache unless it is there; returns the bytes downloaded.
pub(crate) async fn fetch_layer(client: &Client, options: &RegistryOptions, blobs: &BlobCache, reference: &Reference, layer: &OciDescriptor) -> Result<u64> {
    if blobs.verified(&layer.digest)?.is_some() {
        return Ok(0);
    }
    let download = client
        .pull_blob_stream(reference, layer)
        .await
        .map_err(|e| explain(e, reference, "download a blob from", options.insecure))?;
    let size = download.content_length.or(u64::try_from(layer.size).ok());
    blobs.store(&layer.digest, size, &format!("{reference} layer {}", short(&layer.digest)), download.stream).await
}

fn short(digest: &str) -> &str {
    &digest[..digest.len().min(19)]
}

/// What a pull produced.
#[derive(Debug)]
pub struct Pulled {
    /// The app's `spin.toml`, in a directory of the cache named by the artifact's digest.
    pub manifest: PathBuf,
    /// The artifact's digest.
    pub digest: String,
    /// Bytes downloaded (0 when everything was in the cache).
    pub downloaded: u64,
}

/// Pulls `reference` into the cache (downloading only blobs it lacks, each verified
/// against its digest) and writes it out as an app directory.
pub async fn pull(reference: &Reference, options: &RegistryOptions) -> Result<Pulled> {
    let client = options.client();
    let auth = auth_for(reference);
    let (image, digest) = client
        .pull_image_manifest(reference, &auth)
        .await
        .map_err(|e| explain(e, reference, "pull from", options.insecure))?;
    let cache = options.cache()?;
    let app_dir = cache.join("apps").join(digest.replace(':', "-"));
    let manifest = app_dir.join("spin.toml");
    if manifest.is_file() {
        return Ok(Pulled { manifest, digest, downloaded: 0 });
    }
    let blobs = BlobCache { dir: cache.join("blobs") };
    let mut downloaded = 0;

    let locked = if let Some(layer) = image.layers.iter().rev().find(|l| l.media_type == LOCKED_APP) {
        downloaded += fetch_layer(&client, options, &blobs, reference, layer).await?;
        LockedApp::from_json(&blobs.read(&layer.digest)?)?
    } else if image.config.media_type == LOCKED_APP {
        downloaded += fetch_layer(&client, options, &blobs, reference, &image.config).await?;
        LockedApp::from_json(&blobs.read(&image.config.digest)?)?
    } else if let [layer] = image.layers.as_slice()
        && layer.media_type == CNCF_WASM_LAYER
    {
        single_component(reference, &layer.digest)
    } else {
        let types: Vec<&str> = image.layers.iter().map(|l| l.media_type.as_str()).collect();
        bail!(
            "{reference} is neither a Spin app (no `{LOCKED_APP}` layer or config) nor a single Wasm component \
             (one `{CNCF_WASM_LAYER}` layer); its layers are {types:?}"
        );
    };
    for layer in image.layers.iter().filter(|l| l.media_type != LOCKED_APP) {
        downloaded += fetch_layer(&client, options, &blobs, reference, layer).await?;
    }

    // Written to a temporary directory and renamed, so a failed pull leaves no half app.
    std::fs::create_dir_all(app_dir.parent().expect("apps dir"))?;
    let staging = tempfile::Builder::new().prefix(".pull-").tempdir_in(app_dir.parent().expect("apps dir"))?;
    locked.materialize(staging.path(), |d| blobs.read(d))?;
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, &app_dir) {
        let _ = std::fs::remove_dir_all(&staged);
        if !manifest.is_file() {
            return Err(e).with_context(|| format!("cannot write {}", app_dir.display()));
        }
    }
    Ok(Pulled { manifest, digest, downloaded })
}

/// A CNCF single-component artifact served on `/...`, as Spin does.
fn single_component(reference: &Reference, digest: &str) -> LockedApp {
    let name = reference.repository().rsplit('/').next().unwrap_or("app").to_string();
    LockedApp {
        spin_lock_version: 0,
        must_understand: Vec::new(),
        metadata: [("name".to_string(), serde_json::Value::from(name))].into_iter().collect(),
        host_requirements: Default::default(),
        variables: Default::default(),
        triggers: vec![LockedTrigger {
            id: "trigger-component".into(),
            trigger_type: "http".into(),
            trigger_config: serde_json::json!({ "route": "/...", "component": "component" }),
        }],
        components: vec![LockedComponent {
            id: "component".into(),
            metadata: Default::default(),
            source: LockedSource {
                content_type: "application/wasm".into(),
                content: ContentRef { digest: Some(digest.to_string()), ..Default::default() },
            },
            env: Default::default(),
            files: Vec::<ContentPath>::new(),
            config: Default::default(),
            dependencies: Default::default(),
            host_requirements: Default::default(),
        }],
    }
}

/// Checks `user`/`password` against `server` and stores them in the docker config file.
pub async fn login(server: &str, user: &str, password: &str, options: &RegistryOptions) -> Result<PathBuf> {
    let probe = parse_reference(&format!("{server}/tessera-login-check:latest"))?;
    let auth = RegistryAuth::Basic(user.to_string(), password.to_string());
    if let Err(e) = options.client().catalog(&probe, &auth, Some(1), None).await {
        let text = e.to_string();
        if is_unauthorized(&e) {
            bail!("{server} refused user `{user}`: wrong user name or password");
        }
        if text.contains("error sending request") || text.contains("connect") {
            bail!("cannot reach {server}: {text}{}", if options.insecure { "" } else { " (for a plain-HTTP registry add --insecure)" });
        }
        // Some registries do not list their catalog; the credentials are checked on use.
        tracing::debug!("{server}: catalog not available to check the login: {text}");
    }
    store_credentials(server, user, password)
}

fn docker_config_path() -> Result<PathBuf> {
    let dir = std::env::var_os("DOCKER_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker")))
        .context("cannot find the docker config directory: set HOME or DOCKER_CONFIG")?;
    Ok(dir.join("config.json"))
}

/// Adds `auths.<server>` to the docker config file, keeping everything else in it.
fn store_credentials(server: &str, user: &str, password: &str) -> Result<PathBuf> {
    use base64::Engine as _;
    let path = docker_config_path()?;
    let mut config: serde_json::Value = match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| format!("{} is not valid JSON; fix or remove it", path.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => serde_json::json!({}),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let root = config.as_object_mut().with_context(|| format!("{} is not a JSON object", path.display()))?;
    let auths = root.entry("auths").or_insert_with(|| serde_json::json!({}));
    auths
        .as_object_mut()
        .with_context(|| format!("`auths` in {} is not an object", path.display()))?
        .insert(server.to_string(), serde_json::json!({ "auth": auth }));
    let dir = path.parent().expect("config dir");
    std::fs::create_dir_all(dir)?;
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    std::io::Write::write_all(&mut tmp, &serde_json::to_vec_pretty(&config)?)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(tmp.path(), std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.persist(&path).map_err(|e| e.error).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(path)
}

/// `error` as the user should read it, with the fix when there is one: a login, or
/// `--insecure` for a plain-HTTP registry (not advised when it was given already).
pub(crate) fn explain(error: oci_client::errors::OciDistributionError, reference: &Reference, what: &str, insecure: bool) -> anyhow::Error {
    let text = error.to_string();
    let hint = if is_unauthorized(&error) {
        format!("; log in first: tessera registry login {} -u USER", reference.resolve_registry())
    } else if !insecure && (text.contains("error sending request") || text.contains("https")) {
        " (for a plain-HTTP registry add --insecure)".to_string()
    } else if insecure && text.contains("error sending request") {
        " (is the registry running, and does it serve plain HTTP at that address?)".to_string()
    } else {
        String::new()
    };
    anyhow::anyhow!("cannot {what} {reference}: {text}{hint}")
}

fn is_unauthorized(error: &oci_client::errors::OciDistributionError) -> bool {
    use oci_client::errors::OciDistributionError as E;
    matches!(error, E::AuthenticationFailure(_) | E::UnauthorizedError { .. }) || error.to_string().contains("401")
}
