//! A wasmCloud-style component: `wasmcloud:messaging` and `wasi:blobstore`, driven over
//! HTTP (so tests reach it on the in-process broker too) and as a messaging handler.
//!
//! HTTP:
//! - `POST /publish?subject=S[&reply_to=R]`: publishes the body (200, or 403 with the error);
//! - `POST /request?subject=S&timeout=MS`: sends the body as a request; 200 with the
//!   reply's body, or 502 with the error;
//! - `/blob?op=OP&c=CONTAINER&o=OBJECT...`: one blobstore call (`create`, `get`, `exists`,
//!   `delete-container`, `put` (the body), `read` (`start`, `end`), `list`, `has`, `info`,
//!   `delete`, `clear`, `copy`/`move` (to `dc`/`do`)); 200 with the result, or 404 with
//!   the error.
//!
//! Messages (`handle-message`): prints `messaging <subject>: <body>`; then the body
//! `fail` returns an error, `trap` panics, `spin` loops forever, `sleep` waits 500 ms; a
//! message with a reply subject is answered `echo: <body>`; a subject `relay.X` is
//! published on to `relayed.X`.

use std::io::{Read as _, Write as _};
use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

wit_bindgen::generate!({
    world: "tessera:cloud-guest/cloud-guest",
    path: [
        "../../../crates/capabilities/wit/deps/wasi-io",
        "../../../crates/capabilities/wit/deps/wasmcloud-messaging",
        "../../../crates/capabilities/wit/deps/wasi-blobstore",
        "wit",
    ],
    with: {
        "wasi:io/streams@0.2.12": wasip2::io::streams,
        "wasi:io/error@0.2.12": wasip2::io::error,
        "wasi:io/poll@0.2.12": wasip2::io::poll,
    },
    generate_all,
});

use exports::wasmcloud::messaging::handler::Guest as Handler;
use wasi::blobstore::{blobstore, container, types as blob};
use wasmcloud::messaging::{consumer, types::BrokerMessage};

struct Cloud;

impl Handler for Cloud {
    fn handle_message(msg: BrokerMessage) -> Result<(), String> {
        let body = String::from_utf8_lossy(&msg.body).into_owned();
        println!("messaging {}: {body}", msg.subject);
        match body.as_str() {
            "fail" => return Err("failing on purpose".into()),
            "trap" => panic!("trapping on purpose"),
            "spin" => loop {
                std::hint::spin_loop();
            },
            "sleep" => std::thread::sleep(std::time::Duration::from_millis(500)),
            _ => {}
        }
        if let Some(rest) = msg.subject.strip_prefix("relay.") {
            consumer::publish(&BrokerMessage { subject: format!("relayed.{rest}"), body: msg.body.clone(), reply_to: None })?;
        }
        if let Some(reply_to) = msg.reply_to {
            consumer::publish(&BrokerMessage { subject: reply_to, body: format!("echo: {body}").into_bytes(), reply_to: None })?;
        }
        Ok(())
    }
}

export!(Cloud);

struct Http;

impl wasip2::exports::http::incoming_handler::Guest for Http {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path_and_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_and_query.split_once('?').unwrap_or((&path_and_query, ""));
        let param = |name: &str| {
            query.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).map(|(_, v)| v.to_string()))
        };
        let body = read_body(&request);
        let (status, text) = match path {
            "/publish" => {
                let msg = BrokerMessage { subject: param("subject").unwrap_or_default(), body, reply_to: param("reply_to") };
                match consumer::publish(&msg) {
                    Ok(()) => (200, "published".to_string()),
                    Err(e) => (403, e),
                }
            }
            "/request" => {
                let timeout = param("timeout").and_then(|t| t.parse().ok()).unwrap_or(2000);
                match consumer::request(&param("subject").unwrap_or_default(), &body, timeout) {
                    Ok(reply) => (200, String::from_utf8_lossy(&reply.body).into_owned()),
                    Err(e) => (502, e),
                }
            }
            "/blob" => match blob_op(&param, body) {
                Ok(t) => (200, t),
                Err(e) => (404, e),
            },
            _ => (404, format!("no route {path}")),
        };
        respond(out, status, text.as_bytes());
    }
}

wasip2::http::proxy::export!(Http);

fn blob_op(param: &dyn Fn(&str) -> Option<String>, body: Vec<u8>) -> Result<String, String> {
    let c = param("c").unwrap_or_default();
    let o = param("o").unwrap_or_default();
    let op = param("op").unwrap_or_default();
    match op.as_str() {
        "create" => blobstore::create_container(&c).map(|c| format!("created {}", c.name().unwrap())),
        "exists" => blobstore::container_exists(&c).map(|e| e.to_string()),
        "delete-container" => blobstore::delete_container(&c).map(|()| "deleted".into()),
        "copy" | "move" => {
            let src = blob::ObjectId { container: c, object: o };
            let dest = blob::ObjectId { container: param("dc").unwrap_or_default(), object: param("do").unwrap_or_default() };
            let done = if op == "copy" { blobstore::copy_object(&src, &dest) } else { blobstore::move_object(&src, &dest) };
            done.map(|()| op.clone())
        }
        _ => {
            let container = blobstore::get_container(&c)?;
            object_op(&op, &container, &o, param, body)
        }
    }
}

fn object_op(op: &str, container: &container::Container, o: &str, param: &dyn Fn(&str) -> Option<String>, body: Vec<u8>) -> Result<String, String> {
    match op {
        "put" => {
            let value = blob::OutgoingValue::new_outgoing_value();
            {
                let stream = value.outgoing_value_write_body().map_err(|()| "no body stream".to_string())?;
                for chunk in body.chunks(4096) {
                    stream.blocking_write_and_flush(chunk).map_err(|e| format!("{e:?}"))?;
                }
            }
            container.write_data(o, &value)?;
            blob::OutgoingValue::finish(value)?;
            Ok(format!("wrote {} bytes", body.len()))
        }
        "read" => {
            let start = param("start").and_then(|s| s.parse().ok()).unwrap_or(0);
            let end = param("end").and_then(|s| s.parse().ok()).unwrap_or(u64::MAX);
            let value = container.get_data(o, start, end)?;
            if param("async").is_some() {
                let stream = blob::IncomingValue::incoming_value_consume_async(value)?;
                let mut bytes = Vec::new();
                while let Ok(chunk) = stream.blocking_read(65536) {
                    bytes.extend(chunk);
                }
                Ok(String::from_utf8_lossy(&bytes).into_owned())
            } else {
                Ok(String::from_utf8_lossy(&blob::IncomingValue::incoming_value_consume_sync(value)?).into_owned())
            }
        }
        "list" => {
            let names = container.list_objects()?;
            let mut all = Vec::new();
            loop {
                let (batch, end) = names.read_stream_object_names(2)?;
                all.extend(batch);
                if end {
                    break;
                }
            }
            Ok(all.join("\n"))
        }
        "has" => container.has_object(o).map(|h| h.to_string()),
        "info" => container.object_info(o).map(|i| format!("{} {} {} {}", i.container, i.name, i.size, i.created_at > 0)),
        "delete" => container.delete_object(o).map(|()| "deleted".into()),
        "clear" => container.clear().map(|()| "cleared".into()),
        "name" => container.name(),
        other => Err(format!("unknown op `{other}`")),
    }
}

fn read_body(request: &IncomingRequest) -> Vec<u8> {
    let mut bytes = Vec::new();
    if let Ok(body) = request.consume()
        && let Ok(mut stream) = body.stream()
    {
        let _ = stream.read_to_end(&mut bytes);
    }
    bytes
}

fn respond(out: ResponseOutparam, status: u16, body: &[u8]) {
    let response = OutgoingResponse::new(Fields::new());
    response.set_status_code(status).unwrap();
    let outgoing = response.body().unwrap();
    ResponseOutparam::set(out, Ok(response));
    let mut stream = outgoing.write().unwrap();
    stream.write_all(body).unwrap();
    stream.flush().unwrap();
    drop(stream);
    OutgoingBody::finish(outgoing, None).unwrap();
}
