//! A cron component exporting `fermyon:spin-cron@2.0.0`'s `handle-cron-event`: prints
//! `tick <timestamp>`, after sleeping `SLEEP_MS` or spinning on the CPU for `SPIN_MS`
//! (component `environment`) if set; `SPIN_MS = "forever"` never returns.

wit_bindgen::generate!({ world: "spin-cron", path: "../../../crates/triggers/wit/deps/fermyon-spin-cron" });


struct Cron;

impl Guest for Cron {
    fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        if let Some(ms) = std::env::var("SLEEP_MS").ok().and_then(|v| v.parse().ok()) {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        match std::env::var("SPIN_MS").ok().as_deref() {
            Some("forever") => loop {
                std::hint::spin_loop();
            },
            Some(ms) => {
                let until = std::time::Instant::now() + std::time::Duration::from_millis(ms.parse().unwrap_or(0));
                while std::time::Instant::now() < until {
                    std::hint::spin_loop();
                }
            }
            None => {}
        }
        println!("tick {}", metadata.timestamp);
        Ok(())
    }
}

export!(Cron);
