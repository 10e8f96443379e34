//! Messaging for wasmCloud-style components: `wasmcloud:messaging/consumer@0.2.0`
//! (`publish`, `request`) over the app's broker, which `[[trigger.messaging]]` also reads.
//!
//! The broker is NATS when the runtime config has `[messaging] type = "nats"` and `url`,
//! and otherwise an in-process one: messages published by the app's components reach its
//! own subscriptions (with NATS's subject matching, queue groups and request-reply), so an
//! app runs with no server at all.
//!
//! A component may publish (and send requests) only to subjects its
//! `allowed_publish_subjects` patterns match, and to the reply subject of the message it is
//! handling; a refusal is the function's error and a log line naming the key to add.

use crate::{Capability, Concurrency, Grant, InstanceState};
use anyhow::Result;
use bytes::Bytes;
use futures::StreamExt as _;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tessera_app::{LoadedApp, LoadedComponent};
use tessera_manifest::{BackendTable, subjects};
use tokio::sync::{OnceCell, mpsc};
use wasmtime::component::{HasData, Linker};

/// Longest wait for the broker to take a message (NATS connected and flushed, or an
/// in-process subscriber with room in its queue).
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest body the in-process broker carries: NATS's default `max_payload`, so an app
/// behaves the same on both.
pub const MAX_LOCAL_PAYLOAD: usize = 1 << 20;
/// Messages an in-process subscription holds before publishers wait.
const LOCAL_QUEUE: usize = 256;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "tessera:host/messaging",
        imports: { default: async | trappable },
    });
}

use bindings::wasmcloud::messaging::{consumer, types};

/// One message, as both brokers carry it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The subject it was published on.
    pub subject: String,
    /// The payload.
    pub body: Bytes,
    /// Where a reply should go.
    pub reply_to: Option<String>,
}

/// Messages of one subscription, in order.
pub type Subscription = Pin<Box<dyn futures::Stream<Item = Message> + Send>>;

/// The app's broker, shared by its components and its messaging triggers.
#[derive(Clone)]
pub enum Broker {
    /// A NATS server.
    Nats(Arc<Nats>),
    /// Within this process.
    Local(Arc<LocalBroker>),
}

/// The messaging capability: the app's broker.
pub struct Messaging {
    broker: Broker,
}

impl Messaging {
    /// The app's broker.
    pub fn broker(&self) -> &Broker {
        &self.broker
    }
}

/// One component's grants and the broker.
pub struct Shared {
    component: String,
    allowed: Vec<String>,
    broker: Broker,
}

/// Messaging state of one instance: reply subjects it may publish to.
pub struct InstanceMessaging {
    shared: Arc<Shared>,
    replies: Vec<String>,
}

/// Lets the instance in `state` publish to `subject`, the reply subject of the message it
/// is handling (called by the messaging trigger).
pub fn allow_reply(state: &mut InstanceState, subject: String) {
    state.capability::<Messaging>().1.replies.push(subject);
}

impl Capability for Messaging {
    const IMPORTS: &'static [&'static str] = &["wasmcloud:messaging/consumer"];
    const NAME: &'static str = "messaging";
    const GRANT: Grant = Grant::AllowedPublishSubjects;
    type Component = Arc<Shared>;
    type Instance = InstanceMessaging;

    fn link(linker: &mut Linker<InstanceState>, _: Concurrency) -> Result<()> {
        consumer::add_to_linker::<_, Messaging>(linker, view)?;
        Ok(())
    }

    fn needs_concurrency(_: &str) -> bool {
        false
    }

    fn configure_app(app: &LoadedApp) -> Result<Self> {
        let broker = match &app.runtime_config.messaging {
            None => Broker::Local(Arc::default()),
            Some(table) => Broker::Nats(Arc::new(Nats::configure(table)?)),
        };
        Ok(Self { broker })
    }

    fn configure_component(&self, _: &LoadedApp, component: &LoadedComponent) -> Result<Arc<Shared>> {
        let allowed = component.allowed_publish_subjects.iter().map(|(s, _)| s.clone()).collect();
        Ok(Arc::new(Shared { component: component.id.clone(), allowed, broker: self.broker.clone() }))
    }

    fn instance(shared: &Arc<Shared>) -> InstanceMessaging {
        InstanceMessaging { shared: shared.clone(), replies: Vec::new() }
    }
}

impl Broker {
    /// Where messages go, for logs: `nats://127.0.0.1:4222` (without a password) or
    /// `in-process`.
    pub fn describe(&self) -> String {
        match self {
            Self::Nats(n) => n.shown.clone(),
            Self::Local(_) => "in-process".into(),
        }
    }

    /// Publishes `message`; returns once the broker has it.
    pub async fn publish(&self, message: Message) -> Result<(), String> {
        match self {
            Self::Nats(n) => n.publish(message).await,
            Self::Local(l) => l.publish(message).await.map(|_| ()),
        }
    }

    /// Publishes to `subject` with a fresh reply subject and waits up to `timeout` for
    /// the reply.
    pub async fn request(&self, subject: String, body: Bytes, timeout: Duration) -> Result<Message, String> {
        match self {
            Self::Nats(n) => n.request(subject, body, timeout).await,
            Self::Local(l) => l.request(subject, body, timeout).await,
        }
    }

    /// Subscribes to `pattern`; with a `queue_group`, each message goes to one member.
    pub async fn subscribe(&self, pattern: &str, queue_group: Option<&str>) -> Result<Subscription, String> {
        match self {
            Self::Nats(n) => n.subscribe(pattern, queue_group).await,
            Self::Local(l) => Ok(l.subscribe(pattern, queue_group, LOCAL_QUEUE)),
        }
    }
}

/// A NATS server, connected on first use and reconnected by the client after a drop
/// (subscriptions are renewed by it too).
pub struct Nats {
    /// The server address without the login.
    address: String,
    login: Option<(String, String)>,
    shown: String,
    client: OnceCell<async_nats::Client>,
    /// The last connection problem, until connected again.
    problem: Arc<Mutex<Option<String>>>,
}

impl Nats {
    fn configure(table: &BackendTable) -> Result<Self> {
        table.only_keys(&["url"])?;
        match table.kind()? {
            "nats" => {}
            other => return Err(table.error(format!("[messaging] type `{other}` is not a broker Tessera knows"), "write type = \"nats\", or remove [messaging] for the in-process broker").into()),
        }
        let Some(url) = table.string("url")? else {
            return Err(table.error("[messaging] has no `url`", "add url = \"nats://127.0.0.1:4222\"").into());
        };
        let parsed = url::Url::parse(url).ok().filter(|u| matches!(u.scheme(), "nats" | "tls") && u.host_str().is_some_and(|h| !h.is_empty()));
        let Some(mut shown) = parsed else {
            return Err(table.error(format!("[messaging] url `{url}` is not a NATS URL"), "write url = \"nats://HOST:4222\" (tls://HOST:4222 for TLS; nats://user:password@HOST:4222 to log in)").into());
        };
        let login = (!shown.username().is_empty()).then(|| (decode(shown.username()), decode(shown.password().unwrap_or(""))));
        let _ = shown.set_password(None);
        let shown_text = shown.to_string().trim_end_matches('/').to_string();
        let _ = shown.set_username("");
        let address = shown.to_string().trim_end_matches('/').to_string();
        Ok(Self { address, login, shown: shown_text, client: OnceCell::new(), problem: Arc::default() })
    }

    async fn client(&self) -> Result<&async_nats::Client, String> {
        self.client
            .get_or_try_init(|| async {
                let (shown, problem) = (self.shown.clone(), self.problem.clone());
                let tls = self.address.starts_with("tls://");
                let options = match &self.login {
                    Some((user, password)) => async_nats::ConnectOptions::with_user_and_password(user.clone(), password.clone()),
                    None => async_nats::ConnectOptions::new(),
                };
                options
                    .retry_on_initial_connect()
                    .connection_timeout(TIMEOUT)
                    .reconnect_delay_callback(|attempts| Duration::from_millis(100u64 << attempts.min(4)))
                    .event_callback(move |event| {
                        let (shown, problem) = (shown.clone(), problem.clone());
                        async move {
                            let mut problem = problem.lock().expect("not poisoned");
                            match event {
                                async_nats::Event::Connected => {
                                    tracing::info!("messaging: connected to {shown}");
                                    *problem = None;
                                }
                                async_nats::Event::Disconnected => tracing::warn!("messaging: lost {shown}; reconnecting"),
                                other => {
                                    // A refused login repeats on every attempt: said once.
                                    let text = other.to_string();
                                    if problem.as_deref() != Some(text.as_str()) {
                                        let hint = if text.contains("authorization") {
                                            " (check the user and password in [messaging] url)"
                                        } else if tls && text.contains("IO error") {
                                            // async-nats reports a failed handshake as no more than this.
                                            " (with tls://, the server's certificate must be valid for its address and signed by a CA the system trusts; SSL_CERT_FILE names a CA file to trust instead)"
                                        } else {
                                            ""
                                        };
                                        tracing::warn!("messaging: {shown}: {text}{hint}; retrying");
                                    }
                                    *problem = Some(text);
                                }
                            }
                        }
                    })
                    .connect(self.address.as_str())
                    .await
                    .map_err(|e| format!("cannot connect to {}: {e}", self.shown))
            })
            .await
    }

    /// The client once it is connected, waiting up to `wait` for a reconnection.
    async fn connected(&self, wait: Duration) -> Result<&async_nats::Client, String> {
        let client = self.client().await?;
        let deadline = tokio::time::Instant::now() + wait;
        while client.connection_state() != async_nats::connection::State::Connected {
            if tokio::time::Instant::now() >= deadline {
                let why = self.problem.lock().expect("not poisoned").as_ref().map(|p| format!(": {p}")).unwrap_or_default();
                return Err(format!("not connected to {} (waited {wait:?}){why}", self.shown));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(client)
    }

    async fn publish(&self, message: Message) -> Result<(), String> {
        let client = self.connected(TIMEOUT).await?;
        let sent = match message.reply_to {
            Some(reply) => client.publish_with_reply(message.subject, reply, message.body).await,
            None => client.publish(message.subject, message.body).await,
        };
        sent.map_err(|e| format!("cannot publish to {}: {e}", self.shown))?;
        // The server's answer to a flush means it has the message.
        match tokio::time::timeout(TIMEOUT, client.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("{} did not take the message: {e}", self.shown)),
            Err(_) => Err(format!("{} did not take the message within {TIMEOUT:?}", self.shown)),
        }
    }

    async fn request(&self, subject: String, body: Bytes, timeout: Duration) -> Result<Message, String> {
        use async_nats::RequestErrorKind;
        // Waiting for the server counts against the request's own timeout.
        let started = tokio::time::Instant::now();
        let client = self.connected(timeout.min(TIMEOUT)).await?;
        let timeout = timeout.saturating_sub(started.elapsed());
        let request = async_nats::Request::new().payload(body).timeout(Some(timeout));
        match client.send_request(subject.clone(), request).await {
            Ok(m) => Ok(Message { subject: m.subject.to_string(), body: m.payload, reply_to: m.reply.map(|r| r.to_string()) }),
            Err(e) => Err(match e.kind() {
                RequestErrorKind::NoResponders => format!("no subscriber answers requests on `{subject}`"),
                RequestErrorKind::TimedOut => format!("no reply on `{subject}` within {} ms", timeout.as_millis()),
                _ => format!("request on `{subject}` to {} failed: {e}", self.shown),
            }),
        }
    }

    async fn subscribe(&self, pattern: &str, queue_group: Option<&str>) -> Result<Subscription, String> {
        let client = self.client().await?;
        let subscriber = match queue_group {
            Some(group) => client.queue_subscribe(pattern.to_string(), group.to_string()).await,
            None => client.subscribe(pattern.to_string()).await,
        }
        .map_err(|e| format!("cannot subscribe to `{pattern}` on {}: {e}", self.shown))?;
        Ok(Box::pin(subscriber.map(|m| Message { subject: m.subject.to_string(), body: m.payload, reply_to: m.reply.map(|r| r.to_string()) })))
    }
}

/// A URL's percent-encoded user or password, decoded.
fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// The in-process broker: NATS's delivery rules over channels.
#[derive(Default)]
pub struct LocalBroker {
    subscribers: Mutex<Vec<LocalSubscriber>>,
    next: AtomicU64,
}

struct LocalSubscriber {
    pattern: String,
    queue_group: Option<String>,
    sender: mpsc::Sender<Message>,
}

impl LocalBroker {
    fn subscribe(&self, pattern: &str, queue_group: Option<&str>, capacity: usize) -> Subscription {
        let (sender, receiver) = mpsc::channel(capacity);
        let subscriber = LocalSubscriber { pattern: pattern.to_string(), queue_group: queue_group.map(String::from), sender };
        self.subscribers.lock().expect("not poisoned").push(subscriber);
        Box::pin(tokio_stream_of(receiver))
    }

    /// Delivers `message` to every matching subscriber outside queue groups and to one
    /// member of each matching group; returns how many got it.
    async fn publish(&self, message: Message) -> Result<usize, String> {
        if message.body.len() > MAX_LOCAL_PAYLOAD {
            return Err(format!("message of {} bytes is over the limit of {MAX_LOCAL_PAYLOAD} bytes", message.body.len()));
        }
        let pick = self.next.fetch_add(1, Ordering::Relaxed) as usize;
        let senders: Vec<mpsc::Sender<Message>> = {
            let mut subscribers = self.subscribers.lock().expect("not poisoned");
            subscribers.retain(|s| !s.sender.is_closed());
            let matching: Vec<&LocalSubscriber> = subscribers.iter().filter(|s| subjects::matches(&s.pattern, &message.subject)).collect();
            let mut chosen: Vec<mpsc::Sender<Message>> = matching.iter().filter(|s| s.queue_group.is_none()).map(|s| s.sender.clone()).collect();
            let mut groups: Vec<&str> = matching.iter().filter_map(|s| s.queue_group.as_deref()).collect();
            groups.sort_unstable();
            groups.dedup();
            for group in groups {
                let members: Vec<&&LocalSubscriber> = matching.iter().filter(|s| s.queue_group.as_deref() == Some(group)).collect();
                chosen.push(members[pick % members.len()].sender.clone());
            }
            chosen
        };
        for sender in &senders {
            match tokio::time::timeout(TIMEOUT, sender.send(message.clone())).await {
                Ok(_) => {}
                Err(_) => return Err(format!("a subscriber to `{}` has not taken a message for {TIMEOUT:?}", message.subject)),
            }
        }
        Ok(senders.len())
    }

    async fn request(&self, subject: String, body: Bytes, timeout: Duration) -> Result<Message, String> {
        let inbox = format!("_INBOX.local.{}", self.next.fetch_add(1, Ordering::Relaxed));
        let mut replies = self.subscribe(&inbox, None, 1);
        let delivered = self.publish(Message { subject: subject.clone(), body, reply_to: Some(inbox) }).await?;
        if delivered == 0 {
            return Err(format!("no subscriber answers requests on `{subject}`"));
        }
        match tokio::time::timeout(timeout, replies.next()).await {
            Ok(Some(reply)) => Ok(reply),
            _ => Err(format!("no reply on `{subject}` within {} ms", timeout.as_millis())),
        }
    }
}

/// A receiver as a stream.
fn tokio_stream_of(mut receiver: mpsc::Receiver<Message>) -> impl futures::Stream<Item = Message> + Send {
    futures::stream::poll_fn(move |cx| receiver.poll_recv(cx))
}

/// The host functions' view of an instance.
pub struct MessagingView<'a> {
    state: &'a mut InstanceMessaging,
}

impl HasData for Messaging {
    type Data<'a> = MessagingView<'a>;
}

fn view(s: &mut InstanceState) -> MessagingView<'_> {
    MessagingView { state: s.capability::<Messaging>().1 }
}

impl MessagingView<'_> {
    /// Whether the component may send to `subject`: a granted pattern matches it, or it is
    /// the reply subject of the message being handled.
    fn check(&self, subject: &str) -> Result<Broker, String> {
        if let Some(why) = subjects::check(subject, false) {
            return Err(format!("cannot publish: {why}"));
        }
        let shared = &self.state.shared;
        if self.state.replies.iter().any(|r| r == subject) || shared.allowed.iter().any(|p| subjects::matches(p, subject)) {
            return Ok(shared.broker.clone());
        }
        let component = &shared.component;
        tracing::warn!("component `{component}` may not publish to `{subject}`; to allow it, add \"{subject}\" (or a pattern such as \"{}\") to allowed_publish_subjects in [component.{component}]", wildcard_of(subject));
        Err(format!("publishing to `{subject}` is not permitted"))
    }
}

/// `orders.created` -> `orders.>`, a pattern to suggest.
fn wildcard_of(subject: &str) -> String {
    match subject.split_once('.') {
        Some((first, _)) => format!("{first}.>"),
        None => subject.to_string(),
    }
}

impl types::Host for MessagingView<'_> {}

impl consumer::Host for MessagingView<'_> {
    async fn request(&mut self, subject: String, body: Vec<u8>, timeout_ms: u32) -> wasmtime::Result<Result<types::BrokerMessage, String>> {
        let broker = match self.check(&subject) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        let reply = broker.request(subject, body.into(), Duration::from_millis(timeout_ms.into())).await;
        Ok(reply.map(|m| types::BrokerMessage { subject: m.subject, body: m.body.into(), reply_to: m.reply_to }))
    }

    async fn publish(&mut self, msg: types::BrokerMessage) -> wasmtime::Result<Result<(), String>> {
        let broker = match self.check(&msg.subject) {
            Ok(b) => b,
            Err(e) => return Ok(Err(e)),
        };
        if let Some(why) = msg.reply_to.as_deref().and_then(|r| subjects::check(r, false)) {
            return Ok(Err(format!("reply-to: {why}")));
        }
        Ok(broker.publish(Message { subject: msg.subject, body: msg.body.into(), reply_to: msg.reply_to }).await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(subject: &str, body: &str) -> Message {
        Message { subject: subject.into(), body: Bytes::from(body.to_string()), reply_to: None }
    }

    #[tokio::test]
    async fn the_in_process_broker_delivers_as_nats_does() {
        let broker = LocalBroker::default();
        let mut all = broker.subscribe("orders.>", None, 8);
        let mut one = broker.subscribe("orders.*", Some("workers"), 8);
        let mut two = broker.subscribe("orders.*", Some("workers"), 8);
        assert_eq!(broker.publish(message("orders.created", "a")).await, Ok(2));
        assert_eq!(broker.publish(message("orders.created", "b")).await, Ok(2));
        assert_eq!(broker.publish(message("invoices.sent", "c")).await, Ok(0));
        assert_eq!(all.next().await.unwrap().body, "a");
        assert_eq!(all.next().await.unwrap().body, "b");
        // The group's two members shared the two messages.
        let (x, y) = (one.next().await.unwrap(), two.next().await.unwrap());
        assert_ne!(x.body, y.body);
        drop(all);
        assert_eq!(broker.publish(message("orders.eu.created", "d")).await, Ok(0));
        let big = Message { subject: "orders.x".into(), body: Bytes::from(vec![0; MAX_LOCAL_PAYLOAD + 1]), reply_to: None };
        assert!(broker.publish(big).await.unwrap_err().contains("over the limit"));
    }

    #[tokio::test]
    async fn in_process_requests_get_replies_or_say_why_not() {
        let broker = Arc::new(LocalBroker::default());
        let err = broker.request("nobody.home".into(), Bytes::new(), Duration::from_millis(50)).await.unwrap_err();
        assert!(err.contains("no subscriber"), "{err}");
        let mut echo = broker.subscribe("echo", None, 8);
        let responder = broker.clone();
        tokio::spawn(async move {
            let m = echo.next().await.unwrap();
            responder.publish(Message { subject: m.reply_to.unwrap(), body: m.body, reply_to: None }).await.unwrap();
        });
        let reply = broker.request("echo".into(), Bytes::from("hi"), Duration::from_secs(5)).await.unwrap();
        assert_eq!(reply.body, "hi");
        let _silent = broker.subscribe("silent", None, 8);
        let err = broker.request("silent".into(), Bytes::new(), Duration::from_millis(50)).await.unwrap_err();
        assert!(err.contains("within 50 ms"), "{err}");
    }
}
