//! A WASI 0.3 HTTP middleware (`wasi:http/handler@0.3.0` imported and exported). Each
//! instance names itself by its place in the chain: the first adds `x-chain: mw1` to the
//! request it passes on, the next `mw2`, and so on; on the way back each appends its
//! name to `x-chain-response`. A request whose `x-stop-at` names it is answered 403 by it
//! without going further (an auth middleware's refusal).

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_future, wit_stream};

wit_bindgen::generate!({
    path: "wit",
    world: "tessera:middleware/chain",
    with: {
        "wasi:http/types@0.3.0": wasip3::http::types,
        "wasi:clocks/types@0.3.0": wasip3::clocks::types,
    },
    generate_all,
});

export!(Middleware);

struct Middleware;

impl exports::wasi::http::handler::Guest for Middleware {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let headers = request.get_headers();
        let me = format!("mw{}", headers.get("x-chain").len() + 1);
        if headers.get("x-stop-at").iter().any(|v| v == me.as_bytes()) {
            return Ok(refusal(&me));
        }
        let forwarded = headers.clone();
        drop(headers);
        forwarded.append("x-chain", me.as_bytes()).map_err(|_| ErrorCode::InternalError(Some("x-chain".into())))?;
        let (method, path, scheme, authority) = (request.get_method(), request.get_path_with_query(), request.get_scheme(), request.get_authority());
        let (_request_done, request_result) = wit_future::new(|| Ok(()));
        let (body, trailers) = Request::consume_body(request, request_result);
        let (next, _sent) = Request::new(forwarded, Some(body), trailers, None);
        let _ = next.set_method(&method);
        let _ = next.set_path_with_query(path.as_deref());
        let _ = next.set_scheme(scheme.as_ref());
        let _ = next.set_authority(authority.as_deref());

        let response = wasi::http::handler::handle(next).await?;

        let status = response.get_status_code();
        let headers = response.get_headers().clone();
        let _ = headers.append("x-chain-response", me.as_bytes());
        let (_response_done, response_result) = wit_future::new(|| Ok(()));
        let (body, trailers) = Response::consume_body(response, response_result);
        let (out, _sent) = Response::new(headers, Some(body), trailers);
        let _ = out.set_status_code(status);
        Ok(out)
    }
}

/// A 403 answered by middleware `me` itself.
fn refusal(me: &str) -> Response {
    let headers = Fields::new();
    let _ = headers.append("x-chain-response", me.as_bytes());
    let text = format!("stopped by {me}\n");
    let (mut body_tx, body_rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(headers, Some(body_rx), trailers_rx);
    let _ = response.set_status_code(403);
    drop(trailers_tx);
    wit_bindgen::spawn_local(async move {
        let _ = body_tx.write_all(text.into_bytes()).await;
    });
    response
}
