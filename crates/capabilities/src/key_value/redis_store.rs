//! The Redis backend. Connections are made on first use and remade after a failure, so a
//! Redis that is down gives the guest an error (after at most [`TIMEOUT`]) and the host
//! recovers by itself when it is back.

use super::{BackendError, Store};
use redis::AsyncCommands as _;
use redis::aio::MultiplexedConnection;
use std::time::Duration;
use tokio::sync::Mutex;

/// Longest wait for a connection or a reply.
pub const TIMEOUT: Duration = Duration::from_secs(3);

/// A store in one Redis database.
pub struct RedisStore {
    client: redis::Client,
    conn: Mutex<Option<MultiplexedConnection>>,
}

impl RedisStore {
    /// Checks the URL; connects later.
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            conn: Mutex::new(None),
        })
    }

    async fn connection(&self) -> Result<MultiplexedConnection, BackendError> {
        let mut guard = self.conn.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT);
        let conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await
            .map_err(|e| format!("redis: cannot connect: {e}"))?;
        *guard = Some(conn.clone());
        Ok(conn)
    }

    /// Runs one command; a failed connection is dropped so the next call reconnects.
    async fn run<R>(
        &self,
        f: impl AsyncFnOnce(&mut MultiplexedConnection) -> redis::RedisResult<R>,
    ) -> Result<R, BackendError> {
        let mut conn = self.connection().await?;
        match f(&mut conn).await {
            Ok(r) => Ok(r),
            Err(e) => {
                if e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal() {
                    *self.conn.lock().await = None;
                }
                Err(format!("redis: {e}"))
            }
        }
    }
}

const CAS_SCRIPT: &str = r"
local now = redis.call('GET', KEYS[1])
if ARGV[1] == 'absent' then
  if now then return 0 end
elseif now ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[1], ARGV[3])
return 1
";

#[async_trait::async_trait]
impl Store for RedisStore {
    #[tracing::instrument(name = "key_value.get", level = "info", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, BackendError> {
        self.run(async |c| c.get(key).await).await
    }

    #[tracing::instrument(name = "key_value.set", level = "info", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    async fn set(&self, key: &str, value: &[u8]) -> Result<(), BackendError> {
        self.run(async |c| c.set(key, value).await).await
    }

    #[tracing::instrument(name = "key_value.delete", level = "info", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    async fn delete(&self, key: &str) -> Result<(), BackendError> {
        self.run(async |c| c.del(key).await).await
    }

    #[tracing::instrument(name = "key_value.exists", level = "info", skip_all, fields(otel.kind = "client", db.system = "redis"))]
    async fn exists(&self, key: &str) -> Result<bool, BackendError> {
        self.run(async |c| c.exists(key).await).await
    }

    async fn keys(&self) -> Result<Vec<String>, BackendError> {
        self.run(async |c| {
            let mut keys = Vec::new();
            let mut cursor: u64 = 0;
            loop {
                let (next, batch): (u64, Vec<String>) =
                    redis::cmd("SCAN").arg(cursor).arg("COUNT").arg(1000).query_async(c).await?;
                keys.extend(batch);
                if next == 0 {
                    break;
                }
                cursor = next;
            }
            keys.sort();
            Ok(keys)
        })
        .await
    }

    async fn increment(&self, key: &str, delta: i64) -> Result<i64, BackendError> {
        self.run(async |c| c.incr(key, delta).await).await
    }

    async fn compare_and_swap(&self, key: &str, current: Option<&[u8]>, new: &[u8]) -> Result<bool, BackendError> {
        let swapped: i64 = self
            .run(async |c| {
                redis::Script::new(CAS_SCRIPT)
                    .key(key)
                    .arg(if current.is_some() { "present" } else { "absent" })
                    .arg(current.unwrap_or_default())
                    .arg(new)
                    .invoke_async(c)
                    .await
            })
            .await?;
        Ok(swapped == 1)
    }
}
