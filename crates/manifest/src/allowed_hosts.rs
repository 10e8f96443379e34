//! `allowed_outbound_hosts` patterns, in Spin's syntax: `scheme://host[:port]`.
//!
//! - scheme: a name (`https`, `redis`, ...) or `*`;
//! - host: a name, `*.` followed by a domain (its subdomains), `*`, an IP address
//!   (`127.0.0.1`, `[::1]`) or an IP network (`10.0.0.0/8`);
//! - port: a number, a range `8000..8010` (end excluded, as in Spin), or `*`; optional only
//!   for `http` (80) and `https` (443).
//!
//! Private, loopback and link-local addresses are reachable only through a pattern that
//! names them: an IP or network pattern containing the address, or the host `localhost`.

use ipnet::IpNet;
use std::fmt;
use std::net::IpAddr;

/// One parsed `allowed_outbound_hosts` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    scheme: Option<String>,
    host: HostPattern,
    port: PortPattern,
    raw: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Any,
    Subdomains(String),
    Name(String),
    Network(IpNet),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PortPattern {
    Any,
    Range(u16, u16),
}

impl AllowedHost {
    /// Parses one pattern; the error says what is wrong and how to write it.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (scheme, rest) = raw.split_once("://").ok_or_else(|| {
            format!("`{raw}` has no scheme: write it as `https://{raw}` (or `*://{raw}:*` for any scheme)")
        })?;
        if scheme.is_empty()
            || !(scheme == "*"
                || scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.')))
        {
            return Err(format!("`{raw}` has an invalid scheme `{scheme}`"));
        }
        let scheme = (scheme != "*").then(|| scheme.to_ascii_lowercase());
        let authority = match rest.split_once('/') {
            Some((authority, "")) => authority,
            // An IP network: `10.0.0.0/8` or `10.0.0.0/8:port`.
            Some((_, after))
                if after
                    .split(':')
                    .next()
                    .is_some_and(|len| !len.is_empty() && len.len() <= 3 && len.bytes().all(|b| b.is_ascii_digit())) =>
            {
                rest
            }
            Some(_) => {
                return Err(format!(
                    "`{raw}` has a path: allowed_outbound_hosts entries name a scheme, host and port only"
                ));
            }
            None => rest,
        };
        let (host, port) = split_host_port(authority)
            .ok_or_else(|| format!("`{raw}` has an invalid host or port"))?;
        let host = parse_host(host).map_err(|e| format!("`{raw}`: {e}"))?;
        let port = match port {
            Some("*") => PortPattern::Any,
            Some(p) => parse_port(p).map_err(|e| format!("`{raw}`: {e}"))?,
            None => match scheme.as_deref() {
                Some("http") => PortPattern::Range(80, 80),
                Some("https") => PortPattern::Range(443, 443),
                _ => {
                    return Err(format!(
                        "`{raw}` needs a port: only http and https have a default (write `{raw}:*` for any port)"
                    ));
                }
            },
        };
        Ok(Self {
            scheme,
            host,
            port,
            raw: raw.to_string(),
        })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.raw
    }

    /// Whether the pattern may match `scheme` (a pattern with `*` for its scheme matches all).
    pub fn allows_scheme(&self, scheme: &str) -> bool {
        self.scheme.as_deref().is_none_or(|s| s.eq_ignore_ascii_case(scheme))
    }

    /// Whether a request to `scheme://host:port` matches this pattern (names only, no DNS).
    pub fn matches(&self, scheme: &str, host: &str, port: u16) -> bool {
        if let Some(s) = &self.scheme
            && !s.eq_ignore_ascii_case(scheme)
        {
            return false;
        }
        let in_port = match self.port {
            PortPattern::Any => true,
            PortPattern::Range(lo, hi) => (lo..=hi).contains(&port),
        };
        if !in_port {
            return false;
        }
        self.host_matches(host, true)
    }

    /// Whether the host part matches `host`; an IP network only when `addresses`.
    fn host_matches(&self, host: &str, addresses: bool) -> bool {
        let host = normalize_host(host);
        match &self.host {
            HostPattern::Any => true,
            HostPattern::Name(name) => *name == host,
            HostPattern::Subdomains(domain) => host
                .strip_suffix(domain.as_str())
                .is_some_and(|prefix| prefix.ends_with('.') && prefix.len() > 1),
            HostPattern::Network(net) => addresses && host.parse::<IpAddr>().is_ok_and(|ip| net.contains(&ip.to_canonical())),
        }
    }

    /// Whether the pattern names `host` (a name, not an address) for `scheme`, at any port:
    /// the check of a name lookup, before a port is known.
    pub fn matches_host(&self, scheme: &str, host: &str) -> bool {
        self.allows_scheme(scheme) && self.host_matches(host, false)
    }

    /// The component a service-chaining pattern names: `x` for `http://x.spin.internal`,
    /// `*` for `http://*.spin.internal`.
    pub fn chaining_target(&self) -> Option<&str> {
        match &self.host {
            HostPattern::Name(name) => chaining_target(name),
            HostPattern::Subdomains(domain) if domain == CHAINING_DOMAIN => Some("*"),
            _ => None,
        }
    }

    /// Whether this pattern allows requests to the app itself (`http://self`, or any host).
    fn allows_self(&self) -> bool {
        let scheme_fits = self.scheme.as_deref().is_none_or(|s| s == "http" || s == "https");
        let host_fits = match &self.host {
            HostPattern::Any => true,
            HostPattern::Name(name) => name == "self",
            _ => false,
        };
        scheme_fits && host_fits
    }

    /// Whether this pattern names `ip` explicitly, which a private, loopback or link-local
    /// address needs before it may be reached.
    pub fn names_address(&self, ip: IpAddr) -> bool {
        match &self.host {
            HostPattern::Network(net) => net.contains(&ip.to_canonical()),
            HostPattern::Name(name) => name == "localhost" && ip.is_loopback(),
            HostPattern::Any | HostPattern::Subdomains(_) => false,
        }
    }
}

impl fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

/// A component's whole `allowed_outbound_hosts` list; empty means no outbound access.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AllowedHosts {
    patterns: Vec<AllowedHost>,
}

/// Why an outbound connection is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// No pattern matches the scheme, host and port.
    NotAllowed,
    /// A pattern matches the name, but the address is private, loopback or link-local and
    /// no pattern names it.
    RestrictedAddress(IpAddr),
}

impl AllowedHosts {
    /// Parses every pattern.
    pub fn parse<S: AsRef<str>>(patterns: &[S]) -> Result<Self, String> {
        let patterns = patterns
            .iter()
            .map(|p| AllowedHost::parse(p.as_ref()))
            .collect::<Result<_, _>>()?;
        Ok(Self { patterns })
    }

    /// The parsed patterns.
    pub fn patterns(&self) -> &[AllowedHost] {
        &self.patterns
    }

    /// Whether requests to the app's own routes (a relative URL, or `http://self.alt/...`)
    /// are allowed: a pattern `http://self` or `https://self` (or one allowing any host).
    pub fn allows_self(&self) -> bool {
        self.patterns.iter().any(AllowedHost::allows_self)
    }

    /// Checks a request by name only (before DNS).
    pub fn check_name(&self, scheme: &str, host: &str, port: u16) -> Result<(), Refusal> {
        if self.patterns.iter().any(|p| p.matches(scheme, host, port)) {
            Ok(())
        } else {
            Err(Refusal::NotAllowed)
        }
    }

    /// Checks an address a name resolved to: restricted addresses need a pattern that
    /// matches the request and names the address.
    pub fn check_address(
        &self,
        scheme: &str,
        host: &str,
        port: u16,
        ip: IpAddr,
    ) -> Result<(), Refusal> {
        self.check_name(scheme, host, port)?;
        if !is_restricted(ip)
            || self
                .patterns
                .iter()
                .any(|p| p.matches(scheme, host, port) && p.names_address(ip))
        {
            Ok(())
        } else {
            Err(Refusal::RestrictedAddress(ip))
        }
    }
}

/// The domain of service chaining: `http://<component-id>.spin.internal`.
pub const CHAINING_DOMAIN: &str = "spin.internal";

/// The component id a service-chaining host names (`x` for `x.spin.internal`).
pub fn chaining_target(host: &str) -> Option<&str> {
    let (id, domain) = host.split_once('.')?;
    (domain.eq_ignore_ascii_case(CHAINING_DOMAIN) && !id.is_empty()).then_some(id)
}

/// Loopback, private, link-local, unspecified and other non-public addresses.
pub fn is_restricted(ip: IpAddr) -> bool {
    match ip.to_canonical() {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || o[0] == 0
                || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10, carrier-grade NAT
                || (o[0] == 192 && o[1] == 0 && o[2] == 0) // 192.0.0.0/24, IETF protocol assignments
                || (o[0] == 198 && (o[1] & 0xfe) == 18) // 198.18.0.0/15, benchmarking
                || o[0] >= 240 // 240.0.0.0/4, reserved
        }
        IpAddr::V6(v6) => {
            let s = v6.segments();
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local
                || (s[0] & 0xffc0) == 0xfe80 // link-local
                || (s[0] == 0x64 && s[1] == 0xff9b) // NAT64 can reach IPv4 internals
                || s[..6] == [0; 6] // IPv4-compatible ::a.b.c.d (deprecated)
                || (s[0] == 0x2002 && is_restricted(IpAddr::V4(std::net::Ipv4Addr::new((s[1] >> 8) as u8, s[1] as u8, (s[2] >> 8) as u8, s[2] as u8)))) // 6to4 of an internal IPv4
        }
    }
}

fn normalize_host(host: &str) -> String {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    // A CIDR's `/` is inside the host: `10.0.0.0/8:*`.
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port))),
        Some(_) => None,
        None => Some((authority, None)),
    }
}

fn parse_host(host: &str) -> Result<HostPattern, String> {
    if host.is_empty() {
        return Err("the host is empty".into());
    }
    if host == "*" {
        return Ok(HostPattern::Any);
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Ok(HostPattern::Network(IpNet::from(ip.to_canonical())));
    }
    if host.contains('/') {
        let net = host
            .parse::<IpNet>()
            .map_err(|_| format!("`{host}` is not a valid IP network such as 10.0.0.0/8"))?;
        return Ok(HostPattern::Network(net.trunc()));
    }
    let (wild, name) = match host.strip_prefix("*.") {
        Some(domain) => (true, domain),
        None => (false, host),
    };
    let valid = !name.is_empty()
        && name.split('.').all(|label| {
            !label.is_empty()
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
        });
    if !valid {
        return Err(format!(
            "`{host}` is not a host name, `*.domain`, `*`, an IP address or an IP network"
        ));
    }
    let name = normalize_host(name);
    Ok(if wild {
        HostPattern::Subdomains(name)
    } else {
        HostPattern::Name(name)
    })
}

fn parse_port(p: &str) -> Result<PortPattern, String> {
    let num = |s: &str| {
        s.parse::<u16>()
            .map_err(|_| format!("`{p}` is not a port: use a number, `a..b` or `*`"))
    };
    match p.split_once("..") {
        Some((lo, hi)) => {
            let (lo, hi) = (num(lo)?, num(hi)?);
            if lo >= hi {
                return Err(format!("the port range `{p}` is empty"));
            }
            Ok(PortPattern::Range(lo, hi - 1))
        }
        None => {
            let n = num(p)?;
            Ok(PortPattern::Range(n, n))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(p: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(p).unwrap()
    }

    #[test]
    fn service_chaining_patterns_name_components_and_self() {
        let p = |raw: &str| AllowedHost::parse(raw).unwrap();
        assert_eq!(p("http://backend.spin.internal").chaining_target(), Some("backend"));
        assert_eq!(p("http://*.spin.internal").chaining_target(), Some("*"));
        assert_eq!(p("http://spin.internal").chaining_target(), None);
        assert_eq!(p("https://api.example.com").chaining_target(), None);
        assert_eq!(chaining_target("a.spin.internal"), Some("a"));
        assert_eq!(chaining_target("a.b.spin.internal"), None);
        assert!(hosts(&["http://self"]).allows_self());
        assert!(hosts(&["https://self"]).allows_self());
        assert!(hosts(&["*://*:*"]).allows_self());
        assert!(!hosts(&["redis://self:6379"]).allows_self());
        assert!(!hosts(&["http://backend.spin.internal", "https://example.com"]).allows_self());
        let wildcard = hosts(&["http://*.spin.internal"]);
        assert!(wildcard.check_name("http", "backend.spin.internal", 80).is_ok());
        assert!(wildcard.check_name("http", "spin.internal", 80).is_err());
    }

    #[test]
    fn default_ports_for_http_and_https() {
        let h = hosts(&["https://example.com", "http://example.org"]);
        assert!(h.check_name("https", "example.com", 443).is_ok());
        assert!(h.check_name("https", "EXAMPLE.com.", 443).is_ok());
        assert!(h.check_name("https", "example.com", 8443).is_err());
        assert!(h.check_name("http", "example.com", 80).is_err());
        assert!(h.check_name("http", "example.org", 80).is_ok());
    }

    #[test]
    fn wildcards() {
        let h = hosts(&["https://*.example.com", "*://any.org:*"]);
        assert!(h.check_name("https", "api.example.com", 443).is_ok());
        assert!(h.check_name("https", "a.b.example.com", 443).is_ok());
        assert!(h.check_name("https", "example.com", 443).is_err());
        assert!(h.check_name("https", "badexample.com", 443).is_err());
        assert!(h.check_name("redis", "any.org", 6379).is_ok());
        assert!(hosts(&["*://*:*"]).check_name("http", "x.y", 1).is_ok());
    }

    #[test]
    fn port_ranges_exclude_the_end() {
        let h = hosts(&["http://h:8000..8002"]);
        assert!(h.check_name("http", "h", 8001).is_ok());
        assert!(h.check_name("http", "h", 8002).is_err());
    }

    #[test]
    fn restricted_addresses_need_an_explicit_pattern() {
        let any = hosts(&["*://*:*"]);
        let lo = "127.0.0.1".parse().unwrap();
        let meta = "169.254.169.254".parse().unwrap();
        let public = "93.184.216.34".parse().unwrap();
        assert_eq!(
            any.check_address("http", "evil.test", 80, lo),
            Err(Refusal::RestrictedAddress(lo))
        );
        assert!(any.check_address("http", "evil.test", 80, meta).is_err());
        assert!(any.check_address("http", "ok.test", 80, public).is_ok());
        let mapped = "::ffff:127.0.0.1".parse().unwrap();
        assert!(any.check_address("http", "x", 80, mapped).is_err());

        let explicit = hosts(&["http://127.0.0.1:*", "http://localhost:8080"]);
        assert!(explicit.check_address("http", "127.0.0.1", 9, lo).is_ok());
        assert!(explicit.check_address("http", "localhost", 8080, lo).is_ok());
        let v6 = hosts(&["http://[::1]:80"]);
        assert!(v6.check_address("http", "[::1]", 80, "::1".parse().unwrap()).is_ok());
        let net = hosts(&["*://10.0.0.0/8:*"]);
        assert!(net.check_address("tcp", "10.1.2.3", 5, "10.1.2.3".parse().unwrap()).is_ok());
    }

    #[test]
    fn bad_patterns_say_why() {
        let err = |p: &str| AllowedHost::parse(p).unwrap_err();
        assert!(err("example.com").contains("no scheme"));
        assert!(err("https://example.com/path").contains("path"));
        assert!(err("redis://example.com").contains("needs a port"));
        assert!(err("https://exa mple.com").contains("not a host name"));
        assert!(err("http://h:99999").contains("not a port"));
        assert!(err("http://h:9..9").contains("empty"));
    }
}
