//! Outbound HTTP (`wasi:http/outgoing-handler` 0.2 and `wasi:http/client` 0.3), allowed
//! only to hosts matching the component's `allowed_outbound_hosts`. Names are resolved
//! here and every address checked: private, loopback and link-local addresses need a
//! pattern that names them. Plain HTTP connects to the address that was checked, so a
//! second DNS answer cannot redirect it.

use crate::InstanceState;
use anyhow::Result;
use http::uri::Scheme;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use tessera_app::LoadedComponent;
use tessera_manifest::allowed_hosts::{AllowedHosts, Refusal};
use wasmtime::component::Linker;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Links the outbound (and types) parts of `wasi:http` 0.2 and 0.3.
pub fn link(linker: &mut Linker<InstanceState>) -> Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    wasmtime_wasi_http::p3::add_to_linker(linker)?;
    Ok(())
}

/// A component's outbound policy.
pub struct ComponentState {
    policy: Arc<Policy>,
}

struct Policy {
    component: String,
    allowed: AllowedHosts,
}

impl ComponentState {
    /// Takes the rendered `allowed_outbound_hosts`.
    pub fn configure(component: &LoadedComponent) -> Self {
        Self {
            policy: Arc::new(Policy {
                component: component.id.clone(),
                allowed: component.allowed_outbound_hosts.clone(),
            }),
        }
    }

    /// Hooks for one instance.
    pub fn instance(&self, request_id: u64) -> InstanceHooks {
        InstanceHooks {
            policy: self.policy.clone(),
            request_id,
        }
    }
}

/// The `wasi:http` hooks of one instance.
pub struct InstanceHooks {
    policy: Arc<Policy>,
    request_id: u64,
}

impl InstanceHooks {
    /// Sets the request id used in log lines.
    pub fn set_request_id(&mut self, id: u64) {
        self.request_id = id;
    }
}

type SendResult = Result<
    (
        http::Response<WasiBody>,
        Box<dyn Future<Output = Result<(), Error>> + Send>,
    ),
    Error,
>;

impl WasiHttpHooks for InstanceHooks {
    fn send_request(
        &mut self,
        request: http::Request<WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = SendResult> + Send> {
        let policy = self.policy.clone();
        let request_id = self.request_id;
        Box::new(async move {
            let request = policy.admit(request, request_id).await?;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(http_body_util::BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        })
    }
}

impl Policy {
    /// Checks the request against the allow-list and the resolved addresses; returns the
    /// request to send (for plain HTTP, addressed to the checked IP).
    async fn admit(
        &self,
        mut request: http::Request<WasiBody>,
        request_id: u64,
    ) -> Result<http::Request<WasiBody>, Error> {
        let uri = request.uri().clone();
        let scheme = uri.scheme().cloned().unwrap_or(Scheme::HTTPS);
        let Some(host) = uri.host() else {
            return Err(Error::HttpRequestUriInvalid);
        };
        let host = host.trim_start_matches('[').trim_end_matches(']').to_string();
        let default_port = if scheme == Scheme::HTTPS { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default_port);
        let target = format!("{scheme}://{}:{port}", uri.host().unwrap_or_default());
        if self.allowed.check_name(scheme.as_str(), &host, port).is_err() {
            tracing::warn!(
                "request {request_id}: component `{}` may not send HTTP requests to {target}; to allow it, add \"{}\" to allowed_outbound_hosts in [component.{}]",
                self.component, pattern_for(&scheme, &uri), self.component
            );
            return Err(Error::HttpRequestDenied);
        }
        let addrs: Vec<SocketAddr> = match host.parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => match tokio::net::lookup_host((host.as_str(), port)).await {
                Ok(a) => a.collect(),
                Err(_) => {
                    return Err(Error::DnsError {
                        rcode: Some("address not available".into()),
                        info_code: None,
                    });
                }
            },
        };
        let mut chosen = None;
        for addr in &addrs {
            match self.allowed.check_address(scheme.as_str(), &host, port, addr.ip()) {
                Ok(()) => {
                    chosen.get_or_insert(*addr);
                }
                Err(Refusal::RestrictedAddress(ip)) => {
                    tracing::warn!(
                        "request {request_id}: component `{}` may not reach {target}: it resolves to the non-public address {ip}; to allow it, name the address in allowed_outbound_hosts of [component.{}], e.g. \"{scheme}://{}:{port}\"",
                        self.component, self.component, display_ip(ip)
                    );
                    return Err(Error::DestinationIpProhibited);
                }
                Err(Refusal::NotAllowed) => return Err(Error::HttpRequestDenied),
            }
        }
        let Some(addr) = chosen else {
            return Err(Error::DestinationNotFound);
        };
        if scheme == Scheme::HTTP && host.parse::<IpAddr>().is_err() {
            // Connect to the address just checked; the Host header keeps the name.
            let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let pinned = format!("http://{}:{}{path}", display_ip(addr.ip()), addr.port());
            if !request.headers().contains_key(http::header::HOST) {
                let host_header = uri.authority().map(|a| a.as_str().to_string()).unwrap_or(host.clone());
                if let Ok(v) = http::HeaderValue::from_str(&host_header) {
                    request.headers_mut().insert(http::header::HOST, v);
                }
            }
            *request.uri_mut() = pinned.parse().map_err(|_| Error::HttpRequestUriInvalid)?;
        }
        Ok(request)
    }
}

fn display_ip(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

fn pattern_for(scheme: &Scheme, uri: &http::Uri) -> String {
    match uri.port_u16() {
        Some(p) => format!("{scheme}://{}:{p}", uri.host().unwrap_or_default()),
        None => format!("{scheme}://{}", uri.host().unwrap_or_default()),
    }
}
