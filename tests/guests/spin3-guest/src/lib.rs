//! A guest written with the current Spin Rust SDK (7.0, WASI 0.3):
//! - `/variables/<name>`: `spin_sdk::variables::get` (`spin:variables/variables@3.0.0`);
//! - `/kv/<store>/<key>`: GET and PUT (body) through `spin_sdk::key_value`
//!   (`spin:key-value/key-value@3.0.0`); `/kv/<store>` lists the keys (a stream);
//! - `/sql/<db>` (POST, body = statement): `spin_sdk::sqlite` (`spin:sqlite@3.1.0`,
//!   `open-async` and `execute-async`); answers the columns, then the rows (a stream),
//!   `|`-separated, then `rowid=<last-insert-rowid> changes=<changes>`;
//! - `/pg?addr=A&mode=query|execute` (POST, body = statement, `x-params` header of
//!   `|`-separated text/integer parameters): `spin_sdk::pg` (`spin:postgres@4.2.0`);
//!   answers `name:type` columns then the rows (a stream), or the affected row count.
//!   `ca=PATH` opens through the connection builder with that file as the CA root.
//!   Typed parameters: `dec:12.50`, `decs:1.5,2`, `int4range:1,5`, `int8range:1,`,
//!   `numrange:0.5,1.5` (lower inclusive, upper exclusive, empty for unbounded),
//!   `interval:MICROS,DAYS,MONTHS`.
//! - `/mqtt?topic=T&qos=0|1|2&n=N` (POST body = payload; headers `x-mqtt-address`,
//!   `x-mqtt-user`, `x-mqtt-password`): `spin_sdk::mqtt` (`spin:mqtt@3.0.0`); answers
//!   `published N` or the error as the Spin SDK 5.2 guest does.
//! - `/mysql?mode=query|execute` (as the Spin SDK 5.2 guest's): `spin_sdk::mysql`
//!   (`spin:mysql@3.0.0`, rows as a stream).

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    // The path below the matched route, as Spin passes it.
    let path = req
        .headers()
        .get("spin-path-info")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if path == "/pg" {
        return postgres(req).await;
    }
    if path == "/mqtt" {
        return mqtt(req).await;
    }
    if path == "/mysql" {
        return mysql(req).await;
    }
    if let Some(db) = path.strip_prefix("/sql/") {
        return sql(req, db).await;
    }
    if let Some(rest) = path.strip_prefix("/kv/") {
        return key_value(req, rest).await;
    }
    let Some(name) = path.strip_prefix("/variables/") else {
        return (http::StatusCode::NOT_FOUND, format!("no route for {path}\n"));
    };
    match spin_sdk::variables::get(name).await {
        Ok(value) => (http::StatusCode::OK, value),
        Err(spin_sdk::variables::Error::Undefined(m)) => (http::StatusCode::NOT_FOUND, format!("undefined: {m}")),
        Err(spin_sdk::variables::Error::InvalidName(m)) => (http::StatusCode::BAD_REQUEST, format!("invalid-name: {m}")),
        Err(e) => (http::StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e}")),
    }
}

async fn key_value(req: Request, rest: &str) -> (http::StatusCode, String) {
    use spin_sdk::key_value::{Error, Store};
    let (label, key) = rest.split_once('/').unwrap_or((rest, ""));
    let store = match Store::open(label).await {
        Ok(s) => s,
        Err(Error::AccessDenied) => return (http::StatusCode::FORBIDDEN, "access-denied".into()),
        Err(e) => return (http::StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e}")),
    };
    if key.is_empty() {
        return match store.get_keys().await.collect().await {
            Ok(mut keys) => {
                keys.sort();
                (http::StatusCode::OK, keys.join("\n"))
            }
            Err(e) => (http::StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e}")),
        };
    }
    if req.method() == http::Method::PUT {
        use http_body_util::BodyExt as _;
        let body = req.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
        return match store.set(key, body).await {
            Ok(()) => (http::StatusCode::OK, "stored".into()),
            Err(e) => (http::StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e}")),
        };
    }
    match store.get(key).await {
        Ok(Some(v)) => (http::StatusCode::OK, String::from_utf8_lossy(&v).into_owned()),
        Ok(None) => (http::StatusCode::NOT_FOUND, "no such key".into()),
        Err(e) => (http::StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e}")),
    }
}

async fn sql(req: Request, db: &str) -> (http::StatusCode, String) {
    use http_body_util::BodyExt as _;
    use spin_sdk::sqlite::{Connection, Value};
    let statement = req.into_body().collect().await.map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned()).unwrap_or_default();
    let conn = match Connection::open(db).await {
        Ok(c) => c,
        Err(e) => return (http::StatusCode::FORBIDDEN, format!("error: {e:?}")),
    };
    let result = match conn.execute(&statement, []).await {
        Ok(r) => r,
        Err(e) => return (http::StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e:?}")),
    };
    let mut out = result.columns().join("|");
    out.push('\n');
    let rows = match result.collect().await {
        Ok(rows) => rows,
        Err(e) => return (http::StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e:?}")),
    };
    for row in rows {
        let cells: Vec<String> = row
            .values
            .iter()
            .map(|v| match v {
                Value::Integer(i) => i.to_string(),
                Value::Real(f) => f.to_string(),
                Value::Text(t) => t.clone(),
                Value::Blob(b) => format!("blob:{}", b.len()),
                Value::Null => "null".into(),
            })
            .collect();
        out.push_str(&cells.join("|"));
        out.push('\n');
    }
    out.push_str(&format!("rowid={} changes={}\n", conn.last_insert_rowid().await, conn.changes().await));
    (http::StatusCode::OK, out)
}

async fn postgres(req: Request) -> (http::StatusCode, String) {
    use http_body_util::BodyExt as _;
    use spin_sdk::pg::{Connection, DbValue, ParameterValue};
    let query: std::collections::HashMap<String, String> = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    let params: Vec<ParameterValue> = req
        .headers()
        .get("x-params")
        .and_then(|v| v.to_str().ok())
        .map(|s| {
            s.split('|')
                .map(|p| typed_pg_param(p).unwrap_or_else(|| match p.parse::<i64>() {
                    Ok(i) => ParameterValue::Int64(i),
                    Err(_) if p == "null" => ParameterValue::DbNull,
                    Err(_) => ParameterValue::Str(p.to_string()),
                }))
                .collect()
        })
        .unwrap_or_default();
    let statement = req.into_body().collect().await.map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned()).unwrap_or_default();
    let address = query.get("addr").cloned().unwrap_or_default();
    let opened = match query.get("ca") {
        // Through the connection builder, with the CA root read from a mounted file.
        Some(path) => {
            let options = spin_sdk::pg::OpenOptions { ca_root: Some(spin_sdk::pg::Certificate::FilePath(path.clone())) };
            Connection::open_with_options(address, options).await
        }
        None => Connection::open(address).await,
    };
    let conn = match opened {
        Ok(c) => c,
        Err(e) => return (http::StatusCode::BAD_GATEWAY, format!("error: {e}")),
    };
    if query.get("mode").map(String::as_str) == Some("execute") {
        return match conn.execute(statement, params).await {
            Ok(n) => (http::StatusCode::OK, format!("{n}\n")),
            Err(e) => (http::StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e}")),
        };
    }
    let result = match conn.query(statement, params).await {
        Ok(r) => r,
        Err(e) => return (http::StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e}")),
    };
    let mut out: String = result.columns().iter().map(|c| format!("{}:{:?}", c.name, c.data_type)).collect::<Vec<_>>().join("|");
    out.push('\n');
    let (_, mut rows, done) = result.into_inner();
    while let Some(row) = rows.next().await {
        let cells: Vec<String> = row
            .iter()
            .map(|v| match v {
                DbValue::Int32(i) => i.to_string(),
                DbValue::Int64(i) => i.to_string(),
                DbValue::Str(s) => s.clone(),
                DbValue::Boolean(b) => b.to_string(),
                DbValue::DbNull => "null".into(),
                other => format!("{other:?}"),
            })
            .collect();
        out.push_str(&cells.join("|"));
        out.push('\n');
    }
    if let Err(e) = done.await {
        return (http::StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e:?}"));
    }
    (http::StatusCode::OK, out)
}

async fn mqtt(req: Request) -> (http::StatusCode, String) {
    use http_body_util::BodyExt as _;
    use spin_sdk::mqtt::{Connection, Error, Qos};
    let query: std::collections::HashMap<String, String> = req
        .uri()
        .query()
        .unwrap_or_default()
        .split('&')
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    let q = |k: &str| query.get(k).cloned().unwrap_or_default();
    let header = |k: &str| req.headers().get(k).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let (address, user, password) = (header("x-mqtt-address"), header("x-mqtt-user"), header("x-mqtt-password"));
    let qos = match q("qos").as_str() {
        "1" => Qos::AtLeastOnce,
        "2" => Qos::ExactlyOnce,
        _ => Qos::AtMostOnce,
    };
    let n: usize = q("n").parse().unwrap_or(1);
    let payload = req.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
    let result = async {
        let conn = Connection::open(address, user, password, 30).await?;
        for _ in 0..n {
            conn.publish(q("topic"), payload.clone(), qos).await?;
        }
        Ok::<_, Error>(())
    };
    match result.await {
        Ok(()) => (http::StatusCode::OK, format!("published {n}")),
        Err(Error::ConnectionFailed(m)) => (http::StatusCode::BAD_GATEWAY, format!("connection-failed: {m}")),
        Err(Error::InvalidAddress) => (http::StatusCode::BAD_REQUEST, "invalid-address".into()),
        Err(Error::TooManyConnections) => (http::StatusCode::TOO_MANY_REQUESTS, "too-many-connections".into()),
        Err(Error::Other(m)) => (http::StatusCode::INTERNAL_SERVER_ERROR, format!("other: {m}")),
    }
}

async fn mysql(req: Request) -> (http::StatusCode, String) {
    use http_body_util::BodyExt as _;
    use spin_sdk::mysql::{Connection, DbValue, Error, MysqlError, ParameterValue};
    let params: Vec<ParameterValue> = req
        .headers()
        .get("x-params")
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.split('|')
                .map(|p| match p.parse::<i64>() {
                    Ok(i) => ParameterValue::Int64(i),
                    Err(_) if p == "null" => ParameterValue::DbNull,
                    Err(_) => ParameterValue::Str(p.to_string()),
                })
                .collect()
        })
        .unwrap_or_default();
    let address = req.headers().get("x-mysql-address").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let execute = req.uri().query().unwrap_or_default().contains("mode=execute");
    let statement = req.into_body().collect().await.map(|b| String::from_utf8_lossy(&b.to_bytes()).into_owned()).unwrap_or_default();
    let error = |e: Error| match e {
        Error::MysqlError(e @ MysqlError::ConnectionFailed(_)) => (http::StatusCode::BAD_GATEWAY, format!("error: {e:?}")),
        Error::MysqlError(e) => (http::StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e:?}")),
        e => (http::StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e}")),
    };
    let conn = match Connection::open(address).await {
        Ok(c) => c,
        Err(e) => return error(e),
    };
    if execute {
        return match conn.execute(statement, params).await {
            Ok(()) => (http::StatusCode::OK, "done".into()),
            Err(e) => error(e),
        };
    }
    let result = match conn.query(statement, params).await {
        Ok(r) => r,
        Err(e) => return error(e),
    };
    let mut out: String = result.columns().iter().map(|c| format!("{}:{}", c.name, format!("{:?}", c.data_type).trim_start_matches("DbDataType::"))).collect::<Vec<_>>().join("|");
    out.push('\n');
    let width = result.columns().len();
    let rows = match result.collect().await {
        Ok(rows) => rows,
        Err(e) => return error(e),
    };
    for row in rows {
        let cells: Vec<String> = (0..width)
            .map(|i| match &row[i] {
                DbValue::Str(s) => s.clone(),
                DbValue::Binary(b) => format!("bin:{}", b.iter().map(|x| format!("{x:02x}")).collect::<String>()),
                DbValue::DbNull => "null".into(),
                DbValue::Int8(i) => i.to_string(),
                DbValue::Int16(i) => i.to_string(),
                DbValue::Int32(i) => i.to_string(),
                DbValue::Int64(i) => i.to_string(),
                DbValue::Uint8(i) => i.to_string(),
                DbValue::Uint16(i) => i.to_string(),
                DbValue::Uint32(i) => i.to_string(),
                DbValue::Uint64(i) => i.to_string(),
                DbValue::Floating32(f) => f.to_string(),
                DbValue::Floating64(f) => f.to_string(),
                other => format!("{other:?}"),
            })
            .collect();
        out.push_str(&cells.join("|"));
        out.push('\n');
    }
    (http::StatusCode::OK, out)
}

/// A `kind:value` parameter of the `/pg` route (see the module docs).
fn typed_pg_param(p: &str) -> Option<spin_sdk::pg::ParameterValue> {
    use spin_sdk::pg::{Interval, ParameterValue as P, RangeBoundKind as K};
    let (kind, value) = p.split_once(':')?;
    let bounds = |v: &str| -> (Option<String>, Option<String>) {
        let (lo, hi) = v.split_once(',').unwrap_or((v, ""));
        (Some(lo.to_string()).filter(|s| !s.is_empty()), Some(hi.to_string()).filter(|s| !s.is_empty()))
    };
    let (lo, hi) = bounds(value);
    Some(match kind {
        "dec" => P::Decimal(value.to_string()),
        "decs" => P::ArrayDecimal(value.split(',').map(|d| Some(d.to_string())).collect()),
        "int4range" => P::RangeInt32((lo.map(|v| (v.parse().unwrap(), K::Inclusive)), hi.map(|v| (v.parse().unwrap(), K::Exclusive)))),
        "int8range" => P::RangeInt64((lo.map(|v| (v.parse().unwrap(), K::Inclusive)), hi.map(|v| (v.parse().unwrap(), K::Exclusive)))),
        "numrange" => P::RangeDecimal((lo.map(|v| (v, K::Inclusive)), hi.map(|v| (v, K::Exclusive)))),
        "interval" => {
            let n: Vec<i64> = value.split(',').map(|x| x.parse().unwrap()).collect();
            P::Interval(Interval { micros: n[0], days: n[1] as i32, months: n[2] as i32 })
        }
        _ => return None,
    })
}
