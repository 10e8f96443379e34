//! The outbound network check shared by every capability that connects out (HTTP, Redis,
//! `wasi:sockets`): the destination must match `allowed_outbound_hosts`, and every address
//! its name resolves to must be public unless a pattern names it. Refusals are logged with
//! the manifest key (or flag) to change.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
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

/// Addresses kept per name, at most.
const MAX_RESOLVED: usize = 4096;

/// What one component (or `tessera run`) may do with `wasi:sockets`: its allow-list, its
/// name in log lines, the advice they give, and the names it looked up, by the addresses
/// they resolved to (so a connection to such an address is checked as the name, the way
/// its grant is written).
pub struct SocketGrants {
    allowed: Arc<AllowedHosts>,
    who: Arc<str>,
    advice: SocketAdvice,
    resolved: Mutex<HashMap<IpAddr, BTreeSet<String>>>,
}

impl SocketGrants {
    /// Grants from `allowed`; `who` names the caller in logs (`component `web``).
    pub fn new(allowed: Arc<AllowedHosts>, who: Arc<str>, advice: SocketAdvice) -> Self {
        Self { allowed, who, advice, resolved: Mutex::default() }
    }

    /// Whether some `tcp://`, `udp://` or `*://` pattern names `host`, at any port.
    fn may_look_up(&self, host: &str) -> bool {
        ["tcp", "udp"].iter().any(|scheme| self.allowed.patterns().iter().any(|p| p.matches_host(scheme, host)))
    }

    /// Whether some socket pattern for `host` lets a connection reach `ip`.
    fn may_reach(&self, host: &str, ip: IpAddr) -> bool {
        let patterns = self.allowed.patterns();
        ["tcp", "udp"].iter().any(|scheme| {
            patterns.iter().any(|p| p.matches_host(scheme, host) && (!tessera_manifest::allowed_hosts::is_restricted(ip) || p.names_address(ip)))
        })
    }

    fn names_of(&self, ip: IpAddr) -> Vec<String> {
        self.resolved.lock().expect("not poisoned").get(&ip).map(|n| n.iter().cloned().collect()).unwrap_or_default()
    }
}

/// Who may resolve names through `wasi:sockets/ip-name-lookup` in an instance.
#[derive(Clone)]
pub enum NameLookups {
    /// Only names some socket grant allows (an app's components, `tessera run
    /// --allow-outbound`).
    Granted(Arc<SocketGrants>),
    /// Any name (`tessera run --inherit-network`).
    Any,
}

/// Why a lookup was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupError {
    /// Not a domain name or an IP address.
    InvalidArgument,
    /// No grant names it, or it resolves only to non-public addresses no grant names.
    AccessDenied,
    /// The resolver does not know it.
    NameUnresolvable,
}

/// Resolves `name` if `lookups` allows it, returning the addresses a connection may then
/// reach (non-public ones only when a pattern names them). An IP address is returned as
/// it is, as wasmtime does: the connection is checked anyway.
pub async fn look_up(lookups: Option<&NameLookups>, name: &str) -> Result<Vec<IpAddr>, LookupError> {
    let domain = match url::Host::parse(name) {
        Ok(url::Host::Domain(domain)) => domain,
        Ok(url::Host::Ipv4(ip)) => return Ok(vec![IpAddr::V4(ip)]),
        Ok(url::Host::Ipv6(ip)) => return Ok(vec![IpAddr::V6(ip)]),
        Err(_) => match name.parse::<std::net::Ipv6Addr>() {
            Ok(ip) => return Ok(vec![IpAddr::V6(ip)]),
            Err(_) => return Err(LookupError::InvalidArgument),
        },
    };
    let grants = match lookups {
        Some(NameLookups::Any) => None,
        Some(NameLookups::Granted(grants)) if grants.may_look_up(&domain) => Some(grants),
        Some(NameLookups::Granted(grants)) => {
            tracing::warn!("{} may not look up `{domain}`; {}", grants.who, (grants.advice)(&format!("tcp://{domain}:PORT")));
            return Err(LookupError::AccessDenied);
        }
        None => {
            tracing::warn!("an instance with no TCP or UDP grant tried to look up `{domain}`; to allow it, add \"tcp://{domain}:PORT\" (the port it connects to) to allowed_outbound_hosts");
            return Err(LookupError::AccessDenied);
        }
    };
    let found: Vec<IpAddr> = match tokio::net::lookup_host((domain.as_str(), 0)).await {
        Ok(addrs) => addrs.map(|a| a.ip().to_canonical()).collect(),
        Err(_) => return Err(LookupError::NameUnresolvable),
    };
    let Some(grants) = grants else { return Ok(found) };
    let reachable: Vec<IpAddr> = found.iter().copied().filter(|ip| grants.may_reach(&domain, *ip)).collect();
    if reachable.is_empty() {
        if let Some(ip) = found.first() {
            tracing::warn!(
                "{} may not reach `{domain}`: it resolves to the non-public address {ip}; {}",
                grants.who,
                (grants.advice)(&format!("tcp://{}:PORT", display_ip(*ip)))
            );
            return Err(LookupError::AccessDenied);
        }
        return Err(LookupError::NameUnresolvable);
    }
    let mut resolved = grants.resolved.lock().expect("not poisoned");
    if resolved.len() + reachable.len() > MAX_RESOLVED {
        resolved.clear();
    }
    for ip in &reachable {
        resolved.entry(*ip).or_default().insert(domain.clone());
    }
    Ok(reachable)
}

/// A `wasi:sockets` address check, as Spin grants sockets: TCP connects and UDP sends go
/// only to addresses `grants` matches as `tcp://IP:PORT` or `udp://IP:PORT`, or as the name
/// they were looked up by (loopback, private and link-local ones only when a pattern names
/// them); binding is allowed only to the unspecified address with an ephemeral port (what
/// connecting and sending do first); listening and accepting are refused. Each refusal is
/// logged with the grants' advice.
pub fn socket_check(grants: Arc<SocketGrants>) -> impl Fn(SocketAddr, SocketAddrUse) -> Pin<Box<dyn Future<Output = bool> + Send + Sync>> + Send + Sync + 'static {
    move |addr, use_| {
        let grants = grants.clone();
        Box::pin(async move {
            let who = &grants.who;
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
            let by_address = grants.allowed.check_address(scheme, &ip.to_string(), addr.port(), ip);
            if by_address.is_ok() || grants.names_of(ip).iter().any(|name| grants.allowed.check_address(scheme, name, addr.port(), ip).is_ok()) {
                return true;
            }
            match by_address {
                Err(Refusal::RestrictedAddress(_)) => {
                    tracing::warn!("{who} may not connect to {target}, a non-public address no pattern names; {}", (grants.advice)(&target));
                }
                _ => tracing::warn!("{who} may not connect to {target}; {}", (grants.advice)(&target)),
            }
            false
        })
    }
}
