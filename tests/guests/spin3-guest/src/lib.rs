//! A guest written with the current Spin Rust SDK (7.0, WASI 0.3): `/variables/<name>`
//! answers with `spin_sdk::variables::get` (`spin:variables/variables@3.0.0`).

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
