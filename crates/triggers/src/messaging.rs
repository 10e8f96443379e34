//! `[[trigger.messaging]]`: wasmCloud-style subscriptions. Each trigger's `subject` (NATS
//! wildcards allowed) is subscribed on the app's broker (NATS from `[messaging]` in the
//! runtime config, or the in-process one), with its `queue_group` if it has one, and each
//! message is handed to the component's `wasmcloud:messaging/handler@0.2.0`
//! `handle-message`. The handler may publish to the message's `reply-to` without a grant.
//!
//! At most [`MAX_IN_FLIGHT`] messages per trigger are handled at once; past it the trigger
//! stops reading, so the broker's (or the in-process queue's) limits apply instead of
//! instances piling up. Each message's outcome is one log line.

use anyhow::{Result, bail};
use futures::StreamExt as _;
use std::sync::Arc;
use std::time::Duration;
use tessera_capabilities::messaging::{Broker, Message, Messaging};
use tessera_executor::{Executor, PreparedComponent};
use tokio::sync::{Semaphore, watch};

mod bindings {
    // wasmCloud's handler, from the capability crate's copy of wasmcloud:messaging@0.2.0.
    wasmtime::component::bindgen!({
        inline: "package tessera:messaging-trigger; world messaging-handler { export wasmcloud:messaging/handler@0.2.0; }",
        path: "../capabilities/wit/deps/wasmcloud-messaging",
        world: "tessera:messaging-trigger/messaging-handler",
        exports: { default: async },
    });
}

use bindings::exports::wasmcloud::messaging::handler::BrokerMessage;

/// Messages one trigger handles at once before reading pauses.
pub const MAX_IN_FLIGHT: usize = 64;
/// Wait between attempts to subscribe while the broker cannot be reached.
const RETRY: Duration = Duration::from_secs(1);

/// One `[[trigger.messaging]]`, ready to run.
struct Subscription {
    id: String,
    subject: String,
    queue_group: Option<String>,
    component: Arc<PreparedComponent>,
}

/// The messaging triggers of one app.
pub struct MessagingTrigger {
    broker: Broker,
    subscriptions: Vec<Subscription>,
}

impl MessagingTrigger {
    /// Renders each subject (variables filled in), checks it and prepares each component,
    /// checking it exports `handle-message`.
    pub fn new(executor: &Executor) -> Result<Self> {
        let app = executor.app();
        let manifest = &app.manifest;
        let broker = executor.capability::<Messaging>().broker().clone();
        let mut subscriptions = Vec::new();
        for trigger in &manifest.messaging_triggers {
            let at = format!("{}:{}:{}", manifest.path.display(), trigger.location.line, trigger.location.column);
            let subject = trigger.subject.render(app.variables.values()).map_err(|e| anyhow::anyhow!("{at}: the subject: {e}"))?;
            if let Some(why) = tessera_manifest::subjects::check(&subject, true) {
                bail!("{at}: [[trigger.messaging]] subject: {why}\n  hint: {}", tessera_manifest::subjects::HINT);
            }
            let component = executor.prepare(&trigger.component)?;
            if let Err(e) = bindings::MessagingHandlerPre::new(component.instance_pre().clone()) {
                bail!(
                    "component `{}` is used by a [[trigger.messaging]] but does not export wasmcloud:messaging/handler@0.2.0's handle-message ({e}); build it with a world that exports that interface",
                    component.id()
                );
            }
            subscriptions.push(Subscription { id: trigger.id.clone(), subject, queue_group: trigger.queue_group.clone(), component });
        }
        Ok(Self { broker, subscriptions })
    }

    /// `(broker, subject, component)` of each subscription, for printing.
    pub fn subscriptions(&self) -> Vec<(String, String, String)> {
        let broker = self.broker.describe();
        self.subscriptions.iter().map(|s| (broker.clone(), s.subject.clone(), s.component.id().to_string())).collect()
    }

    /// Whether the app has any messaging trigger.
    pub fn is_empty(&self) -> bool {
        self.subscriptions.is_empty()
    }

    /// Subscribes and handles messages until `stop` turns true, then waits for messages
    /// in flight to finish.
    pub async fn run(self, executor: Arc<Executor>, stop: watch::Receiver<bool>) {
        let runs = self.subscriptions.into_iter().map(|s| run_one(self.broker.clone(), s, executor.clone(), stop.clone()));
        futures::future::join_all(runs).await;
    }
}

/// One trigger's loop: subscribe (again, while the broker is out of reach), hand each
/// message to the component.
async fn run_one(broker: Broker, subscription: Subscription, executor: Arc<Executor>, mut stop: watch::Receiver<bool>) {
    let subscription = Arc::new(subscription);
    let in_flight = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut failures = 0u32;
    let mut messages = loop {
        match broker.subscribe(&subscription.subject, subscription.queue_group.as_deref()).await {
            Ok(m) => break m,
            Err(e) => {
                failures += 1;
                if failures == 1 || failures.is_power_of_two() {
                    tracing::warn!("messaging trigger `{}`: {e}; trying again in {RETRY:?}", subscription.id);
                }
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => {}
                    _ = stop.changed() => return,
                }
            }
        }
    };
    tracing::info!("messaging trigger `{}`: subscribed to `{}` ({})", subscription.id, subscription.subject, broker.describe());
    loop {
        let message = tokio::select! {
            m = messages.next() => m,
            _ = stop.changed() => break,
        };
        let Some(message) = message else { break };
        // Reading waits for a free slot: that is the backpressure.
        let permit = tokio::select! {
            p = in_flight.clone().acquire_owned() => p.expect("never closed"),
            _ = stop.changed() => break,
        };
        let (subscription, executor) = (subscription.clone(), executor.clone());
        tokio::spawn(async move {
            let _permit = permit;
            handle(&executor, &subscription, message).await;
        });
    }
    drop(messages);
    // Wait for the messages in flight (the host bounds the wait with shutdown_timeout).
    let _ = in_flight.acquire_many(MAX_IN_FLIGHT as u32).await;
}

/// Runs one message on the trigger's component and logs its outcome.
async fn handle(executor: &Executor, subscription: &Subscription, message: Message) {
    let started = std::time::Instant::now();
    let (size, subject) = (message.body.len(), message.subject.clone());
    let outcome = executor
        .invoke(&subscription.component, "messaging", move |store, instance| {
            Box::pin(async move {
                if let Some(reply) = &message.reply_to {
                    tessera_capabilities::messaging::allow_reply(store.data_mut(), reply.clone());
                }
                let guest = bindings::MessagingHandler::new(&mut *store, &instance)?;
                let msg = BrokerMessage { subject: message.subject, body: message.body.into(), reply_to: message.reply_to };
                guest.wasmcloud_messaging_handler().call_handle_message(&mut *store, &msg).await
            })
        })
        .await;
    crate::log_message("messaging", &subject, size, started, subscription.component.id(), outcome);
}
