//! A Redis component built with the Spin SDK 5.2 (`fermyon:spin/inbound-redis`). Each
//! message is printed as `message: <payload>`, except:
//! - `trap`: panics; `hang`: spins without end; `fail`: returns an error;
//! - `slow:<ms>`: sleeps that long, then prints `slow done`.

use spin_sdk::redis_component;

#[redis_component]
fn on_message(message: bytes::Bytes) -> anyhow::Result<()> {
    let text = String::from_utf8_lossy(&message).into_owned();
    match text.as_str() {
        "trap" => panic!("trapping on purpose"),
        "hang" => {
            let mut n: u64 = 0;
            loop {
                n = std::hint::black_box(n.wrapping_add(1));
            }
        }
        "fail" => anyhow::bail!("failing on purpose"),
        _ => {}
    }
    if let Some(ms) = text.strip_prefix("slow:") {
        std::thread::sleep(std::time::Duration::from_millis(ms.parse().unwrap_or(1000)));
        println!("slow done");
        return Ok(());
    }
    println!("message: {text}");
    Ok(())
}
