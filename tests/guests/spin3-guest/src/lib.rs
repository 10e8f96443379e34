//! A guest written with the current Spin Rust SDK (7.0, WASI 0.3):
//! - `/variables/<name>`: `spin_sdk::variables::get` (`spin:variables/variables@3.0.0`);
//! - `/kv/<store>/<key>`: GET and PUT (body) through `spin_sdk::key_value`
//!   (`spin:key-value/key-value@3.0.0`); `/kv/<store>` lists the keys (a stream).

use spin_sdk::http::{IntoResponse, Request};
use spin_sdk::http_service;

#[http_service]
async fn handle(req: Request) -> impl IntoResponse {
    // The path below the matched route, as Spin passes it.
    let path = req
        .headers()
        .get("spin-path-info")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    if let Some(rest) = path.strip_prefix("/kv/") {
        return key_value(req, rest).await;
    }
    let Some(name) = path.strip_prefix("/variables/") else {
        return (http::StatusCode::NOT_FOUND, format!("no route for {path}\n"));
    };
    match spin_sdk::variables::get(name).await {
        Ok(value) => (http::StatusCode::OK, value),
        Err(spin_sdk::variables::Error::Undefined(m)) => (http::StatusCode::NOT_FOUND, format!("undefined: {m}")),
        Err(spin_sdk::variables::Error::InvalidName(m)) => (http::StatusCode::BAD_REQUEST, format!("invalid-name: {m}")),
        Err(e) => (http::StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e}")),
    }
}

async fn key_value(req: Request, rest: &str) -> (http::StatusCode, String) {
    use spin_sdk::key_value::{Error, Store};
    let (label, key) = rest.split_once('/').unwrap_or((rest, ""));
    let store = match Store::open(label).await {
        Ok(s) => s,
        Err(Error::AccessDenied) => return (http::StatusCode::FORBIDDEN, "access-denied".into()),
        Err(e) => return (http::StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e}")),
    };
    if key.is_empty() {
        return match store.get_keys().await.collect().await {
            Ok(mut keys) => {
                keys.sort();
                (http::StatusCode::OK, keys.join("\n"))
            }
            Err(e) => (http::StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e}")),
        };
    }
    if req.method() == http::Method::PUT {
        use http_body_util::BodyExt as _;
        let body = req.into_body().collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
        return match store.set(key, body).await {
            Ok(()) => (http::StatusCode::OK, "stored".into()),
            Err(e) => (http::StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e}")),
        };
    }
    match store.get(key).await {
        Ok(Some(v)) => (http::StatusCode::OK, String::from_utf8_lossy(&v).into_owned()),
        Ok(None) => (http::StatusCode::NOT_FOUND, "no such key".into()),
        Err(e) => (http::StatusCode::INTERNAL_SERVER_ERROR, format!("error: {e}")),
    }
}
