//! `[[trigger.redis]]`, read as Spin reads it: every message published on a channel goes to
//! every component subscribed to it, through `fermyon:spin/inbound-redis` or
//! `spin:redis/inbound-redis@3.0.0`.
//!
//! Beyond Spin: a dropped connection is reopened with backoff (Spin ends the trigger);
//! at most [`MAX_IN_FLIGHT`] messages per server are handled at once, so a slow handler
//! stops the reading of further messages (they wait in Redis's buffer) instead of piling
//! up instances; each message's outcome is one log line, like an access-log line.

use anyhow::{Context as _, Result, bail};
use futures::StreamExt as _;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tessera_executor::{Executor, PreparedComponent};
use tokio::sync::{Semaphore, watch};

mod bindings {
    wasmtime::component::bindgen!({
        path: ["../capabilities/wit/deps/spin-redis", "wit"],
        world: "tessera:triggers/redis-v2",
        exports: { default: async },
    });
    pub mod v3 {
        wasmtime::component::bindgen!({
            path: ["../capabilities/wit/deps/spin-redis", "wit"],
            world: "tessera:triggers/redis-v3",
            exports: { default: async },
        });
    }
}

/// Messages handled at once per Redis server before reading pauses.
pub const MAX_IN_FLIGHT: usize = 64;
/// The first wait before reconnecting.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// Which `inbound-redis` a component exports.
#[derive(Clone, Copy, Debug)]
enum Export {
    /// `fermyon:spin/inbound-redis` (Spin SDK 2-5).
    V2,
    /// `spin:redis/inbound-redis@3.0.0` (async).
    V3,
}

struct Handler {
    component: Arc<PreparedComponent>,
    export: Export,
}

/// The components subscribed to channels of one Redis server.
struct Server {
    address: String,
    channels: BTreeMap<String, Vec<Arc<Handler>>>,
}

/// The Redis triggers of one app.
pub struct RedisTrigger {
    servers: Vec<Server>,
}

impl RedisTrigger {
    /// Resolves addresses and channels (variables filled in) and prepares each
    /// component, checking it exports exactly one `inbound-redis`.
    pub fn new(executor: &Executor) -> Result<Self> {
        let app = executor.app();
        let manifest = &app.manifest;
        let values = app.variables.values();
        let mut servers: BTreeMap<String, BTreeMap<String, Vec<Arc<Handler>>>> = BTreeMap::new();
        let mut handlers: BTreeMap<String, Arc<Handler>> = BTreeMap::new();
        for trigger in &manifest.redis_triggers {
            let at = || format!("{}:{}:{}", manifest.path.display(), trigger.location.line, trigger.location.column);
            let address = trigger
                .address
                .as_ref()
                .or(manifest.redis_address.as_ref())
                .context("a Redis trigger has no address")?
                .render(values)
                .map_err(|e| anyhow::anyhow!("{}: the Redis address: {e}", at()))?;
            redis::Client::open(address.as_str()).map_err(|e| {
                anyhow::anyhow!("{}: Redis address `{address}` is not a Redis URL: {e}\n  hint: write it as redis://HOST:PORT (rediss:// for TLS)", at())
            })?;
            let channel = trigger.channel.render(values).map_err(|e| anyhow::anyhow!("{}: the channel: {e}", at()))?;
            let handler = match handlers.get(&trigger.component) {
                Some(h) => h.clone(),
                None => {
                    let component = executor.prepare(&trigger.component)?;
                    let export = redis_export(&component)?;
                    let h = Arc::new(Handler { component, export });
                    handlers.insert(trigger.component.clone(), h.clone());
                    h
                }
            };
            servers.entry(address).or_default().entry(channel).or_default().push(handler);
        }
        Ok(Self { servers: servers.into_iter().map(|(address, channels)| Server { address, channels }).collect() })
    }

    /// `(address, channel, component ids)` of each subscription, for printing.
    pub fn subscriptions(&self) -> Vec<(String, String, Vec<String>)> {
        let mut out = Vec::new();
        for s in &self.servers {
            for (channel, handlers) in &s.channels {
                out.push((s.address.clone(), channel.clone(), handlers.iter().map(|h| h.component.id().to_string()).collect()));
            }
        }
        out
    }

    /// Whether the app has any Redis trigger.
    pub fn is_empty(&self) -> bool {
        self.servers.is_empty()
    }

    /// Subscribes and handles messages until `stop` turns true, then waits for messages
    /// in flight to finish.
    pub async fn run(self, executor: Arc<Executor>, stop: watch::Receiver<bool>) {
        let tasks: Vec<_> = self
            .servers
            .into_iter()
            .map(|server| tokio::spawn(subscribe(Arc::new(server), executor.clone(), stop.clone())))
            .collect();
        for t in tasks {
            let _ = t.await;
        }
    }
}

fn redis_export(component: &PreparedComponent) -> Result<Export> {
    let pre = component.instance_pre();
    let v2 = bindings::RedisV2Pre::new(pre.clone()).is_ok();
    let v3 = bindings::v3::RedisV3Pre::new(pre.clone()).is_ok();
    match (v2, v3) {
        (true, false) => Ok(Export::V2),
        (false, true) => Ok(Export::V3),
        (true, true) => bail!(
            "component `{}` exports both fermyon:spin/inbound-redis and spin:redis/inbound-redis@3.0.0; a Redis component exports one of them",
            component.id()
        ),
        (false, false) => bail!(
            "component `{}` is used by a [[trigger.redis]] but exports neither fermyon:spin/inbound-redis nor spin:redis/inbound-redis@3.0.0; build it as a Redis component (e.g. `#[redis_component]` of the Spin SDK)",
            component.id()
        ),
    }
}

/// One server's subscription: reconnects with backoff until told to stop.
async fn subscribe(server: Arc<Server>, executor: Arc<Executor>, mut stop: watch::Receiver<bool>) {
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut backoff = FIRST_BACKOFF;
    let mut failures = 0u32;
    while !*stop.borrow() {
        let session = listen(&server, &executor, &in_flight, &mut stop, &mut failures);
        match session.await {
            Ok(()) => break,
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!("Redis trigger: {e:#}; reconnecting to {} in {backoff:?} (attempt {failures})", server.address);
                }
            }
        }
        // The first failure after a working connection retries soon; later ones back off.
        backoff = if failures <= 1 { FIRST_BACKOFF } else { (backoff * 2).min(MAX_BACKOFF) };
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            _ = stop.changed() => {}
        }
    }
    // Wait for the messages in flight (the host bounds the wait with shutdown_timeout).
    let _ = in_flight.acquire_many(MAX_IN_FLIGHT as u32).await;
}

/// Connects, subscribes and handles messages; `Ok` when told to stop, `Err` when the
/// connection fails or drops.
async fn listen(
    server: &Arc<Server>,
    executor: &Arc<Executor>,
    in_flight: &Arc<Semaphore>,
    stop: &mut watch::Receiver<bool>,
    failures: &mut u32,
) -> Result<()> {
    let client = redis::Client::open(server.address.as_str())?;
    let mut pubsub = tokio::time::timeout(Duration::from_secs(5), client.get_async_pubsub())
        .await
        .map_err(|_| anyhow::anyhow!("connecting to {} timed out", server.address))?
        .with_context(|| format!("cannot connect to {}", server.address))?;
    for channel in server.channels.keys() {
        pubsub.subscribe(channel).await.with_context(|| format!("cannot subscribe to `{channel}` on {}", server.address))?;
    }
    if *failures > 0 {
        tracing::info!("Redis trigger: reconnected to {} after {} failed attempt(s); subscribed again", server.address, failures);
    } else {
        tracing::info!("Redis trigger: subscribed to {} channel(s) on {}", server.channels.len(), server.address);
    }
    *failures = 0;
    let mut messages = pubsub.on_message();
    loop {
        // Reading waits for a free slot: that is the backpressure.
        let permit = tokio::select! {
            permit = in_flight.clone().acquire_owned() => permit.expect("never closed"),
            _ = stop.changed() => return Ok(()),
        };
        let message = tokio::select! {
            m = messages.next() => m,
            _ = stop.changed() => return Ok(()),
        };
        let Some(message) = message else {
            bail!("the connection to {} was closed", server.address);
        };
        let channel = message.get_channel_name().to_string();
        let payload: Vec<u8> = message.get_payload_bytes().to_vec();
        let Some(handlers) = server.channels.get(&channel) else { continue };
        let handlers = handlers.clone();
        let executor = executor.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let calls = handlers.iter().map(|h| handle(&executor, h, &channel, payload.clone()));
            futures::future::join_all(calls).await;
        });
    }
}

/// Runs one message on one component and logs its outcome.
async fn handle(executor: &Executor, handler: &Handler, channel: &str, payload: Vec<u8>) {
    let started = std::time::Instant::now();
    let size = payload.len();
    let outcome = match handler.export {
        Export::V2 => {
            executor
                .invoke(&handler.component, "redis", move |store, instance| {
                    Box::pin(async move {
                        let guest = bindings::RedisV2::new(&mut *store, &instance)?;
                        let result = guest.fermyon_spin_inbound_redis().call_handle_message(&mut *store, &payload).await?;
                        Ok(result.map_err(|e| format!("{e:?}")))
                    })
                })
                .await
        }
        Export::V3 => {
            executor
                .invoke(&handler.component, "redis", move |store, instance| {
                    Box::pin(async move {
                        let guest = bindings::v3::RedisV3::new(&mut *store, &instance)?;
                        let result = store
                            .run_concurrent(async move |accessor| guest.spin_redis_inbound_redis().call_handle_message(accessor, payload).await)
                            .await??;
                        Ok(result.map_err(|e| format!("{e:?}")))
                    })
                })
                .await
        }
    };
    crate::log_message("redis", channel, size, started, handler.component.id(), outcome);
}
