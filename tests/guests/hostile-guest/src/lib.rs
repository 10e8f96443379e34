//! A WASI 0.2 HTTP component that attacks its host, one attack per path, for the
//! hostile-guest suite (crates/cli/tests/hostile_guests.rs). The smallest attacks (loops,
//! memory, tables, recursion) are WAT fixtures in that test instead.
//!
//! - `/huge-body?mib=N`: streams N MiB without a Content-Length;
//! - `/huge-declared`: declares a 64 GiB Content-Length;
//! - `/endless`: streams a body that never ends;
//! - `/outbound-flood?url=U&n=N`: sends N requests to U one after another and answers
//!   `sent=N ok=K refused=R first_error=E`;
//! - `/handle-flood?kind=fields|pollables|streams`: creates host resources and never
//!   drops them;
//! - `/follow?url=U`: GETs U and follows up to 5 redirects by itself, answering the final
//!   status, or 502 and the `wasi:http` error code of the hop that failed.

use std::io::Write as _;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    Fields, IncomingRequest, Method, OutgoingBody, OutgoingRequest, OutgoingResponse,
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
                (k == name).then(|| v.to_string())
            })
        };
        match path.rsplit('/').next().unwrap_or("") {
            "huge-body" => {
                let mib: u64 = param("mib").and_then(|v| v.parse().ok()).unwrap_or(1024);
                stream_body(out, &[], Some(mib << 20));
            }
            "huge-declared" => stream_body(out, &[("content-length", (64u64 << 30).to_string())], Some(64 << 30)),
            "endless" => stream_body(out, &[], None),
            "outbound-flood" => {
                let url = param("url").unwrap_or_default();
                let n: u32 = param("n").and_then(|v| v.parse().ok()).unwrap_or(5000);
                let (mut ok, mut refused, mut first_error) = (0, 0, String::from("none"));
                for _ in 0..n {
                    match send(&url) {
                        Ok(_) => ok += 1,
                        Err(e) => {
                            if refused == 0 {
                                first_error = e;
                            }
                            refused += 1;
                        }
                    }
                }
                respond(out, 200, format!("sent={n} ok={ok} refused={refused} first_error={first_error}\n"));
            }
            "handle-flood" => {
                let kind = param("kind").unwrap_or_default();
                let mut fields = Vec::new();
                let mut pollables = Vec::new();
                let mut streams = Vec::new();
                // Stops only when the host refuses (which traps) or the memory runs out.
                loop {
                    match kind.as_str() {
                        "fields" => fields.push(Fields::new()),
                        "pollables" => pollables.push(wasip2::clocks::monotonic_clock::subscribe_duration(1 << 40)),
                        _ => streams.push(wasip2::cli::stdout::get_stdout()),
                    }
                }
            }
            "follow" => {
                let mut url = param("url").unwrap_or_default();
                for _ in 0..5 {
                    match send(&url) {
                        Ok((status, Some(location))) if (300..400).contains(&status) => url = location,
                        Ok((status, _)) => return respond(out, 200, format!("final status {status} from {url}\n")),
                        Err(e) => return respond(out, 502, format!("error at {url}: {e}\n")),
                    }
                }
                respond(out, 508, "too many redirects\n".into());
            }
            _ => respond(out, 404, format!("no attack at {path}\n")),
        }
    }
}

fn respond(out: ResponseOutparam, status: u16, body: String) {
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

/// Streams `len` bytes (forever when `None`) in 64 KiB writes.
fn stream_body(out: ResponseOutparam, headers: &[(&str, String)], len: Option<u64>) {
    let fields = Fields::new();
    for (k, v) in headers {
        let _ = fields.append(k, v.as_bytes());
    }
    let response = OutgoingResponse::new(fields);
    let outgoing = response.body().expect("body");
    ResponseOutparam::set(out, Ok(response));
    let mut stream = outgoing.write().expect("stream");
    let chunk = vec![b'x'; 64 << 10];
    let mut sent = 0u64;
    while len.is_none_or(|l| sent < l) {
        // The host cut the body off (or the client left): stop.
        if stream.write_all(&chunk).and_then(|()| std::io::Write::flush(&mut stream)).is_err() {
            return;
        }
        sent += chunk.len() as u64;
    }
    drop(stream);
    let _ = OutgoingBody::finish(outgoing, None);
}

/// One GET; the status and `Location`, or the `wasi:http` error code.
fn send(url: &str) -> Result<(u16, Option<String>), String> {
    let (scheme, rest) = url.split_once("://").ok_or("url has no scheme")?;
    let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Get).map_err(|_| "method")?;
    let scheme = if scheme == "https" { Scheme::Https } else { Scheme::Http };
    request.set_scheme(Some(&scheme)).map_err(|_| "scheme")?;
    request.set_authority(Some(authority)).map_err(|_| "authority")?;
    request.set_path_with_query(Some(path)).map_err(|_| "path")?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = pending.get().ok_or("no response")?.map_err(|_| "taken twice")?.map_err(|e| format!("{e:?}"))?;
    let location = response.headers().get("location").first().map(|v| String::from_utf8_lossy(v).into_owned());
    Ok((response.status(), location))
}
