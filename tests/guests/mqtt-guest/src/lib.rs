//! An MQTT component exporting `spin:mqtt-trigger@3.0.0`'s `handle-message` (async):
//! prints `mqtt <topic>: <payload>`; the payload `fail` returns an error, `trap` panics,
//! `spin` loops on the CPU forever, `sleep` waits 500 ms first.

wit_bindgen::generate!({ world: "spin-mqtt", path: "../../../crates/triggers/wit/deps/spin-mqtt-trigger" });


struct Mqtt;

impl Guest for Mqtt {
    async fn handle_message(message: Payload, metadata: Metadata) -> Result<(), Error> {
        let text = String::from_utf8_lossy(&message).into_owned();
        match text.as_str() {
            "fail" => return Err(Error::Other("failing on purpose".into())),
            "trap" => panic!("trapping on purpose"),
            "spin" => loop {
                std::hint::spin_loop();
            },
            "sleep" => std::thread::sleep(std::time::Duration::from_millis(500)),
            _ => {}
        }
        println!("mqtt {}: {text}", metadata.topic);
        Ok(())
    }
}

export!(Mqtt);
