//! A Spin app written with the published Spin Rust SDK, unchanged: its `Router` reads the
//! route parameters from the headers the host sets.

use spin_sdk::http::{IntoResponse, Params, Request, Response, Router};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let mut router = Router::new();
    router.get("/hello/:name", greet);
    router.get("/files/*", files);
    router.any("/*", not_found);
    Ok(router.handle(req))
}

fn greet(_req: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    let name = params.get("name").unwrap_or("stranger");
    Ok(Response::new(200, format!("Hello, {name}!\n")))
}

fn files(_req: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    let rest = params.wildcard().unwrap_or("");
    Ok(Response::new(200, format!("file: {rest}\n")))
}

fn not_found(req: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    Ok(Response::new(404, format!("no route for {}\n", req.path())))
}
