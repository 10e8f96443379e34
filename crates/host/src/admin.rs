//! The admin API of a host of many apps, on its own listener, every request carrying
//! `Authorization: Bearer <token>` (anything else is 401):
//!
//! - `GET /v1/apps`: the deployed apps (JSON);
//! - `GET /v1/apps/NAME`: one app, or 404;
//! - `PUT /v1/apps/NAME`: deploys the app, or a new version of it, from the body: the keys
//!   of an apps file's `[[app]]` entry as TOML (or the same as a JSON object with
//!   `Content-Type: application/json`); 201 when new, 200 when updated, 400 for a bad
//!   entry (with its line and column), 422 when the app does not load (the version
//!   deployed before keeps serving);
//! - `PUT /v1/apps/NAME` with `Content-Type: application/gzip` (or `application/x-tar`):
//!   deploys the app from the body, a tar.gz of its directory (`spin.toml` at the root or
//!   in one top-level folder); the entry's other keys come from the query string
//!   (`?path_prefix=/shop&hosts=shop.example&instances=4&memory=64MiB&variables.NAME=v`);
//!   refused with 400 when the archive holds links, paths out of it or too much;
//! - `DELETE /v1/apps/NAME`: undeploys it (204), or 404;
//! - `GET /v1/failures`: the last failed or refused invocations with their reasons, newest
//!   first (JSON);
//! - `GET /metrics`: every app's metrics in Prometheus' text format.
//!
//! The dashboard (`GET /`, its script and style) is served without the token: the page
//! holds no data and asks for the token, then reads the API above with it.
//!
//! Relative paths in an entry are relative to the host's working directory.

use crate::many_apps::ManyApps;
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use std::path::Path;
use std::sync::Arc;

/// The largest entry the API reads.
const MAX_BODY: usize = 64 << 10;

/// The largest app archive the API reads (compressed).
const MAX_ARCHIVE: usize = 128 << 20;

/// Serves the admin API on `listener` until `stop` turns true.
pub async fn serve(host: Arc<ManyApps>, listener: tokio::net::TcpListener, token: String, mut stop: tokio::sync::watch::Receiver<bool>) {
    let token: Arc<str> = token.into();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let Ok((stream, _)) = accepted else { continue };
        let (host, token) = (host.clone(), token.clone());
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let (host, token) = (host.clone(), token.clone());
                async move { Ok::<_, std::convert::Infallible>(answer(&host, &token, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
        });
    }
}

type Response = hyper::Response<Full<Bytes>>;

async fn answer(host: &Arc<ManyApps>, token: &str, req: hyper::Request<Incoming>) -> Response {
    if req.method() == http::Method::GET
        && let Some(page) = dashboard_file(req.uri().path())
    {
        return page;
    }
    if !authorized(&req, token) {
        let mut r = json(401, &serde_json::json!({ "error": "missing or wrong bearer token", "hint": "send Authorization: Bearer <the host's admin token>" }));
        r.headers_mut().insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Bearer"));
        return r;
    }
    let path = req.uri().path().to_string();
    let name = path.strip_prefix("/v1/apps/").filter(|n| !n.is_empty() && !n.contains('/'));
    match (req.method().clone(), path.as_str(), name) {
        (http::Method::GET, "/v1/apps", _) => json(200, &host.list().await),
        (http::Method::GET, "/metrics", _) => metrics_response(host.metrics()),
        (http::Method::GET, "/v1/failures", _) => json(200, &recent_failures(host.metrics())),
        (http::Method::GET, _, Some(name)) => match host.inspect(name).await {
            Some(status) => json(200, &status),
            None => not_found(name),
        },
        (http::Method::PUT, _, Some(name)) => deploy(host, name.to_string(), req).await,
        (http::Method::DELETE, _, Some(name)) => match host.undeploy(name).await {
            Ok(()) => hyper::Response::builder().status(204).body(Full::new(Bytes::new())).expect("response"),
            Err(_) => not_found(name),
        },
        _ => json(404, &serde_json::json!({ "error": format!("{} {path} is not part of the admin API", req.method()), "hint": "use GET /v1/apps, GET|PUT|DELETE /v1/apps/NAME, GET /v1/failures, GET /metrics" })),
    }
}

/// Serves `GET /metrics` (no token: bind it where only the scraper reaches) on `listener`:
/// `tessera up --metrics`.
pub async fn serve_metrics(metrics: Arc<tessera_executor::metrics::Metrics>, listener: tokio::net::TcpListener) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<Incoming>| {
                let response = match (req.method(), req.uri().path()) {
                    (&http::Method::GET, "/metrics") => metrics_response(&metrics),
                    _ => error(404, format!("{} is not served here", req.uri().path()), "scrape GET /metrics"),
                };
                async move { Ok::<_, std::convert::Infallible>(response) }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(hyper_util::rt::TokioIo::new(stream), service).await;
        });
    }
}

fn metrics_response(metrics: &tessera_executor::metrics::Metrics) -> Response {
    hyper::Response::builder()
        .header(http::header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(Full::new(Bytes::from(metrics.encode())))
        .expect("response")
}

async fn deploy(host: &Arc<ManyApps>, name: String, req: hyper::Request<Incoming>) -> Response {
    let content_type = req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if ["application/gzip", "application/x-gzip", "application/x-tar", "application/x-gtar"].iter().any(|t| content_type.starts_with(t)) {
        return deploy_archive(host, name, req).await;
    }
    let is_json = req.headers().get(http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(|v| v.starts_with("application/json"));
    let body = match Limited::new(req.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return error(413, format!("the entry is over {MAX_BODY} bytes"), "send only the keys of one [[app]] entry"),
    };
    let Ok(text) = String::from_utf8(body.to_vec()) else {
        return error(400, "the entry is not UTF-8".into(), "send TOML or JSON text");
    };
    let text = if is_json {
        match serde_json::from_str::<serde_json::Value>(&text).map_err(|e| e.to_string()).and_then(|v| toml::to_string(&v).map_err(|e| e.to_string())) {
            Ok(toml) => toml,
            Err(e) => return error(400, format!("the JSON entry cannot be read: {e}"), "send an object with the keys of an [[app]] entry"),
        }
    } else {
        text
    };
    let origin = format!("PUT /v1/apps/{name}");
    let spec = match crate::apps_file::parse_entry(Path::new(&origin), Path::new("."), &name, &text) {
        Ok(spec) => spec,
        Err(e) => return error(400, e.to_string(), "fix the entry; the README lists the keys of [[app]]"),
    };
    deploy_spec(host, spec, None).await
}

/// Deploys `spec` (from `unpacked`, an archive's files): 201 when new, 200 when updated,
/// 422 when it does not load.
async fn deploy_spec(host: &Arc<ManyApps>, spec: crate::apps_file::AppSpec, unpacked: Option<tempfile::TempDir>) -> Response {
    let existed = host.inspect(&spec.name).await.is_some();
    match host.deploy_unpacked(spec, unpacked).await {
        Ok(status) => json(if existed { 200 } else { 201 }, &status),
        Err(e) => error(422, format!("{e:#}"), if existed { "the version deployed before keeps serving" } else { "nothing was deployed" }),
    }
}

/// The dashboard's files, with headers that keep the page to its own script and style and
/// out of other sites' frames.
fn dashboard_file(path: &str) -> Option<Response> {
    let (body, content_type) = match path {
        "/" | "/dashboard" => (include_str!("dashboard/index.html"), "text/html; charset=utf-8"),
        "/dashboard.js" => (include_str!("dashboard/dashboard.js"), "text/javascript; charset=utf-8"),
        "/dashboard.css" => (include_str!("dashboard/dashboard.css"), "text/css; charset=utf-8"),
        _ => return None,
    };
    let response = hyper::Response::builder()
        .header(http::header::CONTENT_TYPE, content_type)
        .header(http::header::CONTENT_SECURITY_POLICY, "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
        .header(http::header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(http::header::REFERRER_POLICY, "no-referrer")
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from_static(body.as_bytes())))
        .expect("response");
    Some(response)
}

fn recent_failures(metrics: &tessera_executor::metrics::Metrics) -> serde_json::Value {
    let failures = metrics.recent_failures().into_iter().map(|f| {
        let at = f.at.duration_since(std::time::SystemTime::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
        serde_json::json!({ "at": at, "app": f.app, "component": f.component, "reason": f.reason })
    });
    serde_json::Value::Array(failures.collect())
}

/// Deploys from a tar.gz body; the entry's keys other than `source` come from the query.
async fn deploy_archive(host: &Arc<ManyApps>, name: String, req: hyper::Request<Incoming>) -> Response {
    let entry = match entry_from_query(req.uri().query().unwrap_or_default()) {
        Ok(entry) => entry,
        Err(e) => return error(400, e, "the query may give path_prefix, hosts, runtime_config, instances, queued, memory and variables.NAME"),
    };
    let body = match Limited::new(req.into_body(), MAX_ARCHIVE).collect().await {
        Ok(body) => body.to_bytes(),
        Err(_) => return error(413, format!("the archive is over {MAX_ARCHIVE} bytes"), "leave build output and dependencies out of it"),
    };
    let archives = host.archive_dir();
    // Unpacking writes many files: off the runtime's threads.
    let unpacked = tokio::task::spawn_blocking(move || -> Result<_, String> {
        std::fs::create_dir_all(&archives).map_err(|e| format!("cannot create {}: {e}", archives.display()))?;
        let dir = tempfile::Builder::new().prefix("archive-").tempdir_in(&archives).map_err(|e| format!("cannot unpack in {}: {e}", archives.display()))?;
        let root = crate::archive::unpack(&body, dir.path(), crate::archive::ArchiveLimits::default()).map_err(|e| e.to_string())?;
        Ok((dir, root))
    })
    .await;
    let (dir, root) = match unpacked {
        Ok(Ok(unpacked)) => unpacked,
        Ok(Err(e)) => return error(400, e, "send a tar.gz of the app's directory: tar czf app.tar.gz -C app ."),
        Err(e) => return error(500, format!("unpacking failed: {e}"), "nothing was deployed"),
    };
    let mut entry = entry;
    entry.insert("source".into(), toml::Value::String(root.display().to_string()));
    let text = toml::to_string(&entry).unwrap_or_default();
    let origin = format!("PUT /v1/apps/{name}");
    let spec = match crate::apps_file::parse_entry(Path::new(&origin), &root, &name, &text) {
        Ok(spec) => spec,
        Err(e) => return error(400, e.to_string(), "fix the query; the README lists the keys of [[app]]"),
    };
    deploy_spec(host, spec, Some(dir)).await
}

/// The keys of an `[[app]]` entry, but `source`, from a query string.
fn entry_from_query(query: &str) -> Result<toml::Table, String> {
    let mut entry = toml::Table::new();
    let (mut hosts, mut quota, mut variables) = (Vec::new(), toml::Table::new(), toml::Table::new());
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let number = || value.parse::<i64>().map(toml::Value::Integer).map_err(|_| format!("`{key}` must be a whole number, not `{value}`"));
        match key.as_ref() {
            "path_prefix" | "runtime_config" => {
                entry.insert(key.to_string(), toml::Value::String(value.to_string()));
            }
            "hosts" => hosts.extend(value.split(',').filter(|h| !h.is_empty()).map(|h| toml::Value::String(h.to_string()))),
            "instances" | "queued" => {
                quota.insert(key.to_string(), number()?);
            }
            "memory" => {
                quota.insert(key.to_string(), toml::Value::String(value.to_string()));
            }
            other => match other.strip_prefix("variables.") {
                Some(variable) => {
                    variables.insert(variable.to_string(), toml::Value::String(value.to_string()));
                }
                None => return Err(format!("unknown query key `{other}`")),
            },
        }
    }
    if !hosts.is_empty() {
        entry.insert("hosts".into(), toml::Value::Array(hosts));
    }
    if !quota.is_empty() {
        entry.insert("quota".into(), toml::Value::Table(quota));
    }
    if !variables.is_empty() {
        entry.insert("variables".into(), toml::Value::Table(variables));
    }
    Ok(entry)
}

/// Compares the bearer token in constant time.
fn authorized<B>(req: &hyper::Request<B>, token: &str) -> bool {
    let Some(given) = req.headers().get(http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")) else {
        return false;
    };
    let (a, b) = (given.trim().as_bytes(), token.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn json(status: u16, value: &impl serde::Serialize) -> Response {
    let body = serde_json::to_vec_pretty(value).unwrap_or_default();
    hyper::Response::builder().status(status).header(http::header::CONTENT_TYPE, "application/json").body(Full::new(Bytes::from(body))).expect("response")
}

fn error(status: u16, message: String, hint: &str) -> Response {
    json(status, &serde_json::json!({ "error": message, "hint": hint }))
}

fn not_found(name: &str) -> Response {
    error(404, format!("no app is named `{name}`"), "GET /v1/apps lists the apps deployed")
}
