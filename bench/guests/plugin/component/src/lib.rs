//! The benchmark plugin as a component (`bench:plugin/transform`).

wit_bindgen::generate!({ world: "bench:plugin/transform", path: "../wit" });

struct Plugin;

impl Guest for Plugin {
    fn transform(input: Vec<u8>) -> Vec<u8> {
        logic::transform(&input)
    }

    fn work(n: u32) -> u64 {
        logic::work(n)
    }
}

export!(Plugin);
