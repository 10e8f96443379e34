//! The outbound network check shared by every capability that connects out (HTTP, Redis,
//! `wasi:sockets`): the destination must match `allowed_outbound_hosts`, and every address
//! its name resolves to must be public unless a pattern names it. Refusals are logged with
//! the manifest key (or flag) to change.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use tessera_manifest::allowed_hosts::{AllowedHosts, Refusal};
use wasmtime_wasi::sockets::SocketAddrUse;

/// Why a connection was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Denied {
    /// No pattern matches the scheme, host and port.
    NotAllowed,
    /// The name resolves to a private, loopback or link-local address no pattern names.
    Restricted(IpAddr),
    /// The name does not resolve.
    Unresolved,
}

/// One component's allow-list, with its id for log lines.
pub(crate) struct OutboundPolicy {
    pub component: String,
    pub allowed: AllowedHosts,
}

impl OutboundPolicy {
    /// `component`'s rendered `allowed_outbound_hosts`.
    pub fn of(component: &tessera_app::LoadedComponent) -> Self {
        Self { component: component.id.clone(), allowed: component.allowed_outbound_hosts.clone() }
    }

    /// Checks `scheme://host:port` and returns the address to connect to (one that was
    /// checked, so a later DNS answer cannot change it).
    pub async fn resolve(&self, scheme: &str, host: &str, port: u16) -> Result<SocketAddr, Denied> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let shown_host = if host.contains(':') { format!("[{host}]") } else { host.to_string() };
        let target = format!("{scheme}://{shown_host}:{port}");
        let component = &self.component;
        if self.allowed.check_name(scheme, host, port).is_err() {
            tracing::warn!(
                "component `{component}` may not connect to {target}; to allow it, add \"{target}\" to allowed_outbound_hosts in [component.{component}]"
            );
            return Err(Denied::NotAllowed);
        }
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => match tokio::net::lookup_host((host, port)).await {
                Ok(a) => a.collect(),
                Err(_) => return Err(Denied::Unresolved),
            },
        };
        let mut chosen = None;
        for addr in &addrs {
            match self.allowed.check_address(scheme, host, port, addr.ip()) {
                Ok(()) => {
                    chosen.get_or_insert(*addr);
                }
                Err(Refusal::RestrictedAddress(ip)) => {
                    tracing::warn!(
                        "component `{component}` may not reach {target}: it resolves to the non-public address {ip}; to allow it, name the address in allowed_outbound_hosts of [component.{component}], e.g. \"{scheme}://{}:{port}\"",
                        display_ip(ip)
                    );
                    return Err(Denied::Restricted(ip));
                }
                Err(Refusal::NotAllowed) => return Err(Denied::NotAllowed),
            }
        }
        chosen.ok_or(Denied::Unresolved)
    }
}

/// An IP as it appears in a URL (IPv6 in brackets).
pub fn display_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

/// Whether `allowed` grants any TCP or UDP destination (a `tcp://`, `udp://` or `*://`
/// pattern), so `wasi:sockets` is switched on behind [`socket_check`].
pub fn grants_sockets(allowed: &AllowedHosts) -> bool {
    allowed.patterns().iter().any(|p| p.allows_scheme("tcp") || p.allows_scheme("udp"))
}

/// How a refused socket's log line says what to change, given the destination as a
/// pattern (`tcp://127.0.0.1:6379`): the manifest key for an app, the flag for a command.
pub type SocketAdvice = Arc<dyn Fn(&str) -> String + Send + Sync>;

/// A `wasi:sockets` address check, as Spin grants sockets: TCP connects and UDP sends go
/// only to addresses `allowed` matches as `tcp://IP:PORT` or `udp://IP:PORT` (loopback,
/// private and link-local ones only when a pattern names them); binding is allowed only to
/// the unspecified address with an ephemeral port (what connecting and sending do first);
/// listening and accepting are refused. Each refusal is logged with `advice`.
pub fn socket_check(
    allowed: Arc<AllowedHosts>,
    who: Arc<str>,
    advice: SocketAdvice,
) -> impl Fn(SocketAddr, SocketAddrUse) -> Pin<Box<dyn Future<Output = bool> + Send + Sync>> + Send + Sync + 'static {
    move |addr, use_| {
        let (allowed, who, advice) = (allowed.clone(), who.clone(), advice.clone());
        Box::pin(async move {
            let scheme = match use_ {
                SocketAddrUse::TcpConnect => "tcp",
                SocketAddrUse::UdpSend | SocketAddrUse::UdpReceive => "udp",
                SocketAddrUse::TcpBind | SocketAddrUse::UdpBind => return addr.ip().is_unspecified() && addr.port() == 0,
                SocketAddrUse::TcpListen | SocketAddrUse::TcpAccept => {
                    tracing::warn!("{who} may not listen on {addr}: listening sockets are refused");
                    return false;
                }
            };
            let ip = addr.ip().to_canonical();
            let target = format!("{scheme}://{}:{}", display_ip(ip), addr.port());
            match allowed.check_address(scheme, &ip.to_string(), addr.port(), ip) {
                Ok(()) => true,
                Err(Refusal::NotAllowed) => {
                    tracing::warn!("{who} may not connect to {target}; {}", advice(&target));
                    false
                }
                Err(Refusal::RestrictedAddress(_)) => {
                    tracing::warn!("{who} may not connect to {target}, a non-public address no pattern names; {}", advice(&target));
                    false
                }
            }
        })
    }
}
