//! Labelled backends granted per component (`key_value_stores`, `sqlite_databases`): each
//! label a component is granted must be defined in the runtime config, or be `default`.
//! Checked when the app loads, so a missing definition is an error at start.

use anyhow::Result;
use std::collections::BTreeMap;
use tessera_app::{LoadedApp, LoadedComponent};
use tessera_manifest::{BackendTable, Location, ManifestError};

/// How one capability names and opens its backends.
pub(crate) struct Backends<'a> {
    /// The component's grants of this kind.
    pub grants: fn(&LoadedComponent) -> &[(String, Location)],
    /// The runtime-config tables of this kind.
    pub tables: &'a BTreeMap<String, BackendTable>,
    /// What one is called in messages (`key-value store`).
    pub noun: &'static str,
    /// The runtime-config table name (`key_value_store`).
    pub table_name: &'static str,
    /// The manifest key that grants them.
    pub grant: crate::Grant,
}

impl Backends<'_> {
    /// Opens each granted label once, with `open(label, table)`; the table is `None` for the
    /// built-in `default`.
    pub fn open<B: Clone>(
        &self,
        app: &LoadedApp,
        mut open: impl FnMut(&str, Option<&BackendTable>) -> Result<B>,
    ) -> Result<BTreeMap<String, B>> {
        let mut opened = BTreeMap::new();
        for component in app.components.values() {
            for (label, at) in (self.grants)(component) {
                if opened.contains_key(label) {
                    continue;
                }
                let table = self.tables.get(label);
                if table.is_none() && label != "default" {
                    let (noun, table_name) = (self.noun, self.table_name);
                    return Err(ManifestError::at(
                        &app.manifest.path,
                        *at,
                        format!("component `{}` is granted {noun} `{label}`, which the runtime config does not define", component.id),
                        format!("define [{table_name}.{label}] in the runtime config (--runtime-config-file), e.g. type = \"spin\"; only `default` exists without one"),
                    )
                    .into());
                }
                opened.insert(label.clone(), open(label, table)?);
            }
        }
        Ok(opened)
    }

    /// The subset of `opened` that `component` is granted.
    pub fn granted<B: Clone>(&self, opened: &BTreeMap<String, B>, component: &LoadedComponent) -> Granted<B> {
        let backends = (self.grants)(component)
            .iter()
            .filter_map(|(label, _)| Some((label.clone(), opened.get(label)?.clone())))
            .collect();
        Granted { component: component.id.clone(), backends, noun: self.noun, grant: self.grant }
    }
}

/// The backends one component was granted, by label.
pub struct Granted<B> {
    component: String,
    backends: BTreeMap<String, B>,
    noun: &'static str,
    grant: crate::Grant,
}

impl<B> Granted<B> {
    /// Backend `label`, if granted; a refusal is logged with the key to add.
    pub(crate) fn get(&self, label: &str) -> Option<&B> {
        let backend = self.backends.get(label);
        if backend.is_none() {
            let (component, noun, key) = (&self.component, self.noun, self.grant.key());
            tracing::warn!("component `{component}` may not open {noun} `{label}`: add \"{label}\" to {key} in [component.{component}]");
        }
        backend
    }
}
