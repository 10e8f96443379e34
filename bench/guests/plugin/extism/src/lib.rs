//! The benchmark plugin as an Extism module: bytes in, bytes out.

use extism_pdk::*;

#[plugin_fn]
pub fn transform(input: Vec<u8>) -> FnResult<Vec<u8>> {
    Ok(logic::transform(&input))
}

#[plugin_fn]
pub fn work(rounds: String) -> FnResult<String> {
    Ok(logic::work(rounds.parse()?).to_string())
}
