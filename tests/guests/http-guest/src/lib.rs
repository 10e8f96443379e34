//! A WASI 0.2 HTTP component whose behaviour is picked by the request path, so one small
//! guest exercises routing, isolation, outbound HTTP and every limit:
//!
//! - `/hello`: a greeting, and a line on stdout;
//! - `/headers`: the request headers, one `name: value` per line;
//! - `/env`: the environment, one `KEY=value` per line;
//! - `/read?path=P`: the file at `P`, or 404 with the error;
//! - `/list?path=P`: the directory entries at `P`;
//! - `/outbound?url=U`: a GET of `U` (a relative `U` has no scheme or authority),
//!   answered with its status and body, or 502 and the `wasi:http` error code;
//! - `/loop`: a GET of the relative URL `/loop` (itself, by service chaining), answered
//!   with what that answered;
//! - `/connect?addr=A`: opens a TCP connection to `A` and writes `ping` on it (200, or
//!   403 with the error);
//! - `/udp?addr=A`: sends the datagram `ping` to `A` (200, or 403 with the error);
//! - `/listen`: tries to listen on a TCP port (which must fail);
//! - `/echo`: the request body, with its length in `x-body-length`;
//! - `/memory-bomb`: allocates 1 MiB blocks until it fails;
//! - `/spin`: loops forever;
//! - `/trap`: panics;
//! - `/sleep?ms=N`: waits N ms, then answers;
//! - `/burn?ms=N`: computes for N ms, then answers;
//! - anything else: 200 with the path.

use std::io::{Read as _, Write as _};
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
    ResponseOutparam, Scheme,
};

wasip2::http::proxy::export!(Guest);

struct Guest;

impl wasip2::exports::http::incoming_handler::Guest for Guest {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path_and_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_and_query.split_once('?').unwrap_or((&path_and_query, ""));
        let param = |name: &str| {
            query.split('&').find_map(|kv| {
                let (k, v) = kv.split_once('=')?;
                (k == name).then(|| percent_decode(v))
            })
        };
        let last = path.rsplit('/').next().unwrap_or("");
        let (status, headers, body): (u16, Vec<(&str, String)>, Vec<u8>) = match last {
            "hello" => {
                println!("hello handler called for {path}");
                eprintln!("a line on stderr");
                (200, vec![], b"Hello from Tessera\n".to_vec())
            }
            "headers" => {
                let mut text = String::new();
                for (k, v) in request.headers().entries() {
                    text.push_str(&format!("{k}: {}\n", String::from_utf8_lossy(&v)));
                }
                (200, vec![], text.into_bytes())
            }
            "env" => {
                let text: String = std::env::vars().map(|(k, v)| format!("{k}={v}\n")).collect();
                (200, vec![], text.into_bytes())
            }
            "read" => match std::fs::read(param("path").unwrap_or_default()) {
                Ok(bytes) => (200, vec![], bytes),
                Err(e) => (404, vec![], format!("error: {e}\n").into_bytes()),
            },
            "list" => match std::fs::read_dir(param("path").unwrap_or_else(|| "/".into())) {
                Ok(entries) => {
                    let mut names: Vec<String> = entries
                        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
                        .collect();
                    names.sort();
                    (200, vec![], (names.join("\n") + "\n").into_bytes())
                }
                Err(e) => (404, vec![], format!("error: {e}\n").into_bytes()),
            },
            "write" => match std::fs::write(param("path").unwrap_or_default(), b"x") {
                Ok(()) => (200, vec![], b"written\n".to_vec()),
                Err(e) => (403, vec![], format!("error: {e}\n").into_bytes()),
            },
            "outbound" => match fetch(&param("url").unwrap_or_default()) {
                Ok((status, body)) => (200, vec![("x-upstream-status", status.to_string())], body),
                Err(e) => (502, vec![], format!("error: {e}\n").into_bytes()),
            },
            "loop" => match fetch(path) {
                Ok((status, body)) => (status, vec![], body),
                Err(e) => (502, vec![], format!("error: {e}\n").into_bytes()),
            },
            "connect" => match std::net::TcpStream::connect(param("addr").unwrap_or_default()).and_then(|mut s| s.write_all(b"ping")) {
                Ok(()) => (200, vec![], b"connected\n".to_vec()),
                Err(e) => (403, vec![], format!("error: {e}\n").into_bytes()),
            },
            "udp" => match std::net::UdpSocket::bind("0.0.0.0:0").and_then(|s| s.send_to(b"ping", param("addr").unwrap_or_default())) {
                Ok(_) => (200, vec![], b"sent\n".to_vec()),
                Err(e) => (403, vec![], format!("error: {e}\n").into_bytes()),
            },
            "listen" => match std::net::TcpListener::bind("0.0.0.0:0") {
                Ok(l) => (200, vec![], format!("listening on {:?}\n", l.local_addr()).into_bytes()),
                Err(e) => (403, vec![], format!("error: {e}\n").into_bytes()),
            },
            "echo" => {
                let body = read_body(&request);
                (200, vec![("x-body-length", body.len().to_string())], body)
            }
            "memory-bomb" => {
                let mut blocks: Vec<Vec<u8>> = Vec::new();
                loop {
                    blocks.push(vec![1u8; 1 << 20]);
                }
            }
            "spin" => {
                let mut x: u64 = 0;
                loop {
                    x = std::hint::black_box(x.wrapping_add(1));
                }
            }
            "trap" => panic!("the guest trapped on purpose"),
            "sleep" => {
                let ms: u64 = param("ms").and_then(|v| v.parse().ok()).unwrap_or(1000);
                wasip2::clocks::monotonic_clock::subscribe_duration(ms * 1_000_000).block();
                (200, vec![], format!("slept {ms} ms\n").into_bytes())
            }
            "burn" => {
                let ms: u64 = param("ms").and_then(|v| v.parse().ok()).unwrap_or(100);
                let until = wasip2::clocks::monotonic_clock::now() + ms * 1_000_000;
                let mut spins = 0u64;
                while wasip2::clocks::monotonic_clock::now() < until {
                    spins = spins.wrapping_add(1);
                }
                (200, vec![], format!("burned {ms} ms ({spins} clock reads)\n").into_bytes())
            }
            _ => (200, vec![], format!("path: {path}\n").into_bytes()),
        };
        respond(out, status, &headers, &body);
    }
}

fn respond(out: ResponseOutparam, status: u16, headers: &[(&str, String)], body: &[u8]) {
    let fields = Fields::new();
    for (k, v) in headers {
        let _ = fields.append(k, v.as_bytes());
    }
    let response = OutgoingResponse::new(fields);
    let _ = response.set_status_code(status);
    let outgoing = response.body().expect("body");
    ResponseOutparam::set(out, Ok(response));
    let mut stream = outgoing.write().expect("stream");
    for chunk in body.chunks(4096) {
        stream.write_all(chunk).expect("write");
    }
    stream.flush().expect("flush");
    drop(stream);
    OutgoingBody::finish(outgoing, None).expect("finish");
}

fn read_body(request: &IncomingRequest) -> Vec<u8> {
    let mut body = Vec::new();
    let incoming = request.consume().expect("body");
    let mut stream = incoming.stream().expect("stream");
    let _ = stream.read_to_end(&mut body);
    drop(stream);
    IncomingBody::finish(incoming);
    body
}

fn fetch(url: &str) -> Result<(u16, Vec<u8>), String> {
    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).map_err(|_| "method")?;
    let path = if url.starts_with('/') {
        url
    } else {
        let (scheme, rest) = url.split_once("://").ok_or("url has no scheme")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        request
            .set_scheme(Some(&match scheme {
                "http" => Scheme::Http,
                "https" => Scheme::Https,
                other => Scheme::Other(other.to_string()),
            }))
            .map_err(|_| "scheme")?;
        request.set_authority(Some(authority)).map_err(|_| "authority")?;
        path
    };
    request.set_path_with_query(Some(path)).map_err(|_| "path")?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = pending
        .get()
        .ok_or("no response")?
        .map_err(|_| "response taken twice")?
        .map_err(|e| format!("{e:?}"))?;
    let status = response.status();
    let incoming = response.consume().map_err(|_| "body")?;
    let mut body = Vec::new();
    let mut stream = incoming.stream().map_err(|_| "stream")?;
    let _ = stream.read_to_end(&mut body);
    Ok((status, body))
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
