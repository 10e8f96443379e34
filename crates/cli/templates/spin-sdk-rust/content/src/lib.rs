//! An HTTP component on the Spin SDK: a router with a path parameter.

use spin_sdk::http::{IntoResponse, Params, Request, Response, Router};
use spin_sdk::http_component;

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let mut router = Router::new();
    router.get("/hello/:name", greet);
    router.any("/*", everything_else);
    Ok(router.handle(req))
}

fn greet(_req: Request, params: Params) -> anyhow::Result<impl IntoResponse> {
    let name = params.get("name").unwrap_or("stranger");
    Ok(Response::new(200, format!("Hello, {name}, from {{project-name}}!\n")))
}

fn everything_else(req: Request, _params: Params) -> anyhow::Result<impl IntoResponse> {
    Ok(Response::new(200, format!("{{project-name}} got {}\n", req.path())))
}
