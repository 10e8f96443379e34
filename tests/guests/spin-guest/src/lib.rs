//! A guest written with the published Spin Rust SDK (5.2), exercising Spin's capability
//! interfaces the way Spin apps call them:
//!
//! - `/variables/<name>`: `spin_sdk::variables::get` (`fermyon:spin/variables@2.0.0`);
//! - `/config/<name>`: `wasi:config/store.get`;
//! - `/config`: `wasi:config/store.get-all`, one `key=value` per line;
//! - `/kv/<store>/<key>`: GET, PUT (body) and DELETE through `spin_sdk::key_value`
//!   (`fermyon:spin/key-value@2.0.0`); `/kv/<store>` lists the keys;
//! - `/wasi-kv/<store>/<key>`: GET and PUT through `wasi:keyvalue/store`;
//! - `/wasi-kv-incr/<store>/<key>`: `wasi:keyvalue/atomics.increment` by 1, answers the sum;
//! - `/wasi-kv-cas/<store>/<key>`: appends `x` to the value with a compare-and-swap loop;
//! - `/wasi-kv-batch/<store>`: `set-many` of a=1, b=2, then `get-many` of a, b, c.
//!
//! - `/sql/<db>` (POST, body = one SQL statement, `?` parameters from the `x-params`
//!   header, `|`-separated): `spin_sdk::sqlite` (`fermyon:spin/sqlite@2.0.0`); answers the
//!   columns then one line per row, values `|`-separated;
//! - `/sql3/<db>`: the same through `spin:sqlite@3.0.0`, plus `last-insert-rowid` and
//!   `changes` in `x-rowid` and `x-changes`.
//! - `/redis?addr=A&op=set|get|incr|exec&key=K` (POST body = value for `set`, the command
//!   line for `exec`): `spin_sdk::redis` (`fermyon:spin/redis@2.0.0`) against address `A`;
//! - `/pg3?addr=A&mode=query|execute` (POST body = statement, `x-params` header):
//!   `spin_sdk::pg3` (`spin:postgres@3.0.0`); `/pg2` the same through `spin_sdk::pg`
//!   (`fermyon:spin/postgres@2.0.0`).
//! - `/mqtt?topic=T&qos=0|1|2&n=N&conns=C` (POST body = payload; headers `x-mqtt-address`,
//!   `x-mqtt-user`, `x-mqtt-password`, `x-mqtt-keep-alive`): `spin_sdk::mqtt`
//!   (`fermyon:spin/mqtt@2.0.0`): opens C sessions (1 by default), publishes N times (1)
//!   on the last; answers `published N`, or the error as `connection-failed: ...` (502),
//!   `invalid-address` (400), `too-many-connections` (429) or `other: ...` (500).
//! - `/mysql?mode=query|execute[&held=N]` (POST body = statement, N more connections held
//!   open first, `x-params` header of `|`-separated
//!   integer/`null`/text parameters, `x-mysql-address`): `spin_sdk::mysql`
//!   (`fermyon:spin/mysql@2.0.0`); answers `name:type` columns then one line per row, or
//!   `done`; an error as `error: <variant>` (500, 502 for connection-failed).
//!
//! Store errors answer 403 (access denied), 404 (no such store) or 500 (other), with the
//! error in the body.

use spin_sdk::http::{IntoResponse, Params, Request, Response, Router};
use spin_sdk::http_component;
use spin_sdk::key_value::{Error as KvError, Store};
use spin_sdk::wit::wasi::config::store as config;
use spin_sdk::wit::wasi::keyvalue::{atomics, batch, store as wasi_kv};

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let mut router = Router::new();
    router.get("/variables/:name", variable);
    router.get("/config/:name", config_one);
    router.get("/config", config_all);
    router.get("/kv/:store/:key", kv_get);
    router.put("/kv/:store/:key", kv_put);
    router.delete("/kv/:store/:key", kv_delete);
    router.get("/kv/:store", kv_keys);
    router.get("/wasi-kv/:store/:key", wasi_get);
    router.put("/wasi-kv/:store/:key", wasi_put);
    router.post("/wasi-kv-incr/:store/:key", wasi_incr);
    router.post("/wasi-kv-cas/:store/:key", wasi_cas);
    router.post("/wasi-kv-batch/:store", wasi_batch);
    router.post("/sql/:db", sql2);
    router.post("/sql3/:db", sql3);
    router.post("/redis", redis_op);
    router.post("/pg3", pg3);
    router.post("/pg2", pg2);
    router.post("/mqtt", mqtt);
    router.post("/mysql", mysql);
    Ok(router.handle(req))
}

fn variable(_req: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    let name = params.get("name").unwrap_or_default();
    Ok(match spin_sdk::variables::get(name) {
        Ok(value) => Response::new(200, value),
        Err(spin_sdk::variables::Error::Undefined(m)) => Response::new(404, format!("undefined: {m}")),
        Err(spin_sdk::variables::Error::InvalidName(m)) => Response::new(400, format!("invalid-name: {m}")),
        Err(e) => Response::new(500, format!("error: {e}")),
    })
}

fn config_one(_req: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    let name = params.get("name").unwrap_or_default();
    Ok(match config::get(name) {
        Ok(Some(value)) => Response::new(200, value),
        Ok(None) => Response::new(404, format!("no config value `{name}`")),
        Err(e) => Response::new(500, format!("error: {e:?}")),
    })
}

fn config_all(_req: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    Ok(match config::get_all() {
        Ok(mut pairs) => {
            pairs.sort();
            Response::new(200, pairs.into_iter().map(|(k, v)| format!("{k}={v}\n")).collect::<String>())
        }
        Err(e) => Response::new(500, format!("error: {e:?}")),
    })
}

fn kv_error(e: KvError) -> Response {
    match e {
        KvError::AccessDenied => Response::new(403, "access-denied".to_string()),
        KvError::NoSuchStore => Response::new(404, "no-such-store".to_string()),
        other => Response::new(500, format!("error: {other:?}")),
    }
}

fn open(params: &Params) -> Result<Store, Response> {
    Store::open(params.get("store").unwrap_or_default()).map_err(kv_error)
}

fn kv_get(_req: Request, params: Params) -> anyhow::Result<Response> {
    let store = match open(&params) { Ok(s) => s, Err(r) => return Ok(r) };
    Ok(match store.get(params.get("key").unwrap_or_default()) {
        Ok(Some(v)) => Response::new(200, v),
        Ok(None) => Response::new(404, "no such key".to_string()),
        Err(e) => kv_error(e),
    })
}

fn kv_put(req: Request, params: Params) -> anyhow::Result<Response> {
    let store = match open(&params) { Ok(s) => s, Err(r) => return Ok(r) };
    Ok(match store.set(params.get("key").unwrap_or_default(), req.body()) {
        Ok(()) => Response::new(200, "stored".to_string()),
        Err(e) => kv_error(e),
    })
}

fn kv_delete(_req: Request, params: Params) -> anyhow::Result<Response> {
    let store = match open(&params) { Ok(s) => s, Err(r) => return Ok(r) };
    Ok(match store.delete(params.get("key").unwrap_or_default()) {
        Ok(()) => Response::new(200, "deleted".to_string()),
        Err(e) => kv_error(e),
    })
}

fn kv_keys(_req: Request, params: Params) -> anyhow::Result<Response> {
    let store = match open(&params) { Ok(s) => s, Err(r) => return Ok(r) };
    Ok(match store.get_keys() {
        Ok(keys) => Response::new(200, keys.join("\n")),
        Err(e) => kv_error(e),
    })
}

fn wasi_error(e: wasi_kv::Error) -> Response {
    match e {
        wasi_kv::Error::AccessDenied => Response::new(403, "access-denied".to_string()),
        wasi_kv::Error::NoSuchStore => Response::new(404, "no-such-store".to_string()),
        wasi_kv::Error::Other(m) => Response::new(500, format!("error: {m}")),
    }
}

fn bucket(params: &Params) -> Result<wasi_kv::Bucket, Response> {
    wasi_kv::open(params.get("store").unwrap_or_default()).map_err(wasi_error)
}

fn wasi_get(_req: Request, params: Params) -> anyhow::Result<Response> {
    let b = match bucket(&params) { Ok(b) => b, Err(r) => return Ok(r) };
    Ok(match b.get(params.get("key").unwrap_or_default()) {
        Ok(Some(v)) => Response::new(200, v),
        Ok(None) => Response::new(404, "no such key".to_string()),
        Err(e) => wasi_error(e),
    })
}

fn wasi_put(req: Request, params: Params) -> anyhow::Result<Response> {
    let b = match bucket(&params) { Ok(b) => b, Err(r) => return Ok(r) };
    Ok(match b.set(params.get("key").unwrap_or_default(), req.body()) {
        Ok(()) => Response::new(200, "stored".to_string()),
        Err(e) => wasi_error(e),
    })
}

fn wasi_incr(_req: Request, params: Params) -> anyhow::Result<Response> {
    let b = match bucket(&params) { Ok(b) => b, Err(r) => return Ok(r) };
    Ok(match atomics::increment(&b, params.get("key").unwrap_or_default(), 1) {
        Ok(n) => Response::new(200, n.to_string()),
        Err(e) => wasi_error(e),
    })
}

fn wasi_cas(_req: Request, params: Params) -> anyhow::Result<Response> {
    let b = match bucket(&params) { Ok(b) => b, Err(r) => return Ok(r) };
    let key = params.get("key").unwrap_or_default();
    let mut cas = match atomics::Cas::new(&b, key) { Ok(c) => c, Err(e) => return Ok(wasi_error(e)) };
    loop {
        let mut value = match cas.current() { Ok(v) => v.unwrap_or_default(), Err(e) => return Ok(wasi_error(e)) };
        value.push(b'x');
        match atomics::swap(cas, &value) {
            Ok(()) => return Ok(Response::new(200, value)),
            Err(atomics::CasError::CasFailed(again)) => cas = again,
            Err(atomics::CasError::StoreError(e)) => return Ok(wasi_error(e)),
        }
    }
}

fn wasi_batch(_req: Request, params: Params) -> anyhow::Result<Response> {
    let b = match bucket(&params) { Ok(b) => b, Err(r) => return Ok(r) };
    if let Err(e) = batch::set_many(&b, &[("a".to_string(), b"1".to_vec()), ("b".to_string(), b"2".to_vec())]) {
        return Ok(wasi_error(e));
    }
    Ok(match batch::get_many(&b, &["a".to_string(), "b".to_string(), "c".to_string()]) {
        Ok(pairs) => Response::new(
            200,
            pairs
                .into_iter()
                .map(|(k, v)| format!("{k}={}\n", v.map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or("-".into())))
                .collect::<String>(),
        ),
        Err(e) => wasi_error(e),
    })
}

fn sql_params(req: &Request) -> Vec<String> {
    req.header("x-params")
        .and_then(|h| h.as_str())
        .map(|s| s.split('|').map(String::from).collect())
        .unwrap_or_default()
}

fn sql2(req: Request, params: Params) -> anyhow::Result<Response> {
    use spin_sdk::sqlite::{Connection, Error, Value};
    let db = match Connection::open(params.get("db").unwrap_or_default()) {
        Ok(c) => c,
        Err(Error::AccessDenied) => return Ok(Response::new(403, "access-denied".to_string())),
        Err(e) => return Ok(Response::new(500, format!("error: {e:?}"))),
    };
    let sql = String::from_utf8_lossy(req.body()).into_owned();
    let args: Vec<Value> = sql_params(&req).into_iter().map(|p| match p.parse::<i64>() {
        Ok(i) => Value::Integer(i),
        Err(_) => Value::Text(p),
    }).collect();
    Ok(match db.execute(&sql, &args) {
        Ok(result) => {
            let mut out = result.columns.join("|");
            out.push('\n');
            for row in result.rows {
                let cells: Vec<String> = row.values.iter().map(|v| match v {
                    Value::Integer(i) => i.to_string(),
                    Value::Real(f) => f.to_string(),
                    Value::Text(t) => t.clone(),
                    Value::Blob(b) => format!("blob:{}", b.len()),
                    Value::Null => "null".into(),
                }).collect();
                out.push_str(&cells.join("|"));
                out.push('\n');
            }
            Response::new(200, out)
        }
        Err(e) => Response::new(500, format!("error: {e:?}")),
    })
}

fn sql3(req: Request, params: Params) -> anyhow::Result<Response> {
    use spin_sdk::sqlite3::{Connection, Error, Value};
    let db = match Connection::open(params.get("db").unwrap_or_default()) {
        Ok(c) => c,
        Err(Error::AccessDenied) => return Ok(Response::new(403, "access-denied".to_string())),
        Err(e) => return Ok(Response::new(500, format!("error: {e:?}"))),
    };
    let sql = String::from_utf8_lossy(req.body()).into_owned();
    let args: Vec<Value> = sql_params(&req).into_iter().map(|p| match p.parse::<i64>() {
        Ok(i) => Value::Integer(i),
        Err(_) => Value::Text(p),
    }).collect();
    Ok(match db.execute(&sql, &args) {
        Ok(result) => Response::builder()
            .status(200)
            .header("x-rowid", db.last_insert_rowid().to_string())
            .header("x-changes", db.changes().to_string())
            .body(format!("{} rows\n", result.rows.len()))
            .build(),
        Err(e) => Response::new(500, format!("error: {e:?}")),
    })
}

fn redis_op(req: Request, _params: Params) -> anyhow::Result<Response> {
    use spin_sdk::redis::{Connection, Error, RedisParameter, RedisResult};
    let query: std::collections::HashMap<String, String> = req
        .query()
        .split('&')
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    let q = |k: &str| query.get(k).cloned().unwrap_or_default();
    let conn = match Connection::open(&q("addr")) {
        Ok(c) => c,
        Err(Error::InvalidAddress) => return Ok(Response::new(403, "invalid-address".to_string())),
        Err(e) => return Ok(Response::new(500, format!("error: {e:?}"))),
    };
    let body = String::from_utf8_lossy(req.body()).into_owned();
    let key = q("key");
    let result = match q("op").as_str() {
        "set" => conn.set(&key, &body.into_bytes()).map(|()| "OK".to_string()),
        "get" => conn.get(&key).map(|v| v.map(|v| String::from_utf8_lossy(&v).into_owned()).unwrap_or("(nil)".into())),
        "incr" => conn.incr(&key).map(|n| n.to_string()),
        "exec" => {
            let mut words = body.split_whitespace();
            let command = words.next().unwrap_or_default().to_string();
            let args: Vec<RedisParameter> = words.map(|w| RedisParameter::Binary(w.as_bytes().to_vec())).collect();
            conn.execute(&command, &args).map(|results| {
                results
                    .into_iter()
                    .map(|r| match r {
                        RedisResult::Nil => "nil".to_string(),
                        RedisResult::Status(s) => format!("status:{s}"),
                        RedisResult::Int64(i) => format!("int:{i}"),
                        RedisResult::Binary(b) => format!("bin:{}", String::from_utf8_lossy(&b)),
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
        }
        other => return Ok(Response::new(400, format!("unknown op {other}"))),
    };
    Ok(match result {
        Ok(text) => Response::new(200, text),
        Err(e) => Response::new(500, format!("error: {e:?}")),
    })
}

/// `/pg3` and `/pg2`: the same route over `spin:postgres@3.0.0` and
/// `fermyon:spin/postgres@2.0.0` (their SDK modules have the same shapes).
macro_rules! pg_route {
    ($name:ident, $sdk:ident) => {
fn $name(req: Request, _params: Params) -> anyhow::Result<Response> {
    use spin_sdk::$sdk::{Connection, DbValue, ParameterValue};
    let query: std::collections::HashMap<String, String> = req
        .query()
        .split('&')
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    let params: Vec<ParameterValue> = sql_params(&req)
        .into_iter()
        .map(|p| match p.parse::<i64>() {
            Ok(i) => ParameterValue::Int64(i),
            Err(_) => ParameterValue::Str(p),
        })
        .collect();
    let statement = String::from_utf8_lossy(req.body()).into_owned();
    let conn = match Connection::open(query.get("addr").map(String::as_str).unwrap_or_default()) {
        Ok(c) => c,
        Err(e) => return Ok(Response::new(502, format!("error: {e:?}"))),
    };
    if query.get("mode").map(String::as_str) == Some("execute") {
        return Ok(match conn.execute(&statement, &params) {
            Ok(n) => Response::new(200, format!("{n}\n")),
            Err(e) => Response::new(500, format!("error: {e:?}")),
        });
    }
    Ok(match conn.query(&statement, &params) {
        Ok(set) => {
            let mut out = set.columns.iter().map(|c| c.name.clone()).collect::<Vec<_>>().join("|");
            out.push('\n');
            for row in set.rows {
                let cells: Vec<String> = row
                    .iter()
                    .map(|v| match v {
                        DbValue::Int32(i) => i.to_string(),
                        DbValue::Int64(i) => i.to_string(),
                        DbValue::Str(s) => s.clone(),
                        DbValue::DbNull => "null".into(),
                        other => format!("{other:?}"),
                    })
                    .collect();
                out.push_str(&cells.join("|"));
                out.push('\n');
            }
            Response::new(200, out)
        }
        Err(e) => Response::new(500, format!("error: {e:?}")),
    })
}
    };
}

pg_route!(pg3, pg3);
pg_route!(pg2, pg);

fn mqtt(req: Request, _params: Params) -> anyhow::Result<Response> {
    use spin_sdk::mqtt::{Connection, Error, Qos};
    let query: std::collections::HashMap<String, String> = req
        .query()
        .split('&')
        .filter_map(|kv| kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())))
        .collect();
    let q = |k: &str| query.get(k).cloned().unwrap_or_default();
    let header = |k: &str| req.header(k).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let error = |e: Error| match e {
        Error::ConnectionFailed(m) => Response::new(502, format!("connection-failed: {m}")),
        Error::InvalidAddress => Response::new(400, "invalid-address".to_string()),
        Error::TooManyConnections => Response::new(429, "too-many-connections".to_string()),
        Error::Other(m) => Response::new(500, format!("other: {m}")),
    };
    let qos = match q("qos").as_str() {
        "1" => Qos::AtLeastOnce,
        "2" => Qos::ExactlyOnce,
        _ => Qos::AtMostOnce,
    };
    let keep_alive = header("x-mqtt-keep-alive").parse().unwrap_or(30);
    let mut sessions = Vec::new();
    for _ in 0..q("conns").parse().unwrap_or(1usize) {
        match Connection::open(&header("x-mqtt-address"), &header("x-mqtt-user"), &header("x-mqtt-password"), keep_alive) {
            Ok(c) => sessions.push(c),
            Err(e) => return Ok(error(e)),
        }
    }
    let n: usize = q("n").parse().unwrap_or(1);
    let conn = sessions.last().expect("at least one session");
    for _ in 0..n {
        if let Err(e) = conn.publish(&q("topic"), &req.body().to_vec(), qos) {
            return Ok(error(e));
        }
    }
    Ok(Response::new(200, format!("published {n}")))
}

fn mysql(req: Request, _params: Params) -> anyhow::Result<Response> {
    use spin_sdk::mysql::{Connection, DbValue, MysqlError, ParameterValue};
    let params: Vec<ParameterValue> = req
        .header("x-params")
        .and_then(|v| v.as_str())
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
    let address = req.header("x-mysql-address").and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let statement = String::from_utf8_lossy(req.body()).into_owned();
    let error = |e: MysqlError| {
        let status = if matches!(e, MysqlError::ConnectionFailed(_)) { 502 } else { 500 };
        Response::new(status, format!("error: {e:?}"))
    };
    // `held=N`: N more connections are opened first and held for the request.
    let held_count = req.query().split('&').find_map(|kv| kv.strip_prefix("held=")).and_then(|n| n.parse::<usize>().ok()).unwrap_or(0);
    let mut held = Vec::new();
    for _ in 0..held_count {
        match Connection::open(&address) {
            Ok(c) => held.push(c),
            Err(e) => return Ok(error(e)),
        }
    }
    let conn = match Connection::open(&address) {
        Ok(c) => c,
        Err(e) => return Ok(error(e)),
    };
    if req.query().contains("mode=execute") {
        return Ok(match conn.execute(&statement, &params) {
            Ok(()) => Response::new(200, "done"),
            Err(e) => error(e),
        });
    }
    let set = match conn.query(&statement, &params) {
        Ok(s) => s,
        Err(e) => return Ok(error(e)),
    };
    let mut out: String = set.columns.iter().map(|c| format!("{}:{}", c.name, format!("{:?}", c.data_type).trim_start_matches("DbDataType::"))).collect::<Vec<_>>().join("|");
    out.push('\n');
    for row in &set.rows {
        let cells: Vec<String> = row
            .iter()
            .map(|v| match v {
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
    Ok(Response::new(200, out))
}
