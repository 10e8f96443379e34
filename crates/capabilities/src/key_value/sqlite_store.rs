//! The embedded backend: one SQLite file (WAL, synchronous = FULL) holding any number of
//! stores, in the table layout Spin uses, so a Spin app's `.spin/sqlite_key_value.db`
//! carries over.

use super::{BackendError, Store};
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// One SQLite file.
pub struct Database {
    conn: Mutex<Connection>,
    path: PathBuf,
    /// Whether the last write found the disk full; the log says so once per episode.
    disk_full: AtomicBool,
}

impl Database {
    /// Opens (creating) the file and its table.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        // An acknowledged write survives a crash of the host and of the machine.
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS spin_key_value (
                store TEXT NOT NULL,
                key   TEXT NOT NULL,
                value BLOB NOT NULL,
                PRIMARY KEY (store, key)
            )",
        )?;
        Ok(Self { conn: Mutex::new(conn), path: path.to_path_buf(), disk_full: AtomicBool::new(false) })
    }

    /// Logs when the disk fills up and when writes succeed again (not every refused write:
    /// a guest retrying must not flood the log).
    fn note_outcome<R>(&self, result: &rusqlite::Result<R>) {
        let full = matches!(result, Err(rusqlite::Error::SqliteFailure(e, _)) if e.code == rusqlite::ErrorCode::DiskFull);
        if full && !self.disk_full.swap(true, Ordering::Relaxed) {
            tracing::error!(
                "the key-value database {} is on a full disk: writes fail (the guest gets an error, nothing is half-written) until space is freed",
                self.path.display()
            );
        } else if result.is_ok() && self.disk_full.swap(false, Ordering::Relaxed) {
            tracing::warn!("the key-value database {} accepts writes again", self.path.display());
        }
    }
}

/// One store (label) in a database.
pub struct SqliteStore {
    db: Arc<Database>,
    label: String,
}

impl SqliteStore {
    /// The store `label` in `db`.
    pub fn new(db: Arc<Database>, label: &str) -> Self {
        Self { db, label: label.to_string() }
    }

    /// Runs `f` on the connection off the async threads.
    async fn with<R: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection, &str) -> rusqlite::Result<R> + Send + 'static,
    ) -> Result<R, BackendError> {
        let db = self.db.clone();
        let label = self.label.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = db.conn.lock().map_err(|_| "the key-value database lock is poisoned".to_string())?;
            let result = f(&mut conn, &label);
            db.note_outcome(&result);
            result.map_err(|e| format!("sqlite: {e}"))
        })
        .await
        .map_err(|e| format!("sqlite task failed: {e}"))?
    }
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    #[tracing::instrument(name = "key_value.get", level = "info", skip_all, fields(otel.kind = "client", db.system = "sqlite"))]
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        let key = key.to_string();
        self.with(move |c, s| {
            c.query_row("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2", params![s, key], |r| r.get(0))
                .optional()
        })
        .await
    }

    #[tracing::instrument(name = "key_value.set", level = "info", skip_all, fields(otel.kind = "client", db.system = "sqlite"))]
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), BackendError> {
        let (key, value) = (key.to_string(), value.to_vec());
        self.with(move |c, s| {
            c.execute(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                params![s, key, value],
            )
            .map(|_| ())
        })
        .await
    }

    #[tracing::instrument(name = "key_value.delete", level = "info", skip_all, fields(otel.kind = "client", db.system = "sqlite"))]
    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        let key = key.to_string();
        self.with(move |c, s| c.execute("DELETE FROM spin_key_value WHERE store = ?1 AND key = ?2", params![s, key]).map(|_| ()))
            .await
    }

    #[tracing::instrument(name = "key_value.exists", level = "info", skip_all, fields(otel.kind = "client", db.system = "sqlite"))]
    async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        Ok(self.get(key).await?.is_some())
    }

    async fn keys(&self) -> Result<Vec<String>, BackendError> {
        self.with(|c, s| {
            let mut stmt = c.prepare("SELECT key FROM spin_key_value WHERE store = ?1 ORDER BY key")?;
            stmt.query_map(params![s], |r| r.get(0))?.collect()
        })
        .await
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, BackendError> {
        let key = key.to_string();
        let result = self
            .with(move |c, s| {
                let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let current: Option<Vec<u8>> = tx
                    .query_row("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2", params![s, key], |r| r.get(0))
                    .optional()?;
                let Some(next) = parse_counter(current.as_deref()).and_then(|n| n.checked_add(delta)) else {
                    return Ok(None);
                };
                tx.execute(
                    "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                     ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                    params![s, key, next.to_string().into_bytes()],
                )?;
                tx.commit()?;
                Ok(Some(next))
            })
            .await?;
        result.ok_or_else(|| "the value is not a decimal integer, or the sum overflows".to_string())
    }

    async fn compare_and_swap(&self, key: &str, current: Option<&[u8]>, new: &[u8]) -> Result<bool, BackendError> {
        let (key, current, new) = (key.to_string(), current.map(<[u8]>::to_vec), new.to_vec());
        self.with(move |c, s| {
            let tx = c.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let now: Option<Vec<u8>> = tx
                .query_row("SELECT value FROM spin_key_value WHERE store = ?1 AND key = ?2", params![s, key], |r| r.get(0))
                .optional()?;
            if now != current {
                return Ok(false);
            }
            tx.execute(
                "INSERT INTO spin_key_value (store, key, value) VALUES (?1, ?2, ?3)
                 ON CONFLICT (store, key) DO UPDATE SET value = excluded.value",
                params![s, key, new],
            )?;
            tx.commit()?;
            Ok(true)
        })
        .await
    }
}

/// Counters are stored as decimal text (as Redis stores them); absent is 0.
pub(super) fn parse_counter(value: Option<&[u8]>) -> Option<i64> {
    match value {
        None => Some(0),
        Some(bytes) => std::str::from_utf8(bytes).ok()?.trim().parse().ok(),
    }
}
