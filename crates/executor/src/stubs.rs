//! Interfaces whose every call fails: stubs for whole interfaces a component imports but
//! Tessera does not provide yet, and the refusals that stand for a dependency's denied
//! capabilities (see tessera-compose). Both are defined by `define_failing_instance`.
//!
//! Stubs:
//!
//! SDKs import their entire platform world (the Python Spin SDK imports every Spin
//! interface and three WASI versions), so a component may import interfaces it never
//! calls. Each such interface is linked to functions that fail with a message naming the
//! interface, so the component still loads; the log lists them at start. Only interfaces
//! missing as a whole are stubbed: a known interface with a mismatched function stays a
//! load error. (Wasmtime's `define_unknown_imports_as_traps` cannot be used: it also
//! redefines type aliases such as `headers = fields` inside interfaces that do exist.)

use anyhow::{Result, bail};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tessera_capabilities::InstanceState;
use wasmtime::component::types::{ComponentFunc, ComponentItem};
use wasmtime::component::{Component, InstancePre, Linker, ResourceType, Val};

/// Pre-instantiates `component`, stubbing interfaces missing from `linker`. Returns the
/// names of the stubbed interfaces that have functions (one of types only, such as
/// `fermyon:spin/redis-types`, is complete as defined and not reported).
pub(crate) fn instantiate_pre_with_stubs(
    linker: &Linker<InstanceState>,
    component: &Component,
) -> Result<(InstancePre<InstanceState>, Vec<String>)> {
    let mut stubbed = Vec::new();
    let mut with_functions = Vec::new();
    let mut linker = linker.clone();
    loop {
        let error = match linker.instantiate_pre(component) {
            Ok(pre) => return Ok((pre, with_functions)),
            Err(e) => e,
        };
        let message = error.to_string();
        let missing = message
            .strip_prefix("component imports instance `")
            .and_then(|rest| rest.strip_suffix("`, but a matching implementation was not found in the linker"));
        match missing {
            Some(name) if !stubbed.iter().any(|s| s == name) => {
                if stub_instance(&mut linker, component, name)? > 0 {
                    with_functions.push(name.to_string());
                }
                stubbed.push(name.to_string());
            }
            _ => return Err(anyhow::Error::from(error)),
        }
    }
}

/// Stubs interface `name`; returns how many functions it has.
fn stub_instance(linker: &mut Linker<InstanceState>, component: &Component, name: &str) -> Result<usize> {
    define_failing_instance(linker, component, name, |export| {
        let what = format!("`{name}#{export}` is not provided by Tessera yet");
        Arc::new(move |_: &ComponentFunc, _: &mut [Val]| Err(wasmtime::format_err!("{what}")))
    })
}

/// Links the private import `denied.import` of component `id` (a dependency's capability
/// it may not inherit, see tessera-compose) to functions that refuse every call the way
/// the interface itself refuses: its `access-denied` error (or `HTTP-request-denied`, or
/// an `other` error saying why), an empty list, or `none`; a function with no such
/// answer traps. Each refusal is logged naming the dependency, the interface and the
/// `inherit_configuration` key that would allow it.
pub(crate) fn deny_instance(linker: &mut Linker<InstanceState>, component: &Component, id: &str, denied: &tessera_compose::DeniedImport) -> Result<()> {
    define_failing_instance(linker, component, &denied.import, |export| {
        let why = format!(
            "dependency `{}` of component `{id}` called `{}#{export}`: denied (allow it with inherit_configuration = [\"{}\"] on the dependency)",
            denied.dependency, denied.interface, denied.inherit_key
        );
        let refusals = AtomicU64::new(0);
        Arc::new(move |ty: &ComponentFunc, results: &mut [Val]| refuse(&why, &refusals, ty, results))
    })
    .map(drop)
}

/// What a failing function does with its type and result slots.
type Answer = Arc<dyn Fn(&ComponentFunc, &mut [Val]) -> wasmtime::Result<()> + Send + Sync>;

/// The type given to resources of failing interfaces; they can never be created.
struct FailingResource;

/// Defines instance `name`, which `component` imports, in `linker`: each function answers
/// with `answer(export)`, each resource of its own is a type nothing creates. Resources it
/// only uses (`descriptor` in `wasi:filesystem/preopens`) are another import's and are not
/// defined again. Returns how many functions it defined.
fn define_failing_instance(linker: &mut Linker<InstanceState>, component: &Component, name: &str, answer: impl Fn(&str) -> Answer) -> Result<usize> {
    let engine = component.engine();
    let component_type = component.component_type();
    let Some((_, item)) = component_type.imports(engine).find(|(n, _)| *n == name) else {
        bail!("component imports `{name}`, which is not an interface Tessera can stub");
    };
    let ComponentItem::ComponentInstance(instance) = item.ty else {
        bail!("component imports `{name}`, which is not an interface Tessera can stub");
    };
    let shared = resources_of_earlier_imports(component, name);
    let mut li = linker.instance(name)?;
    let mut functions = 0;
    for (export, item) in instance.exports(engine) {
        functions += usize::from(matches!(item.ty, ComponentItem::ComponentFunc(_)));
        match item.ty {
            ComponentItem::ComponentFunc(f) if f.async_() => {
                let answer = answer(export);
                li.func_new_concurrent(export, move |_, ty, _, results| {
                    let answer = answer.clone();
                    Box::pin(async move { answer(&ty, results) })
                })?;
            }
            ComponentItem::ComponentFunc(_) => {
                let answer = answer(export);
                li.func_new(export, move |_, ty, _, results| answer(&ty, results))?;
            }
            ComponentItem::Resource(r) if !shared.contains(&r) => {
                li.resource(export, ResourceType::host::<FailingResource>(), |_, _| Ok(()))?;
            }
            _ => {}
        }
    }
    Ok(functions)
}

/// The resource types exported by the instances `component` imports before `name`: a
/// resource is introduced by the first import that exports it, and later ones only use it.
fn resources_of_earlier_imports(component: &Component, name: &str) -> Vec<ResourceType> {
    let engine = component.engine();
    let mut found = Vec::new();
    for (import, item) in component.component_type().imports(engine) {
        if import == name {
            break;
        }
        if let ComponentItem::ComponentInstance(instance) = item.ty {
            for (_, export) in instance.exports(engine) {
                if let ComponentItem::Resource(r) = export.ty {
                    found.push(r);
                }
            }
        }
    }
    found
}

/// Refuses one call. The log gets the 1st, 2nd, 4th, 8th... refusal of each function, so
/// a dependency calling in a loop cannot flood it: as a warning when the dependency sees
/// an error or a trap, as information when it sees nothing there (an empty environment or
/// list of preopens, which language runtimes read on every call).
fn refuse(why: &str, refusals: &AtomicU64, ty: &ComponentFunc, results: &mut [Val]) -> wasmtime::Result<()> {
    let answer = ty.results().next().and_then(|result| refusal(&result, why));
    let n = refusals.fetch_add(1, Ordering::Relaxed) + 1;
    if n.is_power_of_two() {
        let times = if n > 1 { format!(" ({n} times so far)") } else { String::new() };
        match &answer {
            Some(Val::List(_) | Val::Option(_)) => tracing::info!("{why}{times}"),
            _ => tracing::warn!("{why}{times}"),
        }
    }
    match (answer, results.first_mut()) {
        (Some(value), Some(slot)) => {
            *slot = value;
            Ok(())
        }
        _ => Err(wasmtime::format_err!("{why}")),
    }
}

/// How an interface says no with a value of type `ty`, if it can.
fn refusal(ty: &wasmtime::component::Type, why: &str) -> Option<wasmtime::component::Val> {
    use wasmtime::component::{Type, Val};
    match ty {
        Type::List(_) => Some(Val::List(Vec::new())),
        Type::Option(_) => Some(Val::Option(None)),
        Type::Result(r) => {
            let error = match r.err()? {
                Type::Variant(v) => {
                    let cases: Vec<_> = v.cases().map(|c| (c.name.to_string(), c.ty)).collect();
                    if let Some((name, _)) = cases.iter().find(|(n, t)| t.is_none() && matches!(n.as_str(), "access-denied" | "HTTP-request-denied")) {
                        Val::Variant(name.clone(), None)
                    } else if cases.iter().any(|(n, t)| n == "other" && matches!(t, Some(Type::String))) {
                        Val::Variant("other".into(), Some(Box::new(Val::String(why.to_string()))))
                    } else {
                        return None;
                    }
                }
                Type::Enum(e) => Val::Enum(e.names().find(|n| *n == "access-denied")?.to_string()),
                _ => return None,
            };
            Some(Val::Result(Err(Some(Box::new(error)))))
        }
        _ => None,
    }
}
