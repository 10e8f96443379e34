//! Tessera's manifest layer: `spin.toml` (v2) and the runtime-config file parsed into plain
//! typed values, with `file:line:column` errors and hints. No Wasmtime and no I/O beyond
//! reading the files, so every parser here can be unit-tested and fuzzed alone.
#![deny(missing_docs)]

pub mod allowed_hosts;
mod compat;
pub mod cron;
pub mod dependencies;
mod error;
#[cfg(any(test, feature = "fuzzing"))]
#[doc(hidden)]
pub mod fuzzing;
mod manifest;
pub mod routes;
mod runtime_config;
pub mod subjects;
pub mod template;

pub use error::{ManifestError, SourceFile};
pub use manifest::*;
pub use runtime_config::{BackendTable, ComponentLimits, RuntimeConfig, parse_duration, parse_size};

/// Whether `path` is a component file rather than a manifest.
pub fn is_component_file(path: &std::path::Path) -> bool {
    path.extension().is_some_and(|e| e == "wasm")
        || std::fs::File::open(path).and_then(|mut f| {
            let mut magic = [0u8; 4];
            std::io::Read::read_exact(&mut f, &mut magic).map(|()| magic == *b"\0asm")
        }).unwrap_or(false)
}

/// Finds the manifest for `-f`: a file as given, or `spin.toml` (then `tessera.toml`) in a
/// directory.
pub fn find_manifest(path: &std::path::Path) -> Result<std::path::PathBuf, ManifestError> {
    if path.is_dir() {
        for name in ["spin.toml", "tessera.toml"] {
            let candidate = path.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
        }
        return Err(ManifestError::whole_file(path, "no spin.toml or tessera.toml in this directory")
            .with_hint("run from the app's directory or pass its manifest with -f"));
    }
    if path.is_file() {
        return Ok(path.to_path_buf());
    }
    Err(ManifestError::whole_file(path, "no such file or directory")
        .with_hint("pass the app's spin.toml (or its directory) with -f"))
}
