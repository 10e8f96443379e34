//! One app on a listener whose version is replaced while it serves (`tessera watch`): a
//! new version is loaded in full first, then new requests go to it; requests in flight
//! finish on the version they started on, which then drains. No request is refused for
//! a reload.

use crate::{AppHost, Serving};
use anyhow::Result;
use hyper::body::Incoming;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tessera_trigger_http::{Frontend, HttpTrigger, ListenerLimits, ResponseBody};

/// The version serving now, if one loaded.
struct Current {
    http: Option<Arc<HttpTrigger>>,
    serving: Serving,
}

/// An app served on one listener across reloads.
pub struct ReloadingApp {
    current: RwLock<Option<Current>>,
    open_connections: Arc<AtomicUsize>,
    shutdown_timeout: Duration,
}

impl ReloadingApp {
    /// Nothing serves until the first [`ReloadingApp::replace`]; until then requests get
    /// a 503 that says why.
    pub fn new(shutdown_timeout: Duration) -> Arc<Self> {
        Arc::new(Self { current: RwLock::new(None), open_connections: Arc::default(), shutdown_timeout })
    }

    /// Starts `host`'s triggers (on the current runtime) and sends new requests to it; the
    /// version before drains in the background.
    pub fn replace(&self, host: AppHost) -> Result<()> {
        let http = host.http().cloned();
        let serving = host.serve(None, 1)?;
        let old = self.current.write().expect("current version").replace(Current { http, serving });
        if let Some(old) = old {
            let timeout = self.shutdown_timeout;
            tokio::spawn(async move {
                old.serving.drain(timeout).await;
            });
        }
        Ok(())
    }

    /// Serves HTTP on `listener` with `threads` threads until `stop` turns true.
    pub fn serve_http(self: &Arc<Self>, limits: ListenerLimits, listener: std::net::TcpListener, threads: usize, stop: tokio::sync::watch::Receiver<bool>) -> Result<()> {
        tessera_trigger_http::serve_per_thread(self.clone(), limits, self.open_connections.clone(), listener, threads, stop)
    }

    /// Drains the version serving now (after the listener stopped).
    pub async fn drain(&self) {
        let current = self.current.write().expect("current version").take();
        if let Some(current) = current {
            current.serving.drain(self.shutdown_timeout).await;
        }
        let open = || self.open_connections.load(std::sync::atomic::Ordering::Relaxed);
        crate::until_closed(open, tokio::time::Instant::now() + self.shutdown_timeout).await;
    }
}

impl Frontend for ReloadingApp {
    async fn answer(&self, req: hyper::Request<Incoming>, client: SocketAddr, local: SocketAddr, framing_conflict: bool) -> hyper::Response<ResponseBody> {
        let http = self.current.read().expect("current version").as_ref().and_then(|c| c.http.clone());
        match http {
            Some(http) => http.handle(req, client, local, framing_conflict).await,
            None => tessera_trigger_http::text_response(503, "the app is not serving: its build or load failed (see the terminal); it serves again once a change builds\n"),
        }
    }
}
