//! Exported functions found by name, for callers that pick one at run time (`tessera run
//! --invoke`, `tessera call`, an embedder's dynamic calls): `name` for a function the
//! component exports itself, `iface#name` (or `iface.name`) for one in an exported
//! interface.

use crate::PreparedComponent;
use tessera_capabilities::InstanceState;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Func, Instance};

/// Splits `iface#name` (or `iface.name`, when `iface` names a package) into the interface
/// and the function; a plain `name` has no interface.
pub fn split_export(name: &str) -> (Option<&str>, &str) {
    match name.rsplit_once('#').or_else(|| name.rsplit_once('.')) {
        Some((interface, func)) if interface.contains(':') || interface.contains('/') => (Some(interface), func),
        _ => (None, name),
    }
}

/// A function asked for by name that the component does not export.
#[derive(Debug)]
pub struct NoSuchFunction {
    /// What was asked for (`iface#name` or `name`).
    pub wanted: String,
    /// Every function the component exports.
    pub available: Vec<String>,
}

impl std::fmt::Display for NoSuchFunction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exports no function `{}`; it exports: {}", self.wanted, list(&self.available))
    }
}

impl std::error::Error for NoSuchFunction {}

/// The type of the exported function `name` (in `interface`, if given); the error lists
/// every function the component exports.
pub fn find_func(component: &PreparedComponent, interface: Option<&str>, name: &str) -> Result<ComponentFunc, NoSuchFunction> {
    let c = component.component();
    let engine = c.engine();
    let mut available = Vec::new();
    for (export, item) in c.component_type().exports(engine) {
        match (interface, item.ty) {
            (None, ComponentItem::ComponentFunc(f)) if export == name => return Ok(f),
            (None, ComponentItem::ComponentFunc(_)) => available.push(export.to_string()),
            (Some(i), ComponentItem::ComponentInstance(inst)) if export == i => {
                for (fname, fitem) in inst.exports(engine) {
                    if let ComponentItem::ComponentFunc(f) = fitem.ty {
                        if fname == name {
                            return Ok(f);
                        }
                        available.push(format!("{export}#{fname}"));
                    }
                }
            }
            (_, ComponentItem::ComponentInstance(inst)) => {
                for (fname, fitem) in inst.exports(engine) {
                    if matches!(fitem.ty, ComponentItem::ComponentFunc(_)) {
                        available.push(format!("{export}#{fname}"));
                    }
                }
            }
            _ => {}
        }
    }
    let wanted = match interface {
        Some(i) => format!("{i}#{name}"),
        None => name.to_string(),
    };
    Err(NoSuchFunction { wanted, available })
}

/// The exported function `name` (in `interface`, if given) of a running instance.
pub fn lookup(store: &mut wasmtime::Store<InstanceState>, instance: &Instance, interface: Option<&str>, name: &str) -> wasmtime::Result<Func> {
    let index = match interface {
        Some(i) => {
            let parent = instance.get_export_index(&mut *store, None, i).ok_or_else(|| wasmtime::format_err!("no export `{i}`"))?;
            instance.get_export_index(&mut *store, Some(&parent), name)
        }
        None => instance.get_export_index(&mut *store, None, name),
    };
    let index = index.ok_or_else(|| wasmtime::format_err!("no export `{name}`"))?;
    instance.get_func(&mut *store, index).ok_or_else(|| wasmtime::format_err!("`{name}` is not a function"))
}

/// `items` joined for a message, or `nothing`.
pub fn list(items: &[String]) -> String {
    if items.is_empty() { "nothing".into() } else { items.join(", ") }
}
