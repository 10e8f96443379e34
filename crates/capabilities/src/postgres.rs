//! Outbound PostgreSQL: `spin:postgres/postgres@4.2.0`, and `@3.0.0` and
//! `fermyon:spin/postgres@2.0.0` (subsets, served by converting to and from 4.2). Every
//! type of 4.2 is mapped both ways: NUMERIC as decimal text (28 significant digits, as
//! Spin), the int4, int8 and numeric ranges, arrays, json/jsonb, uuid, dates, times,
//! timestamps, intervals and bytea; other types come as their raw bytes (`unsupported`).
//! `sslmode=require` connects with TLS, verifying the server against the system's roots
//! and the connection builder's CA root (as Spin does); other modes connect in plain.
//!
//! `open(address)` takes a `postgres://user@host:port/db` address that must match the
//! component's `allowed_outbound_hosts` (e.g. `"postgres://127.0.0.1:5432"`); the host is
//! resolved and checked like any outbound connection and the connection goes to the checked
//! address. Clients are shared per address by the component's instances and replaced when
//! closed, so a server that comes back is used again without a restart.

// `pg::Error` is the interface's generated error type; boxing it would only add copies.
#![allow(clippy::result_large_err)]

use crate::{Capability, Concurrency, Grant, InstanceState};
use crate::network::{Denied, OutboundPolicy};
use anyhow::Result;
use std::collections::HashMap;
use std::str::FromStr as _;
use std::sync::Arc;
use std::time::Duration;
use tessera_app::{LoadedApp, LoadedComponent};
use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use wasmtime::component::{Accessor, FutureReader, HasData, Linker, Resource, ResourceTable, StreamReader};

/// Longest wait to connect.
pub const TIMEOUT: Duration = Duration::from_secs(5);

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "tessera:host/postgres",
        imports: {
            "spin:postgres/postgres.[static]connection.open-async": async | store | trappable,
            "spin:postgres/postgres.[method]connection.query-async": async | store | trappable,
            "spin:postgres/postgres.[method]connection.execute-async": async | store | trappable,
            "spin:postgres/postgres.[method]connection-builder.build-async": async | store | trappable,
            default: async | trappable,
        },
        with: {
            "spin:postgres/postgres@4.2.0.connection": super::PgConnection,
            "spin:postgres/postgres@4.2.0.connection-builder": super::PgBuilder,
            "spin:postgres/postgres@3.0.0.connection": super::PgConnection,
            "fermyon:spin/postgres.connection": super::PgConnection,
        },
    });
}

use bindings::spin::postgres4_2_0::postgres as pg;
use bindings::spin::postgres3_0_0::postgres as pg3;
use bindings::fermyon::spin::postgres as pg2;
use bindings::fermyon::spin::rdbms_types as rdbms;

/// One component's policy and open connections.
pub struct Shared {
    policy: OutboundPolicy,
    clients: tokio::sync::Mutex<HashMap<String, Arc<tokio_postgres::Client>>>,
    /// The instance's memory limit: no query result may be larger.
    max_result_bytes: usize,
}

/// The outbound Postgres capability (no app-wide state: each component has its policy
/// and its own connections).
pub struct Postgres;

impl Capability for Postgres {
    const IMPORTS: &'static [&'static str] = &["spin:postgres/", "fermyon:spin/postgres"];
    const NAME: &'static str = "postgres";
    const GRANT: Grant = Grant::AllowedOutboundHosts;
    type Component = Arc<Shared>;
    type Instance = InstancePostgres;

    fn link(linker: &mut Linker<InstanceState>, concurrency: Concurrency) -> Result<()> {
        if concurrency == Concurrency::On {
            pg::add_to_linker::<_, Postgres>(linker, view)?;
        }
        pg3::add_to_linker::<_, Postgres>(linker, view)?;
        // Its rdbms-types (types only) are linked by the MySQL capability.
        pg2::add_to_linker::<_, Postgres>(linker, view)?;
        Ok(())
    }

    /// `spin:postgres` 4.x has async functions returning streams; 3.0 does not.
    fn needs_concurrency(interface: &str) -> bool {
        interface.starts_with("spin:postgres/") && !interface.contains("@3.")
    }

    fn configure_app(_: &LoadedApp) -> Result<Self> {
        Ok(Self)
    }

    /// Takes the component's `allowed_outbound_hosts`.
    fn configure_component(&self, _: &LoadedApp, component: &LoadedComponent) -> Result<Arc<Shared>> {
        Ok(Arc::new(Shared {
            policy: OutboundPolicy::of(component),
            clients: Default::default(),
            max_result_bytes: usize::try_from(component.limits.max_instance_memory).unwrap_or(usize::MAX),
        }))
    }

    fn instance(shared: &Arc<Shared>) -> InstancePostgres {
        InstancePostgres { shared: shared.clone() }
    }
}

/// PostgreSQL state of one instance.
pub struct InstancePostgres {
    shared: Arc<Shared>,
}

/// An open connection handed to the guest.
pub struct PgConnection {
    client: Arc<tokio_postgres::Client>,
    max_result_bytes: usize,
}

/// A `connection-builder`: the address, until `build`.
pub struct PgBuilder {
    address: String,
    ca_root: Option<String>,
}

async fn connect(shared: &Shared, address: &str) -> Result<PgConnection, pg::Error> {
    connect_with(shared, address, None).await
}

/// The certificates of a PEM text.
fn pem_certificates(pem: &str) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, pg::Error> {
    use rustls::pki_types::pem::PemObject as _;
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pg::Error::Other(format!("the CA root is not a PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(pg::Error::Other("the CA root holds no certificate (-----BEGIN CERTIFICATE-----)".into()));
    }
    Ok(certs)
}

/// TLS for `sslmode=require`: the server's certificate must chain to the system's roots
/// or to `ca_root`, and name the host (as Spin verifies it).
fn tls_connector(ca_root: Option<&str>) -> Result<tokio_postgres_rustls::MakeRustlsConnect, pg::Error> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_native_certs::load_native_certs().certs {
        let _ = roots.add(cert);
    }
    for cert in ca_root.map(pem_certificates).transpose()?.unwrap_or_default() {
        roots.add(cert).map_err(|e| pg::Error::Other(format!("the CA root cannot be used: {e}")))?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| pg::Error::Other(format!("TLS is unavailable: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_postgres_rustls::MakeRustlsConnect::new(config))
}

/// Connects (or reuses this component's client for the same address and CA root).
/// `sslmode=require` connects with TLS; otherwise the connection is plain.
async fn connect_with(shared: &Shared, address: &str, ca_root: Option<&str>) -> Result<PgConnection, pg::Error> {
    let mut config = tokio_postgres::Config::from_str(address)
        .map_err(|e| pg::Error::ConnectionFailed(format!("invalid address `{address}`: {e}")))?;
    let tls = config.get_ssl_mode() == tokio_postgres::config::SslMode::Require;
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        _ => return Err(pg::Error::ConnectionFailed(format!("`{address}` names no TCP host"))),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let addr = match shared.policy.resolve("postgres", &host, port).await {
        Ok(a) => a,
        Err(Denied::NotAllowed | Denied::Restricted(_)) => {
            return Err(pg::Error::ConnectionFailed(format!("address postgres://{host}:{port} is not permitted by allowed_outbound_hosts")));
        }
        Err(Denied::Unresolved) => return Err(pg::Error::ConnectionFailed(format!("cannot resolve {host}"))),
    };
    let key = format!("{address}\n{}", ca_root.unwrap_or_default());
    let mut clients = shared.clients.lock().await;
    if let Some(c) = clients.get(&key)
        && !c.is_closed()
    {
        return Ok(PgConnection { client: c.clone(), max_result_bytes: shared.max_result_bytes });
    }
    // Connect to the checked address; the host name stays for authentication messages.
    config.hostaddr(addr.ip()).connect_timeout(TIMEOUT);
    let timed_out = || pg::Error::ConnectionFailed(format!("timed out connecting to {host}:{port}"));
    let failed = |e: tokio_postgres::Error| {
        // The cause (an unknown issuer, a refused login) is what tells the user the fix.
        let cause = std::error::Error::source(&e).map(|c| format!(": {c}")).unwrap_or_default();
        pg::Error::ConnectionFailed(format!("{e}{cause}"))
    };
    let client = if tls {
        let (client, connection) = tokio::time::timeout(TIMEOUT, config.connect(tls_connector(ca_root)?)).await.map_err(|_| timed_out())?.map_err(failed)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("postgres connection closed: {e}");
            }
        });
        client
    } else {
        let (client, connection) = tokio::time::timeout(TIMEOUT, config.connect(tokio_postgres::NoTls)).await.map_err(|_| timed_out())?.map_err(failed)?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("postgres connection closed: {e}");
            }
        });
        client
    };
    let client = Arc::new(client);
    clients.insert(key, client.clone());
    Ok(PgConnection { client, max_result_bytes: shared.max_result_bytes })
}

/// A SQL NULL that fits any parameter type.
#[derive(Debug)]
struct Null;

impl ToSql for Null {
    fn to_sql(&self, _: &Type, _: &mut bytes::BytesMut) -> Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        Ok(IsNull::Yes)
    }
    fn accepts(_: &Type) -> bool {
        true
    }
    to_sql_checked!();
}

/// Any value, as the bytes PostgreSQL sent (for types without a mapping).
struct Raw(Vec<u8>);

impl<'a> FromSql<'a> for Raw {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Raw(raw.to_vec()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

type Param = Box<dyn ToSql + Sync + Send>;

/// The size of any value as PostgreSQL sent it (not copied).
struct RawLen(usize);

impl<'a> FromSql<'a> for RawLen {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(RawLen(raw.len()))
    }
    fn accepts(_: &Type) -> bool {
        true
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

fn decimal(text: &str) -> Result<rust_decimal::Decimal, pg::Error> {
    rust_decimal::Decimal::from_str_exact(text.trim())
        .or_else(|_| rust_decimal::Decimal::from_scientific(text.trim()))
        .map_err(|e| pg::Error::BadParameter(format!("`{text}` is not a decimal number of up to 28 significant digits: {e}")))
}

/// A range of `T` in PostgreSQL's binary form: a flags byte, then each finite bound as
/// a length-prefixed value of the element type. An unbounded side is `None`; an empty
/// range reads as unbounded on both sides.
#[derive(Debug)]
struct PgRange<T> {
    lower: Option<(T, pg::RangeBoundKind)>,
    upper: Option<(T, pg::RangeBoundKind)>,
}

const RANGE_EMPTY: u8 = 0x01;
const RANGE_LOWER_INCLUSIVE: u8 = 0x02;
const RANGE_UPPER_INCLUSIVE: u8 = 0x04;
const RANGE_LOWER_INFINITE: u8 = 0x08;
const RANGE_UPPER_INFINITE: u8 = 0x10;

fn range_element(ty: &Type) -> Option<&Type> {
    match ty.kind() {
        tokio_postgres::types::Kind::Range(element) => Some(element),
        _ => None,
    }
}

impl<T: ToSql> ToSql for PgRange<T> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        use bytes::BufMut as _;
        let element = range_element(ty).ok_or("not a range type")?;
        let inclusive = |b: &Option<(T, pg::RangeBoundKind)>| matches!(b, Some((_, pg::RangeBoundKind::Inclusive)));
        let mut flags = 0;
        if self.lower.is_none() {
            flags |= RANGE_LOWER_INFINITE;
        }
        if self.upper.is_none() {
            flags |= RANGE_UPPER_INFINITE;
        }
        if inclusive(&self.lower) {
            flags |= RANGE_LOWER_INCLUSIVE;
        }
        if inclusive(&self.upper) {
            flags |= RANGE_UPPER_INCLUSIVE;
        }
        out.put_u8(flags);
        for (value, _) in [&self.lower, &self.upper].into_iter().flatten() {
            let at = out.len();
            out.put_i32(0);
            value.to_sql(element, out)?;
            let len = i32::try_from(out.len() - at - 4)?;
            out[at..at + 4].copy_from_slice(&len.to_be_bytes());
        }
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        range_element(ty).is_some_and(T::accepts)
    }
    to_sql_checked!();
}

impl<'a, T: FromSql<'a>> FromSql<'a> for PgRange<T> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let element = range_element(ty).ok_or("not a range type")?;
        let (&flags, mut rest) = raw.split_first().ok_or("an empty range value")?;
        if flags & RANGE_EMPTY != 0 {
            return Ok(Self { lower: None, upper: None });
        }
        let mut bound = |infinite: u8, inclusive: u8| -> Result<Option<(T, pg::RangeBoundKind)>, BoxError> {
            if flags & infinite != 0 {
                return Ok(None);
            }
            let (len, tail) = rest.split_at_checked(4).ok_or("a truncated range bound")?;
            let len = usize::try_from(i32::from_be_bytes(len.try_into()?))?;
            let (value, tail) = tail.split_at_checked(len).ok_or("a truncated range bound")?;
            rest = tail;
            let kind = if flags & inclusive != 0 { pg::RangeBoundKind::Inclusive } else { pg::RangeBoundKind::Exclusive };
            Ok(Some((T::from_sql(element, value)?, kind)))
        };
        let lower = bound(RANGE_LOWER_INFINITE, RANGE_LOWER_INCLUSIVE)?;
        let upper = bound(RANGE_UPPER_INFINITE, RANGE_UPPER_INCLUSIVE)?;
        Ok(Self { lower, upper })
    }
    fn accepts(ty: &Type) -> bool {
        range_element(ty).is_some_and(T::accepts)
    }
}

/// An INTERVAL in PostgreSQL's binary form: microseconds, days, months.
#[derive(Debug)]
struct Interval(pg::Interval);

impl ToSql for Interval {
    fn to_sql(&self, _: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        use bytes::BufMut as _;
        out.put_i64(self.0.micros);
        out.put_i32(self.0.days);
        out.put_i32(self.0.months);
        Ok(IsNull::No)
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
    to_sql_checked!();
}

impl<'a> FromSql<'a> for Interval {
    fn from_sql(_: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        let raw: &[u8; 16] = raw.try_into().map_err(|_| "an interval is 16 bytes")?;
        let micros = i64::from_be_bytes(raw[0..8].try_into()?);
        let days = i32::from_be_bytes(raw[8..12].try_into()?);
        let months = i32::from_be_bytes(raw[12..16].try_into()?);
        Ok(Self(pg::Interval { micros, days, months }))
    }
    fn accepts(ty: &Type) -> bool {
        *ty == Type::INTERVAL
    }
}

fn param(v: pg::ParameterValue) -> Result<Param, pg::Error> {
    use pg::ParameterValue as P;
    Ok(match v {
        P::Boolean(b) => Box::new(b),
        P::Int8(i) => Box::new(i),
        P::Int16(i) => Box::new(i),
        P::Int32(i) => Box::new(i),
        P::Int64(i) => Box::new(i),
        P::Floating32(f) => Box::new(f),
        P::Floating64(f) => Box::new(f),
        P::Str(s) => Box::new(s),
        P::Binary(b) => Box::new(b),
        P::Date((y, m, d)) => Box::new(
            chrono::NaiveDate::from_ymd_opt(y, m.into(), d.into()).ok_or_else(|| pg::Error::BadParameter("invalid date".into()))?,
        ),
        P::Time((h, mi, s, ns)) => Box::new(
            chrono::NaiveTime::from_hms_nano_opt(h.into(), mi.into(), s.into(), ns).ok_or_else(|| pg::Error::BadParameter("invalid time".into()))?,
        ),
        P::Datetime((y, mo, d, h, mi, s, ns)) => Box::new(
            chrono::NaiveDate::from_ymd_opt(y, mo.into(), d.into())
                .and_then(|date| date.and_hms_nano_opt(h.into(), mi.into(), s.into(), ns))
                .ok_or_else(|| pg::Error::BadParameter("invalid datetime".into()))?,
        ),
        P::Timestamp(secs) => Box::new(
            chrono::DateTime::<chrono::Utc>::from_timestamp(secs, 0).ok_or_else(|| pg::Error::BadParameter("invalid timestamp".into()))?,
        ),
        P::Uuid(s) => Box::new(uuid::Uuid::parse_str(&s).map_err(|e| pg::Error::BadParameter(format!("invalid uuid: {e}")))?),
        P::Jsonb(b) => Box::new(serde_json::from_slice::<serde_json::Value>(&b).map_err(|e| pg::Error::BadParameter(format!("invalid json: {e}")))?),
        P::ArrayInt32(a) => Box::new(a),
        P::ArrayInt64(a) => Box::new(a),
        P::ArrayStr(a) => Box::new(a),
        P::DbNull => Box::new(Null),
        P::Decimal(d) => Box::new(decimal(&d)?),
        P::ArrayDecimal(a) => Box::new(a.iter().map(|d| d.as_deref().map(decimal).transpose()).collect::<Result<Vec<_>, _>>()?),
        P::RangeInt32((lower, upper)) => Box::new(PgRange { lower, upper }),
        P::RangeInt64((lower, upper)) => Box::new(PgRange { lower, upper }),
        P::RangeDecimal((lower, upper)) => {
            let bound = |b: Option<(String, pg::RangeBoundKind)>| b.map(|(d, k)| decimal(&d).map(|d| (d, k))).transpose();
            Box::new(PgRange { lower: bound(lower)?, upper: bound(upper)? })
        }
        P::Interval(i) => Box::new(Interval(i)),
    })
}

fn data_type(t: &Type) -> pg::DbDataType {
    use pg::DbDataType as D;
    match *t {
        Type::BOOL => D::Boolean,
        Type::CHAR => D::Int8,
        Type::INT2 => D::Int16,
        Type::INT4 => D::Int32,
        Type::INT8 => D::Int64,
        Type::FLOAT4 => D::Floating32,
        Type::FLOAT8 => D::Floating64,
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => D::Str,
        Type::BYTEA => D::Binary,
        Type::DATE => D::Date,
        Type::TIME => D::Time,
        Type::TIMESTAMP => D::Datetime,
        Type::TIMESTAMPTZ => D::Timestamp,
        Type::UUID => D::Uuid,
        Type::JSON | Type::JSONB => D::Jsonb,
        Type::NUMERIC => D::Decimal,
        Type::INT4_RANGE => D::RangeInt32,
        Type::INT8_RANGE => D::RangeInt64,
        Type::NUM_RANGE => D::RangeDecimal,
        Type::NUMERIC_ARRAY => D::ArrayDecimal,
        Type::INT4_ARRAY => D::ArrayInt32,
        Type::INT8_ARRAY => D::ArrayInt64,
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => D::ArrayStr,
        Type::INTERVAL => D::Interval,
        ref other => D::Other(other.name().to_string()),
    }
}

fn value(row: &tokio_postgres::Row, i: usize, t: &Type) -> Result<pg::DbValue, pg::Error> {
    use pg::DbValue as V;
    fn get<'a, T: FromSql<'a>>(row: &'a tokio_postgres::Row, i: usize) -> Result<Option<T>, pg::Error> {
        row.try_get::<_, Option<T>>(i).map_err(|e| pg::Error::ValueConversionFailed(e.to_string()))
    }
    macro_rules! map {
        ($ty:ty, $f:expr) => {
            match get::<$ty>(row, i)? {
                Some(v) => $f(v),
                None => V::DbNull,
            }
        };
    }
    Ok(match *t {
        Type::BOOL => map!(bool, V::Boolean),
        Type::CHAR => map!(i8, V::Int8),
        Type::INT2 => map!(i16, V::Int16),
        Type::INT4 => map!(i32, V::Int32),
        Type::INT8 => map!(i64, V::Int64),
        Type::FLOAT4 => map!(f32, V::Floating32),
        Type::FLOAT8 => map!(f64, V::Floating64),
        Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME => map!(String, V::Str),
        Type::BYTEA => map!(Vec<u8>, V::Binary),
        Type::DATE => map!(chrono::NaiveDate, |d: chrono::NaiveDate| {
            use chrono::Datelike as _;
            V::Date((d.year(), d.month() as u8, d.day() as u8))
        }),
        Type::TIME => map!(chrono::NaiveTime, |t: chrono::NaiveTime| {
            use chrono::Timelike as _;
            V::Time((t.hour() as u8, t.minute() as u8, t.second() as u8, t.nanosecond()))
        }),
        Type::TIMESTAMP => map!(chrono::NaiveDateTime, |dt: chrono::NaiveDateTime| {
            use chrono::{Datelike as _, Timelike as _};
            V::Datetime((dt.year(), dt.month() as u8, dt.day() as u8, dt.hour() as u8, dt.minute() as u8, dt.second() as u8, dt.nanosecond()))
        }),
        Type::TIMESTAMPTZ => map!(chrono::DateTime<chrono::Utc>, |dt: chrono::DateTime<chrono::Utc>| V::Timestamp(dt.timestamp())),
        Type::UUID => map!(uuid::Uuid, |u: uuid::Uuid| V::Uuid(u.to_string())),
        Type::JSON | Type::JSONB => map!(serde_json::Value, |j: serde_json::Value| V::Jsonb(j.to_string().into_bytes())),
        Type::NUMERIC => map!(rust_decimal::Decimal, |d: rust_decimal::Decimal| V::Decimal(d.to_string())),
        Type::NUMERIC_ARRAY => map!(Vec<Option<rust_decimal::Decimal>>, |a: Vec<Option<rust_decimal::Decimal>>| V::ArrayDecimal(
            a.into_iter().map(|d| d.map(|d| d.to_string())).collect()
        )),
        Type::INT4_RANGE => map!(PgRange<i32>, |r: PgRange<i32>| V::RangeInt32((r.lower, r.upper))),
        Type::INT8_RANGE => map!(PgRange<i64>, |r: PgRange<i64>| V::RangeInt64((r.lower, r.upper))),
        Type::NUM_RANGE => map!(PgRange<rust_decimal::Decimal>, |r: PgRange<rust_decimal::Decimal>| {
            let text = |b: Option<(rust_decimal::Decimal, pg::RangeBoundKind)>| b.map(|(d, k)| (d.to_string(), k));
            V::RangeDecimal((text(r.lower), text(r.upper)))
        }),
        Type::INTERVAL => map!(Interval, |i: Interval| V::Interval(i.0)),
        Type::INT4_ARRAY => map!(Vec<Option<i32>>, V::ArrayInt32),
        Type::INT8_ARRAY => map!(Vec<Option<i64>>, V::ArrayInt64),
        Type::TEXT_ARRAY | Type::VARCHAR_ARRAY => map!(Vec<Option<String>>, V::ArrayStr),
        _ => map!(Raw, |r: Raw| V::Unsupported(r.0)),
    })
}

fn query_error(e: tokio_postgres::Error) -> pg::Error {
    match e.as_db_error() {
        Some(db) => pg::Error::QueryFailed(pg::QueryError::DbError(pg::DbError {
            as_text: e.to_string(),
            severity: db.severity().to_string(),
            code: db.code().code().to_string(),
            message: db.message().to_string(),
            detail: db.detail().map(String::from),
            extras: Vec::new(),
        })),
        None => pg::Error::QueryFailed(pg::QueryError::Text(e.to_string())),
    }
}

/// Bytes a value takes in the guest, for the result limit.
fn size_of(value: &pg::DbValue) -> usize {
    use pg::DbValue as V;
    16 + match value {
        V::Str(s) | V::Decimal(s) | V::Uuid(s) => s.len(),
        V::Binary(b) | V::Jsonb(b) | V::Unsupported(b) => b.len(),
        V::ArrayStr(a) | V::ArrayDecimal(a) => a.iter().map(|s| 16 + s.as_ref().map_or(0, String::len)).sum(),
        V::ArrayInt32(a) => a.len() * 8,
        V::ArrayInt64(a) => a.len() * 16,
        V::RangeDecimal((l, u)) => [l, u].iter().map(|b| b.as_ref().map_or(0, |(d, _)| d.len())).sum(),
        _ => 0,
    }
}

#[tracing::instrument(name = "postgres.query", level = "info", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.query.text = %statement))]
async fn query(conn: &PgConnection, statement: &str, params: Vec<pg::ParameterValue>) -> Result<pg::RowSet, pg::Error> {
    use futures::TryStreamExt as _;
    let client = &conn.client;
    let params = params.into_iter().map(param).collect::<Result<Vec<_>, _>>()?;
    let stmt = client.prepare(statement).await.map_err(query_error)?;
    let stream = client.query_raw(&stmt, params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync))).await.map_err(query_error)?;
    futures::pin_mut!(stream);
    let mut rows = Vec::new();
    let mut bytes = 0usize;
    // Rows are counted as they arrive, so a huge result stops at the limit, not in memory.
    while let Some(row) = stream.try_next().await.map_err(query_error)? {
        bytes += (0..row.len()).map(|i| 16 + row.try_get::<_, Option<RawLen>>(i).ok().flatten().map_or(0, |l| l.0)).sum::<usize>();
        if bytes > conn.max_result_bytes {
            return Err(pg::Error::Other(format!(
                "the result is larger than the instance's memory limit ({} bytes); select fewer rows or columns",
                conn.max_result_bytes
            )));
        }
        rows.push(row);
    }
    let columns: Vec<pg::Column> = stmt
        .columns()
        .iter()
        .map(|c| pg::Column { name: c.name().to_string(), data_type: data_type(c.type_()) })
        .collect();
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        let mut values = Vec::with_capacity(columns.len());
        for (i, c) in stmt.columns().iter().enumerate() {
            let v = value(&row, i, c.type_())?;
            bytes += size_of(&v);
            values.push(v);
        }
        if bytes > conn.max_result_bytes {
            return Err(pg::Error::Other(format!(
                "the result is larger than the instance's memory limit ({} bytes); select fewer rows or columns",
                conn.max_result_bytes
            )));
        }
        out.push(values);
    }
    Ok(pg::RowSet { columns, rows: out })
}

#[tracing::instrument(name = "postgres.execute", level = "info", skip_all, fields(otel.kind = "client", db.system = "postgresql", db.query.text = %statement))]
async fn execute(conn: &PgConnection, statement: &str, params: Vec<pg::ParameterValue>) -> Result<u64, pg::Error> {
    let client = &conn.client;
    let params = params.into_iter().map(param).collect::<Result<Vec<_>, _>>()?;
    let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref() as &(dyn ToSql + Sync)).collect();
    client.execute(statement, &refs).await.map_err(query_error)
}

/// The host functions' view of an instance.
pub struct PostgresView<'a> {
    table: &'a mut ResourceTable,
    state: &'a InstancePostgres,
}

impl HasData for Postgres {
    type Data<'a> = PostgresView<'a>;
}

fn view(s: &mut InstanceState) -> PostgresView<'_> {
    let (table, state) = s.capability::<Postgres>();
    PostgresView { table, state }
}

impl PostgresView<'_> {
    fn client(&self, c: &Resource<PgConnection>) -> wasmtime::Result<PgConnection> {
        let c = self.table.get(c)?;
        Ok(PgConnection { client: c.client.clone(), max_result_bytes: c.max_result_bytes })
    }
}

impl pg::Host for PostgresView<'_> {}

impl pg::HostConnection for PostgresView<'_> {
    async fn open(&mut self, address: String) -> wasmtime::Result<Result<Resource<PgConnection>, pg::Error>> {
        match connect(&self.state.shared, &address).await {
            Ok(c) => Ok(Ok(self.table.push(c)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn query(&mut self, c: Resource<PgConnection>, statement: String, params: Vec<pg::ParameterValue>) -> wasmtime::Result<Result<pg::RowSet, pg::Error>> {
        let client = self.client(&c)?;
        Ok(query(&client, &statement, params).await)
    }

    async fn execute(&mut self, c: Resource<PgConnection>, statement: String, params: Vec<pg::ParameterValue>) -> wasmtime::Result<Result<u64, pg::Error>> {
        let client = self.client(&c)?;
        Ok(execute(&client, &statement, params).await)
    }

    async fn drop(&mut self, c: Resource<PgConnection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

impl pg::HostConnectionBuilder for PostgresView<'_> {
    async fn new(&mut self, address: String) -> wasmtime::Result<Resource<PgBuilder>> {
        Ok(self.table.push(PgBuilder { address, ca_root: None })?)
    }

    async fn set_ca_root(&mut self, b: Resource<PgBuilder>, certificate: String) -> wasmtime::Result<Result<(), pg::Error>> {
        if let Err(e) = pem_certificates(&certificate) {
            return Ok(Err(e));
        }
        self.table.get_mut(&b)?.ca_root = Some(certificate);
        Ok(Ok(()))
    }

    async fn build(&mut self, b: Resource<PgBuilder>) -> wasmtime::Result<Result<Resource<PgConnection>, pg::Error>> {
        let (address, ca_root) = { let b = self.table.get(&b)?; (b.address.clone(), b.ca_root.clone()) };
        match connect_with(&self.state.shared, &address, ca_root.as_deref()).await {
            Ok(c) => Ok(Ok(self.table.push(c)?)),
            Err(e) => Ok(Err(e)),
        }
    }

    async fn drop(&mut self, b: Resource<PgBuilder>) -> wasmtime::Result<()> {
        self.table.delete(b)?;
        Ok(())
    }
}

fn shared_of<T>(accessor: &Accessor<T, Postgres>) -> Arc<Shared> {
    accessor.with(|mut access| access.get().state.shared.clone())
}

async fn open_with<T>(accessor: &Accessor<T, Postgres>, address: &str, ca_root: Option<&str>) -> wasmtime::Result<Result<Resource<PgConnection>, pg::Error>> {
    let shared = shared_of(accessor);
    match connect_with(&shared, address, ca_root).await {
        Ok(c) => Ok(Ok(accessor.with(|mut access| access.get().table.push(c))?)),
        Err(e) => Ok(Err(e)),
    }
}

impl<T> pg::HostConnectionWithStore<T> for Postgres {
    async fn open_async(accessor: &Accessor<T, Self>, address: String) -> wasmtime::Result<Result<Resource<PgConnection>, pg::Error>> {
        open_with(accessor, &address, None).await
    }

    async fn query_async(
        accessor: &Accessor<T, Self>,
        c: Resource<PgConnection>,
        statement: String,
        params: Vec<pg::ParameterValue>,
    ) -> wasmtime::Result<Result<(Vec<pg::Column>, StreamReader<pg::Row>, FutureReader<Result<(), pg::Error>>), pg::Error>> {
        let client = accessor.with(|mut access| access.get().client(&c))?;
        // Rows are read whole, then streamed to the guest.
        let set = match query(&client, &statement, params).await {
            Ok(s) => s,
            Err(e) => return Ok(Err(e)),
        };
        accessor.with(|mut access| {
            let rows = StreamReader::new(&mut access, set.rows)?;
            let done = FutureReader::new(&mut access, async { Ok::<_, wasmtime::Error>(Ok(())) })?;
            Ok(Ok((set.columns, rows, done)))
        })
    }

    async fn execute_async(accessor: &Accessor<T, Self>, c: Resource<PgConnection>, statement: String, params: Vec<pg::ParameterValue>) -> wasmtime::Result<Result<u64, pg::Error>> {
        let client = accessor.with(|mut access| access.get().client(&c))?;
        Ok(execute(&client, &statement, params).await)
    }
}

impl<T> pg::HostConnectionBuilderWithStore<T> for Postgres {
    async fn build_async(accessor: &Accessor<T, Self>, b: Resource<PgBuilder>) -> wasmtime::Result<Result<Resource<PgConnection>, pg::Error>> {
        let (address, ca_root) = accessor.with(|mut access| access.get().table.get(&b).map(|b| (b.address.clone(), b.ca_root.clone())))?;
        open_with(accessor, &address, ca_root.as_deref()).await
    }
}

// ---- spin:postgres@3.0.0, through the 4.2 code ------------------------------------------

fn from_v3_param(p: pg3::ParameterValue) -> pg::ParameterValue {
    use pg::ParameterValue as P;
    use pg3::ParameterValue as P3;
    match p {
        P3::Boolean(b) => P::Boolean(b),
        P3::Int8(i) => P::Int8(i),
        P3::Int16(i) => P::Int16(i),
        P3::Int32(i) => P::Int32(i),
        P3::Int64(i) => P::Int64(i),
        P3::Floating32(f) => P::Floating32(f),
        P3::Floating64(f) => P::Floating64(f),
        P3::Str(s) => P::Str(s),
        P3::Binary(b) => P::Binary(b),
        P3::Date(d) => P::Date(d),
        P3::Time(t) => P::Time(t),
        P3::Datetime(dt) => P::Datetime(dt),
        P3::Timestamp(t) => P::Timestamp(t),
        P3::DbNull => P::DbNull,
    }
}

fn to_v3_value(v: pg::DbValue) -> pg3::DbValue {
    use pg::DbValue as V;
    use pg3::DbValue as V3;
    match v {
        V::Boolean(b) => V3::Boolean(b),
        V::Int8(i) => V3::Int8(i),
        V::Int16(i) => V3::Int16(i),
        V::Int32(i) => V3::Int32(i),
        V::Int64(i) => V3::Int64(i),
        V::Floating32(f) => V3::Floating32(f),
        V::Floating64(f) => V3::Floating64(f),
        V::Str(s) => V3::Str(s),
        V::Binary(b) => V3::Binary(b),
        V::Date(d) => V3::Date(d),
        V::Time(t) => V3::Time(t),
        V::Datetime(dt) => V3::Datetime(dt),
        V::Timestamp(t) => V3::Timestamp(t),
        V::DbNull => V3::DbNull,
        _ => V3::Unsupported,
    }
}

fn to_v3_type(t: pg::DbDataType) -> pg3::DbDataType {
    use pg::DbDataType as D;
    use pg3::DbDataType as D3;
    match t {
        D::Boolean => D3::Boolean,
        D::Int8 => D3::Int8,
        D::Int16 => D3::Int16,
        D::Int32 => D3::Int32,
        D::Int64 => D3::Int64,
        D::Floating32 => D3::Floating32,
        D::Floating64 => D3::Floating64,
        D::Str => D3::Str,
        D::Binary => D3::Binary,
        D::Date => D3::Date,
        D::Time => D3::Time,
        D::Datetime => D3::Datetime,
        D::Timestamp => D3::Timestamp,
        _ => D3::Other,
    }
}

fn to_v3_error(e: pg::Error) -> pg3::Error {
    match e {
        pg::Error::ConnectionFailed(m) => pg3::Error::ConnectionFailed(m),
        pg::Error::BadParameter(m) => pg3::Error::BadParameter(m),
        pg::Error::QueryFailed(pg::QueryError::Text(m)) => pg3::Error::QueryFailed(m),
        pg::Error::QueryFailed(pg::QueryError::DbError(d)) => pg3::Error::QueryFailed(d.as_text),
        pg::Error::ValueConversionFailed(m) => pg3::Error::ValueConversionFailed(m),
        pg::Error::Other(m) => pg3::Error::Other(m),
    }
}

impl pg3::Host for PostgresView<'_> {}

impl pg3::HostConnection for PostgresView<'_> {
    async fn open(&mut self, address: String) -> wasmtime::Result<Result<Resource<PgConnection>, pg3::Error>> {
        match connect(&self.state.shared, &address).await {
            Ok(c) => Ok(Ok(self.table.push(c)?)),
            Err(e) => Ok(Err(to_v3_error(e))),
        }
    }

    async fn query(&mut self, c: Resource<PgConnection>, statement: String, params: Vec<pg3::ParameterValue>) -> wasmtime::Result<Result<pg3::RowSet, pg3::Error>> {
        let client = self.client(&c)?;
        let params = params.into_iter().map(from_v3_param).collect();
        Ok(query(&client, &statement, params)
            .await
            .map(|set| pg3::RowSet {
                columns: set.columns.into_iter().map(|c| pg3::Column { name: c.name, data_type: to_v3_type(c.data_type) }).collect(),
                rows: set.rows.into_iter().map(|r| r.into_iter().map(to_v3_value).collect()).collect(),
            })
            .map_err(to_v3_error))
    }

    async fn execute(&mut self, c: Resource<PgConnection>, statement: String, params: Vec<pg3::ParameterValue>) -> wasmtime::Result<Result<u64, pg3::Error>> {
        let client = self.client(&c)?;
        let params = params.into_iter().map(from_v3_param).collect();
        Ok(execute(&client, &statement, params).await.map_err(to_v3_error))
    }

    async fn drop(&mut self, c: Resource<PgConnection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

// ---- fermyon:spin/postgres@2.0.0 (Spin SDK 2 to 5), through the 4.2 code ---------------

fn from_v2_param(p: rdbms::ParameterValue) -> Result<pg::ParameterValue, pg::Error> {
    use pg::ParameterValue as P;
    use rdbms::ParameterValue as P2;
    // PostgreSQL has no unsigned types: each goes to the next wider signed one.
    Ok(match p {
        P2::Boolean(b) => P::Boolean(b),
        P2::Int8(i) => P::Int8(i),
        P2::Int16(i) => P::Int16(i),
        P2::Int32(i) => P::Int32(i),
        P2::Int64(i) => P::Int64(i),
        P2::Uint8(i) => P::Int16(i.into()),
        P2::Uint16(i) => P::Int32(i.into()),
        P2::Uint32(i) => P::Int64(i.into()),
        P2::Uint64(i) => P::Int64(i64::try_from(i).map_err(|_| pg::Error::BadParameter(format!("{i} is too large for PostgreSQL's bigint")))?),
        P2::Floating32(f) => P::Floating32(f),
        P2::Floating64(f) => P::Floating64(f),
        P2::Str(s) => P::Str(s),
        P2::Binary(b) => P::Binary(b),
        P2::DbNull => P::DbNull,
    })
}

/// The 2.0 shapes of a 4.2 result (types 2.0 has no name for are `other` / `unsupported`,
/// as in Spin).
fn to_v2_rows(set: pg::RowSet) -> rdbms::RowSet {
    use pg::DbDataType as D;
    use pg::DbValue as V;
    use rdbms::{DbDataType as D2, DbValue as V2};
    let columns = set
        .columns
        .into_iter()
        .map(|c| {
            let data_type = match c.data_type {
                D::Boolean => D2::Boolean,
                D::Int8 => D2::Int8,
                D::Int16 => D2::Int16,
                D::Int32 => D2::Int32,
                D::Int64 => D2::Int64,
                D::Floating32 => D2::Floating32,
                D::Floating64 => D2::Floating64,
                D::Str => D2::Str,
                D::Binary => D2::Binary,
                _ => D2::Other,
            };
            rdbms::Column { name: c.name, data_type }
        })
        .collect();
    let value = |v: V| match v {
        V::Boolean(b) => V2::Boolean(b),
        V::Int8(i) => V2::Int8(i),
        V::Int16(i) => V2::Int16(i),
        V::Int32(i) => V2::Int32(i),
        V::Int64(i) => V2::Int64(i),
        V::Floating32(f) => V2::Floating32(f),
        V::Floating64(f) => V2::Floating64(f),
        V::Str(s) => V2::Str(s),
        V::Binary(b) => V2::Binary(b),
        V::DbNull => V2::DbNull,
        _ => V2::Unsupported,
    };
    rdbms::RowSet { columns, rows: set.rows.into_iter().map(|r| r.into_iter().map(value).collect()).collect() }
}

fn to_v2_error(e: pg::Error) -> rdbms::Error {
    match to_v3_error(e) {
        pg3::Error::ConnectionFailed(m) => rdbms::Error::ConnectionFailed(m),
        pg3::Error::BadParameter(m) => rdbms::Error::BadParameter(m),
        pg3::Error::QueryFailed(m) => rdbms::Error::QueryFailed(m),
        pg3::Error::ValueConversionFailed(m) => rdbms::Error::ValueConversionFailed(m),
        pg3::Error::Other(m) => rdbms::Error::Other(m),
    }
}

fn v2_params(params: Vec<rdbms::ParameterValue>) -> Result<Vec<pg::ParameterValue>, rdbms::Error> {
    params.into_iter().map(from_v2_param).collect::<Result<_, _>>().map_err(to_v2_error)
}

impl pg2::Host for PostgresView<'_> {}

impl pg2::HostConnection for PostgresView<'_> {
    async fn open(&mut self, address: String) -> wasmtime::Result<Result<Resource<PgConnection>, rdbms::Error>> {
        match connect(&self.state.shared, &address).await {
            Ok(c) => Ok(Ok(self.table.push(c)?)),
            Err(e) => Ok(Err(to_v2_error(e))),
        }
    }

    async fn query(&mut self, c: Resource<PgConnection>, statement: String, params: Vec<rdbms::ParameterValue>) -> wasmtime::Result<Result<rdbms::RowSet, rdbms::Error>> {
        let client = self.client(&c)?;
        let params = match v2_params(params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        Ok(query(&client, &statement, params).await.map(to_v2_rows).map_err(to_v2_error))
    }

    async fn execute(&mut self, c: Resource<PgConnection>, statement: String, params: Vec<rdbms::ParameterValue>) -> wasmtime::Result<Result<u64, rdbms::Error>> {
        let client = self.client(&c)?;
        let params = match v2_params(params) {
            Ok(p) => p,
            Err(e) => return Ok(Err(e)),
        };
        Ok(execute(&client, &statement, params).await.map_err(to_v2_error))
    }

    async fn drop(&mut self, c: Resource<PgConnection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}
