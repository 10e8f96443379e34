//! `tessera compose`: a composed component that runs on any host. Inside Tessera a
//! dependency's denied imports (`tessera-denied-N`) are linked to the host's refusals; a
//! file for `wasmtime serve` or another host has them satisfied inside it instead, by a
//! generated stand-in per denied interface that refuses the way the host does: the
//! interface's `access-denied` error (or `HTTP-request-denied`, or `other` with a
//! message), an empty list, `none`; any other function traps. So a Python or JavaScript
//! dependency, whose runtime reads its environment and preopens at start, still runs.

use crate::{Composed, ComposeError, error_chain};
use wac_graph::types::Package;
use wac_graph::{CompositionGraph, EncodeOptions};
use wit_component::{ComponentEncoder, DecodedWasm, StringEncoding};
use wit_parser::abi::WasmType;
use wit_parser::{Int, InterfaceId, ManglingAndAbi, Resolve, SizeAlign, Type, TypeDefKind, WasmExport, WasmExportKind, World, WorldItem, WorldKey};

/// `composed` with its denied imports satisfied inside it (see the module docs).
pub fn self_contained(composed: &Composed) -> Result<Vec<u8>, ComposeError> {
    if composed.denied.is_empty() {
        return Ok(composed.bytes.clone());
    }
    let encode = |e: &dyn std::fmt::Display| ComposeError::Encode(e.to_string());
    let (resolve, world) = match wit_component::decode(&composed.bytes).map_err(|e| encode(&format!("{e:#}")))? {
        DecodedWasm::Component(resolve, world) => (resolve, world),
        DecodedWasm::WitPackage(..) => return Err(encode(&"the composed component decodes as a WIT package")),
    };
    let mut graph = CompositionGraph::new();
    let package = Package::from_bytes("tessera:composed", None, composed.bytes.clone(), graph.types_mut()).map_err(|e| encode(&format!("{e:#}")))?;
    let package = graph.register_package(package).map_err(|e| encode(&e))?;
    let exports: Vec<String> = graph.types()[graph[package].ty()].exports.keys().cloned().collect();
    let root = graph.instantiate(package);
    for (n, denied) in composed.denied.iter().enumerate() {
        let Some(WorldItem::Interface { id, .. }) = resolve.worlds[world].imports.get(&WorldKey::Name(denied.import.clone())) else {
            return Err(encode(&format!("the composed component has no import `{}`", denied.import)));
        };
        let bytes = refusing_component(&resolve, world, *id, &denied.import)
            .map_err(|e| encode(&format!("cannot make a stand-in for `{}` ({}): {e:#}", denied.import, denied.interface)))?;
        let stand_in = Package::from_bytes(&format!("tessera:denied-{n}"), None, bytes, graph.types_mut()).map_err(|e| encode(&format!("{e:#}")))?;
        let stand_in = graph.register_package(stand_in).map_err(|e| encode(&e))?;
        let instance = graph.instantiate(stand_in);
        let export = graph.alias_instance_export(instance, &denied.import).map_err(|e| encode(&error_chain(&e)))?;
        graph.set_instantiation_argument(root, &denied.import, export).map_err(|e| encode(&error_chain(&e)))?;
    }
    for name in &exports {
        let alias = graph.alias_instance_export(root, name).map_err(|e| encode(&error_chain(&e)))?;
        graph.export(alias, name).map_err(|e| encode(&error_chain(&e)))?;
    }
    graph.encode(EncodeOptions::default()).map_err(|e| encode(&error_chain(&e)))
}

/// A component exporting `interface` as `name` whose functions refuse (see the module
/// docs); it imports only the interfaces whose types `interface` uses.
fn refusing_component(resolve: &Resolve, composed_world: wit_parser::WorldId, interface: InterfaceId, name: &str) -> anyhow::Result<Vec<u8>> {
    let mut resolve = resolve.clone();
    let mut needed = Vec::new();
    let mut stack = vec![interface];
    while let Some(id) = stack.pop() {
        for dep in resolve.interface_direct_deps(id) {
            if !needed.contains(&dep) {
                needed.push(dep);
                stack.push(dep);
            }
        }
    }
    let original = &resolve.worlds[composed_world];
    // The composed world's imports are already in dependency order.
    let imports = original
        .imports
        .iter()
        .filter(|(_, item)| matches!(item, WorldItem::Interface { id, .. } if needed.contains(id)))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let export = WorldItem::Interface { id: interface, stability: Default::default(), external_id: None, docs: Default::default(), span: Default::default() };
    let package = original.package;
    let world = resolve.worlds.alloc(World {
        name: "tessera-denied".into(),
        imports,
        exports: [(WorldKey::Name(name.to_string()), export)].into_iter().collect(),
        package,
        docs: Default::default(),
        stability: Default::default(),
        includes: Vec::new(),
        span: Default::default(),
    });
    if let Some(package) = package {
        resolve.packages[package].worlds.insert("tessera-denied".into(), world);
    }
    let mut module = wat::parse_str(refusing_module(&resolve, interface, &WorldKey::Name(name.to_string())))?;
    wit_component::embed_component_metadata(&mut module, &resolve, world, StringEncoding::UTF8)?;
    ComponentEncoder::default().module(&module)?.validate(true).encode()
}

/// Where the answers live in the stand-in's memory; arguments are copied in above them.
const HEAP_START: usize = 4096;

/// The core module of a stand-in: each function of `interface` (exported as `key`)
/// returns a refusal stored in a static area, or traps.
fn refusing_module(resolve: &Resolve, interface: InterfaceId, key: &WorldKey) -> String {
    let mut sizes = SizeAlign::default();
    sizes.fill(resolve);
    let mut wat = String::from("(module\n");
    let mut data = Vec::new();
    // Static answers from offset 8 up (0 stays a valid empty-list pointer).
    let mut next = 8usize;
    for (_, func) in &resolve.interfaces[interface].functions {
        let mangling = ManglingAndAbi::Standard32.for_func(func);
        let sig = resolve.wasm_signature(mangling.export_variant(), func);
        let export = resolve.wasm_export_name(mangling, WasmExport::Func { interface: Some(key), func, kind: WasmExportKind::Normal });
        wat.push_str(&format!("(func (export {export:?})"));
        push_types(&mut wat, "param", &sig.params);
        push_types(&mut wat, "result", &sig.results);
        let answer = match (&func.result, mangling.is_async(), sig.retptr, sig.results.len()) {
            (Some(ty), false, true, 1) => refusal(resolve, &sizes, ty),
            _ => None,
        };
        match answer {
            Some(bytes) => {
                let align = 8;
                next = next.div_ceil(align) * align;
                let at = next;
                next += bytes.len().max(1);
                let bytes = bytes.into_iter().map(|b| b.resolve(&mut next, &mut data)).collect::<Vec<u8>>();
                data.push((at, bytes));
                wat.push_str(&format!(" global.get $heap_start global.set $heap i32.const {at})\n"));
            }
            None => wat.push_str(" unreachable)\n"),
        }
    }
    for (resource, ty) in &resolve.interfaces[interface].types {
        if matches!(resolve.types[*ty].kind, TypeDefKind::Resource) {
            let module = resolve.name_world_key(key);
            wat.push_str(&format!("(func (export \"{module}#[dtor]{resource}\") (param i32))\n"));
        }
    }
    assert!(next < HEAP_START, "refusals fit below the heap");
    let memory = resolve.wasm_export_name(ManglingAndAbi::Standard32, WasmExport::Memory);
    let realloc = resolve.wasm_export_name(ManglingAndAbi::Standard32, WasmExport::Realloc);
    wat.push_str(&format!("(memory (export {memory:?}) 1)\n"));
    wat.push_str(&format!("(global $heap_start i32 (i32.const {HEAP_START}))\n(global $heap (mut i32) (i32.const {HEAP_START}))\n"));
    // A bump allocator for the arguments the host copies in; each call starts it over.
    wat.push_str(&format!(
        "(func (export {realloc:?}) (param $old i32) (param $old_size i32) (param $align i32) (param $size i32) (result i32) (local $at i32)
           (local.set $at (i32.and (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1))) (i32.sub (i32.const 0) (local.get $align))))
           (global.set $heap (i32.add (local.get $at) (local.get $size)))
           (block $fits
             (br_if $fits (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
             (br_if $fits (i32.ne (memory.grow (i32.div_u (i32.add (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))) (i32.const 65535)) (i32.const 65536))) (i32.const -1)))
             unreachable)
           (local.get $at))\n"
    ));
    for (at, bytes) in data {
        let text: String = bytes.iter().map(|b| format!("\\{b:02x}")).collect();
        wat.push_str(&format!("(data (i32.const {at}) \"{text}\")\n"));
    }
    wat.push_str(")\n");
    wat
}

/// A byte of a refusal, or the place of a message it points to.
#[derive(Clone, Copy)]
enum Byte {
    Value(u8),
    /// The 4 little-endian bytes of the message's address (`part` 0..4).
    MessageAddress(u8),
    /// The 4 little-endian bytes of the message's length.
    MessageLength(u8),
}

/// The message an `other(string)` refusal carries.
const MESSAGE: &str = "denied: this dependency may not use its parent's capability (inherit_configuration)";

impl Byte {
    fn resolve(self, next: &mut usize, data: &mut Vec<(usize, Vec<u8>)>) -> u8 {
        let mut address = || -> usize {
            if let Some((at, _)) = data.iter().find(|(_, bytes)| bytes == MESSAGE.as_bytes()) {
                return *at;
            }
            let at = *next;
            *next += MESSAGE.len();
            data.push((at, MESSAGE.as_bytes().to_vec()));
            at
        };
        match self {
            Self::Value(b) => b,
            Self::MessageAddress(part) => (address() as u32).to_le_bytes()[part as usize],
            Self::MessageLength(part) => (MESSAGE.len() as u32).to_le_bytes()[part as usize],
        }
    }
}

/// The bytes of the refusal for a result of type `ty` (as the canonical ABI stores it), if
/// the type has one: an empty list, `none`, or an error saying access is denied.
fn refusal(resolve: &Resolve, sizes: &SizeAlign, ty: &Type) -> Option<Vec<Byte>> {
    let size = sizes.size(ty).size_wasm32();
    let mut bytes = vec![Byte::Value(0); size];
    let Type::Id(id) = ty else { return None };
    match &resolve.types[*id].kind {
        TypeDefKind::Type(inner) => return refusal(resolve, sizes, inner),
        // Zeroes: an empty list, `none`.
        TypeDefKind::List(_) | TypeDefKind::Option(_) => {}
        TypeDefKind::Result(result) => {
            let error = denied_error(resolve, sizes, result.err.as_ref()?)?;
            let offset = sizes.payload_offset(Int::U8, [result.ok.as_ref(), result.err.as_ref()]).size_wasm32();
            bytes[0] = Byte::Value(1);
            bytes[offset..offset + error.len()].copy_from_slice(&error);
        }
        _ => return None,
    }
    Some(bytes)
}

/// An error value of type `ty` that says access is denied.
fn denied_error(resolve: &Resolve, sizes: &SizeAlign, ty: &Type) -> Option<Vec<Byte>> {
    let Type::Id(id) = ty else { return None };
    let size = sizes.size(ty).size_wasm32();
    let mut bytes = vec![Byte::Value(0); size];
    let tag = |bytes: &mut Vec<Byte>, index: usize, width: Int| {
        let value = (index as u32).to_le_bytes();
        let n = match width {
            Int::U8 => 1,
            Int::U16 => 2,
            Int::U32 | Int::U64 => 4,
        };
        for (i, b) in value.iter().take(n).enumerate() {
            bytes[i] = Byte::Value(*b);
        }
    };
    match &resolve.types[*id].kind {
        TypeDefKind::Type(inner) => return denied_error(resolve, sizes, inner),
        TypeDefKind::Enum(e) => {
            let index = e.cases.iter().position(|c| c.name == "access-denied")?;
            tag(&mut bytes, index, e.tag());
        }
        TypeDefKind::Variant(v) => {
            if let Some(index) = v.cases.iter().position(|c| c.ty.is_none() && matches!(c.name.as_str(), "access-denied" | "HTTP-request-denied")) {
                tag(&mut bytes, index, v.tag());
            } else {
                let index = v.cases.iter().position(|c| c.name == "other" && c.ty == Some(Type::String))?;
                tag(&mut bytes, index, v.tag());
                let offset = sizes.payload_offset(v.tag(), v.cases.iter().map(|c| c.ty.as_ref())).size_wasm32();
                for part in 0..4u8 {
                    bytes[offset + part as usize] = Byte::MessageAddress(part);
                    bytes[offset + 4 + part as usize] = Byte::MessageLength(part);
                }
            }
        }
        _ => return None,
    }
    Some(bytes)
}

fn push_types(wat: &mut String, what: &str, types: &[WasmType]) {
    if types.is_empty() {
        return;
    }
    wat.push_str(&format!(" ({what}"));
    for ty in types {
        wat.push_str(match ty {
            WasmType::I64 | WasmType::PointerOrI64 => " i64",
            WasmType::F32 => " f32",
            WasmType::F64 => " f64",
            WasmType::I32 | WasmType::Pointer | WasmType::Length => " i32",
        });
    }
    wat.push(')');
}
