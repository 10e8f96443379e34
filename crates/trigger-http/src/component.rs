//! One component ready to serve: its pre-instantiated `wasi:http` handler and the
//! per-request instance lifecycle (a fresh store per request, never reused).
//!
//! A WASI 0.2 component on the engine without concurrency is called straight through
//! `incoming-handler.handle`; everything else goes through wasmtime-wasi-http's
//! `ProxyHandler`, which needs the concurrent engine.

use anyhow::{Context as _, Result, bail};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::Poll;
use std::time::{Duration, Instant};
use tessera_capabilities::{Concurrency, InstanceState};
use tessera_executor::PreparedComponent;
use wasmtime::component::{Component, GuestTaskId};
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, InstantiationError, Proxy, ProxyHandler, ProxyPre, ShouldAccept,
    WorkerExpiration, WorkerState, WorkerStatus,
};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

/// What the request path shares with the instance serving it.
pub struct RequestData {
    /// The request id shown to the client and in logs.
    pub id: u64,
    /// Peak bytes of memories and tables, for the access log.
    pub peak_memory: Arc<AtomicU64>,
    /// Set when the instance trapped, hit a limit or timed out, before its store (and so
    /// the sending end of its response body) is dropped: the body then ends in an error
    /// instead of looking complete.
    pub failed: Arc<AtomicBool>,
    /// The request's invocation span, for what the instance logs.
    pub span: tracing::Span,
}

/// A component ready to serve requests.
pub struct ServedComponent {
    handler: ProxyHandler<ComponentHandler>,
    /// Whether requests call the WASI 0.2 handler directly (see the module docs).
    direct: bool,
}

impl ServedComponent {
    /// Checks `prepared` exports a `wasi:http` handler and readies it to serve.
    pub fn new(prepared: Arc<PreparedComponent>) -> Result<Self> {
        let id = prepared.id().to_string();
        check_http_export(prepared.component(), &id)?;
        let pre = prepared.instance_pre().clone();
        let proxy = match wasmtime_wasi_http::p3::bindings::ServicePre::new(pre.clone()) {
            Ok(p3) => ProxyPre::P3(p3),
            Err(_) => ProxyPre::P2(
                wasmtime_wasi_http::p2::bindings::ProxyPre::new(pre)
                    .map_err(anyhow::Error::from)
                    .with_context(|| format!("component `{id}` has no usable wasi:http handler export"))?,
            ),
        };
        // `ProxyHandler` runs guests inside `run_concurrent`, which only the concurrent
        // engine has; on the plain engine the component is WASI 0.2 and called directly.
        let direct = matches!(proxy, ProxyPre::P2(_)) && prepared.concurrency() == Concurrency::Off;
        Ok(Self { direct, handler: ProxyHandler::new(ComponentHandler { proxy, prepared }) })
    }

    /// The span of request `id` on this component.
    pub fn span(&self, id: u64) -> tracing::Span {
        self.handler.state().prepared.span("http", id)
    }

    /// Creates a fresh instance exactly as a request gets one, serving nothing: what the
    /// instantiation benchmark measures. Dropping it frees the instance's pool slot.
    pub async fn instantiate_idle(&self) -> Result<IdleInstance> {
        let (store, _proxy) = self.handler.state().new_instance().await.map_err(anyhow::Error::from)?;
        Ok(IdleInstance { _store: store })
    }

    /// Runs one request on a fresh instance.
    pub async fn handle(
        &self,
        data: RequestData,
        request: wasmtime_wasi_http::handler::Request,
    ) -> Result<wasmtime_wasi_http::handler::Response, wasmtime::Error> {
        if self.direct {
            return self.handle_direct(data, request).await;
        }
        self.handler.handle(data, request).await
    }

    /// One request on a fresh instance of a WASI 0.2 component, without `ProxyHandler`:
    /// the guest runs in its own task, which answers through the response outparam and
    /// may go on writing the body after that.
    async fn handle_direct(
        &self,
        data: RequestData,
        request: wasmtime_wasi_http::handler::Request,
    ) -> Result<wasmtime_wasi_http::handler::Response, wasmtime::Error> {
        let state = self.handler.state();
        let (mut store, proxy) = match state.new_instance().await {
            Ok((store, Proxy::P2(proxy))) => (store, proxy),
            Ok(_) => unreachable!("a direct component is pre-instantiated as WASI 0.2"),
            Err(error) => {
                return Err(InstantiationError { request_data: data, request: Mutex::new(request), error: Arc::new(error) }.into());
            }
        };
        let failed_flag = data.failed.clone();
        store.data_mut().publish_peak_memory(data.peak_memory);
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut http = store.data_mut().http();
        let incoming = http.new_incoming_request(Scheme::Http, request)?;
        let outparam = http.new_response_outparam(tx)?;
        let lifetime = state.prepared.limits().timeout + EXPIRY_GRACE;
        let prepared = state.prepared.clone();
        let guest = tokio::task::spawn(tracing::Instrument::instrument(async move {
            let call = proxy.wasi_http_incoming_handler().call_handle(&mut store, incoming, outparam);
            let (result, timed_out) = match tokio::time::timeout(lifetime, call).await {
                Ok(result) => (result, false),
                Err(_) => (Err(wasmtime::format_err!("stopped at its deadline")), true),
            };
            let failed = result.is_err();
            failed_flag.store(failed, Ordering::Relaxed);
            prepared.report(result, store.data(), timed_out);
            failed
        }, data.span));
        match rx.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(wasmtime::format_err!("the component answered with an error: {code:?}")),
            // The outparam was dropped unset: the guest returned or trapped without answering.
            Err(_) => match guest.await {
                Ok(true) => Err(wasmtime::format_err!("the component trapped or failed before answering")),
                Ok(false) => Err(wasmtime::format_err!("the component returned without setting a response")),
                Err(join) => Err(wasmtime::format_err!("the component's task failed: {join}")),
            },
        }
    }
}

/// An instance that has served nothing (see [`ServedComponent::instantiate_idle`]).
pub struct IdleInstance {
    _store: Store<InstanceState>,
}

fn check_http_export(component: &Component, id: &str) -> Result<()> {
    let ty = component.component_type();
    let exports: Vec<String> = ty.exports(component.engine()).map(|(name, _)| name.to_string()).collect();
    let serves = exports.iter().any(|e| {
        e.starts_with("wasi:http/incoming-handler@0.2.") || e == "wasi:http/handler@0.3.0"
    });
    if !serves {
        let list = if exports.is_empty() { "nothing".to_string() } else { exports.join(", ") };
        bail!(
            "component `{id}` exports neither wasi:http/incoming-handler@0.2.x nor wasi:http/handler@0.3.0 (it exports {list}); \
             build it as an HTTP component (e.g. with the Spin SDK or `wasi::http::proxy::export!`)"
        );
    }
    Ok(())
}

struct ComponentHandler {
    proxy: ProxyPre<InstanceState>,
    prepared: Arc<PreparedComponent>,
}

impl HandlerState for ComponentHandler {
    type StoreData = InstanceState;
    type WorkerExpiration = Expiration;
    type WorkerState = OneRequest;

    async fn instantiate(&self) -> wasmtime::Result<Instance<InstanceState, Expiration, OneRequest>> {
        let (store, proxy) = self.new_instance().await?;
        let expired = Arc::new(AtomicBool::new(false));
        Ok(Instance {
            store,
            proxy,
            view: WasiHttpView::http,
            expiration: Expiration {
                timeout: self.prepared.limits().timeout,
                sleep: Box::pin(tokio::time::sleep(Duration::MAX / 4)),
                expired: expired.clone(),
            },
            state: OneRequest {
                prepared: self.prepared.clone(),
                expired,
                request: Mutex::new(None),
            },
        })
    }
}

impl ComponentHandler {
    /// A fresh store and instance: the whole per-request instantiation cost.
    async fn new_instance(&self) -> wasmtime::Result<(Store<InstanceState>, wasmtime_wasi_http::handler::Proxy)> {
        let mut store = self.prepared.store().map_err(wasmtime::Error::from_anyhow)?;
        let proxy = self.proxy.instantiate_async(&mut store).await?;
        Ok((store, proxy))
    }
}

/// How long an instance outlives its request's deadline, so the client gets a clear 504
/// before the instance is torn down.
const EXPIRY_GRACE: Duration = Duration::from_millis(250);

/// Ends an instance once its request has run for `timeout` (or right after it finishes).
struct Expiration {
    timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// Set when the instance is ended at its deadline while still serving.
    expired: Arc<AtomicBool>,
}

impl WorkerExpiration for Expiration {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        let (timeout, busy) = match status {
            // Instances are never reused: an idle one is done.
            WorkerStatus::Idle => (Duration::ZERO, false),
            // The request path answers 504 at `timeout`; the instance goes a moment later.
            WorkerStatus::Requests | WorkerStatus::PostReturn => (self.timeout + EXPIRY_GRACE, true),
        };
        let Some(deadline) = start.checked_add(timeout) else {
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        let poll = self.sleep.as_mut().poll(cx);
        if poll.is_ready() && busy {
            self.expired.store(true, Ordering::Relaxed);
        }
        poll
    }
}

/// Serves exactly one request per instance.
struct OneRequest {
    prepared: Arc<PreparedComponent>,
    expired: Arc<AtomicBool>,
    /// The request's failure flag and span, once it started.
    request: Mutex<Option<(Arc<AtomicBool>, tracing::Span)>>,
}

impl WorkerState for OneRequest {
    type StoreData = InstanceState;
    type RequestData = RequestData;

    fn should_accept_request(&self, _concurrent: usize, total: usize) -> ShouldAccept {
        if total >= 1 { ShouldAccept::Never } else { ShouldAccept::Yes }
    }

    fn on_request_start(
        &self,
        mut store: StoreContextMut<'_, InstanceState>,
        data: RequestData,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        *self.request.lock().unwrap_or_else(|e| e.into_inner()) = Some((data.failed.clone(), data.span.clone()));
        store.data_mut().publish_peak_memory(data.peak_memory);
        // No timer here: the request path answers 504 at the timeout and `Expiration`
        // ends the instance after the grace period; a third timer per request only cost.
        Box::pin(std::future::pending())
    }

    fn drop(&self, store: Store<InstanceState>, result: Result<(), wasmtime::Error>) {
        let request = self.request.lock().unwrap_or_else(|e| e.into_inner()).take();
        let span = match &request {
            Some((failed, span)) => {
                failed.store(result.is_err(), Ordering::Relaxed);
                span.clone()
            }
            None => tracing::Span::none(),
        };
        let _in_request = span.enter();
        self.prepared.report(result, store.data(), self.expired.load(Ordering::Relaxed));
    }
}
