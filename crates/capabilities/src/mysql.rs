//! Outbound MySQL (and MariaDB): `fermyon:spin/mysql@2.0.0` and `spin:mysql/mysql@3.0.0`.
//!
//! `open(address)` takes `mysql://USER:PASSWORD@HOST:PORT/DATABASE` (port 3306 by
//! default; `?ssl-mode=REQUIRED` or any mode but `DISABLED` for TLS, as in Spin) that must
//! match the component's `allowed_outbound_hosts` (`"mysql://HOST:PORT"`); the host is
//! resolved and checked like any outbound connection and a plain connection goes to the
//! checked address (TLS keeps the name its certificate must match). A refusal is
//! `connection-failed`, and the log names the entry to add.
//!
//! Connections are pooled per address by the component's instances (Spin opens a new one
//! per `open`); each `open` takes one and checks it is alive, so a server that restarted
//! is reconnected to without an error. Column types map as in Spin; DECIMAL, dates, times,
//! JSON, ENUM and SET (which Spin refuses to convert) come as their text, BIT and spatial
//! types as bytes. A result larger than the instance's memory limit is refused.

use crate::network::{Denied, OutboundPolicy};
use crate::{Capability, Concurrency, Grant, InstanceState};
use anyhow::Result;
use mysql_async::consts::{ColumnFlags, ColumnType};
use mysql_async::prelude::Queryable as _;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tessera_app::{LoadedApp, LoadedComponent};
use wasmtime::component::{Accessor, FutureReader, HasData, Linker, Resource, ResourceTable, StreamReader};

/// Longest wait to connect (or to take a pooled connection).
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Connections one component keeps per address at most; more opens wait for one.
const MAX_POOLED: usize = 32;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "tessera:host/mysql",
        imports: {
            "spin:mysql/mysql": async | store | trappable,
            default: async | trappable,
        },
        with: {
            "fermyon:spin/mysql.connection": super::MysqlConnection,
            "spin:mysql/mysql.connection": super::MysqlConnection,
        },
    });
}

use bindings::fermyon::spin::mysql as v2;
use bindings::fermyon::spin::rdbms_types as types;
use bindings::spin::mysql::mysql as v3;
use types::{Column, DbDataType, DbValue, Error, ParameterValue};

/// The outbound MySQL capability (no app-wide state: each component has its policy and
/// its own pools).
pub struct Mysql;

/// One component's policy, result limit and pools.
pub struct Shared {
    policy: OutboundPolicy,
    max_result_bytes: usize,
    pools: tokio::sync::Mutex<HashMap<String, mysql_async::Pool>>,
}

/// MySQL state of one instance.
pub struct InstanceMysql {
    shared: Arc<Shared>,
}

impl Capability for Mysql {
    const IMPORTS: &'static [&'static str] = &["spin:mysql/", "fermyon:spin/mysql"];
    const NAME: &'static str = "mysql";
    const GRANT: Grant = Grant::AllowedOutboundHosts;
    type Component = Arc<Shared>;
    type Instance = InstanceMysql;

    fn link(linker: &mut Linker<InstanceState>, concurrency: Concurrency) -> Result<()> {
        // fermyon:spin/rdbms-types (types only) is linked here for postgres@2.0.0 too.
        types::add_to_linker::<_, Mysql>(linker, view)?;
        v2::add_to_linker::<_, Mysql>(linker, view)?;
        if concurrency == Concurrency::On {
            v3::add_to_linker::<_, Mysql>(linker, view)?;
        }
        Ok(())
    }

    /// `spin:mysql` 3.x has async functions returning streams.
    fn needs_concurrency(interface: &str) -> bool {
        interface.starts_with("spin:mysql/")
    }

    fn configure_app(_: &LoadedApp) -> Result<Self> {
        Ok(Self)
    }

    fn configure_component(&self, _: &LoadedApp, component: &LoadedComponent) -> Result<Arc<Shared>> {
        Ok(Arc::new(Shared {
            policy: OutboundPolicy::of(component),
            max_result_bytes: usize::try_from(component.limits.max_instance_memory).unwrap_or(usize::MAX),
            pools: Default::default(),
        }))
    }

    fn instance(shared: &Arc<Shared>) -> InstanceMysql {
        InstanceMysql { shared: shared.clone() }
    }
}

/// An open connection handed to the guest (back to its pool when dropped).
pub struct MysqlConnection {
    conn: Arc<tokio::sync::Mutex<mysql_async::Conn>>,
    max_result_bytes: usize,
}

fn is_ssl_mode(key: &str) -> bool {
    key.eq_ignore_ascii_case("ssl-mode") || key.eq_ignore_ascii_case("sslmode")
}

/// The connection options for `address`, connecting to `checked` (an allowed address of
/// its host) unless TLS needs the name.
fn options(url: &url::Url, checked: std::net::SocketAddr) -> Result<mysql_async::Opts, Error> {
    let tls = url.query_pairs().any(|(k, v)| is_ssl_mode(&k) && !v.eq_ignore_ascii_case("disabled"));
    // mysql_async refuses ssl-mode in the URL: it is read above and left out here.
    let rest: Vec<(String, String)> = url.query_pairs().filter(|(k, _)| !is_ssl_mode(k)).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let mut clean = url.clone();
    clean.set_query(None);
    if !rest.is_empty() {
        clean.query_pairs_mut().extend_pairs(rest);
    }
    let opts = mysql_async::Opts::from_url(clean.as_str()).map_err(|e| Error::ConnectionFailed(format!("invalid address: {e}")))?;
    let pool = mysql_async::PoolOpts::default()
        .with_constraints(mysql_async::PoolConstraints::new(0, MAX_POOLED).expect("0 <= max"))
        .with_inactive_connection_ttl(Duration::from_secs(60));
    let mut builder = mysql_async::OptsBuilder::from_opts(opts).pool_opts(pool).tcp_port(checked.port());
    builder = if tls {
        builder.ssl_opts(mysql_async::SslOpts::default())
    } else {
        builder.ip_or_hostname(checked.ip().to_string())
    };
    Ok(builder.into())
}

/// Checks `address` against the allow-list and takes a live connection from its pool.
async fn open(shared: &Shared, address: &str) -> Result<MysqlConnection, Error> {
    let url = url::Url::parse(address).map_err(|e| Error::ConnectionFailed(format!("invalid address `{address}`: {e}")))?;
    let host = match (url.scheme(), url.host_str()) {
        ("mysql", Some(h)) if !h.is_empty() => h.trim_start_matches('[').trim_end_matches(']').to_string(),
        _ => return Err(Error::ConnectionFailed(format!("invalid address `{address}`: write it as mysql://USER:PASSWORD@HOST:PORT/DATABASE"))),
    };
    let port = url.port().unwrap_or(3306);
    let checked = match shared.policy.resolve("mysql", &host, port).await {
        Ok(a) => a,
        Err(Denied::NotAllowed | Denied::Restricted(_)) => {
            return Err(Error::ConnectionFailed(format!("address mysql://{host}:{port} is not permitted by allowed_outbound_hosts")));
        }
        Err(Denied::Unresolved) => return Err(Error::ConnectionFailed(format!("cannot resolve {host}"))),
    };
    let pool = {
        let mut pools = shared.pools.lock().await;
        match pools.get(address) {
            Some(p) => p.clone(),
            None => {
                let p = mysql_async::Pool::new(options(&url, checked)?);
                pools.insert(address.to_string(), p.clone());
                p
            }
        }
    };
    // An idle pooled connection may be dead (the server restarted): it is discarded and
    // the next one tried, up to a fresh connection.
    let mut last_error = String::new();
    for _ in 0..3 {
        let taken = tokio::time::timeout(TIMEOUT, pool.get_conn()).await;
        let mut conn = match taken {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(Error::ConnectionFailed(format!("cannot connect to mysql://{host}:{port}: {e}"))),
            Err(_) => {
                return Err(Error::ConnectionFailed(format!(
                    "no connection to mysql://{host}:{port} within {TIMEOUT:?}: the server did not answer, or all {MAX_POOLED} of this component's connections are open (close those no longer used)"
                )));
            }
        };
        match tokio::time::timeout(TIMEOUT, conn.ping()).await {
            Ok(Ok(())) => {
                return Ok(MysqlConnection { conn: Arc::new(tokio::sync::Mutex::new(conn)), max_result_bytes: shared.max_result_bytes });
            }
            Ok(Err(e)) => last_error = e.to_string(),
            Err(_) => last_error = "no answer to a ping".into(),
        }
        let _ = conn.disconnect().await;
    }
    Err(Error::ConnectionFailed(format!("cannot connect to mysql://{host}:{port}: {last_error}")))
}

fn parameter(value: ParameterValue) -> mysql_async::Value {
    use mysql_async::Value;
    match value {
        ParameterValue::Boolean(v) => Value::from(v),
        ParameterValue::Int8(v) => Value::from(v),
        ParameterValue::Int16(v) => Value::from(v),
        ParameterValue::Int32(v) => Value::from(v),
        ParameterValue::Int64(v) => Value::from(v),
        ParameterValue::Uint8(v) => Value::from(v),
        ParameterValue::Uint16(v) => Value::from(v),
        ParameterValue::Uint32(v) => Value::from(v),
        ParameterValue::Uint64(v) => Value::from(v),
        ParameterValue::Floating32(v) => Value::from(v),
        ParameterValue::Floating64(v) => Value::from(v),
        ParameterValue::Str(v) => Value::from(v),
        ParameterValue::Binary(v) => Value::from(v),
        ParameterValue::DbNull => Value::NULL,
    }
}

fn data_type(column: &mysql_async::Column) -> DbDataType {
    let signed = !column.flags().contains(ColumnFlags::UNSIGNED_FLAG);
    let binary = column.flags().contains(ColumnFlags::BINARY_FLAG);
    use ColumnType::*;
    match column.column_type() {
        MYSQL_TYPE_TINY if signed => DbDataType::Int8,
        MYSQL_TYPE_TINY => DbDataType::Uint8,
        MYSQL_TYPE_SHORT if signed => DbDataType::Int16,
        MYSQL_TYPE_SHORT | MYSQL_TYPE_YEAR => DbDataType::Uint16,
        MYSQL_TYPE_LONG | MYSQL_TYPE_INT24 if signed => DbDataType::Int32,
        MYSQL_TYPE_LONG | MYSQL_TYPE_INT24 => DbDataType::Uint32,
        MYSQL_TYPE_LONGLONG if signed => DbDataType::Int64,
        MYSQL_TYPE_LONGLONG => DbDataType::Uint64,
        MYSQL_TYPE_FLOAT => DbDataType::Floating32,
        MYSQL_TYPE_DOUBLE => DbDataType::Floating64,
        MYSQL_TYPE_STRING | MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_VARCHAR | MYSQL_TYPE_BLOB | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB
            if binary =>
        {
            DbDataType::Binary
        }
        MYSQL_TYPE_STRING | MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_VARCHAR | MYSQL_TYPE_BLOB | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB
        | MYSQL_TYPE_LONG_BLOB => DbDataType::Str,
        // Spin refuses these; their text is what users read in any MySQL client.
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL | MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE | MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2
        | MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 | MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 | MYSQL_TYPE_JSON | MYSQL_TYPE_ENUM
        | MYSQL_TYPE_SET => DbDataType::Str,
        MYSQL_TYPE_BIT | MYSQL_TYPE_GEOMETRY => DbDataType::Binary,
        _ => DbDataType::Other,
    }
}

/// The text MySQL clients show for a date, time or datetime.
fn temporal_text(value: &mysql_async::Value) -> Option<String> {
    use mysql_async::Value;
    let fraction = |us: u32| if us == 0 { String::new() } else { format!(".{us:06}") };
    match *value {
        Value::Date(y, mo, d, 0, 0, 0, 0) => Some(format!("{y:04}-{mo:02}-{d:02}")),
        Value::Date(y, mo, d, h, mi, s, us) => Some(format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}{}", fraction(us))),
        Value::Time(negative, days, h, mi, s, us) => {
            let hours = u32::from(h) + days * 24;
            Some(format!("{}{hours:02}:{mi:02}:{s:02}{}", if negative { "-" } else { "" }, fraction(us)))
        }
        _ => None,
    }
}

fn convert<T: mysql_async::prelude::FromValue>(value: mysql_async::Value, column: &Column) -> Result<T, Error> {
    mysql_async::from_value_opt::<T>(value).map_err(|e| Error::ValueConversionFailed(format!("column `{}`: {e}", column.name)))
}

fn db_value(value: mysql_async::Value, column: &Column) -> Result<DbValue, Error> {
    if value == mysql_async::Value::NULL {
        return Ok(DbValue::DbNull);
    }
    if let Some(text) = temporal_text(&value) {
        return Ok(DbValue::Str(text));
    }
    Ok(match column.data_type {
        DbDataType::Boolean => DbValue::Boolean(convert(value, column)?),
        DbDataType::Int8 => DbValue::Int8(convert(value, column)?),
        DbDataType::Int16 => DbValue::Int16(convert(value, column)?),
        DbDataType::Int32 => DbValue::Int32(convert(value, column)?),
        DbDataType::Int64 => DbValue::Int64(convert(value, column)?),
        DbDataType::Uint8 => DbValue::Uint8(convert(value, column)?),
        DbDataType::Uint16 => DbValue::Uint16(convert(value, column)?),
        DbDataType::Uint32 => DbValue::Uint32(convert(value, column)?),
        DbDataType::Uint64 => DbValue::Uint64(convert(value, column)?),
        DbDataType::Floating32 => DbValue::Floating32(convert(value, column)?),
        DbDataType::Floating64 => DbValue::Floating64(convert(value, column)?),
        DbDataType::Str => DbValue::Str(convert(value, column)?),
        DbDataType::Binary => DbValue::Binary(convert(value, column)?),
        DbDataType::Other => DbValue::Unsupported,
    })
}

/// Bytes a value takes in the guest, for the result limit.
fn size_of(value: &DbValue) -> usize {
    16 + match value {
        DbValue::Str(s) => s.len(),
        DbValue::Binary(b) => b.len(),
        _ => 0,
    }
}

fn query_error(e: mysql_async::Error) -> Error {
    match e {
        mysql_async::Error::Server(s) => Error::QueryFailed(format!("{} (MySQL error {}, SQLSTATE {})", s.message, s.code, s.state)),
        e => Error::QueryFailed(e.to_string()),
    }
}

impl MysqlConnection {
    /// Runs a query and reads its rows whole (within the result limit).
    #[tracing::instrument(name = "mysql.query", level = "info", skip_all, fields(otel.kind = "client", db.system = "mysql", db.query.text = %statement))]
    async fn query(&self, statement: &str, params: Vec<ParameterValue>) -> Result<(Vec<Column>, Vec<Vec<DbValue>>), Error> {
        let params = mysql_async::Params::Positional(params.into_iter().map(parameter).collect());
        let mut conn = self.conn.lock().await;
        let mut result = conn.exec_iter(statement, params).await.map_err(query_error)?;
        let columns: Vec<Column> = result
            .columns()
            .map(|cs| cs.iter().map(|c| Column { name: c.name_str().into_owned(), data_type: data_type(c) }).collect())
            .unwrap_or_default();
        let mut rows = Vec::new();
        let mut bytes = 0usize;
        while let Some(mut row) = result.next().await.map_err(query_error)? {
            let mut values = Vec::with_capacity(columns.len());
            for (i, column) in columns.iter().enumerate() {
                let value = db_value(row.take(i).unwrap_or(mysql_async::Value::NULL), column)?;
                bytes += size_of(&value);
                values.push(value);
            }
            if bytes > self.max_result_bytes {
                // Drain the rest so the connection can be used again.
                let _ = result.drop_result().await;
                return Err(Error::Other(format!(
                    "the result is larger than the instance's memory limit ({} bytes); select fewer rows or columns",
                    self.max_result_bytes
                )));
            }
            rows.push(values);
        }
        Ok((columns, rows))
    }

    #[tracing::instrument(name = "mysql.execute", level = "info", skip_all, fields(otel.kind = "client", db.system = "mysql", db.query.text = %statement))]
    async fn execute(&self, statement: &str, params: Vec<ParameterValue>) -> Result<(), Error> {
        let params = mysql_async::Params::Positional(params.into_iter().map(parameter).collect());
        self.conn.lock().await.exec_drop(statement, params).await.map_err(query_error)
    }

    fn handle(&self) -> Self {
        Self { conn: self.conn.clone(), max_result_bytes: self.max_result_bytes }
    }
}

/// The host functions' view of an instance.
pub struct MysqlView<'a> {
    table: &'a mut ResourceTable,
    state: &'a InstanceMysql,
}

impl HasData for Mysql {
    type Data<'a> = MysqlView<'a>;
}

fn view(s: &mut InstanceState) -> MysqlView<'_> {
    let (table, state) = s.capability::<Mysql>();
    MysqlView { table, state }
}

impl MysqlView<'_> {
    fn connection(&self, c: &Resource<MysqlConnection>) -> wasmtime::Result<MysqlConnection> {
        Ok(self.table.get(c)?.handle())
    }
}

impl types::Host for MysqlView<'_> {}
impl v2::Host for MysqlView<'_> {}

impl v2::HostConnection for MysqlView<'_> {
    async fn open(&mut self, address: String) -> wasmtime::Result<Result<Resource<MysqlConnection>, Error>> {
        match open(&self.state.shared, &address).await {
            Ok(c) => Ok(Ok(self.table.push(c)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn query(&mut self, c: Resource<MysqlConnection>, statement: String, params: Vec<ParameterValue>) -> wasmtime::Result<Result<types::RowSet, Error>> {
        let conn = self.connection(&c)?;
        Ok(conn.query(&statement, params).await.map(|(columns, rows)| types::RowSet { columns, rows }))
    }

    async fn execute(&mut self, c: Resource<MysqlConnection>, statement: String, params: Vec<ParameterValue>) -> wasmtime::Result<Result<(), Error>> {
        let conn = self.connection(&c)?;
        Ok(conn.execute(&statement, params).await)
    }

    async fn drop(&mut self, c: Resource<MysqlConnection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

// ---- spin:mysql@3.0.0: the same shapes under its own type names ----------------------

fn from_v3_param(p: v3::ParameterValue) -> ParameterValue {
    use v3::ParameterValue as P3;
    match p {
        P3::Boolean(v) => ParameterValue::Boolean(v),
        P3::Int8(v) => ParameterValue::Int8(v),
        P3::Int16(v) => ParameterValue::Int16(v),
        P3::Int32(v) => ParameterValue::Int32(v),
        P3::Int64(v) => ParameterValue::Int64(v),
        P3::Uint8(v) => ParameterValue::Uint8(v),
        P3::Uint16(v) => ParameterValue::Uint16(v),
        P3::Uint32(v) => ParameterValue::Uint32(v),
        P3::Uint64(v) => ParameterValue::Uint64(v),
        P3::Floating32(v) => ParameterValue::Floating32(v),
        P3::Floating64(v) => ParameterValue::Floating64(v),
        P3::Str(v) => ParameterValue::Str(v),
        P3::Binary(v) => ParameterValue::Binary(v),
        P3::DbNull => ParameterValue::DbNull,
    }
}

fn to_v3_value(v: DbValue) -> v3::DbValue {
    use v3::DbValue as V3;
    match v {
        DbValue::Boolean(v) => V3::Boolean(v),
        DbValue::Int8(v) => V3::Int8(v),
        DbValue::Int16(v) => V3::Int16(v),
        DbValue::Int32(v) => V3::Int32(v),
        DbValue::Int64(v) => V3::Int64(v),
        DbValue::Uint8(v) => V3::Uint8(v),
        DbValue::Uint16(v) => V3::Uint16(v),
        DbValue::Uint32(v) => V3::Uint32(v),
        DbValue::Uint64(v) => V3::Uint64(v),
        DbValue::Floating32(v) => V3::Floating32(v),
        DbValue::Floating64(v) => V3::Floating64(v),
        DbValue::Str(v) => V3::Str(v),
        DbValue::Binary(v) => V3::Binary(v),
        DbValue::DbNull => V3::DbNull,
        DbValue::Unsupported => V3::Unsupported,
    }
}

fn to_v3_column(c: Column) -> v3::Column {
    use v3::DbDataType as D3;
    let data_type = match c.data_type {
        DbDataType::Boolean => D3::Boolean,
        DbDataType::Int8 => D3::Int8,
        DbDataType::Int16 => D3::Int16,
        DbDataType::Int32 => D3::Int32,
        DbDataType::Int64 => D3::Int64,
        DbDataType::Uint8 => D3::Uint8,
        DbDataType::Uint16 => D3::Uint16,
        DbDataType::Uint32 => D3::Uint32,
        DbDataType::Uint64 => D3::Uint64,
        DbDataType::Floating32 => D3::Floating32,
        DbDataType::Floating64 => D3::Floating64,
        DbDataType::Str => D3::Str,
        DbDataType::Binary => D3::Binary,
        DbDataType::Other => D3::Other,
    };
    v3::Column { name: c.name, data_type }
}

fn to_v3_error(e: Error) -> v3::Error {
    match e {
        Error::ConnectionFailed(m) => v3::Error::ConnectionFailed(m),
        Error::BadParameter(m) => v3::Error::BadParameter(m),
        Error::QueryFailed(m) => v3::Error::QueryFailed(m),
        Error::ValueConversionFailed(m) => v3::Error::ValueConversionFailed(m),
        Error::Other(m) => v3::Error::Other(m),
    }
}

impl v3::Host for MysqlView<'_> {}
impl v3::HostConnection for MysqlView<'_> {}

type QueryResult = (Vec<v3::Column>, StreamReader<Vec<v3::DbValue>>, FutureReader<Result<(), v3::Error>>);

impl<T> v3::HostConnectionWithStore<T> for Mysql {
    async fn open(accessor: &Accessor<T, Self>, address: String) -> wasmtime::Result<Result<Resource<MysqlConnection>, v3::Error>> {
        let shared = accessor.with(|mut access| access.get().state.shared.clone());
        match open(&shared, &address).await {
            Ok(c) => Ok(Ok(accessor.with(|mut access| access.get().table.push(c))?)),
            Err(e) => Ok(Err(to_v3_error(e))),
        }
    }

    async fn query(
        accessor: &Accessor<T, Self>,
        c: Resource<MysqlConnection>,
        statement: String,
        params: Vec<v3::ParameterValue>,
    ) -> wasmtime::Result<Result<QueryResult, v3::Error>> {
        let conn = accessor.with(|mut access| access.get().connection(&c))?;
        // Rows are read whole (within the limit), then streamed to the guest.
        let (columns, rows) = match conn.query(&statement, params.into_iter().map(from_v3_param).collect()).await {
            Ok(r) => r,
            Err(e) => return Ok(Err(to_v3_error(e))),
        };
        let columns = columns.into_iter().map(to_v3_column).collect();
        let rows: Vec<Vec<v3::DbValue>> = rows.into_iter().map(|r| r.into_iter().map(to_v3_value).collect()).collect();
        accessor.with(|mut access| {
            let rows = StreamReader::new(&mut access, rows)?;
            let done = FutureReader::new(&mut access, async { Ok::<_, wasmtime::Error>(Ok(())) })?;
            Ok(Ok((columns, rows, done)))
        })
    }

    async fn execute(accessor: &Accessor<T, Self>, c: Resource<MysqlConnection>, statement: String, params: Vec<v3::ParameterValue>) -> wasmtime::Result<Result<(), v3::Error>> {
        let conn = accessor.with(|mut access| access.get().connection(&c))?;
        Ok(conn.execute(&statement, params.into_iter().map(from_v3_param).collect()).await.map_err(to_v3_error))
    }

    async fn drop(accessor: &Accessor<T, Self>, c: Resource<MysqlConnection>) -> wasmtime::Result<()> {
        accessor.with(|mut access| access.get().table.delete(c))?;
        Ok(())
    }
}
