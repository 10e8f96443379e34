//! Key-value stores: `fermyon:spin/key-value@2.0.0` and `wasi:keyvalue` 0.2.0-draft2
//! (store, atomics, batch), all over the same stores.
//!
//! - Manifest: `key_value_stores = ["default", ...]` grants a component its stores.
//! - Runtime config: `[key_value_store.<label>]` with `type = "spin"` (embedded SQLite,
//!   the default; `path` optional) or `type = "redis"` (`url`). The `default` store needs
//!   no config: it lives in `<state_dir>/sqlite_key_value.db`, where Spin keeps it.
//! - A grant of a store the runtime config does not define is an error at start. Opening a
//!   store that is not granted returns `access-denied` and logs the key to add.
//! - Keys are at most [`MAX_KEY_BYTES`], values at most [`MAX_VALUE_BYTES`]; larger ones are
//!   refused with an error, never truncated.

mod host;
mod redis_store;
mod sqlite_store;

use crate::{Capability, Concurrency, Grant, InstanceState};
use anyhow::{Context as _, Result};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tessera_app::{LoadedApp, LoadedComponent};
use crate::grants::{Backends, Granted};
use tessera_manifest::BackendTable;
use wasmtime::component::Linker;

/// Longest key accepted, in bytes.
pub const MAX_KEY_BYTES: usize = 4096;
/// Largest value accepted, in bytes.
pub const MAX_VALUE_BYTES: usize = 16 << 20;

/// A backend failure, shown to the guest as the interface's `other` error.
pub type BackendError = String;

/// What every backend provides.
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// The value of `key`, if any.
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError>;
    /// Sets `key` durably before returning.
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), BackendError>;
    /// Removes `key` (no error if absent).
    async fn delete(&self, key: &str) -> Result<(), BackendError>;
    /// Whether `key` has a value.
    async fn exists(&self, key: &str) -> Result<bool, BackendError>;
    /// Every key.
    async fn keys(&self) -> Result<Vec<String>, BackendError>;
    /// Adds `delta` to the decimal integer at `key` (absent counts as 0), atomically.
    async fn increment(&self, key: &str, delta: i64) -> Result<i64, BackendError>;
    /// Sets `key` to `new` only if its value is still `current`; false if it changed.
    async fn compare_and_swap(&self, key: &str, current: Option<&[u8]>, new: &[u8]) -> Result<bool, BackendError>;
}

/// The key-value capability: the app's stores, opened once and shared by every
/// component granted them.
pub struct KeyValue {
    stores: BTreeMap<String, Arc<dyn Store>>,
}

impl Capability for KeyValue {
    const IMPORTS: &'static [&'static str] = &["spin:key-value/", "fermyon:spin/key-value", "wasi:keyvalue/"];
    const NAME: &'static str = "key_value";
    const GRANT: Grant = Grant::KeyValueStores;
    type Component = Arc<Granted<Arc<dyn Store>>>;
    type Instance = InstanceKeyValue;

    fn link(linker: &mut Linker<InstanceState>, concurrency: Concurrency) -> Result<()> {
        host::link(linker, concurrency)
    }

    /// `spin:key-value` 3.x takes the store (concurrent host functions).
    fn needs_concurrency(interface: &str) -> bool {
        interface.starts_with("spin:key-value/")
    }

    /// Opens every store a component is granted, from the runtime config or the default.
    fn configure_app(app: &LoadedApp) -> Result<Self> {
        let default_db = app.state_dir.join("sqlite_key_value.db");
        let mut sqlite_files: BTreeMap<PathBuf, Arc<sqlite_store::Database>> = BTreeMap::new();
        let stores = backends(app).open(app, |label, table| match table {
            Some(table) => open_backend(label, table, &default_db, &mut sqlite_files),
            None => {
                let db = sqlite_database(&default_db, &mut sqlite_files)?;
                Ok(Arc::new(sqlite_store::SqliteStore::new(db, label)) as Arc<dyn Store>)
            }
        })?;
        Ok(Self { stores })
    }

    /// The stores `component` may open.
    fn configure_component(&self, app: &LoadedApp, component: &LoadedComponent) -> Result<Self::Component> {
        Ok(Arc::new(backends(app).granted(&self.stores, component)))
    }

    fn instance(grants: &Self::Component) -> InstanceKeyValue {
        InstanceKeyValue { grants: grants.clone() }
    }
}

impl KeyValue {
    /// Sets `key` in store `label` before the app serves (`spin up --key-value`).
    pub async fn set_initial(&self, label: &str, key: &str, value: &str) -> Result<()> {
        let store = self.stores.get(label).with_context(|| {
            format!("--key-value: no component of the app is granted key-value store `{label}`\n  hint: add \"{label}\" to a component's key_value_stores")
        })?;
        check_sizes(key, Some(value.as_bytes())).map_err(anyhow::Error::msg)?;
        store.set(key, value.as_bytes()).await.map_err(|e| anyhow::anyhow!("--key-value: cannot set `{key}` in store `{label}`: {e}"))
    }
}

fn backends(app: &LoadedApp) -> Backends<'_> {
    Backends {
        grants: |c| &c.key_value_stores,
        tables: &app.runtime_config.key_value_stores,
        noun: "key-value store",
        table_name: "key_value_store",
        grant: Grant::KeyValueStores,
    }
}

fn sqlite_database(
    path: &Path,
    open: &mut BTreeMap<PathBuf, Arc<sqlite_store::Database>>,
) -> Result<Arc<sqlite_store::Database>> {
    if let Some(db) = open.get(path) {
        return Ok(db.clone());
    }
    let db = Arc::new(
        sqlite_store::Database::open(path)
            .with_context(|| format!("cannot open the key-value database {}", path.display()))?,
    );
    open.insert(path.to_path_buf(), db.clone());
    Ok(db)
}

fn open_backend(
    label: &str,
    table: &BackendTable,
    default_db: &Path,
    sqlite_files: &mut BTreeMap<PathBuf, Arc<sqlite_store::Database>>,
) -> Result<Arc<dyn Store>> {
    match table.kind()? {
        "spin" => {
            table.only_keys(&["path"])?;
            let path = table.path("path")?.unwrap_or_else(|| default_db.to_path_buf());
            Ok(Arc::new(sqlite_store::SqliteStore::new(sqlite_database(&path, sqlite_files)?, label)))
        }
        "redis" => {
            table.only_keys(&["url"])?;
            let url = table
                .string("url")?
                .ok_or_else(|| table.error(format!("[key_value_store.{label}] of type redis needs `url`"), "add url = \"redis://127.0.0.1:6379\""))?;
            Ok(Arc::new(redis_store::RedisStore::new(url).map_err(|e| table.error(format!("invalid Redis url `{url}`: {e}"), "write it as redis://host:port"))?))
        }
        other => Err(table
            .error(
                format!("key-value store type `{other}` is not supported yet"),
                "use type = \"spin\" (embedded SQLite) or type = \"redis\"",
            )
            .into()),
    }
}

/// Key-value state of one instance.
pub struct InstanceKeyValue {
    grants: Arc<Granted<Arc<dyn Store>>>,
}

/// Refuses keys and values over the limits.
fn check_sizes(key: &str, value: Option<&[u8]>) -> Result<(), BackendError> {
    if key.len() > MAX_KEY_BYTES {
        return Err(format!("the key is {} bytes; keys are limited to {MAX_KEY_BYTES} bytes", key.len()));
    }
    if let Some(v) = value
        && v.len() > MAX_VALUE_BYTES
    {
        return Err(format!("the value is {} bytes; values are limited to {MAX_VALUE_BYTES} bytes", v.len()));
    }
    Ok(())
}
