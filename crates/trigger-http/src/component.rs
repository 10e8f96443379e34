//! One component ready to serve: its pre-instantiated `wasi:http` handler and the
//! per-request instance lifecycle (a fresh store per request, never reused).
//!
//! Every request's instance runs in a task of its own, inside the request's invocation
//! span and with its CPU time measured, so whatever it logs (host calls, failures) carries
//! the span's fields whatever the handler's WASI version. The task answers through a
//! channel as soon as the guest has a response and then goes on running while the guest
//! writes the body.
//! - A WASI 0.2 component on the engine without concurrency is called straight through
//!   `incoming-handler.handle`.
//! - Anything on the concurrent engine (WASI 0.3 handlers, and WASI 0.2 ones whose
//!   capabilities need it) is called inside `run_concurrent`, which then runs until the
//!   guest's last task (e.g. the one writing the body) has ended.

use anyhow::{Context as _, Result, bail};
use wasmtime::error::Context as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use tessera_capabilities::outbound_http::ChainDepth;
use tessera_capabilities::{Concurrency, InstanceState};
use tessera_executor::{Failure, PreparedComponent, SharedCpu};
use tokio::sync::oneshot;
use wasmtime::Store;
use wasmtime::component::{Accessor, Component};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{Proxy, ProxyPre, Request, Response};
use wasmtime_wasi_http::p2::bindings::http::types::Scheme;

/// What the request path shares with the instance serving it.
pub struct RequestData {
    /// The request id shown to the client and in logs.
    pub id: u64,
    /// Peak bytes of memories and tables, for the access log.
    pub peak_memory: Arc<AtomicU64>,
    /// The instance's CPU time, for the access log.
    pub cpu: SharedCpu,
    /// Set when the instance trapped, hit a limit or timed out, before its store (and so
    /// the sending end of its response body) is dropped: the body then ends in an error
    /// instead of looking complete.
    pub failed: Arc<AtomicBool>,
    /// The request's invocation span, for what the instance logs.
    pub span: tracing::Span,
}

/// Why a component gave no response.
#[derive(Debug)]
pub enum NoResponse {
    /// Its instance could not be created (logged with the cause).
    Instantiation,
    /// It trapped, hit a limit or failed before answering (logged with the cause).
    Failed,
    /// It returned without setting a response.
    Returned,
    /// It answered with a `wasi:http` error code.
    ErrorCode(String),
}

impl std::fmt::Display for NoResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Instantiation => f.write_str("the component could not be instantiated"),
            Self::Failed => f.write_str("the component trapped or failed before answering"),
            Self::Returned => f.write_str("the component returned without setting a response"),
            Self::ErrorCode(code) => write!(f, "the component answered with an error: {code}"),
        }
    }
}

impl std::error::Error for NoResponse {}

/// A component ready to serve requests.
pub struct ServedComponent {
    prepared: Arc<PreparedComponent>,
    proxy: ProxyPre<InstanceState>,
    /// Whether requests call the WASI 0.2 handler without `run_concurrent` (see the
    /// module docs).
    direct: bool,
}

/// What the response channel carries: the response, or the guest's error code.
type Answer = Result<Response, String>;

/// Reports errors reading the request body back to the guest (WASI 0.3).
type RequestIo = std::pin::Pin<Box<dyn Future<Output = Result<(), wasmtime_wasi_http::Error>> + Send>>;

/// How an instance's run ended before its store is looked at.
enum Ended {
    Instantiation(wasmtime::Error),
    Run(wasmtime::Error),
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
        let direct = matches!(proxy, ProxyPre::P2(_)) && prepared.concurrency() == Concurrency::Off;
        Ok(Self { prepared, proxy, direct })
    }

    /// The span of request `id` on this component.
    pub fn span(&self, id: u64) -> tracing::Span {
        self.prepared.span("http", id)
    }

    /// Creates a fresh instance exactly as a request gets one, serving nothing: what the
    /// instantiation benchmark measures. Dropping it frees the instance's pool slot.
    pub async fn instantiate_idle(&self) -> Result<IdleInstance> {
        let mut store = self.prepared.store()?;
        self.proxy.instantiate_async(&mut store).await.map_err(anyhow::Error::from)?;
        Ok(IdleInstance { _store: store })
    }

    /// Runs one request on a fresh instance, in a task of its own (see the module docs),
    /// and returns its response as soon as the guest has one.
    pub async fn handle(self: &Arc<Self>, data: RequestData, request: Request) -> Result<Response, NoResponse> {
        let (answer, answered) = oneshot::channel::<Answer>();
        let RequestData { peak_memory, cpu, failed, span, .. } = data;
        // Boxed: the instance's future is a few KiB, which spawning would otherwise copy
        // several times (into the task cell, its stage, ...).
        let instance = Box::pin(self.clone().run_instance(request, answer, peak_memory, failed));
        let guest = tokio::task::spawn(tracing::Instrument::instrument(cpu.measure(instance), span));
        match answered.await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(code)) => Err(NoResponse::ErrorCode(code)),
            // The answer was dropped unset: the guest ended without answering.
            Err(_) => Err(guest.await.unwrap_or(NoResponse::Failed)),
        }
    }

    /// The whole life of one request's instance: instantiate, call the handler, run until
    /// the guest is done or its time is up, then log how it ended.
    async fn run_instance(self: Arc<Self>, request: Request, answer: oneshot::Sender<Answer>, peak_memory: Arc<AtomicU64>, failed: Arc<AtomicBool>) -> NoResponse {
        let prepared = &self.prepared;
        let mut store = match prepared.store() {
            Ok(store) => store,
            Err(e) => {
                failed.store(true, Ordering::Relaxed);
                prepared.failed(Failure::Instantiation(wasmtime::Error::from_anyhow(e)));
                return NoResponse::Instantiation;
            }
        };
        store.data_mut().publish_peak_memory(peak_memory);
        if let Some(depth) = request.extensions().get::<ChainDepth>() {
            store.data_mut().outbound.set_chain_depth(*depth);
        }
        // The request path answers 504 at the timeout; the instance goes a moment later.
        let lifetime = prepared.limits().timeout + EXPIRY_GRACE;
        let run = self.call(&mut store, request, answer);
        let (result, timed_out) = match tokio::time::timeout(lifetime, run).await {
            Ok(result) => (result, false),
            Err(_) => (Err(Ended::Run(wasmtime::format_err!("stopped at its deadline"))), true),
        };
        failed.store(result.is_err(), Ordering::Relaxed);
        match result {
            Ok(()) => NoResponse::Returned,
            Err(Ended::Instantiation(e)) => {
                prepared.failed(Failure::Instantiation(e));
                NoResponse::Instantiation
            }
            Err(Ended::Run(e)) => {
                prepared.report(Err(e), store.data(), timed_out);
                NoResponse::Failed
            }
        }
    }

    /// Instantiates the component in `store` and calls its handler with `request`.
    async fn call(&self, store: &mut Store<InstanceState>, request: Request, answer: oneshot::Sender<Answer>) -> Result<(), Ended> {
        let proxy = self.proxy.instantiate_async(&mut *store).await.map_err(Ended::Instantiation)?;
        let run = match proxy {
            Proxy::P2(proxy) if self.direct => {
                let mut http = store.data_mut().http();
                let incoming = http.new_incoming_request(Scheme::Http, request).map_err(Ended::Run)?;
                let outparam = http.new_response_outparam_from_callback(answer_p2(answer)).map_err(Ended::Run)?;
                return proxy.wasi_http_incoming_handler().call_handle(&mut *store, incoming, outparam).await.map_err(Ended::Run);
            }
            Proxy::P2(proxy) => {
                store
                    .run_concurrent(async move |accessor| {
                        let (incoming, outparam) = accessor.with(|mut access| -> wasmtime::Result<_> {
                            let mut http = access.get().http();
                            let incoming = http.new_incoming_request(Scheme::Http, request)?;
                            Ok((incoming, http.new_response_outparam_from_callback(answer_p2(answer))?))
                        })?;
                        proxy.wasi_http_incoming_handler().func_handle().call_concurrent(accessor, (incoming, outparam)).await?;
                        until_idle(accessor).await;
                        Ok(())
                    })
                    .await
            }
            Proxy::P3(service) => {
                store
                    .run_concurrent(async move |accessor| {
                        let (request, request_io) = accessor.with(|mut access| -> wasmtime::Result<_> {
                            let http = access.get().http();
                            let (request, request_io) = wasmtime_wasi_http::p3::Request::from_http(http.hooks, request);
                            // Boxed as `'static`: the opaque type names the hooks' borrow.
                            let request_io: RequestIo = Box::pin(request_io);
                            Ok((http.table.push(request)?, request_io))
                        })?;
                        let (result,) = service.wasi_http_handler().func_handle().call_concurrent(accessor, (request,)).await?;
                        let reply = match result {
                            Ok(response) => Ok(accessor.with(|mut access| {
                                let response = access.get().http().table.delete(response)?;
                                response
                                    .into_http_with_getter(&mut access, request_io, WasiHttpView::http)
                                    .context("the component's response is not valid HTTP")
                            })?),
                            Err(code) => Err(format!("{code:?}")),
                        };
                        drop(answer.send(reply));
                        until_idle(accessor).await;
                        Ok(())
                    })
                    .await
            }
        };
        run.and_then(|inner| inner).map_err(Ended::Run)
    }
}

/// The response-outparam callback of a WASI 0.2 handler: passes its answer on.
fn answer_p2(
    answer: oneshot::Sender<Answer>,
) -> impl FnOnce(Result<Response, wasmtime_wasi_http::p2::bindings::http::types::ErrorCode>) + Send + Sync + 'static {
    move |value| drop(answer.send(value.map_err(|code| format!("{code:?}"))))
}

/// Waits until the guest has no task left (one writing the response body, say).
async fn until_idle(accessor: &Accessor<InstanceState>) {
    std::future::poll_fn(|cx| accessor.poll_no_interesting_tasks(cx)).await
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

/// How long an instance outlives its request's deadline, so the client gets a clear 504
/// before the instance is torn down.
const EXPIRY_GRACE: Duration = Duration::from_millis(250);
