//! A dependency for the composition tests: exports `tessera:calc/calculator@0.1.0`.

wit_bindgen::generate!({ world: "calc", path: "wit" });

struct Calc;

impl exports::tessera::calc::calculator::Guest for Calc {
    fn add(a: u32, b: u32) -> u32 {
        a.wrapping_add(b)
    }

    fn greeting() -> String {
        std::env::var("GREETING").unwrap_or_else(|_| "no greeting".into())
    }

    fn count_greetings(n: u32) -> u32 {
        // Straight to the WASI call: the standard library reads the environment once.
        (0..n).filter(|_| wasip2::cli::environment::get_environment().iter().any(|(k, _)| k == "GREETING")).count() as u32
    }
}

export!(Calc);
