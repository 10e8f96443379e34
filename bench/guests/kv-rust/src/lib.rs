//! The key-value benchmark guest (Spin SDK 5.2): every request reads one key and writes
//! another in the default store, so each request does one read and one durable write.

use spin_sdk::http::{IntoResponse, Request, Response};
use spin_sdk::http_component;
use spin_sdk::key_value::Store;

#[http_component]
fn handle(req: Request) -> anyhow::Result<impl IntoResponse> {
    let store = Store::open_default()?;
    let greeting = store.get("greeting")?.unwrap_or_else(|| b"hello".to_vec());
    store.set("last-path", req.path().as_bytes())?;
    Ok(Response::new(200, greeting))
}
