//! The calculator: `example:calculator/calculate` in Rust, a dependency of the JavaScript
//! front end. It imports nothing.

wit_bindgen::generate!({ world: "example:calculator/calculator", path: "../wit" });

struct Calculator;

impl exports::example::calculator::calculate::Guest for Calculator {
    fn add(a: i32, b: i32) -> i32 {
        a.wrapping_add(b)
    }

    fn multiply(a: i32, b: i32) -> Result<i32, String> {
        a.checked_mul(b).ok_or_else(|| format!("{a} × {b} does not fit in 32 bits"))
    }
}

export!(Calculator);
