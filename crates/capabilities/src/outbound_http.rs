//! Outbound HTTP (`wasi:http/outgoing-handler` 0.2 and `wasi:http/client` 0.3), allowed
//! only to hosts matching the component's `allowed_outbound_hosts`. Names are resolved
//! here and every address checked: private, loopback and link-local addresses need a
//! pattern that names them. Plain HTTP connects to the address that was checked, so a
//! second DNS answer cannot redirect it.

use crate::{Concurrency, InstanceState};
use anyhow::Result;
use http::uri::Scheme;
use crate::network::{Denied, OutboundPolicy, display_ip};
use std::net::IpAddr;
use std::sync::Arc;
use tessera_app::LoadedComponent;
use wasmtime::component::Linker;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks};

/// Links the outbound (and types) parts of `wasi:http` 0.2 and 0.3.
pub fn link(linker: &mut Linker<InstanceState>, concurrency: Concurrency) -> Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    if concurrency == Concurrency::On {
        wasmtime_wasi_http::p3::add_to_linker(linker)?;
    }
    Ok(())
}

/// Interfaces that send requests out, allowed only to `allowed_outbound_hosts`.
pub const IMPORTS: &[&str] = &["wasi:http/outgoing-handler", "wasi:http/client", "fermyon:spin/http"];

/// `wasi:http` 0.3 needs the concurrent engine.
pub fn needs_concurrency(interface: &str) -> bool {
    interface.starts_with("wasi:http/") && interface.contains("@0.3")
}

/// A component's outbound policy.
pub struct ComponentState {
    policy: Arc<Policy>,
}

struct Policy {
    network: OutboundPolicy,
    max_requests: u32,
}

impl ComponentState {
    /// Takes the rendered `allowed_outbound_hosts`.
    pub fn configure(component: &LoadedComponent) -> Self {
        Self {
            policy: Arc::new(Policy {
                network: OutboundPolicy::of(component),
                max_requests: component.limits.max_outbound_requests,
            }),
        }
    }

    /// Hooks for one instance.
    pub fn instance(&self) -> InstanceHooks {
        InstanceHooks {
            policy: self.policy.clone(),
            sent: 0,
        }
    }
}

/// The `wasi:http` hooks of one instance.
pub struct InstanceHooks {
    policy: Arc<Policy>,
    /// Requests sent so far, against `max_outbound_requests`.
    sent: u32,
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
        self.sent = self.sent.saturating_add(1);
        if self.sent > policy.max_requests {
            // Logged once; the guest gets the same refusal for every further request.
            if self.sent == policy.max_requests + 1 {
                let component = &policy.network.component;
                tracing::warn!(
                    "component `{component}` made more than max_outbound_requests ({}) outbound requests; further ones are refused (raise max_outbound_requests in the runtime config, globally or under [component.{component}])",
                    policy.max_requests
                );
            }
            return Box::new(async { Err(Error::HttpRequestDenied) });
        }
        // The future runs in a task of its own: keep the invocation's span for its logs.
        Box::new(tracing::Instrument::in_current_span(async move {
            let request = policy.admit(request).await?;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            Ok((
                response.map(http_body_util::BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        }))
    }
}

impl Policy {
    /// Checks the request against the allow-list and the resolved addresses; returns the
    /// request to send (for plain HTTP, addressed to the checked IP).
    async fn admit(
        &self,
        mut request: http::Request<WasiBody>,
    ) -> Result<http::Request<WasiBody>, Error> {
        let uri = request.uri().clone();
        let scheme = uri.scheme().cloned().unwrap_or(Scheme::HTTPS);
        let Some(host) = uri.host() else {
            return Err(Error::HttpRequestUriInvalid);
        };
        let default_port = if scheme == Scheme::HTTPS { 443 } else { 80 };
        let port = uri.port_u16().unwrap_or(default_port);
        let addr = match self.network.resolve(scheme.as_str(), host, port).await {
            Ok(addr) => addr,
            Err(Denied::NotAllowed) => return Err(Error::HttpRequestDenied),
            Err(Denied::Restricted(_)) => return Err(Error::DestinationIpProhibited),
            Err(Denied::Unresolved) => {
                return Err(Error::DnsError { rcode: Some("address not available".into()), info_code: None });
            }
        };
        if scheme == Scheme::HTTP && host.parse::<IpAddr>().is_err() {
            // Connect to the address just checked; the Host header keeps the name.
            let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
            let pinned = format!("http://{}:{}{path}", display_ip(addr.ip()), addr.port());
            if !request.headers().contains_key(http::header::HOST) {
                let host_header = uri.authority().map(|a| a.as_str().to_string()).unwrap_or(host.to_string());
                if let Ok(v) = http::HeaderValue::from_str(&host_header) {
                    request.headers_mut().insert(http::header::HOST, v);
                }
            }
            *request.uri_mut() = pinned.parse().map_err(|_| Error::HttpRequestUriInvalid)?;
        }
        Ok(request)
    }
}
