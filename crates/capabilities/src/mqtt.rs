//! Outbound MQTT: `fermyon:spin/mqtt@2.0.0` and `spin:mqtt/mqtt@3.0.0`.
//!
//! `open(address, username, password, keep-alive)` takes `mqtt://HOST:PORT?client_id=ID`
//! (`mqtts://` for TLS with the system's roots; ports default to 1883 and 8883). The
//! address must match the component's `allowed_outbound_hosts` (`"mqtt://HOST:PORT"`); the
//! host is resolved and checked like any outbound connection, and a plain connection goes
//! to the checked address (TLS keeps the name, which the certificate must match). A
//! refusal is `connection-failed("address … is not permitted")`, as in Spin, and the log
//! names the key to add.
//!
//! Each `open` is one broker session, as in Spin, but connected before `open` returns: an
//! unreachable broker or a refused login is the open's `connection-failed`. A `client_id`
//! left out is made unique (Spin refuses such an address). A publish waits for the
//! acknowledgement of its QoS (none for 0, PUBACK for 1, PUBCOMP for 2); a session the
//! broker dropped (a restart, an idle keep-alive) reconnects once within the publish.

use crate::network::{Denied, OutboundPolicy};
use crate::{Capability, Concurrency, Grant, InstanceState};
use anyhow::Result;
use rumqttc::{AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions, Outgoing, QoS};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tessera_app::{LoadedApp, LoadedComponent};
use wasmtime::component::{Accessor, HasData, Linker, Resource, ResourceTable};

/// Longest wait for the broker: to connect, or to acknowledge a publish.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Largest payload a publish may carry (Spin has no limit of its own; brokers' defaults
/// are far higher, and the guest's memory limit bounds it anyway).
pub const MAX_PAYLOAD: usize = 16 << 20;
/// Broker sessions one instance may hold open at once; past it `open` is
/// `too-many-connections`.
pub const MAX_CONNECTIONS: usize = 16;

mod bindings {
    wasmtime::component::bindgen!({
        path: "wit",
        world: "tessera:host/mqtt",
        imports: {
            "spin:mqtt/mqtt": async | store | trappable,
            default: async | trappable,
        },
        with: {
            "fermyon:spin/mqtt.connection": super::Connection,
            "spin:mqtt/mqtt.connection": super::Connection,
        },
    });
}

use bindings::fermyon::spin::mqtt as v2;
use bindings::spin::mqtt::mqtt as v3;

/// The outbound MQTT capability (no app-wide state: each component has its policy).
pub struct Mqtt;

/// One component's allow-list.
pub struct Shared {
    policy: OutboundPolicy,
}

/// MQTT state of one instance: how many sessions it holds open.
pub struct InstanceMqtt {
    shared: Arc<Shared>,
    open: usize,
}

impl Capability for Mqtt {
    const IMPORTS: &'static [&'static str] = &["spin:mqtt/", "fermyon:spin/mqtt"];
    const NAME: &'static str = "mqtt";
    const GRANT: Grant = Grant::AllowedOutboundHosts;
    type Component = Arc<Shared>;
    type Instance = InstanceMqtt;

    fn link(linker: &mut Linker<InstanceState>, concurrency: Concurrency) -> Result<()> {
        v2::add_to_linker::<_, Mqtt>(linker, view)?;
        if concurrency == Concurrency::On {
            v3::add_to_linker::<_, Mqtt>(linker, view)?;
        }
        Ok(())
    }

    /// `spin:mqtt` 3.x has async functions.
    fn needs_concurrency(interface: &str) -> bool {
        interface.starts_with("spin:mqtt/")
    }

    fn configure_app(_: &LoadedApp) -> Result<Self> {
        Ok(Self)
    }

    fn configure_component(&self, _: &LoadedApp, component: &LoadedComponent) -> Result<Arc<Shared>> {
        Ok(Arc::new(Shared { policy: OutboundPolicy::of(component) }))
    }

    fn instance(shared: &Arc<Shared>) -> InstanceMqtt {
        InstanceMqtt { shared: shared.clone(), open: 0 }
    }
}

/// An open session handed to the guest.
pub struct Connection(Arc<Session>);

/// One broker session: the client half sends requests, the event loop (driven only while
/// a call waits) does the network work.
struct Session {
    client: AsyncClient,
    events: tokio::sync::Mutex<EventLoop>,
    target: String,
}

/// Errors common to both interface versions.
enum MqttError {
    InvalidAddress,
    TooManyConnections,
    ConnectionFailed(String),
    Other(String),
}

/// Where a guest's address points, read as rumqttc reads MQTT URLs.
#[derive(Debug)]
struct Address {
    tls: bool,
    host: String,
    port: u16,
    client_id: Option<String>,
}

impl Address {
    fn parse(address: &str) -> Option<Self> {
        let url = url::Url::parse(address).ok()?;
        let (tls, default_port) = match url.scheme() {
            "mqtt" | "tcp" => (false, 1883),
            "mqtts" | "ssl" => (true, 8883),
            _ => return None,
        };
        let host = url.host_str().filter(|h| !h.is_empty())?.trim_start_matches('[').trim_end_matches(']').to_string();
        let client_id = url.query_pairs().find(|(k, _)| k == "client_id").map(|(_, v)| v.into_owned()).filter(|v| !v.is_empty());
        Some(Self { tls, host, port: url.port().unwrap_or(default_port), client_id })
    }

    /// The scheme grants are written with.
    fn scheme(&self) -> &'static str {
        if self.tls { "mqtts" } else { "mqtt" }
    }
}

/// A client id for an address that names none: unique in this process, and a random
/// part per process so that replicas (each perhaps pid 1 in its container) differ.
fn fresh_client_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    static PROCESS: OnceLock<u32> = OnceLock::new();
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let process = PROCESS.get_or_init(|| std::collections::hash_map::RandomState::new().build_hasher().finish() as u32);
    format!("tessera-{process:08x}-{}", NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Session options for a broker the host itself connects to (the MQTT trigger's, from the
/// manifest, not checked against any component's grants): `address` as `open` reads it.
pub fn broker_options(address: &str, username: &str, password: &str, keep_alive_secs: u16) -> Result<MqttOptions, String> {
    let parsed = Address::parse(address).ok_or_else(|| format!("`{address}` is not an MQTT address (mqtt://HOST:PORT, or mqtts:// for TLS)"))?;
    let (host, port) = (parsed.host.clone(), parsed.port);
    session_options(&parsed, host, port, username, password, keep_alive_secs).map_err(|_| "TLS is unavailable on this host".to_string())
}

/// The options of one session to `broker:port` for `parsed` (its client id, or a fresh
/// one; TLS for `mqtts://`); shared by guest sessions and the trigger's.
fn session_options(parsed: &Address, broker: String, port: u16, username: &str, password: &str, keep_alive_secs: u16) -> Result<MqttOptions, MqttError> {
    let client_id = parsed.client_id.clone().unwrap_or_else(fresh_client_id);
    let mut options = MqttOptions::new(client_id, broker, port);
    options.set_keep_alive(Duration::from_secs(keep_alive_secs.into()));
    options.set_max_packet_size(MAX_PAYLOAD + 64 * 1024, MAX_PAYLOAD + 64 * 1024);
    if !username.is_empty() || !password.is_empty() {
        options.set_credentials(username, password);
    }
    if parsed.tls {
        options.set_transport(rumqttc::Transport::tls_with_config(rumqttc::TlsConfiguration::Rustls(tls_config()?)));
    }
    Ok(options)
}

/// The TLS settings of `mqtts://` sessions: the system's roots, made once.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, MqttError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let mut roots = rustls::RootCertStore::empty();
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
            let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_root_certificates(roots)
                .with_no_client_auth();
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(|e| MqttError::Other(format!("TLS is unavailable: {e}")))
}

/// Checks `address` against the allow-list, then connects and waits for the broker's
/// CONNACK.
async fn open(shared: &Shared, address: &str, username: &str, password: &str, keep_alive_secs: u64) -> Result<Session, MqttError> {
    let parsed = Address::parse(address).ok_or(MqttError::InvalidAddress)?;
    let checked = match shared.policy.resolve(parsed.scheme(), &parsed.host, parsed.port).await {
        Ok(a) => a,
        Err(Denied::NotAllowed | Denied::Restricted(_)) => {
            return Err(MqttError::ConnectionFailed(format!("address {address} is not permitted")));
        }
        Err(Denied::Unresolved) => return Err(MqttError::ConnectionFailed(format!("cannot resolve {}", parsed.host))),
    };
    let keep_alive = u16::try_from(keep_alive_secs)
        .map_err(|_| MqttError::Other(format!("keep-alive interval {keep_alive_secs}s is over MQTT's limit of 65535s")))?;
    // TLS verifies the name, so it keeps it (checked above); plain TCP goes to the checked IP.
    let broker = if parsed.tls { parsed.host.clone() } else { checked.ip().to_string() };
    let options = session_options(&parsed, broker, checked.port(), username, password, keep_alive)?;
    let target = format!("{}://{}:{}", parsed.scheme(), parsed.host, parsed.port);
    let (client, mut events) = AsyncClient::new(options, 8);
    let connected = tokio::time::timeout(TIMEOUT, async {
        loop {
            match events.poll().await? {
                Event::Incoming(Incoming::ConnAck(_)) => return Ok(()),
                _ => continue,
            }
        }
    })
    .await;
    match connected {
        Ok(Ok(())) => {
            tracing::debug!("MQTT session opened to {target}");
            Ok(Session { client, events: tokio::sync::Mutex::new(events), target })
        }
        Ok(Err(e)) => Err(MqttError::ConnectionFailed(connect_failure(&target, e))),
        Err(_) => Err(MqttError::ConnectionFailed(format!("{target} did not accept the connection within {TIMEOUT:?}"))),
    }
}

fn connect_failure(target: &str, e: ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => format!("{target} refused the session: {code:?}"),
        e => format!("cannot connect to {target}: {e}"),
    }
}

impl Session {
    /// Publishes and waits for the acknowledgement `qos` asks for.
    #[tracing::instrument(name = "mqtt.publish", level = "info", skip_all, fields(otel.kind = "producer", messaging.system = "mqtt", messaging.destination.name = %topic))]
    async fn publish(&self, topic: String, payload: Vec<u8>, qos: QoS) -> Result<(), MqttError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(MqttError::Other(format!("payload of {} bytes is over the limit of {MAX_PAYLOAD} bytes", payload.len())));
        }
        if topic.is_empty() || topic.contains(['+', '#']) {
            let why = if topic.is_empty() { "it is empty" } else { "wildcards (+, #) are for subscribing" };
            return Err(MqttError::Other(format!("`{topic}` is not a topic to publish to: {why}")));
        }
        // Waits for the event loop first, so requests and acknowledgements pair up in order.
        let mut events = self.events.lock().await;
        if let Err(e) = self.client.publish(topic, qos, false, payload).await {
            return Err(MqttError::Other(format!("cannot publish to {}: {e}", self.target)));
        }
        let mut reconnected = false;
        let acknowledged = tokio::time::timeout(TIMEOUT, async {
            loop {
                match events.poll().await {
                    Ok(Event::Outgoing(Outgoing::Publish(_))) if qos == QoS::AtMostOnce => return Ok(()),
                    Ok(Event::Incoming(Incoming::PubAck(_))) if qos == QoS::AtLeastOnce => return Ok(()),
                    Ok(Event::Incoming(Incoming::PubComp(_))) if qos == QoS::ExactlyOnce => return Ok(()),
                    Ok(_) => {}
                    // The next poll reconnects and sends the publish again.
                    Err(e) if !reconnected => {
                        tracing::debug!("MQTT session to {} dropped ({e}); reconnecting", self.target);
                        reconnected = true;
                    }
                    Err(e) => return Err(e),
                }
            }
        })
        .await;
        match acknowledged {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(MqttError::ConnectionFailed(connect_failure(&self.target, e))),
            Err(_) => Err(MqttError::ConnectionFailed(format!("{} did not acknowledge the publish within {TIMEOUT:?}", self.target))),
        }
    }
}

/// The host functions' view of an instance.
pub struct MqttView<'a> {
    table: &'a mut ResourceTable,
    state: &'a mut InstanceMqtt,
}

impl HasData for Mqtt {
    type Data<'a> = MqttView<'a>;
}

fn view(s: &mut InstanceState) -> MqttView<'_> {
    let (table, state) = s.capability::<Mqtt>();
    MqttView { table, state }
}

impl MqttView<'_> {
    /// Takes a session slot, or says there is none left.
    fn reserve(&mut self) -> Result<Arc<Shared>, MqttError> {
        if self.state.open >= MAX_CONNECTIONS {
            tracing::warn!("an instance tried to hold more than {MAX_CONNECTIONS} MQTT sessions at once; refused (close connections it no longer uses)");
            return Err(MqttError::TooManyConnections);
        }
        self.state.open += 1;
        Ok(self.state.shared.clone())
    }

    /// Stores an opened session, or gives its slot back.
    fn opened(&mut self, session: Result<Session, MqttError>) -> wasmtime::Result<Result<Resource<Connection>, MqttError>> {
        match session {
            Ok(s) => Ok(Ok(self.table.push(Connection(Arc::new(s)))?)),
            Err(e) => {
                self.state.open -= 1;
                Ok(Err(e))
            }
        }
    }

    fn session(&self, c: &Resource<Connection>) -> wasmtime::Result<Arc<Session>> {
        Ok(self.table.get(c)?.0.clone())
    }

    fn close(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.table.delete(c)?;
        self.state.open -= 1;
        Ok(())
    }
}

// Both interface versions have the same shapes under different type names.
macro_rules! host_impl {
    ($m:ident, $err:ident, $qos:ident) => {
        fn $err(e: MqttError) -> $m::Error {
            match e {
                MqttError::InvalidAddress => $m::Error::InvalidAddress,
                MqttError::TooManyConnections => $m::Error::TooManyConnections,
                MqttError::ConnectionFailed(m) => $m::Error::ConnectionFailed(m),
                MqttError::Other(m) => $m::Error::Other(m),
            }
        }

        fn $qos(q: $m::Qos) -> QoS {
            match q {
                $m::Qos::AtMostOnce => QoS::AtMostOnce,
                $m::Qos::AtLeastOnce => QoS::AtLeastOnce,
                $m::Qos::ExactlyOnce => QoS::ExactlyOnce,
            }
        }
    };
}

host_impl!(v2, v2_err, v2_qos);
host_impl!(v3, v3_err, v3_qos);

impl v2::Host for MqttView<'_> {}

impl v2::HostConnection for MqttView<'_> {
    async fn open(
        &mut self,
        address: String,
        username: String,
        password: String,
        keep_alive_secs: u64,
    ) -> wasmtime::Result<Result<Resource<Connection>, v2::Error>> {
        let shared = match self.reserve() {
            Ok(s) => s,
            Err(e) => return Ok(Err(v2_err(e))),
        };
        let session = open(&shared, &address, &username, &password, keep_alive_secs).await;
        Ok(self.opened(session)?.map_err(v2_err))
    }
    async fn publish(&mut self, c: Resource<Connection>, topic: String, payload: Vec<u8>, qos: v2::Qos) -> wasmtime::Result<Result<(), v2::Error>> {
        Ok(self.session(&c)?.publish(topic, payload, v2_qos(qos)).await.map_err(v2_err))
    }
    async fn drop(&mut self, c: Resource<Connection>) -> wasmtime::Result<()> {
        self.close(c)
    }
}

impl v3::Host for MqttView<'_> {}
impl v3::HostConnection for MqttView<'_> {}

impl<T> v3::HostConnectionWithStore<T> for Mqtt {
    async fn open(
        accessor: &Accessor<T, Self>,
        address: String,
        username: String,
        password: String,
        keep_alive_secs: u64,
    ) -> wasmtime::Result<Result<Resource<Connection>, v3::Error>> {
        let shared = match accessor.with(|mut access| access.get().reserve()) {
            Ok(s) => s,
            Err(e) => return Ok(Err(v3_err(e))),
        };
        let session = open(&shared, &address, &username, &password, keep_alive_secs).await;
        Ok(accessor.with(|mut access| access.get().opened(session))?.map_err(v3_err))
    }
    async fn publish(accessor: &Accessor<T, Self>, c: Resource<Connection>, topic: String, payload: Vec<u8>, qos: v3::Qos) -> wasmtime::Result<Result<(), v3::Error>> {
        let session = accessor.with(|mut access| access.get().session(&c))?;
        Ok(session.publish(topic, payload, v3_qos(qos)).await.map_err(v3_err))
    }
    async fn drop(accessor: &Accessor<T, Self>, c: Resource<Connection>) -> wasmtime::Result<()> {
        accessor.with(|mut access| access.get().close(c))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_read_as_mqtt_urls() {
        let a = Address::parse("mqtt://broker.internal:1884?client_id=pets").unwrap();
        assert_eq!((a.tls, a.host.as_str(), a.port, a.client_id.as_deref()), (false, "broker.internal", 1884, Some("pets")));
        let a = Address::parse("mqtts://[::1]").unwrap();
        assert_eq!((a.scheme(), a.host.as_str(), a.port, a.client_id), ("mqtts", "::1", 8883, None));
        assert_eq!(Address::parse("tcp://127.0.0.1").unwrap().port, 1883);
        assert!(Address::parse("http://x:1").is_none());
        assert!(Address::parse("mqtt://").is_none());
        assert!(Address::parse("not a url").is_none());
        assert_ne!(fresh_client_id(), fresh_client_id());
    }
}
