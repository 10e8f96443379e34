//! A dependency for the composition tests: exports `tessera:calc/calculator@0.1.0`.

wit_bindgen::generate!({ world: "tessera:calc/calc", path: ["../../../crates/capabilities/wit/deps/fermyon-spin", "wit"], generate_all });

use fermyon::spin::key_value::{Error, Store};

struct Calc;

impl exports::tessera::calc::calculator::Guest for Calc {
    fn add(a: u32, b: u32) -> u32 {
        a.wrapping_add(b)
    }

    fn greeting() -> String {
        std::env::var("GREETING").unwrap_or_else(|_| "no greeting".into())
    }

    fn kv_roundtrip(key: String, value: String) -> String {
        let outcome = Store::open("default").and_then(|store| {
            store.set(&key, value.as_bytes())?;
            store.get(&key)
        });
        match outcome {
            Ok(Some(bytes)) => String::from_utf8_lossy(&bytes).into_owned(),
            Ok(None) => "missing".into(),
            Err(Error::AccessDenied) => "error: access-denied".into(),
            Err(Error::NoSuchStore) => "error: no-such-store".into(),
            Err(Error::StoreTableFull) => "error: store-table-full".into(),
            Err(Error::Other(e)) => format!("error: {e}"),
        }
    }

    fn echo(s: String) -> String {
        s
    }

    fn count_greetings(n: u32) -> u32 {
        // Straight to the WASI call: the standard library reads the environment once.
        (0..n).filter(|_| wasip2::cli::environment::get_environment().iter().any(|(k, _)| k == "GREETING")).count() as u32
    }
}

export!(Calc);
