//! A plugin for the embedding API's sandbox tests: exports `tessera:probe/probe`, whose
//! functions each try one thing (files, environment, clocks, network, output, key-value,
//! variables) and report what happened.

wit_bindgen::generate!({ world: "tessera:probe/probe-plugin", path: ["../../../crates/capabilities/wit/deps/fermyon-spin", "wit"], generate_all });

use std::io::Write as _;

struct Probe;

impl exports::tessera::probe::probe::Guest for Probe {
    fn read_file(path: String) -> Result<String, String> {
        std::fs::read_to_string(&path).map_err(|e| e.to_string())
    }

    fn env(name: String) -> Option<String> {
        std::env::var(name).ok()
    }

    fn now() -> (u64, u64) {
        let wall = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
        let start = std::time::Instant::now();
        let mut spin = 0u64;
        for i in 0..100_000u64 {
            spin = spin.wrapping_add(std::hint::black_box(i));
        }
        std::hint::black_box(spin);
        (wall, start.elapsed().as_nanos() as u64)
    }

    fn connect(addr: String) -> Result<(), String> {
        std::net::TcpStream::connect(&addr).map(drop).map_err(|e| e.to_string())
    }

    fn http_get(url: String) -> Result<u16, String> {
        use wasip2::http::outgoing_handler;
        use wasip2::http::types::{Fields, OutgoingRequest, Scheme};
        let (scheme, rest) = url.split_once("://").unwrap_or(("http", &url));
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| (&rest[..i], &rest[i..]));
        let request = OutgoingRequest::new(Fields::new());
        let _ = request.set_scheme(Some(&if scheme == "https" { Scheme::Https } else { Scheme::Http }));
        let _ = request.set_authority(Some(authority));
        let _ = request.set_path_with_query(Some(path));
        let pending = outgoing_handler::handle(request, None).map_err(|e| format!("{e:?}"))?;
        pending.subscribe().block();
        match pending.get() {
            Some(Ok(Ok(response))) => Ok(response.status()),
            Some(Ok(Err(e))) => Err(format!("{e:?}")),
            other => Err(format!("{other:?}")),
        }
    }

    fn shout(bytes: u32) {
        let _ = std::io::stdout().write_all(&vec![b'x'; bytes as usize]);
        let _ = std::io::stdout().flush();
        let _ = std::io::stderr().write_all(&vec![b'y'; bytes as usize]);
    }

    fn kv_roundtrip(key: String, value: String) -> Result<String, String> {
        use fermyon::spin::key_value::Store;
        let store = Store::open("default").map_err(|e| format!("{e:?}"))?;
        store.set(&key, value.as_bytes()).map_err(|e| format!("{e:?}"))?;
        let read = store.get(&key).map_err(|e| format!("{e:?}"))?;
        Ok(String::from_utf8_lossy(&read.unwrap_or_default()).into_owned())
    }

    fn variable(name: String) -> Result<String, String> {
        fermyon::spin::variables::get(&name).map_err(|e| format!("{e:?}"))
    }
}

export!(Probe);
