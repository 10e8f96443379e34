//! A Redis component built with the Spin SDK 7 (`spin:redis/inbound-redis@3.0.0`, async):
//! prints `v3 message: <payload>`; `fail` returns an error.

use spin_sdk::redis_subscriber;

#[redis_subscriber]
async fn on_message(message: bytes::Bytes) -> anyhow::Result<()> {
    let text = String::from_utf8_lossy(&message).into_owned();
    if text == "fail" {
        anyhow::bail!("failing on purpose");
    }
    println!("v3 message: {text}");
    Ok(())
}
