//! The native peer of the Redis trigger: a tokio subscriber doing what the benchmark's
//! Redis component does, each message written as a `message: <payload>` line to a file
//! (as Tessera writes guest output to its log file).

use clap::Parser;
use futures::StreamExt as _;
use std::io::Write as _;

#[derive(Parser)]
struct Args {
    /// The Redis server.
    #[arg(long)]
    address: String,
    /// The channel to subscribe to.
    #[arg(long)]
    channel: String,
    /// Where each message's line goes.
    #[arg(long)]
    out: std::path::PathBuf,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let client = redis::Client::open(args.address.as_str())?;
    let mut pubsub = client.get_async_pubsub().await?;
    pubsub.subscribe(&args.channel).await?;
    println!("subscribed");
    let mut out = std::fs::OpenOptions::new().create(true).append(true).open(&args.out)?;
    let mut messages = pubsub.on_message();
    while let Some(message) = messages.next().await {
        let payload = message.get_payload_bytes();
        out.write_all(b"message: ")?;
        out.write_all(payload)?;
        out.write_all(b"\n")?;
    }
    Ok(())
}
