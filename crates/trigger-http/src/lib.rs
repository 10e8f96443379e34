//! Tessera's HTTP trigger: a hyper server that routes requests exactly as Spin does, sets
//! Spin's request headers, admits requests through a bounded queue, runs each on a fresh
//! instance and writes one access-log line per request.
#![deny(missing_docs)]

mod admission;
mod body;
mod component;
mod headers;
mod stubs;

pub use admission::{Admission, Rejected};
pub use body::{AccessLog, BoxError, ResponseBody};
pub use component::{IdleInstance, RequestData, ServedComponent};

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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tessera_app::LoadedApp;
use tessera_capabilities::{AppCapabilities, Concurrency, InstanceState};
use tessera_engine::{CompiledFrom, Engine};
use tessera_manifest::routes::Router;
use tessera_manifest::{HttpTarget, Route, StaticResponse};
use tokio::net::TcpListener;
use wasmtime::component::Linker;
use wasmtime_wasi_http::handler::{ExpirationError, InstantiationError};

/// How long a client may take to send a request's headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

enum Target {
    Component {
        id: Arc<str>,
        served: Arc<ServedComponent>,
        max_body: u64,
        timeout: Duration,
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

/// How one component was loaded, for reporting start-up cost.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Component id.
    pub id: String,
    /// Size of the component in bytes.
    pub size: usize,
    /// Compiled now or loaded from the cache.
    pub from: CompiledFrom,
    /// Time to compile or load, and pre-instantiate.
    pub elapsed: Duration,
}

/// The HTTP trigger of one app.
pub struct HttpTrigger {
    router: Router<usize>,
    targets: Vec<Target>,
    routes: Vec<RouteInfo>,
    admission: Admission,
    next_request_id: AtomicU64,
    max_header_size: usize,
    loads: Vec<LoadReport>,
}

impl HttpTrigger {
    /// Compiles (or loads from cache) and pre-instantiates every component the app's HTTP
    /// triggers use.
    pub fn new(engine: &Engine, app: &LoadedApp) -> Result<Self> {
        let mut linkers = Linkers::default();
        let capabilities = AppCapabilities::configure(app)?;
        let mut served: BTreeMap<String, Arc<ServedComponent>> = BTreeMap::new();
        let mut loads = Vec::new();
        let mut targets = Vec::new();
        let mut routes = Vec::new();
        for trigger in &app.manifest.http_triggers {
            let target = match &trigger.target {
                HttpTarget::Static(s) => Target::Static(s.clone()),
                HttpTarget::Component(id) => {
                    let loaded = &app.components[id];
                    let s = match served.get(id) {
                        Some(s) => s.clone(),
                        None => {
                            let started = Instant::now();
                            let (component, from) = engine.load_component(id, &loaded.bytes, tessera_capabilities::needs_concurrency)?;
                            let caps = capabilities
                                .component(app, loaded)
                                .with_context(|| format!("cannot configure component `{id}`"))?;
                            let concurrency = if engine.is_concurrent(&component) { Concurrency::On } else { Concurrency::Off };
                            let linker = linkers.get(&component, concurrency)?;
                            let s = Arc::new(ServedComponent::new(linker, concurrency, &component, caps, loaded.limits.request_timeout)?);
                            loads.push(LoadReport { id: id.clone(), size: loaded.bytes.len(), from, elapsed: started.elapsed() });
                            served.insert(id.clone(), s.clone());
                            s
                        }
                    };
                    Target::Component {
                        id: id.as_str().into(),
                        served: s,
                        max_body: loaded.limits.max_request_body_size,
                        timeout: loaded.limits.request_timeout,
                    }
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
        let rc = &app.runtime_config;
        Ok(Self {
            router,
            targets,
            routes,
            admission: Admission::new(rc.max_concurrent_requests, rc.max_queued_requests, rc.queue_timeout),
            next_request_id: AtomicU64::new(1),
            max_header_size: rc.max_request_header_size as usize,
            loads,
        })
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

    /// How each component was loaded.
    pub fn load_reports(&self) -> &[LoadReport] {
        &self.loads
    }

    /// Serves connections from `listener` on `threads` threads, each with a
    /// single-threaded runtime of its own, until the process ends. A connection is handed
    /// to the thread serving the fewest and stays there, so no request hops between
    /// threads (no cross-core wake-ups or work stealing per request).
    pub fn serve_per_thread(self: Arc<Self>, listener: std::net::TcpListener, threads: usize) -> Result<()> {
        listener.set_nonblocking(true)?;
        let local = listener.local_addr()?;
        let mut workers = Vec::new();
        for i in 0..threads.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .context("cannot start the async runtime")?;
            workers.push(ServingThread { handle: runtime.handle().clone(), connections: Arc::new(AtomicUsize::new(0)) });
            std::thread::Builder::new()
                .name(format!("tessera-http-{i}"))
                .spawn(move || runtime.block_on(std::future::pending::<()>()))
                .context("cannot start a serving thread")?;
        }
        let acceptor = workers[0].handle.clone();
        acceptor.spawn(async move {
            let listener = match TcpListener::from_std(listener) {
                Ok(l) => l,
                Err(e) => return tracing::error!("cannot use the listening socket: {e}"),
            };
            loop {
                let (stream, client) = match listener.accept().await {
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
                let this = self.clone();
                worker.handle.spawn(async move {
                    if let Ok(stream) = tokio::net::TcpStream::from_std(stream) {
                        this.serve_connection(stream, client, local).await;
                    }
                    connections.fetch_sub(1, Ordering::Relaxed);
                });
            }
        });
        Ok(())
    }

    async fn serve_connection(self: Arc<Self>, stream: tokio::net::TcpStream, client: SocketAddr, local: SocketAddr) {
        let _ = stream.set_nodelay(true);
        // hyper refuses a header section larger than its read buffer (431).
        let max_buf = self.max_header_size.max(8192);
        let service = hyper::service::service_fn(move |req| {
            let this = self.clone();
            async move { Ok::<_, Infallible>(this.handle(req, client, local).await) }
        });
        let conn = http1::Builder::new()
            .timer(TokioTimer::new())
            .header_read_timeout(HEADER_READ_TIMEOUT)
            .max_buf_size(max_buf)
            .keep_alive(true)
            .serve_connection(TokioIo::new(stream), service);
        if let Err(e) = conn.await {
            tracing::debug!("connection from {client}: {e}");
        }
    }

    /// Handles one request.
    pub async fn handle(
        &self,
        req: hyper::Request<Incoming>,
        client: SocketAddr,
        local: SocketAddr,
    ) -> hyper::Response<ResponseBody> {
        let start = Instant::now();
        let id = self.next_request_id.fetch_add(1, Ordering::Relaxed);
        let method = req.method().clone();
        let path = req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_else(|| "/".into());
        let log = |status: u16, component: &Arc<str>, peak: Option<Arc<AtomicU64>>| AccessLog {
            id,
            method: method.clone(),
            path: path.clone(),
            status,
            start,
            component: component.clone(),
            peak_memory: peak,
        };
        // Answers the host gives itself name no component in the access log.
        let no_component: Arc<str> = "-".into();

        let header_bytes: usize = req.headers().iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
        if header_bytes > self.max_header_size {
            let message = format!("request header section is {header_bytes} bytes, over max_request_header_size ({} bytes)\nrequest id: {id}\n", self.max_header_size);
            return text(431, &message, Some(log(431, &no_component, None)));
        }
        let Some(matched) = self.router.route(req.uri().path()) else {
            return text(404, &format!("no route matches {}\n", req.uri().path()), Some(log(404, &no_component, None)));
        };
        let target = &self.targets[*matched.target];
        let (component, served, max_body, timeout) = match target {
            Target::Static(s) => return static_response(s, log(s.status_code, &no_component, None)),
            Target::Component { id, served, max_body, timeout } => (id, served, *max_body, *timeout),
        };

        let declared = req
            .headers()
            .get(http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|n| n > max_body) {
            return text(413, &format!("request body larger than max_request_body_size ({max_body} bytes)\nrequest id: {id}\n"), Some(log(413, component, None)));
        }

        let host_header = req
            .headers()
            .get(http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string)
            .unwrap_or_else(|| local.to_string());
        let full_url = format!("http://{host_header}{path}");
        let (mut parts, body) = req.into_parts();
        headers::set_spin_headers(&mut parts.headers, &full_url, &matched, client);
        if let Ok(uri) = full_url.parse() {
            parts.uri = uri;
        }
        let body = Limited::new(body, max_body as usize)
            .map_err(move |e| match e.downcast::<hyper::Error>() {
                Ok(h) => wasmtime_wasi_http::Error::from(*h),
                Err(_) => wasmtime_wasi_http::Error::HttpRequestBodySize(Some(max_body)),
            })
            .boxed_unsync();
        let request = http::Request::from_parts(parts, body);

        let permit = match self.admission.admit().await {
            Ok(p) => p,
            Err(why) => {
                tracing::warn!("request {id}: every instance slot is busy and {why:?}: answering 503 (raise max_concurrent_requests or max_queued_requests in the runtime config)");
                let mut r = text(503, &format!("server busy, try again\nrequest id: {id}\n"), Some(log(503, component, None)));
                r.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from_static("1"));
                return r;
            }
        };
        let peak = Arc::new(AtomicU64::new(0));
        let data = RequestData { id, peak_memory: peak.clone() };
        let outcome = match tokio::time::timeout(timeout, served.handle(data, request)).await {
            Ok(outcome) => outcome,
            Err(_) => Err(wasmtime::Error::new(ExpirationError)),
        };
        match outcome {
            Ok(response) => {
                let status = response.status().as_u16();
                let (parts, body) = response.into_parts();
                let body = body.map_err(|e| Box::new(e) as BoxError).boxed_unsync();
                hyper::Response::from_parts(parts, ResponseBody::new(body, Some(permit), Some(log(status, component, Some(peak)))))
            }
            Err(e) if e.downcast_ref::<ExpirationError>().is_some() => {
                tracing::error!("request {id}: component `{component}` did not finish within request_timeout ({timeout:?}); its instance was stopped");
                text(504, &format!("the component did not answer in time (request_timeout is {timeout:?})\nrequest id: {id}\n"), Some(log(504, component, Some(peak))))
            }
            Err(e) => {
                let what = if e.downcast_ref::<InstantiationError<RequestData>>().is_some() {
                    "could not be instantiated"
                } else {
                    "failed"
                };
                // The instance's own log line (see component.rs) has the cause and backtrace.
                tracing::warn!("request {id}: component `{component}` {what}, answered 500: {e}");
                text(500, &format!("the component {what}\nrequest id: {id}\n"), Some(log(500, component, Some(peak))))
            }
        }
    }
}

/// One linker per engine flavor, built the first time a component needs it.
#[derive(Default)]
struct Linkers {
    plain: Option<Linker<InstanceState>>,
    concurrent: Option<Linker<InstanceState>>,
}

impl Linkers {
    fn get(&mut self, component: &wasmtime::component::Component, concurrency: Concurrency) -> Result<&Linker<InstanceState>> {
        let slot = match concurrency {
            Concurrency::Off => &mut self.plain,
            Concurrency::On => &mut self.concurrent,
        };
        if slot.is_none() {
            let mut linker = Linker::new(component.engine());
            tessera_capabilities::link(&mut linker, concurrency)?;
            *slot = Some(linker);
        }
        Ok(slot.as_ref().expect("just built"))
    }
}

fn full(body: impl Into<Bytes>) -> http_body_util::combinators::UnsyncBoxBody<Bytes, BoxError> {
    Full::new(body.into()).map_err(|never| match never {}).boxed_unsync()
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
