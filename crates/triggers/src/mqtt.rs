//! `[[trigger.mqtt]]`, as the Spin MQTT trigger plugin reads it: the broker of
//! `[application.trigger.mqtt]` (address, username, password, keep_alive_interval), each
//! trigger's `topic` (a filter: `+` and `#` allowed) and `qos`, the component exporting
//! `spin:mqtt-trigger@3.0.0`'s `handle-message` (async), called with the payload and
//! the topic the message was published on.
//!
//! Beyond the plugin: one session per app subscribes to every topic, and a message goes to
//! each trigger whose filter matches it, once; a dropped session is reopened with backoff
//! and subscribed again (the plugin ends); at most [`MAX_IN_FLIGHT`] messages are handled
//! at once, so a slow handler stops the reading of further messages (the broker holds
//! them) instead of piling up instances; each message's outcome is one log line.

use anyhow::{Result, bail};
use rumqttc::{AsyncClient, Event, Incoming, QoS, SubscribeFilter, SubscribeReasonCode};
use std::sync::Arc;
use std::time::Duration;
use tessera_executor::{Executor, PreparedComponent};
use tokio::sync::{Semaphore, watch};

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit/deps/spin-mqtt-trigger",
        world: "spin:mqtt-trigger/spin-mqtt@3.0.0",
        exports: { default: async },
    });
}

use bindings::spin::mqtt_trigger::spin_mqtt_types::Metadata;

/// Messages handled at once before reading pauses.
pub const MAX_IN_FLIGHT: usize = 64;
/// The first wait before reconnecting.
const FIRST_BACKOFF: Duration = Duration::from_millis(100);
/// The longest wait between reconnection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(10);

/// One `[[trigger.mqtt]]`, ready to run.
struct Subscription {
    id: String,
    filter: String,
    qos: QoS,
    component: Arc<PreparedComponent>,
}

/// The MQTT triggers of one app.
pub struct MqttTrigger {
    /// The broker as written (for logs), and its session options.
    broker: Option<(String, rumqttc::MqttOptions)>,
    subscriptions: Arc<Vec<Subscription>>,
}

impl MqttTrigger {
    /// Renders the broker settings and topics (variables filled in), checks each topic
    /// filter and prepares each component, checking it exports `handle-message`.
    pub fn new(executor: &Executor) -> Result<Self> {
        let app = executor.app();
        let manifest = &app.manifest;
        let (Some(broker), false) = (&manifest.mqtt_broker, manifest.mqtt_triggers.is_empty()) else {
            return Ok(Self { broker: None, subscriptions: Arc::default() });
        };
        let values = app.variables.values();
        let at = |l: tessera_manifest::Location| format!("{}:{}:{}", manifest.path.display(), l.line, l.column);
        let render = |what: &str, t: &tessera_manifest::template::Template| {
            t.render(values).map_err(|e| anyhow::anyhow!("{}: [application.trigger.mqtt] {what}: {e}", at(broker.location)))
        };
        let address = render("address", &broker.address)?;
        let options = tessera_capabilities::mqtt::broker_options(&address, &render("username", &broker.username)?, &render("password", &broker.password)?, broker.keep_alive_interval)
            .map_err(|e| anyhow::anyhow!("{}: [application.trigger.mqtt] address: {e}", at(broker.location)))?;
        let mut subscriptions = Vec::new();
        for trigger in &manifest.mqtt_triggers {
            let filter = trigger.topic.render(values).map_err(|e| anyhow::anyhow!("{}: the topic: {e}", at(trigger.location)))?;
            if !rumqttc::valid_filter(&filter) {
                bail!(
                    "{}: topic `{filter}` is not an MQTT topic filter\n  hint: `+` stands for one whole level and `#` for the rest, as the last level (sensors/+/temperature, sensors/#)",
                    at(trigger.location)
                );
            }
            let component = executor.prepare(&trigger.component)?;
            check_export(&component)?;
            let qos = match trigger.qos {
                0 => QoS::AtMostOnce,
                1 => QoS::AtLeastOnce,
                _ => QoS::ExactlyOnce,
            };
            subscriptions.push(Subscription { id: trigger.id.clone(), filter, qos, component });
        }
        Ok(Self { broker: Some((address, options)), subscriptions: Arc::new(subscriptions) })
    }

    /// `(broker, topic filter, component)` of each subscription, for printing.
    pub fn subscriptions(&self) -> Vec<(String, String, String)> {
        let broker = self.broker.as_ref().map(|(a, _)| a.clone()).unwrap_or_default();
        self.subscriptions.iter().map(|s| (broker.clone(), s.filter.clone(), s.component.id().to_string())).collect()
    }

    /// Whether the app has any MQTT trigger.
    pub fn is_empty(&self) -> bool {
        self.subscriptions.is_empty()
    }

    /// Subscribes and handles messages until `stop` turns true, then waits for messages
    /// in flight to finish.
    pub async fn run(self, executor: Arc<Executor>, mut stop: watch::Receiver<bool>) {
        let Some((address, options)) = self.broker else { return };
        let (client, mut events) = AsyncClient::new(options, 16);
        let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let mut failures = 0u32;
        let mut backoff = FIRST_BACKOFF;
        loop {
            let event = tokio::select! {
                e = events.poll() => e,
                _ = stop.changed() => break,
            };
            match event {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    // Sessions are clean: every connection subscribes again.
                    let filters = self.subscriptions.iter().map(|s| SubscribeFilter::new(s.filter.clone(), s.qos));
                    if let Err(e) = client.try_subscribe_many(filters) {
                        tracing::warn!("MQTT trigger: cannot subscribe on {address}: {e}");
                    }
                }
                Ok(Event::Incoming(Incoming::SubAck(ack))) => {
                    for (s, code) in self.subscriptions.iter().zip(&ack.return_codes) {
                        if *code == SubscribeReasonCode::Failure {
                            tracing::warn!(
                                "MQTT trigger `{}`: {address} refused the subscription to `{}` (the broker's ACL must let this user subscribe to it)",
                                s.id,
                                s.filter
                            );
                        }
                    }
                    if failures > 0 {
                        tracing::info!("MQTT trigger: reconnected to {address} after {failures} failed attempt(s); subscribed again");
                    } else {
                        tracing::info!("MQTT trigger: subscribed to {} topic(s) on {address}", self.subscriptions.len());
                    }
                    failures = 0;
                    backoff = FIRST_BACKOFF;
                }
                Ok(Event::Incoming(Incoming::Publish(message))) => {
                    // Reading waits for a free slot: that is the backpressure.
                    let permit = tokio::select! {
                        p = in_flight.clone().acquire_owned() => p.expect("never closed"),
                        _ = stop.changed() => break,
                    };
                    let (subscriptions, executor) = (self.subscriptions.clone(), executor.clone());
                    tokio::spawn(async move {
                        let _permit = permit;
                        let topic = message.topic.clone();
                        let calls = subscriptions
                            .iter()
                            .filter(|s| rumqttc::matches(&topic, &s.filter))
                            .map(|s| handle(&executor, s, &topic, message.payload.to_vec()));
                        futures::future::join_all(calls).await;
                    });
                }
                Ok(_) => {}
                Err(e) => {
                    failures += 1;
                    if failures == 1 || failures.is_power_of_two() {
                        tracing::warn!("MQTT trigger: {}; reconnecting to {address} in {backoff:?} (attempt {failures})", describe(&e));
                    }
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => break,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        let _ = client.try_disconnect();
        // Wait for the messages in flight (the host bounds the wait with shutdown_timeout).
        let _ = in_flight.acquire_many(MAX_IN_FLIGHT as u32).await;
    }
}

/// A session failure in words, with the fix when the broker refused the login.
fn describe(e: &rumqttc::ConnectionError) -> String {
    match e {
        rumqttc::ConnectionError::ConnectionRefused(code) => {
            format!("the broker refused the session ({code:?}; check username and password in [application.trigger.mqtt])")
        }
        e => e.to_string(),
    }
}

fn check_export(component: &PreparedComponent) -> Result<()> {
    match bindings::SpinMqttPre::new(component.instance_pre().clone()) {
        Ok(_) => Ok(()),
        Err(e) => bail!(
            "component `{}` is used by a [[trigger.mqtt]] but does not export spin:mqtt-trigger@3.0.0's handle-message ({e}); build it as an MQTT component (e.g. `#[mqtt_component]` of spin-mqtt-sdk)",
            component.id()
        ),
    }
}

/// Runs one message on one trigger's component and logs its outcome.
async fn handle(executor: &Executor, subscription: &Subscription, topic: &str, payload: Vec<u8>) {
    let started = std::time::Instant::now();
    let size = payload.len();
    let metadata = Metadata { topic: topic.to_string() };
    let outcome = executor
        .invoke(&subscription.component, "mqtt", move |store, instance| {
            Box::pin(async move {
                let guest = bindings::SpinMqtt::new(&mut *store, &instance)?;
                let result = store.run_concurrent(async move |accessor| guest.call_handle_message(accessor, payload, metadata).await).await??;
                Ok(result.map_err(|e| format!("{e:?}")))
            })
        })
        .await;
    crate::log_message("mqtt", topic, size, started, subscription.component.id(), outcome);
}
