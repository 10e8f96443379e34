//! Stubs for whole interfaces a component imports but Tessera does not provide yet.
//!
//! SDKs import their entire platform world (the Python Spin SDK imports every Spin
//! interface and three WASI versions), so a component may import interfaces it never
//! calls. Each such interface is linked to functions that fail with a message naming the
//! interface, so the component still loads; the log lists them at start. Only interfaces
//! missing as a whole are stubbed: a known interface with a mismatched function stays a
//! load error. (Wasmtime's `define_unknown_imports_as_traps` cannot be used: it also
//! redefines type aliases such as `headers = fields` inside interfaces that do exist.)

use anyhow::{Result, bail};
use tessera_capabilities::InstanceState;
use wasmtime::component::types::ComponentItem;
use wasmtime::component::{Component, InstancePre, Linker, ResourceType};

/// The type given to resources of stubbed interfaces; they can never be created.
struct StubResource;

/// Pre-instantiates `component`, stubbing interfaces missing from `linker`. Returns the
/// names of the stubbed interfaces.
pub(crate) fn instantiate_pre_with_stubs(
    linker: &Linker<InstanceState>,
    component: &Component,
) -> Result<(InstancePre<InstanceState>, Vec<String>)> {
    let mut stubbed = Vec::new();
    let mut linker = linker.clone();
    loop {
        let error = match linker.instantiate_pre(component) {
            Ok(pre) => return Ok((pre, stubbed)),
            Err(e) => e,
        };
        let message = error.to_string();
        let missing = message
            .strip_prefix("component imports instance `")
            .and_then(|rest| rest.strip_suffix("`, but a matching implementation was not found in the linker"));
        match missing {
            Some(name) if !stubbed.iter().any(|s| s == name) => {
                stub_instance(&mut linker, component, name)?;
                stubbed.push(name.to_string());
            }
            _ => return Err(anyhow::Error::from(error)),
        }
    }
}

fn stub_instance(linker: &mut Linker<InstanceState>, component: &Component, name: &str) -> Result<()> {
    let engine = component.engine();
    let component_type = component.component_type();
    let import = component_type.imports(engine).find(|(n, _)| *n == name);
    let Some((_, extern_)) = import else {
        bail!("component imports `{name}`, which is not an interface Tessera can stub");
    };
    let ComponentItem::ComponentInstance(instance) = extern_.ty else {
        bail!("component imports `{name}`, which is not an interface Tessera can stub");
    };
    let mut li = linker.instance(name)?;
    for (export, item) in instance.exports(engine) {
        let what = format!("`{name}#{export}` is not provided by Tessera yet");
        match item.ty {
            ComponentItem::ComponentFunc(f) if f.async_() => {
                li.func_new_concurrent(export, move |_, _, _, _| {
                    let what = what.clone();
                    Box::pin(async move { Err(wasmtime::format_err!("{what}")) })
                })?;
            }
            ComponentItem::ComponentFunc(_) => {
                li.func_new(export, move |_, _, _, _| Err(wasmtime::format_err!("{what}")))?;
            }
            ComponentItem::Resource(_) => {
                li.resource(export, ResourceType::host::<StubResource>(), |_, _| Ok(()))?;
            }
            _ => {}
        }
    }
    Ok(())
}
