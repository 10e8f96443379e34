//! An HTTP component that imports `tessera:calc/calculator@0.1.0`, for the composition
//! tests: `/add?a=A&b=B` answers the sum, `/greeting` the dependency's greeting and
//! `/env` its own `GREETING`, `/count-greetings?n=N` how many of N reads of it the
//! dependency saw, `/kv` what the dependency gets storing and reading a key,
//! `/echo-loop?n=N&size=S` the time per call of N `echo` calls of S bytes, and
//! `/hop-loop?n=N&size=S&to=http://HOST/PATH` the same over HTTP: N POSTs of S bytes to
//! `to`, each answered with the body echoed (service chaining or a real socket).

wit_bindgen::generate!({ world: "tessera:calc/calc-user", path: ["../../../crates/capabilities/wit/deps/fermyon-spin", "../calc-guest/wit"], generate_all });

use tessera::calc::calculator;
use wasip2::http::types::{Fields, IncomingRequest, OutgoingBody, OutgoingResponse, ResponseOutparam};

wasip2::http::proxy::export!(Guest);

struct Guest;

impl wasip2::exports::http::incoming_handler::Guest for Guest {
    fn handle(request: IncomingRequest, out: ResponseOutparam) {
        let path_and_query = request.path_with_query().unwrap_or_default();
        let (path, query) = path_and_query.split_once('?').unwrap_or((&path_and_query, ""));
        let param = |name: &str| -> u32 {
            query.split('&').find_map(|kv| kv.split_once('=').filter(|(k, _)| *k == name).and_then(|(_, v)| v.parse().ok())).unwrap_or(0)
        };
        let body = match path.rsplit('/').next().unwrap_or("") {
            "add" => format!("{}\n", calculator::add(param("a"), param("b"))),
            "greeting" => format!("{}\n", calculator::greeting()),
            "echo-loop" => {
                // `n` calls of `echo` with a `size`-byte string, timed in the guest.
                let (n, text) = (param("n").max(1), "x".repeat(param("size") as usize));
                let start = wasip2::clocks::monotonic_clock::now();
                let mut bytes = 0;
                for _ in 0..n {
                    bytes += calculator::echo(&text).len();
                }
                let elapsed = wasip2::clocks::monotonic_clock::now() - start;
                format!("{} ns per call ({n} calls, {bytes} bytes back)\n", elapsed / u64::from(n))
            }
            "hop-loop" => {
                let (n, text) = (param("n").max(1), "x".repeat(param("size") as usize));
                let to = query.split('&').find_map(|kv| kv.strip_prefix("to=")).unwrap_or("");
                let start = wasip2::clocks::monotonic_clock::now();
                let mut bytes = 0;
                let mut failed = None;
                for _ in 0..n {
                    match post(to, text.as_bytes()) {
                        Ok(len) => bytes += len,
                        Err(e) => {
                            failed = Some(e);
                            break;
                        }
                    }
                }
                let elapsed = wasip2::clocks::monotonic_clock::now() - start;
                match failed {
                    Some(e) => format!("error: {e}\n"),
                    None => format!("{} ns per call ({n} calls, {bytes} bytes back)\n", elapsed / u64::from(n)),
                }
            }
            "kv" => format!("{}\n", calculator::kv_roundtrip("greeting", "stored by the dependency")),
            "count-greetings" => format!("{}\n", calculator::count_greetings(param("n"))),
            "env" => format!("{}\n", std::env::var("GREETING").unwrap_or_else(|_| "no greeting".into())),
            _ => "try /add?a=1&b=2 or /greeting\n".into(),
        };
        let response = OutgoingResponse::new(Fields::new());
        let outgoing = response.body().expect("body");
        ResponseOutparam::set(out, Ok(response));
        let stream = outgoing.write().expect("stream");
        stream.blocking_write_and_flush(body.as_bytes()).expect("write");
        drop(stream);
        OutgoingBody::finish(outgoing, None).expect("finish");
    }
}

/// POSTs `body` to `url` (`http://authority/path`); the length of the answer's body.
fn post(url: &str, body: &[u8]) -> Result<usize, String> {
    use wasip2::http::outgoing_handler;
    use wasip2::http::types::{Method, OutgoingRequest, Scheme};
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").ok_or("`to` must be http://...")?;
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let request = OutgoingRequest::new(Fields::new());
    request.set_method(&Method::Post).map_err(|_| "method")?;
    request.set_scheme(Some(&Scheme::Http)).map_err(|_| "scheme")?;
    request.set_authority(Some(authority)).map_err(|_| "authority")?;
    request.set_path_with_query(Some(if path.is_empty() { "/" } else { path })).map_err(|_| "path")?;
    let outgoing = request.body().map_err(|_| "body")?;
    {
        let mut stream = outgoing.write().map_err(|_| "stream")?;
        stream.write_all(body).map_err(|e| e.to_string())?;
    }
    OutgoingBody::finish(outgoing, None).map_err(|e| format!("{e:?}"))?;
    let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
    pending.subscribe().block();
    let response = pending.get().ok_or("no response")?.map_err(|_| "taken")?.map_err(|e| format!("{e:?}"))?;
    if response.status() != 200 {
        return Err(format!("status {}", response.status()));
    }
    let incoming = response.consume().map_err(|_| "body")?;
    let mut answer = Vec::new();
    let mut stream = incoming.stream().map_err(|_| "stream")?;
    let _ = stream.read_to_end(&mut answer);
    drop(stream);
    Ok(answer.len())
}
