//! WASI preview 1 core modules made components at load, as Spin does for modules built by
//! older SDKs (`wasm32-wasi`, `wasm32-wasip1`): the module's `component-type` sections
//! (written by wit-bindgen) give its world, and Wasmtime's preview 1 adapter maps its
//! `wasi_snapshot_preview1` imports onto WASI 0.2. A module with `_start` gets the command
//! adapter, any other the reactor adapter. The compiled result goes to the compile cache
//! like any component.

use anyhow::{Result, anyhow};
use wasi_preview1_component_adapter_provider::{
    WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER, WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
};

/// The component made from core module `bytes`, or an error naming what the module
/// imports that no adapter provides.
pub fn module_to_component(name: &str, bytes: &[u8]) -> Result<Vec<u8>> {
    let (imports, exports) = module_items(bytes);
    let adapter = if exports.iter().any(|e| e == "_start") { WASI_SNAPSHOT_PREVIEW1_COMMAND_ADAPTER } else { WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER };
    wit_component::ComponentEncoder::default()
        .module(bytes)
        .and_then(|encoder| encoder.adapter(WASI_SNAPSHOT_PREVIEW1_ADAPTER_NAME, adapter))
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|e| {
            let shown = if imports.is_empty() { "nothing".to_string() } else { imports.join(", ") };
            anyhow!(
                "`{name}` is a WebAssembly core module that cannot be made a component: {e:#}\n  \
                 it imports: {shown}\n  \
                 hint: Tessera adapts WASI preview 1 modules built with wit-bindgen (Spin SDKs for wasm32-wasi); \
                 rebuild it for wasm32-wasip2, or run a plain WASI program with `tessera run`"
            )
        })
}

/// A core module's imports (`module::name`) and exports.
fn module_items(bytes: &[u8]) -> (Vec<String>, Vec<String>) {
    use wasmparser::{Parser, Payload};
    let (mut imports, mut exports) = (Vec::new(), Vec::new());
    for payload in Parser::new(0).parse_all(bytes).flatten() {
        match payload {
            Payload::ImportSection(reader) => {
                for group in reader.into_iter().flatten() {
                    for import in group.into_iter().flatten() {
                        let (_, import) = import;
                        imports.push(format!("{}::{}", import.module, import.name));
                    }
                }
            }
            Payload::ExportSection(reader) => exports.extend(reader.into_iter().flatten().map(|e| e.name.to_string())),
            _ => {}
        }
    }
    (imports, exports)
}
