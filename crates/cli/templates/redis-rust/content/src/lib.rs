//! A Redis component on the Spin SDK: prints each message published on its channel.

use spin_sdk::redis_component;

#[redis_component]
fn on_message(message: bytes::Bytes) -> anyhow::Result<()> {
    println!("{{project-name}} got: {}", String::from_utf8_lossy(&message));
    Ok(())
}
