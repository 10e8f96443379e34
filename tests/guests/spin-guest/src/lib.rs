//! A guest written with the published Spin Rust SDK (5.2), exercising Spin's capability
//! interfaces the way Spin apps call them:
//!
//! - `/variables/<name>`: `spin_sdk::variables::get` (`fermyon:spin/variables@2.0.0`);
//! - `/config/<name>`: `wasi:config/store.get`;
//! - `/config`: `wasi:config/store.get-all`, one `key=value` per line.

use spin_sdk::http::{IntoResponse, Params, Request, Response, Router};
use spin_sdk::http_component;
use spin_sdk::wit::wasi::config::store as config;

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let mut router = Router::new();
    router.get("/variables/:name", variable);
    router.get("/config/:name", config_one);
    router.get("/config", config_all);
    Ok(router.handle(req))
}

fn variable(_req: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    let name = params.get("name").unwrap_or_default();
    Ok(match spin_sdk::variables::get(name) {
        Ok(value) => Response::new(200, value),
        Err(spin_sdk::variables::Error::Undefined(m)) => Response::new(404, format!("undefined: {m}")),
        Err(spin_sdk::variables::Error::InvalidName(m)) => Response::new(400, format!("invalid-name: {m}")),
        Err(e) => Response::new(500, format!("error: {e}")),
    })
}

fn config_one(_req: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    let name = params.get("name").unwrap_or_default();
    Ok(match config::get(name) {
        Ok(Some(value)) => Response::new(200, value),
        Ok(None) => Response::new(404, format!("no config value `{name}`")),
        Err(e) => Response::new(500, format!("error: {e:?}")),
    })
}

fn config_all(_req: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    Ok(match config::get_all() {
        Ok(mut pairs) => {
            pairs.sort();
            Response::new(200, pairs.into_iter().map(|(k, v)| format!("{k}={v}\n")).collect::<String>())
        }
        Err(e) => Response::new(500, format!("error: {e:?}")),
    })
}
