//! SQLite databases: `fermyon:spin/sqlite@2.0.0` and `spin:sqlite/sqlite@3.1.0` (which also
//! serves components importing 3.0.0).
//!
//! - Manifest: `sqlite_databases = ["default", ...]` grants a component its databases.
//! - Runtime config: `[sqlite_database.<label>]` with `type = "spin"` and `path`. The
//!   `default` database needs no config: it is `<state_dir>/sqlite_db.db`, as in Spin.
//! - Each `open` is its own SQLite connection (WAL, synchronous = FULL), so
//!   `last-insert-rowid` and `changes` belong to the guest's connection and a committed
//!   statement survives a crash of the host.

use crate::{Capability, Concurrency, Grant, InstanceState};
use crate::grants::{Backends, Granted};
use anyhow::{Context as _, Result};
use rusqlite::types::Value as SqlValue;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tessera_app::{LoadedApp, LoadedComponent};
use wasmtime::component::{Accessor, FutureReader, HasData, Linker, Resource, ResourceTable, StreamReader};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "tessera:host/sqlite",
        imports: {
            "spin:sqlite/sqlite.[static]connection.open-async": async | store | trappable,
            "spin:sqlite/sqlite.[method]connection.execute-async": async | store | trappable,
            "spin:sqlite/sqlite.[method]connection.last-insert-rowid-async": async | store | trappable,
            "spin:sqlite/sqlite.[method]connection.changes-async": async | store | trappable,
            default: async | trappable,
        },
        with: {
            "fermyon:spin/sqlite.connection": super::Connection,
            "spin:sqlite/sqlite.connection": super::Connection,
        },
    });
}

use bindings::fermyon::spin::sqlite as v2;
use bindings::spin::sqlite::sqlite as v3;

fn backends(app: &LoadedApp) -> Backends<'_> {
    Backends {
        grants: |c| &c.sqlite_databases,
        tables: &app.runtime_config.sqlite_databases,
        noun: "SQLite database",
        table_name: "sqlite_database",
        grant: Grant::SqliteDatabases,
    }
}

/// The SQLite capability: the app's database files by label.
pub struct Sqlite {
    files: BTreeMap<String, PathBuf>,
}

impl Capability for Sqlite {
    const IMPORTS: &'static [&'static str] = &["spin:sqlite/", "fermyon:spin/sqlite"];
    const NAME: &'static str = "sqlite";
    const GRANT: Grant = Grant::SqliteDatabases;
    type Component = Arc<Granted<PathBuf>>;
    type Instance = InstanceSqlite;

    fn link(linker: &mut Linker<InstanceState>, concurrency: Concurrency) -> Result<()> {
        v2::add_to_linker::<_, Sqlite>(linker, view)?;
        if concurrency == Concurrency::On {
            v3::add_to_linker::<_, Sqlite>(linker, view)?;
        }
        Ok(())
    }

    /// `spin:sqlite` 3.x has async functions returning streams.
    fn needs_concurrency(interface: &str) -> bool {
        interface.starts_with("spin:sqlite/")
    }

    /// Resolves (and creates) every granted database.
    fn configure_app(app: &LoadedApp) -> Result<Self> {
        let files = backends(app).open(app, |label, table| {
            let path = match table {
                None => app.state_dir.join("sqlite_db.db"),
                Some(t) => match t.kind()? {
                    "spin" => {
                        t.only_keys(&["path"])?;
                        t.path("path")?.unwrap_or_else(|| app.state_dir.join(format!("sqlite_db_{label}.db")))
                    }
                    other => {
                        return Err(t
                            .error(format!("SQLite database type `{other}` is not supported yet"), "use type = \"spin\" with a path")
                            .into());
                    }
                },
            };
            // Open once now: a bad path is an error at start, not at the first request.
            open_file(&path).map_err(|e| anyhow::anyhow!("cannot open SQLite database `{label}` at {}: {e}", path.display()))?;
            Ok(path)
        })?;
        Ok(Self { files })
    }

    /// The databases `component` may open.
    fn configure_component(&self, app: &LoadedApp, component: &LoadedComponent) -> Result<Self::Component> {
        Ok(Arc::new(backends(app).granted(&self.files, component)))
    }

    fn instance(grants: &Self::Component) -> InstanceSqlite {
        InstanceSqlite { grants: grants.clone() }
    }
}

impl Sqlite {
    /// Runs `sql` (one statement or many) against database `label` before the app serves
    /// (`spin up --sqlite`), all of it or none.
    pub fn execute_initial(&self, label: &str, sql: &str) -> Result<()> {
        let path = self.files.get(label).with_context(|| {
            format!("--sqlite: no component of the app is granted SQLite database `{label}`\n  hint: add \"{label}\" to a component's sqlite_databases")
        })?;
        let mut conn = open_file(path).with_context(|| format!("cannot open SQLite database `{label}` at {}", path.display()))?;
        let transaction = conn.transaction()?;
        transaction.execute_batch(sql).with_context(|| format!("--sqlite: the statements failed against database `{label}`; none was applied"))?;
        transaction.commit()?;
        Ok(())
    }
}

fn open_file(path: &std::path::Path) -> rusqlite::Result<rusqlite::Connection> {
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let conn = rusqlite::Connection::open(path)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    // Guests get their database and nothing else: no ATTACH (or VACUUM INTO, which
    // attaches) of other host files.
    conn.set_limit(rusqlite::limits::Limit::SQLITE_LIMIT_ATTACHED, 0)?;
    Ok(conn)
}

/// SQLite state of one instance.
pub struct InstanceSqlite {
    grants: Arc<Granted<PathBuf>>,
}

impl InstanceSqlite {
    /// The file of database `label`, if granted; a refusal is logged with the key to add.
    fn granted_file(&self, label: &str) -> Result<PathBuf, DbError> {
        self.grants.get(label).cloned().ok_or(DbError::AccessDenied)
    }
}

/// An open connection handed to the guest.
pub struct Connection {
    conn: Arc<Mutex<rusqlite::Connection>>,
}

/// The host functions' view of an instance.
pub struct SqliteView<'a> {
    table: &'a mut ResourceTable,
    state: &'a InstanceSqlite,
}

impl HasData for Sqlite {
    type Data<'a> = SqliteView<'a>;
}

fn view(s: &mut InstanceState) -> SqliteView<'_> {
    let (table, state) = s.capability::<Sqlite>();
    SqliteView { table, state }
}

/// Errors common to both interface versions.
enum DbError {
    AccessDenied,
    DatabaseFull,
    Io(String),
}

struct QueryResult {
    columns: Vec<String>,
    rows: Vec<Vec<SqlValue>>,
}

impl SqliteView<'_> {
    async fn open(&mut self, label: &str) -> Result<Resource<Connection>, DbError> {
        let path = self.state.granted_file(label)?;
        let conn = tokio::task::spawn_blocking(move || open_file(&path))
            .await
            .map_err(|e| DbError::Io(e.to_string()))?
            .map_err(db_error)?;
        self.table
            .push(Connection { conn: Arc::new(Mutex::new(conn)) })
            .map_err(|e| DbError::Io(e.to_string()))
    }

    fn connection(&self, c: &Resource<Connection>) -> wasmtime::Result<Arc<Mutex<rusqlite::Connection>>> {
        Ok(self.table.get(c)?.conn.clone())
    }
}

fn db_error(e: rusqlite::Error) -> DbError {
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DiskFull) => DbError::DatabaseFull,
        _ => DbError::Io(e.to_string()),
    }
}

#[tracing::instrument(name = "sqlite.execute", level = "info", skip_all, fields(otel.kind = "client", db.system = "sqlite", db.query.text = %sql))]
async fn execute(conn: Arc<Mutex<rusqlite::Connection>>, sql: String, params: Vec<SqlValue>) -> Result<QueryResult, DbError> {
    tokio::task::spawn_blocking(move || {
        let conn = conn.lock().map_err(|_| DbError::Io("connection lock poisoned".into()))?;
        let mut stmt = conn.prepare(&sql).map_err(db_error)?;
        let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
        let mut rows = stmt.query(rusqlite::params_from_iter(params)).map_err(db_error)?;
        let mut out = Vec::new();
        while let Some(row) = rows.next().map_err(db_error)? {
            let mut values = Vec::with_capacity(columns.len());
            for i in 0..columns.len() {
                values.push(SqlValue::from(row.get_ref(i).map_err(db_error)?));
            }
            out.push(values);
        }
        Ok(QueryResult { columns, rows: out })
    })
    .await
    .map_err(|e| DbError::Io(e.to_string()))?
}

// Both interface versions have the same shapes under different type names.
macro_rules! conversions {
    ($m:ident, $to_sql:ident, $from_sql:ident, $err:ident, $result:ident) => {
        fn $to_sql(v: $m::Value) -> SqlValue {
            match v {
                $m::Value::Integer(i) => SqlValue::Integer(i),
                $m::Value::Real(f) => SqlValue::Real(f),
                $m::Value::Text(s) => SqlValue::Text(s),
                $m::Value::Blob(b) => SqlValue::Blob(b),
                $m::Value::Null => SqlValue::Null,
            }
        }

        fn $from_sql(v: SqlValue) -> $m::Value {
            match v {
                SqlValue::Integer(i) => $m::Value::Integer(i),
                SqlValue::Real(f) => $m::Value::Real(f),
                SqlValue::Text(s) => $m::Value::Text(s),
                SqlValue::Blob(b) => $m::Value::Blob(b),
                SqlValue::Null => $m::Value::Null,
            }
        }

        fn $err(e: DbError) -> $m::Error {
            match e {
                DbError::AccessDenied => $m::Error::AccessDenied,
                DbError::DatabaseFull => $m::Error::DatabaseFull,
                DbError::Io(m) => $m::Error::Io(m),
            }
        }

        fn $result(r: QueryResult) -> $m::QueryResult {
            $m::QueryResult {
                columns: r.columns,
                rows: r
                    .rows
                    .into_iter()
                    .map(|values| $m::RowResult { values: values.into_iter().map($from_sql).collect() })
                    .collect(),
            }
        }
    };
}

conversions!(v2, v2_to_sql, v2_from_sql, v2_err, v2_result);
conversions!(v3, v3_to_sql, v3_from_sql, v3_err, v3_result);

impl v2::Host for SqliteView<'_> {}

impl v2::HostConnection for SqliteView<'_> {
    async fn open(&mut self, database: String) -> wasmtime::Result<Result<Resource<Connection>, v2::Error>> {
        Ok(SqliteView::open(self, &database).await.map_err(v2_err))
    }

    async fn execute(
        &mut self,
        c: Resource<Connection>,
        statement: String,
        parameters: Vec<v2::Value>,
    ) -> wasmtime::Result<Result<v2::QueryResult, v2::Error>> {
        let conn = self.connection(&c)?;
        let params = parameters.into_iter().map(v2_to_sql).collect();
        Ok(execute(conn, statement, params).await.map(v2_result).map_err(v2_err))
    }

    async fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

impl v3::Host for SqliteView<'_> {}

impl v3::HostConnection for SqliteView<'_> {
    async fn open(&mut self, database: String) -> wasmtime::Result<Result<Resource<Connection>, v3::Error>> {
        Ok(SqliteView::open(self, &database).await.map_err(v3_err))
    }

    async fn execute(
        &mut self,
        c: Resource<Connection>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> wasmtime::Result<Result<v3::QueryResult, v3::Error>> {
        let conn = self.connection(&c)?;
        let params = parameters.into_iter().map(v3_to_sql).collect();
        Ok(execute(conn, statement, params).await.map(v3_result).map_err(v3_err))
    }

    async fn last_insert_rowid(&mut self, c: Resource<Connection>) -> wasmtime::Result<i64> {
        let conn = self.connection(&c)?;
        let conn = conn.lock().map_err(|_| wasmtime::format_err!("connection lock poisoned"))?;
        Ok(conn.last_insert_rowid())
    }

    async fn changes(&mut self, c: Resource<Connection>) -> wasmtime::Result<u64> {
        let conn = self.connection(&c)?;
        let conn = conn.lock().map_err(|_| wasmtime::format_err!("connection lock poisoned"))?;
        Ok(conn.changes())
    }

    async fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

fn v3_rows(r: QueryResult) -> (Vec<String>, Vec<v3::RowResult>) {
    let result = v3_result(r);
    (result.columns, result.rows)
}

fn connection_of<T>(accessor: &Accessor<T, Sqlite>, c: &Resource<Connection>) -> wasmtime::Result<Arc<Mutex<rusqlite::Connection>>> {
    accessor.with(|mut access| access.get().connection(c))
}

impl<T> v3::HostConnectionWithStore<T> for Sqlite {
    async fn open_async(accessor: &Accessor<T, Self>, database: String) -> wasmtime::Result<Result<Resource<Connection>, v3::Error>> {
        let path = match accessor.with(|mut access| access.get().state.granted_file(&database)) {
            Ok(p) => p,
            Err(e) => return Ok(Err(v3_err(e))),
        };
        let conn = match tokio::task::spawn_blocking(move || open_file(&path)).await? {
            Ok(c) => c,
            Err(e) => return Ok(Err(v3_err(db_error(e)))),
        };
        Ok(Ok(accessor.with(|mut access| access.get().table.push(Connection { conn: Arc::new(Mutex::new(conn)) }))?))
    }

    async fn execute_async(
        accessor: &Accessor<T, Self>,
        c: Resource<Connection>,
        statement: String,
        parameters: Vec<v3::Value>,
    ) -> wasmtime::Result<Result<(Vec<String>, StreamReader<v3::RowResult>, FutureReader<Result<(), v3::Error>>), v3::Error>> {
        let conn = connection_of(accessor, &c)?;
        let params = parameters.into_iter().map(v3_to_sql).collect();
        // The rows are read whole, then streamed to the guest.
        let (columns, rows) = match execute(conn, statement, params).await {
            Ok(r) => v3_rows(r),
            Err(e) => return Ok(Err(v3_err(e))),
        };
        accessor.with(|mut access| {
            let stream = StreamReader::new(&mut access, rows)?;
            let done = FutureReader::new(&mut access, async { Ok::<_, wasmtime::Error>(Ok(())) })?;
            Ok(Ok((columns, stream, done)))
        })
    }

    async fn last_insert_rowid_async(accessor: &Accessor<T, Self>, c: Resource<Connection>) -> wasmtime::Result<i64> {
        let conn = connection_of(accessor, &c)?;
        let conn = conn.lock().map_err(|_| wasmtime::format_err!("connection lock poisoned"))?;
        Ok(conn.last_insert_rowid())
    }

    async fn changes_async(accessor: &Accessor<T, Self>, c: Resource<Connection>) -> wasmtime::Result<u64> {
        let conn = connection_of(accessor, &c)?;
        let conn = conn.lock().map_err(|_| wasmtime::format_err!("connection lock poisoned"))?;
        Ok(conn.changes())
    }
}
