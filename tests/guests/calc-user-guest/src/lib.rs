//! An HTTP component that imports `tessera:calc/calculator@0.1.0`, for the composition
//! tests: `/add?a=A&b=B` answers the sum, `/greeting` the dependency's greeting and
//! `/env` its own `GREETING`, `/count-greetings?n=N` how many of N reads of it the
//! dependency saw, `/kv` what the dependency gets storing and reading a key,
//! `/echo-loop?n=N&size=S` the time per call of N `echo` calls of S bytes.

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
