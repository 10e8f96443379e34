//! Outbound HTTP (`wasi:http/outgoing-handler` 0.2 and `wasi:http/client` 0.3), allowed
//! only to hosts matching the component's `allowed_outbound_hosts`. Names are resolved
//! here and every address checked: private, loopback and link-local addresses need a
//! pattern that names them. Plain HTTP connects to the address that was checked, so a
//! second DNS answer cannot redirect it.
//!
//! Service chaining (Spin's SIP 017): a request to `http://<id>.spin.internal` goes to
//! component `id`, and one to a relative URL (or `http://self.alt/...`) to the app's own
//! routes, in process through [`LocalServices`] (the HTTP entry point), never a socket.
//! The callee runs with its own grants. Each hop nests one level deeper; past
//! `max_chain_depth` a request fails with `loop-detected`, so a component calling itself
//! cannot take every instance slot.

use crate::{Concurrency, InstanceState};
use anyhow::Result;
use http::uri::Scheme;
use crate::network::{Denied, OutboundPolicy, display_ip};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, Weak};
use futures::future::BoxFuture;
use tessera_app::LoadedComponent;
use wasmtime::component::Linker;
use wasmtime_wasi_http::{Error, RequestOptions, WasiBody, WasiHttpHooks, WasiHttpView};

/// Links the outbound (and types) parts of `wasi:http` 0.2 and 0.3.
pub fn link(linker: &mut Linker<InstanceState>, concurrency: Concurrency) -> Result<()> {
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(linker)?;
    link_relative_urls(linker)?;
    if concurrency == Concurrency::On {
        wasmtime_wasi_http::p3::add_to_linker(linker)?;
    }
    Ok(())
}

/// The WASI 0.2 `outgoing-handler` wasmtime-wasi-http defines (newer 0.2 imports resolve to it).
const OUTGOING_HANDLER_P2: &str = "wasi:http/outgoing-handler@0.2.12";

/// Redefines WASI 0.2 `outgoing-handler.handle` to take relative URLs: wasmtime-wasi-http
/// cannot build a URI without an authority, so a request without one goes to `self.alt`,
/// which [`local_target`] reads as the app's own routes (as Spin does).
fn link_relative_urls(linker: &mut Linker<InstanceState>) -> Result<()> {
    use wasmtime::component::Resource;
    use wasmtime_wasi_http::p2::bindings::http::outgoing_handler::Host as _;
    use wasmtime_wasi_http::p2::bindings::http::types::{ErrorCode, RequestOptions};
    use wasmtime_wasi_http::p2::types::{HostFutureIncomingResponse, HostOutgoingRequest};
    type Args = (Resource<HostOutgoingRequest>, Option<Resource<RequestOptions>>);
    type Returns = (Result<Resource<HostFutureIncomingResponse>, ErrorCode>,);
    linker.allow_shadowing(true);
    let defined = linker.instance(OUTGOING_HANDLER_P2)?.func_wrap(
        "handle",
        |mut store: wasmtime::StoreContextMut<'_, InstanceState>, (request, options): Args| -> wasmtime::Result<Returns> {
            let mut http = store.data_mut().http();
            if let Ok(outgoing) = http.table.get_mut(&request)
                && outgoing.authority.is_none()
            {
                outgoing.authority = Some("self.alt".into());
            }
            match http.handle(request, options) {
                Ok(response) => Ok((Ok(response),)),
                Err(e) => Ok((Err(e.downcast()?),)),
            }
        },
    );
    linker.allow_shadowing(false);
    defined?;
    Ok(())
}

/// Interfaces that send requests out, allowed only to `allowed_outbound_hosts`.
pub const IMPORTS: &[&str] = &["wasi:http/outgoing-handler", "wasi:http/client", "fermyon:spin/http"];

/// `wasi:http` 0.3 needs the concurrent engine.
pub fn needs_concurrency(interface: &str) -> bool {
    interface.starts_with("wasi:http/") && interface.contains("@0.3")
}

/// Where a service-chaining request goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalTarget {
    /// `http://<id>.spin.internal`: component `id`, whatever its route.
    Component(String),
    /// A relative URL or `http://self.alt`: the app's routes, as a client would be routed.
    App,
}

/// Why a service-chaining request got no response.
pub type LocalResult = Result<http::Response<WasiBody>, Error>;

/// The app's own HTTP components, reached in process (set by the HTTP entry point).
pub trait LocalServices: Send + Sync + 'static {
    /// Serves `request` on `target`, as the callee with its own grants.
    fn serve(self: Arc<Self>, target: LocalTarget, request: http::Request<WasiBody>) -> BoxFuture<'static, LocalResult>;
}

/// Where the app's [`LocalServices`] are, once its HTTP entry point exists. Weak: the
/// entry point owns the components whose instances hold this.
pub type LocalServicesSlot = Arc<OnceLock<Weak<dyn LocalServices>>>;

/// How many service-chaining hops led to a request, in the extensions of the request a
/// [`LocalServices`] is given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainDepth(pub u32);

/// A component's outbound policy.
pub struct ComponentState {
    policy: Arc<Policy>,
}

struct Policy {
    network: OutboundPolicy,
    max_requests: u32,
    local: LocalServicesSlot,
    max_chain_depth: u32,
    /// Requests every instance of the component asked to send (metrics).
    asked: Arc<AtomicU64>,
}

impl ComponentState {
    /// Takes the rendered `allowed_outbound_hosts`; chained requests go to `local`.
    pub fn configure(component: &LoadedComponent, local: LocalServicesSlot, max_chain_depth: u32) -> Self {
        Self {
            policy: Arc::new(Policy {
                network: OutboundPolicy::of(component),
                max_requests: component.limits.max_outbound_requests,
                local,
                max_chain_depth,
                asked: Arc::default(),
            }),
        }
    }

    /// Counts the requests the component's instances asked to send.
    pub(crate) fn requests_asked(&self) -> Arc<AtomicU64> {
        self.policy.asked.clone()
    }

    /// Hooks for one instance.
    pub fn instance(&self) -> InstanceHooks {
        InstanceHooks {
            policy: self.policy.clone(),
            sent: 0,
            depth: 0,
        }
    }
}

/// The `wasi:http` hooks of one instance.
pub struct InstanceHooks {
    policy: Arc<Policy>,
    /// Requests sent so far, against `max_outbound_requests`.
    sent: u32,
    /// Service-chaining hops that led to this instance.
    depth: u32,
}

impl InstanceHooks {
    /// Records that this instance serves a chained request (see [`ChainDepth`]).
    pub fn set_chain_depth(&mut self, depth: ChainDepth) {
        self.depth = depth.0;
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
        policy.asked.fetch_add(1, Ordering::Relaxed);
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
        if let Some(target) = local_target(request.uri()) {
            let depth = self.depth + 1;
            return Box::new(tracing::Instrument::in_current_span(async move {
                let response = policy.chain(target, request, depth).await?;
                Ok((response, Box::new(async { Ok(()) }) as Box<dyn Future<Output = _> + Send>))
            }));
        }
        // A client span per request, its context sent on (`traceparent`); the future runs
        // in a task of its own, inside it.
        // Its attributes are recorded only while traces are exported, so log lines inside
        // it stay as they were.
        let span = tracing::info_span!(
            "outbound_http.send_request",
            "otel.name" = tracing::field::Empty,
            "otel.kind" = tracing::field::Empty,
            "http.request.method" = tracing::field::Empty,
            "url.full" = tracing::field::Empty,
            "http.response.status_code" = tracing::field::Empty,
        );
        let traced = crate::trace_context::is_on();
        if traced {
            span.record("otel.name", format!("{} {}", request.method(), request.uri().host().unwrap_or("")));
            span.record("otel.kind", "client");
            span.record("http.request.method", request.method().as_str());
            span.record("url.full", request.uri().to_string());
        }
        let mut request = request;
        crate::trace_context::inject(&span, request.headers_mut());
        let recorded = span.clone();
        Box::new(tracing::Instrument::instrument(async move {
            let request = policy.admit(request).await?;
            let (response, io) = wasmtime_wasi_http::default_send_request(request, options).await?;
            if traced {
                recorded.record("http.response.status_code", response.status().as_u16());
            }
            Ok((
                response.map(http_body_util::BodyExt::boxed_unsync),
                Box::new(io) as Box<dyn Future<Output = _> + Send>,
            ))
        }, span))
    }
}

/// Whether `uri` is a service-chaining request, and to where. A relative URL arrives
/// with an empty host (WASI 0.2) or none.
fn local_target(uri: &http::Uri) -> Option<LocalTarget> {
    let host = uri.host().unwrap_or("");
    if host.is_empty() || host.eq_ignore_ascii_case("self.alt") {
        return Some(LocalTarget::App);
    }
    tessera_manifest::allowed_hosts::chaining_target(host).map(|id| LocalTarget::Component(id.to_ascii_lowercase()))
}

impl Policy {
    /// Sends a service-chaining request in process, if the allow-list and the depth let it.
    async fn chain(&self, target: LocalTarget, mut request: http::Request<WasiBody>, depth: u32) -> LocalResult {
        let component = &self.network.component;
        let allowed = match &target {
            LocalTarget::App => self.network.allowed.allows_self(),
            LocalTarget::Component(id) => {
                let scheme = request.uri().scheme_str().unwrap_or("http");
                let port = request.uri().port_u16().unwrap_or(if scheme == "https" { 443 } else { 80 });
                self.network.allowed.check_name(scheme, &format!("{id}.spin.internal"), port).is_ok()
            }
        };
        if !allowed {
            let pattern = match &target {
                LocalTarget::App => "http://self".to_string(),
                LocalTarget::Component(id) => format!("http://{id}.spin.internal"),
            };
            tracing::warn!(
                "component `{component}` may not call {pattern} (service chaining); to allow it, add \"{pattern}\" to allowed_outbound_hosts in [component.{component}]"
            );
            return Err(Error::HttpRequestDenied);
        }
        if depth > self.max_chain_depth {
            tracing::warn!(
                "component `{component}`'s request is the {depth}th service-chaining hop in a row, over max_chain_depth ({}); refused as a loop (raise max_chain_depth in the runtime config if the chain is meant to be this deep)",
                self.max_chain_depth
            );
            return Err(Error::LoopDetected);
        }
        let Some(services) = self.local.get().and_then(Weak::upgrade) else {
            tracing::warn!("component `{component}` called another component (service chaining), but this app serves no HTTP components");
            return Err(Error::DestinationNotFound);
        };
        request.extensions_mut().insert(ChainDepth(depth));
        services.serve(target, request).await
    }

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
