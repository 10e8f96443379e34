//! A cron component exporting `fermyon:spin-cron@2.0.0`'s `handle-cron-event`: prints
//! `tick <timestamp>`, after sleeping `SLEEP_MS` (component `environment`) if set.

wit_bindgen::generate!({ world: "spin-cron", path: "../../../crates/triggers/wit/deps/fermyon-spin-cron" });


struct Cron;

impl Guest for Cron {
    fn handle_cron_event(metadata: Metadata) -> Result<(), Error> {
        if let Some(ms) = std::env::var("SLEEP_MS").ok().and_then(|v| v.parse().ok()) {
            std::thread::sleep(std::time::Duration::from_millis(ms));
        }
        println!("tick {}", metadata.timestamp);
        Ok(())
    }
}

export!(Cron);
