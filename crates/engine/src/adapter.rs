//! WASI preview 1 core modules made into components with Wasmtime's preview1 adapter
//! (the one `wasm-tools component new --adapt` takes), cached beside the compiled
//! components by the module's SHA-256 so a second run adapts nothing.

use anyhow::{Context as _, Result};
use sha2::{Digest, Sha256};
use std::path::Path;

/// Which adapter: a command (`_start`, exports `wasi:cli/run`) or a reactor (exports
/// functions).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Preview1Kind {
    /// A module with `_start`.
    Command,
    /// A library module.
    Reactor,
}

/// Whether `bytes` is a core WebAssembly module (not a component).
pub fn is_core_module(bytes: &[u8]) -> bool {
    wasmparser::Parser::is_core_wasm(bytes)
}

/// The kind of adapter a module needs: a command when it exports `_start`.
pub fn preview1_kind(module: &[u8]) -> Preview1Kind {
    let exports_start = wasmparser::Parser::new(0).parse_all(module).any(|payload| match payload {
        Ok(wasmparser::Payload::ExportSection(reader)) => reader.into_iter().flatten().any(|e| e.name == "_start"),
        _ => false,
    });
    if exports_start { Preview1Kind::Command } else { Preview1Kind::Reactor }
}

/// The component of preview 1 `module`, from `cache_dir` when it was adapted before.
/// `name` is used in errors.
pub fn adapt_preview1(name: &str, module: &[u8], cache_dir: Option<&Path>) -> Result<Vec<u8>> {
    let kind = preview1_kind(module);
    let key = format!("{}-{kind:?}-wasmtime{}.wasm", hex::encode(Sha256::digest(module)), env!("CARGO_PKG_VERSION"));
    let cached = cache_dir.map(|d| d.join("adapted").join(key));
    if let Some(path) = &cached
        && let Ok(bytes) = std::fs::read(path)
        && wasmparser::Parser::is_component(&bytes)
    {
        return Ok(bytes);
    }
    let adapter = match kind {
        Preview1Kind::Command => wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER,
        Preview1Kind::Reactor => wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
    };
    let component = wit_component::ComponentEncoder::default()
        .module(module)
        .and_then(|e| e.adapter("wasi_snapshot_preview1", adapter))
        .and_then(|e| e.validate(true).encode())
        .with_context(|| format!("cannot make a component of the WASI preview 1 module `{name}` (its imports must be wasi_snapshot_preview1 functions)"))?;
    if let Some(path) = &cached {
        // Write then rename, so a crash never leaves a half-written entry behind.
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        let stored = std::fs::create_dir_all(path.parent().expect("a file in a directory"))
            .and_then(|()| std::fs::write(&tmp, &component))
            .and_then(|()| std::fs::rename(&tmp, path));
        if let Err(e) = stored {
            tracing::warn!("cannot cache the adapted component at {}: {e}", path.display());
        }
    }
    Ok(component)
}
