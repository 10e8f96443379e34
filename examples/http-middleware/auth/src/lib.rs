//! A bearer-token middleware (WASI 0.3, `wasi:http/handler@0.3.0` imported and exported):
//! a request whose `authorization` header is `Bearer <API_TOKEN>` goes on to the app with
//! `x-authenticated: yes`; anything else gets 401 here and never reaches the app.
//!
//! `API_TOKEN` is the app's environment, which middleware sees only when the manifest lets
//! it inherit it (`inherit_configuration = ["environment"]`). Without that its environment
//! is empty, and it refuses everything: it fails closed.

use wasip3::http::types::{ErrorCode, Fields, Request, Response};
use wasip3::{wit_future, wit_stream};

wit_bindgen::generate!({
    path: "wit",
    world: "example:auth/auth",
    with: {
        "wasi:http/types@0.3.0": wasip3::http::types,
        "wasi:clocks/types@0.3.0": wasip3::clocks::types,
    },
    generate_all,
});

export!(Auth);

struct Auth;

impl exports::wasi::http::handler::Guest for Auth {
    async fn handle(request: Request) -> Result<Response, ErrorCode> {
        let token = std::env::var("API_TOKEN").unwrap_or_default();
        let headers = request.get_headers();
        let presented = headers.get("authorization").first().map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default();
        if token.is_empty() || presented != format!("Bearer {token}") {
            return Ok(text(401, "missing or wrong bearer token\n"));
        }
        // Incoming headers are immutable: pass on a copy with the mark added.
        let forwarded = headers.clone();
        drop(headers);
        let _ = forwarded.delete("x-authenticated");
        let _ = forwarded.append("x-authenticated", b"yes");
        let (method, path, scheme, authority) = (request.get_method(), request.get_path_with_query(), request.get_scheme(), request.get_authority());
        let (_done, result) = wit_future::new(|| Ok(()));
        let (body, trailers) = Request::consume_body(request, result);
        let (next, _sent) = Request::new(forwarded, Some(body), trailers, None);
        let _ = next.set_method(&method);
        let _ = next.set_path_with_query(path.as_deref());
        let _ = next.set_scheme(scheme.as_ref());
        let _ = next.set_authority(authority.as_deref());
        wasi::http::handler::handle(next).await
    }
}

fn text(status: u16, body: &str) -> Response {
    let headers = Fields::new();
    let _ = headers.append("content-type", b"text/plain");
    let _ = headers.append("www-authenticate", b"Bearer");
    let (mut body_tx, body_rx) = wit_stream::new();
    let (trailers_tx, trailers_rx) = wit_future::new(|| Ok(None));
    let (response, _sent) = Response::new(headers, Some(body_rx), trailers_rx);
    let _ = response.set_status_code(status);
    drop(trailers_tx);
    let body = body.as_bytes().to_vec();
    wit_bindgen::spawn_local(async move {
        let _ = body_tx.write_all(body).await;
    });
    response
}
