//! Component variables for guests: `fermyon:spin/variables@2.0.0`,
//! `spin:variables/variables@3.0.0` and `wasi:config/store@0.2.0-draft-2024-09-27`, all
//! over the same values: the component's `variables` table with `{{ app_variable }}`
//! templates filled in when the app loads.

use crate::{Capability, Concurrency, Grant, InstanceState};
use anyhow::Result;
use std::collections::BTreeMap;
use std::sync::Arc;
use tessera_app::{LoadedApp, LoadedComponent};
use wasmtime::component::{Accessor, HasData, Linker};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "tessera:host/variables",
        imports: {
            "spin:variables/variables.get": async | store,
            default: trappable,
        },
    });
}

use bindings::fermyon::spin::variables as v2;
use bindings::spin::variables::variables as v3;
use bindings::wasi::config::store as wasi_config;

/// The variables capability (no app-wide state: each component has its own values).
pub struct Variables;

impl Capability for Variables {
    const IMPORTS: &'static [&'static str] = &["spin:variables/", "fermyon:spin/variables", "fermyon:spin/config", "wasi:config/"];
    const NAME: &'static str = "variables";
    const GRANT: Grant = Grant::Variables;
    type Component = Arc<BTreeMap<String, String>>;
    type Instance = InstanceVariables;

    fn link(linker: &mut Linker<InstanceState>, concurrency: Concurrency) -> Result<()> {
        v2::add_to_linker::<_, Variables>(linker, view)?;
        if concurrency == Concurrency::On {
            v3::add_to_linker::<_, Variables>(linker, view)?;
        }
        wasi_config::add_to_linker::<_, Variables>(linker, view)?;
        Ok(())
    }

    /// `spin:variables` 3.x takes the store (concurrent host functions).
    fn needs_concurrency(interface: &str) -> bool {
        interface.starts_with("spin:variables/")
    }

    fn configure_app(_: &LoadedApp) -> Result<Self> {
        Ok(Self)
    }

    /// Takes the component's rendered `variables`.
    fn configure_component(&self, _: &LoadedApp, component: &LoadedComponent) -> Result<Self::Component> {
        Ok(Arc::new(component.config.clone()))
    }

    fn instance(values: &Self::Component) -> InstanceVariables {
        InstanceVariables { values: values.clone() }
    }
}

fn view(s: &mut InstanceState) -> &mut InstanceVariables {
    s.capability::<Variables>().1
}

/// Variables as one instance sees them.
pub struct InstanceVariables {
    values: Arc<BTreeMap<String, String>>,
}

impl HasData for Variables {
    type Data<'a> = &'a mut InstanceVariables;
}

/// Spin's lookup: the name must be lower_snake_case and defined for the component.
fn lookup(values: &BTreeMap<String, String>, name: &str) -> Result<String, LookupError> {
    if !tessera_manifest::template::is_variable_name(name) {
        return Err(LookupError::InvalidName(format!("`{name}` is not a valid variable name (lower_snake_case)")));
    }
    values
        .get(name)
        .cloned()
        .ok_or_else(|| LookupError::Undefined(format!("no variable `{name}`: add it to the component's `variables` in spin.toml")))
}

enum LookupError {
    InvalidName(String),
    Undefined(String),
}

impl v2::Host for InstanceVariables {
    fn get(&mut self, name: String) -> wasmtime::Result<Result<String, v2::Error>> {
        Ok(lookup(&self.values, &name).map_err(|e| match e {
            LookupError::InvalidName(m) => v2::Error::InvalidName(m),
            LookupError::Undefined(m) => v2::Error::Undefined(m),
        }))
    }
}

impl v3::Host for InstanceVariables {}

impl wasi_config::Host for InstanceVariables {
    fn get(&mut self, key: String) -> wasmtime::Result<Result<Option<String>, wasi_config::Error>> {
        Ok(Ok(self.values.get(&key).cloned()))
    }

    fn get_all(&mut self) -> wasmtime::Result<Result<Vec<(String, String)>, wasi_config::Error>> {
        Ok(Ok(self.values.iter().map(|(k, v)| (k.clone(), v.clone())).collect()))
    }
}

impl<T> v3::HostWithStore<T> for Variables {
    async fn get(accessor: &Accessor<T, Self>, name: String) -> Result<String, v3::Error> {
        let values = accessor.with(|mut access| access.get().values.clone());
        lookup(&values, &name).map_err(|e| match e {
            LookupError::InvalidName(m) => v3::Error::InvalidName(m),
            LookupError::Undefined(m) => v3::Error::Undefined(m),
        })
    }
}
