//! A component written against standard interfaces only (no Spin SDK): `wasi:keyvalue`
//! and `wasi:config`, with bindings from `wit-bindgen`, served over `wasi:http` 0.2.
//!
//! - `/config/<key>`: `wasi:config/store.get`;
//! - `/count/<bucket>/<key>`: `wasi:keyvalue/atomics.increment` by 1;
//! - `/get/<bucket>/<key>`: `wasi:keyvalue/store` bucket `get`.

use std::io::Write as _;
use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

wit_bindgen::generate!({ world: "guest", path: "wit", generate_all });

use wasi::config::store as config;
use wasi::keyvalue::{atomics, store};

wasip2::http::proxy::export!(Guest);

struct Guest;

impl wasip2::exports::http::incoming_handler::Guest for Guest {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path = request.path_with_query().unwrap_or_default();
        let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        let (status, body) = match parts.as_slice() {
            ["config", key] => match config::get(key) {
                Ok(Some(v)) => (200, v),
                Ok(None) => (404, format!("no config value {key}")),
                Err(e) => (500, format!("error: {e:?}")),
            },
            ["count", bucket, key] => match store::open(bucket).and_then(|b| atomics::increment(&b, key, 1)) {
                Ok(n) => (200, n.to_string()),
                Err(store::Error::AccessDenied) => (403, "access-denied".into()),
                Err(e) => (500, format!("error: {e:?}")),
            },
            ["get", bucket, key] => match store::open(bucket).and_then(|b| b.get(key)) {
                Ok(Some(v)) => (200, String::from_utf8_lossy(&v).into_owned()),
                Ok(None) => (404, "no such key".into()),
                Err(e) => (500, format!("error: {e:?}")),
            },
            _ => (404, format!("no route for {path}")),
        };
        let response = OutgoingResponse::new(Fields::new());
        let _ = response.set_status_code(status);
        let outgoing = response.body().expect("body");
        ResponseOutparam::set(out, Ok(response));
        let mut stream = outgoing.write().expect("stream");
        stream.write_all(body.as_bytes()).expect("write");
        stream.flush().expect("flush");
        drop(stream);
        OutgoingBody::finish(outgoing, None).expect("finish");
    }
}
