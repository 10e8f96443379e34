//! Tessera's HTTP trigger: a hyper server that routes requests exactly as Spin does, sets
//! Spin's request headers, admits requests through a bounded queue, runs each on a fresh
//! instance and writes one access-log line per request.
#![deny(missing_docs)]

mod body;
mod component;
mod framing;
mod headers;

pub use body::{AccessLog, BoxError, ResponseBody, ResponseTooLarge};
pub use component::{IdleInstance, NoResponse, RequestData, ServedComponent};

use anyhow::{Context as _, Result};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tessera_executor::{Executor, InstanceSlots, SharedCpu};
use tessera_capabilities::outbound_http::{LocalResult, LocalServices, LocalTarget};
use tessera_manifest::routes::{RouteMatch, Router};
use tessera_manifest::{HttpTarget, Route, StaticResponse};
use tokio::net::TcpListener;

enum Target {
    Component {
        id: Arc<str>,
        served: Arc<ServedComponent>,
        limits: tessera_manifest::ComponentLimits,
    },
    Static(StaticResponse),
}

/// One serving thread's runtime and how many connections it serves now.
struct ServingThread {
    handle: tokio::runtime::Handle,
    connections: Arc<AtomicUsize>,
}

/// A served route, for printing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteInfo {
    /// The component id, or `static response`.
    pub label: String,
    /// The route with the base path, without the `/...` wildcard suffix.
    pub path: String,
    /// Whether the route ends in a wildcard.
    pub wildcard: bool,
}

/// The HTTP trigger of one app.
pub struct HttpTrigger {
    router: Router<usize>,
    targets: Vec<Target>,
    routes: Vec<RouteInfo>,
    slots: Arc<InstanceSlots>,
    next_request_id: AtomicU64,
    /// Connections open now, on every serving thread.
    open: Arc<AtomicUsize>,
    listener: ListenerLimits,
    /// The app's name in access-log lines, when one host serves many apps.
    app_label: std::sync::OnceLock<Arc<str>>,
    metrics: Option<Arc<tessera_executor::metrics::AppMetrics>>,
}

/// What one client connection may cost (the runtime config's listener keys).
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    max_header_size: usize,
    max_headers: usize,
    header_read_timeout: Duration,
    max_connections: usize,
}

impl ListenerLimits {
    /// The limits a runtime config sets.
    pub fn of(rc: &tessera_manifest::RuntimeConfig) -> Self {
        Self {
            max_header_size: rc.max_request_header_size as usize,
            max_headers: rc.max_request_headers,
            header_read_timeout: rc.header_read_timeout,
            max_connections: rc.max_connections,
        }
    }
}

/// What answers the requests of a listener: one app's trigger, or a host that routes each
/// request to one of many apps.
pub trait Frontend: Send + Sync + 'static {
    /// Answers one request; `framing_conflict` when its head had both `Content-Length` and
    /// `Transfer-Encoding` (see `framing`).
    fn answer(
        &self,
        req: hyper::Request<Incoming>,
        client: SocketAddr,
        local: SocketAddr,
        framing_conflict: bool,
    ) -> impl std::future::Future<Output = hyper::Response<ResponseBody>> + Send;
}

impl Frontend for HttpTrigger {
    fn answer(
        &self,
        req: hyper::Request<Incoming>,
        client: SocketAddr,
        local: SocketAddr,
        framing_conflict: bool,
    ) -> impl std::future::Future<Output = hyper::Response<ResponseBody>> + Send {
        self.handle(req, client, local, framing_conflict)
    }
}

impl HttpTrigger {
    /// Prepares (compiles or loads from cache, and pre-instantiates) every component the
    /// app's HTTP triggers use, and serves the app's service-chaining requests.
    pub fn new(executor: &Executor) -> Result<Arc<Self>> {
        let trigger = Arc::new(Self::prepare(executor)?);
        let weak: std::sync::Weak<dyn LocalServices> = Arc::downgrade(&trigger) as _;
        executor.serve_locally(weak);
        Ok(trigger)
    }

    fn prepare(executor: &Executor) -> Result<Self> {
        let app = executor.app();
        let mut served: BTreeMap<String, Arc<ServedComponent>> = BTreeMap::new();
        let mut targets = Vec::new();
        let mut routes = Vec::new();
        for trigger in &app.manifest.http_triggers {
            let target = match &trigger.target {
                HttpTarget::Static(s) => Target::Static(s.clone()),
                HttpTarget::Component(id) => {
                    let s = match served.get(id) {
                        Some(s) => s.clone(),
                        None => {
                            let s = Arc::new(ServedComponent::new(executor.prepare(id)?)?);
                            served.insert(id.clone(), s.clone());
                            s
                        }
                    };
                    Target::Component { id: id.as_str().into(), served: s, limits: app.components[id].limits }
                }
            };
            if let Route::Path(_) = &trigger.route {
                let label = match &trigger.target {
                    HttpTarget::Component(id) => id.clone(),
                    HttpTarget::Static(_) => "static response".into(),
                };
                routes.push((label, targets.len()));
            }
            targets.push(target);
        }
        let router = app.manifest.http_router();
        let routes = router
            .routes()
            .map(|(based, index)| {
                let label = routes.iter().find(|(_, i)| i == index).map(|(l, _)| l.clone()).unwrap_or_default();
                let wildcard = based.ends_with("/...");
                let path = based.strip_suffix("/...").or_else(|| based.strip_suffix("...")).unwrap_or(based);
                RouteInfo { label, path: path.trim_end_matches('/').to_string(), wildcard }
            })
            .collect();
        Ok(Self {
            router,
            targets,
            routes,
            slots: executor.slots().clone(),
            next_request_id: AtomicU64::new(1),
            open: Arc::new(AtomicUsize::new(0)),
            listener: ListenerLimits::of(&app.runtime_config),
            app_label: std::sync::OnceLock::new(),
            metrics: executor.metrics().cloned(),
        })
    }

    fn refused(&self, component: &str, limit: &str) {
        if let Some(metrics) = &self.metrics {
            metrics.refused(component, limit);
        }
    }

    /// Names the app in each access-log line (a host serving many apps); set once.
    pub fn label_app(&self, name: &str) {
        let _ = self.app_label.set(name.into());
    }

    /// The routes served, most specific first.
    pub fn routes(&self) -> &[RouteInfo] {
        &self.routes
    }

    /// The component serving the first route that names `id`, if any.
    pub fn component(&self, id: &str) -> Option<&Arc<ServedComponent>> {
        self.targets.iter().find_map(|t| match t {
            Target::Component { id: i, served, .. } if &**i == id => Some(served),
            _ => None,
        })
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Serves connections from `listener` on `threads` threads, each with a
    /// single-threaded runtime of its own. A connection is handed to the thread serving
    /// the fewest and stays there, so no request hops between threads (no cross-core
    /// wake-ups or work stealing per request). When `stop` turns true the listener is
    /// closed (new clients are refused) and each connection ends after the request it is
    /// serving, if any.
    pub fn serve_per_thread(self: Arc<Self>, listener: std::net::TcpListener, threads: usize, stop: tokio::sync::watch::Receiver<bool>) -> Result<()> {
        let (limits, open) = (self.listener, self.open.clone());
        serve_per_thread(self, limits, open, listener, threads, stop)
    }

}

/// Serves connections from `listener` for `frontend`, as [`HttpTrigger::serve_per_thread`]
/// describes; `open` counts the connections open now.
pub fn serve_per_thread<F: Frontend>(
    frontend: Arc<F>,
    limits: ListenerLimits,
    open_connections: Arc<AtomicUsize>,
    listener: std::net::TcpListener,
    threads: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<()> {
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let mut workers = Vec::new();
    for i in 0..threads.max(1) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            // A spinning guest yields only every epoch tick (10 ms); with tokio's
            // defaults (61 and 31 polls) timers, I/O and new connections on its thread
            // would wait up to 0.6 s. Checking every 4 polls bounds that to ~40 ms.
            .event_interval(4)
            .global_queue_interval(4)
            .build()
            .context("cannot start the async runtime")?;
        workers.push(ServingThread { handle: runtime.handle().clone(), connections: Arc::new(AtomicUsize::new(0)) });
        std::thread::Builder::new()
            .name(format!("tessera-http-{i}"))
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .context("cannot start a serving thread")?;
    }
    let acceptor = workers[0].handle.clone();
    let max_connections = limits.max_connections;
    let open = Arc::new(tokio::sync::Semaphore::new(max_connections));
    let mut stopping = stop.clone();
    acceptor.spawn(async move {
        let listener = match TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => return tracing::error!("cannot use the listening socket: {e}"),
        };
        let mut warned_full = false;
        loop {
            // At max_connections, further clients wait in the kernel's listen backlog.
            let slot = match open.clone().try_acquire_owned() {
                Ok(slot) => slot,
                Err(_) => {
                    if !warned_full {
                        tracing::warn!("{max_connections} connections are open (max_connections): new ones wait until one closes (raise max_connections in the runtime config)");
                        warned_full = true;
                    }
                    let Ok(slot) = open.clone().acquire_owned().await else { return };
                    slot
                }
            };
            if open.available_permits() > max_connections / 2 {
                warned_full = false;
            }
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                // Dropping the listener refuses new clients.
                _ = stopping.changed() => return,
            };
            let (stream, client) = match accepted {
                Ok(c) => c,
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Ok(stream) = stream.into_std() else { continue };
            let worker = workers.iter().min_by_key(|w| w.connections.load(Ordering::Relaxed)).expect("one thread at least");
            let connections = worker.connections.clone();
            connections.fetch_add(1, Ordering::Relaxed);
            open_connections.fetch_add(1, Ordering::Relaxed);
            let frontend = frontend.clone();
            let open_connections = open_connections.clone();
            let stop = stop.clone();
            worker.handle.spawn(async move {
                if let Ok(stream) = tokio::net::TcpStream::from_std(stream) {
                    serve_connection(frontend, limits, stream, client, local, stop).await;
                }
                connections.fetch_sub(1, Ordering::Relaxed);
                open_connections.fetch_sub(1, Ordering::Relaxed);
                drop(slot);
            });
        }
    });
    Ok(())
}

async fn serve_connection<F: Frontend>(
    frontend: Arc<F>,
    limits: ListenerLimits,
    stream: tokio::net::TcpStream,
    client: SocketAddr,
    local: SocketAddr,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    // hyper refuses a header section larger than its read buffer (431).
    let max_buf = limits.max_header_size.max(8192);
    let (stream, conflicts) = framing::FramingReader::new(stream);
    let next_request = std::sync::atomic::AtomicU64::new(0);
    let service = hyper::service::service_fn(move |req| {
        let frontend = frontend.clone();
        let framing_conflict = conflicts.take(next_request.fetch_add(1, Ordering::Relaxed));
        async move { Ok::<_, Infallible>(frontend.answer(req, client, local, framing_conflict).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_headers(limits.max_headers)
        .max_buf_size(max_buf)
        .keep_alive(true)
        .serve_connection(TokioIo::new(stream), service);
    let mut conn = std::pin::pin!(conn);
    let served = tokio::select! {
        result = conn.as_mut() => Some(result),
        _ = async { drop(stop.wait_for(|stopping| *stopping).await) } => None,
    };
    let result = match served {
        Some(result) => result,
        None => {
            // Finish the request in progress (if any), then close.
            conn.as_mut().graceful_shutdown();
            conn.await
        }
    };
    if let Err(e) = result {
        tracing::debug!("connection from {client}: {e}");
    }
}

impl HttpTrigger {
    /// Handles one request; `framing_conflict` when its head had both `Content-Length` and
    /// `Transfer-Encoding` (see `framing`).
    pub async fn handle(
        &self,
        req: hyper::Request<Incoming>,
        client: SocketAddr,
        local: SocketAddr,
        framing_conflict: bool,
    ) -> hyper::Response<ResponseBody> {
        let start = Instant::now();
        let id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        if framing_conflict {
            let message = format!("a request may not have both Content-Length and Transfer-Encoding (they disagree on where it ends)\nrequest id: {id}\n");
            let mut response = text(400, &message, Some(LogLine::of(self, id, start, &req).finish(400, &no_component(), None)));
            response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
            return response;
        }
        let header_bytes: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
        if header_bytes > self.listener.max_header_size {
            let message = format!("request header section is {header_bytes} bytes, over max_request_header_size ({} bytes)\nrequest id: {id}\n", self.listener.max_header_size);
            self.refused("-", "max_request_header_size");
            return text(431, &message, Some(LogLine::of(self, id, start, &req).finish(431, &no_component(), None)));
        }
        let Some(matched) = self.router.route(req.uri().path()) else {
            let log = LogLine::of(self, id, start, &req).finish(404, &no_component(), None);
            return text(404, &format!("no route matches {}\n", req.uri().path()), Some(log));
        };
        let host_header = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| local.to_string());
        let path = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let full_url = format!("http://{host_header}{path}");
        let waiting_for_client = Arc::new(AtomicBool::new(false));
        let request = req.map(|body| body::ClientPaced::new(body, waiting_for_client.clone()).map_err(wasmtime_wasi_http::Error::from));
        let arrival = Arrival { id, start, client, full_url, waiting_for_client };
        self.dispatch(arrival, *matched.target, &matched, request).await
    }

    /// Serves a service-chaining request (see [`LocalServices`]) as the callee, with an
    /// access-log line of its own.
    async fn handle_chained(self: Arc<Self>, target: LocalTarget, request: WasiRequest) -> Result<WasiResponse, wasmtime_wasi_http::Error> {
        let start = Instant::now();
        let id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let path = request.uri().path().to_string();
        let full_url = request.uri().to_string();
        let arrival = Arrival { id, start, client: CHAINED_CLIENT, full_url, waiting_for_client: Arc::new(AtomicBool::new(false)) };
        let response = match &target {
            LocalTarget::App => match self.router.route(&path) {
                Some(matched) => self.dispatch(arrival, *matched.target, &matched, request).await,
                None => {
                    let log = LogLine::of(&self, id, start, &request).finish(404, &no_component(), None);
                    text(404, &format!("no route matches {path}\n"), Some(log))
                }
            },
            LocalTarget::Component(component) => {
                let Some(index) = self.targets.iter().position(|t| matches!(t, Target::Component { id, .. } if &**id == component)) else {
                    tracing::warn!("a service-chaining request names `{component}.spin.internal`, but the app has no HTTP component `{component}`");
                    return Err(wasmtime_wasi_http::Error::DestinationNotFound);
                };
                // Spin's synthetic match: the whole path is the wildcard part.
                let matched = RouteMatch { target: &(), based_route: "/...", raw_route: "/...", base: self.router.base(), params: Vec::new(), path_info: path.clone() };
                self.dispatch(arrival, index, &matched, request).await
            }
        };
        Ok(to_wasi(response))
    }

    /// Runs a request routed (`matched`) to `self.targets[target]`.
    async fn dispatch<T, B>(&self, arrival: Arrival, target: usize, matched: &RouteMatch<'_, T>, request: http::Request<B>) -> hyper::Response<ResponseBody>
    where
        B: http_body::Body<Data = Bytes, Error = wasmtime_wasi_http::Error> + Send + 'static,
    {
        let Arrival { id, start, client, full_url, waiting_for_client } = arrival;
        let line = LogLine::of(self, id, start, &request);
        let target = &self.targets[target];
        let (component, served, limits) = match target {
            Target::Static(s) => return static_response(s, line.finish(s.status_code, &no_component(), None)),
            Target::Component { id, served, limits } => (id, served, *limits),
        };
        let log = |status: u16, cost: Option<&InstanceCost>| line.finish(status, component, cost);
        let (max_body, timeout) = (limits.max_request_body_size, limits.request_timeout);

        if declared_length(request.headers()).is_some_and(|n| n > max_body) {
            self.refused(component, "max_request_body_size");
            return text(413, &format!("request body larger than max_request_body_size ({max_body} bytes)\nrequest id: {id}\n"), Some(log(413, None)));
        }
        let (mut parts, body) = request.into_parts();
        headers::set_spin_headers(&mut parts.headers, &full_url, matched, client);
        if let Ok(uri) = full_url.parse() {
            parts.uri = uri;
        }
        let body = Limited::new(body, max_body as usize)
            .map_err(move |e| match e.downcast::<wasmtime_wasi_http::Error>() {
                Ok(code) => *code,
                Err(_) => wasmtime_wasi_http::Error::HttpRequestBodySize(Some(max_body)),
            })
            .boxed_unsync();
        let request = http::Request::from_parts(parts, body);

        let asked = Instant::now();
        let admitted = self.slots.admit().await;
        if let Some(metrics) = &self.metrics {
            metrics.slot_wait(asked.elapsed());
        }
        let permit = match admitted {
            Ok(p) => p,
            Err(why) => {
                self.refused(component, if why == tessera_executor::Rejected::QueueFull { "max_queued_requests" } else { "queue_timeout" });
                tracing::warn!("request {id}: every instance slot is busy and {why:?}: answering 503 (raise max_concurrent_requests or max_queued_requests in the runtime config)");
                let mut r = text(503, &format!("server busy, try again\nrequest id: {id}\n"), Some(log(503, None)));
                r.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
                return r;
            }
        };
        let cost = InstanceCost { peak_memory: Arc::new(AtomicU64::new(0)), cpu: SharedCpu::default() };
        let failed = Arc::new(AtomicBool::new(false));
        let data = RequestData { id, peak_memory: cost.peak_memory.clone(), cpu: cost.cpu.clone(), failed: failed.clone(), span: served.span(id) };
        // A `traceparent` from the client makes this request's span part of its trace.
        tessera_capabilities::trace_context::continue_from(request.headers(), &data.span);
        // The deadline is checked first: when it and the instance's own end (a grace period
        // later) are seen in the same turn, the client must get the 504.
        let deadline = tokio::time::sleep(timeout);
        let outcome = tokio::select! {
            biased;
            () = deadline => None,
            // The instance runs in the span (its own task is instrumented, see component.rs).
            outcome = served.handle(data, request) => Some(outcome),
        };
        match outcome {
            Some(Ok(response)) => {
                let status = response.status().as_u16();
                let max_response = limits.max_response_body_size;
                if let Some(n) = declared_length(response.headers()).filter(|n| *n > max_response) {
                    tracing::error!("request {id}: component `{component}` answered with a {n}-byte body, over max_response_body_size ({max_response} bytes); answered 502 instead (raise max_response_body_size in the runtime config, globally or under [component.{component}])");
                    self.refused(component, "max_response_body_size");
                    return text(502, &format!("the component's response body ({n} bytes) is over max_response_body_size ({max_response} bytes)\nrequest id: {id}\n"), Some(log(502, Some(&cost))));
                }
                let (parts, body) = response.into_parts();
                let body = body.map_err(|e| Box::new(e) as BoxError).boxed_unsync();
                let body = ResponseBody::new(body, Some(permit), Some(log(status, Some(&cost))))
                    .with_limit(max_response)
                    .failing_with_instance(failed);
                hyper::Response::from_parts(parts, body)
            }
            None if waiting_for_client.load(Ordering::Relaxed) => {
                tracing::error!("request {id}: the client did not send the request body within request_timeout ({timeout:?}); answered 408 and stopped the instance");
                text(408, &format!("the request body did not arrive within request_timeout ({timeout:?})\nrequest id: {id}\n"), Some(log(408, Some(&cost))))
            }
            None => {
                tracing::error!("request {id}: component `{component}` did not finish within request_timeout ({timeout:?}); its instance was stopped");
                text(504, &format!("the component did not answer in time (request_timeout is {timeout:?})\nrequest id: {id}\n"), Some(log(504, Some(&cost))))
            }
            Some(Err(why)) => {
                let what = match why {
                    NoResponse::Instantiation => "could not be instantiated",
                    _ => "failed",
                };
                // The instance's own log line (see component.rs) has the cause and backtrace.
                tracing::warn!("request {id}: component `{component}` {what}, answered 500: {why}");
                text(500, &format!("the component {what}\nrequest id: {id}\n"), Some(log(500, Some(&cost))))
            }
        }
    }
}

/// What the access log says of a request before it is answered.
struct LogLine {
    app: Option<Arc<str>>,
    metrics: Option<Arc<tessera_executor::metrics::AppMetrics>>,
    id: u64,
    start: Instant,
    method: http::Method,
    path: String,
}

impl LogLine {
    fn of<B>(trigger: &HttpTrigger, id: u64, start: Instant, request: &http::Request<B>) -> Self {
        let path = request.uri().path_and_query().map(|p| p.to_string()).unwrap_or_else(|| "/".into());
        Self { app: trigger.app_label.get().cloned(), metrics: trigger.metrics.clone(), id, start, method: request.method().clone(), path }
    }

    /// The line, written when the response is done.
    fn finish(&self, status: u16, component: &Arc<str>, cost: Option<&InstanceCost>) -> AccessLog {
        AccessLog {
            id: self.id,
            method: self.method.clone(),
            path: self.path.clone(),
            status,
            start: self.start,
            component: component.clone(),
            app: self.app.clone(),
            metrics: self.metrics.clone(),
            peak_memory: cost.map(|c| c.peak_memory.clone()),
            cpu: cost.map(|c| c.cpu.clone()),
        }
    }
}

/// A request as it arrived, before it is routed.
struct Arrival {
    id: u64,
    start: Instant,
    client: SocketAddr,
    full_url: String,
    /// Set while the instance waits for the client's body (408 rather than 504).
    waiting_for_client: Arc<AtomicBool>,
}

type WasiRequest = http::Request<wasmtime_wasi_http::WasiBody>;
type WasiResponse = http::Response<wasmtime_wasi_http::WasiBody>;

/// `spin-client-addr` of a service-chaining request, as in Spin.
const CHAINED_CLIENT: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0);

/// Answers the host gives itself name no component in the access log.
fn no_component() -> Arc<str> {
    "-".into()
}

/// A response as the calling guest reads it.
fn to_wasi(response: hyper::Response<ResponseBody>) -> WasiResponse {
    response.map(|body| body.map_err(|e| wasmtime_wasi_http::Error::InternalError(Some(e.to_string()))).boxed_unsync())
}

impl LocalServices for HttpTrigger {
    fn serve(self: Arc<Self>, target: LocalTarget, request: WasiRequest) -> futures::future::BoxFuture<'static, LocalResult> {
        Box::pin(self.handle_chained(target, request))
    }
}

/// What an instance cost, shared with it while it runs, for the access log.
struct InstanceCost {
    peak_memory: Arc<AtomicU64>,
    cpu: SharedCpu,
}

/// The body length a message declares in `Content-Length`, if any.
fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers.get(http::header::CONTENT_LENGTH)?.to_str().ok()?.parse().ok()
}

fn full(body: impl Into<Bytes>) -> http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError> {
    Full::new(body.into()).map_err(|never| match never {}).boxed_unsync()
}

/// A plain-text response the host gives itself, with no access-log line.
pub fn text_response(status: u16, message: &str) -> hyper::Response<ResponseBody> {
    text(status, message, None)
}

fn text(status: u16, message: &str, log: Option<AccessLog>) -> hyper::Response<ResponseBody> {
    let mut r = hyper::Response::new(ResponseBody::new(full(message.to_string()), None, log));
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
    r.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    r
}

fn static_response(s: &StaticResponse, log: AccessLog) -> hyper::Response<ResponseBody> {
    let mut r = hyper::Response::new(ResponseBody::new(full(s.body.clone()), None, Some(log)));
    *r.status_mut() = http::StatusCode::from_u16(s.status_code).unwrap_or(http::StatusCode::OK);
    for (k, v) in &s.headers {
        if let (Ok(k), Ok(v)) = (http::HeaderName::from_bytes(k.as_bytes()), http::HeaderValue::from_str(v)) {
            r.headers_mut().insert(k, v);
        }
    }
    r
}
