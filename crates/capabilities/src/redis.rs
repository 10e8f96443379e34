//! Outbound Redis: `fermyon:spin/redis@2.0.0` and `spin:redis/redis@3.0.0`.
//!
//! `open(address)` takes a `redis://host:port` URL that must match the component's
//! `allowed_outbound_hosts` (e.g. `"redis://127.0.0.1:6379"`); the host is resolved and
//! checked like any outbound connection, and the connection goes to the checked address.
//! Connections are multiplexed and shared per address by all instances of the component;
//! one that fails is replaced on the next call. A server that is down gives the guest
//! `other(...)` within [`TIMEOUT`].

use crate::{Capability, Concurrency, Grant, InstanceState};
use crate::network::{Denied, OutboundPolicy};
use anyhow::Result;
use redis::aio::MultiplexedConnection;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tessera_app::{LoadedApp, LoadedComponent};
use wasmtime::component::{Accessor, HasData, Linker, Resource, ResourceTable};

/// Longest wait for a connection or a reply.
pub const TIMEOUT: Duration = Duration::from_secs(3);

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "tessera:host/redis",
        imports: {
            "spin:redis/redis": async | store | trappable,
            default: async | trappable,
        },
        with: {
            "fermyon:spin/redis.connection": super::Connection,
            "spin:redis/redis.connection": super::Connection,
        },
    });
}

use bindings::fermyon::spin::redis as v2;
use bindings::spin::redis::redis as v3;

/// One component's policy and open connections.
pub struct Shared {
    policy: OutboundPolicy,
    connections: tokio::sync::Mutex<HashMap<String, MultiplexedConnection>>,
}

/// The outbound Redis capability (no app-wide state: each component has its policy
/// and its own connections).
pub struct Redis;

impl Capability for Redis {
    const IMPORTS: &'static [&'static str] = &["spin:redis/", "fermyon:spin/redis"];
    const NAME: &'static str = "redis";
    const GRANT: Grant = Grant::AllowedOutboundHosts;
    type Component = Arc<Shared>;
    type Instance = InstanceRedis;

    fn link(linker: &mut Linker<InstanceState>, concurrency: Concurrency) -> Result<()> {
        v2::add_to_linker::<_, Redis>(linker, view)?;
        if concurrency == Concurrency::On {
            v3::add_to_linker::<_, Redis>(linker, view)?;
        }
        Ok(())
    }

    /// `spin:redis` 3.x takes the store (concurrent host functions).
    fn needs_concurrency(interface: &str) -> bool {
        interface.starts_with("spin:redis/")
    }

    fn configure_app(_: &LoadedApp) -> Result<Self> {
        Ok(Self)
    }

    /// Takes the component's `allowed_outbound_hosts`.
    fn configure_component(&self, _: &LoadedApp, component: &LoadedComponent) -> Result<Arc<Shared>> {
        Ok(Arc::new(Shared {
            policy: OutboundPolicy::of(component),
            connections: Default::default(),
        }))
    }

    fn instance(shared: &Arc<Shared>) -> InstanceRedis {
        InstanceRedis { shared: shared.clone() }
    }
}

/// Redis state of one instance.
pub struct InstanceRedis {
    shared: Arc<Shared>,
}

/// An open connection handed to the guest: where it goes, and the shared state.
pub struct Connection {
    address: String,
    info: redis::ConnectionInfo,
    shared: Arc<Shared>,
}

/// Errors common to both interface versions.
enum RedisError {
    InvalidAddress,
    TypeError,
    Other(String),
}

impl Connection {
    async fn get(&self) -> Result<MultiplexedConnection, RedisError> {
        let mut pool = self.shared.connections.lock().await;
        if let Some(c) = pool.get(&self.address) {
            return Ok(c.clone());
        }
        let client = redis::Client::open(self.info.clone()).map_err(|e| RedisError::Other(e.to_string()))?;
        let config = redis::AsyncConnectionConfig::new().set_connection_timeout(TIMEOUT).set_response_timeout(TIMEOUT);
        let conn = client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| RedisError::Other(format!("cannot connect to {}: {e}", self.address)))?;
        pool.insert(self.address.clone(), conn.clone());
        Ok(conn)
    }

    /// Runs `cmd`; a broken connection is dropped so the next call reconnects.
    #[tracing::instrument(name = "redis.command", level = "info", skip_all, fields(otel.kind = "client", db.system = "redis", db.operation.name = tracing::field::Empty))]
    async fn query<R: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<R, RedisError> {
        if crate::trace_context::is_on()
            && let Some(redis::Arg::Simple(name)) = cmd.args_iter().next()
        {
            tracing::Span::current().record("db.operation.name", String::from_utf8_lossy(name).as_ref());
        }
        let mut conn = self.get().await?;
        match cmd.query_async::<R>(&mut conn).await {
            Ok(v) => Ok(v),
            Err(e) if e.kind() == redis::ErrorKind::TypeError => Err(RedisError::TypeError),
            Err(e) => {
                if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
                    self.shared.connections.lock().await.remove(&self.address);
                }
                Err(RedisError::Other(e.to_string()))
            }
        }
    }
}

/// Checks `address` against the allow-list and resolves it to a checked IP.
async fn open(shared: &Arc<Shared>, address: &str) -> Result<Connection, RedisError> {
    let url = url_parts(address).ok_or(RedisError::InvalidAddress)?;
    let addr = match shared.policy.resolve(&url.scheme, &url.host, url.port).await {
        Ok(a) => a,
        Err(Denied::NotAllowed | Denied::Restricted(_)) => return Err(RedisError::InvalidAddress),
        Err(Denied::Unresolved) => return Err(RedisError::Other(format!("cannot resolve {}", url.host))),
    };
    let mut info: redis::ConnectionInfo = redis::IntoConnectionInfo::into_connection_info(address).map_err(|_| RedisError::InvalidAddress)?;
    info.addr = match info.addr {
        redis::ConnectionAddr::Tcp(_, _) => redis::ConnectionAddr::Tcp(addr.ip().to_string(), addr.port()),
        redis::ConnectionAddr::TcpTls { insecure, tls_params, host: _, port: _ } => {
            // TLS verifies the name, so keep it; the name was checked above.
            redis::ConnectionAddr::TcpTls { host: url.host.clone(), port: url.port, insecure, tls_params }
        }
        _ => return Err(RedisError::InvalidAddress),
    };
    Ok(Connection { address: address.to_string(), info, shared: shared.clone() })
}

struct UrlParts {
    scheme: String,
    host: String,
    port: u16,
}

fn url_parts(address: &str) -> Option<UrlParts> {
    let (scheme, rest) = address.split_once("://")?;
    if scheme != "redis" && scheme != "rediss" {
        return None;
    }
    let authority = rest.split('/').next()?;
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(':') && (h.starts_with('[') || !h.contains(':')) => (h, p.parse().ok()?),
        _ => (authority, 6379),
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then(|| UrlParts { scheme: scheme.to_string(), host: host.to_string(), port })
}

/// The host functions' view of an instance.
pub struct RedisView<'a> {
    table: &'a mut ResourceTable,
    state: &'a InstanceRedis,
}

impl HasData for Redis {
    type Data<'a> = RedisView<'a>;
}

fn view(s: &mut InstanceState) -> RedisView<'_> {
    let (table, state) = s.capability::<Redis>();
    RedisView { table, state }
}

fn cmd(name: &str) -> redis::Cmd {
    redis::cmd(name)
}

/// A reply flattened the way Spin's `execute` returns it.
enum Reply {
    Nil,
    Status(String),
    Int(i64),
    Binary(Vec<u8>),
}

fn flatten(v: redis::Value, out: &mut Vec<Reply>) {
    match v {
        redis::Value::Nil => out.push(Reply::Nil),
        redis::Value::Int(i) => out.push(Reply::Int(i)),
        redis::Value::BulkString(b) => out.push(Reply::Binary(b)),
        redis::Value::SimpleString(s) => out.push(Reply::Status(s)),
        redis::Value::Okay => out.push(Reply::Status("OK".into())),
        redis::Value::Array(items) | redis::Value::Set(items) => items.into_iter().for_each(|i| flatten(i, out)),
        other => out.push(Reply::Binary(format!("{other:?}").into_bytes())),
    }
}

// Both interface versions have the same shapes under different type names.
macro_rules! host_impl {
    ($m:ident, $err:ident, $param:ident, $reply:ident) => {
        fn $err(e: RedisError) -> $m::Error {
            match e {
                RedisError::InvalidAddress => $m::Error::InvalidAddress,
                RedisError::TypeError => $m::Error::TypeError,
                RedisError::Other(m) => $m::Error::Other(m),
            }
        }

        fn $param(p: $m::RedisParameter) -> Vec<u8> {
            match p {
                $m::RedisParameter::Int64(i) => i.to_string().into_bytes(),
                $m::RedisParameter::Binary(b) => b,
            }
        }

        fn $reply(r: Reply) -> $m::RedisResult {
            match r {
                Reply::Nil => $m::RedisResult::Nil,
                Reply::Status(s) => $m::RedisResult::Status(s),
                Reply::Int(i) => $m::RedisResult::Int64(i),
                Reply::Binary(b) => $m::RedisResult::Binary(b),
            }
        }
    };
}

host_impl!(v2, v2_err, v2_param, v2_reply);
host_impl!(v3, v3_err, v3_param, v3_reply);

/// The commands, shared by both interface versions.
impl Connection {
    async fn publish(&self, channel: String, payload: Vec<u8>) -> Result<(), RedisError> {
        self.query::<i64>(cmd("PUBLISH").arg(channel).arg(payload)).await.map(|_| ())
    }
    async fn get_key(&self, key: String) -> Result<Option<Vec<u8>>, RedisError> {
        self.query(cmd("GET").arg(key)).await
    }
    async fn set(&self, key: String, value: Vec<u8>) -> Result<(), RedisError> {
        self.query::<()>(cmd("SET").arg(key).arg(value)).await
    }
    async fn incr(&self, key: String) -> Result<i64, RedisError> {
        self.query(cmd("INCR").arg(key)).await
    }
    async fn del(&self, keys: Vec<String>) -> Result<u32, RedisError> {
        self.query(cmd("DEL").arg(keys)).await
    }
    async fn sadd(&self, key: String, values: Vec<String>) -> Result<u32, RedisError> {
        self.query(cmd("SADD").arg(key).arg(values)).await
    }
    async fn smembers(&self, key: String) -> Result<Vec<String>, RedisError> {
        self.query(cmd("SMEMBERS").arg(key)).await
    }
    async fn srem(&self, key: String, values: Vec<String>) -> Result<u32, RedisError> {
        self.query(cmd("SREM").arg(key).arg(values)).await
    }
    async fn execute(&self, command: String, args: Vec<Vec<u8>>) -> Result<Vec<Reply>, RedisError> {
        let mut c = cmd(&command);
        for a in args {
            c.arg(a);
        }
        let value: redis::Value = self.query(&c).await?;
        let mut out = Vec::new();
        flatten(value, &mut out);
        Ok(out)
    }
}

impl RedisView<'_> {
    fn conn(&self, c: &Resource<Connection>) -> wasmtime::Result<Connection> {
        let c = self.table.get(c)?;
        Ok(Connection { address: c.address.clone(), info: c.info.clone(), shared: c.shared.clone() })
    }
}

impl v2::Host for RedisView<'_> {}

impl v2::HostConnection for RedisView<'_> {
    async fn open(&mut self, address: String) -> wasmtime::Result<Result<Resource<Connection>, v2::Error>> {
        match open(&self.state.shared, &address).await {
            Ok(c) => Ok(Ok(self.table.push(c)?)),
            Err(e) => Ok(Err(v2_err(e))),
        }
    }
    async fn publish(&mut self, c: Resource<Connection>, channel: String, payload: Vec<u8>) -> wasmtime::Result<Result<(), v2::Error>> {
        Ok(self.conn(&c)?.publish(channel, payload).await.map_err(v2_err))
    }
    async fn get(&mut self, c: Resource<Connection>, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, v2::Error>> {
        Ok(self.conn(&c)?.get_key(key).await.map_err(v2_err))
    }
    async fn set(&mut self, c: Resource<Connection>, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), v2::Error>> {
        Ok(self.conn(&c)?.set(key, value).await.map_err(v2_err))
    }
    async fn incr(&mut self, c: Resource<Connection>, key: String) -> wasmtime::Result<Result<i64, v2::Error>> {
        Ok(self.conn(&c)?.incr(key).await.map_err(v2_err))
    }
    async fn del(&mut self, c: Resource<Connection>, keys: Vec<String>) -> wasmtime::Result<Result<u32, v2::Error>> {
        Ok(self.conn(&c)?.del(keys).await.map_err(v2_err))
    }
    async fn sadd(&mut self, c: Resource<Connection>, key: String, values: Vec<String>) -> wasmtime::Result<Result<u32, v2::Error>> {
        Ok(self.conn(&c)?.sadd(key, values).await.map_err(v2_err))
    }
    async fn smembers(&mut self, c: Resource<Connection>, key: String) -> wasmtime::Result<Result<Vec<String>, v2::Error>> {
        Ok(self.conn(&c)?.smembers(key).await.map_err(v2_err))
    }
    async fn srem(&mut self, c: Resource<Connection>, key: String, values: Vec<String>) -> wasmtime::Result<Result<u32, v2::Error>> {
        Ok(self.conn(&c)?.srem(key, values).await.map_err(v2_err))
    }
    async fn execute(
        &mut self,
        c: Resource<Connection>,
        command: String,
        arguments: Vec<v2::RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<v2::RedisResult>, v2::Error>> {
        let args = arguments.into_iter().map(v2_param).collect();
        Ok(self.conn(&c)?.execute(command, args).await.map(|r| r.into_iter().map(v2_reply).collect()).map_err(v2_err))
    }
    async fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        Ok(())
    }
}

fn conn_of<T>(accessor: &Accessor<T, Redis>, c: &Resource<Connection>) -> wasmtime::Result<Connection> {
    accessor.with(|mut access| access.get().conn(c))
}

impl v3::Host for RedisView<'_> {}
impl v3::HostConnection for RedisView<'_> {}

impl<T> v3::HostConnectionWithStore<T> for Redis {
    async fn open(accessor: &Accessor<T, Self>, address: String) -> wasmtime::Result<Result<Resource<Connection>, v3::Error>> {
        let shared = accessor.with(|mut access| access.get().state.shared.clone());
        match open(&shared, &address).await {
            Ok(c) => Ok(Ok(accessor.with(|mut access| access.get().table.push(c))?)),
            Err(e) => Ok(Err(v3_err(e))),
        }
    }
    async fn publish(accessor: &Accessor<T, Self>, c: Resource<Connection>, channel: String, payload: Vec<u8>) -> wasmtime::Result<Result<(), v3::Error>> {
        Ok(conn_of(accessor, &c)?.publish(channel, payload).await.map_err(v3_err))
    }
    async fn get(accessor: &Accessor<T, Self>, c: Resource<Connection>, key: String) -> wasmtime::Result<Result<Option<Vec<u8>>, v3::Error>> {
        Ok(conn_of(accessor, &c)?.get_key(key).await.map_err(v3_err))
    }
    async fn set(accessor: &Accessor<T, Self>, c: Resource<Connection>, key: String, value: Vec<u8>) -> wasmtime::Result<Result<(), v3::Error>> {
        Ok(conn_of(accessor, &c)?.set(key, value).await.map_err(v3_err))
    }
    async fn incr(accessor: &Accessor<T, Self>, c: Resource<Connection>, key: String) -> wasmtime::Result<Result<i64, v3::Error>> {
        Ok(conn_of(accessor, &c)?.incr(key).await.map_err(v3_err))
    }
    async fn del(accessor: &Accessor<T, Self>, c: Resource<Connection>, keys: Vec<String>) -> wasmtime::Result<Result<u32, v3::Error>> {
        Ok(conn_of(accessor, &c)?.del(keys).await.map_err(v3_err))
    }
    async fn sadd(accessor: &Accessor<T, Self>, c: Resource<Connection>, key: String, values: Vec<String>) -> wasmtime::Result<Result<u32, v3::Error>> {
        Ok(conn_of(accessor, &c)?.sadd(key, values).await.map_err(v3_err))
    }
    async fn smembers(accessor: &Accessor<T, Self>, c: Resource<Connection>, key: String) -> wasmtime::Result<Result<Vec<String>, v3::Error>> {
        Ok(conn_of(accessor, &c)?.smembers(key).await.map_err(v3_err))
    }
    async fn srem(accessor: &Accessor<T, Self>, c: Resource<Connection>, key: String, values: Vec<String>) -> wasmtime::Result<Result<u32, v3::Error>> {
        Ok(conn_of(accessor, &c)?.srem(key, values).await.map_err(v3_err))
    }
    async fn execute(
        accessor: &Accessor<T, Self>,
        c: Resource<Connection>,
        command: String,
        arguments: Vec<v3::RedisParameter>,
    ) -> wasmtime::Result<Result<Vec<v3::RedisResult>, v3::Error>> {
        let args = arguments.into_iter().map(v3_param).collect();
        Ok(conn_of(accessor, &c)?.execute(command, args).await.map(|r| r.into_iter().map(v3_reply).collect()).map_err(v3_err))
    }
    async fn drop(accessor: &Accessor<T, Self>, c: Resource<Connection>) -> wasmtime::Result<()> {
        accessor.with(|mut access| access.get().table.delete(c))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_parse_like_redis_urls() {
        let u = url_parts("redis://user:pw@cache.internal:6380/2").unwrap();
        assert_eq!((u.scheme.as_str(), u.host.as_str(), u.port), ("redis", "cache.internal", 6380));
        assert_eq!(url_parts("redis://127.0.0.1").unwrap().port, 6379);
        assert_eq!(url_parts("rediss://[::1]:7000").unwrap().host, "::1");
        assert!(url_parts("http://x:1").is_none());
        assert!(url_parts("redis://").is_none());
    }
}
