//! Compiled components shared by every pod of a node, through the shim library's
//! precompile hook: the first pod of a Spin OCI artifact compiles its component layers in
//! the shim process and containerd keeps the result in its content store, next to the
//! image (and collected with it); later pods start from it.
//!
//! The stored layer keeps the original component as well, because the app is loaded from
//! it (the `[trust]` signature check, the locked app's digests, composition); the compiled
//! code only seeds Tessera's compile cache inside the container. When the container's
//! engine differs (its runtime config changes limits that shape the code), the seed misses
//! and the component compiles as it would without one.

use anyhow::{Context as _, Result, bail};
use containerd_shim_wasm::sandbox::context::WasmLayer;
use containerd_shim_wasm::shim::Compiler;
use std::path::Path;
use tessera_engine::{Engine, EngineSettings};

/// Marks a layer written by [`Precompiler`]; the version changes with its layout.
const MAGIC: &[u8] = b"tessera-precompiled-v1\n";

/// The shim's precompile hook.
pub struct Precompiler;

impl Compiler for Precompiler {
    fn cache_key(&self) -> impl std::hash::Hash {
        // The compiled code's own key (Wasmtime version, engine settings) is checked
        // again inside the container; this one only tells shim builds apart.
        (env!("CARGO_PKG_VERSION"), MAGIC)
    }

    async fn compile(&self, layers: &[WasmLayer]) -> Result<Vec<Option<Vec<u8>>>> {
        let mut out = Vec::with_capacity(layers.len());
        for layer in layers {
            let is_component = layer.layer.starts_with(b"\0asm") && !tessera_engine::is_core_module(&layer.layer);
            // Every layer is stored, files and the locked app as they are: the shim library
            // compiles again for every pod while any layer of the image has no stored form.
            let stored = if is_component {
                precompile(&layer.layer).with_context(|| format!("cannot precompile layer {}", layer.config.digest()))?
            } else {
                envelope("", &layer.layer, &[])
            };
            out.push(Some(stored));
        }
        Ok(out)
    }
}

/// Compiles `component` as a container with the default runtime config would, and
/// returns the stored layer: the original component and its compile-cache entry.
fn precompile(component: &[u8]) -> Result<Vec<u8>> {
    let dir = tempfile::tempdir().context("cannot make a directory to compile in")?;
    let settings = EngineSettings { cache_dir: Some(dir.path().to_path_buf()), ..crate::default_engine_settings() };
    Engine::new(&settings)?.load_component("layer", component, tessera_capabilities::needs_concurrency)?;
    let entry = std::fs::read_dir(dir.path())?.next().context("the compile cache wrote no entry")??;
    let name = entry.file_name().into_string().map_err(|_| anyhow::anyhow!("the compile cache wrote a file name that is not UTF-8"))?;
    Ok(envelope(&name, component, &std::fs::read(entry.path())?))
}

/// A stored layer: the original bytes and, for a component, its compile-cache entry
/// `name` holding `compiled` (both empty otherwise).
fn envelope(name: &str, original: &[u8], compiled: &[u8]) -> Vec<u8> {
    let mut layer = Vec::with_capacity(MAGIC.len() + 12 + name.len() + original.len() + compiled.len());
    layer.extend_from_slice(MAGIC);
    layer.extend_from_slice(&(name.len() as u32).to_le_bytes());
    layer.extend_from_slice(name.as_bytes());
    layer.extend_from_slice(&(original.len() as u64).to_le_bytes());
    layer.extend_from_slice(original);
    layer.extend_from_slice(compiled);
    layer
}

/// A layer as the app needs it: a stored one goes back to its original bytes, and a
/// component's compiled code is written into `cache_dir`. Returns whether compiled code
/// was written.
pub fn unpack(layer: &mut WasmLayer, cache_dir: &Path) -> Result<bool> {
    if !layer.precompiled {
        return Ok(false);
    }
    let Some((name, original, compiled)) = split(&layer.layer) else {
        bail!("layer {} was precompiled by another shim; remove the image's precompiled content or pull it again", layer.config.digest());
    };
    let had_code = !name.is_empty();
    // Only a plain file name may be written into the cache.
    if had_code && (name.contains('/') || name.starts_with('.')) {
        bail!("layer {} names an invalid compile-cache entry `{name}`", layer.config.digest());
    }
    if had_code {
        std::fs::create_dir_all(cache_dir).with_context(|| format!("cannot create the compile cache {}", cache_dir.display()))?;
        std::fs::write(cache_dir.join(name), compiled).with_context(|| format!("cannot write the compile cache {}", cache_dir.display()))?;
    }
    layer.layer = original.to_vec();
    layer.precompiled = false;
    Ok(had_code)
}

fn split(layer: &[u8]) -> Option<(&str, &[u8], &[u8])> {
    let rest = layer.strip_prefix(MAGIC)?;
    let (len, rest) = rest.split_first_chunk::<4>()?;
    let (name, rest) = rest.split_at_checked(u32::from_le_bytes(*len) as usize)?;
    let (len, rest) = rest.split_first_chunk::<8>()?;
    let (original, compiled) = rest.split_at_checked(usize::try_from(u64::from_le_bytes(*len)).ok()?)?;
    Some((std::str::from_utf8(name).ok()?, original, compiled))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_precompiled_layer_gives_back_its_component_and_seeds_the_cache() {
        let component = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/hello-rust/hello_rust.wasm")).unwrap();
        let stored = precompile(&component).unwrap();
        let (name, original, compiled) = split(&stored).unwrap();
        assert_eq!(original, component);
        assert!(name.ends_with(".cwasm") && !compiled.is_empty(), "{name}");

        let cache = tempfile::tempdir().unwrap();
        let mut layer = precompiled_layer(stored);
        assert!(unpack(&mut layer, cache.path()).unwrap());
        assert_eq!(layer.layer, component);
        // The container's engine, with the same settings, finds the entry: no compile.
        let settings = EngineSettings { cache_dir: Some(cache.path().to_path_buf()), ..crate::default_engine_settings() };
        let (_, from) = Engine::new(&settings).unwrap().load_component("app", &component, tessera_capabilities::needs_concurrency).unwrap();
        assert_eq!(from, tessera_engine::CompiledFrom::Cache);
    }

    #[test]
    fn a_file_layer_is_stored_as_it_is() {
        let cache = tempfile::tempdir().unwrap();
        let mut layer = precompiled_layer(envelope("", b"static file", &[]));
        assert!(!unpack(&mut layer, cache.path()).unwrap());
        assert_eq!(layer.layer, b"static file");
        assert_eq!(std::fs::read_dir(cache.path()).unwrap().count(), 0);
    }

    #[test]
    fn a_damaged_precompiled_layer_is_refused() {
        let mut layer = precompiled_layer(b"\0asm garbage".to_vec());
        let err = unpack(&mut layer, Path::new("/nonexistent")).unwrap_err();
        assert!(err.to_string().contains("precompiled by another shim"), "{err}");
        let mut stored = MAGIC.to_vec();
        stored.extend_from_slice(&3u32.to_le_bytes());
        stored.extend_from_slice(b"../");
        stored.extend_from_slice(&0u64.to_le_bytes());
        let mut layer = precompiled_layer(stored);
        assert!(unpack(&mut layer, Path::new("/nonexistent")).unwrap_err().to_string().contains("invalid compile-cache entry"));
    }

    fn precompiled_layer(bytes: Vec<u8>) -> WasmLayer {
        let digest = format!("sha256:{}", "0".repeat(64));
        let json = format!(r#"{{"config":{{"mediaType":"application/vnd.wasm.content.layer.v1+wasm","digest":"{digest}","size":1}},"precompiled":true,"layer":[]}}"#);
        let mut layer: WasmLayer = serde_json::from_str(&json).unwrap();
        layer.layer = bytes;
        layer
    }
}
