//! Compiled components on disk, keyed by the component's SHA-256 and the engine's
//! compatibility hash (Wasmtime version and every setting that changes code), so a second
//! start maps the machine code instead of compiling it again.

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Module;
use wasmtime::component::Component;

/// Where a component's machine code came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompiledFrom {
    /// Compiled now.
    Source,
    /// Loaded from the cache.
    Cache,
    /// The code of the same bytes loaded earlier and still held (by another app).
    Shared,
}

/// The on-disk cache of compiled components.
#[derive(Debug)]
pub struct CompileCache {
    dir: PathBuf,
    engine_key: String,
}

impl CompileCache {
    /// `$TESSERA_CACHE_DIR`, else `$XDG_CACHE_HOME/tessera/components`, else
    /// `~/.cache/tessera/components`.
    pub fn default_dir() -> Option<PathBuf> {
        if let Some(dir) = std::env::var_os("TESSERA_CACHE_DIR") {
            return Some(PathBuf::from(dir));
        }
        Some(tessera_app::cache_home()?.join("components"))
    }

    /// A cache in `dir` for code compiled by `engine`.
    pub fn new(dir: PathBuf, engine: &wasmtime::Engine) -> Self {
        // The compatibility hash covers the Wasmtime version and code-shaping settings.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Self {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        }
    }

    /// The file that holds (or will hold) the compiled form of `bytes`.
    pub fn path_for(&self, bytes: &[u8]) -> PathBuf {
        self.path_for_digest(&Sha256::digest(bytes).into())
    }

    fn path_for_digest(&self, digest: &[u8; 32]) -> PathBuf {
        self.dir.join(format!("{}-{}.cwasm", hex::encode(digest), self.engine_key))
    }

    /// Loads the compiled component for `bytes` (whose SHA-256 is `digest`), compiling and
    /// storing it on a miss. A damaged entry is compiled again and replaced; a cache that
    /// cannot be written only costs the next start a compile.
    pub fn load(&self, engine: &wasmtime::Engine, bytes: &[u8], digest: &[u8; 32]) -> Result<(Component, CompiledFrom)> {
        // SAFETY (both closures): the file was written by `serialize` for an engine with
        // the same compatibility hash, into a cache directory owned by this user.
        self.load_with(
            self.path_for_digest(digest),
            |path| unsafe { Component::deserialize_file(engine, path) },
            || Component::new(engine, bytes),
            Component::serialize,
        )
    }

    /// [`CompileCache::load`] for a core module (a WASI preview 1 program).
    pub fn load_module(&self, engine: &wasmtime::Engine, bytes: &[u8]) -> Result<(Module, CompiledFrom)> {
        self.load_with(
            self.path_for(bytes),
            |path| unsafe { Module::deserialize_file(engine, path) },
            || Module::new(engine, bytes),
            Module::serialize,
        )
    }

    fn load_with<T>(
        &self,
        path: PathBuf,
        deserialize: impl FnOnce(&Path) -> wasmtime::Result<T>,
        compile: impl FnOnce() -> wasmtime::Result<T>,
        serialize: impl FnOnce(&T) -> wasmtime::Result<Vec<u8>>,
    ) -> Result<(T, CompiledFrom)> {
        if path.is_file() {
            match deserialize(&path) {
                Ok(c) => return Ok((c, CompiledFrom::Cache)),
                Err(e) => tracing::warn!("ignoring damaged compile-cache entry {}: {e}", path.display()),
            }
        }
        let compiled = compile()?;
        if let Err(e) = serialize(&compiled).map_err(anyhow::Error::from).and_then(|bytes| self.store(&path, &bytes)) {
            tracing::warn!("cannot write the compile cache at {}: {e:#}", path.display());
        }
        Ok((compiled, CompiledFrom::Source))
    }

    fn store(&self, path: &Path, serialized: &[u8]) -> Result<()> {
        std::fs::create_dir_all(&self.dir)
            .with_context(|| format!("cannot create {}", self.dir.display()))?;
        // Write then rename, so a crash never leaves a half-written entry behind.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, serialized)?;
        std::fs::rename(&tmp, path)?;
        Ok(())
    }
}
